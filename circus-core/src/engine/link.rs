//! Everything the engine tracks about one link of a session.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::LinkId;
use crate::paths::{AckTracker, Path, PathConfig, PathState};

use super::stats::LinkCounters;

/// Data packets in flight on one link, remembered (path packet number ->
/// global sequence number, send time) so that the data can be resent
/// elsewhere when the link loses it or dies. Bounded: the oldest entries fall
/// out first, and their data could no longer be useful to the receiver anyway.
///
/// Besides the path's own loss detection (RFC 9002 thresholds, and the
/// `Suspect`/`Down` states), the list finds two earlier signs that a packet
/// needs resending, so the receiver's reorder buffer does not hold everything
/// behind the hole for long:
/// - *skipped*: a later packet on the same link was acknowledged. Links
///   deliver in FIFO order (almost always), so the packet is almost surely
///   gone; resending at once costs at worst one duplicate.
/// - *overdue*: no ack came within srtt plus a few deviations of the moment
///   the receiver should have acknowledged it (the next packet's arrival,
///   or its own plus `max_ack_delay`). A link that has gone silent is
///   noticed here a few ms before the path turns `Suspect`.
///
/// Either way the entry is only marked resent and stays until the path
/// settles its fate, so the ring's copy count stays exact.
#[derive(Debug)]
pub(crate) struct InFlightData {
    entries: VecDeque<InFlightEntry>,
    limit: usize,
    /// Entries with a lower packet number were already checked for being
    /// overdue.
    overdue_from: u64,
}

#[derive(Debug, Clone, Copy)]
struct InFlightEntry {
    pn: u64,
    seq: u64,
    sent: Instant,
    /// Already queued for an early resend.
    resent: bool,
}

impl InFlightData {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(limit),
            limit,
            overdue_from: 0,
        }
    }

    pub(crate) fn push(&mut self, now: Instant, pn: u64, seq: u64) {
        if self.entries.len() == self.limit {
            self.entries.pop_front();
        }
        self.entries.push_back(InFlightEntry {
            pn,
            seq,
            sent: now,
            resent: false,
        });
    }

    /// Removes the entries whose packet number `acked` accepts, passing their
    /// sequence numbers to `on_acked`.
    pub(crate) fn remove_acked(
        &mut self,
        mut acked: impl FnMut(u64) -> bool,
        mut on_acked: impl FnMut(u64),
    ) {
        self.entries.retain(|e| {
            let hit = acked(e.pn);
            if hit {
                on_acked(e.seq);
            }
            !hit
        });
    }

    /// Removes the entries whose packet number is not in `still_in_flight`
    /// (ascending, as [`Path::in_flight_pns`] yields them): after acked
    /// entries were removed, those are the packets the path declared lost.
    /// Passes their sequence numbers to `on_lost`.
    pub(crate) fn remove_lost(
        &mut self,
        still_in_flight: impl Iterator<Item = u64>,
        mut on_lost: impl FnMut(u64),
    ) {
        let mut in_flight = still_in_flight.peekable();
        self.entries.retain(|e| {
            while in_flight.next_if(|&p| p < e.pn).is_some() {}
            if in_flight.peek() == Some(&e.pn) {
                return true;
            }
            on_lost(e.seq);
            false
        });
    }

    /// Marks the entries below `largest_acked` (still unacknowledged after
    /// the ack was applied, so skipped by the receiver) as resent, passing
    /// the sequence numbers of those not marked before to `on_skipped`.
    pub(crate) fn take_skipped(&mut self, largest_acked: u64, mut on_skipped: impl FnMut(u64)) {
        for e in self.entries.iter_mut() {
            if e.pn >= largest_acked {
                break;
            }
            if !e.resent {
                e.resent = true;
                on_skipped(e.seq);
            }
        }
    }

    /// When the entry at `i` is overdue: `wait` after the receiver should
    /// have acknowledged it (when the next packet reached it, or
    /// `ack_delay` after itself, whichever is first).
    fn deadline(&self, i: usize, wait: Duration, ack_delay: Duration) -> Option<Instant> {
        let e = self.entries.get(i)?;
        let own = e.sent.checked_add(ack_delay)?;
        let acked_by = self.entries.get(i + 1).map_or(own, |n| n.sent.min(own));
        acked_by.checked_add(wait)
    }

    fn first_unchecked(&self) -> usize {
        let from = self.overdue_from;
        self.entries.partition_point(|e| e.pn < from)
    }

    /// The earliest time an entry not yet resent becomes overdue.
    pub(crate) fn next_overdue(&self, wait: Duration, ack_delay: Duration) -> Option<Instant> {
        let i = (self.first_unchecked()..self.entries.len()).find(|&i| !self.entries[i].resent)?;
        self.deadline(i, wait, ack_delay)
    }

    /// Marks the entries overdue at `now` as resent, passing the sequence
    /// numbers of those not marked before to `on_overdue`.
    pub(crate) fn take_overdue(
        &mut self,
        now: Instant,
        wait: Duration,
        ack_delay: Duration,
        mut on_overdue: impl FnMut(u64),
    ) {
        let mut i = self.first_unchecked();
        while i < self.entries.len() {
            if self.deadline(i, wait, ack_delay).is_none_or(|d| d > now) {
                break;
            }
            let e = &mut self.entries[i];
            self.overdue_from = e.pn + 1;
            if !e.resent {
                e.resent = true;
                on_overdue(e.seq);
            }
            i += 1;
        }
    }

    /// Empties the list, yielding every sequence number still unacknowledged.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = u64> + '_ {
        self.entries.drain(..).map(|e| e.seq)
    }
}

/// One link as a session sees it: the sender side (`path`), the receiver
/// side (`acks`) and, at the gateway, where the client's end currently is.
#[derive(Debug)]
pub(crate) struct LinkSlot {
    pub(crate) id: LinkId,
    pub(crate) path: Path,
    pub(crate) acks: AckTracker,
    /// The client's address on this link, learned from the last authenticated
    /// packet (gateway only): NAT rebinding or a new DHCP lease moves it.
    pub(crate) remote: Option<SocketAddr>,
    /// Local carrier (client side): a link whose interface is down is
    /// neither scheduled nor probed.
    pub(crate) carrier: bool,
    /// State seen at the last check, to notice transitions.
    pub(crate) last_state: PathState,
    pub(crate) in_flight: InFlightData,
    /// `path`'s lost-packet count when its losses were last collected for
    /// resending (losses found by timers rather than acks).
    pub(crate) losses_collected: u64,
    /// Highest packet number received on this link.
    pub(crate) highest_pn_received: Option<u64>,
    pub(crate) counters: LinkCounters,
}

impl LinkSlot {
    pub(crate) fn new(
        now: Instant,
        id: LinkId,
        config: &PathConfig,
        in_flight_limit: usize,
    ) -> Self {
        let path = Path::new(*config, now);
        let last_state = path.state();
        Self {
            id,
            path,
            acks: AckTracker::new(config),
            remote: None,
            carrier: true,
            last_state,
            in_flight: InFlightData::new(in_flight_limit),
            losses_collected: 0,
            highest_pn_received: None,
            counters: LinkCounters::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_data_is_bounded_and_found_by_packet_number() {
        let mut f = InFlightData::new(3);
        let now = Instant::now();
        for pn in 0..5 {
            f.push(now, pn, 100 + pn);
        }
        // 0 and 1 fell out of the bounded list.
        let mut acked = Vec::new();
        f.remove_acked(|pn| pn == 2, |seq| acked.push(seq));
        assert_eq!(acked, vec![102]);
        let mut lost = Vec::new();
        f.remove_lost([1, 4, 9].into_iter(), |seq| lost.push(seq));
        assert_eq!(lost, vec![103]);
        assert_eq!(f.drain().collect::<Vec<_>>(), vec![104]);
    }
}
