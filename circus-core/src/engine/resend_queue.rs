//! The packets waiting to be sent again, light flows' ahead of bulk ones.
//!
//! Light flows' resends have a queue of their own, served first. A bulk
//! resend that finds every window full waits for the next ack, and must not
//! hold a light one back with it: new light packets may go out of turn into
//! the room the links keep for light flows, so a light resend queued behind
//! it was overtaken by newer packets of its flow, and the receiver gave up
//! its hole before it came. What no link could carry during a moment with
//! none up was then lost after all.

use std::collections::VecDeque;

use crate::LinkId;

/// Data to send again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resend {
    pub(crate) seq: u64,
    /// The link that lost (or is late with) the previous copy.
    pub(crate) lost_on: LinkId,
    /// Whether that link should be avoided: not when it merely dropped one
    /// packet but demonstrably delivers (it acknowledged a later one), since
    /// it may well be the fastest way to the receiver.
    pub(crate) avoid: bool,
}

/// Two bounded FIFO queues, allocated once.
#[derive(Debug)]
pub(crate) struct ResendQueue {
    light: VecDeque<Resend>,
    bulk: VecDeque<Resend>,
}

impl ResendQueue {
    /// Room for `capacity` resends of each kind: every packet the send
    /// history holds, whichever kind they are.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            light: VecDeque::with_capacity(capacity),
            bulk: VecDeque::with_capacity(capacity),
        }
    }

    /// Queues a resend of a `light` flow's packet or a bulk one. A full
    /// queue drops its oldest entry, the least likely to still be useful,
    /// so this never allocates.
    pub(crate) fn push(&mut self, light: bool, resend: Resend) {
        let queue = self.queue(light);
        if queue.len() == queue.capacity() {
            queue.pop_front();
        }
        queue.push_back(resend);
    }

    /// The next resend and whether it is a light flow's: light ones first,
    /// bulk ones only if `bulk_too`.
    pub(crate) fn pop(&mut self, bulk_too: bool) -> Option<(bool, Resend)> {
        if let Some(resend) = self.light.pop_front() {
            return Some((true, resend));
        }
        if bulk_too {
            return self.bulk.pop_front().map(|resend| (false, resend));
        }
        None
    }

    /// Puts back what [`pop`](Self::pop) returned when it could not go yet.
    pub(crate) fn push_front(&mut self, light: bool, resend: Resend) {
        self.queue(light).push_front(resend);
    }

    fn queue(&mut self, light: bool) -> &mut VecDeque<Resend> {
        if light {
            &mut self.light
        } else {
            &mut self.bulk
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resend(seq: u64) -> Resend {
        Resend {
            seq,
            lost_on: LinkId(0),
            avoid: true,
        }
    }

    #[test]
    fn light_resends_come_first_and_bulk_ones_only_when_asked() {
        let mut q = ResendQueue::with_capacity(4);
        q.push(false, resend(1));
        q.push(true, resend(2));
        q.push(false, resend(3));
        q.push(true, resend(4));
        assert_eq!(q.pop(false), Some((true, resend(2))));
        assert_eq!(q.pop(false), Some((true, resend(4))));
        // A bulk resend waits for room: the light ones no longer wait too.
        assert_eq!(q.pop(false), None);
        assert_eq!(q.pop(true), Some((false, resend(1))));
        q.push_front(false, resend(1));
        assert_eq!(q.pop(true), Some((false, resend(1))));
        assert_eq!(q.pop(true), Some((false, resend(3))));
        assert_eq!(q.pop(true), None);
    }

    #[test]
    fn a_full_queue_drops_its_oldest_entry_without_growing() {
        let mut q = ResendQueue::with_capacity(2);
        let capacity = q.light.capacity();
        for seq in 0..capacity as u64 + 3 {
            q.push(true, resend(seq));
        }
        assert_eq!(q.light.capacity(), capacity);
        assert_eq!(q.light.len(), capacity);
        assert_eq!(q.pop(false), Some((true, resend(3))));
    }
}
