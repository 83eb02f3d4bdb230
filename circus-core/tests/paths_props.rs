//! Properties of per-link loss detection and ack tracking under arbitrary
//! event sequences: no panic, accounting that adds up, acks that tell the truth.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use circus_core::paths::{AckTracker, Path, PathConfig, PathState};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Event {
    Send {
        bytes: usize,
        ack_eliciting: bool,
    },
    /// Ack arbitrary ranges, as a buggy or hostile peer might.
    Ack {
        ranges: Vec<(u64, u64)>,
        delay_us: u32,
    },
    Wait {
        ms: u64,
    },
    Carrier {
        up: bool,
    },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (1usize..1500, any::<bool>()).prop_map(|(bytes, ack_eliciting)| Event::Send { bytes, ack_eliciting }),
        3 => (prop::collection::vec((0u64..80, 0u64..80), 0..6), any::<u32>())
            .prop_map(|(ranges, delay_us)| Event::Ack { ranges, delay_us }),
        3 => (0u64..400).prop_map(|ms| Event::Wait { ms }),
        1 => any::<bool>().prop_map(|up| Event::Carrier { up }),
    ]
}

/// Maximal runs of consecutive numbers, newest first.
fn ranges_of(set: &BTreeSet<u64>) -> Vec<RangeInclusive<u64>> {
    let mut ranges: Vec<RangeInclusive<u64>> = Vec::new();
    for &pn in set.iter().rev() {
        match ranges.last_mut() {
            Some(r) if *r.start() == pn + 1 => *r = pn..=*r.end(),
            _ => ranges.push(pn..=pn),
        }
    }
    ranges
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the peer acks and whenever timers run, bytes in flight equal
    /// the bytes of the packets the path still reports in flight, and the
    /// estimates stay in range.
    #[test]
    fn accounting_adds_up_under_any_events(events in prop::collection::vec(event(), 0..200)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut path = Path::new(PathConfig::default(), now);
        let mut sizes = BTreeMap::new();
        for event in events {
            match event {
                Event::Send { bytes, ack_eliciting } => {
                    let pn = path.next_pn();
                    path.on_sent(now, pn, bytes, ack_eliciting);
                    sizes.insert(pn, bytes as u64);
                }
                Event::Ack { ranges, delay_us } => {
                    let ranges = ranges.into_iter().map(|(a, b)| a..=b);
                    path.on_ack(now, ranges, Duration::from_micros(u64::from(delay_us)));
                }
                Event::Wait { ms } => {
                    now += Duration::from_millis(ms);
                    if path.poll_timeout().is_some_and(|t| t <= now) {
                        path.on_timeout(now);
                    }
                }
                Event::Carrier { up } => path.set_carrier(now, up),
            }
            let in_flight: u64 = path.in_flight_pns().map(|pn| sizes[&pn]).sum();
            prop_assert_eq!(path.bytes_in_flight(), in_flight);
            prop_assert!((0.0..=1.0).contains(&path.loss_rate()));
            prop_assert!(path.poll_timeout().is_none_or(|t| t >= t0));
        }
    }

    /// The tracker agrees with a plain model: remember every packet number
    /// received, and when that makes more than `max_ack_ranges` ranges,
    /// forget the oldest range. Duplicates of remembered numbers are refused.
    #[test]
    fn ack_ranges_match_a_simple_model(pns in prop::collection::vec(0u64..300, 1..400)) {
        let config = PathConfig { max_ack_ranges: 8, ..PathConfig::default() };
        let now = Instant::now();
        let mut tracker = AckTracker::new(&config);
        let mut remembered = BTreeSet::new();
        for pn in pns {
            let new = remembered.insert(pn);
            let mut model = ranges_of(&remembered);
            while model.len() > 8 {
                let oldest = model.pop().unwrap();
                remembered.retain(|p| !oldest.contains(p));
            }
            prop_assert_eq!(tracker.on_received(now, pn, true), new);
            prop_assert_eq!(tracker.ranges().collect::<Vec<_>>(), model);
        }
    }

    /// On a clean link of any RTT, with packets sent at any pace, every packet
    /// is acknowledged, none is declared lost, and the link stays usable once up.
    #[test]
    fn clean_link_loses_nothing(rtt_ms in 1u64..700, gaps in prop::collection::vec(0u64..50, 1..300)) {
        let config = PathConfig::default();
        let t0 = Instant::now();
        let one_way = Duration::from_millis(rtt_ms) / 2;
        let mut path = Path::new(config, t0);
        let mut tracker = AckTracker::new(&config);
        // Bring the link up with probes.
        let mut now = t0;
        while path.state() != PathState::Up {
            let pn = path.next_pn();
            path.on_sent(now, pn, 60, true);
            tracker.on_received(now + one_way, pn, true);
            tracker.ack_immediately(now + one_way);
            let ranges: Vec<_> = tracker.ranges().collect();
            tracker.on_ack_sent();
            now += one_way * 2;
            path.on_ack(now, ranges, Duration::ZERO);
            now += config.probe_interval;
            prop_assert!(now - t0 < Duration::from_secs(10), "never came up");
        }
        // Packets and acks in flight, in virtual time.
        let mut to_receiver = std::collections::VecDeque::new();
        let mut to_sender = std::collections::VecDeque::new();
        let mut pending = gaps.into_iter();
        let mut next_send = Some(now);
        let mut settled = false;
        let mut end: Option<Instant> = None;
        let mut data = BTreeSet::new();
        for _ in 0..100_000 {
            let wake = [
                next_send,
                to_receiver.front().map(|p: &(Instant, u64)| p.0),
                to_sender.front().map(|a: &(Instant, Vec<RangeInclusive<u64>>, Duration)| a.0),
                tracker.ack_due(),
                path.poll_timeout(),
            ].into_iter().flatten().min();
            // Runs on (idle probes included) until 2 s after the last packet.
            let Some(wake) = wake.filter(|&w| end.is_none_or(|end| w <= end)) else {
                settled = true;
                break;
            };
            now = now.max(wake);
            while to_receiver.front().is_some_and(|p| p.0 <= now) {
                let (_, pn) = to_receiver.pop_front().unwrap();
                tracker.on_received(now, pn, true);
            }
            if tracker.ack_due().is_some_and(|t| t <= now) {
                let delay = tracker.ack_delay(now);
                to_sender.push_back((now + one_way, tracker.ranges().collect(), delay));
                tracker.on_ack_sent();
            }
            while to_sender.front().is_some_and(|a| a.0 <= now) {
                let (_, ranges, delay) = to_sender.pop_front().unwrap();
                let outcome = path.on_ack(now, ranges, delay);
                prop_assert_eq!(outcome.lost, 0);
            }
            if path.poll_timeout().is_some_and(|t| t <= now) {
                path.on_timeout(now);
            }
            if path.wants_probe(now) {
                let pn = path.next_pn();
                path.on_sent(now, pn, 60, true);
                to_receiver.push_back((now + one_way, pn));
            }
            if next_send.is_some_and(|t| t <= now) {
                let pn = path.next_pn();
                path.on_sent(now, pn, 1000, true);
                data.insert(pn);
                to_receiver.push_back((now + one_way, pn));
                next_send = pending.next().map(|gap| now + Duration::from_millis(gap));
                if next_send.is_none() {
                    end = Some(now + Duration::from_secs(2));
                }
            }
            prop_assert!(path.state().is_usable(), "{:?} at {:?}", path.state(), now - t0);
        }
        prop_assert!(settled, "the event loop kept waking without progress");
        let data_in_flight: Vec<u64> = path.in_flight_pns().filter(|pn| data.contains(pn)).collect();
        prop_assert!(data_in_flight.is_empty(), "never acked: {:?}", data_in_flight);
        prop_assert_eq!(path.stats().packets_lost, 0);
    }
}
