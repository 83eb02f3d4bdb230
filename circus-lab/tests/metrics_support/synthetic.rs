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
    rate_pps: u32,
    duration: Duration,
    flows: u16,
    latency: impl Fn(u64) -> Option<Duration>,
) -> ProbeLog {
    let count = duration.as_millis() as u64 * u64::from(rate_pps) / 1000;
    let interval = 1_000_000_000 / u64::from(rate_pps);
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

pub fn constant(ms: u64) -> Option<Duration> {
    Some(Duration::from_millis(ms))
}
