//! The gateway's session deadlines in a binary heap, so finding and running
//! the next timer costs O(log n) in the number of sessions, not a scan of
//! every configured client.
//!
//! Lazy invalidation: moving a deadline pushes a new entry and leaves the
//! old one in the heap; an entry counts only while it matches the slot's
//! armed deadline. A deadline that moves later keeps the earlier entry:
//! the slot then wakes early, recomputes and re-arms, which is cheaper than
//! a push per packet (the idle deadline moves with every packet received).
//! Stale entries are purged when they outnumber the live ones, so the heap
//! stays within a constant factor of the armed slots.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Debug)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    /// `armed[i]`: the deadline of slot `i`'s live entry.
    armed: Vec<Option<Instant>>,
    /// Slots with a live entry.
    live: usize,
}

/// Stale entries tolerated beyond the live ones before a purge.
const SLACK: usize = 64;

impl TimerHeap {
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            heap: BinaryHeap::new(),
            armed: vec![None; slots],
            live: 0,
        }
    }

    /// Sets slot `slot` to wake at `at` (or never), unless it is already
    /// armed for no later than `at`.
    pub(crate) fn arm(&mut self, slot: usize, at: Option<Instant>) {
        let Some(armed) = self.armed.get_mut(slot) else {
            return;
        };
        match (*armed, at) {
            (Some(current), Some(at)) if current <= at => {}
            (_, None) => self.disarm(slot),
            (current, Some(at)) => {
                if current.is_none() {
                    self.live += 1;
                }
                *armed = Some(at);
                self.heap.push(Reverse((at, slot)));
                self.purge_if_stale();
            }
        }
    }

    /// Slot `slot` needs no wakeup.
    pub(crate) fn disarm(&mut self, slot: usize) {
        if let Some(armed) = self.armed.get_mut(slot)
            && armed.take().is_some()
        {
            self.live -= 1;
        }
    }

    /// The earliest live deadline.
    pub(crate) fn next(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, slot))) = self.heap.peek() {
            if self.is_live(at, slot) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// A slot whose deadline is at or before `now`, disarmed.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<usize> {
        let at = self.next()?;
        if at > now {
            return None;
        }
        let Reverse((_, slot)) = self.heap.pop()?;
        self.disarm(slot);
        Some(slot)
    }

    fn is_live(&self, at: Instant, slot: usize) -> bool {
        self.armed.get(slot).copied().flatten() == Some(at)
    }

    fn purge_if_stale(&mut self) {
        if self.heap.len() > 2 * self.live + SLACK {
            let armed = &self.armed;
            self.heap
                .retain(|&Reverse((at, slot))| armed.get(slot).copied().flatten() == Some(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_due_slots_in_deadline_order_and_ignores_stale_entries() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut timers = TimerHeap::new(3);
        timers.arm(0, Some(at(30)));
        timers.arm(1, Some(at(10)));
        timers.arm(2, Some(at(20)));
        // Later: slot 1 keeps its earlier wakeup. Earlier: slot 0 moves.
        timers.arm(1, Some(at(50)));
        timers.arm(0, Some(at(5)));
        timers.disarm(2);
        assert_eq!(timers.next(), Some(at(5)));
        assert_eq!(timers.pop_due(at(4)), None);
        assert_eq!(timers.pop_due(at(100)), Some(0));
        assert_eq!(timers.pop_due(at(100)), Some(1));
        // Slot 0's old entry (30) and slot 2's (20) are stale.
        assert_eq!(timers.pop_due(at(100)), None);
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn stale_entries_stay_bounded() {
        let t0 = Instant::now();
        let mut timers = TimerHeap::new(2);
        for ms in (0..10_000u64).rev() {
            timers.arm(ms as usize % 2, Some(t0 + Duration::from_millis(ms)));
        }
        assert!(
            timers.heap.len() <= 2 * 2 + SLACK + 1,
            "{}",
            timers.heap.len()
        );
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(60)), Some(0));
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(60)), Some(1));
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(60)), None);
    }
}
