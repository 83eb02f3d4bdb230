//! One small adapter per system under test.
//!
//! The runner builds the same topology and emulated links for every system;
//! an adapter only decides how the client reaches the server: which routes,
//! which daemons, which sockets. It returns a [`TrafficPlan`] that tells the
//! runner how to open the lab's own traffic so the system carries it.
//!
//! - [`circus`]: the real circus-node client and gateway.
//! - [`single_link`]: one link, no tunnel.
//! - [`best_link`]: which link alone does best, from a run over each.
//! - [`multiwan`]: each flow pinned to one link by hash (pfSense gateway groups).
//! - [`mptcp`]: kernel MPTCP with one subflow per link for the TCP traffic.
//! - [`mptcp_pm`]: the generic-netlink requests the mptcp adapter needs.
//! - [`registry`]: the built-in systems, one entry each.
//! - [`external`]: any other system, described by a TOML file.

pub mod best_link;
pub mod circus;
pub mod external;
pub mod mptcp;
pub mod mptcp_pm;
pub mod multiwan;
pub mod registry;
pub mod single_link;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::scenario::{Scenario, SystemKind};
use crate::topology::addressing::{SERVER_SUBNET, SUBNET_PREFIX_LEN};
use crate::topology::{Topology, TopologyError};
use crate::traffic::tcp::TcpFlavor;
use external::ExternalSystem;

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
    #[error("{system}: {message}")]
    External { system: String, message: String },
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

/// A system a scenario compares: a built-in one or one from a system file.
/// Serialized (for the scenario's content hash) as a built-in's name, or
/// as the whole checked file.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum System {
    BuiltIn(SystemKind),
    #[serde(serialize_with = "serialize_shared")]
    External(Arc<ExternalSystem>),
}

/// Serializes what the `Arc` holds (serde's `rc` feature is off).
fn serialize_shared<S: serde::Serializer>(
    system: &Arc<ExternalSystem>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    system.as_ref().serialize(serializer)
}

impl System {
    /// The name in scenario files, `--systems`, `summary.json` and tables.
    pub fn name(&self) -> &str {
        match self {
            System::BuiltIn(kind) => kind.as_str(),
            System::External(system) => &system.name,
        }
    }

    /// Whether a real run must first measure the best link for it.
    pub fn needs_best_link(&self) -> bool {
        match self {
            System::BuiltIn(kind) => registry::built_in(*kind).needs_best_link,
            System::External(system) => system.needs_best_link,
        }
    }

    /// The adapter for a real run: `best_link` is the link the single-link
    /// runs found best; an external system's logs go to
    /// `<log_root>/<name>/` (without a root, to the topology's run
    /// directory, removed with it).
    pub fn adapter(&self, best_link: usize, log_root: Option<&Path>) -> Box<dyn SystemUnderTest> {
        match self {
            System::BuiltIn(kind) => (registry::built_in(*kind).adapter)(best_link),
            System::External(system) => {
                Box::new(external::External::new(system.clone(), best_link, log_root))
            }
        }
    }
}

impl From<SystemKind> for System {
    fn from(kind: SystemKind) -> System {
        System::BuiltIn(kind)
    }
}

impl PartialEq<SystemKind> for System {
    fn eq(&self, kind: &SystemKind) -> bool {
        *self == System::BuiltIn(*kind)
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
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
