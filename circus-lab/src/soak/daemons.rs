//! The circus system as two processes: the `circus-node` binary, run as
//! `circus-node client|gateway -c FILE` inside the client and gateway
//! namespaces, with the configs the lab's embedded circus uses
//! ([`crate::systems::circus`]) written out as TOML. A soak needs its own
//! processes: resident memory and open descriptors are per process, and
//! the embedded daemons share the lab's.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use toml::{Table, Value};

use circus_node::config::{ClientConfig, GatewayConfig, ObserveConfig, TunConfig};
use circus_node::status;

use crate::scenario::Scenario;
use crate::systems::circus::{CLIENT_TUN, CONNECT_LIMIT, every_link_up, lab_configs};
use crate::systems::{SystemError, SystemUnderTest, TrafficPlan};
use crate::topology::addressing::{SERVER_SUBNET, SUBNET_PREFIX_LEN};
use crate::topology::{NextHop, Role, Topology};

/// How long a daemon has to exit after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(5);
/// How often start-up asks the client's status.
const POLL: Duration = Duration::from_millis(50);

/// A daemon process the soak watches.
#[derive(Clone, Debug)]
pub struct Watched {
    /// "client" or "gateway".
    pub role: &'static str,
    pub pid: u32,
    pub status_socket: PathBuf,
}

/// The circus client and gateway as `circus-node` processes.
pub struct NodeProcesses {
    /// The `circus-node` binary.
    node: PathBuf,
    /// Where the configs and the daemons' logs go.
    dir: PathBuf,
    /// Filled by `start`: the client, then the gateway.
    watched: Arc<OnceLock<[Watched; 2]>>,
    running: Vec<NodeProcess>,
}

impl NodeProcesses {
    /// `watched` is filled with the two processes once they run.
    pub fn new(node: PathBuf, dir: PathBuf, watched: Arc<OnceLock<[Watched; 2]>>) -> Self {
        NodeProcesses {
            node,
            dir,
            watched,
            running: Vec::new(),
        }
    }

    /// Writes `role`'s config and starts its daemon in `role`'s namespace.
    fn spawn(
        &mut self,
        topology: &Topology,
        role: Role,
        config: &Table,
        status_socket: &Path,
    ) -> Result<Watched, SystemError> {
        let name = role.as_str();
        let io = |what: String| {
            move |source| SystemError::Io {
                system: "circus",
                what,
                source,
            }
        };
        let file = self.dir.join(format!("{name}.toml"));
        std::fs::write(&file, config.to_string())
            .map_err(io(format!("write {}", file.display())))?;
        let log = self.dir.join(format!("{name}.log"));
        let stderr = File::create(&log).map_err(io(format!("create {}", log.display())))?;
        // `ip netns exec` execs the daemon, so the child's pid is the daemon's.
        let child = Command::new("ip")
            .args(["netns", "exec", topology.netns(role).name()])
            .arg(&self.node)
            .args([name, "--config"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(io(format!("start {} {name}", self.node.display())))?;
        let watched = Watched {
            role: name,
            pid: child.id(),
            status_socket: status_socket.to_owned(),
        };
        self.running.push(NodeProcess {
            role: name,
            child,
            log,
            status_socket: status_socket.to_owned(),
        });
        Ok(watched)
    }
}

impl SystemUnderTest for NodeProcesses {
    fn start(
        &mut self,
        topology: &Topology,
        scenario: &Scenario,
    ) -> Result<TrafficPlan, SystemError> {
        let failed = |message: String| SystemError::Failed {
            system: "circus",
            message,
        };
        let (gateway_config, client_config) = lab_configs(topology, scenario)?;
        let socket = |observe: &ObserveConfig| {
            observe
                .status_socket
                .clone()
                .ok_or_else(|| failed("the lab's configs name a status socket".into()))
        };
        let (gateway_socket, client_socket) = (
            socket(&gateway_config.observe)?,
            socket(&client_config.observe)?,
        );
        let gateway = self.spawn(
            topology,
            Role::Gateway,
            &gateway_toml(&gateway_config),
            &gateway_socket,
        )?;
        let client = self.spawn(
            topology,
            Role::Client,
            &client_toml(&client_config),
            &client_socket,
        )?;
        let links = topology.links().len();
        let started = Instant::now();
        loop {
            if status::query(&client_socket).is_ok_and(|r| every_link_up(&r, links)) {
                break;
            }
            for process in &mut self.running {
                if let Some(exit) = process.child.try_wait().ok().flatten() {
                    return Err(failed(process.exited(exit)));
                }
            }
            if started.elapsed() > CONNECT_LIMIT {
                return Err(failed(format!(
                    "the client's links were not all up after {CONNECT_LIMIT:?}; see {}",
                    self.dir.display()
                )));
            }
            std::thread::sleep(POLL);
        }
        let _ = self.watched.set([client, gateway]);
        topology.route_client(
            SERVER_SUBNET,
            SUBNET_PREFIX_LEN,
            NextHop::Device(CLIENT_TUN.into()),
            10,
        )?;
        Ok(TrafficPlan::routed())
    }

    fn stop(&mut self) -> Result<(), SystemError> {
        // Both are stopped before either's failure is reported.
        let outcomes: Vec<_> = self.running.drain(..).map(NodeProcess::stop).collect();
        outcomes
            .into_iter()
            .collect::<Result<Vec<()>, String>>()
            .map(drop)
            .map_err(|message| SystemError::Failed {
                system: "circus",
                message,
            })
    }
}

/// A running daemon; terminated when dropped, so a failed start leaves no
/// process behind.
struct NodeProcess {
    role: &'static str,
    child: Child,
    log: PathBuf,
    status_socket: PathBuf,
}

impl NodeProcess {
    fn exited(&self, status: ExitStatus) -> String {
        format!(
            "the {} daemon exited ({status}); see {}",
            self.role,
            self.log.display()
        )
    }

    /// SIGTERM, then SIGKILL after [`STOP_LIMIT`]; an error unless the
    /// daemon was still running and exited cleanly on SIGTERM.
    fn stop(mut self) -> Result<(), String> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<(), String> {
        if let Some(status) = self.child.try_wait().ok().flatten() {
            return Err(self.exited(status));
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_LIMIT;
        let outcome = loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => break Ok(()),
                Ok(Some(status)) => break Err(self.exited(status)),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break Err(format!(
                        "the {} daemon did not stop within {STOP_LIMIT:?} of SIGTERM",
                        self.role
                    ));
                }
            }
        };
        // The daemon removes its socket on a clean exit; not when killed.
        let _ = std::fs::remove_file(&self.status_socket);
        outcome
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.terminate();
        }
    }
}

/// `gateway.toml` for `config`.
pub fn gateway_toml(config: &GatewayConfig) -> Table {
    let mut file = common(
        &config.private_key.to_string(),
        &config.policy.to_string(),
        &config.tun,
        &config.observe,
    );
    file.insert("listen".into(), config.listen.to_string().into());
    let clients = config.clients.iter().map(|client| {
        let mut table = Table::new();
        table.insert("name".into(), client.name.clone().into());
        table.insert("public_key".into(), client.public_key.to_string().into());
        table.insert(
            "preshared_key".into(),
            client.preshared_key.to_string().into(),
        );
        let addresses = client.tunnel_addresses.iter().map(ToString::to_string);
        table.insert(
            "tunnel_addresses".into(),
            Value::Array(addresses.map(Value::from).collect()),
        );
        Value::Table(table)
    });
    file.insert("client".into(), Value::Array(clients.collect()));
    file
}

/// `client.toml` for `config`.
pub fn client_toml(config: &ClientConfig) -> Table {
    let mut file = common(
        &config.private_key.to_string(),
        &config.policy.to_string(),
        &config.tun,
        &config.observe,
    );
    file.insert(
        "gateway_public_key".into(),
        config.gateway_public_key.to_string().into(),
    );
    file.insert(
        "preshared_key".into(),
        config.preshared_key.to_string().into(),
    );
    if !config.site_subnets.is_empty() {
        let subnets = config
            .site_subnets
            .iter()
            .map(|r| Value::from(r.to_string()));
        file.insert("site_subnets".into(), Value::Array(subnets.collect()));
    }
    let links = config.links.iter().map(|link| {
        let mut table = Table::new();
        table.insert("name".into(), link.name.clone().into());
        table.insert("interface".into(), link.interface.clone().into());
        let gateway = match &link.gateway_host {
            Some(host) => format!("{host}:{}", link.gateway.port()),
            None => link.gateway.to_string(),
        };
        table.insert("gateway".into(), gateway.into());
        table.insert("mtu".into(), i64::from(link.mtu).into());
        Value::Table(table)
    });
    file.insert("link".into(), Value::Array(links.collect()));
    file
}

/// The keys both files have.
fn common(private_key: &str, policy: &str, tun: &TunConfig, observe: &ObserveConfig) -> Table {
    let mut file = Table::new();
    file.insert("private_key".into(), private_key.into());
    file.insert("policy".into(), policy.into());
    let mut tun_table = Table::new();
    tun_table.insert("name".into(), tun.name.clone().into());
    let addresses = tun.address.entries().into_iter().map(Value::from);
    tun_table.insert("address".into(), Value::Array(addresses.collect()));
    if let Some(mtu) = tun.mtu {
        tun_table.insert("mtu".into(), i64::from(mtu).into());
    }
    file.insert("tun".into(), Value::Table(tun_table));
    let mut observe_table = Table::new();
    if let Some(socket) = &observe.status_socket {
        observe_table.insert("status_socket".into(), socket.display().to_string().into());
    }
    if let Some(listen) = observe.metrics_listen {
        observe_table.insert("metrics_listen".into(), listen.to_string().into());
    }
    file.insert("observe".into(), Value::Table(observe_table));
    file
}

#[cfg(test)]
mod tests {
    use super::*;
    use circus_core::crypto::generate_keypair;
    use circus_core::scheduler::Policy;
    use circus_node::config::{LinkConfig, PeerEntry, TunAddresses};
    use std::net::{Ipv4Addr, SocketAddr};

    fn tun(last: u8) -> TunConfig {
        TunConfig {
            name: format!("circus{last}"),
            address: TunAddresses {
                v4: Some(format!("100.64.0.{last}/10").parse().unwrap()),
                v6: Some(format!("fd00:64::{last}/64").parse().unwrap()),
            },
            mtu: Some(1400),
        }
    }

    fn observe(role: &str) -> ObserveConfig {
        ObserveConfig {
            status_socket: Some(PathBuf::from(format!("/tmp/a \"quoted\" dir/{role}.sock"))),
            metrics_listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 9100))),
        }
    }

    /// What the lab writes, the daemon reads back as the same settings.
    #[test]
    fn configs_written_as_toml_parse_back_to_themselves() {
        let (gateway_secret, gateway_public) = generate_keypair().unwrap();
        let (client_secret, client_public) = generate_keypair().unwrap();
        let psk = circus_node::keys::generate_psk().unwrap();
        let policy: Policy = "redundant".parse().unwrap();
        let client = ClientConfig {
            private_key: client_secret,
            gateway_public_key: gateway_public,
            preshared_key: psk.clone(),
            policy,
            site_subnets: vec!["10.20.0.0/16".parse().unwrap()],
            routing: Default::default(),
            tun: tun(2),
            observe: observe("client"),
            links: (0..2)
                .map(|i| LinkConfig {
                    name: format!("link{i}"),
                    interface: format!("veth{i}"),
                    gateway: SocketAddr::from((Ipv4Addr::new(198, 18, i, 1), 51820)),
                    gateway_host: None,
                    mtu: 1500 - u16::from(i),
                })
                .collect(),
        };
        let gateway = GatewayConfig {
            private_key: gateway_secret,
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 51820)),
            policy,
            nat: false,
            tun: tun(1),
            observe: observe("gateway"),
            clients: vec![PeerEntry {
                name: "lab-client".into(),
                public_key: client_public,
                preshared_key: psk,
                tunnel_addresses: vec!["100.64.0.2/32".parse().unwrap()],
            }],
        };
        let path = Path::new("test.toml");
        let read = ClientConfig::parse(path, &client_toml(&client).to_string()).unwrap();
        assert_eq!(read.private_key.to_string(), client.private_key.to_string());
        assert_eq!(read.gateway_public_key, client.gateway_public_key);
        assert_eq!(
            read.preshared_key.to_string(),
            client.preshared_key.to_string()
        );
        assert_eq!(read.policy, client.policy);
        assert_eq!(read.site_subnets, client.site_subnets);
        assert_eq!(read.tun, client.tun);
        assert_eq!(read.observe, client.observe);
        assert_eq!(read.links, client.links);

        let read = GatewayConfig::parse(path, &gateway_toml(&gateway).to_string()).unwrap();
        assert_eq!(
            read.private_key.to_string(),
            gateway.private_key.to_string()
        );
        assert_eq!(read.listen, gateway.listen);
        assert_eq!(read.policy, gateway.policy);
        assert_eq!(read.tun, gateway.tun);
        assert_eq!(read.observe, gateway.observe);
        let (a, b) = (&read.clients[0], &gateway.clients[0]);
        assert_eq!((&a.name, &a.public_key), (&b.name, &b.public_key));
        assert_eq!(a.preshared_key.to_string(), b.preshared_key.to_string());
        assert_eq!(a.tunnel_addresses, b.tunnel_addresses);
    }
}
