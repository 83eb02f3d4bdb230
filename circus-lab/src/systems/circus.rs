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
use crate::scenario::{Action, Scenario};
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
    /// Per link, the shortest round trip the emulator can give it
    /// ([`shortest_round_trips`]).
    shortest_round_trips: Vec<Duration>,
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
        self.shortest_round_trips = shortest_round_trips(scenario);
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
        let print = std::env::var_os("CIRCUS_LAB_STATUS").is_some();
        let mut impossible = None;
        for daemon in [&self.client, &self.gateway].into_iter().flatten() {
            match daemon.status() {
                Ok(report) => {
                    if print {
                        eprintln!("{}", status::render(&report));
                    }
                    impossible = impossible
                        .or_else(|| faster_than_light(&report, &self.shortest_round_trips));
                }
                Err(e) if print => eprintln!("status: {e}"),
                Err(_) => {}
            }
        }
        let client = self.client.take().map_or(Ok(()), Daemon::stop);
        let gateway = self.gateway.take().map_or(Ok(()), Daemon::stop);
        client.map_err(|e| failed(format!("client: {e}")))?;
        gateway.map_err(|e| failed(format!("gateway: {e}")))?;
        impossible.map_or(Ok(()), |message| Err(failed(message)))
    }
}

/// Per link, the shortest round trip the emulator can give it over the
/// whole timeline: twice its smallest one-way delay less its largest
/// jitter, events that set new values included.
fn shortest_round_trips(scenario: &Scenario) -> Vec<Duration> {
    scenario
        .links
        .iter()
        .enumerate()
        .map(|(i, link)| {
            let base = &link.params;
            let patches = scenario.events.iter().filter_map(|e| match &e.action {
                Action::Set(patch) if e.link_index == i => Some(patch),
                _ => None,
            });
            let (mut delay, mut jitter) = (base.delay, base.jitter);
            for patch in patches {
                delay = delay.min(patch.delay.unwrap_or(delay));
                jitter = jitter.max(patch.jitter.unwrap_or(jitter));
            }
            delay.saturating_sub(jitter) * 2
        })
        .collect()
}

/// A link whose measured minimum RTT in `report` is shorter than the
/// emulator can deliver (`shortest`, by link id), as an error message.
///
/// No correct measurement is shorter: a packet's send time is read before
/// it leaves and its ack's arrival time after it came. A shorter one means
/// the daemon handed the engine wrong times, which shrinks the link's
/// in-flight cap for the rest of the run (the hetero-rate upload ran at a
/// quarter of the link that way) while every other figure looks plausible.
/// 0.1 ms of slack covers rounding in the report.
fn faster_than_light(report: &status::StatusReport, shortest: &[Duration]) -> Option<String> {
    report
        .sessions
        .iter()
        .flat_map(|s| &s.links)
        .find_map(|link| {
            let floor = shortest.get(usize::from(link.id))?.as_secs_f64() * 1e3;
            let min_rtt = link.min_rtt_ms?;
            (min_rtt < floor - 0.1).then(|| {
                format!(
                    "the {} measured link {}'s minimum RTT as {min_rtt:.2} ms, but the emulator \
                 delivers no round trip under {floor:.2} ms: the daemon's clock readings \
                 are wrong",
                    report.role, link.name
                )
            })
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const MS: Duration = Duration::from_millis(1);

    fn scenario() -> Scenario {
        Scenario::from_toml(
            r#"
name = "floors"
duration = "10s"
seed = 1
systems = ["circus"]

[[link]]
name = "wifi0"
delay = "10ms"
jitter = "2ms"

[[link]]
name = "lte0"
delay = "40ms"

[[event]]
at = "2s"
link = "lte0"
action = "set"
set = { delay = "15ms", jitter = "5ms" }
for = "1s"
"#,
            Path::new("floors.toml"),
        )
        .unwrap()
    }

    #[test]
    fn the_shortest_round_trip_allows_for_jitter_and_set_events() {
        assert_eq!(shortest_round_trips(&scenario()), vec![16 * MS, 20 * MS]);
    }

    #[test]
    fn a_min_rtt_below_the_emulated_round_trip_is_reported() {
        let floors = shortest_round_trips(&scenario());
        let link = status::LinkStatus {
            id: 0,
            name: "wifi0".into(),
            endpoint: "link0".into(),
            peer: "198.18.0.1:51820".into(),
            interface: "up".into(),
            state: "up".into(),
            rtt_ms: Some(30.0),
            rttvar_ms: Some(1.0),
            loss: 0.0,
            rate_bytes_per_s: 1_000_000,
            min_rtt_ms: None,
            return_delay_ms: None,
            in_flight_bytes: 0,
            in_flight_cap_bytes: 0,
            traffic: status::Counters::default(),
        };
        let mut report = status::StatusReport {
            role: "client".into(),
            uptime_s: 10.0,
            refused: Default::default(),
            sessions: vec![status::SessionStatus {
                name: "gateway".into(),
                public_key: String::new(),
                connected: true,
                last_handshake_s: Some(1.0),
                handshakes: 1,
                tunnel: status::Counters::default(),
                dropped: Default::default(),
                links: vec![link],
            }],
        };
        let mut with_min_rtt = |ms: Option<f64>| {
            report.sessions[0].links[0].min_rtt_ms = ms;
            faster_than_light(&report, &floors)
        };
        assert_eq!(with_min_rtt(Some(16.0)), None);
        assert_eq!(with_min_rtt(None), None, "not measured");
        let message = with_min_rtt(Some(3.2)).unwrap();
        assert!(message.contains("3.20 ms"), "{message}");
        assert!(message.contains("16.00 ms"), "{message}");
        assert!(message.contains("wifi"), "{message}");
    }
}
