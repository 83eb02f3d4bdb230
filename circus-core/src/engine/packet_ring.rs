//! Tunnel packets waiting to be sent, and recently sent ones kept for recovery.
//!
//! One preallocated ring of fixed-size slots serves both purposes, so the hot
//! path copies each IP packet once (TUN buffer -> slot) and never allocates.
//! A packet's global sequence number is its position in the ring: packets
//! enter at the tail, the send cursor walks them in order, and a sent packet
//! stays readable (for retransmission when its link fails) until the ring
//! wraps over it. The queue of unsent packets is bounded separately, so a
//! burst from the TUN device is dropped at the door instead of evicting
//! packets that are still in flight.

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct SlotMeta {
    /// Sequence number this slot holds, valid only when `len` is set.
    seq: u64,
    len: Option<u16>,
    queued_at: Instant,
    /// Some copy of this packet was acknowledged on some link: recovery
    /// must not resend it.
    acked: bool,
    /// Copies sent and neither acknowledged nor lost: while one is still
    /// on its way, losing another needs no resend.
    copies_in_flight: u8,
}

/// Why [`PacketRing::push`] refused a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The packet is larger than a slot (the configured max packet size).
    TooLarge,
    /// The bounded queue of unsent packets is full.
    Full,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct PacketRing {
    slot_size: usize,
    data: Vec<u8>,
    meta: Vec<SlotMeta>,
    /// Sequence number the next pushed packet gets.
    next_seq: u64,
    /// Oldest sequence number not yet sent once.
    send_cursor: u64,
    queue_limit: u64,
}

impl PacketRing {
    /// `capacity` slots of `slot_size` bytes; at most `queue_limit` of them
    /// unsent at once (the rest hold sent packets for recovery).
    pub(crate) fn new(now: Instant, capacity: usize, queue_limit: usize, slot_size: usize) -> Self {
        let capacity = capacity.max(1);
        let slot_size = slot_size.min(usize::from(u16::MAX));
        Self {
            slot_size,
            data: vec![0; capacity * slot_size],
            meta: vec![
                SlotMeta {
                    seq: 0,
                    len: None,
                    queued_at: now,
                    acked: false,
                    copies_in_flight: 0,
                };
                capacity
            ],
            next_seq: 0,
            send_cursor: 0,
            queue_limit: queue_limit.clamp(1, capacity) as u64,
        }
    }

    fn index(&self, seq: u64) -> usize {
        // The remainder is below `meta.len()`, which is a usize.
        (seq % self.meta.len() as u64) as usize
    }

    /// Queues a copy of `packet`; returns its sequence number.
    pub(crate) fn push(&mut self, now: Instant, packet: &[u8]) -> Result<u64, PushError> {
        if packet.len() > self.slot_size {
            return Err(PushError::TooLarge);
        }
        if self.next_seq - self.send_cursor >= self.queue_limit {
            return Err(PushError::Full);
        }
        let seq = self.next_seq;
        let i = self.index(seq);
        let start = i * self.slot_size;
        self.data[start..start + packet.len()].copy_from_slice(packet);
        self.meta[i] = SlotMeta {
            seq,
            // Checked against slot_size, which fits u16.
            len: Some(packet.len() as u16),
            queued_at: now,
            acked: false,
            copies_in_flight: 0,
        };
        self.next_seq += 1;
        Ok(seq)
    }

    /// The oldest unsent packet: its sequence number and when it was queued.
    pub(crate) fn next_unsent(&self) -> Option<(u64, Instant)> {
        (self.send_cursor < self.next_seq).then(|| {
            (
                self.send_cursor,
                self.meta[self.index(self.send_cursor)].queued_at,
            )
        })
    }

    /// Marks the oldest unsent packet as sent (or dropped).
    pub(crate) fn advance(&mut self) {
        if self.send_cursor < self.next_seq {
            self.send_cursor += 1;
        }
    }

    /// The packet with sequence number `seq`, if the ring still holds it.
    pub(crate) fn get(&self, seq: u64) -> Option<&[u8]> {
        let i = self.index(seq);
        let m = &self.meta[i];
        let len = usize::from(m.len?);
        (m.seq == seq).then(|| &self.data[i * self.slot_size..i * self.slot_size + len])
    }

    /// When `seq` was queued, if the ring still holds it.
    pub(crate) fn queued_at(&self, seq: u64) -> Option<Instant> {
        let m = &self.meta[self.index(seq)];
        (m.len.is_some() && m.seq == seq).then_some(m.queued_at)
    }

    /// Records that a copy of `seq` reached the peer.
    pub(crate) fn mark_acked(&mut self, seq: u64) {
        let i = self.index(seq);
        if self.meta[i].seq == seq {
            self.meta[i].acked = true;
        }
    }

    /// Records one more copy of `seq` on its way.
    pub(crate) fn copy_sent(&mut self, seq: u64) {
        let i = self.index(seq);
        if self.meta[i].seq == seq {
            self.meta[i].copies_in_flight = self.meta[i].copies_in_flight.saturating_add(1);
        }
    }

    /// Records that one copy of `seq` was lost; returns whether the packet
    /// now needs a resend (no copy left in flight, none acknowledged, still
    /// held).
    pub(crate) fn copy_lost(&mut self, seq: u64) -> bool {
        let i = self.index(seq);
        let m = &mut self.meta[i];
        if m.seq != seq || m.len.is_none() {
            return false;
        }
        m.copies_in_flight = m.copies_in_flight.saturating_sub(1);
        m.copies_in_flight == 0 && !m.acked
    }

    /// Whether `seq` is known to have reached the peer (or is gone from the
    /// ring, so nothing can be resent anyway).
    pub(crate) fn is_acked_or_gone(&self, seq: u64) -> bool {
        let m = &self.meta[self.index(seq)];
        m.len.is_none() || m.seq != seq || m.acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_in_order_and_bounds_unsent() {
        let now = Instant::now();
        let mut ring = PacketRing::new(now, 4, 2, 8);
        assert_eq!(ring.push(now, b"a"), Ok(0));
        assert_eq!(ring.push(now, b"bb"), Ok(1));
        assert_eq!(ring.push(now, b"c"), Err(PushError::Full));
        assert_eq!(ring.push(now, &[0; 9]), Err(PushError::TooLarge));
        assert_eq!(ring.next_unsent().map(|x| x.0), Some(0));
        ring.advance();
        assert_eq!(ring.push(now, b"c"), Ok(2));
        assert_eq!(ring.push(now, b"d"), Err(PushError::Full));
        assert_eq!(ring.get(1), Some(&b"bb"[..]));
    }

    #[test]
    fn keeps_sent_packets_until_wrapped_and_tracks_acks() {
        let now = Instant::now();
        let mut ring = PacketRing::new(now, 2, 2, 8);
        for p in [b"x", b"y", b"z"] {
            ring.push(now, p).unwrap();
            ring.advance();
        }
        // Slot of seq 0 was reused by seq 2.
        assert_eq!(ring.get(0), None);
        assert!(ring.is_acked_or_gone(0));
        assert_eq!(ring.get(2), Some(&b"z"[..]));
        assert!(!ring.is_acked_or_gone(1));
        ring.mark_acked(1);
        assert!(ring.is_acked_or_gone(1));
        // A stale ack for a wrapped sequence number does not mark the new one.
        ring.mark_acked(0);
        assert!(!ring.is_acked_or_gone(2));
    }

    #[test]
    fn a_lost_copy_needs_a_resend_only_when_no_other_is_in_flight() {
        let now = Instant::now();
        let mut ring = PacketRing::new(now, 4, 4, 8);
        let seq = ring.push(now, b"p").unwrap();
        ring.advance();
        ring.copy_sent(seq);
        ring.copy_sent(seq);
        assert!(!ring.copy_lost(seq), "the other copy may still arrive");
        assert!(ring.copy_lost(seq), "both copies lost");
        ring.copy_sent(seq);
        ring.mark_acked(seq);
        assert!(!ring.copy_lost(seq), "acknowledged: nothing to resend");
        assert!(!ring.copy_lost(99), "not held");
    }
}
