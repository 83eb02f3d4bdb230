//! The send queue: packets waiting for a link with room, served flow by flow
//! (deficit round robin, sparse flows first) with CoDel per flow, as Linux's
//! fq_codel (RFC 8290) does.
//!
//! The queue holds slot indices of the [`PacketRing`](super::packet_ring)'s
//! preallocated storage, linked through a per-slot `next` array; flows are a
//! fixed table of buckets chosen by the packet's flow hash. Nothing is
//! allocated after construction.
//!
//! - A flow that has no backlog when a packet arrives goes on the *new* list
//!   and is served before the *old* ones, so a sparse stream (a game, VoIP,
//!   a 1000 pps probe) never waits behind bulk TCP.
//! - Buckets are set-associative, as in CAKE: a flow takes the first bucket
//!   of its set of [`WAYS`] that already holds its hash or is idle, so two
//!   flows share a bucket only when all of the set is busy. A light flow
//!   that shared a bucket with a bulk one would be metered as bulk (no
//!   copies), wait behind it and be ordered with it by the receiver.
//! - Flows take turns, each sending up to `quantum` bytes per round.
//! - CoDel per flow: once a flow's head has waited longer than `target` for
//!   a whole `interval`, its head packets are dropped at the CoDel rate
//!   (`interval / sqrt(count)`), which makes TCP back off instead of filling
//!   the queue.
//! - Whatever waited longer than `max_age` is dropped outright (no link can
//!   take it in time: a late packet is worse than a lost one).
//! - When the queue is full, the head of the flow with the most bytes queued
//!   is dropped to make room, never the arriving packet.
//! - Each flow's recent sending rate tells *light* flows (under about
//!   1 Mbit/s: voice, games, DNS, interactive shells, TCP acks) from bulk
//!   ones; the scheduler sends light flows' packets on several links, so a link
//!   dying under them costs them nothing (see [`FairQueue::chosen_is_light`]).
//!
//! Sending is split in two: [`peek`](FairQueue::peek) picks the next packet
//! (and applies the drop rules), [`pop`](FairQueue::pop) takes it once a
//! link accepted it. Peeking does not change the round robin, so peeking
//! again picks the same packet unless a drop rule removed it or a sparse
//! flow arrived meanwhile.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// End of a slot list.
const NONE: u32 = u32::MAX;

/// A flow that sent at most this many bytes in the current
/// [`LIGHT_FLOW_WINDOW`] is light: 12.5 kB per 100 ms is 1 Mbit/s, above
/// voice (about 0.1 Mbit/s) and the ack stream of a 30 Mbit/s download
/// (about 0.5 Mbit/s), below any bulk transfer worth the name. Copying light
/// flows costs little capacity and spares them a failover's hole.
const LIGHT_FLOW_BYTES: u32 = 12_500;

/// The period over which a flow's bytes are counted for [`LIGHT_FLOW_BYTES`].
const LIGHT_FLOW_WINDOW: Duration = Duration::from_millis(100);

/// Buckets a flow may take: its hash's own and the next `WAYS - 1`.
const WAYS: usize = 8;

/// Tuning of the fair queue; see the engine [`Config`](super::Config).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FqParams {
    /// Flow buckets.
    pub(crate) flows: usize,
    /// Bytes a flow may send per round.
    pub(crate) quantum: u32,
    /// Most packets queued at once.
    pub(crate) limit: usize,
    /// CoDel: acceptable standing queue delay.
    pub(crate) target: Duration,
    /// CoDel: how long the delay must stay above target before dropping.
    pub(crate) interval: Duration,
    /// Hard bound on the time a packet may wait.
    pub(crate) max_age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnList {
    No,
    New,
    Old,
}

/// RFC 8289 state of one flow.
#[derive(Debug, Clone, Copy, Default)]
struct Codel {
    first_above: Option<Instant>,
    drop_next: Option<Instant>,
    count: u32,
    last_count: u32,
    dropping: bool,
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    /// Hash of the flow that holds the bucket (or last held it).
    hash: u32,
    head: u32,
    tail: u32,
    packets: u32,
    bytes: u32,
    deficit: i64,
    list: OnList,
    codel: Codel,
    /// Start of the current light-flow counting window.
    sent_since: Option<Instant>,
    /// Bytes sent since `sent_since`.
    sent_bytes: u32,
    /// Bytes sent in the window before (0 if it was not the one just
    /// before), so a bulk flow does not pass for light at each new window.
    sent_bytes_before: u32,
}

impl Flow {
    const EMPTY: Self = Self {
        hash: 0,
        head: NONE,
        tail: NONE,
        packets: 0,
        bytes: 0,
        deficit: 0,
        list: OnList::No,
        codel: Codel {
            first_above: None,
            drop_next: None,
            count: 0,
            last_count: 0,
            dropping: false,
        },
        sent_since: None,
        sent_bytes: 0,
        sent_bytes_before: 0,
    };

    /// Bytes sent in the window before the one in force at `now`, and in
    /// that one so far.
    fn sent_in_windows(&self, now: Instant) -> (u32, u32) {
        let Some(since) = self.sent_since else {
            return (0, 0);
        };
        let elapsed = now.saturating_duration_since(since);
        if elapsed < LIGHT_FLOW_WINDOW {
            (self.sent_bytes_before, self.sent_bytes)
        } else if elapsed < 2 * LIGHT_FLOW_WINDOW {
            (self.sent_bytes, 0)
        } else {
            (0, 0)
        }
    }

    /// Whether the bucket still belongs to its flow at `now`: it has packets
    /// queued, is in the rotation, or sent in the light-flow windows that
    /// meter it.
    fn is_busy(&self, now: Instant) -> bool {
        self.packets > 0 || self.list != OnList::No || self.sent_in_windows(now) != (0, 0)
    }

    /// Counts `len` bytes sent at `now`.
    fn count_sent(&mut self, now: Instant, len: u16) {
        let in_window = self
            .sent_since
            .is_some_and(|since| now.saturating_duration_since(since) < LIGHT_FLOW_WINDOW);
        if !in_window {
            (self.sent_bytes_before, self.sent_bytes) = self.sent_in_windows(now);
            self.sent_since = Some(now);
        }
        self.sent_bytes = self.sent_bytes.saturating_add(u32::from(len));
    }
}

/// Why the queue dropped packets, counted since creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct QueueDrops {
    /// Made room for an arriving packet (head of the longest flow).
    pub(crate) overflow: u64,
    /// CoDel: the flow's queueing delay stayed above target.
    pub(crate) codel: u64,
    /// Waited longer than `max_age`.
    pub(crate) expired: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct FairQueue {
    params: FqParams,
    flows: Vec<Flow>,
    new_flows: VecDeque<u16>,
    old_flows: VecDeque<u16>,
    /// Per storage slot: next slot of the same flow, length, arrival time.
    next: Vec<u32>,
    len: Vec<u16>,
    queued_at: Vec<Instant>,
    packets: usize,
    /// Bytes queued, all flows together.
    bytes: u64,
    /// Flow whose head [`peek`](Self::peek) chose.
    chosen: Option<u16>,
    drops: QueueDrops,
}

impl FairQueue {
    /// A queue over `slots` storage slots.
    pub(crate) fn new(now: Instant, slots: usize, params: FqParams) -> Self {
        let flows = params.flows.clamp(1, usize::from(u16::MAX));
        let params = FqParams {
            flows,
            quantum: params.quantum.max(1),
            limit: params.limit.max(1),
            ..params
        };
        Self {
            params,
            flows: vec![Flow::EMPTY; flows],
            new_flows: VecDeque::with_capacity(flows),
            old_flows: VecDeque::with_capacity(flows),
            next: vec![NONE; slots],
            len: vec![0; slots],
            queued_at: vec![now; slots],
            packets: 0,
            bytes: 0,
            chosen: None,
            drops: QueueDrops::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.packets
    }

    /// Most packets queued at once.
    pub(crate) fn limit(&self) -> usize {
        self.params.limit
    }

    /// Bytes queued: the backlog the scheduler weighs against a slow link's
    /// delay.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn is_full(&self) -> bool {
        self.packets >= self.params.limit
    }

    pub(crate) fn drops(&self) -> QueueDrops {
        self.drops
    }

    /// Bytes in `slot`, as pushed.
    pub(crate) fn slot_len(&self, slot: u32) -> u16 {
        self.len[slot as usize]
    }

    /// The bound on a packet's wait ([`FqParams::max_age`]).
    pub(crate) fn max_age(&self) -> Duration {
        self.params.max_age
    }

    /// Time `slot` entered the queue.
    pub(crate) fn queued_at(&self, slot: u32) -> Instant {
        self.queued_at[slot as usize]
    }

    /// Makes room when full: drops the head of the flow with the most bytes
    /// queued and returns its slot, to be freed by the caller.
    pub(crate) fn make_room(&mut self) -> Option<u32> {
        if !self.is_full() {
            return None;
        }
        let fattest = (0..self.flows.len()).max_by_key(|&f| self.flows[f].bytes)?;
        let slot = self.remove_head(fattest as u16)?;
        self.drops.overflow += 1;
        Some(slot)
    }

    /// Queues storage slot `slot` holding `len` bytes of the flow with hash
    /// `hash`. The caller checked [`is_full`](Self::is_full).
    pub(crate) fn push(&mut self, now: Instant, slot: u32, len: u16, hash: u32) {
        let s = slot as usize;
        self.next[s] = NONE;
        self.len[s] = len;
        self.queued_at[s] = now;
        let f = self.bucket(now, hash);
        let flow = &mut self.flows[usize::from(f)];
        flow.hash = hash;
        if flow.tail == NONE {
            flow.head = slot;
        } else {
            self.next[flow.tail as usize] = slot;
        }
        flow.tail = slot;
        flow.packets += 1;
        flow.bytes += u32::from(len);
        self.packets += 1;
        self.bytes += u64::from(len);
        if flow.list == OnList::No {
            // A sparse flow (no backlog, not in the rotation): served first.
            flow.list = OnList::New;
            flow.deficit = i64::from(self.params.quantum);
            self.new_flows.push_back(f);
        }
    }

    /// The bucket for a packet of the flow with hash `hash`: the one of its
    /// set that holds the hash, else the first idle one, else its own.
    fn bucket(&self, now: Instant, hash: u32) -> u16 {
        let count = self.flows.len();
        let home = hash as usize % count;
        let ways = || (0..WAYS.min(count)).map(|k| (home + k) % count);
        let index = ways()
            .find(|&f| self.flows[f].hash == hash && self.flows[f].is_busy(now))
            .or_else(|| ways().find(|&f| !self.flows[f].is_busy(now)))
            .unwrap_or(home);
        // The table has at most u16::MAX flows, so the index fits.
        index as u16
    }

    fn remove_head(&mut self, f: u16) -> Option<u32> {
        let flow = &mut self.flows[usize::from(f)];
        let slot = flow.head;
        if slot == NONE {
            return None;
        }
        flow.head = self.next[slot as usize];
        if flow.head == NONE {
            flow.tail = NONE;
        }
        flow.packets -= 1;
        flow.bytes -= u32::from(self.len[slot as usize]);
        self.packets -= 1;
        self.bytes -= u64::from(self.len[slot as usize]);
        if self.chosen == Some(f) {
            self.chosen = None;
        }
        Some(slot)
    }

    /// Picks the packet to send next, dropping on the way what the rules
    /// say (each dropped slot goes to `free`). Returns its slot and length.
    pub(crate) fn peek(&mut self, now: Instant, free: &mut impl FnMut(u32)) -> Option<(u32, u16)> {
        self.chosen = None;
        loop {
            let (f, from_new) = match self.new_flows.front() {
                Some(&f) => (f, true),
                None => (*self.old_flows.front()?, false),
            };
            let fi = usize::from(f);
            if self.flows[fi].deficit <= 0 {
                self.flows[fi].deficit += i64::from(self.params.quantum);
                self.rotate_to_old(from_new);
                continue;
            }
            match self.codel_head(now, f, free) {
                Some(slot) => {
                    self.chosen = Some(f);
                    return Some((slot, self.len[slot as usize]));
                }
                None => {
                    // Empty: a new flow goes to the old list once (so it
                    // cannot stay "new" by emptying each time), an old one
                    // leaves the rotation.
                    if from_new && !self.old_flows.is_empty() {
                        self.rotate_to_old(true);
                    } else {
                        if from_new {
                            self.new_flows.pop_front();
                        } else {
                            self.old_flows.pop_front();
                        }
                        self.flows[fi].list = OnList::No;
                    }
                }
            }
        }
    }

    fn rotate_to_old(&mut self, from_new: bool) {
        let f = if from_new {
            self.new_flows.pop_front()
        } else {
            self.old_flows.pop_front()
        };
        if let Some(f) = f {
            self.flows[usize::from(f)].list = OnList::Old;
            self.old_flows.push_back(f);
        }
    }

    /// The storage slot of the packet [`peek`](Self::peek) (or
    /// [`peek_light`](Self::peek_light)) chose.
    pub(crate) fn chosen_slot(&self) -> Option<u32> {
        let head = self.flows[usize::from(self.chosen?)].head;
        (head != NONE).then_some(head)
    }

    /// Whether the packet [`peek`](Self::peek) chose belongs to a light flow:
    /// one that sent at most [`LIGHT_FLOW_BYTES`] in the last
    /// [`LIGHT_FLOW_WINDOW`] and, this packet included, in the current one.
    pub(crate) fn chosen_is_light(&self, now: Instant) -> bool {
        self.chosen.is_some_and(|f| self.is_light(f, now))
    }

    fn is_light(&self, f: u16, now: Instant) -> bool {
        let flow = &self.flows[usize::from(f)];
        let len = if flow.head == NONE {
            0
        } else {
            u32::from(self.len[flow.head as usize])
        };
        let (before, current) = flow.sent_in_windows(now);
        before.max(current + len) <= LIGHT_FLOW_BYTES
    }

    /// Chooses instead the head of the first light flow in the rotation
    /// that has one, out of turn; returns its slot and length. For when the
    /// packet [`peek`](Self::peek) chose is a bulk one that no link has room
    /// for: light packets may use extra room, and the rotation would
    /// otherwise make a light flow that already had its turn wait until
    /// the bulk one can go. The out-of-turn packet is charged to the flow's
    /// deficit, so its fair share is unchanged.
    pub(crate) fn peek_light(&mut self, now: Instant) -> Option<(u32, u16)> {
        let f = self
            .new_flows
            .iter()
            .chain(&self.old_flows)
            .copied()
            .find(|&f| self.flows[usize::from(f)].head != NONE && self.is_light(f, now))?;
        self.chosen = Some(f);
        let head = self.flows[usize::from(f)].head;
        Some((head, self.len[head as usize]))
    }

    /// Takes the packet [`peek`](Self::peek) chose at `now`; returns its
    /// slot and the index of its flow's queue (what the receiver orders it
    /// by).
    pub(crate) fn pop(&mut self, now: Instant) -> Option<(u32, u16)> {
        let f = self.chosen?;
        let slot = self.remove_head(f)?;
        let len = self.len[slot as usize];
        let flow = &mut self.flows[usize::from(f)];
        flow.deficit -= i64::from(len);
        flow.count_sent(now, len);
        Some((slot, f))
    }

    /// Number of flow queues: flow indices are below it.
    pub(crate) fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// CoDel's dequeue for flow `f`: the head packet that may go, after
    /// dropping the heads that must not.
    fn codel_head(&mut self, now: Instant, f: u16, free: &mut impl FnMut(u32)) -> Option<u32> {
        let p = self.params;
        loop {
            let fi = usize::from(f);
            let head = self.flows[fi].head;
            if head == NONE {
                self.flows[fi].codel.dropping = false;
                return None;
            }
            let sojourn = now.saturating_duration_since(self.queued_at(head));
            if sojourn > p.max_age {
                self.remove_head(f);
                self.drops.expired += 1;
                free(head);
                continue;
            }
            let flow = &mut self.flows[fi];
            let ok_to_drop = should_drop(&mut flow.codel, now, sojourn, flow.bytes, p);
            let c = &mut flow.codel;
            if c.dropping {
                if !ok_to_drop {
                    c.dropping = false;
                    return Some(head);
                }
                let due = c.drop_next.is_none_or(|t| now >= t);
                if !due {
                    return Some(head);
                }
                c.count = c.count.saturating_add(1);
                c.drop_next = Some(control_law(c.drop_next.unwrap_or(now), c.count, p.interval));
            } else if ok_to_drop {
                c.dropping = true;
                // Resume near the last drop rate if dropping stopped only
                // recently (RFC 8289's count memory).
                let delta = c.count.saturating_sub(c.last_count);
                let recent = c
                    .drop_next
                    .is_some_and(|t| now.saturating_duration_since(t) < 16 * p.interval);
                c.count = if delta > 1 && recent { delta } else { 1 };
                c.last_count = c.count;
                c.drop_next = Some(control_law(now, c.count, p.interval));
            } else {
                return Some(head);
            }
            self.remove_head(f);
            self.drops.codel += 1;
            free(head);
        }
    }
}

/// Whether the head's sojourn time has been above target for an interval.
/// A flow with at most one quantum queued is never dropped from.
fn should_drop(c: &mut Codel, now: Instant, sojourn: Duration, bytes: u32, p: FqParams) -> bool {
    if sojourn < p.target || bytes <= p.quantum {
        c.first_above = None;
        return false;
    }
    match c.first_above {
        None => {
            c.first_above = Some(now + p.interval);
            false
        }
        Some(t) => now >= t,
    }
}

/// Next drop time: `interval / sqrt(count)` after `t`.
fn control_law(t: Instant, count: u32, interval: Duration) -> Instant {
    t + interval.div_f64(f64::from(count.max(1)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params(limit: usize) -> FqParams {
        FqParams {
            flows: 8,
            quantum: 1500,
            limit,
            target: Duration::from_millis(5),
            interval: Duration::from_millis(100),
            max_age: Duration::from_millis(500),
        }
    }

    #[test]
    fn sparse_flow_goes_first_and_flows_alternate() {
        let now = Instant::now();
        let mut q = FairQueue::new(now, 16, params(16));
        for s in 0..4 {
            q.push(now, s, 1000, 1);
        }
        let mut sent = Vec::new();
        let mut free = |_| panic!("nothing is dropped");
        let (slot, _) = q.peek(now, &mut free).unwrap();
        sent.push(q.pop(now).unwrap().0);
        assert_eq!(slot, 0);
        q.push(now, 10, 100, 2);
        while q.peek(now, &mut free).is_some() {
            sent.push(q.pop(now).unwrap().0);
        }
        // Flow 1 keeps its quantum (1500: one more 1000-byte packet), then
        // the sparse flow 2 goes ahead of the rest of flow 1.
        assert_eq!(sent, vec![0, 1, 10, 2, 3]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn overflow_drops_the_longest_flows_head() {
        let now = Instant::now();
        let mut q = FairQueue::new(now, 8, params(3));
        q.push(now, 0, 1000, 1);
        q.push(now, 1, 1000, 1);
        q.push(now, 2, 100, 2);
        assert!(q.is_full());
        assert_eq!(q.make_room(), Some(0));
        q.push(now, 3, 100, 3);
        assert_eq!(q.drops().overflow, 1);
    }

    /// Sends everything queued at `now`; returns whether each packet was
    /// judged light when it left.
    fn send_all(q: &mut FairQueue, now: Instant) -> Vec<bool> {
        let mut light = Vec::new();
        while q.peek(now, &mut |_| panic!("nothing is dropped")).is_some() {
            light.push(q.chosen_is_light(now));
            q.pop(now);
        }
        light
    }

    #[test]
    fn a_flow_is_light_until_it_sends_a_megabit_per_second() {
        let t0 = Instant::now();
        let mut q = FairQueue::new(t0, 64, params(64));
        // 10 kB in a window: light. 3 kB more: heavy from the packet that
        // passes 12.5 kB.
        for s in 0..13 {
            q.push(t0, s, 1000, 1);
        }
        let light = send_all(&mut q, t0);
        assert_eq!(light, [vec![true; 12], vec![false]].concat());
        // The next window still remembers the heavy one before it.
        let t1 = t0 + LIGHT_FLOW_WINDOW;
        q.push(t1, 0, 100, 1);
        assert_eq!(send_all(&mut q, t1), vec![false]);
        // Quiet for a window: light again; other flows never were heavy.
        let t3 = t0 + 3 * LIGHT_FLOW_WINDOW;
        q.push(t3, 1, 100, 1);
        q.push(t3, 2, 100, 2);
        assert_eq!(send_all(&mut q, t3), vec![true, true]);
    }

    /// Sends everything queued at `now`; returns each packet's slot and
    /// bucket.
    fn drain(q: &mut FairQueue, now: Instant) -> Vec<(u32, u16)> {
        let mut sent = Vec::new();
        while q.peek(now, &mut |_| panic!("nothing is dropped")).is_some() {
            sent.extend(q.pop(now));
        }
        sent
    }

    #[test]
    fn colliding_flows_take_separate_buckets_while_busy() {
        let t0 = Instant::now();
        let mut q = FairQueue::new(
            t0,
            64,
            FqParams {
                flows: 16,
                ..params(64)
            },
        );
        // 3 and 19 share their home bucket (3 of 16).
        for s in 0..14 {
            q.push(t0, s, 1000, 3);
        }
        q.push(t0, 20, 100, 19);
        let mut light = Vec::new();
        let mut buckets = Vec::new();
        while q.peek(t0, &mut |_| panic!("nothing is dropped")).is_some() {
            light.push(q.chosen_is_light(t0));
            buckets.push(q.pop(t0).unwrap());
        }
        let bulk: Vec<u16> = buckets.iter().filter(|b| b.0 < 14).map(|b| b.1).collect();
        let sparse = buckets.iter().find(|b| b.0 == 20).unwrap().1;
        assert!(
            bulk.iter().all(|&b| b == 3),
            "a flow keeps its bucket: {bulk:?}"
        );
        assert_eq!(sparse, 4, "the next idle way of the set");
        // The bulk flow is metered alone: the sparse one stays light.
        let sparse_at = buckets.iter().position(|b| b.0 == 20).unwrap();
        assert!(light[sparse_at]);
        assert!(!light[buckets.len() - 1]);

        // Still metered, so still its bucket a window later.
        let t1 = t0 + LIGHT_FLOW_WINDOW;
        q.push(t1, 21, 100, 19);
        assert_eq!(drain(&mut q, t1), vec![(21, 4)]);
        // Idle for two windows: the bucket is free again, and 19's home
        // way (3, bulk flow idle too) is the first free one.
        let t3 = t1 + 2 * LIGHT_FLOW_WINDOW;
        q.push(t3, 22, 100, 19);
        assert_eq!(drain(&mut q, t3), vec![(22, 3)]);
    }

    #[test]
    fn a_full_set_shares_the_home_bucket() {
        let t0 = Instant::now();
        let mut q = FairQueue::new(t0, 64, params(64));
        // Eight busy flows fill the eight-bucket table; a ninth joins its home.
        for hash in 0..9 {
            q.push(t0, hash, 100, hash);
        }
        let sent = drain(&mut q, t0);
        let mut buckets: Vec<u16> = sent.iter().map(|s| s.1).collect();
        assert_eq!(sent.iter().find(|s| s.0 == 8).unwrap().1, 0);
        buckets.sort_unstable();
        buckets.dedup();
        assert_eq!(buckets, (0..8).collect::<Vec<u16>>());
    }

    #[test]
    fn a_light_flow_goes_out_of_turn_when_asked() {
        let now = Instant::now();
        let mut q = FairQueue::new(now, 64, params(64));
        let mut free = |_| panic!("nothing is dropped");
        // Flow 1 has sent enough to be bulk.
        for s in 40..53 {
            q.push(now, s, 1000, 1);
        }
        drain(&mut q, now);
        for s in 0..20 {
            q.push(now, s, 1000, 1);
        }
        q.push(now, 30, 100, 2);
        let mut sent = Vec::new();
        for _ in 0..3 {
            q.peek(now, &mut free);
            sent.push(q.pop(now).unwrap().0);
        }
        assert_eq!(sent, vec![0, 1, 30]);
        // The bulk packet chosen next finds no room, so it stays; the light
        // flow, its turn over, waits behind it in the rotation, and its next
        // packet is not the one peek chooses.
        q.peek(now, &mut free);
        q.push(now, 31, 100, 2);
        let (bulk, _) = q.peek(now, &mut free).unwrap();
        assert_ne!(bulk, 31);
        assert!(!q.chosen_is_light(now));
        assert_eq!(q.peek_light(now), Some((31, 100)));
        assert!(q.chosen_is_light(now));
        assert_eq!(q.pop(now).map(|p| p.0), Some(31));
        // Nothing light is left: the bulk flow's head is still next.
        assert_eq!(q.peek_light(now), None);
        assert_eq!(q.peek(now, &mut free), Some((bulk, 1000)));
    }

    #[test]
    fn codel_drops_a_standing_queue_and_max_age_expires() {
        let t0 = Instant::now();
        let mut q = FairQueue::new(t0, 64, params(64));
        for s in 0..40 {
            q.push(t0, s, 1000, 1);
        }
        let mut dropped = Vec::new();
        // Delay above target, but not yet for an interval: no drop.
        let t = t0 + Duration::from_millis(10);
        assert_eq!(q.peek(t, &mut |s| dropped.push(s)).map(|x| x.0), Some(0));
        q.pop(t);
        let t = t + Duration::from_millis(101);
        assert_eq!(q.peek(t, &mut |s| dropped.push(s)).map(|x| x.0), Some(2));
        assert_eq!(dropped, vec![1]);
        let t = t0 + Duration::from_millis(501);
        assert_eq!(q.peek(t, &mut |s| dropped.push(s)), None);
        assert_eq!(q.len(), 0);
        assert_eq!(q.drops().codel, 1);
        assert_eq!(q.drops().expired, 38);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push { hash: u32, len: u16 },
        Send,
        Wait(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u32..6, 1u16..1500).prop_map(|(hash, len)| Op::Push { hash, len }),
            2 => Just(Op::Send),
            1 => (0u16..200).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Every packet pushed is sent or dropped exactly once, each drop
        /// counted by its rule, and each flow's packets leave in order.
        #[test]
        fn never_loses_or_duplicates_and_keeps_flow_order(ops in proptest::collection::vec(op(), 0..400)) {
            let t0 = Instant::now();
            let slots = 32usize;
            let mut q = FairQueue::new(t0, slots, params(24));
            let mut free_slots: Vec<u32> = (0..slots as u32).rev().collect();
            let mut in_slot: Vec<Option<(u32, u64)>> = vec![None; slots];
            let mut now = t0;
            let mut next_id = 0u64;
            let mut last_sent = std::collections::HashMap::<u32, u64>::new();
            let (mut sent, mut dropped) = (0u64, 0u64);
            for op in ops {
                match op {
                    Op::Push { hash, len } => {
                        if let Some(s) = q.make_room() {
                            in_slot[s as usize].take().expect("dropped slot was queued");
                            free_slots.push(s);
                            dropped += 1;
                        }
                        let s = free_slots.pop().expect("room was made");
                        prop_assert!(in_slot[s as usize].is_none());
                        in_slot[s as usize] = Some((hash, next_id));
                        next_id += 1;
                        q.push(now, s, len, hash);
                    }
                    Op::Send => {
                        let mut freed = Vec::new();
                        let peeked = q.peek(now, &mut |s| freed.push(s));
                        for s in freed {
                            in_slot[s as usize].take().expect("dropped slot was queued");
                            free_slots.push(s);
                            dropped += 1;
                        }
                        if let Some((s, _)) = peeked {
                            let (popped, flow) = q.pop(now).expect("peeked");
                            prop_assert_eq!(popped, s);
                            let (hash, id) = in_slot[s as usize].take().expect("sent slot was queued");
                            prop_assert!(usize::from(flow) < q.flow_count());
                            if let Some(prev) = last_sent.insert(hash, id) {
                                prop_assert!(prev < id, "flow order");
                            }
                            free_slots.push(s);
                            sent += 1;
                        }
                    }
                    Op::Wait(ms) => now += Duration::from_millis(u64::from(ms)),
                }
                let queued = in_slot.iter().filter(|s| s.is_some()).count();
                prop_assert_eq!(queued, q.len());
                prop_assert_eq!(sent + dropped + queued as u64, next_id);
                let d = q.drops();
                prop_assert_eq!(d.overflow + d.codel + d.expired, dropped);
            }
        }
    }
}
