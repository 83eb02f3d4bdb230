//! One small adapter per system under test.
//!
//! The runner builds the same topology and emulated links for every system;
//! an adapter only decides how the client reaches the server: which routes,
//! which daemons, which sockets. It returns a [`TrafficPlan`] that tells the
//! runner how to open the lab's own traffic so the system carries it.
//!
//! - [`circus`]: the real circus-node client and gateway.
//! - [`single_link`]: the link that is best at the start, no tunnel.
//! - [`multiwan`]: each flow pinned to one link by hash (pfSense gateway groups).
//! - [`mptcp`]: kernel MPTCP with one subflow per link for the TCP traffic.
//! - [`mptcp_pm`]: the generic-netlink requests the mptcp adapter needs.

pub mod circus;
pub mod mptcp;
pub mod mptcp_pm;
pub mod multiwan;
pub mod single_link;

use crate::scenario::{Scenario, SystemKind};
use crate::topology::addressing::{SERVER_SUBNET, SUBNET_PREFIX_LEN};
use crate::topology::{Topology, TopologyError};
use crate::traffic::tcp::TcpFlavor;

/// The probe stream is spread over this many flows (UDP sockets with
/// distinct source ports) for every system, so per-flow systems such as
/// multiwan can spread it and all systems carry the same work.
pub const PROBE_FLOWS: u16 = 16;

/// How the lab's traffic must be opened for a system to carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficPlan {
    /// Probe flow `i` and TCP flow `i` are pinned to `flow_devices[i % len]`;
    /// empty leaves the choice to the client's routing table.
    pub flow_devices: Vec<String>,
    /// Plain TCP, or MPTCP sockets at both ends.
    pub tcp_flavor: TcpFlavor,
    /// The link (index) probe flow `f` goes over, `flow_links[f % len]`, for
    /// systems that pin flows to links; `None` when the system chooses per
    /// packet. The metrics book each loss to its link's events with it.
    pub flow_links: Option<Vec<usize>>,
}

impl TrafficPlan {
    /// Traffic that simply follows the client's routes, whose links the lab
    /// does not know.
    pub fn routed() -> TrafficPlan {
        TrafficPlan {
            flow_devices: Vec::new(),
            tcp_flavor: TcpFlavor::Tcp,
            flow_links: None,
        }
    }
}

/// Why a system could not be set up or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("{system}: {what}: {source}")]
    Io {
        system: &'static str,
        what: String,
        source: std::io::Error,
    },
    #[error("{system}: {message}")]
    Failed {
        system: &'static str,
        message: String,
    },
}

/// A system under test, set up inside an already built lab topology.
pub trait SystemUnderTest {
    /// Configures routes and starts whatever the system runs; returns how the
    /// lab's traffic must be sent.
    fn start(
        &mut self,
        topology: &Topology,
        scenario: &Scenario,
    ) -> Result<TrafficPlan, SystemError>;

    /// Stops what `start` started (the topology itself is removed by the
    /// runner, taking routes and interfaces with it).
    fn stop(&mut self) -> Result<(), SystemError>;
}

/// The adapter for `kind`.
pub fn adapter(kind: SystemKind) -> Box<dyn SystemUnderTest> {
    match kind {
        SystemKind::SingleLink => Box::new(single_link::SingleLink),
        SystemKind::Multiwan => Box::new(multiwan::Multiwan),
        SystemKind::Mptcp => Box::new(mptcp::Mptcp),
        SystemKind::Circus => Box::new(circus::Circus::default()),
    }
}

/// The link a single-uplink site would use: the highest rate (a link
/// without a rate limit counts as fastest), ties broken by the lower delay.
/// Judged on the scenario's starting parameters, as an administrator would
/// when choosing the primary uplink.
pub fn best_link_at_start(scenario: &Scenario) -> usize {
    scenario
        .links
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| {
            let rate = |l: &crate::scenario::LinkSpec| l.params.rate_bps.unwrap_or(u64::MAX);
            rate(a)
                .cmp(&rate(b))
                .then(b.params.delay.cmp(&a.params.delay))
        })
        .map_or(0, |(index, _)| index)
}

/// Routes the server subnet over every link, `preferred` with the lowest
/// metric: ordinary sockets use `preferred`, sockets bound to a link's
/// interface find the route out of that link.
pub fn route_server_over_all_links(
    topology: &Topology,
    preferred: usize,
) -> Result<(), TopologyError> {
    for link in 0..topology.links().len() {
        let metric = if link == preferred {
            10
        } else {
            100 + link as u32
        };
        topology.route_client_via(SERVER_SUBNET, SUBNET_PREFIX_LEN, link, metric)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario(links: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\nduration = \"10s\"\nseed = 1\nsystems = [\"single-link\"]\n{links}\n[traffic]\nprobe = {{ rate = \"100pps\", size = 100 }}\n"
        );
        Scenario::from_toml(&text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn best_link_is_the_fastest_then_the_nearest() {
        let s = scenario(
            "[[link]]\nname = \"a\"\ndelay = \"10ms\"\nrate = \"5mbit\"\n\
             [[link]]\nname = \"b\"\ndelay = \"30ms\"\nrate = \"20mbit\"\n\
             [[link]]\nname = \"c\"\ndelay = \"20ms\"\nrate = \"20mbit\"\n",
        );
        assert_eq!(best_link_at_start(&s), 2);
    }

    #[test]
    fn unlimited_link_counts_as_fastest() {
        let s = scenario(
            "[[link]]\nname = \"a\"\ndelay = \"10ms\"\nrate = \"100mbit\"\n\
             [[link]]\nname = \"b\"\ndelay = \"50ms\"\n",
        );
        assert_eq!(best_link_at_start(&s), 1);
    }
}
