//! Which probe arrived when: the per-sequence-number view every metric is
//! computed from.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::pauses::PAUSE_THRESHOLD;
use super::{HostPauses, LatencyMs, round};
use crate::traffic::MonoNanos;
use crate::traffic::probe::ProbeLog;

/// Latencies above an hour are recorded as an hour: no real run gets there.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A stretch without deliveries, between two delivered probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Send time of the first probe the gap lost or delayed: the one after
    /// the probe delivered before the gap, or the probe delivered after it if
    /// that came first (nothing lost, only delayed). Says which event a gap
    /// belongs to.
    pub first_affected: MonoNanos,
    /// Sequence number of that probe (one past the last for a gap at the
    /// stream's end): its flow says which link it was on, for systems that
    /// pin flows to links.
    pub first_affected_seq: u64,
    /// Time between the two deliveries, less any pause of the host within
    /// it (see [`Delivery::gaps`]).
    pub length: Duration,
}

impl Gap {
    /// The gap between deliveries of probes sent at `earlier_sent` and
    /// `later_sent` (sequence number `later_seq`), `length` apart;
    /// `next_seq` is the probe sent after the earlier one and `interval` the
    /// time between probes.
    fn between(
        (earlier_sent, next_seq): (MonoNanos, u64),
        (later_sent, later_seq): (MonoNanos, u64),
        length: Duration,
        interval: Duration,
    ) -> Self {
        let next_sent = earlier_sent + interval;
        let (first_affected, first_affected_seq) = if next_sent <= later_sent {
            (next_sent, next_seq)
        } else {
            (later_sent, later_seq)
        };
        Self {
            first_affected,
            first_affected_seq,
            length,
        }
    }
}

/// The first copy of one probe, as the receiver logged it.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    received: MonoNanos,
    sent: MonoNanos,
    seq: u64,
}

impl Arrival {
    /// (receive time, send time), as [`Delivery::unpaused`] takes it.
    fn times(&self) -> (MonoNanos, MonoNanos) {
        (self.received, self.sent)
    }
}

/// The probe stream as the receiver saw it, indexed by sequence number.
pub struct Delivery<'a> {
    sent_at: &'a [MonoNanos],
    /// Time between two probes (1 / rate).
    interval: Duration,
    /// Flows the stream is spread over: probe `seq` is of flow `seq % flows`.
    flows: usize,
    first_received: Vec<Option<MonoNanos>>,
    /// Each first copy, in arrival order.
    arrivals: Vec<Arrival>,
    duplicates: u64,
    reordered: u64,
    /// One-way latency of first copies, in microseconds.
    latency_us: Histogram<u64>,
    /// The host's pauses, taken out of every gap.
    pauses: &'a HostPauses,
    /// When the sender, at real-time priority, sent late: the host paused
    /// it. Empty when it ran at normal priority.
    sender_stalls: HostPauses,
}

impl<'a> Delivery<'a> {
    /// Analyses a probe log; gaps leave out the host's `pauses` and the
    /// sender's own stalls (see [`gaps`](Self::gaps)). Records with sequence
    /// numbers the sender never sent are ignored (they cannot be attributed
    /// to a send time).
    pub fn analyse(log: &'a ProbeLog, pauses: &'a HostPauses) -> Self {
        let sent_at = log.sent.sent_at.as_slice();
        let sender_stalls = if log.sent.realtime {
            HostPauses::from_spans(
                (0..sent_at.len() as u64)
                    .map(|seq| (log.sent.due(seq), sent_at[seq as usize]))
                    .filter(|&(due, sent)| sent.saturating_since(due) > PAUSE_THRESHOLD),
            )
        } else {
            HostPauses::default()
        };
        let interval = Duration::from_nanos(1_000_000_000 / log.sent.rate_pps.max(1));
        let mut records: Vec<_> = log
            .received
            .records
            .iter()
            .filter(|r| r.seq < sent_at.len() as u64)
            .collect();
        // The receiver logs in arrival order already; sorting (stably) keeps
        // logs merged from elsewhere, like the simulator's, correct too.
        records.sort_by_key(|r| r.received);

        let mut first_received = vec![None; sent_at.len()];
        let mut arrivals = Vec::with_capacity(records.len());
        let mut highest_per_flow: Vec<Option<u64>> = vec![None; usize::from(log.sent.flows.max(1))];
        let mut latency_us = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .expect("constant histogram bounds are valid");
        let (mut duplicates, mut reordered) = (0, 0);
        for record in records {
            let seq = record.seq as usize;
            if first_received[seq].is_some() {
                duplicates += 1;
                continue;
            }
            first_received[seq] = Some(record.received);
            let sent = sent_at[seq];
            arrivals.push(Arrival {
                received: record.received,
                sent,
                seq: record.seq,
            });
            let highest = &mut highest_per_flow[usize::from(log.sent.flow_of(record.seq))];
            match highest {
                Some(h) if *h > record.seq => reordered += 1,
                _ => *highest = Some(record.seq),
            }
            let latency = record.received.saturating_since(sent);
            // Clamps latencies beyond MAX_LATENCY_US instead of failing.
            latency_us.saturating_record(latency.as_micros() as u64);
        }
        Self {
            sent_at,
            interval,
            flows: usize::from(log.sent.flows.max(1)),
            first_received,
            arrivals,
            duplicates,
            reordered,
            latency_us,
            pauses,
            sender_stalls,
        }
    }

    /// The gap from the delivery `from` to the delivery `to`, each (receive
    /// time, send time), as the system caused it. A pause of the host within
    /// the gap stopped everything; a stall of the sender between the two
    /// send times left nothing to deliver, and shows at the receiver one
    /// latency later, where the pause monitor may not see it (the host
    /// paused only the sender's CPU). The larger of the two is left out, so
    /// no gap is forgiven more than one pause.
    fn unpaused(&self, from: (MonoNanos, MonoNanos), to: (MonoNanos, MonoNanos)) -> Duration {
        let paused = self.pauses.overlap(from.0, to.0);
        let stalled = self.sender_stalls.overlap(from.1, to.1);
        to.0.saturating_since(from.0)
            .saturating_sub(paused.max(stalled))
    }

    pub fn sent_count(&self) -> u64 {
        self.sent_at.len() as u64
    }

    /// Distinct sequence numbers received.
    pub fn delivered_count(&self) -> u64 {
        self.arrivals.len() as u64
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// First copies that arrived after a higher sequence number of their flow.
    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Send time of every probe, indexed by sequence number.
    pub fn sent_at(&self) -> &[MonoNanos] {
        self.sent_at
    }

    /// When the first copy of each probe arrived, indexed by sequence number.
    pub fn first_received(&self) -> &[Option<MonoNanos>] {
        &self.first_received
    }

    /// Sequence number and send time of each probe that never arrived, in
    /// sending order.
    pub fn lost(&self) -> impl Iterator<Item = (u64, MonoNanos)> + '_ {
        (0u64..)
            .zip(self.sent_at.iter().zip(&self.first_received))
            .filter(|(_, (_, received))| received.is_none())
            .map(|(seq, (sent, _))| (seq, *sent))
    }

    /// The flow probe `seq` belongs to (see [`ProbeLog`]'s sender).
    pub fn flow_of(&self, seq: u64) -> usize {
        (seq % self.flows as u64) as usize
    }

    pub fn latency_percentiles(&self) -> LatencyMs {
        let at = |quantile: f64| {
            (!self.latency_us.is_empty())
                .then(|| round(self.latency_us.value_at_quantile(quantile) as f64 / 1e3, 3))
        };
        LatencyMs {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
        }
    }

    /// Every gap between consecutive deliveries, in arrival order, measured
    /// on the receiver's clock. The stream's edges count as deliveries one
    /// interval before the first probe and one after the last, so probes lost
    /// at the start or the end form gaps too; those edge gaps are measured in
    /// send time (the receiver saw nothing to time them by). Pauses of the
    /// host and of the sender are left out of every gap (see `unpaused`).
    pub fn gaps(&self) -> Vec<Gap> {
        let (Some(&first), Some(&last)) = (self.sent_at.first(), self.sent_at.last()) else {
            return Vec::new();
        };
        let before_start = MonoNanos(first.0.saturating_sub(self.interval.as_nanos() as u64));
        let after_end = last + self.interval;
        let end_seq = self.sent_at.len() as u64;
        let earliest = self.arrivals.iter().min_by_key(|a| a.sent);
        let latest = self.arrivals.iter().max_by_key(|a| a.sent);
        let interval = self.interval;
        let (Some(earliest), Some(latest)) = (earliest, latest) else {
            let length = self.unpaused((before_start, before_start), (after_end, after_end));
            return vec![Gap::between(
                (before_start, 0),
                (after_end, end_seq),
                length,
                interval,
            )];
        };
        let mut gaps = Vec::with_capacity(self.arrivals.len() + 1);
        let leading = self.unpaused((before_start, before_start), (earliest.sent, earliest.sent));
        gaps.push(Gap::between(
            (before_start, 0),
            (earliest.sent, earliest.seq),
            leading,
            interval,
        ));
        gaps.extend(self.arrivals.windows(2).map(|pair| {
            let length = self.unpaused(pair[0].times(), pair[1].times());
            Gap::between(
                (pair[0].sent, pair[0].seq + 1),
                (pair[1].sent, pair[1].seq),
                length,
                interval,
            )
        }));
        let trailing = self.unpaused((latest.sent, latest.sent), (after_end, after_end));
        gaps.push(Gap::between(
            (latest.sent, latest.seq + 1),
            (after_end, end_seq),
            trailing,
            interval,
        ));
        gaps
    }

    /// The longest time one flow of the stream went without a delivery
    /// beyond its own spacing (`flows` probe intervals): what a single
    /// connection sees. Per-connection systems (multiwan) deliver the stream
    /// as a whole while the flows pinned to a dead link get nothing, which
    /// [`longest_gap`](Self::longest_gap) cannot see; for a system that
    /// stalls everything the two agree. The flow's edges count as deliveries
    /// one flow spacing before its first probe and after its last, and host
    /// pauses are left out, as in [`gaps`](Self::gaps).
    pub fn longest_flow_gap(&self) -> Duration {
        let spacing = self.interval * u32::try_from(self.flows).unwrap_or(u32::MAX);
        let mut deliveries: Vec<(MonoNanos, MonoNanos)> = Vec::new();
        let mut longest = Duration::ZERO;
        for flow in 0..self.flows.min(self.sent_at.len()) {
            let seqs = (flow..self.sent_at.len()).step_by(self.flows);
            let Some(last) = seqs.clone().next_back() else {
                continue;
            };
            deliveries.clear();
            deliveries.extend(
                seqs.filter_map(|seq| self.first_received[seq].map(|r| (r, self.sent_at[seq]))),
            );
            deliveries.sort_unstable();
            let before_start = MonoNanos(
                self.sent_at[flow]
                    .0
                    .saturating_sub(spacing.as_nanos() as u64),
            );
            let after_end = self.sent_at[last] + spacing;
            let edges = match (
                deliveries.iter().map(|d| d.1).min(),
                deliveries.iter().map(|d| d.1).max(),
            ) {
                (Some(earliest), Some(latest)) => [
                    self.unpaused((before_start, before_start), (earliest, earliest)),
                    self.unpaused((latest, latest), (after_end, after_end)),
                ],
                _ => [
                    self.unpaused((before_start, before_start), (after_end, after_end)),
                    Duration::ZERO,
                ],
            };
            let between = deliveries
                .windows(2)
                .map(|pair| self.unpaused(pair[0], pair[1]));
            if let Some(gap) = edges.into_iter().chain(between).max() {
                longest = longest.max(gap.saturating_sub(spacing));
            }
        }
        longest
    }

    /// The longest gap of the whole run.
    pub fn longest_gap(&self) -> Duration {
        self.gaps()
            .iter()
            .map(|g| g.length)
            .max()
            .unwrap_or_default()
    }
}
