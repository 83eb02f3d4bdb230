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
//! the links: a probe's fate is its link model's verdict, and the TCP flows
//! send their segments straight over the link their flow is pinned to
//! (data one way, ACKs back the other way of the same link). Probes and
//! segments go through the same link models in one loop on one clock, so
//! they share the queues as on a real link.

use std::time::Duration;

use super::links::SimLinks;
use super::probe::{ProbeStream, Streams};
use super::tcp::{TcpPlan, TcpTraffic};
use super::wire::Wire;
use super::{stream_id, system_logs};
use crate::emulator::model::{Direction, Verdict};
use crate::metrics::SystemLogs;
use crate::scenario::{Scenario, SystemKind};
use crate::systems::PROBE_FLOWS;
use crate::traffic::DRAIN;

/// The links' MTU: without a tunnel, TCP segments fill it.
const LINK_MTU: usize = 1500;

/// Runs the probe streams and the TCP flows of `system` with each flow's
/// link chosen by `route(flow)` (probe flows and TCP flows alike, by their
/// index, as the real adapters pin them).
pub(super) fn run_pinned(
    scenario: &Scenario,
    system: SystemKind,
    route: impl Fn(u16) -> usize,
) -> SystemLogs {
    let id = stream_id(system);
    let mut probes = Streams {
        up: ProbeStream::for_scenario(scenario, Direction::Up, Duration::ZERO, id),
        down: ProbeStream::for_scenario(scenario, Direction::Down, Duration::ZERO, id),
    };
    let plan = TcpPlan::for_scenario(scenario, LINK_MTU);
    let mut tcp = TcpTraffic::new(plan, Duration::ZERO, scenario.duration);
    let mut links = SimLinks::new(scenario);
    let mut wire = Wire::default();
    let mut segment = vec![0; LINK_MTU];
    let timeline = scenario.timeline();
    let mut steps = timeline.iter().peekable();
    let stop = scenario.duration + DRAIN;
    let mut now = Duration::ZERO;
    loop {
        for direction in [Direction::Up, Direction::Down] {
            tcp.poll_transmit(now, direction, &mut segment, |flow, packet| {
                let link = route(flow as u16);
                let verdict = links.carry_packet(now, link, direction, packet.len());
                wire.put(verdict, link, direction, packet);
            });
        }
        let next = [
            probes.next_due(),
            steps.peek().map(|step| step.at),
            tcp.poll_timeout(),
            wire.next_arrival(),
        ];
        let Some(next) = next.into_iter().flatten().min().filter(|&at| at <= stop) else {
            break;
        };
        now = now.max(next);
        while let Some(step) = steps.next_if(|step| step.at <= now) {
            links.apply(step);
        }
        for (stream, direction) in [
            (&mut probes.up, Direction::Up),
            (&mut probes.down, Direction::Down),
        ] {
            send_due_probes(stream, direction, now, stop, &mut links, &route);
        }
        while let Some(arrived) = wire.pop_arrived(now) {
            tcp.handle_packet(now, arrived.direction, wire.datagram(arrived));
            wire.release(arrived);
        }
        if tcp.poll_timeout().is_some_and(|at| at <= now) {
            tcp.handle_timeout(now);
        }
    }
    let flow_links = (0..PROBE_FLOWS)
        .filter_map(|flow| scenario.links.get(route(flow)))
        .map(|link| link.name.clone())
        .collect();
    system_logs(
        scenario,
        system,
        probes,
        tcp,
        links.carried(),
        Some(flow_links),
    )
}

/// Sends the probes of `stream` due by `now` over their flows' links in
/// `direction` and logs those that arrive by `stop`.
fn send_due_probes(
    stream: &mut ProbeStream,
    direction: Direction,
    now: Duration,
    stop: Duration,
    links: &mut SimLinks,
    route: impl Fn(u16) -> usize,
) {
    while stream.next_due().is_some_and(|(_, at)| at <= now) {
        let header = stream.send_next(now);
        let verdict = links.carry(now, route(header.flow), direction, stream.size());
        if let Verdict::Deliver { at, duplicate_at } = verdict {
            for arrival in std::iter::once(at).chain(duplicate_at) {
                if arrival <= stop {
                    stream.received(&header, arrival);
                }
            }
        }
    }
}
