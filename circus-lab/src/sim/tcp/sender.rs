//! The sending end of a bulk flow: always has data from `start` until the
//! application stops writing, sends full segments as the congestion and
//! receive windows allow, and repairs losses.
//!
//! The scoreboard counts in segments (every segment of a bulk flow is full
//! size): `una` is the first unacknowledged one, `segments[i]` describes
//! segment `una + i`. Counters of SACKed, lost and retransmitted segments
//! are kept as flags change, so the data in flight ("pipe", RFC 6675) is
//! known without scanning a window of thousands of segments per ACK.
//!
//! Loss detection is RACK (RFC 8985) as Linux does it: a segment is lost
//! once a segment sent after it was delivered and a reordering window has
//! passed since it would have been. The window is zero until reordering was
//! seen and three segments are SACKed (so a plain loss is repaired after
//! three duplicate ACKs, as always), and a quarter of the minimum RTT once
//! the flow has seen reordering, so a tunnel that spreads packets over
//! links of different delays is not mistaken for a lossy path.

use std::collections::VecDeque;
use std::time::Duration;

use super::cubic::Cubic;
use super::ranges::Ranges;
use super::segment::{self, Endpoints, Segment};
use super::{FlowConfig, INITIAL_WINDOW, unwrap_seq, wrap_seq};

/// Linux's `tcp_rto_min`.
const MIN_RTO: Duration = Duration::from_millis(200);
/// Linux's `TCP_RTO_MAX`.
const MAX_RTO: Duration = Duration::from_secs(120);
/// RFC 6298's RTO before any RTT sample.
const INITIAL_RTO: Duration = Duration::from_secs(1);
/// Most multiples of a quarter min RTT RACK's reordering window grows to
/// after needless retransmissions (Linux's limit on `reo_wnd_steps`).
const MAX_REORDERING_STEPS: u32 = 16;
/// SACKed segments above a hole after which, without reordering seen, the
/// hole is lost at once (the classic three duplicate ACKs).
const DUPTHRESH: u64 = 3;

/// What the sender knows about one segment in flight.
#[derive(Clone, Copy, Debug, Default)]
struct Sent {
    /// When it was last (re)transmitted.
    at: Duration,
    sacked: bool,
    /// Marked lost and not yet known delivered.
    lost: bool,
    /// A retransmission of it is in flight (it was lost and sent again).
    retransmitted: bool,
    /// Ever sent more than once: its ACK's RTT is ambiguous (Karn).
    ever_retransmitted: bool,
}

/// Repairing losses. Fast recovery reduces the window with proportional
/// rate reduction (RFC 6937); after a timeout the window slow-starts from
/// one segment instead.
#[derive(Clone, Copy, Debug)]
struct Recovery {
    /// Recovery ends when everything sent before it began is acknowledged.
    high: u64,
    after_timeout: bool,
    /// Segments in flight when it began.
    recover_fs: u64,
    prr_delivered: u64,
    prr_out: u64,
}

/// The bulk sender of one flow.
#[derive(Debug)]
pub struct Sender {
    endpoints: Endpoints,
    isn: u32,
    mss: u64,
    start: Duration,
    stop: Duration,
    /// The segment the data ends at, fixed when the application stops.
    end: Option<u64>,
    una: u64,
    segments: VecDeque<Sent>,
    sacked_out: u64,
    lost_out: u64,
    retrans_out: u64,
    /// SACKed segment ranges above `una`.
    sacked: Ranges,
    /// Lost segments waiting to be sent again, in the order found.
    to_retransmit: VecDeque<u64>,
    /// Retransmitted segments in the order they were sent, for RACK.
    retransmissions: VecDeque<u64>,
    /// Segments below this that were never retransmitted are decided
    /// (SACKed or lost): RACK resumes from here.
    rack_scan: u64,
    /// The most recently sent delivered segment (send time, segment) and
    /// the RTT it measured.
    rack: Option<(Duration, u64, Duration)>,
    reordering_seen: bool,
    /// RACK's reordering window in quarters of the min RTT: one more for
    /// each DSACK, as Linux widens it when its retransmissions were
    /// needless.
    reordering_steps: u32,
    /// When RACK next has to look again (a segment's reordering window ends).
    rack_deadline: Option<Duration>,
    srtt: Option<Duration>,
    rttvar: Duration,
    min_rtt: Duration,
    backoff: u32,
    rto_deadline: Option<Duration>,
    cubic: Cubic,
    /// The window PRR allows during fast recovery, segments.
    recovery_window: u64,
    recovery: Option<Recovery>,
    /// The peer's receive window, bytes.
    peer_window: u64,
    /// The segment whose ACK ends the current round trip (for HyStart).
    round_end: u64,
    /// The last transmit stopped because the congestion window was full:
    /// only then does the window grow (Linux's cwnd-limited test).
    cwnd_limited: bool,
    /// The peer's latest timestamp, echoed.
    ts_recent: u32,
    /// Asked to transmit at or after its start.
    started: bool,
    /// Reused for the segments an ACK newly SACKs, so ACKs allocate nothing.
    newly_sacked: Vec<(u64, u64)>,
}

impl Sender {
    pub fn new(config: &FlowConfig) -> Sender {
        Sender {
            endpoints: config.endpoints,
            isn: config.isn,
            mss: config.mss as u64,
            start: config.start,
            stop: config.stop,
            end: None,
            una: 0,
            segments: VecDeque::new(),
            sacked_out: 0,
            lost_out: 0,
            retrans_out: 0,
            sacked: Ranges::default(),
            to_retransmit: VecDeque::new(),
            retransmissions: VecDeque::new(),
            rack_scan: 0,
            rack: None,
            reordering_seen: false,
            reordering_steps: 1,
            rack_deadline: None,
            srtt: None,
            rttvar: Duration::ZERO,
            min_rtt: Duration::MAX,
            backoff: 0,
            rto_deadline: None,
            cubic: Cubic::new(INITIAL_WINDOW),
            recovery_window: 0,
            recovery: None,
            peer_window: u64::from(config.receive_window),
            round_end: 0,
            cwnd_limited: false,
            ts_recent: 0,
            started: false,
            newly_sacked: Vec::new(),
        }
    }

    /// Where its data goes from and to.
    pub fn endpoints(&self) -> Endpoints {
        self.endpoints
    }

    /// The next segment index to send new data from.
    fn next(&self) -> u64 {
        self.una + self.segments.len() as u64
    }

    /// Segments in flight (RFC 6675's pipe).
    fn pipe(&self) -> u64 {
        self.segments.len() as u64 - self.sacked_out - self.lost_out + self.retrans_out
    }

    /// The congestion window now, segments.
    fn window(&self) -> u64 {
        match self.recovery {
            Some(recovery) if !recovery.after_timeout => self.recovery_window,
            _ => self.cubic.window(),
        }
    }

    /// The retransmission timeout, with backoff.
    fn rto(&self) -> Duration {
        let base = match self.srtt {
            Some(srtt) => srtt + (4 * self.rttvar).max(MIN_RTO),
            None => INITIAL_RTO,
        };
        base.saturating_mul(1 << self.backoff.min(16)).min(MAX_RTO)
    }

    /// Writes the next segment into `buf` if the windows allow one;
    /// returns its length.
    pub fn poll_transmit(&mut self, now: Duration, buf: &mut [u8]) -> Option<usize> {
        if now < self.start {
            return None;
        }
        self.started = true;
        if now >= self.stop && self.end.is_none() {
            // What the application had written: the unacknowledged data
            // plus the rest of a send buffer Linux sizes at about twice the
            // congestion window.
            self.end = Some(self.next().max(self.una + 2 * self.cubic.window()));
        }
        if self.pipe() >= self.window() {
            self.cwnd_limited = true;
            return None;
        }
        let index = match self.next_retransmission() {
            Some(index) => {
                self.retrans_out += 1;
                let sent = &mut self.segments[(index - self.una) as usize];
                sent.retransmitted = true;
                sent.ever_retransmitted = true;
                sent.at = now;
                self.retransmissions.push_back(index);
                index
            }
            None => {
                let index = self.next();
                if self.end.is_some_and(|end| index >= end) {
                    return None;
                }
                if (index + 1 - self.una) * self.mss > self.peer_window {
                    self.cwnd_limited = false;
                    return None;
                }
                self.segments.push_back(Sent {
                    at: now,
                    ..Sent::default()
                });
                index
            }
        };
        if let Some(recovery) = &mut self.recovery {
            recovery.prr_out += 1;
        }
        if self.rto_deadline.is_none() {
            self.rto_deadline = Some(now + self.rto());
        }
        let data = Segment {
            seq: wrap_seq(index * self.mss, self.isn),
            ack: 0,
            window: super::DEFAULT_RECEIVE_WINDOW,
            ts_val: timestamp(now),
            ts_ecr: self.ts_recent,
            payload_len: self.mss as usize,
            ..Segment::default()
        };
        segment::emit(self.endpoints, &data, buf)
    }

    /// The first lost segment still waiting to be sent again.
    fn next_retransmission(&mut self) -> Option<u64> {
        while let Some(&index) = self.to_retransmit.front() {
            let waiting = index
                .checked_sub(self.una)
                .and_then(|at| self.segments.get(at as usize))
                .is_some_and(|sent| sent.lost && !sent.retransmitted && !sent.sacked);
            if waiting {
                return Some(index);
            }
            self.to_retransmit.pop_front();
        }
        None
    }

    /// Reads an ACK; anything that is not one of this flow's is ignored.
    pub fn handle_packet(&mut self, now: Duration, packet: &[u8]) {
        let Ok((endpoints, ack)) = segment::parse(packet) else {
            return;
        };
        if endpoints != self.endpoints.reversed() {
            return;
        }
        self.ts_recent = ack.ts_val;
        self.peer_window = u64::from(ack.window);
        let una_before = self.una;
        let near = self.una * self.mss;
        let acked_to = unwrap_seq(ack.ack, self.isn, near) / self.mss;
        if acked_to < self.una || acked_to > self.next() {
            return;
        }
        let mut delivered = 0;
        // The newest send time among segments delivered by this ACK that
        // were sent once, for an unambiguous RTT sample.
        let mut newest_clean: Option<Duration> = None;
        let highest_sacked_before = self.sacked.max_end().unwrap_or(0);
        while self.una < acked_to {
            let Some(sent) = self.segments.pop_front() else {
                break;
            };
            if sent.sacked {
                self.sacked_out -= 1;
            } else {
                delivered += 1;
                self.on_delivered(
                    now,
                    self.una,
                    &sent,
                    highest_sacked_before,
                    &mut newest_clean,
                );
            }
            if sent.lost {
                self.lost_out -= 1;
            }
            if sent.retransmitted {
                self.retrans_out -= 1;
            }
            self.una += 1;
        }
        let progress = self.una > una_before;
        self.sacked.remove_below(self.una);
        for (block, &(start, end)) in ack.sack_blocks().iter().enumerate() {
            // A first block below the cumulative ACK is a DSACK: data that
            // arrived twice, so a retransmission was needless and the path
            // reorders more than RACK waited for.
            if block == 0 && unwrap_seq(end, self.isn, near) <= acked_to * self.mss {
                self.reordering_seen = true;
                self.reordering_steps = (self.reordering_steps + 1).min(MAX_REORDERING_STEPS);
                continue;
            }
            let start = unwrap_seq(start, self.isn, near)
                .div_ceil(self.mss)
                .max(self.una);
            let end = (unwrap_seq(end, self.isn, near) / self.mss).min(self.next());
            let mut newly = std::mem::take(&mut self.newly_sacked);
            newly.clear();
            self.sacked.insert(start, end, |s, e| newly.push((s, e)));
            for &(s, e) in &newly {
                for index in s..e {
                    let at = (index - self.una) as usize;
                    let sent = self.segments[at];
                    self.mark_sacked(at);
                    delivered += 1;
                    self.on_delivered(now, index, &sent, highest_sacked_before, &mut newest_clean);
                }
            }
            self.newly_sacked = newly;
        }
        if let Some(sent_at) = newest_clean {
            self.rtt_sample(now.saturating_sub(sent_at));
        }
        if progress {
            self.backoff = 0;
            self.rto_deadline = (!self.segments.is_empty()).then(|| now + self.rto());
        }
        let new_round = self.una >= self.round_end && progress;
        if new_round {
            self.round_end = self.next();
            self.cubic.on_round_start();
        }
        let lost_before = self.lost_out;
        self.detect_losses(now);
        self.update_window(now, delivered, newest_clean, self.lost_out > lost_before);
    }

    /// Bookkeeping for a segment newly acknowledged or SACKed: RACK's
    /// latest delivered segment, Karn's clean sample, and reordering (a
    /// segment sent once arriving below one already SACKed came late).
    fn on_delivered(
        &mut self,
        now: Duration,
        index: u64,
        sent: &Sent,
        highest_sacked_before: u64,
        newest_clean: &mut Option<Duration>,
    ) {
        if !sent.ever_retransmitted {
            *newest_clean = Some(newest_clean.map_or(sent.at, |at| at.max(sent.at)));
            if index < highest_sacked_before {
                self.reordering_seen = true;
            }
        }
        let rtt = now.saturating_sub(sent.at);
        // A retransmitted segment answered faster than any round trip was
        // answered for its original: that tells nothing about the path.
        if sent.ever_retransmitted && rtt < self.min_rtt {
            return;
        }
        let newer = self
            .rack
            .is_none_or(|(at, rack_index, _)| (sent.at, index) > (at, rack_index));
        if newer {
            self.rack = Some((sent.at, index, rtt));
        }
    }

    fn mark_sacked(&mut self, at: usize) {
        let sent = &mut self.segments[at];
        sent.sacked = true;
        self.sacked_out += 1;
        if sent.lost {
            sent.lost = false;
            self.lost_out -= 1;
        }
        if sent.retransmitted {
            sent.retransmitted = false;
            self.retrans_out -= 1;
        }
    }

    fn mark_lost(&mut self, index: u64) {
        let Some(sent) = self.segments.get_mut((index - self.una) as usize) else {
            return;
        };
        if sent.retransmitted {
            sent.retransmitted = false;
            self.retrans_out -= 1;
        }
        if !sent.lost {
            sent.lost = true;
            self.lost_out += 1;
        }
        self.to_retransmit.push_back(index);
    }

    /// RFC 6298's smoothing, and the minimum for RACK and HyStart.
    fn rtt_sample(&mut self, rtt: Duration) {
        self.min_rtt = self.min_rtt.min(rtt);
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let deviation = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + deviation) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// RACK's reordering window now.
    fn reordering_window(&self) -> Duration {
        let in_recovery = self.recovery.is_some();
        if !self.reordering_seen && (in_recovery || self.sacked_out >= DUPTHRESH) {
            return Duration::ZERO;
        }
        let quarter = if self.min_rtt == Duration::MAX {
            Duration::ZERO
        } else {
            self.min_rtt / 4
        };
        (quarter * self.reordering_steps).min(self.srtt.unwrap_or(Duration::ZERO))
    }

    /// Marks lost every segment RACK says is, and notes when to look again.
    fn detect_losses(&mut self, now: Duration) {
        self.rack_deadline = None;
        let Some((rack_at, rack_index, rack_rtt)) = self.rack else {
            return;
        };
        let wait = rack_rtt + self.reordering_window();
        let sent_before_rack = |sent: &Sent, index: u64| (sent.at, index) < (rack_at, rack_index);
        let mut deadline: Option<Duration> = None;
        // Segments sent once, in send order from where the last look ended.
        self.rack_scan = self.rack_scan.max(self.una);
        while let Some(&sent) = self.segments.get((self.rack_scan - self.una) as usize) {
            let index = self.rack_scan;
            if !(sent.sacked || sent.lost || sent.ever_retransmitted) {
                if !sent_before_rack(&sent, index) {
                    break;
                }
                if sent.at + wait > now {
                    deadline = Some(sent.at + wait);
                    break;
                }
                self.mark_lost(index);
            }
            self.rack_scan += 1;
        }
        // Retransmissions, in the order they were sent.
        while let Some(&index) = self.retransmissions.front() {
            let Some(&sent) = index
                .checked_sub(self.una)
                .and_then(|at| self.segments.get(at as usize))
            else {
                self.retransmissions.pop_front();
                continue;
            };
            if sent.retransmitted {
                if !sent_before_rack(&sent, index) {
                    break;
                }
                if sent.at + wait > now {
                    deadline = Some(deadline.map_or(sent.at + wait, |d| d.min(sent.at + wait)));
                    break;
                }
                self.mark_lost(index);
            }
            self.retransmissions.pop_front();
        }
        self.rack_deadline = deadline;
    }

    /// Grows the window, or enters, runs and leaves recovery.
    fn update_window(
        &mut self,
        now: Duration,
        delivered: u64,
        rtt: Option<Duration>,
        newly_lost: bool,
    ) {
        if let Some(recovery) = self.recovery
            && self.una >= recovery.high
        {
            if !recovery.after_timeout {
                self.cubic.set_window(self.cubic.ssthresh());
            }
            self.recovery = None;
        }
        if newly_lost && self.recovery.is_none() {
            self.recovery = Some(Recovery {
                high: self.next(),
                after_timeout: false,
                recover_fs: self.segments.len() as u64,
                prr_delivered: 0,
                prr_out: 0,
            });
            self.cubic.on_congestion();
        }
        match &mut self.recovery {
            Some(recovery) if !recovery.after_timeout => {
                // Proportional rate reduction (RFC 6937, with slow-start
                // reduction bound), as Linux's tcp_cwnd_reduction.
                let ssthresh = self.cubic.ssthresh();
                let pipe =
                    self.segments.len() as u64 - self.sacked_out - self.lost_out + self.retrans_out;
                recovery.prr_delivered += delivered;
                let send = if pipe > ssthresh {
                    (ssthresh * recovery.prr_delivered)
                        .div_ceil(recovery.recover_fs.max(1))
                        .saturating_sub(recovery.prr_out)
                } else {
                    (recovery.prr_delivered.saturating_sub(recovery.prr_out))
                        .max(delivered)
                        .min(ssthresh - pipe)
                };
                // A retransmission always goes out when a loss was just found.
                let send = send.max(u64::from(newly_lost));
                self.recovery_window = pipe + send;
            }
            _ => {
                if self.cwnd_limited {
                    self.cubic.on_ack(now, delivered, rtt, self.min_rtt);
                }
            }
        }
    }

    /// When the sender next needs [`Sender::handle_timeout`]: the
    /// retransmission timer, RACK's reordering window, or the start.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if !self.started {
            // The first transmit is due at the start.
            return Some(self.start);
        }
        match (self.rto_deadline, self.rack_deadline) {
            (Some(rto), Some(rack)) => Some(rto.min(rack)),
            (rto, rack) => rto.or(rack),
        }
    }

    pub fn handle_timeout(&mut self, now: Duration) {
        if self.rack_deadline.is_some_and(|at| at <= now) {
            let lost_before = self.lost_out;
            self.detect_losses(now);
            self.update_window(now, 0, None, self.lost_out > lost_before);
        }
        if self.rto_deadline.is_some_and(|at| at <= now) {
            self.on_rto(now);
        }
    }

    /// The retransmission timer fired: everything not SACKed is lost, the
    /// window restarts from one segment, the timer backs off.
    fn on_rto(&mut self, now: Duration) {
        if self.segments.is_empty() {
            self.rto_deadline = None;
            return;
        }
        let already_reduced = self.recovery.is_some();
        self.cubic.on_timeout(already_reduced);
        self.to_retransmit.clear();
        self.retransmissions.clear();
        for index in self.una..self.next() {
            if !self.segments[(index - self.una) as usize].sacked {
                self.mark_lost(index);
            }
        }
        self.rack_scan = self.next();
        self.recovery = Some(Recovery {
            high: self.next(),
            after_timeout: true,
            recover_fs: 0,
            prr_delivered: 0,
            prr_out: 0,
        });
        self.backoff += 1;
        self.rto_deadline = Some(now + self.rto());
    }
}

/// Linux's TCP timestamps tick in milliseconds.
pub(super) fn timestamp(now: Duration) -> u32 {
    now.as_millis() as u32
}
