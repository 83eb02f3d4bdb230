//! When a run of unanswered packets means a dead link rather than bad luck.
//!
//! A packet is *unanswered* while no ack has covered it or anything sent
//! after it. A clean link that leaves one packet unanswered past its RTT is
//! in trouble; a link that drops a third of its datagrams does that several
//! times a second. So the evidence is weighed: each unanswered packet counts
//! with the chance that a live link fails such a packet, learned from the
//! link's own recent packets, and the link is judged silent once the chance
//! of the whole run is below the accepted false-alarm odds.
//!
//! Packets are learned and weighed in two kinds. One sent alone (nothing
//! ack-eliciting within `max_ack_delay` before or after it: an idle link's
//! probe) needs an ack of its own, so it fails whenever either direction
//! drops a datagram. One sent amid traffic shares its acks with its
//! neighbours and fails far less often. An idle lossy link is judged by its
//! probes, a busy clean one by its traffic, and neither borrows the other's
//! odds. Only packets at least `max_ack_delay` apart are learned from (see
//! `SentPacket::trial`), as only such packets are counted as evidence:
//! closer ones share their fate.

use std::time::Instant;

use super::PathState;
use super::sent::SentPacket;

/// Most unanswered packets ever required for `Suspect`: bounds how long a
/// very lossy idle link takes to be judged when it really dies.
const MAX_EVIDENCE: usize = 16;

/// Packets sent alone that the rate remembers: an idle link sends a few
/// probes a second, so this is about ten seconds of them, enough to smooth
/// out a lucky streak (which would make the next unlucky one look like
/// death) and short enough to learn within seconds that a link turned lossy.
const ALONE_MEMORY: u16 = 32;

/// Packets sent amid traffic that the rate remembers: at most one per
/// `max_ack_delay` is learned from, so this is under a second of traffic.
const AMID_TRAFFIC_MEMORY: u16 = 64;

/// How often packets of one kind got no answer in time.
///
/// Over the first `memory` samples it is (unanswered + 1) / (samples + 2)
/// (Laplace's rule of succession): a young link learns from its first few
/// probes, but three answered probes are no proof that it never drops one,
/// and a lossy link that happened to pass its first probes must not be
/// judged by a zero. After that it is a moving average over about `memory`
/// samples.
#[derive(Debug, Clone, Copy)]
struct UnansweredRate {
    rate: f64,
    unanswered: u16,
    samples: u16,
    memory: u16,
}

impl UnansweredRate {
    fn new(memory: u16) -> Self {
        UnansweredRate {
            rate: 0.5,
            unanswered: 0,
            samples: 0,
            memory,
        }
    }

    fn record(&mut self, unanswered: bool) {
        if self.samples < self.memory {
            self.samples += 1;
            self.unanswered += u16::from(unanswered);
            self.rate = (f64::from(self.unanswered) + 1.0) / (f64::from(self.samples) + 2.0);
        } else {
            let sample = if unanswered { 1.0 } else { 0.0 };
            self.rate += (sample - self.rate) / f64::from(self.memory);
        }
    }
}

/// The link's record of answered and unanswered packets, for weighing runs
/// of silence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SilenceOdds {
    alone: UnansweredRate,
    amid_traffic: UnansweredRate,
}

/// The packets whose overdue answers make a link `Suspect`, then `Down`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Evidence {
    /// Send time of the oldest unanswered packet.
    pub(crate) oldest: Option<Instant>,
    /// Send time of the packet that completes the evidence for `Suspect`.
    pub(crate) suspect: Option<Instant>,
    /// Send time of the packet after it, which completes it for `Down`.
    pub(crate) down: Option<Instant>,
}

impl SilenceOdds {
    pub(crate) fn new() -> Self {
        SilenceOdds {
            alone: UnansweredRate::new(ALONE_MEMORY),
            amid_traffic: UnansweredRate::new(AMID_TRAFFIC_MEMORY),
        }
    }

    /// Learns from a packet acknowledged (`answered_in_time`: within the
    /// suspect delay; a later ack means the first one was lost) or declared
    /// lost, if it is a trial (see [`SentPacket::trial`]). Packets sent while
    /// `Down` teach nothing: the length of an outage says nothing about
    /// random loss.
    pub(crate) fn record(&mut self, packet: &SentPacket, answered_in_time: bool) {
        if !packet.trial || packet.sent_in == PathState::Down {
            return;
        }
        self.rate_mut(packet).record(!answered_in_time);
    }

    /// Walks the unanswered packets, oldest first, multiplying the chance
    /// that each fails on a live link, until the run is less likely than
    /// `false_alarm`: that packet completes the evidence for `Suspect`, the
    /// next one for `Down`. A clean link needs one packet, then two.
    pub(crate) fn weigh<'a>(
        &self,
        unanswered: impl IntoIterator<Item = &'a SentPacket>,
        false_alarm: f32,
    ) -> Evidence {
        let mut evidence = Evidence::default();
        let mut chance = 1.0;
        for (counted, packet) in unanswered.into_iter().enumerate() {
            if evidence.suspect.is_some() {
                evidence.down = Some(packet.time_sent);
                break;
            }
            evidence.oldest.get_or_insert(packet.time_sent);
            chance *= self.rate(packet).rate;
            if chance <= f64::from(false_alarm) || counted + 1 >= MAX_EVIDENCE {
                evidence.suspect = Some(packet.time_sent);
            }
        }
        evidence
    }

    fn rate(&self, packet: &SentPacket) -> &UnansweredRate {
        if packet.alone {
            &self.alone
        } else {
            &self.amid_traffic
        }
    }

    fn rate_mut(&mut self, packet: &SentPacket) -> &mut UnansweredRate {
        if packet.alone {
            &mut self.alone
        } else {
            &mut self.amid_traffic
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::paths::rate::DeliveryRate;
    use crate::paths::sent::Fate;

    const MS: Duration = Duration::from_millis(1);

    fn packets(t0: Instant, alone: bool, count: u32) -> Vec<SentPacket> {
        (0..count)
            .map(|i| SentPacket {
                pn: u64::from(i),
                time_sent: t0 + i * 30 * MS,
                bytes: 60,
                sent_in: PathState::Up,
                alone,
                trial: true,
                rate: DeliveryRate::new().on_sent(t0, true),
                fate: Fate::InFlight,
            })
            .collect()
    }

    /// Odds of a link whose `count` packets of one kind were all answered.
    fn answered(t0: Instant, alone: bool, count: u32) -> SilenceOdds {
        let mut odds = SilenceOdds::new();
        let packet = packets(t0, alone, 1)[0];
        for _ in 0..count {
            odds.record(&packet, true);
        }
        odds
    }

    #[test]
    fn a_clean_link_is_suspect_after_one_packet_and_down_after_two() {
        let t0 = Instant::now();
        let run = packets(t0, true, 5);
        let evidence = answered(t0, true, 200).weigh(&run, 0.001);
        assert_eq!(
            evidence,
            Evidence {
                oldest: Some(t0),
                suspect: Some(t0),
                down: Some(t0 + 30 * MS)
            }
        );
    }

    #[test]
    fn a_young_link_is_not_taken_for_a_clean_one() {
        let t0 = Instant::now();
        let run = packets(t0, true, 20);
        // Three answered probes: (0 + 1) / (3 + 2) = 0.2, and 0.2^5 < 1/1000.
        let evidence = answered(t0, true, 3).weigh(&run, 0.001);
        assert_eq!(evidence.suspect, Some(run[4].time_sent));
        assert_eq!(
            SilenceOdds::new().weigh(&run, 0.001).suspect,
            Some(run[9].time_sent),
            "nothing known: even odds"
        );
    }

    #[test]
    fn a_link_losing_half_its_probes_needs_ten_in_a_row() {
        let t0 = Instant::now();
        let mut odds = SilenceOdds::new();
        let probe = packets(t0, true, 1)[0];
        // (8 + 1) / (16 + 2): exactly one half.
        for _ in 0..8 {
            odds.record(&probe, true);
            odds.record(&probe, false);
        }
        let run = packets(t0, true, 20);
        let evidence = odds.weigh(&run, 0.001);
        // 0.5^10 is just below 1/1000.
        assert_eq!(evidence.suspect, Some(run[9].time_sent));
        assert_eq!(evidence.down, Some(run[10].time_sent));
        assert!(
            odds.weigh(&run[..10], 0.001).down.is_none(),
            "no Down without the extra packet"
        );
    }

    #[test]
    fn probes_and_traffic_are_judged_by_their_own_record() {
        let t0 = Instant::now();
        let mut odds = answered(t0, false, 300);
        let probe = packets(t0, true, 1)[0];
        for _ in 0..50 {
            odds.record(&probe, true);
            odds.record(&probe, false);
        }
        let busy = packets(t0, false, 3);
        assert_eq!(
            odds.weigh(&busy, 0.001).suspect,
            Some(t0),
            "traffic that is always answered: one overdue packet is enough"
        );
        let idle = packets(t0, true, 20);
        assert!(odds.weigh(&idle, 0.001).suspect > Some(idle[5].time_sent));
    }

    #[test]
    fn packets_sent_while_down_teach_nothing() {
        let t0 = Instant::now();
        let mut odds = SilenceOdds::new();
        let mut probe = packets(t0, true, 1)[0];
        probe.sent_in = PathState::Down;
        for _ in 0..20 {
            odds.record(&probe, false);
        }
        let run = packets(t0, true, 20);
        assert_eq!(
            odds.weigh(&run, 0.001),
            SilenceOdds::new().weigh(&run, 0.001)
        );
    }

    #[test]
    fn evidence_is_capped() {
        let t0 = Instant::now();
        let mut odds = SilenceOdds::new();
        let probe = packets(t0, true, 1)[0];
        for _ in 0..20 {
            odds.record(&probe, false);
        }
        let run = packets(t0, true, 40);
        let evidence = odds.weigh(&run, 0.001);
        assert_eq!(evidence.suspect, Some(run[MAX_EVIDENCE - 1].time_sent));
        assert_eq!(evidence.down, Some(run[MAX_EVIDENCE].time_sent));
    }
}
