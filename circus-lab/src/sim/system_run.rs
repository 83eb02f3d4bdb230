//! What one system did in a simulation, in the same form as a real run's
//! logs, so [`crate::metrics`] turns either into the same figures.

use crate::metrics::{LinkCounters, RunLogs, TimelineEvent};
use crate::scenario::SystemKind;
use crate::traffic::MonoNanos;
use crate::traffic::probe::ProbeLog;
use crate::traffic::tcp::TcpLog;

/// One simulated system's logs.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemRun {
    pub system: SystemKind,
    /// The probe stream, on the simulation's clock (nanoseconds since its
    /// start); `probes.sent.start` is the scenario's time zero.
    pub probes: ProbeLog,
    /// The bulk TCP flows' goodput, if the scenario has flows.
    pub tcp: Option<TcpLog>,
    /// What each link delivered from the scenario's time zero, in scenario
    /// order.
    pub links: Vec<LinkCounters>,
}

impl SystemRun {
    /// The scenario's time zero on the logs' clock.
    pub fn origin(&self) -> MonoNanos {
        self.probes.sent.start
    }

    /// The logs as the metrics take them.
    pub fn run_logs<'a>(&'a self, events: &'a [TimelineEvent]) -> RunLogs<'a> {
        RunLogs {
            origin: self.origin(),
            probes: &self.probes,
            tcp: self.tcp.as_ref(),
            events,
            links: &self.links,
            host_pauses: None,
        }
    }
}
