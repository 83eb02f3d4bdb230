//! `circus-node`: the command line around the daemon library.

use circus_node::config::{
    ClientConfig, GatewayConfig, ObserveConfig, Role, default_status_socket,
};
use circus_node::{keys, status, tun_device};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "circus-node",
    version,
    about = "Bond several bad uplinks into one reliable encrypted tunnel",
    long_about = "Bond several bad uplinks (wifi, LTE, DSL, satellite) into one reliable \
                  encrypted tunnel.\n\n\
                  The client runs at the site with the links and sends every IP packet from \
                  its TUN device over the link(s) that deliver soonest; the gateway, on a \
                  well-connected host, removes duplicates, restores order and forwards to the \
                  Internet. Connections survive the death of any one link.\n\n\
                  Typical set-up:\n  \
                  circus-node keygen --out /etc/circus/client.key   (on the client)\n  \
                  circus-node keygen --out /etc/circus/gateway.key  (on the gateway)\n  \
                  write client.toml and gateway.toml (see deploy/ for commented examples)\n  \
                  circus-node gateway -c /etc/circus/gateway.toml\n  \
                  circus-node client -c /etc/circus/client.toml\n  \
                  circus-node status\n\n\
                  Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=circus_node=debug) for more."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a key pair (or, with --psk, a pre-shared key)
    ///
    /// Without --out, prints `private_key = "..."` and `public_key = "..."`
    /// lines ready to paste into a config. With --out, writes the private key
    /// alone to FILE (mode 0600; missing directories are made with mode
    /// 0700; an existing FILE is kept unless --force) for `private_key_file`
    /// and prints only the public key line.
    Keygen {
        /// Write the private key to this new file instead of printing it
        #[arg(long, value_name = "FILE", conflicts_with = "psk")]
        out: Option<PathBuf>,
        /// Replace an existing --out FILE (its peers then need the new
        /// public key)
        #[arg(long, requires = "out")]
        force: bool,
        /// Generate a pre-shared key (the same value goes into the client's
        /// file and into the gateway's [[client]] entry)
        #[arg(long)]
        psk: bool,
    },
    /// Run the client daemon: bond the configured links into a tunnel
    Client {
        /// The client's config file (see deploy/client.toml)
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Only check the config file and print what it means, then exit
        #[arg(long, conflicts_with = "down")]
        check: bool,
        /// Remove the routes and rules a client with this config installs,
        /// kill switch included (after a crash, or to lift the kill switch
        /// while the daemon is stopped), then exit
        #[arg(long)]
        down: bool,
    },
    /// Run the gateway daemon: serve the configured clients
    Gateway {
        /// The gateway's config file (see deploy/gateway.toml)
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Only check the config file and print what it means, then exit
        #[arg(long)]
        check: bool,
    },
    /// Show a running daemon's links: state, RTT, loss, traffic
    Status {
        /// The daemon's status socket [default: /run/circus-node/client.sock,
        /// else /run/circus-node/gateway.sock]
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Print the raw JSON report
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("circus-node: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Keygen { out, force, psk } => keygen(out, force, psk),
        Command::Client {
            config,
            check,
            down,
        } => {
            let config = ClientConfig::load(&config).map_err(|e| e.to_string())?;
            if check {
                print!("{}", describe_client(&config));
                return Ok(());
            }
            if down {
                return runtime()?
                    .block_on(circus_node::routing::down(&config.routing))
                    .map_err(|e| e.to_string());
            }
            daemon(circus_node::run_client(config, shutdown_signal()))
        }
        Command::Gateway { config, check } => {
            let config = GatewayConfig::load(&config).map_err(|e| e.to_string())?;
            if check {
                print!("{}", describe_gateway(&config));
                return Ok(());
            }
            daemon(circus_node::run_gateway(config, shutdown_signal()))
        }
        Command::Status { socket, json } => {
            let report = match socket {
                Some(path) => status::query(&path).map_err(|e| e.to_string())?,
                None => {
                    let client = default_status_socket(Role::Client);
                    let gateway = default_status_socket(Role::Gateway);
                    status::query(&client)
                        .or_else(|_| status::query(&gateway))
                        .map_err(|_| {
                            format!(
                                "no daemon answers at {} or {} (is one running? see --socket)",
                                client.display(),
                                gateway.display()
                            )
                        })?
                }
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", status::render(&report));
            }
            Ok(())
        }
    }
}

/// What a client config means, for `--check`: derived values included.
fn describe_client(config: &ClientConfig) -> String {
    let mut out = format!(
        "client, public key {}\ngateway key {}\npolicy {}\ntun {} {} mtu {}{}\n",
        config.private_key.public_key(),
        config.gateway_public_key,
        config.policy,
        config.tun.name,
        config.tun.address,
        tun_device::tun_mtu(&config.tun, &config.links),
        if config.tun.mtu.is_some() {
            ""
        } else {
            " (derived from the links)"
        },
    );
    for (i, link) in config.links.iter().enumerate() {
        out += &format!(
            "link {i} {}: interface {} to {}{} (mtu {})\n",
            link.name,
            link.interface,
            link.gateway,
            link.gateway_host
                .as_ref()
                .map_or(String::new(), |h| format!(" ({h})")),
            link.mtu
        );
    }
    let routing = &config.routing;
    if !routing.routes.is_empty() {
        out += &format!(
            "routes {} in table {}{}\n",
            list(&routing.routes),
            routing.table,
            if routing.kill_switch {
                ", kill switch on"
            } else {
                ""
            }
        );
    }
    if !routing.dns.is_empty() {
        out += &format!("dns {}\n", list(&routing.dns));
    }
    out + &describe_observe(&config.observe)
}

fn list<T: ToString>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    items.join(", ")
}

/// What a gateway config means, for `--check`.
fn describe_gateway(config: &GatewayConfig) -> String {
    let mut out = format!(
        "gateway, public key {}\nlisten {}\npolicy {}\ntun {} {} mtu {}\nnat {}\n",
        config.private_key.public_key(),
        config.listen,
        config.policy,
        config.tun.name,
        config.tun.address,
        tun_device::gateway_tun_mtu(&config.tun),
        if config.nat { "on" } else { "off" },
    );
    for client in &config.clients {
        out += &format!(
            "client {}: key {}, routes {}\n",
            client.name,
            client.public_key,
            list(&client.tunnel_addresses)
        );
    }
    out + &describe_observe(&config.observe)
}

fn describe_observe(observe: &ObserveConfig) -> String {
    let show = |v: Option<String>| v.unwrap_or_else(|| "off".to_owned());
    format!(
        "status socket {}\nmetrics {}\n",
        show(
            observe
                .status_socket
                .as_ref()
                .map(|p| p.display().to_string())
        ),
        show(
            observe
                .metrics_listen
                .map(|a| format!("http://{a}/metrics"))
        ),
    )
}

fn keygen(out: Option<PathBuf>, force: bool, psk: bool) -> Result<(), String> {
    if psk {
        println!(
            "preshared_key = \"{}\"",
            keys::generate_psk().map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let (secret, public) = keys::generate_keypair().map_err(|e| e.to_string())?;
    match out {
        Some(path) => {
            keys::write_secret_file(&path, &secret, force).map_err(|e| e.to_string())?;
            println!("public_key = \"{public}\"");
        }
        None => println!("private_key = \"{secret}\"\npublic_key = \"{public}\""),
    }
    Ok(())
}

/// Runs a daemon on one thread: the engine is a single state machine, so a
/// current-thread runtime is all it needs and leaves the other cores to
/// the kernel's packet work.
fn daemon(run: impl Future<Output = Result<(), circus_node::NodeError>>) -> Result<(), String> {
    circus_node::logs::init_stderr_logs("info");
    runtime()?.block_on(run).map_err(|e| e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Resolves on SIGINT or SIGTERM (systemd's stop).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
