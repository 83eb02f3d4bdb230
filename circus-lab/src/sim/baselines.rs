//! The baselines without a tunnel, on the same link models as circus and
//! with the same choices as their real adapters ([`crate::systems`]):
//! `single-link` sends every probe over the link that is best at the start;
//! `multiwan` pins each flow to one link by hash, as pfSense/OPNsense
//! gateway groups do, and never moves it: while its link is dead the flow
//! loses everything, and it resumes only when that link does. A flow's
//! download comes back over the link its upload leaves on, as a router's
//! per-link NAT makes it.
//!
//! Without a tunnel there is nothing to simulate between the endpoints but
//! the links, so a probe's fate is its link model's verdict.

use std::time::Duration;

use super::links::SimLinks;
use super::probe::{ProbeStream, Streams};
use super::{stream_id, system_logs};
use crate::emulator::model::{Direction, Verdict};
use crate::metrics::{LinkCounters, SystemLogs};
use crate::scenario::{Scenario, SystemKind};
use crate::systems::PROBE_FLOWS;
use crate::traffic::DRAIN;

/// Runs the probe streams of `system` with each probe's link chosen by
/// `route(flow)`.
pub(super) fn run_pinned(
    scenario: &Scenario,
    system: SystemKind,
    route: impl Fn(u16) -> usize,
) -> SystemLogs {
    let id = stream_id(system);
    let mut streams = Streams {
        up: ProbeStream::for_scenario(scenario, Direction::Up, Duration::ZERO, id),
        down: ProbeStream::for_scenario(scenario, Direction::Down, Duration::ZERO, id),
    };
    // Each direction of a link has a model of its own, so the two streams
    // can be run one after the other, each over links of its own.
    let up = run_stream(scenario, &mut streams.up, Direction::Up, &route);
    let down = run_stream(scenario, &mut streams.down, Direction::Down, &route);
    let carried = up
        .into_iter()
        .zip(down)
        .map(|(up, down)| LinkCounters {
            link: up.link,
            bytes: up.bytes + down.bytes,
            packets: up.packets + down.packets,
        })
        .collect();
    let flow_links = (0..PROBE_FLOWS)
        .filter_map(|flow| scenario.links.get(route(flow)))
        .map(|link| link.name.clone())
        .collect();
    system_logs(scenario, system, streams, carried, Some(flow_links))
}

/// Sends one stream over fresh links played through the timeline; returns
/// what each link carried.
fn run_stream(
    scenario: &Scenario,
    probes: &mut ProbeStream,
    direction: Direction,
    route: impl Fn(u16) -> usize,
) -> Vec<LinkCounters> {
    let mut links = SimLinks::new(scenario);
    let timeline = scenario.timeline();
    let mut steps = timeline.iter().peekable();
    let stop = scenario.duration + DRAIN;
    while let Some((_, now)) = probes.next_due() {
        while let Some(step) = steps.next_if(|step| step.at <= now) {
            links.apply(step);
        }
        let header = probes.send_next(now);
        let verdict = links.carry(now, route(header.flow), direction, probes.size());
        if let Verdict::Deliver { at, duplicate_at } = verdict {
            for arrival in std::iter::once(at).chain(duplicate_at) {
                if arrival <= stop {
                    probes.received(&header, arrival);
                }
            }
        }
    }
    links.carried()
}
