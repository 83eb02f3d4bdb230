//! The one path from logs to results: every system's [`SystemLogs`], from a
//! run in namespaces or from the simulator, become the same `summary.json`
//! figures and plot series.

use std::collections::BTreeMap;

use super::Summary;
use super::summary::BestLink;
use crate::metrics::{MetricsConfig, SystemLogs, SystemSeries, TimelineEvent, system_series};
use crate::scenario::Scenario;

/// A run's results, ready for [`super::write_report`].
#[derive(Clone, Debug)]
pub struct Outcome {
    pub summary: Summary,
    /// Per system, the upload stream's series, then (if any) the download's.
    pub series: BTreeMap<String, DirectionSeries>,
    /// The scenario's timeline, marked on the plots.
    pub events: Vec<TimelineEvent>,
}

/// A system's plot series in each direction it carried probes.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectionSeries {
    pub up: SystemSeries,
    pub down: Option<SystemSeries>,
}

/// Turns the logs of each system of a run of `scenario` into its results.
/// `backend` is the link emulation actually used, `commit` the code that
/// ran, `best_link` the plain-TCP reference measured in the same run.
pub fn assemble(
    scenario: &Scenario,
    backend: &str,
    commit: &str,
    logs: &[SystemLogs],
    best_link: Option<BestLink>,
) -> Outcome {
    let events: Vec<TimelineEvent> = scenario.events.iter().map(TimelineEvent::from).collect();
    let config = MetricsConfig::default();
    let mut summary = Summary::for_scenario(scenario, backend, commit);
    summary.set_best_link(best_link);
    let mut series = BTreeMap::new();
    for run in logs {
        let name = run.system.name().to_owned();
        summary.add_system(&name, run.metrics(&events, &config));
        let up = system_series(&run.view(&run.up, &events), &config);
        let down = run
            .down
            .as_ref()
            .filter(|down| !down.probes.sent.sent_at.is_empty())
            .map(|down| system_series(&run.view(down, &events), &config));
        series.insert(name, DirectionSeries { up, down });
    }
    Outcome {
        summary,
        series,
        events,
    }
}
