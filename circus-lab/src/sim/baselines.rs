//! The baselines without a tunnel, on the same link models as circus and
//! with the same choices as their real adapters ([`crate::systems`]):
//! `single-link` sends every probe over the link that is best at the start;
//! `multiwan` pins each flow to one link by hash, as pfSense/OPNsense
//! gateway groups do, and never moves it: while its link is dead the flow
//! loses everything, and it resumes only when that link does.
//!
//! Without a tunnel there is nothing to simulate between the endpoints but
//! the links: a probe's fate is its link model's verdict, and the TCP flows
//! send their segments straight over the link their flow is pinned to
//! (data one way, ACKs back the other way of the same link), on the same
//! link models as the probes, so both share the queues as on a real link.

use std::time::Duration;

use super::links::SimLinks;
use super::probe::ProbeStream;
use super::system_run::SystemRun;
use super::tcp::{TcpPlan, TcpTraffic};
use super::wire::Wire;
use super::{DRAIN, stream_id};
use crate::emulator::model::{Direction, Verdict};
use crate::scenario::{Scenario, SystemKind};

/// The links' MTU: without a tunnel, TCP segments fill it.
const LINK_MTU: usize = 1500;

/// Runs the probe stream and the TCP flows of `system` with each flow's
/// link chosen by `route(flow)` (probe flows and TCP flows alike, by their
/// index, as the real adapters pin them).
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
    let plan = TcpPlan {
        up_flows: scenario.traffic.tcp.flows,
        down_flows: 0,
        mtu: LINK_MTU,
    };
    let mut tcp = TcpTraffic::new(plan, Duration::ZERO, scenario.duration);
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
        let next_probe = probes.next_due().map(|(_, at)| at);
        let next_step = steps.peek().map(|step| step.at);
        let Some(next) = [
            next_probe,
            next_step,
            tcp.poll_timeout(),
            wire.next_arrival(),
        ]
        .into_iter()
        .flatten()
        .min()
        .filter(|&next| next <= stop) else {
            break;
        };
        now = now.max(next);
        while let Some(step) = steps.next_if(|step| step.at <= now) {
            links.apply(step);
        }
        while probes.next_due().is_some_and(|(_, at)| at <= now) {
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
        while let Some(arrived) = wire.pop_arrived(now) {
            tcp.handle_packet(now, arrived.direction, wire.datagram(arrived));
            wire.release(arrived);
        }
        if tcp.poll_timeout().is_some_and(|at| at <= now) {
            tcp.handle_timeout(now);
        }
    }
    let (tcp, _) = tcp.into_logs();
    SystemRun {
        system,
        probes: probes.into_log(),
        tcp,
        links: links.carried(),
    }
}
