//! Multipath behaviour of a client and gateway on model links, on virtual
//! time: failover when a link silently dies, recovery when it heals, a lossy
//! link, and how fast a silent link leaves the scheduler's map.
//!
//! Every scenario is deterministic (seeded loss, fixed delays), so each
//! assertion holds exactly, run after run.

mod harness;

use std::time::Duration;

use circus_core::LinkId;
use circus_core::engine::Config;
use circus_core::paths::PathState;
use circus_core::scheduler::Policy;
use harness::{ClientSpec, FlowReport, LinkSpec, Sim};

const FAST: LinkId = LinkId(0);

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn config(policy: Policy) -> Config {
    Config {
        policy,
        ..Config::default()
    }
}

/// Delivered packets are never duplicated and always in order.
fn assert_clean(r: &FlowReport, what: &str) {
    assert_eq!(r.duplicates, 0, "{what}: duplicates delivered: {r:?}");
    assert_eq!(r.out_of_order, 0, "{what}: delivered out of order: {r:?}");
}

/// Result of the silent-blackhole scenario.
struct Blackhole {
    sim: Sim,
    report: FlowReport,
}

/// Blackhole timeline: traffic from 1 s, the 20 ms link silently dead from
/// 10 s to 12 s, traffic until 14 s, measured from 3 s (links are up by then).
const BLACKHOLE_AT: f64 = 10.0;
const HEAL_AT: f64 = 12.0;
const TRAFFIC_END: f64 = 14.0;
const MEASURE_FROM: f64 = 3.0;

/// 3 links of 20/40/80 ms RTT, 1000 packets/s of 200 bytes client to
/// gateway, the 20 ms link silently blackholed at 10 s and healed at 12 s.
fn blackhole(policy: Policy) -> Blackhole {
    let links = [20, 40, 80].map(LinkSpec::rtt_ms);
    let mut sim = Sim::new(config(policy), vec![ClientSpec::new(1, &links)]);
    let flow = sim.add_flow(0, true, 1000, 200, secs(1.0), secs(TRAFFIC_END));
    sim.run_until(secs(BLACKHOLE_AT));
    assert_eq!(
        sim.clients[0].engine.link_state(FAST),
        Some(PathState::Up),
        "{policy}: the fast link is up before it fails"
    );
    sim.clients[0].link(FAST).blackholed = true;
    sim.run_until(secs(HEAL_AT));
    sim.clients[0].link(FAST).blackholed = false;
    sim.run_until(secs(TRAFFIC_END + 1.0));
    let report = sim.report(flow, secs(MEASURE_FROM), secs(TRAFFIC_END));
    Blackhole { sim, report }
}

/// What every policy must show around the blackhole: clean delivery, the
/// dead link out of use, and back within 1 s of healing.
fn assert_blackhole_common(policy: Policy, b: &Blackhole) {
    assert_clean(&b.report, &policy.to_string());
    assert!(
        b.report.sent > 10_000,
        "{policy}: traffic ran: {:?}",
        b.report.sent
    );
    let during = b.sim.state_at(0, FAST, secs(HEAL_AT - 0.1));
    assert!(
        !matches!(during, Some(PathState::Up) | Some(PathState::Suspect)),
        "{policy}: the blackholed link is out of the map before it heals, state {during:?}"
    );
    let back = b
        .sim
        .first_time_in(0, FAST, PathState::Up, secs(HEAL_AT))
        .expect("the healed link returns to Up");
    assert!(
        back <= secs(HEAL_AT + 1.0),
        "{policy}: the healed link is Up within 1 s, took {:?}",
        back - secs(HEAL_AT)
    );
}

#[test]
fn balanced_failover_has_no_delivery_gap_over_50ms() {
    let b = blackhole(Policy::Balanced);
    assert_blackhole_common(Policy::Balanced, &b);
    assert!(
        b.report.max_gap <= Duration::from_millis(50),
        "balanced: longest delivery gap {:?} ending at {:?}",
        b.report.max_gap,
        b.report.max_gap_end.map(|t| t - b.sim.start)
    );
}

#[test]
fn adaptive_failover_loses_nothing() {
    let b = blackhole(Policy::Adaptive);
    assert_blackhole_common(Policy::Adaptive, &b);
    assert_eq!(b.report.lost, Vec::<u64>::new(), "adaptive: packets lost");
}

#[test]
fn redundant_failover_loses_nothing() {
    let b = blackhole(Policy::Redundant);
    assert_blackhole_common(Policy::Redundant, &b);
    assert_eq!(b.report.lost, Vec::<u64>::new(), "redundant: packets lost");
}

/// 1000 packets/s for 10 s over `links`; the delivery report from 3 s on.
fn steady(policy: Policy, links: &[LinkSpec]) -> FlowReport {
    let mut sim = Sim::new(config(policy), vec![ClientSpec::new(1, links)]);
    let flow = sim.add_flow(0, true, 1000, 200, secs(1.0), secs(10.0));
    sim.run_until(secs(11.0));
    sim.report(flow, secs(MEASURE_FROM), secs(10.0))
}

/// A link dropping 30% of packets (each way) next to two clean ones must not
/// make delivery worse than leaving that link out; the per-policy promises of
/// the blackhole case hold as well.
fn lossy_link_does_not_hurt(policy: Policy) {
    let clean = [LinkSpec::rtt_ms(40), LinkSpec::rtt_ms(80)];
    let with_lossy = [
        LinkSpec::rtt_ms(20).with_loss(0.3),
        LinkSpec::rtt_ms(40),
        LinkSpec::rtt_ms(80),
    ];
    let without = steady(policy, &clean);
    let with = steady(policy, &with_lossy);
    assert_clean(&without, "without the lossy link");
    assert_clean(&with, "with the lossy link");
    assert_eq!(with.sent, without.sent);
    assert!(
        with.delivered >= without.delivered,
        "{policy}: with the lossy link {} of {} delivered, without it {} (lost with: {:?})",
        with.delivered,
        with.sent,
        without.delivered,
        with.lost
    );
    match policy {
        Policy::Balanced => assert!(
            with.max_gap <= Duration::from_millis(50),
            "balanced: longest delivery gap {:?}",
            with.max_gap
        ),
        _ => assert_eq!(with.lost, Vec::<u64>::new(), "{policy}: packets lost"),
    }
}

#[test]
fn balanced_lossy_link_does_not_hurt() {
    lossy_link_does_not_hurt(Policy::Balanced);
}

#[test]
fn adaptive_lossy_link_does_not_hurt() {
    lossy_link_does_not_hurt(Policy::Adaptive);
}

#[test]
fn redundant_lossy_link_does_not_hurt() {
    lossy_link_does_not_hurt(Policy::Redundant);
}

#[test]
fn silent_30ms_link_leaves_the_map_within_150ms() {
    let links = [LinkSpec::rtt_ms(30), LinkSpec::rtt_ms(60)];
    let mut sim = Sim::new(config(Policy::Balanced), vec![ClientSpec::new(1, &links)]);
    sim.add_flow(0, true, 1000, 200, secs(1.0), secs(6.0));
    sim.run_until(secs(5.0));
    assert_eq!(sim.clients[0].engine.link_state(FAST), Some(PathState::Up));
    sim.clients[0].link(FAST).blackholed = true;
    let sent_before = data_sent(&sim, FAST);
    sim.run_until(secs(5.15));
    let state = sim.clients[0].engine.link_state(FAST);
    assert!(
        !matches!(state, Some(PathState::Up) | Some(PathState::Suspect)),
        "150 ms after going silent the 30 ms link is out of the map, state {state:?}"
    );
    let sent_at_150ms = data_sent(&sim, FAST);
    sim.run_until(secs(5.6));
    assert_eq!(
        data_sent(&sim, FAST),
        sent_at_150ms,
        "no data is scheduled on the silent link after it left the map"
    );
    assert!(
        sent_at_150ms > sent_before,
        "the link carried data before it was noticed"
    );
}

fn data_sent(sim: &Sim, link: LinkId) -> u64 {
    sim.clients[0]
        .engine
        .stats()
        .link(link)
        .map_or(0, |l| l.counters.data_sent)
}

#[test]
fn carrier_loss_moves_traffic_at_once_and_the_link_returns() {
    let links = [LinkSpec::rtt_ms(20), LinkSpec::rtt_ms(40)];
    let mut sim = Sim::new(config(Policy::Balanced), vec![ClientSpec::new(1, &links)]);
    let flow = sim.add_flow(0, true, 1000, 200, secs(1.0), secs(5.0));
    sim.run_until(secs(3.0));
    let now = sim.now;
    sim.clients[0].engine.link_down(now, FAST);
    sim.clients[0].link(FAST).blackholed = true;
    assert_eq!(
        sim.clients[0].engine.link_state(FAST),
        Some(PathState::Down)
    );
    sim.run_until(secs(4.0));
    let now = sim.now;
    sim.clients[0].link(FAST).blackholed = false;
    sim.clients[0].engine.link_up(now, FAST);
    sim.run_until(secs(6.0));
    let report = sim.report(flow, secs(2.0), secs(5.0));
    assert_clean(&report, "carrier loss");
    assert_eq!(
        report.lost,
        Vec::<u64>::new(),
        "in-flight data is resent elsewhere"
    );
    let back = sim
        .first_time_in(0, FAST, PathState::Up, secs(4.0))
        .expect("the link returns after carrier comes back");
    assert!(back <= secs(5.0), "back Up at {back:?}");
}

/// Data datagrams the gateway sent on `link` (downstream).
fn gateway_data_sent(sim: &Sim, link: LinkId) -> u64 {
    let stats = sim.gateway.stats();
    stats
        .sessions
        .first()
        .map_or(0, |(_, s)| s.link(link).map_or(0, |l| l.counters.data_sent))
}

/// Runs in 1 ms steps until both ends have put data on `link` again, and
/// returns how long each took (upstream, downstream), at most `limit`.
fn time_to_first_data(sim: &mut Sim, link: LinkId, limit: Duration) -> (Duration, Duration) {
    let start = sim.elapsed();
    let (up_before, down_before) = (data_sent(sim, link), gateway_data_sent(sim, link));
    let (mut up, mut down) = (None, None);
    while sim.elapsed() - start < limit && (up.is_none() || down.is_none()) {
        sim.run_for(Duration::from_millis(1));
        let waited = sim.elapsed() - start;
        if up.is_none() && data_sent(sim, link) > up_before {
            up = Some(waited);
        }
        if down.is_none() && gateway_data_sent(sim, link) > down_before {
            down = Some(waited);
        }
    }
    (up.unwrap_or(limit), down.unwrap_or(limit))
}

/// A 20 ms link beside a 40 ms one, traffic both ways, the fast link
/// silently dead for `outage` every `period` (`cycles` times from 3 s):
/// how long after each restore each end put data on it again.
fn restore_times(outage: f64, period: f64, cycles: u32) -> Vec<(Duration, Duration)> {
    let links = [LinkSpec::rtt_ms(20), LinkSpec::rtt_ms(40)];
    let mut sim = Sim::new(config(Policy::Balanced), vec![ClientSpec::new(1, &links)]);
    let end = 3.0 + period * f64::from(cycles) + 1.0;
    sim.add_flow(0, true, 1000, 200, secs(1.0), secs(end));
    sim.add_flow(0, false, 1000, 200, secs(1.0), secs(end));
    sim.run_until(secs(3.0));
    assert_eq!(sim.clients[0].engine.link_state(FAST), Some(PathState::Up));
    (0..cycles)
        .map(|cycle| {
            let at = 3.0 + period * f64::from(cycle);
            sim.run_until(secs(at));
            sim.clients[0].link(FAST).blackholed = true;
            sim.run_until(secs(at + outage));
            sim.clients[0].link(FAST).blackholed = false;
            time_to_first_data(&mut sim, FAST, secs(period - outage))
        })
        .collect()
}

/// The lab's complaint: after a 10 s outage a link carried data again only
/// 230-800 ms after its restore (glorytun: 13-68 ms). A probe every 50 ms
/// finds it, two more 20 ms apart confirm it: at most 50 ms + 2 RTT +
/// 40 ms, a few of its round trips, at both ends.
#[test]
fn restored_link_carries_data_within_a_few_round_trips() {
    let times = restore_times(10.0, 11.0, 1);
    eprintln!("restore to first data (up, down): {times:?}");
    let bound = Duration::from_millis(50 + 2 * 20 + 40 + 10);
    for (up, down) in times {
        assert!(up <= bound && down <= bound, "up {up:?} down {down:?}");
    }
}

/// A link down 2 s of every 5 s, as in the lab: it sat in `probing` for
/// 2.3 s after each restore, usable 0.7 s of each 3 s it worked. Failing
/// every 5 s is no flapping (a failure is forgiven per 2.5 s): every
/// restore is taken back as fast as the first.
#[test]
fn link_down_two_seconds_in_five_is_taken_back_at_once_each_time() {
    let times = restore_times(2.0, 5.0, 5);
    eprintln!("restore to first data (up, down): {times:?}");
    let bound = Duration::from_millis(50 + 2 * 20 + 40 + 10);
    for (cycle, (up, down)) in times.into_iter().enumerate() {
        assert!(
            up <= bound && down <= bound,
            "restore {cycle}: up {up:?} down {down:?}"
        );
    }
}

/// Changes of the fast link's state after `from`, as (time, new state).
fn fast_link_changes(sim: &Sim, from: Duration) -> Vec<(Duration, Option<PathState>)> {
    sim.transitions
        .iter()
        .filter(|t| t.2 == FAST && t.0 > sim.start + from)
        .map(|t| (t.0 - sim.start, t.3))
        .collect()
}

/// A 20 ms link dropping 30% of datagrams each way (half of all round
/// trips) next to two clean ones: random loss is not death. Each lost idle
/// probe used to make it Suspect and a few more take it Down, about 47
/// changes in 10 s; its state must stay put instead, while it still comes
/// up to carry what a lossy link may.
#[test]
fn lossy_link_state_is_calm() {
    for policy in [Policy::Balanced, Policy::Adaptive, Policy::Redundant] {
        let links = [
            LinkSpec::rtt_ms(20).with_loss(0.3),
            LinkSpec::rtt_ms(40),
            LinkSpec::rtt_ms(80),
        ];
        let mut sim = Sim::new(config(policy), vec![ClientSpec::new(1, &links)]);
        sim.add_flow(0, true, 1000, 200, secs(1.0), secs(11.0));
        sim.run_until(secs(11.0));
        let changes = fast_link_changes(&sim, Duration::ZERO);
        assert!(
            changes.len() <= 6,
            "{policy}: the lossy link changed state {} times in 11 s: {changes:?}",
            changes.len()
        );
        assert_eq!(
            sim.clients[0].engine.link_state(FAST),
            Some(PathState::Up),
            "{policy}: the lossy link is admitted: {changes:?}"
        );
    }
}

/// A link that dies for 500 ms every second is held out after its second
/// death instead of being re-admitted on every cycle (each recent demotion
/// doubles the good probes needed and their spacing), and returns once it
/// stays healthy.
#[test]
fn flapping_link_is_not_readmitted_every_cycle() {
    let links = [LinkSpec::rtt_ms(20), LinkSpec::rtt_ms(40)];
    let mut sim = Sim::new(config(Policy::Balanced), vec![ClientSpec::new(1, &links)]);
    let flow = sim.add_flow(0, true, 1000, 200, secs(1.0), secs(16.0));
    sim.run_until(secs(3.0));
    assert_eq!(sim.clients[0].engine.link_state(FAST), Some(PathState::Up));
    const CYCLES: u32 = 10;
    for cycle in 0..CYCLES {
        let t = 3.0 + f64::from(cycle);
        sim.clients[0].link(FAST).blackholed = true;
        sim.run_until(secs(t + 0.5));
        sim.clients[0].link(FAST).blackholed = false;
        sim.run_until(secs(t + 1.0));
    }
    let flapping_ends = 3.0 + f64::from(CYCLES);
    let changes = fast_link_changes(&sim, secs(3.0));
    let readmissions = changes
        .iter()
        .filter(|c| c.0 < secs(flapping_ends) && c.1 == Some(PathState::Up))
        .count();
    assert!(
        readmissions <= 2,
        "re-admitted {readmissions} times in {CYCLES} cycles: {changes:?}"
    );
    sim.run_until(secs(16.0));
    let back = sim
        .first_time_in(0, FAST, PathState::Up, secs(flapping_ends))
        .expect("the link returns once it stops flapping");
    assert!(
        back <= secs(flapping_ends + 3.0),
        "back Up {:?} after the flapping ended",
        back - secs(flapping_ends)
    );
    let report = sim.report(flow, secs(2.0), secs(16.0));
    assert_clean(&report, "flapping link");
}

/// A bulk flow losing packets on a lossy link leaves holes in its own stream
/// only: a light flow beside it is delivered without waiting for them (no
/// head-of-line blocking across flows), while each flow stays in order.
#[test]
fn a_lossy_bulk_flow_does_not_hold_back_a_light_one() {
    let links = [LinkSpec::rtt_ms(20).with_loss(0.05), LinkSpec::rtt_ms(40)];
    let mut sim = Sim::new(config(Policy::Balanced), vec![ClientSpec::new(1, &links)]);
    let bulk = sim.add_flow(0, true, 2000, 1200, secs(1.0), secs(6.0));
    let light = sim.add_flow(0, true, 100, 100, secs(1.0), secs(6.0));
    sim.run_until(secs(7.0));
    let bulk = sim.report(bulk, secs(MEASURE_FROM), secs(6.0));
    let light = sim.report(light, secs(MEASURE_FROM), secs(6.0));
    assert_clean(&bulk, "bulk");
    assert_clean(&light, "light");
    assert!(
        bulk.latency(0.9) > Duration::from_millis(20),
        "the bulk flow must wait for its resends for this test to mean anything: p90 {:?}",
        bulk.latency(0.9)
    );
    // One way is 10 ms on the lossy link, 20 ms on the other; the light
    // flow waits only when one of its own packets was lost (5%).
    assert!(
        light.latency(0.9) <= Duration::from_millis(21),
        "light flow p90 latency {:?} (bulk p90 {:?})",
        light.latency(0.9),
        bulk.latency(0.9)
    );
}
