//! Ack-eliciting packets sent on one link and not yet resolved, with RFC 9002
//! loss detection over them.
//!
//! Packets are kept in packet-number order, so an ack range is found by
//! binary search. Acked and lost packets stay as tombstones until they reach
//! the front, which keeps every operation free of shifting.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use super::PathState;
use super::rate::RateSnapshot;

/// Records kept before the list first has to grow; enough for a few hundred
/// packets in flight, more is allocated on demand up to the configured bound.
const INITIAL_RECORDS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    InFlight,
    Acked,
    Lost,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SentPacket {
    pub(crate) pn: u64,
    pub(crate) time_sent: Instant,
    pub(crate) bytes: u32,
    /// The link's state when the packet was sent. While it is not usable
    /// (`Probing` or `Down`) only probes are sent, and their fate counts
    /// toward the return to `Up`, not toward the loss rate; what was sent
    /// while `Down` went into an outage and says nothing about random loss.
    pub(crate) sent_in: PathState,
    /// No other ack-eliciting packet was sent within `max_ack_delay` before
    /// or after it (an idle link's probe): it needs an ack of its own, so
    /// its fate is a clean round-trip test. Cleared when a neighbour follows
    /// (see [`SentPackets::push`]).
    pub(crate) alone: bool,
    /// Sent at least `max_ack_delay` after the previous trial: one of the
    /// packets the link's answer rates learn from. Packets closer together
    /// share acks and fates (a burst whose one ack is lost is late all at
    /// once), so they would count one event many times.
    pub(crate) trial: bool,
    pub(crate) rate: RateSnapshot,
    pub(crate) fate: Fate,
}

impl SentPacket {
    /// Sent while the link was not usable: a probe of its return.
    pub(crate) fn is_probe(&self) -> bool {
        !self.sent_in.is_usable()
    }
}

#[derive(Debug)]
pub(crate) struct SentPackets {
    packets: VecDeque<SentPacket>,
    limit: usize,
}

impl SentPackets {
    pub(crate) fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        SentPackets {
            packets: VecDeque::with_capacity(INITIAL_RECORDS.min(limit)),
            limit,
        }
    }

    /// Records a packet; if the list is full, the oldest packet in flight is
    /// evicted and returned so the caller can account for it as lost.
    /// A packet that is not `alone` takes that mark from its predecessor
    /// too: they are neighbours, whose acks may cover each other.
    pub(crate) fn push(&mut self, packet: SentPacket) -> Option<SentPacket> {
        if !packet.alone
            && let Some(previous) = self.packets.back_mut()
        {
            previous.alone = false;
        }
        self.drop_resolved_front();
        let evicted = if self.packets.len() >= self.limit {
            self.packets.pop_front().map(|mut p| {
                p.fate = Fate::Lost;
                p
            })
        } else {
            None
        };
        self.packets.push_back(packet);
        evicted
    }

    /// The newest packet number recorded, if any.
    pub(crate) fn newest_pn(&self) -> Option<u64> {
        self.packets.back().map(|p| p.pn)
    }

    /// Marks the in-flight packets within `range` acknowledged, calling
    /// `on_acked` for each.
    pub(crate) fn ack(
        &mut self,
        range: RangeInclusive<u64>,
        mut on_acked: impl FnMut(&SentPacket),
    ) {
        let start = self.packets.partition_point(|p| p.pn < *range.start());
        for packet in self.packets.range_mut(start..) {
            if packet.pn > *range.end() {
                break;
            }
            if packet.fate == Fate::InFlight {
                packet.fate = Fate::Acked;
                on_acked(packet);
            }
        }
        self.drop_resolved_front();
    }

    /// RFC 9002 section 6.1: declares lost every packet in flight below
    /// `largest_acked` that trails it by `packet_threshold` packet numbers or
    /// was sent at or before `lost_if_sent_by`, calling `on_lost` for each.
    /// Returns when the earliest remaining candidate was sent, so the caller
    /// can arm the time-threshold timer.
    pub(crate) fn detect_lost(
        &mut self,
        largest_acked: u64,
        packet_threshold: u64,
        lost_if_sent_by: Option<Instant>,
        mut on_lost: impl FnMut(&SentPacket),
    ) -> Option<Instant> {
        let mut earliest_pending = None;
        for packet in self.packets.iter_mut() {
            if packet.pn >= largest_acked {
                break;
            }
            if packet.fate != Fate::InFlight {
                continue;
            }
            let too_old = lost_if_sent_by.is_some_and(|t| packet.time_sent <= t);
            if too_old || largest_acked - packet.pn >= packet_threshold {
                packet.fate = Fate::Lost;
                on_lost(packet);
            } else if earliest_pending.is_none() {
                earliest_pending = Some(packet.time_sent);
            }
        }
        self.drop_resolved_front();
        earliest_pending
    }

    /// Declares every packet in flight lost (the link went down).
    pub(crate) fn lose_all(&mut self, mut on_lost: impl FnMut(&SentPacket)) {
        for packet in self.packets.iter_mut() {
            if packet.fate == Fate::InFlight {
                packet.fate = Fate::Lost;
                on_lost(packet);
            }
        }
        self.packets.clear();
    }

    /// Packets numbered above `largest_acked`, oldest first, skipping any
    /// sent less than `spacing` after the previous one yielded: the packets
    /// still waiting for any answer, as separate pieces of evidence.
    ///
    /// All of them are in flight: nothing above the largest acknowledged
    /// number has been acknowledged, loss detection only looks below it, and
    /// evicted or written-off packets leave the list. The list is in send
    /// order, so each step is a binary search.
    pub(crate) fn unanswered(
        &self,
        largest_acked: Option<u64>,
        spacing: Duration,
    ) -> impl Iterator<Item = &SentPacket> + '_ {
        let mut next = Some(self.first_above(largest_acked));
        std::iter::from_fn(move || {
            let index = next?;
            let packet = self.packets.get(index)?;
            debug_assert_eq!(packet.fate, Fate::InFlight);
            next = packet.time_sent.checked_add(spacing).map(|allowed| {
                let after = self.packets.partition_point(|p| p.time_sent < allowed);
                after.max(index + 1)
            });
            Some(packet)
        })
    }

    fn first_above(&self, pn: Option<u64>) -> usize {
        pn.map_or(0, |pn| self.packets.partition_point(|p| p.pn <= pn))
    }

    /// Packet numbers still in flight, oldest first.
    pub(crate) fn in_flight_pns(&self) -> impl Iterator<Item = u64> + '_ {
        self.packets
            .iter()
            .filter(|p| p.fate == Fate::InFlight)
            .map(|p| p.pn)
    }

    fn drop_resolved_front(&mut self) {
        while self
            .packets
            .front()
            .is_some_and(|p| p.fate != Fate::InFlight)
        {
            self.packets.pop_front();
        }
    }
}
