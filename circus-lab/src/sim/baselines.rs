//! The baselines without a tunnel, on the same link models as circus:
//! `single-link` sends every probe over the link that is best at the start;
//! `multiwan` pins each flow to one link by a hash of its addresses, as
//! pfSense/OPNsense gateway groups do, and never moves it: while its link is
//! dead the flow loses everything, and it resumes only when that link does.
//!
//! Without a tunnel there is nothing to simulate between the endpoints but
//! the links, so a probe's fate is its link model's verdict.

use std::time::Duration;

use super::links::SimLinks;
use super::probe::{FIRST_SOURCE_PORT, ProbeStream};
use super::system_run::SystemRun;
use super::{DRAIN, stream_id};
use crate::emulator::model::{Direction, LinkParams, Verdict};
use crate::scenario::{Scenario, SystemKind};

/// Expected loss of a link as configured: random plus mean burst loss.
fn expected_loss(params: &LinkParams) -> f64 {
    params.loss + params.burst_loss.map_or(0.0, |chain| chain.mean_loss())
}

/// Loss differences up to this much do not make one link better than
/// another; latency decides between them.
const SIMILAR_LOSS: f64 = 0.01;

/// The link a person would make primary, judged by the scenario's values at
/// the start: among the links losing at most [`SIMILAR_LOSS`] more than the
/// least lossy one, the one with the lowest delay plus jitter, then the
/// fastest, then the first listed.
pub fn best_link_at_start(scenario: &Scenario) -> usize {
    let least_loss = scenario
        .links
        .iter()
        .map(|link| expected_loss(&link.params))
        .fold(f64::INFINITY, f64::min);
    scenario
        .links
        .iter()
        .enumerate()
        .filter(|(_, link)| expected_loss(&link.params) <= least_loss + SIMILAR_LOSS)
        .min_by_key(|(index, link)| {
            let latency = link.params.delay + link.params.jitter;
            let rate = link.params.rate_bps.unwrap_or(u64::MAX);
            (latency, std::cmp::Reverse(rate), *index)
        })
        .map_or(0, |(index, _)| index)
}

/// The link a multiwan gateway group pins `flow` to among `links`: FNV-1a
/// over the flow's source port (its addresses, destination and protocol are
/// the same for every probe flow), reduced modulo the number of links.
pub fn multiwan_link_of_flow(flow: u16, links: usize) -> usize {
    let port = FIRST_SOURCE_PORT.wrapping_add(flow);
    let hash = port
        .to_be_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % links.max(1) as u64) as usize
}

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
    SystemRun {
        system,
        probes: probes.into_log(),
        links: links.carried(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiwan_spreads_the_probe_flows_over_every_link() {
        for links in 1..=4 {
            let mut used = vec![0; links];
            for flow in 0..super::super::probe::PROBE_FLOWS {
                used[multiwan_link_of_flow(flow, links)] += 1;
            }
            assert!(
                used.iter().all(|&flows| flows > 0),
                "{links} links: {used:?}"
            );
        }
    }
}
