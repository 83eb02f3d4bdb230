//! `circus`: the real circus-node client in the client namespace and the
//! gateway in the gateway namespace, one tunnel link per emulated link. The
//! client routes the server's subnet into its TUN device, so the probe
//! stream and the TCP flows cross the tunnel; the gateway forwards them on
//! to the server.
//!
//! The daemons run through their library entry points on namespace threads
//! (exactly the code the binary runs), so a lab run needs no installed
//! binary and a failing daemon's error reaches the report.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use circus_core::crypto::generate_keypair;
use circus_core::scheduler::Policy;
use circus_node::config::{
    ClientConfig, GatewayConfig, Ipv4Prefix, LinkConfig, ObserveConfig, PeerEntry, TunConfig,
};
use circus_node::status::{self, StatusReport};
use tokio::sync::oneshot;

use super::{SystemError, SystemUnderTest, TrafficPlan};
use crate::scenario::Scenario;
use crate::topology::addressing::{SERVER_SUBNET, SUBNET_PREFIX_LEN};
use crate::topology::{NetnsThread, NextHop, Role, Topology};

/// The gateway's UDP port on every link address.
const GATEWAY_PORT: u16 = 51820;
/// The client's TUN device.
const CLIENT_TUN: &str = "circus0";
const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
const GATEWAY_TUNNEL: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
/// How long the handshake and the first probes of every link may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// One daemon on its namespace thread, stopped on drop.
struct Daemon {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<NetnsThread<Result<(), String>>>,
    status_socket: PathBuf,
}

impl Daemon {
    /// Runs `daemon` (given the shutdown future) on a new thread in `role`'s
    /// namespace inside a current-thread tokio runtime, as the binary does.
    fn spawn<F, Fut>(
        topology: &Topology,
        role: Role,
        status_socket: PathBuf,
        daemon: F,
    ) -> Result<Daemon, SystemError>
    where
        F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), circus_node::NodeError>>,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = topology
            .netns(role)
            .spawn("circus-node", move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                let shutdown = Box::pin(async move {
                    let _ = stopped.await;
                });
                runtime
                    .block_on(daemon(shutdown))
                    .map_err(|e| e.to_string())
            })
            .map_err(crate::topology::TopologyError::from)?;
        Ok(Daemon {
            stop: Some(stop),
            thread: Some(thread),
            status_socket,
        })
    }

    /// Stops the daemon and returns how its run ended.
    fn stop(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|e| e.to_string())?,
            None => Ok(()),
        }
    }

    fn has_exited(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The circus system.
#[derive(Default)]
pub struct Circus {
    gateway: Option<Daemon>,
    client: Option<Daemon>,
}

impl SystemUnderTest for Circus {
    fn start(
        &mut self,
        topology: &Topology,
        scenario: &Scenario,
    ) -> Result<TrafficPlan, SystemError> {
        let failed = |message: String| SystemError::Failed {
            system: "circus",
            message,
        };
        let policy = match &scenario.policy {
            Some(name) => name.parse::<Policy>().map_err(|e| failed(e.to_string()))?,
            None => Policy::default(),
        };
        let (gateway_secret, gateway_public) =
            generate_keypair().map_err(|e| failed(e.to_string()))?;
        let (client_secret, client_public) =
            generate_keypair().map_err(|e| failed(e.to_string()))?;
        let socket_dir = std::env::temp_dir();
        let prefix = topology.prefix().to_string();
        let observe = |role: &str| ObserveConfig {
            status_socket: Some(socket_dir.join(format!("{prefix}-{role}.sock"))),
            metrics_listen: None,
        };
        let tunnel_net = |addr| Ipv4Prefix { addr, len: 10 };

        let gateway_config = GatewayConfig {
            private_key: gateway_secret,
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, GATEWAY_PORT)),
            policy,
            tun: TunConfig {
                name: "circus-gw".into(),
                address: tunnel_net(GATEWAY_TUNNEL),
                mtu: None,
            },
            observe: observe("gateway"),
            clients: vec![PeerEntry {
                name: "lab-client".into(),
                public_key: client_public,
                preshared_key: circus_node::keys::no_psk(),
                tunnel_addresses: vec![
                    format!("{CLIENT_TUNNEL}/32")
                        .parse()
                        .map_err(|e| failed(format!("tunnel address: {e:?}")))?,
                ],
            }],
        };
        let client_config = ClientConfig {
            private_key: client_secret,
            gateway_public_key: gateway_public,
            preshared_key: circus_node::keys::no_psk(),
            policy,
            tun: TunConfig {
                name: CLIENT_TUN.into(),
                address: tunnel_net(CLIENT_TUNNEL),
                mtu: None,
            },
            observe: observe("client"),
            links: topology
                .links()
                .iter()
                .zip(&scenario.links)
                .map(|(link, spec)| LinkConfig {
                    name: spec.name.clone(),
                    interface: link.client_interface.clone(),
                    gateway: SocketAddr::from((link.gateway_address, GATEWAY_PORT)),
                    mtu: 1500,
                })
                .collect(),
        };

        let gateway_socket = gateway_config
            .observe
            .status_socket
            .clone()
            .unwrap_or_default();
        self.gateway = Some(Daemon::spawn(
            topology,
            Role::Gateway,
            gateway_socket,
            move |stop| circus_node::run_gateway(gateway_config, stop),
        )?);
        let client_socket = client_config
            .observe
            .status_socket
            .clone()
            .unwrap_or_default();
        let client = Daemon::spawn(topology, Role::Client, client_socket, move |stop| {
            circus_node::run_client(client_config, stop)
        })?;
        let links = topology.links().len();
        let ready = wait_for(&client, |report| {
            report
                .sessions
                .iter()
                .any(|s| s.connected && s.links.iter().filter(|l| l.state == "up").count() == links)
        });
        self.client = Some(client);
        ready.map_err(failed)?;
        topology.route_client(
            SERVER_SUBNET,
            SUBNET_PREFIX_LEN,
            NextHop::Device(CLIENT_TUN.into()),
            10,
        )?;
        Ok(TrafficPlan::routed())
    }

    fn stop(&mut self) -> Result<(), SystemError> {
        let failed = |message| SystemError::Failed {
            system: "circus",
            message,
        };
        // Diagnosis: CIRCUS_LAB_STATUS=1 prints both daemons' status (drop
        // counters, per-link traffic) at the end of each run.
        if std::env::var_os("CIRCUS_LAB_STATUS").is_some() {
            for daemon in [&self.client, &self.gateway].into_iter().flatten() {
                match status::query(&daemon.status_socket) {
                    Ok(report) => eprintln!("{}", status::render(&report)),
                    Err(e) => eprintln!("status: {e}"),
                }
            }
        }
        let client = self.client.take().map_or(Ok(()), |mut d| d.stop());
        let gateway = self.gateway.take().map_or(Ok(()), |mut d| d.stop());
        client.map_err(|e| failed(format!("client: {e}")))?;
        gateway.map_err(|e| failed(format!("gateway: {e}")))
    }
}

/// Polls the daemon's status until `ready` holds, the daemon exits, or
/// [`CONNECT_LIMIT`] passes; the error describes the last status seen.
fn wait_for(daemon: &Daemon, ready: impl Fn(&StatusReport) -> bool) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let report = status::query(&daemon.status_socket);
        if let Ok(report) = &report
            && ready(report)
        {
            return Ok(());
        }
        if daemon.has_exited() {
            return Err("the client daemon exited during start-up".into());
        }
        if start.elapsed() > CONNECT_LIMIT {
            return Err(match report {
                Ok(report) => format!(
                    "not connected on every link after {CONNECT_LIMIT:?}:\n{}",
                    status::render(&report)
                ),
                Err(e) => format!("no status after {CONNECT_LIMIT:?}: {e}"),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
