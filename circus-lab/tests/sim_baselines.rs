//! The baselines in the simulator behave as the systems they model:
//! single-link uses the best link at the start and nothing else; multiwan
//! pins each flow to a link and loses exactly the flows of a dead link.

use std::path::PathBuf;
use std::time::Duration;

use circus_lab::emulator::model::LinkParams;
use circus_lab::metrics::SystemLogs;
use circus_lab::scenario::{
    Action, Backend, Event, LinkSpec, ProbeSpec, Scenario, SystemKind, TcpSpec, Traffic,
    TrafficDirection,
};
use circus_lab::sim;
use circus_lab::systems::{PROBE_FLOWS, multiwan};
use circus_lab::traffic::MonoNanos;

const RATE_PPS: u64 = 1000;

fn link(name: &str, delay_ms: u64) -> LinkSpec {
    LinkSpec {
        name: name.into(),
        params: LinkParams {
            delay: Duration::from_millis(delay_ms),
            ..LinkParams::default()
        },
    }
}

/// Two clean links, the first the faster (so the best at the start); it
/// goes silent from 2 s to 3 s of a 5 s run.
fn scenario() -> Scenario {
    Scenario {
        name: "baselines".into(),
        file: PathBuf::from("baselines.toml"),
        duration: Duration::from_secs(5),
        seed: 1,
        backend: Backend::Userspace,
        emulator_realtime: true,
        systems: vec![SystemKind::SingleLink.into(), SystemKind::Multiwan.into()],
        policy: None,
        links: vec![link("fast", 10), link("slow", 40)],
        events: vec![Event {
            at: Duration::from_secs(2),
            link: "fast".into(),
            link_index: 0,
            action: Action::Blackhole,
            duration: Some(Duration::from_secs(1)),
        }],
        traffic: Traffic {
            probe: ProbeSpec {
                rate_pps: RATE_PPS,
                size: 200,
                direction: TrafficDirection::Up,
            },
            tcp: TcpSpec {
                flows: 0,
                direction: TrafficDirection::Up,
            },
        },
        commands: Vec::new(),
    }
}

fn run(scenario: &Scenario, system: SystemKind) -> SystemLogs {
    sim::run_system(scenario, system).unwrap_or_else(|e| panic!("{e}"))
}

/// (seq, send time since zero) of every probe that never arrived.
fn lost(run: &SystemLogs) -> Vec<(u64, Duration)> {
    let mut delivered = vec![false; run.up.probes.sent.sent_at.len()];
    for record in &run.up.probes.received.records {
        delivered[record.seq as usize] = true;
    }
    let since = |at: MonoNanos| at.saturating_since(run.origin);
    (0..delivered.len())
        .filter(|&seq| !delivered[seq])
        .map(|seq| (seq as u64, since(run.up.probes.sent.sent_at[seq])))
        .collect()
}

fn in_blackhole(sent: Duration) -> bool {
    (Duration::from_secs(2)..Duration::from_secs(3)).contains(&sent)
}

#[test]
fn single_link_loses_everything_while_its_link_is_dead_and_only_then() {
    // The slow link is dead for longer (1 s to 4 s), so the fast one, dead
    // for 1 s, is the best link alone, and single-link takes it.
    let mut scenario = scenario();
    scenario.events.insert(
        0,
        Event {
            at: Duration::from_secs(1),
            link: "slow".into(),
            link_index: 1,
            action: Action::Blackhole,
            duration: Some(Duration::from_secs(3)),
        },
    );
    let run = run(&scenario, SystemKind::SingleLink);
    let lost = lost(&run);
    assert_eq!(lost.len() as u64, RATE_PPS, "one second of probes");
    assert!(lost.iter().all(|&(_, sent)| in_blackhole(sent)), "{lost:?}");
    assert_eq!(run.links[0].packets, 4 * RATE_PPS);
    assert_eq!(run.links[1].packets, 0, "the other link is never used");
}

#[test]
fn single_link_takes_the_link_that_delivers_best_alone_not_the_nearest() {
    // The fast link is dead for 1 s of 5; the slow one never: measured
    // alone, the slow link is the best, whatever the delays say.
    let scenario = scenario();
    let run = run(&scenario, SystemKind::SingleLink);
    assert!(lost(&run).is_empty(), "{:?}", lost(&run));
    assert_eq!(run.links[0].packets, 0, "the fast link is never used");
    let report = sim::run(&scenario, "test").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.outcome.summary.best_link.as_deref(), Some("slow"));
}

#[test]
fn multiwan_loses_exactly_the_flows_pinned_to_the_dead_link() {
    let scenario = scenario();
    let run = run(&scenario, SystemKind::Multiwan);
    let dead_flows: Vec<u16> = (0..PROBE_FLOWS)
        .filter(|&flow| multiwan::flow_link(scenario.seed, u64::from(flow), 2) == 0)
        .collect();
    assert!(!dead_flows.is_empty() && dead_flows.len() < usize::from(PROBE_FLOWS));
    let expected: Vec<u64> = (0..run.up.probes.sent.sent_at.len() as u64)
        .filter(|&seq| {
            let sent = run.up.probes.sent.sent_at[seq as usize].saturating_since(run.origin);
            in_blackhole(sent) && dead_flows.contains(&run.up.probes.sent.flow_of(seq))
        })
        .collect();
    let lost: Vec<u64> = lost(&run).into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(lost, expected);
    assert!(run.links.iter().all(|link| link.packets > 0));
}
