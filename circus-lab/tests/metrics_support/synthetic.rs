//! Synthetic probe logs whose metrics are known, shared by the metrics and
//! report tests (included with `#[path]`).

// Each test file that includes this uses a different subset.
#![allow(dead_code)]

use std::time::Duration;

use circus_lab::metrics::TimelineEvent;
use circus_lab::traffic::MonoNanos;
use circus_lab::traffic::probe::{ProbeLog, ProbeRecord, ReceiveLog, SendLog};

/// Scenario time zero of every synthetic run: an arbitrary monotonic reading.
pub const ORIGIN: MonoNanos = MonoNanos(5_000_000_000);

/// A stream of `rate_pps x duration` probes over `flows` flows, sent exactly
/// on schedule from [`ORIGIN`]; `latency(seq)` is `None` for a lost probe.
pub fn stream(
    rate_pps: u64,
    duration: Duration,
    flows: u16,
    latency: impl Fn(u64) -> Option<Duration>,
) -> ProbeLog {
    let count = duration.as_millis() as u64 * rate_pps / 1000;
    let interval = 1_000_000_000 / rate_pps;
    let sent_at: Vec<MonoNanos> = (0..count)
        .map(|seq| MonoNanos(ORIGIN.0 + seq * interval))
        .collect();
    let mut records: Vec<ProbeRecord> = sent_at
        .iter()
        .enumerate()
        .filter_map(|(seq, &sent)| {
            let seq = seq as u64;
            latency(seq).map(|latency| ProbeRecord {
                seq,
                flow: (seq % u64::from(flows)) as u16,
                sent,
                received: sent + latency,
            })
        })
        .collect();
    records.sort_by_key(|r| r.received);
    ProbeLog {
        sent: SendLog {
            stream_id: 1,
            rate_pps,
            size: 200,
            flows,
            source_ports: (0..flows).map(|f| 40_000 + f).collect(),
            start: ORIGIN,
            sent_at,
            send_errors: 0,
            max_lateness: Duration::ZERO,
            realtime: false,
        },
        received: ReceiveLog {
            stream_id: 1,
            records,
            not_recorded: 0,
            foreign: 0,
        },
    }
}

pub fn event(at_ms: u64, link: &str, action: &str) -> TimelineEvent {
    TimelineEvent {
        at: Duration::from_millis(at_ms),
        link: link.into(),
        action: action.into(),
        duration: None,
    }
}

/// An event that holds for `for_ms` (the scenario's `for`).
pub fn lasting(at_ms: u64, link: &str, action: &str, for_ms: u64) -> TimelineEvent {
    TimelineEvent {
        duration: Some(Duration::from_millis(for_ms)),
        ..event(at_ms, link, action)
    }
}

pub fn constant(ms: u64) -> Option<Duration> {
    Some(Duration::from_millis(ms))
}

/// A one-way latency of `base_ms` plus a slow triangular wave of
/// `swing_ms` (too slow to reorder probes, like the emulator's jitter), and
/// a spike of 3 x `swing_ms` on one probe in 500 (bufferbloat), so the
/// latency CDF has a tail.
pub fn wavy_latency(seq: u64, base_ms: u64, swing_ms: u64) -> Duration {
    let phase = seq % 2_000;
    let wave = if phase < 1_000 { phase } else { 2_000 - phase };
    let spike = if seq % 500 == 7 {
        3 * swing_ms * 1_000
    } else {
        0
    };
    Duration::from_micros(base_ms * 1_000 + wave * swing_ms + spike)
}

/// A 60 s scenario with two links and four events, and what three systems
/// made of it: the dataset of the report tests (and a sample to look at).
pub struct Comparison {
    pub events: Vec<TimelineEvent>,
    pub systems: Vec<SyntheticSystem>,
}

pub struct SyntheticSystem {
    pub name: &'static str,
    pub probes: ProbeLog,
    /// Bytes each link carried.
    pub link_bytes: Vec<(&'static str, u64)>,
    /// The link each probe flow was pinned to; empty when the system
    /// chooses per packet.
    pub flow_links: Vec<String>,
}

pub fn comparison() -> Comparison {
    let blackhole = |at_ms, link: &str, for_ms| lasting(at_ms, link, "blackhole", for_ms);
    let events = vec![
        blackhole(10_000, "wifi0", 3_000),
        event(30_000, "lte0", "down"),
        event(38_000, "lte0", "up"),
        blackhole(45_000, "wifi0", 4_000),
    ];
    let wifi_dead = |ms: u64| (10_000..13_000).contains(&ms) || (45_000..49_000).contains(&ms);
    let lte_dead = |ms: u64| (30_000..38_000).contains(&ms);
    let wifi_latency = |seq| wavy_latency(seq, 22, 6);
    let lte_latency = |seq| wavy_latency(seq, 55, 12);
    let duration = Duration::from_secs(60);

    // circus: spreads over both links and loses the probes it still puts on
    // a dead link (every other one) for 40 ms, until it stops using it. Its
    // reorder buffer holds the fast link's probes for the slow link's, so
    // probes arrive in order, at the slower latency while both links work.
    let circus = stream(1000, duration, 1, |seq| {
        let learning = [10_000, 30_000, 45_000]
            .iter()
            .any(|&at| (at..at + 40).contains(&seq));
        if learning && seq % 2 == 0 {
            None
        } else if lte_dead(seq) {
            Some(wifi_latency(seq))
        } else {
            Some(lte_latency(seq))
        }
    });
    // single-link: everything on wifi0, nothing during its blackholes.
    let single = stream(1000, duration, 1, |seq| {
        (!wifi_dead(seq)).then(|| wifi_latency(seq))
    });
    // multiwan: flows 0 and 1 pinned to wifi0, 2 and 3 to lte0; a flow whose
    // link dies stays dead, so lte0's flows never come back after 30 s.
    let multiwan = stream(1000, duration, 4, |seq| {
        if seq % 4 < 2 {
            (!wifi_dead(seq)).then(|| wifi_latency(seq))
        } else {
            (seq < 30_000).then(|| lte_latency(seq))
        }
    });
    Comparison {
        events,
        systems: vec![
            SyntheticSystem {
                name: "circus",
                probes: circus,
                link_bytes: vec![("wifi0", 7_400_000), ("lte0", 4_600_000)],
                flow_links: Vec::new(),
            },
            SyntheticSystem {
                name: "single-link",
                probes: single,
                link_bytes: vec![("wifi0", 11_000_000), ("lte0", 0)],
                flow_links: vec!["wifi0".into()],
            },
            SyntheticSystem {
                name: "multiwan",
                probes: multiwan,
                link_bytes: vec![("wifi0", 6_900_000), ("lte0", 3_100_000)],
                flow_links: ["wifi0", "wifi0", "lte0", "lte0"]
                    .map(String::from)
                    .to_vec(),
            },
        ],
    }
}
