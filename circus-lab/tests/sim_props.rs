//! Property tests of circus on the virtual-time simulator: random link sets
//! and random flap schedules, with at least one link that stays healthy.
//!
//! - circus never delivers a duplicate, nor a packet out of order within
//!   its flow;
//! - after each event, delivery recovers within a bound derived from the
//!   links' round-trip times: every lost probe was sent shortly after an
//!   event, and no gap between deliveries is longer than that bound;
//! - the adaptive policy loses nothing when one link at a time dies silently.
//!
//! Case counts are modest so CI stays fast; each case simulates seconds of
//! traffic at hundreds of probes per second through the real engines.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use circus_lab::emulator::model::LinkParams;
use circus_lab::metrics::SystemLogs;
use circus_lab::scenario::{
    Action, Backend, Event, LinkSpec, ProbeSpec, Scenario, SystemKind, TcpSpec, Traffic,
    TrafficDirection,
};
use circus_lab::sim;
use circus_lab::traffic::MonoNanos;
use circus_lab::traffic::probe::ProbeRecord;
use proptest::prelude::*;

/// Probe rate of every case: fine enough to see a 4 ms gap.
const PROBE_RATE_PPS: u64 = 250;
const PROBE_SIZE: u32 = 200;

/// A link that never flaps; `lossy` adds random loss and duplication, which
/// the tunnel must hide without breaking order.
fn arb_link(lossy: bool) -> impl Strategy<Value = LinkParams> {
    let max_loss = if lossy { 0.03 } else { 0.0 };
    let max_duplicate = if lossy { 0.01 } else { 0.0 };
    (
        5u64..=120,
        0u64..=100,
        prop::option::of(5u64..=50),
        0.0..=max_loss,
        0.0..=max_duplicate,
    )
        .prop_map(|(delay_ms, jitter_pct, rate_mbit, loss, duplicate)| {
            let delay = Duration::from_millis(delay_ms);
            // Jitter up to a fifth of the delay, as on a real access link.
            let jitter = delay * jitter_pct as u32 / 500;
            LinkParams {
                delay,
                jitter,
                loss,
                duplicate,
                // At least 5 Mbit/s: any one link carries the whole stream
                // (and the redundant policy's copies), so no queue drops.
                rate_bps: rate_mbit.map(|mbit| mbit * 1_000_000),
                ..LinkParams::default()
            }
        })
}

/// One failure: after `gap` of calm, the link goes silent (blackhole) or
/// loses carrier (down) for `length`.
#[derive(Clone, Copy, Debug)]
struct Flap {
    gap: Duration,
    silent: bool,
    length: Duration,
}

fn arb_flap() -> impl Strategy<Value = Flap> {
    (500u64..=4000, any::<bool>(), 200u64..=3000).prop_map(|(gap, silent, length)| Flap {
        gap: Duration::from_millis(gap),
        silent,
        length: Duration::from_millis(length),
    })
}

fn arb_policy() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["balanced", "redundant", "adaptive", "round-robin"])
}

/// The policies meant to fail over. Round-robin ignores latency by design:
/// with links whose delays differ by more than the reorder cap it loses
/// packets without any event, so it is left out of the recovery property.
fn arb_failover_policy() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["balanced", "redundant", "adaptive"])
}

fn scenario(
    links: Vec<LinkParams>,
    mut events: Vec<Event>,
    duration: Duration,
    policy: &str,
    seed: u64,
) -> Scenario {
    events.sort_by_key(|event| event.at);
    Scenario {
        name: "sim-props".into(),
        file: PathBuf::from("sim-props.toml"),
        duration,
        seed,
        backend: Backend::Userspace,
        emulator_realtime: true,
        systems: vec![SystemKind::Circus.into()],
        policy: Some(policy.into()),
        links: links
            .into_iter()
            .enumerate()
            .map(|(index, params)| LinkSpec {
                name: format!("link{index}"),
                params,
            })
            .collect(),
        events,
        traffic: Traffic {
            probe: ProbeSpec {
                rate_pps: PROBE_RATE_PPS,
                size: PROBE_SIZE,
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

/// Events of flapping link `link`, back to back from the start, ending
/// before `duration`.
fn flap_events(link: usize, flaps: &[Flap], duration: Duration) -> Vec<Event> {
    let mut at = Duration::ZERO;
    let mut events = Vec::new();
    for flap in flaps {
        at += flap.gap;
        if at + flap.length >= duration {
            break;
        }
        events.push(Event {
            at,
            link: format!("link{link}"),
            link_index: link,
            action: if flap.silent {
                Action::Blackhole
            } else {
                Action::Down
            },
            duration: Some(flap.length),
        });
        at += flap.length;
    }
    events
}

fn run_circus(scenario: &Scenario) -> SystemLogs {
    sim::run_system(scenario, SystemKind::Circus).unwrap_or_else(|e| panic!("{e}"))
}

/// Time since the scenario's zero on the simulation's clock.
fn since_start(run: &SystemLogs, at: MonoNanos) -> Duration {
    at.saturating_since(run.origin)
}

/// Within each flow (what one connection sees), sequence numbers in
/// delivery order must strictly increase. Across flows the tunnel's fair
/// queue may legitimately let one flow's packets overtake another's.
fn assert_in_order_without_duplicates(run: &SystemLogs) -> Result<(), TestCaseError> {
    let mut last_of_flow: HashMap<u16, &ProbeRecord> = HashMap::new();
    for record in &run.up.probes.received.records {
        if let Some(previous) = last_of_flow.insert(record.flow, record) {
            prop_assert!(
                previous.seq < record.seq,
                "flow {}: probe {} delivered at {:?} after probe {} at {:?}",
                record.flow,
                record.seq,
                since_start(run, record.received),
                previous.seq,
                since_start(run, previous.received)
            );
        }
    }
    Ok(())
}

/// Sequence numbers of the probes that never arrived.
fn lost_probes(run: &SystemLogs) -> Vec<u64> {
    let mut delivered = vec![false; run.up.probes.sent.sent_at.len()];
    for record in &run.up.probes.received.records {
        if let Some(seen) = delivered.get_mut(record.seq as usize) {
            *seen = true;
        }
    }
    (0..delivered.len() as u64)
        .filter(|&seq| !delivered[seq as usize])
        .collect()
}

/// Worst round trip of a link: both ways at full delay plus jitter.
fn rtt(params: &LinkParams) -> Duration {
    2 * (params.delay + params.jitter)
}

/// How long after an event circus may still lose probes or leave a gap:
/// the failed link is noticed within a few of its own round trips (RFC
/// 9002 probe timeouts, plus the ack delay), and what it swallowed is
/// resent over a surviving link within two of that link's round trips.
fn recovery_bound(failed: &LinkParams, survivors: &[&LinkParams]) -> Duration {
    let slowest_survivor = survivors.iter().map(|p| rtt(p)).max().unwrap_or_default();
    4 * rtt(failed) + 2 * slowest_survivor + Duration::from_millis(150)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    /// With one healthy link, lossy links flapping at random and any policy,
    /// circus delivers every probe at most once and in order within its flow.
    #[test]
    fn never_a_duplicate_or_out_of_order(
        healthy in arb_link(true),
        flapping in prop::collection::vec((arb_link(true), prop::collection::vec(arb_flap(), 1..4)), 1..3),
        policy in arb_policy(),
        seed: u64,
    ) {
        let duration = Duration::from_secs(8);
        let mut links = vec![healthy];
        let mut events = Vec::new();
        for (index, (params, flaps)) in flapping.into_iter().enumerate() {
            links.push(params);
            events.extend(flap_events(index + 1, &flaps, duration));
        }
        let run = run_circus(&scenario(links, events, duration, policy, seed));
        prop_assert!(!run.up.probes.received.records.is_empty());
        assert_in_order_without_duplicates(&run)?;
    }

    /// Loss-free links (so every loss is the events' doing), one of them
    /// never failing: probes are lost only shortly after an event, and
    /// deliveries never pause for longer than the recovery bound.
    ///
    /// The persisted regression cases include the one that found the
    /// receiver dropping, as stale, a packet on a link just back in use that
    /// a faster link overtook (see
    /// `balanced_loses_nothing_when_a_link_loses_carrier`).
    #[test]
    fn delivery_recovers_within_a_bound_after_each_event(
        healthy in arb_link(false),
        flapping in prop::collection::vec((arb_link(false), prop::collection::vec(arb_flap(), 1..4)), 1..3),
        policy in arb_failover_policy(),
        seed: u64,
    ) {
        let duration = Duration::from_secs(8);
        let mut links = vec![healthy];
        let mut events = Vec::new();
        for (index, (params, flaps)) in flapping.into_iter().enumerate() {
            links.push(params);
            events.extend(flap_events(index + 1, &flaps, duration));
        }
        let scenario = scenario(links.clone(), events, duration, policy, seed);
        let run = run_circus(&scenario);
        assert_in_order_without_duplicates(&run)?;

        // Each event's start and end opens a window in which losses are allowed.
        let windows: Vec<(Duration, Duration)> = scenario
            .timeline()
            .iter()
            .map(|step| {
                let failed = &links[step.link_index];
                let survivors: Vec<&LinkParams> = links
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| *index != step.link_index)
                    .map(|(_, params)| params)
                    .collect();
                (step.at, step.at + recovery_bound(failed, &survivors))
            })
            .collect();
        for seq in lost_probes(&run) {
            let sent = since_start(&run, run.up.probes.sent.sent_at[seq as usize]);
            let excused = windows.iter().any(|(from, to)| (from..=to).contains(&&sent));
            prop_assert!(
                excused,
                "probe {seq} sent at {sent:?} lost outside every event's recovery window {windows:?}"
            );
        }
        // Without events, deliveries may still bunch up by as much as the
        // links' latencies differ (a packet held for one from a slower link).
        let longest_bound = windows.iter().map(|(from, to)| *to - *from).max().unwrap_or_default();
        let slowest_rtt = links.iter().map(rtt).max().unwrap_or_default();
        let interval = Duration::from_secs(1) / PROBE_RATE_PPS as u32;
        let gap_bound = longest_bound.max(slowest_rtt) + interval;
        for pair in run.up.probes.received.records.windows(2) {
            let gap = pair[1].received.saturating_since(pair[0].received);
            prop_assert!(
                gap <= gap_bound,
                "deliveries paused for {gap:?} after {:?} (bound {gap_bound:?})",
                since_start(&run, pair[0].received)
            );
        }
    }

    /// Adaptive policy, loss-free links, one silent death at a time with the
    /// others up: not a single probe is lost.
    ///
    /// One-way delays reach 120 ms, so what a silently dying link swallowed
    /// is resent well over 100 ms after the hole opened: the receiver must
    /// hold holes for as long as such a resend takes (the persisted
    /// regression cases lost probes when the hold was capped at 100 ms).
    #[test]
    fn adaptive_loses_nothing_when_one_link_at_a_time_dies_silently(
        links in prop::collection::vec(arb_link(false), 2..4),
        deaths in prop::collection::vec((any::<prop::sample::Index>(), 200u64..=2500), 1..4),
        seed: u64,
    ) {
        let duration = Duration::from_secs(9);
        // Each death starts once the previous link has been back for 2 s,
        // long enough to be proven up again.
        let mut at = Duration::from_secs(1);
        let mut events = Vec::new();
        for (which, length_ms) in deaths {
            let link = which.index(links.len());
            let length = Duration::from_millis(length_ms);
            if at + length >= duration {
                break;
            }
            events.push(Event {
                at,
                link: format!("link{link}"),
                link_index: link,
                action: Action::Blackhole,
                duration: Some(length),
            });
            at += length + Duration::from_secs(2);
        }
        let run = run_circus(&scenario(links, events, duration, "adaptive", seed));
        assert_in_order_without_duplicates(&run)?;
        let lost = lost_probes(&run);
        prop_assert!(lost.is_empty(), "{} probes lost: {:?}", lost.len(), &lost[..lost.len().min(20)]);
    }
}

/// Round-robin over two clean links (5 ms and 8 ms), one of them losing
/// its carrier for a moment, loses nothing: every packet on the slower link
/// is overtaken by the next one on the faster link, and the receiver must
/// wait for it, also for the first one at the start and after the return.
#[test]
fn round_robin_over_clean_links_loses_nothing() {
    let link = |delay_ms| LinkParams {
        delay: Duration::from_millis(delay_ms),
        ..LinkParams::default()
    };
    let events = vec![Event {
        at: Duration::from_millis(500),
        link: "link1".into(),
        link_index: 1,
        action: Action::Down,
        duration: Some(Duration::from_millis(200)),
    }];
    let duration = Duration::from_secs(3);
    let run = run_circus(&scenario(
        vec![link(5), link(8)],
        events,
        duration,
        "round-robin",
        1,
    ));
    assert_eq!(lost_probes(&run), Vec::<u64>::new());
}

/// Balanced policy, three clean links (50 ms, 6 ms, 78 ms one way); the
/// fastest loses its carrier, later the slowest: nothing may be lost, since
/// the client knows at once and no link drops anything. (Found by
/// `delivery_recovers_within_a_bound_after_each_event`.)
///
/// Probe 523 (2.092 s) goes over the 78 ms link, idle for data since the
/// carrier loss, and is overtaken on the 50 ms link: the gateway must wait
/// for it rather than give the hole up because every link that recently
/// carried data has passed it.
#[test]
fn balanced_loses_nothing_when_a_link_loses_carrier() {
    let link = |delay_us: u64, jitter_us: u64, rate_mbit: Option<u64>| LinkParams {
        delay: Duration::from_micros(delay_us),
        jitter: Duration::from_micros(jitter_us),
        rate_bps: rate_mbit.map(|mbit| mbit * 1_000_000),
        ..LinkParams::default()
    };
    let down = |link_index: usize, at_ms: u64, for_ms: u64| Event {
        at: Duration::from_millis(at_ms),
        link: format!("link{link_index}"),
        link_index,
        action: Action::Down,
        duration: Some(Duration::from_millis(for_ms)),
    };
    let links = vec![
        link(50_000, 8_700, Some(6)),
        link(6_000, 108, None),
        link(78_000, 1_404, None),
    ];
    let events = vec![down(1, 713, 2143), down(2, 3579, 2326)];
    let scenario = scenario(
        links,
        events,
        Duration::from_secs(8),
        "balanced",
        2_987_014_737_539_418_010,
    );
    assert_eq!(lost_probes(&run_circus(&scenario)), Vec::<u64>::new());
}
