//! Receiver-side duplicate removal and bounded in-order delivery per flow.
//!
//! Packets of one flow are spread over links with different delays, so they
//! arrive out of order, and the adaptive and redundant policies send copies.
//! TCP inside the tunnel reads reordering as loss, so the receiver holds
//! early packets until the gap before them fills, but never longer than a hold
//! time: a packet that was truly lost must not stall everything behind it.
//!
//! Order is kept per flow, not across the whole tunnel: every packet names the
//! previous packet of its flow (by its distance back in sequence numbers), and
//! waits only for that one to be delivered or given up. A hole left by one TCP
//! connection's lost packet then does not hold back a voice call or the other
//! connections, which is what a lossy link would otherwise do to everything
//! (head-of-line blocking). A packet that names no predecessor is delivered at
//! once; flows the sender hashes together are simply ordered together.
//!
//! A gap (a "hole") is given up, and counted as lost, as soon as one of these
//! holds:
//! - a packet behind it has waited the hold time (so no packet waits longer);
//! - the buffer holds `capacity` packets: the oldest waiting packet is released
//!   early rather than dropping anything or growing without bound.
//!
//! Nothing else gives a hole up: not even every link having delivered newer
//! packets, because the sender resends what a link lost, and an idle link may
//! just have been given the missing packet. The engine sizes the hold time so
//! that such a resend still fits (see `Session::refresh_reorder`).
//!
//! Memory is allocated once in [`ReorderBuffer::new`]: packet bytes live in a
//! slab of fixed-size slots, so the hot path never allocates.
//!
//! Sequence numbers start at 0 in every session and never wrap (u64).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many sequence numbers behind the delivery point are remembered as
/// delivered, to tell a redundant copy ([`Insert::Duplicate`]) from a late
/// original whose hole was already given up ([`Insert::Stale`]), and how far
/// ahead of it packets may be held or delivered. 8192 covers a copy arriving
/// 500 ms late at about 16k packets/s; anything older is reported as stale,
/// and dropped either way.
const DELIVERED_HISTORY: u64 = 8192;

/// Bits in the delivered map: the history behind the delivery point and as
/// much again ahead of it.
const DELIVERED_BITS: u64 = 2 * DELIVERED_HISTORY;

/// The arrival queue may hold this many entries per slot before it is
/// compacted; stale entries (for packets already delivered) are removed lazily,
/// and a factor of four keeps compaction amortised O(1) per packet.
const ARRIVALS_PER_SLOT: usize = 4;

/// Sizes and time limits of a [`ReorderBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReorderConfig {
    /// Upper bound of the hold time, whatever the engine derives from the
    /// links' RTTs.
    ///
    /// Default 1500 ms: the engine holds a hole for as long as the sender's
    /// resend of the missing packet may take, about the slowest usable
    /// link's RTT plus a few deviations, so this must exceed the RTTs of
    /// every link that should lose nothing: slow cellular links (200-300 ms
    /// with jitter) and geostationary satellites (600 ms, more with a queue).
    /// Below a link's RTT every packet it loses is lost for good, and its
    /// flow still waits the whole cap first. It only bounds the stall when a
    /// packet and its resend are both lost. At 500 ms the asymmetric-latency
    /// scenario (a satellite beside DSL) lost 34 probes while only the
    /// satellite was up (`circus-lab sim`: 99.915% delivered); at 1500 ms it
    /// loses none, and a lost satellite packet stalls its flow about 600 ms
    /// instead of 500 (p99 latency 712 against 610 ms).
    pub max_hold: Duration,
    /// Most packets held at once. When full, the oldest waiting packet is
    /// released (its holes given up) instead of dropping packets.
    ///
    /// Default 1024: about 100 ms of a 100 Mbit/s stream of 1400-byte packets
    /// waiting behind one hole. Memory is `capacity * max_packet_size`,
    /// allocated up front (about 1.5 MB with the defaults).
    pub capacity: usize,
    /// Largest packet accepted, in bytes; bigger ones are rejected with
    /// [`Insert::TooLarge`].
    ///
    /// Default 1500: the largest IP packet a TUN device hands over when its
    /// MTU is derived from the usual 1500-byte link MTU.
    pub max_packet_size: usize,
}

impl Default for ReorderConfig {
    fn default() -> Self {
        ReorderConfig {
            max_hold: Duration::from_millis(1500),
            capacity: 1024,
            max_packet_size: 1500,
        }
    }
}

/// What [`ReorderBuffer::insert`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Stored. If the previous packet of its flow was delivered (or given
    /// up) it is available from [`ReorderBuffer::poll_deliver`] at once,
    /// otherwise after that one arrives or its hole is given up.
    Buffered,
    /// A copy of a packet already delivered or buffered; dropped.
    Duplicate,
    /// Arrived after its hole was given up (or too far behind to tell);
    /// dropped, because delivering it now would reorder the stream.
    Stale,
    /// Longer than [`ReorderConfig::max_packet_size`]; dropped.
    TooLarge,
}

/// Counters for stats and tests; they only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Packets handed out by `poll_deliver`.
    pub delivered: u64,
    /// Packets dropped as [`Insert::Duplicate`].
    pub duplicates: u64,
    /// Packets dropped as [`Insert::Stale`].
    pub stale: u64,
    /// Packets dropped as [`Insert::TooLarge`].
    pub too_large: u64,
    /// Sequence numbers skipped because their hole was given up.
    pub lost: u64,
    /// Times the buffer was full and released its oldest waiting packet early.
    pub overflow_releases: u64,
    /// Packets dropped because the caller did not drain `poll_deliver` and no
    /// slot was left, or because its buffer was too short for the packet.
    pub dropped: u64,
}

/// A packet in the slab, kept in `ReorderBuffer::held` in sequence order.
#[derive(Debug, Clone, Copy)]
struct Held {
    seq: u64,
    /// The previous packet of its flow, if the sender named one.
    after: Option<u64>,
    slot: u32,
    len: u32,
}

/// Duplicate removal and bounded in-order delivery for one session's stream.
#[derive(Debug)]
pub struct ReorderBuffer {
    config: ReorderConfig,
    hold: Duration,
    /// Packet bytes, `config.capacity + 1` slots of `max_packet_size` each;
    /// the spare slot lets a full buffer take one more packet while it
    /// releases its oldest.
    slab: Box<[u8]>,
    /// Indices of unused slots.
    free: Vec<u32>,
    /// Buffered packets in ascending sequence order.
    held: VecDeque<Held>,
    /// Held packets that wait for their flow's previous packet, in arrival
    /// order (hence ascending deadline). Entries for packets that stopped
    /// waiting are removed lazily from the front.
    arrivals: VecDeque<(u64, Instant)>,
    /// Lowest sequence number neither delivered nor given up.
    next_seq: u64,
    /// Holes below this sequence number are given up: a packet below it that
    /// is not held is stale, and a held one is deliverable.
    released_below: u64,
    /// Bit `seq % DELIVERED_BITS` is set when `seq` was delivered; valid for
    /// `next_seq - DELIVERED_HISTORY <= seq < next_seq + DELIVERED_HISTORY`.
    delivered: Box<[u64]>,
    /// Since when a held packet is known to be deliverable without waiting
    /// (set by `insert`, cleared when `poll_deliver` finds nothing).
    ready_since: Option<Instant>,
    stats: ReorderStats,
}

impl ReorderBuffer {
    /// Allocates all memory the buffer will ever use. The hold time starts at
    /// `config.max_hold` until the engine knows the links' RTTs.
    pub fn new(config: ReorderConfig) -> Self {
        let capacity = config.capacity.max(1);
        let config = ReorderConfig { capacity, ..config };
        let slots = capacity + 1;
        ReorderBuffer {
            config,
            hold: config.max_hold,
            slab: vec![0; slots * config.max_packet_size].into_boxed_slice(),
            free: (0..slots as u32).rev().collect(),
            held: VecDeque::with_capacity(slots),
            arrivals: VecDeque::with_capacity(slots * ARRIVALS_PER_SLOT),
            next_seq: 0,
            released_below: 0,
            delivered: vec![0; (DELIVERED_BITS / 64) as usize].into_boxed_slice(),
            ready_since: None,
            stats: ReorderStats::default(),
        }
    }

    /// Sets how long a packet may wait for the gap before it, capped at
    /// `max_hold`. The engine derives it from the links' RTTs: long enough for
    /// the sender's resend of a lost packet, no longer, since waiting beyond
    /// that only adds latency.
    pub fn set_hold_time(&mut self, hold: Duration) {
        self.hold = hold.min(self.config.max_hold);
    }

    /// The hold time in force.
    pub fn hold_time(&self) -> Duration {
        self.hold
    }

    /// Accepts one packet; copies it into the slab unless it is dropped.
    /// `flow_gap` is how many sequence numbers back the previous packet of
    /// its flow was sent (0: none, deliverable at once).
    pub fn insert(&mut self, now: Instant, seq: u64, flow_gap: u32, packet: &[u8]) -> Insert {
        let verdict = self.store(now, seq, flow_gap, packet);
        match verdict {
            Insert::Buffered => {}
            Insert::Duplicate => self.stats.duplicates += 1,
            Insert::Stale => self.stats.stale += 1,
            Insert::TooLarge => self.stats.too_large += 1,
        }
        verdict
    }

    fn store(&mut self, now: Instant, seq: u64, flow_gap: u32, packet: &[u8]) -> Insert {
        if packet.len() > self.config.max_packet_size {
            return Insert::TooLarge;
        }
        if seq < self.next_seq {
            return self.classify_old(seq);
        }
        if seq == u64::MAX {
            // Never reached by a counter starting at 0; refusing it keeps
            // `seq + 1` arithmetic safe against a misbehaving peer.
            return Insert::Stale;
        }
        if seq >= self.next_seq.saturating_add(DELIVERED_HISTORY) {
            // Too far ahead to track: what is that old is given up.
            self.release_below(seq - (DELIVERED_HISTORY - 1));
            if self
                .held
                .front()
                .is_some_and(|h| h.seq < self.released_below)
            {
                self.ready_since.get_or_insert(now);
            }
            if seq >= self.next_seq.saturating_add(DELIVERED_HISTORY) {
                // Only when the caller does not drain `poll_deliver`.
                return Insert::Stale;
            }
        }
        if self.is_delivered(seq) {
            return Insert::Duplicate;
        }
        let Err(mut position) = self.held.binary_search_by_key(&seq, |h| h.seq) else {
            return Insert::Duplicate;
        };
        if seq < self.released_below {
            // Its hole was given up, so its flow may have moved on.
            return Insert::Stale;
        }
        if self.free.is_empty() {
            // Only reachable when the caller does not drain `poll_deliver`:
            // the oldest packet was already released, so make room by dropping it.
            if let Some(oldest) = self.held.pop_front() {
                self.free.push(oldest.slot);
                self.stats.dropped += 1;
                position = position.saturating_sub(1);
                // Done with, like a delivered packet: its copies are duplicates.
                self.set_delivered_bit(oldest.seq, true);
                self.release_below(oldest.seq + 1);
            }
            if seq < self.released_below {
                return Insert::Stale;
            }
        }
        let Some(slot) = self.free.pop() else {
            return Insert::Stale;
        };
        let start = slot as usize * self.config.max_packet_size;
        self.slab[start..start + packet.len()].copy_from_slice(packet);
        let held = Held {
            seq,
            after: (flow_gap > 0)
                .then(|| seq.checked_sub(u64::from(flow_gap)))
                .flatten(),
            slot,
            len: packet.len() as u32,
        };
        self.held.insert(position, held);
        if self.is_deliverable(&held) {
            self.ready_since.get_or_insert(now);
        } else {
            self.push_arrival(seq, now);
        }
        if self.held.len() > self.config.capacity
            && let Some(oldest) = self.held.front()
        {
            let oldest = oldest.seq;
            self.release_below(oldest + 1);
            self.ready_since.get_or_insert(now);
            self.stats.overflow_releases += 1;
        }
        Insert::Buffered
    }

    /// Hands out the next deliverable packet, if any at `now`: copies it into
    /// `buf` and returns its length. `buf` should hold `max_packet_size`
    /// bytes; a packet longer than `buf` is dropped (counted in
    /// `stats().dropped`) rather than truncated.
    pub fn poll_deliver(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.expire(now);
        loop {
            // Lowest sequence number first: of one flow, the predecessor is
            // always found before the packet that waits for it.
            let Some(index) = self.held.iter().position(|h| self.is_deliverable(h)) else {
                self.ready_since = None;
                return None;
            };
            let packet = self.held.remove(index)?;
            self.free.push(packet.slot);
            self.set_delivered_bit(packet.seq, true);
            self.advance();
            let len = packet.len as usize;
            if len > buf.len() {
                self.stats.dropped += 1;
                continue;
            }
            self.stats.delivered += 1;
            let start = packet.slot as usize * self.config.max_packet_size;
            buf[..len].copy_from_slice(&self.slab[start..start + len]);
            return Some(len);
        }
    }

    /// When `poll_deliver` next has something to hand out without a new
    /// packet arriving: the deadline of the oldest waiting packet, or a time
    /// already past if a packet is deliverable now. `None` when nothing is held.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.held.is_empty() {
            return None;
        }
        if let Some(since) = self.ready_since {
            return Some(since);
        }
        self.drop_stale_arrivals();
        let &(_, arrived) = self.arrivals.front()?;
        arrived.checked_add(self.hold)
    }

    /// Counters since creation.
    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    /// Number of packets held (waiting or deliverable).
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True when no packet is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Whether the packet may go now: everything before it is done, its
    /// hole was given up, or its flow's previous packet is done.
    fn is_deliverable(&self, held: &Held) -> bool {
        held.seq == self.next_seq
            || held.seq < self.released_below
            || held.after.is_none_or(|after| self.is_done(after))
    }

    /// Delivered or given up.
    fn is_done(&self, seq: u64) -> bool {
        seq < self.next_seq || seq < self.released_below || self.is_delivered(seq)
    }

    /// Delivered at or ahead of the delivery point (older ones are below
    /// `next_seq` and answered by `classify_old`).
    fn is_delivered(&self, seq: u64) -> bool {
        seq >= self.next_seq
            && seq < self.next_seq.saturating_add(DELIVERED_HISTORY)
            && self.delivered_bit(seq)
    }

    /// Gives up the holes before every packet whose hold time has run out.
    fn expire(&mut self, now: Instant) {
        self.drop_stale_arrivals();
        while let Some(&(seq, arrived)) = self.arrivals.front() {
            match arrived.checked_add(self.hold) {
                Some(deadline) if deadline <= now => {
                    self.arrivals.pop_front();
                    self.release_below(seq + 1);
                    self.drop_stale_arrivals();
                }
                _ => break,
            }
        }
    }

    /// Entries of packets that no longer wait: delivered, or below a
    /// released hole (deliverable).
    fn drop_stale_arrivals(&mut self) {
        while let Some(&(seq, _)) = self.arrivals.front() {
            if !self.is_done(seq) {
                break;
            }
            self.arrivals.pop_front();
        }
    }

    fn push_arrival(&mut self, seq: u64, now: Instant) {
        if self.arrivals.len() == self.arrivals.capacity() {
            let (next_seq, released) = (self.next_seq, self.released_below);
            let delivered = &self.delivered;
            self.arrivals
                .retain(|&(s, _)| s >= next_seq.max(released) && !bit_of(delivered, s));
        }
        if self.arrivals.len() < self.arrivals.capacity() {
            self.arrivals.push_back((seq, now));
        }
    }

    /// Gives up every hole below `seq` and moves the delivery point over them.
    fn release_below(&mut self, seq: u64) {
        self.released_below = self.released_below.max(seq);
        self.advance();
    }

    /// Moves the delivery point over everything delivered or given up,
    /// counting the holes skipped as lost; it stops at a held packet.
    fn advance(&mut self) {
        // A jump past the whole map (thousands of packets given up at once,
        // or a peer's absurd sequence number) is counted in one step.
        let stop = self
            .held
            .front()
            .map_or(self.released_below, |h| h.seq.min(self.released_below));
        if stop > self.next_seq.saturating_add(DELIVERED_BITS) {
            let delivered_ahead = (self.next_seq..self.next_seq + DELIVERED_HISTORY)
                .filter(|&seq| self.delivered_bit(seq))
                .count() as u64;
            self.stats.lost += stop - self.next_seq - delivered_ahead;
            self.delivered.fill(0);
            self.next_seq = stop;
        }
        loop {
            let seq = self.next_seq;
            let delivered = self.delivered_bit(seq);
            let given_up = !delivered
                && seq < self.released_below
                && self.held.front().is_none_or(|h| h.seq != seq);
            if !delivered && !given_up {
                return;
            }
            if given_up {
                self.stats.lost += 1;
            }
            // The bit of `seq + DELIVERED_HISTORY` enters the window ahead as
            // that of `seq - DELIVERED_HISTORY` leaves the history behind.
            self.set_delivered_bit(seq.wrapping_add(DELIVERED_HISTORY), false);
            self.next_seq = seq + 1;
        }
    }

    fn delivered_bit(&self, seq: u64) -> bool {
        bit_of(&self.delivered, seq)
    }

    fn set_delivered_bit(&mut self, seq: u64, value: bool) {
        let bit = seq % DELIVERED_BITS;
        let word = &mut self.delivered[(bit / 64) as usize];
        let mask = 1u64 << (bit % 64);
        if value {
            *word |= mask;
        } else {
            *word &= !mask;
        }
    }

    fn classify_old(&self, seq: u64) -> Insert {
        if self.next_seq - seq > DELIVERED_HISTORY {
            return Insert::Stale;
        }
        if self.delivered_bit(seq) {
            Insert::Duplicate
        } else {
            Insert::Stale
        }
    }
}

fn bit_of(map: &[u64], seq: u64) -> bool {
    let bit = seq % DELIVERED_BITS;
    map[(bit / 64) as usize] & (1u64 << (bit % 64)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(capacity: usize) -> ReorderBuffer {
        ReorderBuffer::new(ReorderConfig {
            max_hold: Duration::from_millis(100),
            capacity,
            max_packet_size: 64,
        })
    }

    /// Drains everything deliverable at `now`, returning the first byte of each
    /// packet (tests use the sequence number as content).
    fn drain(buf: &mut ReorderBuffer, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        let mut packet = [0u8; 64];
        while let Some(len) = buf.poll_deliver(now, &mut packet) {
            assert_eq!(len, 1);
            out.push(packet[0]);
        }
        out
    }

    /// One flow: every packet follows the one before it.
    fn insert(buf: &mut ReorderBuffer, now: Instant, seq: u8) -> Insert {
        buf.insert(now, u64::from(seq), 1, &[seq])
    }

    /// A packet of a flow whose previous packet was `gap` sequence numbers
    /// back (0: none).
    fn insert_in_flow(buf: &mut ReorderBuffer, now: Instant, seq: u8, gap: u32) -> Insert {
        buf.insert(now, u64::from(seq), gap, &[seq])
    }

    #[test]
    fn in_order_packets_are_deliverable_at_once() {
        let now = Instant::now();
        let mut buf = buffer(8);
        for seq in 0..3 {
            assert_eq!(insert(&mut buf, now, seq), Insert::Buffered);
            assert_eq!(drain(&mut buf, now), vec![seq]);
        }
        assert_eq!(buf.poll_timeout(), None);
    }

    #[test]
    fn early_packet_waits_for_the_gap_to_fill() {
        let now = Instant::now();
        let mut buf = buffer(8);
        insert(&mut buf, now, 1);
        insert(&mut buf, now, 2);
        assert!(drain(&mut buf, now).is_empty());
        insert(&mut buf, now, 0);
        assert_eq!(drain(&mut buf, now), vec![0, 1, 2]);
        assert_eq!(buf.stats().lost, 0);
    }

    #[test]
    fn copies_are_duplicates_and_late_originals_are_stale() {
        let t0 = Instant::now();
        let mut buf = buffer(8);
        insert(&mut buf, t0, 0);
        drain(&mut buf, t0);
        assert_eq!(
            insert(&mut buf, t0, 0),
            Insert::Duplicate,
            "copy of a delivered packet"
        );
        insert(&mut buf, t0, 2);
        assert_eq!(
            insert(&mut buf, t0, 2),
            Insert::Duplicate,
            "copy of a held packet"
        );
        let late = t0 + Duration::from_millis(100);
        assert_eq!(
            drain(&mut buf, late),
            vec![2],
            "hole 1 given up after the hold time"
        );
        assert_eq!(insert(&mut buf, late, 1), Insert::Stale);
        assert_eq!(buf.stats().lost, 1);
        assert_eq!(buf.stats().duplicates, 2);
        assert_eq!(buf.stats().stale, 1);
    }

    #[test]
    fn hole_is_given_up_exactly_at_the_hold_time() {
        let t0 = Instant::now();
        let mut buf = buffer(8);
        buf.set_hold_time(Duration::from_millis(30));
        insert(&mut buf, t0, 1);
        let deadline = t0 + Duration::from_millis(30);
        assert_eq!(buf.poll_timeout(), Some(deadline));
        assert!(drain(&mut buf, deadline - Duration::from_micros(1)).is_empty());
        assert_eq!(drain(&mut buf, deadline), vec![1]);
    }

    #[test]
    fn hold_time_is_capped_by_max_hold() {
        let mut buf = buffer(8);
        buf.set_hold_time(Duration::from_secs(5));
        assert_eq!(buf.hold_time(), Duration::from_millis(100));
    }

    #[test]
    fn hole_waits_for_a_late_packet_however_many_newer_ones_arrive() {
        let t0 = Instant::now();
        let mut buf = buffer(8);
        buf.set_hold_time(Duration::from_millis(50));
        // 0 is on a slow link (or being resent) while 1..=5 arrive on others.
        for seq in 1..=5 {
            insert(&mut buf, t0, seq);
        }
        let almost = t0 + Duration::from_millis(49);
        assert!(drain(&mut buf, almost).is_empty());
        assert_eq!(insert(&mut buf, almost, 0), Insert::Buffered);
        assert_eq!(drain(&mut buf, almost), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(buf.stats().lost, 0);
    }

    #[test]
    fn a_hole_in_one_flow_does_not_hold_back_another() {
        let t0 = Instant::now();
        let mut buf = buffer(8);
        // Flow A: 0, 2, 4; flow B: 1, 3, 5. A's 0 is missing.
        insert_in_flow(&mut buf, t0, 1, 0);
        insert_in_flow(&mut buf, t0, 2, 2);
        insert_in_flow(&mut buf, t0, 3, 2);
        insert_in_flow(&mut buf, t0, 4, 2);
        assert_eq!(drain(&mut buf, t0), vec![1, 3], "B flows, A waits for 0");
        insert_in_flow(&mut buf, t0, 5, 2);
        assert_eq!(drain(&mut buf, t0), vec![5]);
        insert_in_flow(&mut buf, t0, 0, 0);
        assert_eq!(drain(&mut buf, t0), vec![0, 2, 4]);
        assert_eq!(buf.stats().lost, 0);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_late_packet_of_a_flow_that_moved_on_is_stale() {
        let t0 = Instant::now();
        let mut buf = buffer(8);
        buf.set_hold_time(Duration::from_millis(10));
        // Flow A: 0, 2; flow B: 1. A's 0 is missing until after its hold.
        insert_in_flow(&mut buf, t0, 1, 0);
        insert_in_flow(&mut buf, t0, 2, 2);
        assert_eq!(drain(&mut buf, t0), vec![1]);
        let later = t0 + Duration::from_millis(10);
        assert_eq!(buf.poll_timeout(), Some(later));
        assert_eq!(drain(&mut buf, later), vec![2]);
        assert_eq!(insert_in_flow(&mut buf, later, 0, 0), Insert::Stale);
        assert_eq!(insert_in_flow(&mut buf, later, 1, 0), Insert::Duplicate);
        assert_eq!(buf.stats().lost, 1);
    }

    #[test]
    fn a_packet_far_ahead_gives_up_what_it_cannot_track() {
        let now = Instant::now();
        let mut buf = buffer(8);
        let far = 1_000_000;
        assert_eq!(buf.insert(now, far, 1, &[1]), Insert::Buffered);
        let mut out = [0u8; 64];
        assert_eq!(buf.poll_deliver(now, &mut out), None, "waits for far - 1");
        assert_eq!(buf.stats().lost, far - (DELIVERED_HISTORY - 1));
        assert_eq!(buf.insert(now, far - 1, 0, &[0]), Insert::Buffered);
        assert_eq!(drain(&mut buf, now), vec![0, 1]);
    }

    #[test]
    fn full_buffer_releases_its_oldest_packet() {
        let now = Instant::now();
        let mut buf = buffer(3);
        for seq in [2, 3, 4] {
            insert(&mut buf, now, seq);
        }
        assert!(drain(&mut buf, now).is_empty());
        assert_eq!(insert(&mut buf, now, 6), Insert::Buffered);
        assert_eq!(drain(&mut buf, now), vec![2, 3, 4]);
        assert_eq!(buf.stats().overflow_releases, 1);
        assert_eq!(buf.len(), 1);
    }

    #[test]
    fn undrained_full_buffer_drops_instead_of_panicking() {
        let now = Instant::now();
        let mut buf = buffer(2);
        for seq in [5, 6, 7, 8, 9] {
            insert(&mut buf, now, seq);
        }
        assert!(buf.len() <= 3);
        assert_eq!(drain(&mut buf, now), vec![7, 8, 9]);
        assert_eq!(buf.stats().dropped, 2);
    }

    #[test]
    fn largest_sequence_number_is_refused_without_panicking() {
        let now = Instant::now();
        let mut buf = buffer(2);
        assert_eq!(buf.insert(now, u64::MAX, 1, &[0]), Insert::Stale);
        assert_eq!(buf.poll_timeout(), None);
    }

    #[test]
    fn oversized_packet_is_rejected() {
        let now = Instant::now();
        let mut buf = buffer(2);
        assert_eq!(buf.insert(now, 0, 1, &[0; 65]), Insert::TooLarge);
        assert!(buf.is_empty());
    }

    #[test]
    fn short_output_buffer_drops_the_packet() {
        let now = Instant::now();
        let mut buf = buffer(2);
        buf.insert(now, 0, 1, &[7; 10]);
        buf.insert(now, 1, 1, &[8; 2]);
        let mut out = [0u8; 4];
        assert_eq!(buf.poll_deliver(now, &mut out), Some(2));
        assert_eq!(&out[..2], &[8, 8]);
        assert_eq!(buf.stats().dropped, 1);
    }
}
