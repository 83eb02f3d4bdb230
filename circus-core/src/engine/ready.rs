//! A queue of peer slots with something to do, each slot in it at most
//! once: the gateway's answer to "which sessions have packets to deliver,
//! datagrams to send or timers to recompute" without scanning every
//! configured client.
//!
//! Entries may be stale (the session went away, or turned out to have
//! nothing): the consumer skips them, which costs one pop each, and every
//! entry was paid for by the event that pushed it.

use std::collections::VecDeque;

#[derive(Debug)]
pub(crate) struct ReadyQueue {
    queue: VecDeque<usize>,
    /// `queued[i]`: slot `i` is in `queue`.
    queued: Vec<bool>,
}

impl ReadyQueue {
    /// An empty queue for slots `0..slots`. Its memory is allocated here,
    /// so pushing never allocates.
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            queue: VecDeque::with_capacity(slots),
            queued: vec![false; slots],
        }
    }

    /// Appends `slot` unless it is already queued.
    pub(crate) fn push(&mut self, slot: usize) {
        if let Some(queued) = self.queued.get_mut(slot)
            && !*queued
        {
            *queued = true;
            self.queue.push_back(slot);
        }
    }

    /// The slot whose turn it is.
    pub(crate) fn front(&self) -> Option<usize> {
        self.queue.front().copied()
    }

    /// Removes the front slot: it has nothing more to do.
    pub(crate) fn pop_front(&mut self) -> Option<usize> {
        let slot = self.queue.pop_front()?;
        if let Some(queued) = self.queued.get_mut(slot) {
            *queued = false;
        }
        Some(slot)
    }

    /// Moves the front slot to the back: it was served and may have more,
    /// but the others go first (round robin).
    pub(crate) fn rotate(&mut self) {
        if let Some(slot) = self.queue.pop_front() {
            self.queue.push_back(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_each_slot_once_in_order_and_rotates() {
        let mut q = ReadyQueue::new(4);
        for slot in [2, 0, 2, 3, 0, 9] {
            q.push(slot);
        }
        assert_eq!(q.front(), Some(2));
        q.rotate();
        assert_eq!(q.pop_front(), Some(0));
        assert_eq!(q.pop_front(), Some(3));
        // 2 is still queued (rotated, not popped), so this is a no-op.
        q.push(2);
        assert_eq!(q.pop_front(), Some(2));
        assert_eq!(q.pop_front(), None);
        q.push(0);
        assert_eq!(q.pop_front(), Some(0));
    }
}
