//! The receiver side of one link: which packet numbers arrived, and when an
//! ack for them is due.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use super::PathConfig;

/// Remembers the packet numbers received on one link as ranges, newest first,
/// and decides when to acknowledge them.
///
/// An ack is due at once after `ack_eliciting_threshold` ack-eliciting
/// packets, or when a packet arrives out of order (the sender learns of the
/// gap quickly, RFC 9000 section 13.2.1), and otherwise `max_ack_delay` after
/// the first unacknowledged one. Only `max_ack_ranges` ranges are kept: the
/// sender needs recent ones, older packets were resolved long ago.
#[derive(Debug)]
pub struct AckTracker {
    /// Received packet numbers, disjoint and non-adjacent, newest first.
    ranges: VecDeque<RangeInclusive<u64>>,
    max_ranges: usize,
    max_ack_delay: Duration,
    threshold: u32,
    largest_received_at: Option<Instant>,
    unacked_ack_eliciting: u32,
    due: Option<Instant>,
}

impl AckTracker {
    /// Uses `max_ack_delay`, `ack_eliciting_threshold` and `max_ack_ranges`
    /// from `config`, which must match the sender's.
    pub fn new(config: &PathConfig) -> Self {
        let max_ranges = config.max_ack_ranges.max(1);
        AckTracker {
            ranges: VecDeque::with_capacity(max_ranges + 1),
            max_ranges,
            max_ack_delay: config.max_ack_delay,
            threshold: config.ack_eliciting_threshold.max(1),
            largest_received_at: None,
            unacked_ack_eliciting: 0,
            due: None,
        }
    }

    /// Records packet `pn` received at `now`. Returns false for a packet
    /// number already recorded (it is then ignored).
    pub fn on_received(&mut self, now: Instant, pn: u64, ack_eliciting: bool) -> bool {
        let Some(in_order) = self.insert(pn) else {
            return false;
        };
        if self.ranges.front().is_some_and(|r| *r.end() == pn) {
            self.largest_received_at = Some(now);
        }
        if ack_eliciting {
            self.unacked_ack_eliciting += 1;
            let due = if !in_order || self.unacked_ack_eliciting >= self.threshold {
                now
            } else {
                now.checked_add(self.max_ack_delay).unwrap_or(now)
            };
            self.due = Some(self.due.map_or(due, |d| d.min(due)));
        }
        true
    }

    /// Makes an ack due at once, for a probe just passed to
    /// [`on_received`](AckTracker::on_received): a probe exists to be
    /// answered, and delaying its ack would inflate the RTT it measures and
    /// the time to judge the link.
    pub fn ack_immediately(&mut self, now: Instant) {
        self.due = Some(self.due.map_or(now, |d| d.min(now)));
    }

    /// When an ack should be sent: `None` while nothing ack-eliciting waits
    /// for one, a time at or before `now` when it is due at once.
    pub fn ack_due(&self) -> Option<Instant> {
        self.due
    }

    /// The received packet numbers, newest range first.
    pub fn ranges(&self) -> impl Iterator<Item = RangeInclusive<u64>> + '_ {
        self.ranges.iter().cloned()
    }

    /// Time since the newest packet arrived: the peer subtracts it from its
    /// RTT sample.
    pub fn ack_delay(&self, now: Instant) -> Duration {
        self.largest_received_at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// An ack carrying the current ranges was sent: nothing is due until the
    /// next ack-eliciting packet. The ranges are kept and sent again with the
    /// next ack, in case this one is lost.
    pub fn on_ack_sent(&mut self) {
        self.unacked_ack_eliciting = 0;
        self.due = None;
    }

    /// Adds `pn` to the ranges. `None` if already there, else whether it
    /// arrived in order (extends the newest range, or starts the first one).
    fn insert(&mut self, pn: u64) -> Option<bool> {
        let Some(newest) = self.ranges.front_mut() else {
            self.ranges.push_front(pn..=pn);
            return Some(true);
        };
        if pn > *newest.end() {
            if pn == *newest.end() + 1 {
                *newest = *newest.start()..=pn;
                return Some(true);
            }
            self.ranges.push_front(pn..=pn);
            self.forget_oldest();
            return Some(false);
        }
        // Older than the newest: find the first range starting at or below pn.
        let index = self.ranges.partition_point(|r| *r.start() > pn);
        if self.ranges.get(index).is_some_and(|r| r.contains(&pn)) {
            return None;
        }
        let joins_newer = index > 0 && *self.ranges[index - 1].start() == pn + 1;
        let joins_older = self.ranges.get(index).is_some_and(|r| *r.end() + 1 == pn);
        match (joins_newer, joins_older) {
            (true, true) => {
                let older_start = *self.ranges[index].start();
                let newer_end = *self.ranges[index - 1].end();
                self.ranges[index - 1] = older_start..=newer_end;
                self.ranges.remove(index);
            }
            (true, false) => {
                let newer_end = *self.ranges[index - 1].end();
                self.ranges[index - 1] = pn..=newer_end;
            }
            (false, true) => {
                let older_start = *self.ranges[index].start();
                self.ranges[index] = older_start..=pn;
            }
            (false, false) => {
                self.ranges.insert(index, pn..=pn);
                self.forget_oldest();
            }
        }
        Some(false)
    }

    fn forget_oldest(&mut self) {
        while self.ranges.len() > self.max_ranges {
            self.ranges.pop_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn tracker() -> AckTracker {
        AckTracker::new(&PathConfig {
            max_ack_ranges: 3,
            ..PathConfig::default()
        })
    }

    fn ranges(t: &AckTracker) -> Vec<(u64, u64)> {
        t.ranges().map(|r| (*r.start(), *r.end())).collect()
    }

    #[test]
    fn ranges_are_merged_and_newest_first() {
        let now = Instant::now();
        let mut t = tracker();
        for pn in [0, 1, 2, 5, 6, 9] {
            assert!(t.on_received(now, pn, true));
        }
        assert_eq!(ranges(&t), vec![(9, 9), (5, 6), (0, 2)]);
        assert!(t.on_received(now, 4, true));
        assert!(
            t.on_received(now, 3, true),
            "fills the gap between two ranges"
        );
        assert_eq!(ranges(&t), vec![(9, 9), (0, 6)]);
        assert!(t.on_received(now, 8, true));
        assert_eq!(ranges(&t), vec![(8, 9), (0, 6)]);
        assert!(!t.on_received(now, 5, true), "duplicate");
    }

    #[test]
    fn oldest_ranges_are_forgotten_beyond_the_bound() {
        let now = Instant::now();
        let mut t = tracker();
        for pn in [0, 2, 4, 6, 8] {
            t.on_received(now, pn, false);
        }
        assert_eq!(ranges(&t), vec![(8, 8), (6, 6), (4, 4)]);
    }

    #[test]
    fn ack_is_due_after_max_ack_delay_or_at_once_after_two() {
        let t0 = Instant::now();
        let mut t = tracker();
        t.on_received(t0, 0, false);
        assert_eq!(t.ack_due(), None, "nothing ack-eliciting yet");
        t.on_received(t0, 1, true);
        assert_eq!(t.ack_due(), Some(t0 + 10 * MS));
        t.on_received(t0 + 2 * MS, 2, true);
        assert_eq!(t.ack_due(), Some(t0 + 2 * MS));
        assert_eq!(t.ack_delay(t0 + 3 * MS), MS);
        t.on_ack_sent();
        assert_eq!(t.ack_due(), None);
    }

    #[test]
    fn probe_is_acked_at_once() {
        let t0 = Instant::now();
        let mut t = tracker();
        t.on_received(t0, 0, true);
        t.ack_immediately(t0);
        assert_eq!(t.ack_due(), Some(t0));
    }

    #[test]
    fn gap_makes_the_ack_due_at_once() {
        let t0 = Instant::now();
        let mut t = tracker();
        t.on_received(t0, 0, true);
        t.on_ack_sent();
        t.on_received(t0 + MS, 2, true);
        assert_eq!(t.ack_due(), Some(t0 + MS));
    }
}
