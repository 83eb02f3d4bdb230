//! One peer's data plane after the handshake: links, scheduling, recovery,
//! acks and reordering. The same code runs on both ends; the client and the
//! gateway differ only in how they handshake and name a link's far end.
//!
//! Sending: a tunnel packet waits in the [`PacketRing`]'s fair queue (per
//! flow, CoDel-bounded) until a link has room, and gets the next global
//! sequence number when it leaves. `poll_transmit` asks the scheduler which links
//! carry it (one, or several for the redundant and adaptive policies), and
//! writes one datagram per link: transport header, payload header with the
//! link's own packet number, an ack for that link if one is pending, then the
//! data frame, sealed in place in the caller's buffer.
//!
//! Recovery: each link remembers which sequence numbers its unacknowledged
//! packets carried. When the link's [`Path`](crate::paths::Path) declares
//! packets lost, or the link stops being `Up` (a silent link dies), those
//! packets are resent on the other links ahead of new data (light flows'
//! ahead of bulk ones, see [`ResendQueue`]), as long as the
//! receiver could still place them: younger than the reorder hold time, or
//! not yet overtaken by a newer packet (what every link lost at once during
//! an outage is resent when the first link returns).
//! Two earlier signs trigger a resend too (see [`super::link::InFlightData`]):
//! a later packet on the same link was acknowledged (the receiver acks at
//! once after a gap), or an ack is overdue by srtt plus a few deviations. A
//! resend goes on the [`RESEND_COPIES`] links that deliver soonest, so that losing it
//! again does not cost a whole hold time. This
//! is what makes a silent link death lossless in the adaptive policy: the
//! packets sent during the few round trips it takes to notice are not gone.
//!
//! Receiving: frames are applied in order; acks feed the link's path
//! estimator, data goes into the reorder buffer. After every event the
//! reorder buffer's hold time is refreshed from the links' state.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::LinkId;
use crate::paths::PathState;
use crate::reorder::ReorderBuffer;
use crate::scheduler::{Copies, MAX_LINKS, PathView, RESEND_COPIES, Scheduler, Selection};
use crate::wire::{Frame, FrameIter, PayloadHeader, TAG_LEN, TRANSPORT_HEADER_LEN, emit_ack};

use super::Config;
use super::fair_queue::FqParams;
use super::flow::flow_hash;
use super::keys::{KeyRing, OpenError};
use super::link::LinkSlot;
use super::packet_ring::{PacketRing, PushError};
use super::resend_queue::{Resend, ResendQueue};
use super::stats::{LinkStats, QueueDepth, Stats, Totals};

/// Reason code of the Close a client sends when it shuts down.
const CLOSE_SHUTDOWN: u8 = 0;

/// Room kept in every data datagram for a piggybacked ack: enough for an ack
/// frame with a handful of ranges. Part of [`super::OVERHEAD`], so a full-size
/// tunnel packet never pushes a datagram past the link MTU.
pub(crate) const ACK_RESERVE: usize = 32;

/// How a datagram reached us, which also tells which link it belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arrival {
    /// Client: on the local socket of this link.
    Local(LinkId),
    /// Gateway: from this address; the link is named inside the packet.
    Remote(SocketAddr),
}

/// What one datagram will carry besides the optional ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    Data {
        seq: u64,
        resend: bool,
    },
    /// A probe, or the key-confirming packet after a handshake.
    Ping,
    /// A standalone ack.
    Ack,
    /// The end of the session.
    Close,
}

/// How much later than expected an ack may come before the packet it
/// should cover is resent on other links, in RTT deviations over srtt.
///
/// 5: counted from when the receiver must acknowledge (the next packet's
/// arrival), not from the packet, so on a busy link this fires a few ms
/// before the path turns `Suspect` (srtt + 3 deviations + max_ack_delay from
/// the packet). Links whose jitter moves slowly show a small rttvar, so
/// fewer deviations resend too often for nothing (in the flappy sim, 3 cost
/// twice the resends of 5 for the same outages).
const OVERDUE_RTTVAR_MULTIPLE: u32 = 5;

/// How long bulk flows count as waiting for room after a bulk packet last
/// did (see [`Scheduler::pick_soonest`]).
///
/// 1 s: longer than a TCP flow's backing off after a loss on the links
/// here (a few round trips while its queue drains). Light packets copied
/// twice on a link alone meanwhile fill the room the flow grows back into:
/// forgetting as soon as the send queue ran empty cost TCP through circus
/// on one 10 Mbit/s, 80 ms link 80% of plain TCP instead of 86%.
const BULK_WAIT_MEMORY: Duration = Duration::from_secs(1);

/// The packet being written out to each link of its selection in turn.
#[derive(Debug, Clone, Copy)]
struct Sending {
    seq: u64,
    links: Selection,
    next: usize,
    resend: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Session {
    config: Config,
    pub(crate) keys: KeyRing,
    links: Vec<LinkSlot>,
    scheduler: Scheduler,
    reorder: ReorderBuffer,
    ring: PacketRing,
    /// Sequence numbers to resend, with the link that lost them.
    resend: ResendQueue,
    sending: Option<Sending>,
    /// When a bulk packet (new or resent) last found no link with room:
    /// for [`BULK_WAIT_MEMORY`] after, a second copy of a light packet on a
    /// link alone would take room that bulk flows use.
    bulk_waited: Option<Instant>,
    /// A Ping must go out on this link at once: it confirms freshly
    /// installed keys to the responder.
    confirm: Option<LinkId>,
    /// Gateway: links are created when the client first uses them, and their
    /// far end is the packet's source address.
    learns_links: bool,
    /// Reused buffer for the scheduler's snapshots.
    views: Vec<PathView>,
    /// After [`close`](Session::close): index of the next link to send a
    /// Close on.
    closing: Option<usize>,
    now: Instant,
    pub(crate) last_received: Option<Instant>,
    totals: Totals,
}

impl Session {
    /// A session with no links and no keys yet. Allocates every buffer the
    /// data plane will use.
    pub(crate) fn new(now: Instant, config: &Config, learns_links: bool) -> Self {
        let max_packet = config.reorder.max_packet_size;
        Self {
            config: config.clone(),
            keys: KeyRing::default(),
            links: Vec::with_capacity(MAX_LINKS),
            scheduler: Scheduler::new(config.policy),
            reorder: ReorderBuffer::new(config.reorder),
            ring: PacketRing::new(
                now,
                config.history_packets,
                FqParams {
                    flows: config.flow_queues,
                    quantum: u32::try_from(max_packet).unwrap_or(u32::MAX),
                    limit: config.queue_packets,
                    target: config.codel_target,
                    interval: config.codel_interval,
                    max_age: config.queue_delay,
                },
                max_packet,
            ),
            resend: ResendQueue::with_capacity(config.history_packets),
            sending: None,
            bulk_waited: None,
            confirm: None,
            learns_links,
            views: Vec::with_capacity(MAX_LINKS),
            closing: None,
            now,
            last_received: None,
            totals: Totals::default(),
        }
    }

    fn link_index(&self, link: LinkId) -> Option<usize> {
        self.links.iter().position(|l| l.id == link)
    }

    /// Adds a link (no-op if present or if the link table is full).
    pub(crate) fn add_link(&mut self, now: Instant, link: LinkId) {
        if self.link_index(link).is_none() && self.links.len() < MAX_LINKS {
            self.links.push(LinkSlot::new(
                now,
                link,
                &self.config.path,
                self.config.history_packets,
            ));
        }
    }

    /// Forgets a link; its unacknowledged data is resent elsewhere.
    pub(crate) fn remove_link(&mut self, now: Instant, link: LinkId) {
        self.now = now;
        if let Some(i) = self.link_index(link) {
            let mut slot = self.links.remove(i);
            for seq in slot.in_flight.drain() {
                copy_lost(&mut self.ring, &mut self.resend, seq, link);
            }
            self.after_change();
        }
    }

    /// Local carrier event (interface up or down).
    pub(crate) fn set_carrier(&mut self, now: Instant, link: LinkId, up: bool) {
        if let Some(i) = self.link_index(link) {
            self.links[i].carrier = up;
            self.links[i].path.set_carrier(now, up);
            self.after_change();
        }
    }

    /// Link ids in the order they were added, with local carrier state.
    pub(crate) fn links(&self) -> impl Iterator<Item = (LinkId, bool)> + '_ {
        self.links.iter().map(|l| (l.id, l.carrier))
    }

    pub(crate) fn link_state(&self, link: LinkId) -> Option<PathState> {
        self.link_index(link).map(|i| self.links[i].path.state())
    }

    /// Whether every link with carrier is `Down` (and one has carrier):
    /// nothing from the peer authenticated on any of them for a few RTTs
    /// while probes went out, as when the peer lost the session.
    pub(crate) fn all_links_silent(&self) -> bool {
        let mut live = self.links.iter().filter(|l| l.carrier).peekable();
        live.peek().is_some() && live.all(|l| l.path.state() == PathState::Down)
    }

    /// The client's address on `link` (gateway side).
    pub(crate) fn remote(&self, link: LinkId) -> Option<SocketAddr> {
        self.link_index(link).and_then(|i| self.links[i].remote)
    }

    /// Asks for a Ping on `link` at the next `poll_transmit`.
    pub(crate) fn confirm_on(&mut self, link: LinkId) {
        self.confirm = Some(link);
    }

    pub(crate) fn count_handshake(&mut self) {
        self.totals.handshakes += 1;
    }

    /// Counts a transport packet that did not open.
    pub(crate) fn count_open_error(&mut self, e: OpenError) {
        match e {
            OpenError::Replayed => self.totals.replayed += 1,
            OpenError::UnknownIndex | OpenError::Unauthentic => self.totals.rejected += 1,
        }
    }

    /// Counts a datagram that is not a packet this side accepts.
    pub(crate) fn count_malformed(&mut self) {
        self.totals.rejected += 1;
    }

    /// How full the send queue is.
    pub(crate) fn send_queue(&self) -> QueueDepth {
        let draining = self.links.iter().any(|l| l.path.state().is_usable());
        self.ring.depth(draining)
    }

    /// Queues a packet from the local TUN side.
    pub(crate) fn handle_tun_packet(&mut self, now: Instant, packet: &[u8]) {
        self.now = now;
        match self.ring.push(now, packet, flow_hash(packet)) {
            Ok(()) => {
                self.totals.tun_packets += 1;
                self.totals.tun_bytes += packet.len() as u64;
            }
            Err(PushError::TooLarge) => self.totals.dropped_too_large += 1,
        }
    }

    /// Applies one authenticated plaintext; returns whether the peer closed
    /// the session. A malformed plaintext, or one naming a link this side
    /// does not accept, is counted and otherwise ignored.
    pub(crate) fn handle_plaintext(
        &mut self,
        now: Instant,
        arrival: Arrival,
        datagram_len: usize,
        plaintext: &[u8],
    ) -> bool {
        self.now = now;
        let Ok((header, frames)) = PayloadHeader::parse(plaintext) else {
            self.totals.rejected += 1;
            return false;
        };
        let (link, from) = match arrival {
            Arrival::Local(link) => (link, None),
            Arrival::Remote(addr) => (header.link, Some(addr)),
        };
        if self.learns_links {
            self.add_link(now, link);
        }
        let Some(i) = self.link_index(link) else {
            self.totals.rejected += 1;
            return false;
        };
        self.last_received = Some(now);
        let slot = &mut self.links[i];
        if let Some(addr) = from {
            slot.remote = Some(addr);
        }
        slot.counters.packets_received += 1;
        slot.counters.bytes_received += datagram_len as u64;
        let pn = header.path_pn;
        // A skipped packet number: the peer lost a packet and must hear of
        // it at once to resend its data.
        let gap = slot
            .highest_pn_received
            .is_some_and(|h| pn > h.saturating_add(1));
        slot.highest_pn_received = Some(slot.highest_pn_received.map_or(pn, |h| h.max(pn)));
        let mut eliciting = false;
        let mut data = false;
        let mut closed = false;
        for frame in FrameIter::new(frames) {
            match frame {
                Ok(Frame::Ack(ack)) => self.on_ack(now, ack),
                Ok(Frame::Data {
                    seq,
                    flow_gap,
                    packet,
                }) => {
                    eliciting = true;
                    data = true;
                    // Duplicates, stale and oversized packets are counted by
                    // the reorder buffer itself.
                    self.reorder.insert(now, seq, flow_gap, packet);
                }
                Ok(Frame::Ping) => eliciting = true,
                Ok(Frame::Close { .. }) => closed = true,
                Ok(Frame::Padding { .. }) => {}
                Err(_) => {
                    self.totals.rejected += 1;
                    break;
                }
            }
        }
        let acks = &mut self.links[i].acks;
        if acks.on_received(now, pn, eliciting) && eliciting && (!data || gap) {
            // A probe: its ack times the link, so it must not wait. A packet
            // after a gap: the ack tells the peer to resend what was
            // skipped (RFC 9000 section 13.2.1).
            acks.ack_immediately(now);
        }
        self.after_change();
        closed
    }

    fn on_ack(&mut self, now: Instant, ack: crate::wire::AckFrame<'_>) {
        let Some(j) = self.link_index(ack.link()) else {
            return;
        };
        let Self {
            links,
            ring,
            resend,
            ..
        } = self;
        let slot = &mut links[j];
        slot.path.on_ack_stamp(now, ack.sent_at_us());
        let outcome = slot.path.on_ack(
            now,
            ack.ranges(),
            Duration::from_micros(u64::from(ack.ack_delay_us())),
        );
        slot.in_flight.remove_acked(
            |pn| ack.ranges().any(|r| r.contains(&pn)),
            |seq| ring.mark_acked(seq),
        );
        if let Some(largest) = ack.ranges().next().map(|r| *r.end()) {
            let link = slot.id;
            slot.in_flight.take_skipped(largest, |seq| {
                queue_resend(ring, resend, seq, link, false);
            });
        }
        if outcome.lost > 0 {
            collect_losses(slot, ring, resend);
        }
    }

    /// Runs timers due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<u32> {
        self.now = now;
        let ack_delay = self.config.path.max_ack_delay;
        for slot in &mut self.links {
            slot.path.on_timeout(now);
            collect_losses(slot, &mut self.ring, &mut self.resend);
            let wait = overdue_wait(slot);
            let link = slot.id;
            let (ring, resend) = (&self.ring, &mut self.resend);
            slot.in_flight.take_overdue(now, wait, ack_delay, |seq| {
                queue_resend(ring, resend, seq, link, true);
            });
        }
        let expired = self.keys.expire(now);
        self.after_change();
        expired
    }

    /// Notices link state changes and refreshes the reorder buffer's view.
    fn after_change(&mut self) {
        let Self {
            links,
            ring,
            resend,
            ..
        } = self;
        for slot in links.iter_mut() {
            let state = slot.path.state();
            if state == slot.last_state {
                continue;
            }
            let left_up = slot.last_state == PathState::Up;
            slot.last_state = state;
            slot.counters.state_changes += 1;
            if left_up || state == PathState::Down {
                // Whatever the link still carries is presumed gone with it.
                for seq in slot.in_flight.drain() {
                    copy_lost(ring, resend, seq, slot.id);
                }
            }
        }
        self.refresh_reorder();
    }

    /// Derives the reorder hold time from the usable links' RTTs: a hole is
    /// given up only once the peer's resend of the missing packet could no
    /// longer arrive.
    ///
    /// The peer resends a packet at the latest when its ack is overdue on the
    /// link it took: [`overdue_wait`] after the receiver should have acked it,
    /// which is at most `max_ack_delay` after it was sent. The resend goes on
    /// the link that delivers soonest, so it flies about as long as the packet
    /// that opened the hole (the next one, on a link at least as fast), give
    /// or take that link's jitter. So the hold is the slowest usable link's
    /// overdue wait plus `max_ack_delay` plus one RTT deviation, capped by
    /// `reorder.max_hold`. It also covers plain reordering between links,
    /// which lags by half the RTT difference.
    ///
    /// Holes are never given up earlier, even when every other link has
    /// delivered newer packets (DESIGN.md's "live link" rule): the peer resends
    /// whatever a dying link swallowed, and a link that was idle may just have
    /// been given a packet, so an early release drops packets as stale that
    /// are on their way.
    fn refresh_reorder(&mut self) {
        let mut wait: Option<Duration> = None;
        let mut jitter = Duration::ZERO;
        for slot in &self.links {
            if !slot.path.state().is_usable() {
                continue;
            }
            let link_wait = overdue_wait(slot);
            wait = Some(wait.map_or(link_wait, |w| w.max(link_wait)));
            jitter = jitter.max(slot.path.rttvar());
        }
        // With no usable link nothing is in flight to wait for: the hold
        // stays as it was, for the packets already on their way.
        if let Some(wait) = wait {
            self.reorder
                .set_hold_time(wait + self.config.path.max_ack_delay + jitter);
        }
    }

    /// Next tunnel packet to deliver locally, in order. Packets `allowed`
    /// refuses (cryptokey routing, see [`Totals::dropped_not_allowed`]) are
    /// dropped and counted instead.
    pub(crate) fn poll_deliver(
        &mut self,
        buf: &mut [u8],
        allowed: impl Fn(&[u8]) -> bool,
    ) -> Option<usize> {
        loop {
            let len = self.reorder.poll_deliver(self.now, buf)?;
            if !buf.get(..len).is_some_and(&allowed) {
                self.totals.dropped_not_allowed += 1;
                continue;
            }
            self.totals.delivered += 1;
            self.totals.delivered_bytes += len as u64;
            return Some(len);
        }
    }

    /// The earliest time this session needs `handle_timeout` (or has acks or
    /// deliveries due).
    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        // Without usable keys nothing can be sent, so path timers (probes)
        // would only spin; the owner's handshake timer is what matters then.
        if self.keys.current_ref()?.is_expired(self.now) {
            return None;
        }
        let ack_delay = self.config.path.max_ack_delay;
        let links = self.links.iter().flat_map(|l| {
            l.path
                .poll_timeout()
                .into_iter()
                .chain(l.acks.ack_due())
                .chain(l.in_flight.next_overdue(overdue_wait(l), ack_delay))
        });
        links
            .chain(self.reorder.poll_timeout())
            .chain(self.keys.poll_timeout())
            .min()
    }

    /// Ends the session: [`poll_close`](Session::poll_close) then sends a
    /// Close on every link with carrier.
    pub(crate) fn close(&mut self) {
        self.closing = Some(0);
    }

    /// The next Close datagram after [`close`](Session::close), one per link
    /// with carrier; `None` once all went (or without keys to seal them).
    pub(crate) fn poll_close(&mut self, now: Instant, buf: &mut [u8]) -> Option<(LinkId, usize)> {
        loop {
            let i = self.closing?;
            let slot = self.links.get(i)?;
            self.closing = Some(i + 1);
            if !slot.carrier {
                continue;
            }
            if let Some(len) = self.emit(now, i, Content::Close, buf) {
                return Some((self.links[i].id, len));
            }
        }
    }

    /// Writes the next datagram into `buf`: first the key-confirming Ping,
    /// then resends, new data, due acks and probes.
    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<(LinkId, usize)> {
        self.now = now;
        if self.keys.current_ref()?.is_expired(now) {
            return None;
        }
        if let Some(link) = self.confirm.take()
            && let Some(i) = self.link_index(link)
            && let Some(len) = self.emit(now, i, Content::Ping, buf)
        {
            return Some((link, len));
        }
        if let Some(out) = self.poll_data(now, buf) {
            return Some(out);
        }
        for i in 0..self.links.len() {
            let slot = &self.links[i];
            if slot.acks.ack_due().is_some_and(|due| due <= now)
                && let Some(len) = self.emit(now, i, Content::Ack, buf)
            {
                return Some((self.links[i].id, len));
            }
        }
        for i in 0..self.links.len() {
            if self.links[i].carrier
                && self.links[i].path.wants_probe(now)
                && let Some(len) = self.emit(now, i, Content::Ping, buf)
            {
                return Some((self.links[i].id, len));
            }
        }
        None
    }

    fn poll_data(&mut self, now: Instant, buf: &mut [u8]) -> Option<(LinkId, usize)> {
        // Set when the next resend of each kind found no room. New bulk
        // packets wait behind either; a light flow's packets (new or resent)
        // may still go, into the extra room they have, past a waiting bulk
        // resend, else a link death's resends would stall them too.
        let mut bulk_resend_waits = false;
        let mut light_resend_waits = false;
        loop {
            if let Some(sending) = &mut self.sending {
                let Some(&link) = sending.links.as_slice().get(sending.next) else {
                    self.sending = None;
                    continue;
                };
                sending.next += 1;
                let content = Content::Data {
                    seq: sending.seq,
                    resend: sending.resend,
                };
                let Some(i) = self.link_index(link) else {
                    continue;
                };
                match self.emit(now, i, content, buf) {
                    Some(len) => return Some((link, len)),
                    None => continue,
                }
            }
            if !light_resend_waits
                && let Some((light, resend)) = self.resend.pop(!bulk_resend_waits)
            {
                let Resend {
                    seq,
                    lost_on,
                    avoid,
                } = resend;
                if !self
                    .ring
                    .resend_is_useful(seq, now, self.reorder.hold_time())
                {
                    continue;
                }
                let len = self.ring.get(seq).map_or(0, <[u8]>::len);
                let Some(links) = self.pick(len, RESEND_COPIES, light, avoid.then_some(lost_on))
                else {
                    // Every window is full: retry after the next ack. Where
                    // even a light one finds no room, nothing else would.
                    self.resend.push_front(light, resend);
                    bulk_resend_waits = true;
                    light_resend_waits |= light;
                    continue;
                };
                self.sending = Some(Sending {
                    seq,
                    links,
                    next: 0,
                    resend: true,
                });
                continue;
            }
            // New packets never overtake a light resend: it is as urgent, and
            // older.
            if light_resend_waits {
                return None;
            }
            // The send queue picks the flow whose turn it is and applies its
            // drop rules (CoDel, max age).
            let len = self.ring.peek_unsent(now)?;
            let links = if self.ring.unsent_is_light(now) {
                self.pick(len, self.light_copies(), true, None)
            } else {
                // A bulk packet goes after a waiting resend, and when it
                // cannot go, a light flow's packet may still go out of turn.
                let bulk = if bulk_resend_waits {
                    None
                } else {
                    self.pick(len, Copies::ONE, false, None)
                };
                if bulk.is_none() {
                    self.bulk_waited = Some(now);
                }
                bulk.or_else(|| {
                    let len = self.ring.peek_unsent_light(now)?;
                    self.pick(len, self.light_copies(), true, None)
                })
            };
            // Nothing usable or every link's window full: keep it queued
            // until an ack or a probe changes that.
            let links = links?;
            let seq = self.ring.take_unsent(now)?;
            self.sending = Some(Sending {
                seq,
                links,
                next: 0,
                resend: false,
            });
        }
    }

    /// Asks the scheduler for the links of one packet of `len` bytes, or,
    /// when it is worth `copies` (a resend or a light flow's packet), for the
    /// soonest ones ([`Scheduler::pick_soonest`]). A light flow's packet
    /// is `urgent`: it may use the links' extra room
    /// ([`PathConfig::urgent_window_eighths`](crate::PathConfig::urgent_window_eighths));
    /// resends of bulk packets may not, so the burst of resends after a link
    /// death does not queue up ahead of light flows on the surviving links.
    /// A resend avoids `avoid` (the link that lost it, when that link is
    /// failing) when another link can take it.
    fn pick(
        &mut self,
        len: usize,
        copies: Copies,
        urgent: bool,
        avoid: Option<LinkId>,
    ) -> Option<Selection> {
        let bytes = len + super::OVERHEAD;
        self.views.clear();
        for slot in &self.links {
            if Some(slot.id) != avoid && slot.carrier {
                self.views
                    .push(PathView::new(slot.id, &slot.path, bytes, urgent));
            }
        }
        // Light packets and resends go on the soonest link(s) with room;
        // only bulk ones may wait for a better link (`Scheduler::pick`).
        let selection = if urgent || copies != Copies::ONE {
            self.scheduler
                .pick_soonest(&self.views, bytes, copies, self.bulk_waits())
        } else {
            let backlog = self.ring.queued_bytes().saturating_sub(len as u64);
            self.scheduler.pick(&self.views, bytes, backlog)
        };
        if selection.is_empty() && avoid.is_some() {
            return self.pick(len, copies, urgent, None);
        }
        (!selection.is_empty()).then_some(selection)
    }

    /// Copies of the light flow's packet just peeked: as the policy says,
    /// but at most one per link for a bare TCP ack. The next ack repairs a
    /// lost one, so a second copy on the same link buys nothing, while a
    /// copy on each link still lets the ack take the soonest one (an ack
    /// held back by a slower link holds the sender back).
    fn light_copies(&self) -> Copies {
        let copies = self.scheduler.light_flow_copies();
        if self.ring.unsent_is_pure_ack() {
            Copies {
                per_link: 1,
                ..copies
            }
        } else {
            copies
        }
    }

    /// Whether bulk packets waited for room within [`BULK_WAIT_MEMORY`].
    fn bulk_waits(&self) -> bool {
        self.bulk_waited
            .is_some_and(|t| self.now.saturating_duration_since(t) < BULK_WAIT_MEMORY)
    }

    /// Builds, seals and accounts one datagram for link `i`. Returns `None`
    /// when it cannot be written (no keys, packet gone, buffer too small);
    /// such a datagram is skipped, never half-sent.
    fn emit(&mut self, now: Instant, i: usize, content: Content, buf: &mut [u8]) -> Option<usize> {
        let Self {
            keys,
            links,
            ring,
            totals,
            ..
        } = self;
        let slot_keys = keys.current()?;
        let link = &mut links[i];
        let body_end = buf.len().checked_sub(TAG_LEN)?;
        let data = match content {
            Content::Data { seq, .. } => Some(Frame::Data {
                seq,
                flow_gap: ring.flow_gap(seq),
                packet: ring.get(seq)?,
            }),
            _ => None,
        };
        let ping = content == Content::Ping;
        let close = (content == Content::Close).then_some(Frame::Close {
            reason: CLOSE_SHUTDOWN,
        });
        let tail_len = data.map_or(0, |frame| frame.encoded_len())
            + usize::from(ping)
            + close.map_or(0, |frame| frame.encoded_len());

        let mut off = TRANSPORT_HEADER_LEN;
        let pn = link.path.next_pn();
        off += PayloadHeader {
            link: link.id,
            path_pn: pn,
        }
        .emit(buf.get_mut(off..body_end)?)
        .ok()?;
        let ack_wanted = content == Content::Ack || link.acks.ack_due().is_some();
        let mut acked = false;
        if ack_wanted {
            let room_end = body_end.checked_sub(tail_len)?.max(off);
            let room = match content {
                Content::Data { .. } => (room_end - off).min(ACK_RESERVE),
                _ => room_end - off,
            };
            let delay = link.acks.ack_delay(now);
            let delay_us = u32::try_from(delay.as_micros()).unwrap_or(u32::MAX);
            if let Ok(n) = emit_ack(
                &mut buf[off..off + room],
                link.id,
                delay_us,
                link.path.clock_us(now),
                link.acks.ranges(),
            ) {
                off += n;
                acked = true;
            }
        }
        if let Some(frame) = data {
            off += frame.emit(buf.get_mut(off..body_end)?).ok()?;
        }
        if ping {
            off += Frame::Ping.emit(buf.get_mut(off..body_end)?).ok()?;
        }
        if let Some(frame) = close {
            off += frame.emit(buf.get_mut(off..body_end)?).ok()?;
        }
        if !acked && content == Content::Ack {
            return None;
        }
        let len = slot_keys.seal(buf, off - TRANSPORT_HEADER_LEN).ok()?;

        let eliciting = ping || data.is_some();
        link.path.on_sent(now, pn, len, eliciting);
        let c = &mut link.counters;
        c.packets_sent += 1;
        c.bytes_sent += len as u64;
        match content {
            Content::Data { seq, resend } => {
                link.in_flight.push(now, pn, seq);
                ring.copy_sent(seq);
                c.data_sent += 1;
                if resend {
                    c.resent += 1;
                    totals.resent += 1;
                }
            }
            _ if ping => c.pings_sent += 1,
            Content::Close => {}
            _ => c.acks_sent += 1,
        }
        if acked {
            link.acks.on_ack_sent();
        }
        Some(len)
    }

    /// A snapshot for metrics and tests.
    pub(crate) fn stats(&self) -> Stats {
        let links = self
            .links
            .iter()
            .map(|l| LinkStats {
                link: l.id,
                state: l.path.state(),
                srtt: l.path.srtt(),
                rttvar: l.path.rttvar(),
                loss_rate: l.path.loss_rate(),
                delivery_rate: l.path.delivery_rate(),
                bytes_in_flight: l.path.bytes_in_flight(),
                in_flight_cap: l.path.in_flight_cap(false),
                min_rtt: l.path.min_rtt(),
                return_delay: l.path.return_delay(),
                remote: l.remote,
                counters: l.counters,
            })
            .collect();
        let r = self.reorder.stats();
        let q = self.ring.drops();
        let totals = Totals {
            dropped_queue_full: q.overflow,
            dropped_codel: q.codel,
            dropped_expired: q.expired,
            duplicates: r.duplicates,
            stale: r.stale,
            lost: r.lost,
            ..self.totals
        };
        Stats {
            links,
            totals,
            last_handshake: self.keys.current_ref().map(|k| k.established),
            hold_time: self.reorder.hold_time(),
        }
    }
}

/// Queues for resending the data of every packet the link's path has
/// declared lost since the last call.
fn collect_losses(slot: &mut LinkSlot, ring: &mut PacketRing, resend: &mut ResendQueue) {
    let lost = slot.path.stats().packets_lost;
    if lost == slot.losses_collected {
        return;
    }
    slot.losses_collected = lost;
    let link = slot.id;
    slot.in_flight
        .remove_lost(slot.path.in_flight_pns(), |seq| {
            copy_lost(ring, resend, seq, link)
        });
}

/// One copy of `seq`, sent on `link`, is gone: queue a resend when it was
/// the last one in flight.
fn copy_lost(ring: &mut PacketRing, resend: &mut ResendQueue, seq: u64, link: LinkId) {
    if ring.copy_lost(seq) {
        queue_resend(ring, resend, seq, link, true);
    }
}

/// Queues a resend of `seq` with the other resends of its kind (a light
/// flow's or bulk).
fn queue_resend(
    ring: &PacketRing,
    resend: &mut ResendQueue,
    seq: u64,
    lost_on: LinkId,
    avoid: bool,
) {
    let resend_of = Resend {
        seq,
        lost_on,
        avoid,
    };
    resend.push(ring.was_light(seq), resend_of);
}

/// How long past the moment the receiver should have acknowledged a packet
/// on this link its data is resent elsewhere: srtt plus
/// [`OVERDUE_RTTVAR_MULTIPLE`] deviations (at least 1 ms).
fn overdue_wait(slot: &LinkSlot) -> Duration {
    let deviations = (slot.path.rttvar() * OVERDUE_RTTVAR_MULTIPLE).max(Duration::from_millis(1));
    slot.path.srtt() + deviations
}
