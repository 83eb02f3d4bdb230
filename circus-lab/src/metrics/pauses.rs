//! Time the host took a CPU away from the lab.
//!
//! The lab runs in a virtual machine on a shared host, which now and then
//! stops a virtual CPU for tens of milliseconds (in runs here: up to 63 ms,
//! several times a minute, often on 100 ms boundaries, as a host-side CPU
//! quota would). Whatever ran on it stops too: the probe sender, the
//! emulator, a daemon or the receiver. The gap that leaves in the probe stream
//! says nothing about the system under test, yet it decided `max_outage_ms`
//! in most runs on a busy host. So gaps are measured with the paused time
//! taken out; see [`HostPauses::overlap`]. The runner's pause monitor
//! ([`crate::runner::pause_monitor`]) finds the pauses; the probe sender,
//! at real-time priority, shows those of its own CPU by sending late (see
//! [`Delivery::gaps`](super::Delivery::gaps)).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::round;
use crate::traffic::MonoNanos;

/// Spans of CLOCK_MONOTONIC during which some CPU of the lab was paused by
/// the host: sorted, disjoint, none empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPauses {
    spans: Vec<(MonoNanos, MonoNanos)>,
}

/// A real-time thread that wakes up later than this was paused by the host.
/// Interrupt and softirq work, which runs ahead of any thread, holds one back
/// by up to about 2 ms on a loaded CPU (the kernel hands longer network work
/// to ksoftirqd); the host's pauses seen here last 4 to 60 ms.
pub const PAUSE_THRESHOLD: Duration = Duration::from_millis(3);

/// For runs without pauses to take out.
static NO_PAUSES: HostPauses = HostPauses { spans: Vec::new() };

impl HostPauses {
    pub fn none() -> &'static HostPauses {
        &NO_PAUSES
    }

    /// The union of `spans` (start, end); empty and reversed spans are
    /// dropped. Spans of different CPUs may overlap.
    pub fn from_spans(spans: impl IntoIterator<Item = (MonoNanos, MonoNanos)>) -> Self {
        let mut sorted: Vec<_> = spans.into_iter().filter(|(s, e)| s < e).collect();
        sorted.sort_unstable();
        let mut merged: Vec<(MonoNanos, MonoNanos)> = Vec::with_capacity(sorted.len());
        for (start, end) in sorted {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Self { spans: merged }
    }

    /// How much of `start..end` the host was paused. A gap between two
    /// deliveries is measured as its length minus this: never more than the
    /// pause itself is forgiven, so a real outage that a pause falls into
    /// still shows, shortened by the pause only.
    pub fn overlap(&self, start: MonoNanos, end: MonoNanos) -> Duration {
        let first = self.spans.partition_point(|&(_, e)| e <= start);
        self.spans[first..]
            .iter()
            .take_while(|&&(s, _)| s < end)
            .map(|&(s, e)| e.min(end).saturating_since(s.max(start)))
            .sum()
    }

    /// The figures `summary.json` shows, so a reader sees how much was
    /// taken out.
    pub fn summary(&self) -> PauseSummary {
        let lengths = self.spans.iter().map(|&(s, e)| e.saturating_since(s));
        PauseSummary {
            count: self.spans.len() as u64,
            total_ms: round(lengths.clone().sum::<Duration>().as_secs_f64() * 1e3, 3),
            longest_ms: round(lengths.max().unwrap_or_default().as_secs_f64() * 1e3, 3),
            monitored: true,
        }
    }
}

/// `systems.<name>.host_pauses` of `summary.json`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PauseSummary {
    pub count: u64,
    pub total_ms: f64,
    pub longest_ms: f64,
    /// False when pauses could not be watched for (no real-time scheduling)
    /// or do not exist (the simulator); gaps are then measured whole.
    pub monitored: bool,
}

impl Default for PauseSummary {
    /// What a summary written before pauses were watched for means.
    fn default() -> Self {
        Self {
            count: 0,
            total_ms: 0.0,
            longest_ms: 0.0,
            monitored: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ms(v: u64) -> MonoNanos {
        MonoNanos(v * 1_000_000)
    }

    #[test]
    fn spans_of_different_cpus_are_merged_into_their_union() {
        let pauses = HostPauses::from_spans([
            (ms(30), ms(50)),
            (ms(10), ms(20)),
            (ms(45), ms(60)),
            (ms(70), ms(70)),
            (ms(90), ms(80)),
        ]);
        assert_eq!(pauses.spans, vec![(ms(10), ms(20)), (ms(30), ms(60))]);
        let summary = pauses.summary();
        assert_eq!(summary.count, 2);
        assert_eq!(summary.total_ms, 40.0);
        assert_eq!(summary.longest_ms, 30.0);
        assert!(summary.monitored);
    }

    #[test]
    fn overlap_counts_only_the_paused_part_of_a_gap() {
        let pauses = HostPauses::from_spans([(ms(10), ms(20)), (ms(30), ms(60))]);
        assert_eq!(pauses.overlap(ms(0), ms(10)), Duration::ZERO);
        assert_eq!(pauses.overlap(ms(15), ms(35)), Duration::from_millis(10));
        assert_eq!(pauses.overlap(ms(0), ms(100)), Duration::from_millis(40));
        assert_eq!(pauses.overlap(ms(40), ms(50)), Duration::from_millis(10));
        assert_eq!(pauses.overlap(ms(60), ms(90)), Duration::ZERO);
        assert_eq!(
            HostPauses::default().overlap(ms(0), ms(100)),
            Duration::ZERO
        );
    }

    proptest! {
        /// Against a millisecond-by-millisecond count.
        #[test]
        fn overlap_is_the_paused_time_within_the_range(
            spans in prop::collection::vec((0u64..200, 0u64..40), 0..12),
            start in 0u64..250,
            length in 0u64..250,
        ) {
            let spans: Vec<_> = spans.iter().map(|&(s, l)| (ms(s), ms(s + l))).collect();
            let pauses = HostPauses::from_spans(spans.clone());
            let paused_ms = (start..start + length)
                .filter(|&t| spans.iter().any(|&(s, e)| ms(t) >= s && ms(t) < e))
                .count() as u64;
            prop_assert_eq!(
                pauses.overlap(ms(start), ms(start + length)),
                Duration::from_millis(paused_ms)
            );
        }
    }
}
