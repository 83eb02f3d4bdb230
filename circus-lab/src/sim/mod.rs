//! `circus-lab sim`: a scenario in one process, on virtual time.
//!
//! The same scenario files as `circus-lab run`, but no namespaces, no root
//! and no wall clock: the links are the lab's own link models
//! ([`crate::emulator::model`]) driven by the scenario timeline, and circus
//! is its real client and gateway engines (circus-core is sans-IO, so they
//! run on an injected clock). Time jumps from one event to the next, so a
//! minute of probes takes a fraction of a second (bulk TCP through circus
//! takes seconds: the engines' work per packet, mostly their timers), and
//! the same seed gives the same result byte for byte.
//!
//! Map of the simulator:
//! - `wire`: datagrams in flight, ordered by arrival time;
//! - `links`: both directions of every link, carrier and client address,
//!   changed by the timeline;
//! - `probe`: the probe streams' schedule and packets, both directions;
//! - `tcp`: a bulk TCP model (Linux-like CUBIC, SACK, RACK, delayed ACKs)
//!   whose flows, both directions, run through each system as real
//!   IPv4/TCP packets;
//! - `circus`: the client and gateway engines over the links;
//! - `baselines`: `single-link` and `multiwan`, straight over the links,
//!   choosing links as their real adapters do ([`crate::systems`]).
//!
//! TCP goodput comes from the `tcp` model, not from Linux: close to it
//! (see that module for what it leaves out), not identical.
//!
//! Which built-in systems are simulated, and how, is in their registry
//! entries ([`crate::systems::registry`]). Not simulated: `mptcp` (a kernel
//! feature) and external systems (their own processes), both listed in
//! [`SimReport::skipped`] and left out of the report, and the user's own
//! commands (`[[traffic.command]]`: real programs need real sockets), which
//! `summary.json` lists as `commands_not_run` and `report.md` mentions.

mod baselines;
mod circus;
mod links;
mod probe;
pub mod tcp;
mod wire;

use std::time::Duration;

use crate::metrics::{LinkCounters, StreamLogs, SystemLogs};
use crate::metrics::{MetricsConfig, SystemMetrics, TimelineEvent};
use crate::report::{Outcome, SIM_BACKEND, assemble};
use crate::scenario::{Scenario, System, SystemKind};
use crate::systems::{self, best_link, registry};

use probe::Streams;
use tcp::TcpTraffic;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The system cannot be modelled on virtual time.
    #[error(
        "system {0} cannot be simulated (a kernel feature or an external system's own processes); use `circus-lab run`"
    )]
    NotSimulated(System),
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

/// Everything a simulated run produces: what `circus-lab run` writes, from
/// virtual time.
#[derive(Clone, Debug)]
pub struct SimReport {
    /// `summary.json` (backend [`SIM_BACKEND`]), the plots' series and the
    /// timeline, as a real run gives them.
    pub outcome: Outcome,
    /// Each simulated system's logs, in the scenario's order.
    pub runs: Vec<SystemLogs>,
    /// Systems of the scenario that cannot be simulated (`mptcp`,
    /// external systems).
    pub skipped: Vec<System>,
}

/// Simulates every system of the scenario that can be simulated and
/// computes their figures with the same metrics as a real run. `commit`
/// names the code that ran, as in a real run's summary.
///
/// Deterministic: the same scenario (seed included) and commit give the
/// same summary, byte for byte.
pub fn run(scenario: &Scenario, commit: &str) -> Result<SimReport, SimError> {
    let (alone, alone_metrics, best) = links_alone(scenario);
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    for system in &scenario.systems {
        let run = match (system, best) {
            (System::BuiltIn(SystemKind::SingleLink), Some(best)) => Ok(alone[best].clone()),
            (System::BuiltIn(kind), _) => run_system(scenario, *kind),
            (System::External(_), _) => Err(SimError::NotSimulated(system.clone())),
        };
        match run {
            Ok(run) => runs.push(run),
            Err(SimError::NotSimulated(system)) => skipped.push(system),
            Err(e) => return Err(e),
        }
    }
    let reference = best.map(|i| best_link::reference(&scenario.links[i].name, &alone_metrics[i]));
    let mut outcome = assemble(scenario, SIM_BACKEND, commit, &runs, reference);
    outcome.summary.commands_not_run = scenario.commands.iter().map(|c| c.name.clone()).collect();
    Ok(SimReport {
        outcome,
        runs,
        skipped,
    })
}

/// Simulates one built-in system over the whole scenario, as its registry
/// entry says; `single-link` goes over the best of the [`links_alone`] runs.
pub fn run_system(scenario: &Scenario, system: SystemKind) -> Result<SystemLogs, SimError> {
    let simulate = registry::built_in(system).simulate;
    simulate.ok_or(SimError::NotSimulated(System::BuiltIn(system)))?(scenario)
}

/// circus's client and gateway engines over the links.
pub(crate) fn simulate_circus(scenario: &Scenario) -> Result<SystemLogs, SimError> {
    circus::run(scenario)
}

/// The best of the links alone.
pub(crate) fn simulate_single_link(scenario: &Scenario) -> Result<SystemLogs, SimError> {
    let (mut alone, _, best) = links_alone(scenario);
    Ok(alone.swap_remove(best.unwrap_or(0)))
}

/// Each flow on the link its hash pins it to.
pub(crate) fn simulate_multiwan(scenario: &Scenario) -> Result<SystemLogs, SimError> {
    let links = scenario.links.len();
    Ok(baselines::run_pinned(
        scenario,
        SystemKind::Multiwan,
        |flow| systems::multiwan::flow_link(scenario.seed, u64::from(flow), links),
    ))
}

/// `single-link` over each link alone, their figures, and which is best
/// (see [`best_link`]).
fn links_alone(scenario: &Scenario) -> (Vec<SystemLogs>, Vec<SystemMetrics>, Option<usize>) {
    let alone: Vec<SystemLogs> = (0..scenario.links.len())
        .map(|link| baselines::run_pinned(scenario, SystemKind::SingleLink, |_| link))
        .collect();
    let events: Vec<TimelineEvent> = scenario.events.iter().map(Into::into).collect();
    let metrics: Vec<SystemMetrics> = alone
        .iter()
        .map(|logs| logs.metrics(&events, &MetricsConfig::default()))
        .collect();
    let best = best_link::best_of(&metrics);
    (alone, metrics, best)
}

/// The stream id of `system`'s probes: distinct per system, as in a real
/// run where systems follow each other on the same addresses.
fn stream_id(system: SystemKind) -> u32 {
    let position = registry::BUILT_INS
        .iter()
        .position(|entry| entry.kind == system);
    position.map_or(0, |index| index as u32 + 1)
}

/// One simulated system's logs in the form a real run gives them. The
/// download side is left out when the scenario sends nothing that way.
fn system_logs(
    scenario: &Scenario,
    system: SystemKind,
    probes: Streams,
    tcp: TcpTraffic,
    links: Vec<LinkCounters>,
    flow_links: Option<Vec<String>>,
) -> SystemLogs {
    let (tcp_up, tcp_down) = tcp.into_logs();
    let up = probes.up.into_log();
    let origin = up.sent.start;
    let traffic = scenario.traffic;
    let has_down = traffic.probe.direction.down() || traffic.tcp.down_flows() > 0;
    SystemLogs {
        system: System::BuiltIn(system),
        origin,
        up: StreamLogs {
            probes: up,
            tcp: tcp_up,
        },
        down: has_down.then(|| StreamLogs {
            probes: probes.down.into_log(),
            tcp: tcp_down,
        }),
        links,
        host_pauses: None,
        flow_links,
        commands: Vec::new(),
    }
}
