//! `circus-lab sim`: a scenario in one process, on virtual time.
//!
//! The same scenario files as `circus-lab run`, but no namespaces, no root
//! and no wall clock: the links are the lab's own link models
//! ([`crate::emulator::model`]) driven by the scenario timeline, and circus
//! is its real client and gateway engines (circus-core is sans-IO, so they
//! run on an injected clock). Time jumps from one event to the next, so a
//! minute of scenario takes a fraction of a second, and the same seed gives
//! the same result byte for byte.
//!
//! Map of the simulator:
//! - `wire`: datagrams in flight, ordered by arrival time;
//! - `links`: both directions of every link, carrier and client address,
//!   changed by the timeline;
//! - `probe`: the probe stream's schedule and packets;
//! - `system_run`: what each system did, as the metrics take it ([`SystemRun`]);
//! - `tcp`: a bulk TCP model (Linux-like CUBIC, SACK, RACK, delayed ACKs)
//!   whose flows run through each system as real IPv4/TCP packets;
//! - `circus`: the client and gateway engines over the links;
//! - `baselines`: `single-link` and `multiwan`, straight over the links,
//!   choosing links as their real adapters do ([`crate::systems`]).
//!
//! TCP goodput comes from the `tcp` model, not from Linux: close to it
//! (see that module for what it leaves out), not identical.
//!
//! Not simulated: `mptcp` (a kernel feature; listed in
//! [`SimReport::skipped`]).

mod baselines;
mod circus;
mod links;
mod probe;
mod system_run;
pub mod tcp;
mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::metrics::{self, MetricsConfig, SystemSeries, TimelineEvent};
use crate::report::Summary;
use crate::scenario::{Scenario, SystemKind};
use crate::systems;

pub use system_run::SystemRun;

/// How long the receiver keeps listening after the last probe is due, so
/// probes still in flight (slow links, reorder hold) are counted; the same
/// as a real run's.
pub const DRAIN: Duration = Duration::from_millis(1500);

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The system cannot be modelled on virtual time.
    #[error("system {0} cannot be simulated (it needs a real kernel); use `circus-lab run`")]
    NotSimulated(SystemKind),
    /// The scenario's `policy` is not a circus scheduler policy.
    #[error(
        "scenario key `policy`: expected one of balanced, redundant, adaptive, round-robin, found {0:?}"
    )]
    Policy(String),
    /// The gateway engine refused its configuration.
    #[error("the simulated gateway could not be set up: {0}")]
    Gateway(#[from] circus_core::engine::GatewayError),
    /// The engines kept asking to run at one virtual instant without time
    /// moving on: an engine timer that never clears (a bug in circus-core).
    #[error(
        "the circus engines made no progress at {at:?} of virtual time (a timer that never clears)"
    )]
    Stuck { at: Duration },
}

/// The name `summary.json` gives the simulator as its backend.
pub const BACKEND: &str = "sim";

/// Everything a simulated run produces: what `circus-lab run` writes, from
/// virtual time.
#[derive(Clone, Debug)]
pub struct SimReport {
    /// `summary.json`, with backend [`BACKEND`].
    pub summary: Summary,
    /// Each simulated system's time series, for the plots.
    pub series: BTreeMap<String, SystemSeries>,
    /// The scenario's timeline, marked on the plots.
    pub events: Vec<TimelineEvent>,
    /// Each simulated system's logs, in the scenario's order.
    pub runs: Vec<SystemRun>,
    /// Systems of the scenario that cannot be simulated (`mptcp`).
    pub skipped: Vec<SystemKind>,
}

/// Simulates every system of the scenario that can be simulated and
/// computes their figures with the same metrics as a real run. `commit`
/// names the code that ran, as in a real run's summary.
///
/// Deterministic: the same scenario (seed included) and commit give the
/// same summary, byte for byte.
pub fn run(scenario: &Scenario, commit: &str) -> Result<SimReport, SimError> {
    let events: Vec<TimelineEvent> = scenario.events.iter().map(TimelineEvent::from).collect();
    let config = MetricsConfig::default();
    let mut summary = Summary::for_scenario(scenario, BACKEND, commit);
    let mut series = BTreeMap::new();
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    for &system in &scenario.systems {
        let run = match run_system(scenario, system) {
            Ok(run) => run,
            Err(SimError::NotSimulated(system)) => {
                skipped.push(system);
                continue;
            }
            Err(e) => return Err(e),
        };
        let logs = run.run_logs(&events);
        let name = system.as_str().to_owned();
        summary
            .systems
            .insert(name.clone(), metrics::system_metrics(&logs, &config));
        series.insert(name, metrics::system_series(&logs, &config));
        runs.push(run);
    }
    Ok(SimReport {
        summary,
        series,
        events,
        runs,
        skipped,
    })
}

/// Simulates one system over the whole scenario.
pub fn run_system(scenario: &Scenario, system: SystemKind) -> Result<SystemRun, SimError> {
    match system {
        SystemKind::Circus => circus::run(scenario),
        SystemKind::SingleLink => {
            let link = systems::best_link_at_start(scenario);
            Ok(baselines::run_pinned(scenario, system, |_| link))
        }
        SystemKind::Multiwan => {
            let links = scenario.links.len();
            Ok(baselines::run_pinned(scenario, system, |flow| {
                systems::multiwan::flow_link(scenario.seed, u64::from(flow), links)
            }))
        }
        SystemKind::Mptcp => Err(SimError::NotSimulated(system)),
    }
}

/// The stream id of `system`'s probes: distinct per system, as in a real
/// run where systems follow each other on the same addresses.
fn stream_id(system: SystemKind) -> u32 {
    let position = SystemKind::ALL.iter().position(|&kind| kind == system);
    position.map_or(0, |index| index as u32 + 1)
}
