//! What one system's run leaves behind, in the same form whichever mode ran
//! it: `circus-lab run` fills these from its receivers in namespaces,
//! `circus-lab sim` from virtual time. [`crate::report::assemble`] turns
//! them into `summary.json`, the table, `report.md` and the plots, so both
//! modes go through one path from logs to figures.

use super::{
    CommandReport, HostPauses, LinkCounters, MetricsConfig, RunLogs, SystemMetrics, TimelineEvent,
};
use crate::scenario::System;
use crate::traffic::MonoNanos;
use crate::traffic::probe::ProbeLog;
use crate::traffic::tcp::TcpLog;

/// The traffic of one direction: its probe stream (empty when the scenario
/// sent none that way) and its bulk TCP flows, if any ran that way.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamLogs {
    pub probes: ProbeLog,
    pub tcp: Option<TcpLog>,
}

/// Everything measured for one system in one run.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemLogs {
    pub system: System,
    /// The scenario's time zero on the logs' clock (event times count from it).
    pub origin: MonoNanos,
    /// Client to server.
    pub up: StreamLogs,
    /// Server to client; `None` when the scenario sent nothing that way.
    pub down: Option<StreamLogs>,
    /// What each link carried (both directions), in scenario order.
    pub links: Vec<LinkCounters>,
    /// `None` where pauses were not watched for (the simulator has none).
    pub host_pauses: Option<HostPauses>,
    /// The link (by name) each probe flow was pinned to, for systems that
    /// pin flows (see [`RunLogs::flow_links`]); `None` for circus, which
    /// chooses per packet. A flow's download comes back on its link.
    pub flow_links: Option<Vec<String>>,
    /// How the user's own commands ended; empty when none ran.
    pub commands: Vec<CommandReport>,
}

impl SystemLogs {
    /// One direction's logs as the metrics take them.
    pub fn view<'a>(&'a self, stream: &'a StreamLogs, events: &'a [TimelineEvent]) -> RunLogs<'a> {
        RunLogs {
            origin: self.origin,
            probes: &stream.probes,
            tcp: stream.tcp.as_ref(),
            events,
            links: &self.links,
            host_pauses: self.host_pauses.as_ref(),
            flow_links: self.flow_links.as_deref(),
        }
    }

    /// Every figure of the system, both directions.
    pub fn metrics(&self, events: &[TimelineEvent], config: &MetricsConfig) -> SystemMetrics {
        let down = self.down.as_ref().map(|down| self.view(down, events));
        let mut metrics =
            super::system_metrics(&self.view(&self.up, events), down.as_ref(), config);
        metrics.commands = self.commands.clone();
        metrics
    }
}
