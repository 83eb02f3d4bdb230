//! `circus`: the real circus-node client in the client namespace and the
//! gateway in the gateway namespace, one tunnel link per emulated link. The
//! client routes the server's subnet into its TUN device, so the probe
//! stream and the TCP flows cross the tunnel; the gateway forwards them on
//! to the server.
//!
//! The daemons run through `circus_node::embed` on namespace threads
//! (exactly the code the binary runs), so a lab run needs no installed
//! binary and a failing daemon's error reaches the report.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use circus_core::crypto::generate_keypair;
use circus_core::scheduler::Policy;
use circus_node::config::{
    ClientConfig, GatewayConfig, Ipv4Prefix, LinkConfig, ObserveConfig, PeerEntry, TunAddresses,
    TunConfig,
};
use circus_node::embed::{Daemon, DaemonJob, EmbedError};
use circus_node::status;

use super::{SystemError, SystemUnderTest, TrafficPlan};
use crate::scenario::Scenario;
use crate::topology::addressing::{SERVER_SUBNET, SUBNET_PREFIX_LEN};
use crate::topology::{NextHop, Role, Topology};

/// The gateway's UDP port on every link address.
const GATEWAY_PORT: u16 = 51820;
/// The client's TUN device.
pub(crate) const CLIENT_TUN: &str = "circus0";
const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
const GATEWAY_TUNNEL: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
/// How long the handshake and the first probes of every link may take.
pub(crate) const CONNECT_LIMIT: Duration = Duration::from_secs(10);

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
        let (gateway_config, client_config) = lab_configs(topology, scenario)?;
        // Each daemon lives on a thread inside its role's namespace.
        let in_netns =
            |role| move |job: DaemonJob| topology.netns(role).spawn("circus-node", job).map(drop);
        let embed_failed = |e: EmbedError| failed(e.to_string());
        let gateway = Daemon::gateway(gateway_config, in_netns(Role::Gateway));
        self.gateway = Some(gateway.map_err(embed_failed)?);
        let client = Daemon::client(client_config, in_netns(Role::Client));
        let client = self.client.insert(client.map_err(embed_failed)?);
        let links = topology.links().len();
        client
            .wait_until("every link to come up", CONNECT_LIMIT, |report| {
                every_link_up(report, links)
            })
            .map_err(embed_failed)?;
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
                match daemon.status() {
                    Ok(report) => eprintln!("{}", status::render(&report)),
                    Err(e) => eprintln!("status: {e}"),
                }
            }
        }
        let client = self.client.take().map_or(Ok(()), Daemon::stop);
        let gateway = self.gateway.take().map_or(Ok(()), Daemon::stop);
        client.map_err(|e| failed(format!("client: {e}")))?;
        gateway.map_err(|e| failed(format!("gateway: {e}")))
    }
}

/// The gateway's and the client's configs for a lab run on `topology`: new
/// keys, one client link per lab link, status sockets in the topology's run
/// directory (removed on every way out). Shared with the soak, which runs the
/// same daemons as processes.
pub(crate) fn lab_configs(
    topology: &Topology,
    scenario: &Scenario,
) -> Result<(GatewayConfig, ClientConfig), SystemError> {
    let failed = |message: String| SystemError::Failed {
        system: "circus",
        message,
    };
    let policy = match &scenario.policy {
        Some(name) => name.parse::<Policy>().map_err(|e| failed(e.to_string()))?,
        None => Policy::default(),
    };
    let (gateway_secret, gateway_public) = generate_keypair().map_err(|e| failed(e.to_string()))?;
    let (client_secret, client_public) = generate_keypair().map_err(|e| failed(e.to_string()))?;
    let observe = |role: &str| ObserveConfig {
        status_socket: Some(topology.run_dir().join(format!("{role}.sock"))),
        metrics_listen: None,
    };
    let tunnel_net = |addr| TunAddresses::v4(Ipv4Prefix { addr, len: 10 });

    let gateway_config = GatewayConfig {
        private_key: gateway_secret,
        listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, GATEWAY_PORT)),
        policy,
        nat: false,
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
        site_subnets: Vec::new(),
        routing: Default::default(),
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
                gateway_host: None,
                mtu: 1500,
            })
            .collect(),
    };
    Ok((gateway_config, client_config))
}

/// Whether the client's `report` shows its session connected with all
/// `links` up: the tunnel is ready for the lab's traffic.
pub(crate) fn every_link_up(report: &status::StatusReport, links: usize) -> bool {
    report
        .sessions
        .iter()
        .any(|s| s.connected && s.links.iter().filter(|l| l.state == "up").count() == links)
}
