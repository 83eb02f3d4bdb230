//! Per-link health: RTT, loss and rate estimates, and the link state machine.
//!
//! Each link has its own packet-number space, and loss detection follows
//! RFC 9002 applied per link, as multipath QUIC does: a packet is lost when 3
//! later packets on the same link were acknowledged, or when it is older than
//! 9/8 x max(srtt, latest_rtt) and a later one was acknowledged.
//!
//! On top of that sits the state machine the scheduler reads:
//!
//! ```text
//!   Probing --N good probes--> Up --silent--> Suspect --silent longer--> Down
//!    |  ^                       ^                |                        |
//!    |  |                       +----ack---------+                        |
//!    |  +------------------------first good probe-------------------------+
//!    +--silent longer--> Down
//! ```
//!
//! "Silent" means packets in a row got no answer, neither to themselves nor
//! to anything sent later, each for longer than the link's own srtt plus a
//! few rttvar (not seconds), so a 30 ms link is judged in tens of
//! milliseconds. How many such packets it takes depends on how often the
//! link fails a round trip while alive (`silence.rs`): one for a clean link,
//! over a dozen for one that loses half its probes, so that random loss does
//! not pass for death. Under traffic the packets pile up within milliseconds and
//! the time thresholds decide; a usable link in doubt with no traffic is
//! probed every `max_ack_delay` until the evidence is complete.
//!
//! A link returns only after several consecutive good probes (hysteresis),
//! whatever its loss history: loss makes the scheduler prefer other links,
//! it never shuts a link out for good. The probes of a return go a few
//! tens of milliseconds apart, so a healed link is back within a few round
//! trips; each recent demotion doubles both their number and their spacing,
//! forgiven over time (`flaps.rs`), so a flapping link stays out instead of
//! bouncing in and out.
//!
//! Files: [`Path`] (sender side, `path.rs`) built from `rtt.rs`, `sent.rs`
//! (packets in flight and loss detection), `rate.rs` (delivery rate),
//! `silence.rs` (when unanswered packets mean death), `flaps.rs` (flap
//! damping) and `return_delay.rs` (queueing on the way back, which the
//! in-flight cap allows for); [`AckTracker`] (receiver side, `ack_tracker.rs`).

mod ack_tracker;
mod flaps;
mod path;
mod rate;
mod return_delay;
mod rtt;
mod sent;
mod silence;

use std::time::Duration;

pub use ack_tracker::AckTracker;
pub use path::{AckOutcome, Path, PathStats};

/// Where a link stands, as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathState {
    /// New, or back from `Down` after a first good probe: only probes are
    /// sent until enough consecutive ones were answered.
    Probing,
    /// Answering in time.
    Up,
    /// Acks are overdue by a few RTT deviations, for more packets in a row
    /// than the link's loss explains. Still usable (it may be a short
    /// stall), but policies prefer other links or duplicate onto them.
    Suspect,
    /// Silent for longer than the down threshold and for one packet more
    /// than `Suspect` needs, or the local interface lost its carrier. Only
    /// probes are sent.
    Down,
}

impl PathState {
    /// Whether the scheduler may put data on the link.
    pub fn is_usable(self) -> bool {
        matches!(self, PathState::Up | PathState::Suspect)
    }
}

impl std::fmt::Display for PathState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathState::Probing => "probing",
            PathState::Up => "up",
            PathState::Suspect => "suspect",
            PathState::Down => "down",
        })
    }
}

/// Timers and thresholds of loss detection and of the link state machine.
///
/// Both peers must use the same `max_ack_delay` (the receiver promises it,
/// the sender waits for it). The defaults are tuned for links of 5-600 ms
/// RTT where a spare link exists, so a false alarm costs little and a late
/// one loses packets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathConfig {
    /// RTT assumed before the first sample.
    ///
    /// Default 333 ms (RFC 9002 kInitialRtt): it only sizes the timers of the
    /// first probes, and must not time out a satellite link's first answer.
    pub initial_rtt: Duration,
    /// Longest the receiver waits before acknowledging an ack-eliciting packet.
    ///
    /// Default 10 ms, below QUIC's 25 ms: it adds directly to the time needed
    /// to notice a silent link, and acks here are small and aggregated
    /// (at most one per two packets under load).
    pub max_ack_delay: Duration,
    /// Ack-eliciting packets received before an ack is sent at once.
    ///
    /// Default 2 (RFC 9000 section 13.2.2): halves the ack rate while keeping
    /// RTT samples and loss signals fresh.
    pub ack_eliciting_threshold: u32,
    /// Most ack ranges a receiver remembers; older ranges are forgotten.
    ///
    /// Default 32: covers a few hundred packets even at 30% loss, while an
    /// ack stays well under 200 bytes.
    pub max_ack_ranges: usize,
    /// Smallest timer period considered; floors the RTT deviation terms.
    ///
    /// Default 1 ms (RFC 9002 kGranularity): below that, OS timers and
    /// scheduling jitter dominate.
    pub timer_granularity: Duration,
    /// A packet is lost when this many later packets were acknowledged.
    ///
    /// Default 3 (RFC 9002 kPacketThreshold): tolerates the small reordering a
    /// single link shows.
    pub packet_threshold: u64,
    /// A packet is lost when older than this multiple of max(srtt, latest_rtt)
    /// and a later packet was acknowledged, in eighths.
    ///
    /// Default 9 (9/8, RFC 9002 kTimeThreshold).
    pub time_threshold_eighths: u32,
    /// An ack-eliciting packet counts as unanswered once it has waited
    /// longer than srtt + this many rttvar (at least `timer_granularity`) +
    /// `max_ack_delay` with no ack for it or anything sent later; enough of
    /// them in a row (see `silence_false_alarm`) make the link `Suspect`.
    ///
    /// Default 3: beyond 3 deviations an ack is very unlikely to be merely
    /// late, and a false alarm only duplicates a few packets.
    pub suspect_rttvar_multiple: u32,
    /// A silent link turns `Down` after this many probe timeouts
    /// (PTO = srtt + max(4 rttvar, granularity) + max_ack_delay), counted
    /// from its oldest unanswered packet, once one more packet than
    /// `Suspect` needs is unanswered too.
    ///
    /// Default 2: two thirds of RFC 9002's persistent-congestion period
    /// (3 PTO); a 30 ms link with little jitter is out after about 85 ms,
    /// well within the 150 ms goal, and a false `Down` costs only a few
    /// probes since another link carries the traffic.
    pub down_after_ptos: u32,
    /// Interval between probes on a `Down` link: how soon a healed link is
    /// noticed.
    ///
    /// Default 50 ms: a healed link answers within 50 ms plus its RTT (with
    /// 100 ms the lab saw links take 230-800 ms to return where glorytun
    /// took 13-68 ms), for 20 small packets a second on a dead link.
    pub probe_interval: Duration,
    /// Interval between probes on a `Probing` link that has not flapped
    /// recently; each recent demotion doubles it (see `flap_decay`).
    ///
    /// Default 20 ms: the good probes a return needs are answered within
    /// their RTT plus 40 ms, a few round trips, while they still span twice
    /// the receiver's ack delay, so each needs an ack of its own.
    pub return_probe_interval: Duration,
    /// An `Up` link that sent nothing ack-eliciting for this long is probed,
    /// so its state and RTT stay fresh for when the scheduler needs it.
    ///
    /// Default 250 ms: a few small packets a second; a silent idle link is
    /// noticed within about a quarter second plus the down threshold.
    pub idle_probe_interval: Duration,
    /// Consecutive acknowledged probes that bring a link back to `Up`, when
    /// it has not flapped recently (see `flap_decay`).
    ///
    /// Default 3: two more answered probes after the one that showed the
    /// link alive, so one lucky answer does not bring a dead link back.
    pub good_probes_to_return: u32,
    /// Demotions of a usable link to `Down` are remembered, one forgotten
    /// per `flap_decay` since the last; each remembered beyond the first
    /// doubles both the good probes the next return needs and the interval
    /// between them, so the clean time asked of a flapping link grows
    /// fourfold per flap: 40 ms, 200 ms, 880 ms, 3.7 s.
    ///
    /// Default 2.5 s: a link that dies every second or two is held out
    /// after its second or third return (a link up for half a second at a
    /// time carries little, and what it holds when it dies must be resent),
    /// while one that fails every five seconds for two, up for three, is
    /// taken back within a few round trips each time (with 10 s and slow
    /// probes it sat out 2.3 s of every 3 s it worked). Below half that
    /// period, so a false demotion (a host pause in the lab took a link
    /// `Down` right after its return) is forgiven by the next failure
    /// instead of holding every later return at the next doubling.
    pub flap_decay: Duration,
    /// Most doublings for a flapping link.
    ///
    /// Default 3: at most 24 probes 160 ms apart, 3.7 s of clean answers, so
    /// a link that flapped a lot is back within seconds once it is steady.
    pub max_flap_doublings: u32,
    /// Accepted chance that a run of unanswered packets on a lossy but live
    /// link is bad luck: the run must be less likely than this, judged by
    /// how often the link's recent packets went unanswered, before the link
    /// turns `Suspect` (and one packet more for `Down`).
    ///
    /// Default 1e-4: an idle link starts a run with every lost probe, a few
    /// times a second, so the chance per run must be small. A link losing
    /// half its probes needs 14 in a row to turn `Suspect` (about 150 ms of
    /// doubt probes more than a clean link) and is wrongly demoted less than
    /// once an hour; a link with a long clean record needs a single one.
    pub silence_false_alarm: f32,
    /// Weight of one packet's fate (acked 0, lost 1) in the loss-rate average.
    ///
    /// Default 1/32: about the last 32 packets; one loss moves the estimate
    /// by 3%, a link with 30% loss stays well above the scheduler's "lossy"
    /// threshold (10%).
    pub loss_rate_weight: f32,
    /// How long the highest delivery-rate sample is remembered.
    ///
    /// Default 1 s: longer than the gaps of bursty traffic (so an idle moment
    /// does not forget the capacity), short enough to follow a cellular link
    /// whose capacity drops.
    pub delivery_rate_window: Duration,
    /// Floor of the estimated pipe size (bytes in flight the link carries
    /// without queueing), used until the delivery rate has been measured.
    ///
    /// Default 14720 bytes (RFC 9002's initial window for 1472-byte packets):
    /// lets a fresh link carry traffic at once without flooding a slow one.
    pub min_window: u64,
    /// Bytes in flight may reach this many eighths of the estimated pipe
    /// size (delivery rate x min RTT, at least `min_window`).
    ///
    /// Default 12 (1.5 pipes): room for jitter (a wifi link's round trip is
    /// often half again its minimum) and for the rate estimate to grow while
    /// traffic grows, and at most half a pipe queued at the bottleneck when
    /// the round trip is at its minimum. More only parks packets in the
    /// link's buffer, where they add latency for everyone and are lost when
    /// the link dies; short of room they wait in the engine's fair queue,
    /// where light flows overtake them.
    pub in_flight_window_eighths: u32,
    /// The in-flight cap, in eighths of the pipe, for packets worth a copy:
    /// light flows' packets and resends (see
    /// [`Scheduler::pick_soonest`](crate::scheduler::Scheduler::pick_soonest)).
    ///
    /// Default 16 (2 pipes). Bulk traffic keeps a link at its own cap almost
    /// always; were light packets held to it too, they would wait at the
    /// sender for an ack on all their links at once, and the
    /// copies would leave together in bursts. Light flows are a small share
    /// of the traffic, so the extra room they may use stays small.
    pub urgent_window_eighths: u32,
    /// Most packets tracked in flight per link; beyond that the oldest is
    /// declared lost.
    ///
    /// Default 16384: above twice the bandwidth-delay product of a 100 Mbit/s,
    /// 600 ms link in 1400-byte packets. The record list grows on demand up to
    /// this bound and is then reused, so steady traffic does not allocate.
    pub max_tracked_packets: usize,
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            initial_rtt: Duration::from_millis(333),
            max_ack_delay: Duration::from_millis(10),
            ack_eliciting_threshold: 2,
            max_ack_ranges: 32,
            timer_granularity: Duration::from_millis(1),
            packet_threshold: 3,
            time_threshold_eighths: 9,
            suspect_rttvar_multiple: 3,
            down_after_ptos: 2,
            probe_interval: Duration::from_millis(50),
            return_probe_interval: Duration::from_millis(20),
            idle_probe_interval: Duration::from_millis(250),
            good_probes_to_return: 3,
            flap_decay: Duration::from_millis(2500),
            max_flap_doublings: 3,
            silence_false_alarm: 0.0001,
            loss_rate_weight: 1.0 / 32.0,
            delivery_rate_window: Duration::from_secs(1),
            min_window: 14720,
            in_flight_window_eighths: 12,
            urgent_window_eighths: 16,
            max_tracked_packets: 16384,
        }
    }
}
