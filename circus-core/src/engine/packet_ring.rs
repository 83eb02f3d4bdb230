//! Tunnel packets waiting to be sent, and recently sent ones kept for recovery.
//!
//! One preallocated pool of fixed-size slots serves both purposes, so the hot
//! path copies each IP packet once (TUN buffer -> slot) and never allocates.
//! Waiting packets sit in the [`FairQueue`] (flow-fair, delay-bounded); a
//! packet gets its global sequence number only when it leaves the queue, so
//! the receiver's in-order delivery never makes a sparse flow wait for the
//! bulk packets the queue let it overtake, and a packet dropped in the queue
//! leaves no hole. A sent packet's slot stays readable by sequence number
//! (for retransmission when its link fails) until `capacity` later packets
//! were sent; then it returns to the pool. The pool has `capacity +
//! queue_limit` slots, so a full queue never evicts packets still in flight.

use std::time::{Duration, Instant};

use super::fair_queue::{FairQueue, FqParams, QueueDrops};
use super::flow::is_pure_tcp_ack;
use super::stats::QueueDepth;

#[derive(Debug, Clone, Copy)]
struct SlotMeta {
    /// Sequence number this entry holds, valid only when `len` is set.
    seq: u64,
    len: Option<u16>,
    /// Pool slot holding the bytes.
    slot: u32,
    queued_at: Instant,
    /// A newer packet is known to have reached the peer. The receiver gives
    /// a hole up only after holding a newer packet for its hold time, so
    /// until one arrives a resend can still fill it, however old the packet
    /// is: when every link fails at once the hole waits for the first link
    /// back.
    overtaken: bool,
    /// Some copy of this packet was acknowledged on some link: recovery
    /// must not resend it.
    acked: bool,
    /// Copies sent and neither acknowledged nor lost: while one is still
    /// on its way, losing another needs no resend.
    copies_in_flight: u8,
    /// Sequence numbers back to the previous packet of the same flow queue
    /// (0: none); sent with every copy, see [`crate::wire::Frame::Data`].
    flow_gap: u32,
    /// Its flow was light when it left the queue: its resends are urgent too.
    light: bool,
}

/// Why [`PacketRing::push`] refused a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The packet is larger than a slot (the configured max packet size).
    TooLarge,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct PacketRing {
    slot_size: usize,
    data: Vec<u8>,
    /// Sent packets by sequence number (index `seq % capacity`).
    meta: Vec<SlotMeta>,
    /// Pool slots neither queued nor held for recovery.
    free: Vec<u32>,
    queue: FairQueue,
    /// Sequence number the next sent packet gets.
    next_seq: u64,
    /// Sequence number of the last packet sent from each flow queue.
    last_of_flow: Vec<Option<u64>>,
    /// Highest sequence number acknowledged so far.
    highest_acked: Option<u64>,
}

impl PacketRing {
    /// `capacity` sent packets kept for recovery, plus the send queue
    /// (`fq.limit` packets at most) in slots of `slot_size` bytes.
    pub(crate) fn new(now: Instant, capacity: usize, fq: FqParams, slot_size: usize) -> Self {
        let capacity = capacity.max(1);
        let fq = FqParams {
            limit: fq.limit.max(1),
            ..fq
        };
        let slots = capacity + fq.limit;
        let slot_size = slot_size.min(usize::from(u16::MAX));
        let queue = FairQueue::new(now, slots, fq);
        Self {
            slot_size,
            data: vec![0; slots * slot_size],
            meta: vec![
                SlotMeta {
                    seq: 0,
                    len: None,
                    slot: 0,
                    queued_at: now,
                    overtaken: false,
                    acked: false,
                    copies_in_flight: 0,
                    flow_gap: 0,
                    light: false,
                };
                capacity
            ],
            // Pool indices fit u32: the pool is allocated in memory.
            free: (0..slots as u32).rev().collect(),
            last_of_flow: vec![None; queue.flow_count()],
            queue,
            next_seq: 0,
            highest_acked: None,
        }
    }

    fn index(&self, seq: u64) -> usize {
        // The remainder is below `meta.len()`, which is a usize.
        (seq % self.meta.len() as u64) as usize
    }

    fn bytes(&self, slot: u32, len: usize) -> &[u8] {
        let start = slot as usize * self.slot_size;
        &self.data[start..start + len]
    }

    /// Queues a copy of `packet`, of the flow with hash `flow`. When the
    /// queue is full, the head of its longest flow is dropped to make room.
    pub(crate) fn push(&mut self, now: Instant, packet: &[u8], flow: u32) -> Result<(), PushError> {
        if packet.len() > self.slot_size {
            return Err(PushError::TooLarge);
        }
        if let Some(slot) = self.queue.make_room() {
            self.free.push(slot);
        }
        // The pool has a slot for every queued and every held packet.
        let slot = self
            .free
            .pop()
            .expect("pool slot free while queue has room");
        let start = slot as usize * self.slot_size;
        self.data[start..start + packet.len()].copy_from_slice(packet);
        // Checked against slot_size, which fits u16.
        self.queue.push(now, slot, packet.len() as u16, flow);
        Ok(())
    }

    /// The packet to send next (after applying the queue's drop rules): its
    /// length. [`take_unsent`](Self::take_unsent) then takes it.
    pub(crate) fn peek_unsent(&mut self, now: Instant) -> Option<usize> {
        let Self { queue, free, .. } = self;
        queue
            .peek(now, &mut |slot| free.push(slot))
            .map(|(_, len)| usize::from(len))
    }

    /// Chooses instead a light flow's packet, if one waits (see
    /// [`FairQueue::peek_light`]): its length.
    pub(crate) fn peek_unsent_light(&mut self, now: Instant) -> Option<usize> {
        self.queue.peek_light(now).map(|(_, len)| usize::from(len))
    }

    /// Whether the packet [`peek_unsent`](Self::peek_unsent) chose belongs
    /// to a light flow (see [`FairQueue::chosen_is_light`]).
    pub(crate) fn unsent_is_light(&self, now: Instant) -> bool {
        self.queue.chosen_is_light(now)
    }

    /// Whether the packet last peeked is a bare TCP ack (see
    /// [`is_pure_tcp_ack`]).
    pub(crate) fn unsent_is_pure_ack(&self) -> bool {
        self.queue.chosen_slot().is_some_and(|slot| {
            let len = usize::from(self.queue.slot_len(slot));
            is_pure_tcp_ack(self.bytes(slot, len))
        })
    }

    /// Takes the packet [`peek_unsent`](Self::peek_unsent) chose at `now`
    /// and gives it the next sequence number.
    pub(crate) fn take_unsent(&mut self, now: Instant) -> Option<u64> {
        let light = self.queue.chosen_is_light(now);
        let (slot, flow) = self.queue.pop(now)?;
        let seq = self.next_seq;
        self.next_seq += 1;
        // A gap too long for the field is sent as "none": that packet was
        // delivered or given up long ago.
        let flow_gap = self
            .last_of_flow
            .get_mut(usize::from(flow))
            .and_then(|last| last.replace(seq))
            .and_then(|previous| u32::try_from(seq - previous).ok())
            .unwrap_or(0);
        let i = self.index(seq);
        if self.meta[i].len.is_some() {
            self.free.push(self.meta[i].slot);
        }
        self.meta[i] = SlotMeta {
            seq,
            len: Some(self.queue_len_of(slot)),
            slot,
            queued_at: self.queue.queued_at(slot),
            overtaken: false,
            acked: false,
            copies_in_flight: 0,
            flow_gap,
            light,
        };
        Some(seq)
    }

    fn queue_len_of(&self, slot: u32) -> u16 {
        self.queue.slot_len(slot)
    }

    /// How full the send queue is; `draining`: whether some link can send.
    pub(crate) fn depth(&self, draining: bool) -> QueueDepth {
        QueueDepth {
            queued: self.queue.len(),
            limit: self.queue.limit(),
            draining,
        }
    }

    /// Bytes waiting to be sent.
    pub(crate) fn queued_bytes(&self) -> u64 {
        self.queue.bytes()
    }

    /// Drops in the send queue so far, by rule.
    pub(crate) fn drops(&self) -> QueueDrops {
        self.queue.drops()
    }

    /// The packet with sequence number `seq`, if the ring still holds it.
    pub(crate) fn get(&self, seq: u64) -> Option<&[u8]> {
        let i = self.index(seq);
        let m = &self.meta[i];
        let len = usize::from(m.len?);
        (m.seq == seq).then(|| self.bytes(m.slot, len))
    }

    /// Distance back to the previous packet of `seq`'s flow (0: none).
    pub(crate) fn flow_gap(&self, seq: u64) -> u32 {
        let m = &self.meta[self.index(seq)];
        if m.seq == seq { m.flow_gap } else { 0 }
    }

    /// Whether `seq`'s flow was light when it was sent.
    pub(crate) fn was_light(&self, seq: u64) -> bool {
        let m = &self.meta[self.index(seq)];
        m.seq == seq && m.light
    }

    /// Whether resending `seq` can still help at `now`: the ring holds it,
    /// no copy was acknowledged, and the peer has not yet given up its hole.
    /// That is sure while the packet is younger than `hold` (the peer's
    /// hold time, as this end derives it from the same links), and while no
    /// newer packet reached the peer (see `SlotMeta::overtaken`) up to the
    /// send queue's `max_age`, beyond which a late packet is worse than a
    /// lost one.
    pub(crate) fn resend_is_useful(&self, seq: u64, now: Instant, hold: Duration) -> bool {
        let m = &self.meta[self.index(seq)];
        let age = now.saturating_duration_since(m.queued_at);
        m.seq == seq
            && m.len.is_some()
            && !m.acked
            && (age < hold || (!m.overtaken && age < self.queue.max_age()))
    }

    /// Records that a copy of `seq` reached the peer, and that it overtook
    /// every older packet not yet acknowledged. Each sequence number is
    /// overtaken once, so this costs O(1) per packet overall.
    pub(crate) fn mark_acked(&mut self, seq: u64) {
        let i = self.index(seq);
        if self.meta[i].seq == seq {
            self.meta[i].acked = true;
        }
        if self.highest_acked.is_some_and(|h| h >= seq) {
            return;
        }
        // Only the last `capacity` packets are held; older ones are gone.
        let held_from = seq.saturating_sub(self.meta.len() as u64 - 1);
        let from = self
            .highest_acked
            .map_or(held_from, |h| (h + 1).max(held_from));
        self.highest_acked = Some(seq);
        for older in from..seq {
            let i = self.index(older);
            let m = &mut self.meta[i];
            if m.seq == older {
                m.overtaken = true;
            }
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn fq(limit: usize) -> FqParams {
        FqParams {
            flows: 4,
            quantum: 1500,
            limit,
            target: Duration::from_millis(5),
            interval: Duration::from_millis(100),
            max_age: Duration::from_millis(500),
        }
    }

    fn send(ring: &mut PacketRing, now: Instant) -> Option<u64> {
        ring.peek_unsent(now)?;
        ring.take_unsent(now)
    }

    /// The driver stops reading its TUN device on `is_full` (backpressure):
    /// the depth must say full exactly when the next push would drop.
    #[test]
    fn depth_says_full_exactly_when_a_push_would_drop() {
        let now = Instant::now();
        let mut ring = PacketRing::new(now, 4, fq(2), 8);
        let depth = |ring: &PacketRing| (ring.depth(true).queued, ring.depth(true).is_full());
        assert_eq!(depth(&ring), (0, false));
        ring.push(now, b"a", 0).unwrap();
        assert_eq!(depth(&ring), (1, false));
        ring.push(now, b"b", 1).unwrap();
        assert_eq!(depth(&ring), (2, true));
        assert_eq!(ring.drops().overflow, 0);
        send(&mut ring, now).unwrap();
        assert_eq!(depth(&ring), (1, false));
        assert_eq!(ring.depth(true).limit, 2);
    }

    #[test]
    fn queues_bounded_and_numbers_at_send_time() {
        let now = Instant::now();
        let mut ring = PacketRing::new(now, 4, fq(2), 8);
        assert_eq!(ring.push(now, b"a", 0), Ok(()));
        assert_eq!(ring.push(now, b"bb", 0), Ok(()));
        assert_eq!(ring.push(now, &[0; 9], 0), Err(PushError::TooLarge));
        // Full: the head of the longest flow ("a") makes room.
        assert_eq!(ring.push(now, b"c", 1), Ok(()));
        assert_eq!(ring.drops().overflow, 1);
        assert_eq!(ring.depth(true).queued, 2);
        let first = send(&mut ring, now).unwrap();
        let second = send(&mut ring, now).unwrap();
        assert_eq!((first, second), (0, 1));
        let mut got = [ring.get(0).unwrap(), ring.get(1).unwrap()];
        got.sort();
        assert_eq!(got, [&b"bb"[..], &b"c"[..]]);
        assert_eq!(send(&mut ring, now), None);
    }

    #[test]
    fn keeps_sent_packets_until_wrapped_and_tracks_acks() {
        let now = Instant::now();
        let mut ring = PacketRing::new(now, 2, fq(2), 8);
        for p in [b"x", b"y", b"z"] {
            ring.push(now, p, 0).unwrap();
            send(&mut ring, now).unwrap();
        }
        // Slot of seq 0 was reused by seq 2.
        let hold = Duration::from_millis(50);
        assert_eq!(ring.get(0), None);
        assert!(!ring.resend_is_useful(0, now, hold));
        assert_eq!(ring.get(2), Some(&b"z"[..]));
        assert!(ring.resend_is_useful(1, now, hold));
        ring.mark_acked(1);
        assert!(!ring.resend_is_useful(1, now, hold));
        // A stale ack for a wrapped sequence number does not mark the new one.
        ring.mark_acked(0);
        assert!(ring.resend_is_useful(2, now, hold));
        // The pool never runs dry however long it runs.
        for _ in 0..50 {
            ring.push(now, b"q", 3).unwrap();
            ring.push(now, b"r", 2).unwrap();
            send(&mut ring, now).unwrap();
        }
    }

    #[test]
    fn a_lost_copy_needs_a_resend_only_when_no_other_is_in_flight() {
        let now = Instant::now();
        let mut ring = PacketRing::new(now, 4, fq(4), 8);
        ring.push(now, b"p", 0).unwrap();
        let seq = send(&mut ring, now).unwrap();
        ring.copy_sent(seq);
        ring.copy_sent(seq);
        assert!(!ring.copy_lost(seq), "the other copy may still arrive");
        assert!(ring.copy_lost(seq), "both copies lost");
        ring.copy_sent(seq);
        ring.mark_acked(seq);
        assert!(!ring.copy_lost(seq), "acknowledged: nothing to resend");
        assert!(!ring.copy_lost(99), "not held");
    }

    #[test]
    fn a_resend_helps_while_young_or_while_nothing_newer_arrived() {
        let start = Instant::now();
        let hold = Duration::from_millis(50);
        let mut ring = PacketRing::new(start, 8, fq(8), 8);
        for p in [b"a", b"b", b"c", b"d"] {
            ring.push(start, p, 0).unwrap();
            send(&mut ring, start).unwrap();
        }
        // Every link down for a while: nothing newer arrived, so the peer
        // still waits for seq 0, until it is too old to be worth sending
        // (the send queue's max age, 500 ms).
        let later = start + Duration::from_millis(300);
        assert!(ring.resend_is_useful(0, later, hold));
        assert!(!ring.resend_is_useful(0, start + Duration::from_millis(500), hold));
        // Seq 2 arrives: 0 and 1 are overtaken, worth resending only while
        // younger than the hold time; 3 is not overtaken.
        ring.mark_acked(2);
        assert!(ring.resend_is_useful(0, start + hold / 2, hold));
        assert!(!ring.resend_is_useful(1, start + hold, hold));
        assert!(ring.resend_is_useful(3, later, hold));
        // An acknowledged packet is never resent, and an older ack
        // afterwards changes nothing for the newer ones.
        ring.mark_acked(1);
        assert!(!ring.resend_is_useful(1, start, hold));
        assert!(ring.resend_is_useful(3, later, hold));
    }
}
