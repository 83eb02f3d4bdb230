//! The receiving end of a bulk flow: delivers in-order bytes to its
//! application at once (a reader that always keeps up, as the lab's does),
//! holds out-of-order data, and acknowledges as Linux does: every second
//! full segment, or after the 40 ms delayed-ACK timer, and at once for
//! out-of-order data, for data that fills a hole and during the quick-ACK
//! phase at the start of a flow; with SACK blocks, most recent first, after
//! a DSACK block for data received twice.

use std::time::Duration;

use super::ranges::Ranges;
use super::segment::{self, Endpoints, MAX_SACK_BLOCKS, Segment};
use super::sender::timestamp;
use super::{FlowConfig, unwrap_seq, wrap_seq};

/// Linux's minimum delayed-ACK timeout (`TCP_DELACK_MIN`).
const DELAYED_ACK: Duration = Duration::from_millis(40);
/// Segments acknowledged one by one at the start of a flow, so the
/// sender's slow start is not slowed by delayed ACKs (Linux's quick-ACK
/// mode, up to 16 segments).
const QUICK_ACKS: u32 = 16;

/// The receiver of one flow.
#[derive(Debug)]
pub struct Receiver {
    /// Its own ACKs' addresses (the flow's, reversed).
    endpoints: Endpoints,
    isn: u32,
    mss: u64,
    window: u32,
    /// The next byte expected in order.
    next: u64,
    out_of_order: Ranges,
    /// In-order bytes received since the last ACK.
    unacked: u64,
    ack_now: bool,
    delayed_ack: Option<Duration>,
    quick_acks: u32,
    /// The sender's latest timestamp, echoed.
    ts_recent: u32,
    /// Data received twice, reported first in the next ACK (DSACK, RFC
    /// 2883), so the sender learns its retransmission was needless.
    duplicate: Option<(u64, u64)>,
}

impl Receiver {
    pub fn new(config: &FlowConfig) -> Receiver {
        Receiver {
            endpoints: config.endpoints.reversed(),
            isn: config.isn,
            mss: config.mss as u64,
            window: config.receive_window,
            next: 0,
            out_of_order: Ranges::default(),
            unacked: 0,
            ack_now: false,
            delayed_ack: None,
            quick_acks: QUICK_ACKS,
            ts_recent: 0,
            duplicate: None,
        }
    }

    /// Bytes delivered in order so far.
    pub fn delivered(&self) -> u64 {
        self.next
    }

    /// Reads a data segment; returns how many bytes it let the application
    /// read (0 for anything that is not this flow's new in-order data).
    pub fn handle_packet(&mut self, now: Duration, packet: &[u8]) -> u64 {
        let Ok((endpoints, data)) = segment::parse(packet) else {
            return 0;
        };
        if endpoints != self.endpoints.reversed() || data.payload_len == 0 {
            return 0;
        }
        self.ts_recent = data.ts_val;
        let start = unwrap_seq(data.seq, self.isn, self.next);
        let end = start + data.payload_len as u64;
        let before = self.next;
        if end <= self.next {
            // A duplicate: the sender retransmitted needlessly; tell it now.
            self.duplicate = Some((start, end));
            self.ack_now = true;
        } else if start > self.next {
            let mut new = false;
            self.out_of_order.insert(start, end, |_, _| new = true);
            if !new {
                self.duplicate = Some((start, end));
            }
            self.ack_now = true;
        } else {
            self.next = end;
            let filled_a_hole = !self.out_of_order.is_empty();
            while let Some(to) = self.out_of_order.take_from(self.next) {
                self.next = self.next.max(to);
            }
            self.out_of_order.remove_below(self.next);
            self.unacked += self.next - before;
            if filled_a_hole || self.quick_acks > 0 || self.unacked >= 2 * self.mss {
                self.quick_acks = self.quick_acks.saturating_sub(1);
                self.ack_now = true;
            } else if self.delayed_ack.is_none() {
                self.delayed_ack = Some(now + DELAYED_ACK);
            }
        }
        self.next - before
    }

    /// Writes an ACK into `buf` if one is due; returns its length.
    pub fn poll_transmit(&mut self, now: Duration, buf: &mut [u8]) -> Option<usize> {
        if !self.ack_now {
            return None;
        }
        self.ack_now = false;
        self.delayed_ack = None;
        self.unacked = 0;
        let mut ack = Segment {
            seq: 0,
            ack: wrap_seq(self.next, self.isn),
            window: self.window,
            ts_val: timestamp(now),
            ts_ecr: self.ts_recent,
            ..Segment::default()
        };
        let blocks = self
            .duplicate
            .take()
            .into_iter()
            .chain(self.out_of_order.iter());
        for (start, end) in blocks.take(MAX_SACK_BLOCKS) {
            ack.sack[ack.sack_len] = (wrap_seq(start, self.isn), wrap_seq(end, self.isn));
            ack.sack_len += 1;
        }
        segment::emit(self.endpoints, &ack, buf)
    }

    /// When the delayed-ACK timer runs out.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.delayed_ack
    }

    pub fn handle_timeout(&mut self, now: Duration) {
        if self.delayed_ack.is_some_and(|at| at <= now) {
            self.ack_now = true;
        }
    }
}
