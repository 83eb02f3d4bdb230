//! The sender side of one link: what was sent, what the acks say about it,
//! and the resulting link state.

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use super::flaps::FlapDamping;
use super::rate::DeliveryRate;
use super::return_delay::ReturnDelay;
use super::rtt::RttEstimator;
use super::sent::{Fate, SentPacket, SentPackets};
use super::silence::{Evidence, SilenceOdds};
use super::{PathConfig, PathState};

/// What one ack changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Packets newly acknowledged.
    pub acked: u32,
    /// Their bytes.
    pub acked_bytes: u64,
    /// Packets declared lost because of this ack.
    pub lost: u32,
    /// Their bytes.
    pub lost_bytes: u64,
    /// RTT measured from the newest packet acknowledged, if it is newer than
    /// everything acknowledged before.
    pub rtt_sample: Option<Duration>,
}

/// A snapshot of one link's estimates and counters, for stats and logs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathStats {
    pub state: PathState,
    /// Smoothed RTT (RFC 9002).
    pub srtt: Duration,
    /// RTT variation (RFC 9002).
    pub rttvar: Duration,
    /// Lowest RTT seen since the link last came back.
    pub min_rtt: Duration,
    /// The most recent RTT sample.
    pub latest_rtt: Duration,
    /// Fraction of recent data packets lost, 0.0 to 1.0.
    pub loss_rate: f32,
    /// Bytes per second.
    pub delivery_rate: u64,
    /// Bytes of ack-eliciting packets neither acknowledged nor lost.
    pub bytes_in_flight: u64,
    /// See [`Path::in_flight_cap`] (for bulk packets).
    pub in_flight_cap: u64,
    /// Packets and bytes sent on the link, acks and probes included.
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Ack-eliciting packets acknowledged and declared lost.
    pub packets_acked: u64,
    pub packets_lost: u64,
    /// Times the state changed; a high count shows a flapping link.
    pub state_changes: u64,
}

/// Sender side of one link: RFC 9002 loss detection in the link's own
/// packet-number space, RTT/loss/rate estimates and the link state machine.
///
/// The engine numbers packets with [`next_pn`](Path::next_pn), reports each
/// one with [`on_sent`](Path::on_sent) (probes included), feeds the peer's
/// acks for this link to [`on_ack`](Path::on_ack), calls
/// [`on_timeout`](Path::on_timeout) at [`poll_timeout`](Path::poll_timeout),
/// and sends a Ping whenever [`wants_probe`](Path::wants_probe) says so.
#[derive(Debug)]
pub struct Path {
    config: PathConfig,
    state: PathState,
    state_since: Instant,
    carrier_up: bool,
    next_pn: u64,
    sent: SentPackets,
    rtt: RttEstimator,
    rate: DeliveryRate,
    return_delay: ReturnDelay,
    /// Origin of this end's clock as stamped on acks ([`Path::clock_us`]).
    clock_origin: Instant,
    fates: Fates,
    largest_acked: Option<u64>,
    /// When the oldest pending packet below `largest_acked` becomes lost by
    /// the time threshold.
    loss_time: Option<Instant>,
    last_ack_eliciting_sent: Option<Instant>,
    /// See [`SentPacket::trial`].
    last_trial_sent: Option<Instant>,
    flaps: FlapDamping,
    packets_sent: u64,
    bytes_sent: u64,
    state_changes: u64,
}

/// What became of sent packets: bytes in flight, loss rate and the probe
/// streak. Kept apart from the packet list so both can be borrowed at once
/// while acks and losses are walked, without collecting them anywhere.
#[derive(Debug)]
struct Fates {
    bytes_in_flight: u64,
    loss_rate: f32,
    loss_rate_weight: f32,
    /// Which packets go unanswered while the link is alive.
    silence: SilenceOdds,
    /// Consecutive good probes since the link was last found silent or lossy
    /// while probing.
    good_probes: u32,
    /// Probes sent before this and lost do not break the streak: they went
    /// into the link while it was still dead, or before the last break.
    streak_start: Instant,
    /// Send time of the newest good probe counted.
    newest_good_probe: Option<Instant>,
    packets_acked: u64,
    packets_lost: u64,
}

impl Fates {
    /// `in_time`: the ack came within the suspect delay. A packet acked
    /// later was delivered, but its first ack was lost: as evidence of a
    /// live link it failed, and a probe answered late is no good probe,
    /// though it does not break the streak either (both directions work).
    fn on_acked(&mut self, packet: &SentPacket, in_time: bool) {
        self.bytes_in_flight -= u64::from(packet.bytes);
        self.packets_acked += 1;
        self.silence.record(packet, in_time);
        if !packet.is_probe() {
            self.loss_rate -= self.loss_rate_weight * self.loss_rate;
        } else if in_time {
            self.good_probes += 1;
            self.newest_good_probe = self.newest_good_probe.max(Some(packet.time_sent));
        }
    }

    fn on_lost(&mut self, packet: &SentPacket) {
        self.bytes_in_flight -= u64::from(packet.bytes);
        self.packets_lost += 1;
        self.silence.record(packet, false);
        if !packet.is_probe() {
            self.loss_rate += self.loss_rate_weight * (1.0 - self.loss_rate);
        } else if packet.time_sent >= self.streak_start {
            // The streak restarts after the lost probe. A loss is noticed
            // on the ack of a later probe, counted just before: that one
            // (at most one, with probes further apart than an ack takes)
            // still belongs to the new streak.
            let newer_good = self.newest_good_probe.is_some_and(|t| t > packet.time_sent);
            self.good_probes = u32::from(newer_good);
            self.streak_start = packet.time_sent;
        }
    }
}

impl Path {
    /// A new link starts `Probing`: nothing is known about it yet, and data
    /// waits until it answered enough probes.
    pub fn new(config: PathConfig, now: Instant) -> Self {
        Path {
            config,
            state: PathState::Probing,
            state_since: now,
            carrier_up: true,
            next_pn: 0,
            sent: SentPackets::new(config.max_tracked_packets),
            rtt: RttEstimator::new(config.initial_rtt),
            rate: DeliveryRate::new(),
            return_delay: ReturnDelay::default(),
            clock_origin: now,
            fates: Fates {
                bytes_in_flight: 0,
                loss_rate: 0.0,
                loss_rate_weight: config.loss_rate_weight,
                silence: SilenceOdds::new(),
                good_probes: 0,
                streak_start: now,
                newest_good_probe: None,
                packets_acked: 0,
                packets_lost: 0,
            },
            largest_acked: None,
            loss_time: None,
            last_ack_eliciting_sent: None,
            last_trial_sent: None,
            flaps: FlapDamping::default(),
            packets_sent: 0,
            bytes_sent: 0,
            state_changes: 0,
        }
    }

    /// Allocates the packet number for the next packet on this link.
    pub fn next_pn(&mut self) -> u64 {
        let pn = self.next_pn;
        self.next_pn += 1;
        pn
    }

    /// Records a packet sent on this link. Only ack-eliciting packets are
    /// tracked for loss and count as bytes in flight (as in RFC 9002).
    /// Packet numbers must come from [`next_pn`](Path::next_pn) in order; a
    /// number not above the last recorded one is ignored.
    pub fn on_sent(&mut self, now: Instant, pn: u64, bytes: usize, ack_eliciting: bool) {
        self.packets_sent += 1;
        self.bytes_sent += bytes as u64;
        if !ack_eliciting || self.sent.newest_pn().is_some_and(|newest| pn <= newest) {
            return;
        }
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let spaced_from = |last: Option<Instant>| {
            last.is_none_or(|t| now.saturating_duration_since(t) >= self.config.max_ack_delay)
        };
        let trial = spaced_from(self.last_trial_sent);
        if trial {
            self.last_trial_sent = Some(now);
        }
        let packet = SentPacket {
            pn,
            time_sent: now,
            bytes,
            sent_in: self.state,
            alone: spaced_from(self.last_ack_eliciting_sent),
            trial,
            rate: self.rate.on_sent(now, self.fates.bytes_in_flight == 0),
            fate: Fate::InFlight,
        };
        self.fates.bytes_in_flight += u64::from(bytes);
        self.last_ack_eliciting_sent = Some(now);
        if let Some(evicted) = self.sent.push(packet) {
            self.fates.on_lost(&evicted);
        }
    }

    /// Processes the peer's ack for this link: `ranges` of packet numbers,
    /// newest first, and the delay the peer reports between receiving the
    /// newest and sending the ack. Numbers never sent are ignored.
    pub fn on_ack(
        &mut self,
        now: Instant,
        ranges: impl IntoIterator<Item = RangeInclusive<u64>>,
        ack_delay: Duration,
    ) -> AckOutcome {
        let mut outcome = AckOutcome::default();
        let Some(sent_max) = self.next_pn.checked_sub(1) else {
            return outcome;
        };
        let mut ack_largest = None;
        let mut newest_acked: Option<SentPacket> = None;
        // Right after an outage the RTT is unknown (the first sample replaces
        // it), so any answer is in time.
        let answer_within = self.rtt.has_sample().then(|| self.suspect_delay());
        for range in ranges {
            let (low, high) = (*range.start(), (*range.end()).min(sent_max));
            if low > high {
                continue;
            }
            ack_largest = ack_largest.max(Some(high));
            let Path {
                sent, rate, fates, ..
            } = self;
            sent.ack(low..=high, |packet| {
                let waited = now.saturating_duration_since(packet.time_sent);
                fates.on_acked(packet, answer_within.is_none_or(|d| waited <= d));
                rate.on_acked(now, u64::from(packet.bytes));
                outcome.acked += 1;
                outcome.acked_bytes += u64::from(packet.bytes);
                if newest_acked.is_none_or(|n| packet.pn > n.pn) {
                    newest_acked = Some(*packet);
                }
            });
        }
        let (Some(ack_largest), Some(newest)) = (ack_largest, newest_acked) else {
            return outcome;
        };

        // RFC 9002 takes a sample only when the ack's largest number is newly
        // acknowledged. Packets that elicit no ack (pure acks) are not
        // tracked here, so the test is on the newest tracked packet instead:
        // it must be newer than anything acknowledged before, or it is an old
        // hole filled late and its delay says nothing about the path.
        if self.largest_acked.is_none_or(|l| newest.pn > l) {
            let sample = now.saturating_duration_since(newest.time_sent);
            self.rtt
                .update(sample, ack_delay.min(self.config.max_ack_delay));
            outcome.rtt_sample = Some(sample);
        }
        self.rate.sample(
            now,
            &newest.rate,
            newest.time_sent,
            self.rtt.min(),
            self.config.delivery_rate_window,
        );
        if self.largest_acked.is_none_or(|l| ack_largest > l) {
            self.largest_acked = Some(ack_largest);
        }
        let (lost, lost_bytes) = self.detect_lost(now);
        outcome.lost = lost;
        outcome.lost_bytes = lost_bytes;
        self.update_state(now);
        outcome
    }

    /// Runs the timers due at `now`: time-threshold loss and the silence
    /// thresholds that move the link to `Suspect` and `Down`.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.loss_time.is_some_and(|t| t <= now) {
            self.detect_lost(now);
        }
        self.update_state(now);
    }

    /// The next time [`on_timeout`](Path::on_timeout) has work, or a probe
    /// becomes due. A due probe keeps this in the past until the engine has
    /// sent it (and reported it with [`on_sent`](Path::on_sent)).
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.loss_time, self.silence_deadline(), self.probe_due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the engine should send a probe (a Ping, padded as it likes) on
    /// this link now: every `probe_interval` while the link is `Down`, every
    /// `return_probe_interval` (longer for a link that flapped) while it is
    /// `Probing`, every `max_ack_delay` while a usable link owes an overdue
    /// answer and nothing else is sent (until the evidence for `Down` is
    /// out), and when an `Up` link has been idle for `idle_probe_interval`.
    /// Never while the carrier is down.
    pub fn wants_probe(&self, now: Instant) -> bool {
        self.probe_due().is_some_and(|due| due <= now)
    }

    /// A local interface event: without carrier the link is `Down` at once
    /// and not probed; with carrier back it starts `Probing` immediately.
    pub fn set_carrier(&mut self, now: Instant, up: bool) {
        if up == self.carrier_up {
            return;
        }
        self.carrier_up = up;
        if up {
            self.last_ack_eliciting_sent = None;
            self.enter(now, PathState::Probing);
        } else {
            self.enter(now, PathState::Down);
        }
    }

    /// The link's state; see [`PathState`].
    pub fn state(&self) -> PathState {
        self.state
    }

    /// Smoothed RTT (the initial RTT until measured).
    pub fn srtt(&self) -> Duration {
        self.rtt.smoothed()
    }

    /// RTT variation: how much samples stray from `srtt`.
    pub fn rttvar(&self) -> Duration {
        self.rtt.var()
    }

    /// Lowest RTT seen since the link last came back from `Down`: the
    /// propagation delay without queueing.
    pub fn min_rtt(&self) -> Duration {
        self.rtt.min()
    }

    /// Fraction of recent data packets lost, 0.0 to 1.0 (see
    /// [`PathConfig::loss_rate_weight`]). Reset when the link returns from
    /// `Down`: the loss of a dying link says nothing about the healed one.
    pub fn loss_rate(&self) -> f32 {
        self.fates.loss_rate
    }

    /// Highest recent delivery rate in bytes per second; 0 until measured.
    pub fn delivery_rate(&self) -> u64 {
        self.rate.bytes_per_second()
    }

    /// Bytes of ack-eliciting packets neither acknowledged nor lost.
    pub fn bytes_in_flight(&self) -> u64 {
        self.fates.bytes_in_flight
    }

    /// Estimated bytes the link holds in flight without queueing: delivery
    /// rate x min RTT, at least [`PathConfig::min_window`].
    pub fn window(&self) -> u64 {
        let bdp = u128::from(self.delivery_rate()) * self.min_rtt().as_nanos() / 1_000_000_000;
        u64::try_from(bdp)
            .unwrap_or(u64::MAX)
            .max(self.config.min_window)
    }

    /// Most bytes allowed in flight: [`PathConfig::in_flight_window_eighths`]
    /// of [`window`](Path::window), or for `urgent` packets (light flows,
    /// resends) [`PathConfig::urgent_window_eighths`], plus what the link
    /// delivers while acks wait on the way back ([`Path::return_delay`]):
    /// without it a busy reverse direction holds this one below capacity.
    pub fn in_flight_cap(&self, urgent: bool) -> u64 {
        let eighths = if urgent {
            self.config.urgent_window_eighths
        } else {
            self.config.in_flight_window_eighths
        };
        let ack_wait = u128::from(self.delivery_rate())
            * self.return_delay().min(self.min_rtt()).as_nanos()
            / 2_000_000_000;
        (self.window().saturating_mul(u64::from(eighths)) / 8)
            .saturating_add(u64::try_from(ack_wait).unwrap_or(u64::MAX))
    }

    /// Queueing delay of this link's acks on their way back, beyond the
    /// fastest seen (see `return_delay.rs`).
    pub fn return_delay(&self) -> Duration {
        self.return_delay.delay()
    }

    /// This end's clock for the stamp on the acks it sends on this link:
    /// microseconds since the link was created, wrapping.
    pub fn clock_us(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.clock_origin).as_micros() as u32
    }

    /// An ack frame stamped `sent_at_us` by the peer's clock arrived at
    /// `now`: one sample of the return delay.
    pub fn on_ack_stamp(&mut self, now: Instant, sent_at_us: u32) {
        self.return_delay
            .on_ack(now, self.clock_us(now), sent_at_us);
    }

    /// Whether `bytes` more may be put in flight without overfilling the link
    /// (see [`in_flight_cap`](Path::in_flight_cap)).
    pub fn can_send(&self, bytes: usize, urgent: bool) -> bool {
        self.fates.bytes_in_flight + bytes as u64 <= self.in_flight_cap(urgent)
    }

    /// Packet numbers of ack-eliciting packets still in flight, oldest first;
    /// an engine can re-send their data elsewhere when the link turns `Suspect`.
    pub fn in_flight_pns(&self) -> impl Iterator<Item = u64> + '_ {
        self.sent.in_flight_pns()
    }

    /// Probe timeout: how long an ack may take before something is wrong.
    pub fn pto(&self) -> Duration {
        self.rtt.smoothed()
            + (self.rtt.var() * 4).max(self.config.timer_granularity)
            + self.config.max_ack_delay
    }

    /// Estimates and counters in one copyable snapshot.
    pub fn stats(&self) -> PathStats {
        PathStats {
            state: self.state,
            srtt: self.srtt(),
            rttvar: self.rttvar(),
            min_rtt: self.min_rtt(),
            latest_rtt: self.rtt.latest(),
            loss_rate: self.fates.loss_rate,
            delivery_rate: self.delivery_rate(),
            bytes_in_flight: self.fates.bytes_in_flight,
            in_flight_cap: self.in_flight_cap(false),
            packets_sent: self.packets_sent,
            bytes_sent: self.bytes_sent,
            packets_acked: self.fates.packets_acked,
            packets_lost: self.fates.packets_lost,
            state_changes: self.state_changes,
        }
    }

    /// How long a packet may wait for its ack before it counts as
    /// unanswered: srtt + a few rttvar + max_ack_delay.
    fn suspect_delay(&self) -> Duration {
        let deviations = self.rtt.var() * self.config.suspect_rttvar_multiple;
        self.rtt.smoothed()
            + deviations.max(self.config.timer_granularity)
            + self.config.max_ack_delay
    }

    /// Silence, from the oldest unanswered packet, after which a link may
    /// turn `Down`.
    fn down_delay(&self) -> Duration {
        self.pto() * self.config.down_after_ptos
    }

    /// The unanswered packets that are evidence of silence (see
    /// [`super::silence`]), counting only packets at least `max_ack_delay`
    /// apart: the receiver acks within that delay, so each counted packet
    /// needed an ack of its own, while packets a millisecond apart share one
    /// and would turn a short run of lost acks into many pieces of evidence.
    fn evidence(&self) -> Evidence {
        let unanswered = self
            .sent
            .unanswered(self.largest_acked, self.config.max_ack_delay);
        self.fates
            .silence
            .weigh(unanswered, self.config.silence_false_alarm)
    }

    /// When the evidence makes the link `Suspect`: once the packet that
    /// completes it is overdue.
    fn suspect_at(&self, evidence: &Evidence) -> Option<Instant> {
        evidence.suspect?.checked_add(self.suspect_delay())
    }

    /// When it makes the link `Down`: one packet more than for `Suspect`
    /// overdue, and the oldest silent for the down delay.
    fn down_at(&self, evidence: &Evidence) -> Option<Instant> {
        let by_count = evidence.down?.checked_add(self.suspect_delay())?;
        let by_time = evidence.oldest?.checked_add(self.down_delay())?;
        Some(by_count.max(by_time))
    }

    fn silence_deadline(&self) -> Option<Instant> {
        let evidence = self.evidence();
        match self.state {
            PathState::Up => [self.suspect_at(&evidence), self.down_at(&evidence)]
                .into_iter()
                .flatten()
                .min(),
            PathState::Suspect | PathState::Probing => self.down_at(&evidence),
            PathState::Down => None,
        }
    }

    /// While a usable link owes an overdue answer, it is probed every
    /// `max_ack_delay` (the spacing at which packets count as separate
    /// evidence) until enough packets are out to decide on `Down`, so the
    /// verdict comes within about two suspect delays even when no data flows
    /// and the link is lossy enough to need many packets.
    fn doubt_probe_due(&self) -> Option<Instant> {
        let evidence = self.evidence();
        if evidence.down.is_some() {
            return None;
        }
        let overdue = evidence.oldest?.checked_add(self.suspect_delay())?;
        let cadence = self.config.max_ack_delay.max(self.config.timer_granularity);
        let next = self.last_ack_eliciting_sent?.checked_add(cadence)?;
        Some(overdue.max(next))
    }

    fn probe_due(&self) -> Option<Instant> {
        if !self.carrier_up {
            return None;
        }
        let last = self.last_ack_eliciting_sent;
        match self.state {
            PathState::Up => {
                let idle = last
                    .unwrap_or(self.state_since)
                    .checked_add(self.config.idle_probe_interval);
                [idle, self.doubt_probe_due()].into_iter().flatten().min()
            }
            PathState::Suspect => self.doubt_probe_due(),
            PathState::Probing | PathState::Down => {
                let Some(last) = last else {
                    return Some(self.state_since);
                };
                let interval = match self.state {
                    PathState::Probing => self.flaps.return_probe_interval(last, &self.config),
                    _ => self.config.probe_interval,
                };
                last.checked_add(interval)
            }
        }
    }

    /// Consecutive good probes that bring the link back at `now`: more
    /// after recent demotions (see [`PathConfig::flap_decay`]).
    fn probes_to_return(&self, now: Instant) -> u32 {
        self.flaps.probes_to_return(now, &self.config)
    }

    /// RFC 9002 loss detection below the largest acknowledged packet; arms
    /// the time-threshold timer for the packets not yet lost.
    fn detect_lost(&mut self, now: Instant) -> (u32, u64) {
        self.loss_time = None;
        let Some(largest_acked) = self.largest_acked else {
            return (0, 0);
        };
        let base = self.rtt.smoothed().max(self.rtt.latest());
        let loss_delay =
            (base * self.config.time_threshold_eighths / 8).max(self.config.timer_granularity);
        let (mut lost, mut lost_bytes) = (0, 0);
        let streak_start = self.fates.streak_start;
        let Path { sent, fates, .. } = self;
        let pending = sent.detect_lost(
            largest_acked,
            self.config.packet_threshold,
            now.checked_sub(loss_delay),
            |packet| {
                lost += 1;
                lost_bytes += u64::from(packet.bytes);
                fates.on_lost(packet);
            },
        );
        self.loss_time = pending.and_then(|t| t.checked_add(loss_delay));
        if self.state == PathState::Probing && self.fates.streak_start != streak_start {
            // A lost probe broke the streak: the link is failing again
            // before it is back, which time must not forgive. A dead
            // window between sparse probes may hold too few of them to
            // take the link `Down`.
            self.flaps.on_failure(now, false, &self.config);
        }
        (lost, lost_bytes)
    }

    /// Moves the state machine along after acks, losses and timers.
    fn update_state(&mut self, now: Instant) {
        if !self.carrier_up {
            return;
        }
        let evidence = self.evidence();
        let down = self.down_at(&evidence).is_some_and(|t| t <= now);
        let suspect = self.suspect_at(&evidence).is_some_and(|t| t <= now);
        let next = match self.state {
            PathState::Up | PathState::Suspect if down => PathState::Down,
            PathState::Up | PathState::Suspect if suspect => PathState::Suspect,
            PathState::Up | PathState::Suspect => PathState::Up,
            // A lost probe only restarts the streak; the link falls back to
            // `Down` on the same evidence that takes a usable link there.
            PathState::Probing if down => PathState::Down,
            PathState::Probing if self.fates.good_probes >= self.probes_to_return(now) => {
                PathState::Up
            }
            PathState::Down if self.fates.good_probes > 0 => PathState::Probing,
            state => state,
        };
        if next != self.state {
            if next == PathState::Down {
                self.learn_from_silent_run(now);
            }
            self.enter(now, next);
            // A returning link may already have all the probes it needs.
            if next == PathState::Probing {
                self.update_state(now);
            }
        }
    }

    /// The overdue packets that took the link `Down` count as unanswered:
    /// if the run was bad luck on a lossy link rather than an outage,
    /// leaving it out would hide exactly the long runs the evidence has to
    /// outlast. Only those packets: the rest in flight say nothing yet.
    fn learn_from_silent_run(&mut self, now: Instant) {
        let overdue_by = now.checked_sub(self.suspect_delay());
        let Path {
            sent,
            fates,
            largest_acked,
            config,
            ..
        } = self;
        for packet in sent
            .unanswered(*largest_acked, config.max_ack_delay)
            .take_while(|p| overdue_by.is_some_and(|t| p.time_sent <= t))
        {
            fates.silence.record(packet, false);
        }
    }

    fn enter(&mut self, now: Instant, state: PathState) {
        let previous = self.state;
        self.state = state;
        self.state_since = now;
        self.state_changes += 1;
        match state {
            PathState::Down => {
                // Whatever is in flight went into a dead link. It is counted
                // as lost, but an outage is a state, not a loss rate.
                let fates = &mut self.fates;
                self.sent.lose_all(|packet| {
                    fates.bytes_in_flight -= u64::from(packet.bytes);
                    fates.packets_lost += 1;
                });
                fates.good_probes = 0;
                self.loss_time = None;
                self.rtt.restart();
                self.return_delay.restart();
                self.flaps
                    .on_failure(now, previous.is_usable(), &self.config);
            }
            PathState::Probing => {
                self.fates.streak_start = now;
                if previous != PathState::Down {
                    self.fates.good_probes = 0;
                }
            }
            PathState::Up if previous == PathState::Probing => self.fates.loss_rate = 0.0,
            PathState::Up | PathState::Suspect => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::paths::AckTracker;

    const MS: Duration = Duration::from_millis(1);

    /// One link in virtual time, stepped by 1 ms: a `Path` at the sender, an
    /// `AckTracker` at the receiver, a fixed one-way delay each way, and a
    /// switch to make the link silently drop everything.
    struct Link {
        path: Path,
        tracker: AckTracker,
        now: Instant,
        one_way: Duration,
        alive: bool,
        /// Drops a data packet when this returns true for its packet number.
        drop_data: fn(u64) -> bool,
        /// The same for probes.
        drop_probe: fn(u64) -> bool,
        to_receiver: VecDeque<(Instant, u64, bool)>,
        to_sender: VecDeque<(Instant, Vec<RangeInclusive<u64>>, Duration)>,
        states: Vec<(Duration, PathState)>,
        start: Instant,
    }

    impl Link {
        fn new(rtt: Duration) -> Self {
            let now = Instant::now();
            let config = PathConfig::default();
            Link {
                path: Path::new(config, now),
                tracker: AckTracker::new(&config),
                now,
                one_way: rtt / 2,
                alive: true,
                drop_data: |_| false,
                drop_probe: |_| false,
                to_receiver: VecDeque::new(),
                to_sender: VecDeque::new(),
                states: Vec::new(),
                start: now,
            }
        }

        fn elapsed(&self) -> Duration {
            self.now - self.start
        }

        fn send(&mut self, bytes: usize, data: bool) {
            let pn = self.path.next_pn();
            self.path.on_sent(self.now, pn, bytes, true);
            let dropped = if data {
                (self.drop_data)(pn)
            } else {
                (self.drop_probe)(pn)
            };
            if self.alive && !dropped {
                self.to_receiver
                    .push_back((self.now + self.one_way, pn, !data));
            }
        }

        /// Advances 1 ms; sends a data packet first when `data` is set (and
        /// the link is usable), and a probe whenever the path wants one.
        fn step(&mut self, data: bool) {
            self.now += MS;
            while self.to_receiver.front().is_some_and(|p| p.0 <= self.now) {
                let (_, pn, probe) = self.to_receiver.pop_front().unwrap();
                self.tracker.on_received(self.now, pn, true);
                if probe {
                    self.tracker.ack_immediately(self.now);
                }
            }
            if self.tracker.ack_due().is_some_and(|t| t <= self.now) {
                let ranges: Vec<_> = self.tracker.ranges().collect();
                let delay = self.tracker.ack_delay(self.now);
                self.tracker.on_ack_sent();
                if self.alive {
                    self.to_sender
                        .push_back((self.now + self.one_way, ranges, delay));
                }
            }
            while self.to_sender.front().is_some_and(|a| a.0 <= self.now) {
                let (_, ranges, delay) = self.to_sender.pop_front().unwrap();
                self.path.on_ack(self.now, ranges, delay);
            }
            if self.path.poll_timeout().is_some_and(|t| t <= self.now) {
                self.path.on_timeout(self.now);
            }
            if data && self.path.state().is_usable() {
                self.send(1200, true);
            }
            if self.path.wants_probe(self.now) {
                self.send(60, false);
            }
            let state = self.path.state();
            if self.states.last().is_none_or(|s| s.1 != state) {
                self.states.push((self.elapsed(), state));
            }
        }

        fn run(&mut self, duration: Duration, data: bool) {
            let end = self.now + duration;
            while self.now < end {
                self.step(data);
            }
        }

        /// First time after `since` the path entered `state`.
        fn entered(&self, state: PathState, since: Duration) -> Option<Duration> {
            self.states
                .iter()
                .find(|s| s.1 == state && s.0 >= since)
                .map(|s| s.0 - since)
        }

        fn kill(&mut self) {
            self.alive = false;
            self.to_receiver.clear();
            self.to_sender.clear();
        }
    }

    #[test]
    fn new_link_comes_up_after_three_answered_probes() {
        let mut link = Link::new(30 * MS);
        assert_eq!(link.path.state(), PathState::Probing);
        assert!(link.path.wants_probe(link.now), "probes a new link at once");
        // Probes 20 ms apart, answered 30 ms later: at 60 ms, two of three.
        link.run(60 * MS, true);
        assert_eq!(
            link.path.state(),
            PathState::Probing,
            "only two probes answered yet"
        );
        assert_eq!(link.path.stats().packets_sent, 3, "no data before Up");
        link.run(15 * MS, true);
        assert_eq!(link.path.state(), PathState::Up, "up within 75 ms");
        let srtt = link.path.srtt();
        assert!(srtt >= 30 * MS && srtt <= 31 * MS, "srtt {srtt:?}");
    }

    #[test]
    fn silent_30ms_link_is_suspect_quickly_and_down_within_150ms() {
        let mut link = Link::new(30 * MS);
        link.run(2000 * MS, true);
        assert_eq!(link.path.state(), PathState::Up);
        let death = link.elapsed();
        link.kill();
        link.run(300 * MS, true);
        let suspect = link.entered(PathState::Suspect, death).expect("suspect");
        let down = link.entered(PathState::Down, death).expect("down");
        assert!(suspect <= 45 * MS, "suspect after {suspect:?}");
        assert!(down <= 150 * MS, "down after {down:?}");
        assert!(suspect < down);
        let in_flight = link.path.bytes_in_flight();
        // What was sent after the link went Down: probes 50 ms apart.
        assert!(
            in_flight <= 4 * 60,
            "data flushed, only probes out: {in_flight}"
        );
    }

    #[test]
    fn idle_link_is_probed_and_a_silent_one_goes_down() {
        let mut link = Link::new(30 * MS);
        link.run(300 * MS, false);
        assert_eq!(link.path.state(), PathState::Up);
        let sent = link.path.stats().packets_sent;
        link.run(1000 * MS, false);
        let probes = link.path.stats().packets_sent - sent;
        assert!((3..=5).contains(&probes), "{probes} idle probes in 1 s");
        assert_eq!(link.path.state(), PathState::Up);
        let death = link.elapsed();
        link.kill();
        link.run(600 * MS, false);
        let down = link.entered(PathState::Down, death).expect("down");
        assert!(down <= 250 * MS + 150 * MS, "down after {down:?}");
    }

    /// The lab's complaint: a link back after 10 s took 230-800 ms to carry
    /// data again (glorytun: 13-68 ms). Now a probe finds it within 50 ms,
    /// and two more 20 ms apart confirm it: a few of its round trips.
    #[test]
    fn healed_link_returns_within_a_few_round_trips() {
        let mut link = Link::new(30 * MS);
        link.run(1000 * MS, true);
        link.kill();
        link.run(2000 * MS, true);
        assert_eq!(link.path.state(), PathState::Down);
        let heal = link.elapsed();
        link.alive = true;
        link.run(1000 * MS, true);
        let probing = link.entered(PathState::Probing, heal).expect("probing");
        let up = link.entered(PathState::Up, heal).expect("up");
        assert!(
            up - probing >= 40 * MS,
            "hysteresis: 3 probes 20 ms apart, took {:?}",
            up - probing
        );
        assert!(
            up <= 50 * MS + 30 * MS + 40 * MS + 30 * MS,
            "up after {up:?}"
        );
    }

    #[test]
    fn lossy_link_stays_up_and_reports_its_loss() {
        let mut link = Link::new(30 * MS);
        link.drop_data = |pn| (pn * 7919) % 10 < 3;
        link.run(3000 * MS, true);
        assert_eq!(link.path.state(), PathState::Up);
        let loss = link.path.loss_rate();
        assert!((0.2..0.4).contains(&loss), "loss rate {loss}");
    }

    #[test]
    fn lossy_link_that_died_can_return_with_a_clean_slate() {
        let mut link = Link::new(30 * MS);
        link.drop_data = |pn| (pn * 7919) % 10 < 5;
        link.run(2000 * MS, true);
        assert!(link.path.loss_rate() > 0.3);
        link.kill();
        link.run(1000 * MS, true);
        assert_eq!(link.path.state(), PathState::Down);
        link.alive = true;
        link.drop_data = |_| false;
        link.run(1000 * MS, true);
        assert_eq!(link.path.state(), PathState::Up);
        assert!(link.path.loss_rate() < 0.05, "{}", link.path.loss_rate());
    }

    /// Sends an ack-eliciting packet of `bytes` at `at`, returning its number.
    fn send(path: &mut Path, at: Instant, bytes: usize) -> u64 {
        let pn = path.next_pn();
        path.on_sent(at, pn, bytes, true);
        pn
    }

    #[test]
    fn lost_probes_while_probing_restart_the_count_after_them() {
        let now = Instant::now();
        let mut path = Path::new(PathConfig::default(), now);
        for i in 0..5 {
            send(&mut path, now + i * 100 * MS, 60);
        }
        let later = now + 430 * MS;
        path.on_ack(later, [3..=4, 0..=0], Duration::ZERO);
        // 1 and 2 are lost (time threshold): 0 no longer counts, the streak
        // starts over after 2, with 4 (conservatively not 3: only the probe
        // whose ack revealed the loss is known to be newer).
        assert_eq!(path.state(), PathState::Probing);
        for i in 1..=2 {
            let at = later + i * 100 * MS;
            let pn = send(&mut path, at, 60);
            path.on_ack(at + 30 * MS, [pn..=pn], Duration::ZERO);
            let expected = if i < 2 {
                PathState::Probing
            } else {
                PathState::Up
            };
            assert_eq!(path.state(), expected, "after {} good probes", i + 1);
        }
    }

    #[test]
    fn packet_and_time_thresholds_declare_loss() {
        let t0 = Instant::now();
        // The new link's next probe would be due before the loss timer.
        let config = PathConfig {
            return_probe_interval: Duration::from_secs(1),
            ..PathConfig::default()
        };
        let mut path = Path::new(config, t0);
        for _ in 0..5 {
            send(&mut path, t0, 100);
        }
        let outcome = path.on_ack(t0 + 30 * MS, [4..=4], Duration::ZERO);
        assert_eq!(
            (outcome.acked, outcome.lost),
            (1, 2),
            "0 and 1 trail 4 by 3 or more"
        );
        assert_eq!(outcome.rtt_sample, Some(30 * MS));
        assert_eq!(path.bytes_in_flight(), 200);
        // 2 and 3 are lost 9/8 x 30 ms after they were sent.
        let deadline = t0 + 30 * MS * 9 / 8;
        assert_eq!(path.poll_timeout(), Some(deadline));
        path.on_timeout(deadline);
        assert_eq!(path.bytes_in_flight(), 0);
        assert_eq!(path.stats().packets_lost, 4);
    }

    #[test]
    fn rtt_is_sampled_when_the_largest_acked_is_a_pure_ack() {
        let t0 = Instant::now();
        let mut path = Path::new(PathConfig::default(), t0);
        send(&mut path, t0, 100);
        let ack_only = path.next_pn();
        path.on_sent(t0 + MS, ack_only, 40, false);
        let outcome = path.on_ack(t0 + 50 * MS, [0..=ack_only], Duration::ZERO);
        assert_eq!(outcome.rtt_sample, Some(50 * MS));
        // A hole below the largest filled late gives no sample.
        let (a, b) = (
            send(&mut path, t0 + 60 * MS, 100),
            send(&mut path, t0 + 61 * MS, 100),
        );
        path.on_ack(t0 + 100 * MS, [b..=b], Duration::ZERO);
        let late = path.on_ack(t0 + 300 * MS, [a..=b], Duration::ZERO);
        assert_eq!((late.acked, late.rtt_sample), (1, None));
    }

    #[test]
    fn acks_of_unsent_or_repeated_packets_are_ignored() {
        let t0 = Instant::now();
        let mut path = Path::new(PathConfig::default(), t0);
        assert_eq!(
            path.on_ack(t0, [0..=10], Duration::ZERO),
            AckOutcome::default()
        );
        send(&mut path, t0, 100);
        assert_eq!(
            path.on_ack(t0 + MS, [0..=u64::MAX], Duration::ZERO).acked,
            1
        );
        assert_eq!(path.on_ack(t0 + MS, [0..=0], Duration::ZERO).acked, 0);
    }

    #[test]
    fn in_flight_is_capped_at_one_and_a_half_windows_and_two_for_urgent_packets() {
        let t0 = Instant::now();
        let mut path = Path::new(PathConfig::default(), t0);
        assert_eq!(path.in_flight_cap(false), 14720 * 3 / 2);
        assert_eq!(path.in_flight_cap(true), 14720 * 2);
        let mut sent = 0;
        while path.can_send(1200, false) {
            send(&mut path, t0, 1200);
            sent += 1;
        }
        assert_eq!(sent, 18);
        assert!(path.bytes_in_flight() <= path.in_flight_cap(false));
        while path.can_send(1200, true) {
            send(&mut path, t0, 1200);
            sent += 1;
        }
        assert_eq!(sent, 24);
    }

    #[test]
    fn window_follows_the_measured_delivery_rate() {
        // 1200 bytes per ms is 1.2 MB/s; over 30 ms that is 36 kB in flight.
        let mut link = Link::new(30 * MS);
        link.run(2000 * MS, true);
        let rate = link.path.delivery_rate();
        assert!((1_100_000..=1_400_000).contains(&rate), "rate {rate}");
        let window = link.path.window();
        assert!((33_000..=42_000).contains(&window), "window {window}");
        assert!(
            link.path.can_send(1200, false),
            "the flow fits in its window"
        );
    }

    #[test]
    fn the_cap_allows_for_half_the_wait_of_acks_on_the_way_back_up_to_one_min_rtt() {
        let mut link = Link::new(30 * MS);
        link.run(2000 * MS, true);
        let (rate, min_rtt) = (link.path.delivery_rate(), link.path.min_rtt());
        let steady = link.path.in_flight_cap(false);
        // Acks stamped by a peer whose clock is 5 s ahead, arriving 10 ms
        // after being stamped, then `queue` later than that.
        let mut acks_delayed_by = |queue: Duration| {
            for _ in 0..200 {
                link.now += MS;
                let local = link.path.clock_us(link.now);
                let stamp = local.wrapping_add(5_000_000 - 10_000) - queue.as_micros() as u32;
                link.path.on_ack_stamp(link.now, stamp);
            }
            link.path.in_flight_cap(false)
        };
        assert_eq!(acks_delayed_by(Duration::ZERO), steady);
        let grown = acks_delayed_by(20 * MS) - steady;
        let expected = rate * 10 / 1000;
        assert!(
            grown.abs_diff(expected) <= expected / 50,
            "{grown} vs {expected}"
        );
        let most = acks_delayed_by(200 * MS) - steady;
        let bound = rate * min_rtt.as_micros() as u64 / 2_000_000;
        assert!(most.abs_diff(bound) <= bound / 50, "{most} vs {bound}");
    }

    #[test]
    fn carrier_loss_is_down_at_once_and_carrier_return_probes_at_once() {
        let mut link = Link::new(30 * MS);
        link.run(500 * MS, true);
        let now = link.now;
        link.path.set_carrier(now, false);
        assert_eq!(link.path.state(), PathState::Down);
        assert_eq!(link.path.bytes_in_flight(), 0);
        assert!(
            !link.path.wants_probe(now + 10_000 * MS),
            "no probes without carrier"
        );
        link.path.set_carrier(now + 5 * MS, true);
        assert_eq!(link.path.state(), PathState::Probing);
        assert!(link.path.wants_probe(now + 5 * MS));
    }

    #[test]
    fn suspect_link_returns_to_up_on_an_ack() {
        let t0 = Instant::now();
        let mut path = Path::new(PathConfig::default(), t0);
        // A long clean record: one overdue packet is then enough.
        const ANSWERED: u32 = 400;
        for i in 0..ANSWERED {
            let pn = send(&mut path, t0 + i * 100 * MS, 60);
            path.on_ack(t0 + i * 100 * MS + 30 * MS, [0..=pn], Duration::ZERO);
        }
        assert_eq!(path.state(), PathState::Up);
        let t1 = t0 + ANSWERED * 100 * MS;
        let pn = send(&mut path, t1, 1000);
        let suspect_at = path.poll_timeout().unwrap();
        let deviations = (path.rttvar() * 3).max(MS);
        assert_eq!(suspect_at, t1 + path.srtt() + deviations + 10 * MS);
        path.on_timeout(suspect_at);
        assert_eq!(path.state(), PathState::Suspect);
        assert!(path.wants_probe(suspect_at), "one probe on turning suspect");
        path.on_ack(suspect_at + MS, [0..=pn], Duration::ZERO);
        assert_eq!(path.state(), PathState::Up);
    }

    /// Drops about 3 in 8 packet numbers, pseudo-randomly.
    fn lossy(pn: u64) -> bool {
        pn.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 61 < 3
    }

    #[test]
    fn idle_link_losing_probes_stays_up() {
        let mut link = Link::new(30 * MS);
        link.drop_probe = lossy;
        link.run(20_000 * MS, false);
        let changes: Vec<_> = link.states.iter().skip(1).collect();
        assert!(
            changes.len() <= 2,
            "a lost probe is bad luck, not death: {changes:?}"
        );
        assert_eq!(link.path.state(), PathState::Up);
        // It still goes when it dies, the doubt probes making up for the
        // longer run of evidence its loss demands.
        let death = link.elapsed();
        link.kill();
        link.run(2000 * MS, false);
        let down = link.entered(PathState::Down, death).expect("down");
        assert!(down <= 250 * MS + 400 * MS, "down after {down:?}");
    }

    #[test]
    fn flapping_link_needs_more_good_probes_each_time() {
        let mut link = Link::new(30 * MS);
        link.run(2000 * MS, true);
        assert_eq!(link.path.state(), PathState::Up);
        let start = link.elapsed();
        for _ in 0..8 {
            link.kill();
            link.run(500 * MS, true);
            link.alive = true;
            link.run(500 * MS, true);
        }
        let readmissions = link
            .states
            .iter()
            .filter(|s| s.0 > start && s.1 == PathState::Up)
            .count();
        assert_eq!(
            readmissions, 2,
            "3 probes 20 ms apart and 6 probes 40 ms apart fit in 500 ms, \
             12 80 ms apart do not: {:?}",
            link.states
        );
        // Its failures while held out keep its three demotions in memory.
        assert_eq!(link.path.probes_to_return(link.now), 12);
        let steady = link.elapsed();
        link.run(2000 * MS, true);
        let back = link.entered(PathState::Up, steady).expect("back up");
        assert!(back <= 1000 * MS, "back after {back:?}");
        assert_eq!(
            link.path
                .probes_to_return(link.now + PathConfig::default().flap_decay * 2),
            3,
            "forgiven with time"
        );
    }
}
