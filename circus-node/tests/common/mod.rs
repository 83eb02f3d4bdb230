//! Shared scaffolding of the real-namespace tests: namespaces, veth links,
//! daemons on namespace threads, and traffic helpers.
//!
//! Namespaces are named `cnd-<pid>-<tag>` (`cnd` replaced by
//! `$CIRCUS_NETNS_PREFIX` if set) and deleted on drop; a run that
//! was killed leaves names whose pid is dead, which the next run sweeps.
//! Set-up uses the `ip` command (test-only; the daemon itself needs none).
#![allow(dead_code)] // each test binary uses a different part

pub mod capture;
pub mod junk;
pub mod ping;

use circus_core::crypto::{PublicKey, StaticSecret, generate_keypair};
use circus_node::config::{
    ClientConfig, GatewayConfig, Ipv4Prefix, LinkConfig, ObserveConfig, PeerEntry, TunAddresses,
    TunConfig,
};
pub use circus_node::embed::{DaemonJob, EmbedError};
use circus_node::status::StatusReport;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Whether the namespace tests can run here. Without root (or without the
/// `ip` command) they print why and pass, unless CIRCUS_REQUIRE_NETNS=1
/// says this environment must run them.
pub fn require_netns() -> bool {
    let reason = if !nix::unistd::Uid::effective().is_root() {
        Some("not root (network namespaces need CAP_NET_ADMIN)")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("the `ip` command (iproute2) is missing")
    } else if !std::path::Path::new("/dev/net/tun").exists() {
        Some("/dev/net/tun is missing")
    } else {
        None
    };
    match reason {
        None => true,
        Some(why) if std::env::var("CIRCUS_REQUIRE_NETNS").as_deref() == Ok("1") => {
            panic!("CIRCUS_REQUIRE_NETNS=1 but {why}")
        }
        Some(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// Runs `ip` with `args`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted (with its interfaces) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        sweep_stale();
        let name = format!("{}-{}-{tag}", name_start(), std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <name> ...`
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// `ip netns exec <name> sysctl -q -w <setting>`
    pub fn sysctl(&self, setting: &str) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sysctl", "-q", "-w", setting])
            .output()
            .expect("run sysctl");
        assert!(
            out.status.success(),
            "sysctl {setting}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `f` on a new thread inside this namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
    }

    /// Runs `f` inside this namespace and waits for it.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn(f).join().expect("namespace thread panicked")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn enter(path: &str) {
    let file = std::fs::File::open(path).expect("open netns");
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// The start of this process's namespace names.
fn name_start() -> String {
    std::env::var("CIRCUS_NETNS_PREFIX").unwrap_or_else(|_| "cnd".to_owned())
}

/// Deletes `cnd-<pid>-*` namespaces of processes that no longer exist.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&format!("{}-", name_start()))
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
        }
    }
}

/// A veth pair `a` (in `ns_a`) <-> `b` (in `ns_b`), addressed
/// 198.18.`subnet`.2/24 on the client side and .1 on the gateway side,
/// with offloads left alone (the tunnel does not care).
pub fn veth(client: &Netns, a: &str, gateway: &Netns, b: &str, subnet: u8) {
    veth_addressed(
        client,
        a,
        gateway,
        b,
        [
            &format!("198.18.{subnet}.2/24"),
            &format!("198.18.{subnet}.1/24"),
        ],
    );
}

/// A veth pair `a` (in `client`) <-> `b` (in `gateway`), up, with
/// `addrs[0]` on `a` and `addrs[1]` on `b` (IPv6 ones without duplicate
/// address detection, which would hold them back for a second).
pub fn veth_addressed(client: &Netns, a: &str, gateway: &Netns, b: &str, addrs: [&str; 2]) {
    client.ip(&[
        "link",
        "add",
        a,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        &gateway.name,
    ]);
    for (ns, dev, addr) in [(client, a, addrs[0]), (gateway, b, addrs[1])] {
        let mut args = vec!["addr", "add", addr, "dev", dev];
        if addr.contains(':') {
            args.push("nodad");
        }
        ns.ip(&args);
        ns.ip(&["link", "set", dev, "up"]);
    }
}

pub const GATEWAY_PORT: u16 = 51820;
pub const GATEWAY_TUNNEL: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);

/// Keys and addresses of one client.
pub struct ClientIdentity {
    pub secret: StaticSecret,
    pub public: PublicKey,
    pub tunnel: Ipv4Addr,
}

impl ClientIdentity {
    pub fn new(host: u8) -> Self {
        let (secret, public) = generate_keypair().expect("keypair");
        ClientIdentity {
            secret,
            public,
            tunnel: Ipv4Addr::new(100, 64, 0, host),
        }
    }
}

static SOCKETS: AtomicUsize = AtomicUsize::new(0);

/// A status socket path unique to this process and call.
pub fn status_path(tag: &str) -> PathBuf {
    let n = SOCKETS.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("cnd-{}-{tag}-{n}.sock", std::process::id()))
}

pub fn gateway_config(secret: &StaticSecret, clients: &[&ClientIdentity]) -> GatewayConfig {
    GatewayConfig {
        private_key: secret.clone(),
        listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, GATEWAY_PORT)),
        policy: Default::default(),
        nat: false,
        tun: TunConfig {
            name: "cnd-gw".into(),
            address: TunAddresses::v4(Ipv4Prefix {
                addr: GATEWAY_TUNNEL,
                len: 24,
            }),
            mtu: None,
        },
        observe: ObserveConfig {
            status_socket: Some(status_path("gw")),
            metrics_listen: None,
        },
        clients: clients
            .iter()
            .enumerate()
            .map(|(i, c)| PeerEntry {
                name: format!("client{i}"),
                public_key: c.public,
                preshared_key: circus_node::keys::no_psk(),
                tunnel_addresses: vec![c.tunnel.to_string().parse().unwrap()],
            })
            .collect(),
    }
}

/// A client with one link per `(interface, subnet)`, each sending to the
/// gateway's address on that subnet.
pub fn client_config(
    id: &ClientIdentity,
    gateway: PublicKey,
    links: &[(&str, u8)],
) -> ClientConfig {
    ClientConfig {
        private_key: id.secret.clone(),
        gateway_public_key: gateway,
        preshared_key: circus_node::keys::no_psk(),
        policy: Default::default(),
        site_subnets: Vec::new(),
        routing: Default::default(),
        tun: TunConfig {
            name: "cnd-tun".into(),
            address: TunAddresses::v4(Ipv4Prefix {
                addr: id.tunnel,
                len: 24,
            }),
            mtu: None,
        },
        observe: ObserveConfig {
            status_socket: Some(status_path("client")),
            metrics_listen: None,
        },
        links: links
            .iter()
            .map(|(interface, subnet)| LinkConfig {
                name: interface.to_string(),
                interface: interface.to_string(),
                gateway: SocketAddr::from((Ipv4Addr::new(198, 18, *subnet, 1), GATEWAY_PORT)),
                gateway_host: None,
                mtu: 1500,
            })
            .collect(),
    }
}

pub use circus_node::embed::Daemon;

/// Starts a client in `ns` and waits until its status socket answers.
pub fn start_client(ns: &Netns, config: ClientConfig) -> Daemon {
    started(Daemon::client(config, in_netns(ns)))
}

/// Starts a gateway in `ns` and waits until its status socket answers.
pub fn start_gateway(ns: &Netns, config: GatewayConfig) -> Daemon {
    started(Daemon::gateway(config, in_netns(ns)))
}

pub fn in_netns(ns: &Netns) -> impl FnOnce(DaemonJob) -> Result<(), Infallible> + '_ {
    move |job| {
        ns.spawn(job);
        Ok(())
    }
}

fn started(daemon: Result<Daemon, EmbedError>) -> Daemon {
    let daemon = daemon.unwrap_or_else(|e| panic!("{e}"));
    daemon.wait("status socket answers", Duration::from_secs(10), |_| true);
    daemon
}

/// The tests' waits: a failed wait panics with the helper's error.
pub trait Wait {
    /// [`Daemon::wait_until`], panicking on failure.
    fn wait(
        &self,
        what: &str,
        limit: Duration,
        ready: impl Fn(&StatusReport) -> bool,
    ) -> StatusReport;

    /// Waits until every session is connected and has a link judged up
    /// (links start out probing and carry data only once up).
    fn wait_connected(&self) -> StatusReport {
        self.wait("the session to connect", Duration::from_secs(10), |r| {
            r.sessions
                .iter()
                .all(|s| s.connected && s.links.iter().any(|l| l.state == "up"))
        })
    }
}

impl Wait for Daemon {
    fn wait(
        &self,
        what: &str,
        limit: Duration,
        ready: impl Fn(&StatusReport) -> bool,
    ) -> StatusReport {
        self.wait_until(what, limit, ready)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A UDP echo server in `ns` on `addr`, answering until the namespace goes.
pub fn udp_echo(ns: &Netns, addr: SocketAddr) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    ns.spawn(move || {
        let socket = std::net::UdpSocket::bind(addr).expect("bind echo");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 65536];
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(&buf[..n], from);
            }
        }
    });
    ready_rx.recv().expect("echo server started");
}

/// Outcome of an echo stream.
#[derive(Debug, Clone, Copy)]
pub struct EchoResult {
    pub sent: u32,
    pub received: u32,
    /// Largest gap between consecutive answers.
    pub max_gap: Duration,
}

/// Sends `count` sequenced datagrams of `size` bytes to `to` at `rate_pps`
/// from inside `ns`, and counts the distinct answers (duplicates would be a
/// bug, and are counted once).
pub fn echo_stream(
    ns: &Netns,
    to: SocketAddr,
    count: u32,
    rate_pps: u32,
    size: usize,
) -> EchoResult {
    ns.run(move || {
        let any = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
        let socket = std::net::UdpSocket::bind(any).unwrap();
        let mut seen = vec![false; count as usize];
        let mut received = 0;
        let mut buf = vec![0u8; 65536];
        let mut payload = vec![0u8; size.max(8)];
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate_pps));
        let start = Instant::now();
        let end = start + interval * count + Duration::from_secs(2);
        let mut last_answer = start;
        let mut max_gap = Duration::ZERO;
        let mut next = 0u32;
        while received < count {
            let now = Instant::now();
            if next < count && now >= start + interval * next {
                payload[..4].copy_from_slice(&next.to_be_bytes());
                let _ = socket.send_to(&payload, to);
                next += 1;
                continue;
            }
            let wake = if next < count {
                start + interval * next
            } else {
                end
            };
            let Some(wait) = wake.checked_duration_since(now).filter(|w| !w.is_zero()) else {
                if next == count {
                    break;
                }
                continue;
            };
            // Blocking receive until the next send is due: no busy polling
            // competing with the daemons for the CPU.
            socket.set_read_timeout(Some(wait)).unwrap();
            let Ok((n, _)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if n >= 4 {
                let seq = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
                if seq < seen.len() && !seen[seq] {
                    seen[seq] = true;
                    received += 1;
                    let now = Instant::now();
                    max_gap = max_gap.max(now - last_answer);
                    last_answer = now;
                }
            }
        }
        EchoResult {
            sent: count,
            received,
            max_gap,
        }
    })
}
