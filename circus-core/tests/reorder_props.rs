//! Properties of the reorder buffer under arbitrary arrival patterns, driven in
//! virtual time (one base `Instant` plus offsets) the way the engine drives it:
//! insert each arrival, drain, and wake at `poll_timeout`.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use circus_core::reorder::{ReorderBuffer, ReorderConfig};
use proptest::prelude::*;

/// One copy of packet `seq` of flow `flow` reaching the receiver `at_us`
/// after the start; the flow's previous packet was `flow_gap` sequence
/// numbers back (0: it is the flow's first).
#[derive(Debug, Clone, Copy)]
struct Arrival {
    seq: u64,
    flow: u8,
    flow_gap: u32,
    at_us: u64,
}

/// What the receiver saw: the first arrival time of every packet and the
/// deliveries in order, as (seq, delivered at).
struct Run {
    first_arrival: BTreeMap<u64, u64>,
    delivered: Vec<(u64, u64)>,
    max_len: usize,
    buffer: ReorderBuffer,
}

fn run(config: ReorderConfig, hold: Duration, mut arrivals: Vec<Arrival>) -> Run {
    arrivals.sort_by_key(|a| a.at_us);
    let base = Instant::now();
    let at = |us: u64| base + Duration::from_micros(us);
    let mut buffer = ReorderBuffer::new(config);
    buffer.set_hold_time(hold);
    let mut first_arrival = BTreeMap::new();
    let mut delivered = Vec::new();
    let mut max_len = 0;
    let mut out = vec![0u8; config.max_packet_size];
    let mut next = 0;
    let mut now_us = 0u64;
    loop {
        let next_arrival = arrivals.get(next).map(|a| a.at_us);
        let timeout = buffer
            .poll_timeout()
            .map(|t| t.saturating_duration_since(base).as_micros() as u64);
        now_us = match (next_arrival, timeout) {
            (None, None) => break,
            (Some(a), None) => a,
            (None, Some(t)) => t.max(now_us),
            (Some(a), Some(t)) => a.min(t.max(now_us)),
        };
        let mut drain = |buffer: &mut ReorderBuffer, delivered: &mut Vec<(u64, u64)>| {
            while let Some(len) = buffer.poll_deliver(at(now_us), &mut out) {
                let seq = u64::from_le_bytes(out[..8].try_into().unwrap());
                assert_eq!(len, 8 + (seq % 5) as usize, "packet bytes intact");
                delivered.push((seq, now_us));
            }
        };
        let before = delivered.len();
        drain(&mut buffer, &mut delivered);
        let woke_for_timeout = next_arrival != Some(now_us);
        assert!(
            !woke_for_timeout || delivered.len() > before,
            "poll_timeout asked for a wake-up at {now_us} us that delivered nothing"
        );
        while let Some(a) = arrivals.get(next).filter(|a| a.at_us == now_us) {
            let mut packet = [0u8; 13];
            packet[..8].copy_from_slice(&a.seq.to_le_bytes());
            buffer.insert(
                at(now_us),
                a.seq,
                a.flow_gap,
                &packet[..8 + (a.seq % 5) as usize],
            );
            first_arrival.entry(a.seq).or_insert(now_us);
            max_len = max_len.max(buffer.len());
            drain(&mut buffer, &mut delivered);
            next += 1;
        }
    }
    Run {
        first_arrival,
        delivered,
        max_len,
        buffer,
    }
}

/// Packets 0..n of up to `max_flows` flows, each sent at `seq * 1 ms` and
/// arriving after a random delay, some missing, some arriving twice.
fn arrivals(max_packets: u64, max_flows: u8) -> impl Strategy<Value = Vec<Arrival>> {
    prop::collection::vec(
        (0u64..200_000, 0u8..10, 0u64..200_000, 0..max_flows),
        1..max_packets as usize,
    )
    .prop_map(|packets| {
        let mut out = Vec::new();
        let mut last_of_flow = BTreeMap::new();
        for (seq, (delay, fate, copy_delay, flow)) in packets.into_iter().enumerate() {
            let seq = seq as u64;
            let sent = seq * 1_000;
            let flow_gap = last_of_flow
                .insert(flow, seq)
                .map_or(0, |last| (seq - last) as u32);
            let arrival = |at_us| Arrival {
                seq,
                flow,
                flow_gap,
                at_us,
            };
            match fate {
                0 => {} // lost
                1 => {
                    out.push(arrival(sent + delay));
                    out.push(arrival(sent + copy_delay));
                }
                _ => out.push(arrival(sent + delay)),
            }
        }
        out
    })
}

fn config(capacity: usize) -> ReorderConfig {
    ReorderConfig {
        max_hold: Duration::from_millis(150),
        capacity,
        max_packet_size: 16,
    }
}

/// Within each flow, delivered sequence numbers strictly increase.
fn assert_in_order_without_duplicates(
    arrivals: &[Arrival],
    delivered: &[(u64, u64)],
) -> Result<(), TestCaseError> {
    let flow_of: BTreeMap<u64, u8> = arrivals.iter().map(|a| (a.seq, a.flow)).collect();
    let mut last_of_flow = BTreeMap::new();
    for &(seq, at) in delivered {
        if let Some(previous) = last_of_flow.insert(flow_of[&seq], seq) {
            prop_assert!(
                previous < seq,
                "{seq} delivered at {at} us after {previous} of its flow"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_duplicates_nor_misorders(arr in arrivals(300, 4), hold_ms in 0u64..150) {
        let r = run(config(1024), Duration::from_millis(hold_ms), arr.clone());
        assert_in_order_without_duplicates(&arr, &r.delivered)?;
        prop_assert!(r.buffer.is_empty(), "everything is handed out in the end");
    }

    #[test]
    fn never_holds_a_packet_longer_than_the_hold_time(arr in arrivals(300, 4), hold_ms in 0u64..150) {
        let r = run(config(1024), Duration::from_millis(hold_ms), arr);
        for &(seq, at) in &r.delivered {
            let waited = at - r.first_arrival[&seq];
            prop_assert!(waited <= hold_ms * 1_000, "seq {seq} waited {waited} us");
        }
    }

    #[test]
    fn never_loses_a_packet_that_arrives_within_the_hold_time(
        arr in arrivals(300, 4), hold_ms in 0u64..150,
    ) {
        let hold_us = hold_ms * 1_000;
        let r = run(config(1024), Duration::from_millis(hold_ms), arr);
        let delivered: HashSet<u64> = r.delivered.iter().map(|d| d.0).collect();
        for (&seq, &arrived) in &r.first_arrival {
            // Its hole may be given up only when a later packet that arrived
            // before it had already waited the full hold time.
            let overtaken = r.first_arrival.range(seq + 1..)
                .any(|(_, &other)| other <= arrived && other + hold_us <= arrived);
            if !overtaken {
                prop_assert!(delivered.contains(&seq), "seq {seq} arrived at {arrived} us and was lost");
            }
        }
    }

    #[test]
    fn overflow_releases_oldest_without_panicking(arr in arrivals(300, 4), capacity in 1usize..16) {
        let r = run(config(capacity), Duration::from_millis(150), arr.clone());
        assert_in_order_without_duplicates(&arr, &r.delivered)?;
        // One spare slot takes the packet that triggers the release.
        prop_assert!(r.max_len <= capacity + 1, "held {} with capacity {capacity}", r.max_len);
        prop_assert_eq!(r.buffer.stats().dropped, 0, "a draining caller never loses a packet to overflow");
        // No sequence number is both delivered and counted lost.
        if let Some(&(last, _)) = r.delivered.iter().max() {
            prop_assert!(r.delivered.len() as u64 + r.buffer.stats().lost <= last + 1);
        }
    }

    /// Whatever a peer sends (any sequence number, flow gap, length) and
    /// however the engine tunes the buffer, nothing panics, nothing is
    /// delivered twice, and a single flow stays in order.
    #[test]
    fn arbitrary_input_never_panics(
        inserts in prop::collection::vec(
            (
                prop_oneof![any::<u64>(), 0u64..64, (u64::MAX - 64)..=u64::MAX],
                prop_oneof![Just(1u32), any::<u32>(), 0u32..4],
                0usize..40,
                0u64..50_000,
            ),
            0..200,
        ),
        hold_ms in 0u64..500,
    ) {
        let base = Instant::now();
        let mut buffer = ReorderBuffer::new(config(8));
        buffer.set_hold_time(Duration::from_millis(hold_ms));
        let single_flow = inserts.iter().all(|&(_, gap, _, _)| gap == 1);
        let mut now = base;
        let mut out = [0u8; 16];
        let mut last: Option<u64> = None;
        let mut seen = HashSet::new();
        for (seq, flow_gap, extra, advance_us) in inserts {
            now += Duration::from_micros(advance_us);
            let mut packet = [0u8; 48];
            packet[..8].copy_from_slice(&seq.to_le_bytes());
            buffer.insert(now, seq, flow_gap, &packet[..8 + extra]);
            let _ = buffer.poll_timeout();
            while let Some(n) = buffer.poll_deliver(now, &mut out) {
                prop_assert!((8..=16).contains(&n));
                let seq = u64::from_le_bytes(out[..8].try_into().unwrap());
                prop_assert!(seen.insert(seq), "{seq} delivered twice");
                if single_flow {
                    prop_assert!(last.is_none_or(|l| seq > l), "{seq} after {last:?}");
                }
                last = Some(seq);
            }
        }
    }

    /// A packet waits for nothing but its own flow: it is out as soon as it
    /// arrived and its flow's previous packet was delivered, or at most the
    /// hold time after it arrived when that one never shows up.
    #[test]
    fn a_packet_waits_only_for_its_own_flow(arr in arrivals(300, 4), hold_ms in 0u64..150) {
        let hold_us = hold_ms * 1_000;
        let r = run(config(1024), Duration::from_millis(hold_ms), arr.clone());
        assert_in_order_without_duplicates(&arr, &r.delivered)?;
        let delivered_at: BTreeMap<u64, u64> = r.delivered.iter().copied().collect();
        let gap_of: BTreeMap<u64, u32> = arr.iter().map(|a| (a.seq, a.flow_gap)).collect();
        for &(seq, at) in &r.delivered {
            let arrived = r.first_arrival[&seq];
            let predecessor = (gap_of[&seq] > 0).then(|| seq - u64::from(gap_of[&seq]));
            let ready = match predecessor.map(|p| delivered_at.get(&p)) {
                None => arrived,
                Some(Some(&p_at)) => arrived.max(p_at),
                Some(None) => arrived + hold_us,
            };
            prop_assert!(at <= ready, "{seq} delivered at {at} us, ready at {ready} us");
        }
    }
}
