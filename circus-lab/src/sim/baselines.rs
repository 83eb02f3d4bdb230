//! The baselines without a tunnel, on the same link models as circus and
//! with the same choices as their real adapters ([`crate::systems`]):
//! `single-link` sends every probe over the link that is best at the start;
//! `multiwan` pins each flow to one link by hash, as pfSense/OPNsense
//! gateway groups do, and never moves it: while its link is dead the flow
//! loses everything, and it resumes only when that link does.
//!
//! Without a tunnel there is nothing to simulate between the endpoints but
//! the links, so a probe's fate is its link model's verdict.

use std::time::Duration;

use super::links::SimLinks;
use super::probe::ProbeStream;
use super::system_run::SystemRun;
use super::{DRAIN, stream_id};
use crate::emulator::model::{Direction, Verdict};
use crate::scenario::{Scenario, SystemKind};
use crate::systems::PROBE_FLOWS;

/// Runs the probe stream of `system` with each probe's link chosen by
/// `route(flow)`.
pub(super) fn run_pinned(
    scenario: &Scenario,
    system: SystemKind,
    route: impl Fn(u16) -> usize,
) -> SystemRun {
    let mut links = SimLinks::new(scenario);
    let mut probes = ProbeStream::new(
        scenario.traffic.probe,
        scenario.duration,
        Duration::ZERO,
        stream_id(system),
    );
    let timeline = scenario.timeline();
    let mut steps = timeline.iter().peekable();
    let stop = scenario.duration + DRAIN;
    while let Some((_, now)) = probes.next_due() {
        while let Some(step) = steps.next_if(|step| step.at <= now) {
            links.apply(step);
        }
        let header = probes.send_next(now);
        let verdict = links.carry(now, route(header.flow), Direction::Up, probes.size());
        if let Verdict::Deliver { at, duplicate_at } = verdict {
            for arrival in std::iter::once(at).chain(duplicate_at) {
                if arrival <= stop {
                    probes.received(&header, arrival);
                }
            }
        }
    }
    let flow_links = (0..PROBE_FLOWS)
        .filter_map(|flow| scenario.links.get(route(flow)))
        .map(|link| link.name.clone())
        .collect();
    SystemRun {
        system,
        probes: probes.into_log(),
        links: links.carried(),
        flow_links: Some(flow_links),
    }
}
