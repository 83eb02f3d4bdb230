//! Bandwidth probing: how full a link may be kept, round by round.
//!
//! A link's in-flight cap is a multiple of its pipe size, delivery rate x
//! min RTT, and the delivery rate is what that cap lets through per round
//! trip. The two can hold each other below the link's capacity: when the
//! round trip is longer than the min RTT for a reason this link's queue does
//! not explain (its acks wait on the way back behind the other direction's
//! data), a cap of 1.5 pipes lets through 1.5 pipes per 1.5 min RTTs, which
//! is exactly the rate measured, and nothing ever asks for more. In the
//! simulator, TCP both ways over one 50 Mbit/s link held one direction at
//! 42 Mbit/s this way while the other reached 48.
//!
//! So, as BBR's ProbeBW does with its pacing gain, one round in
//! [`ROUNDS`] fills the link by [`PROBE_EIGHTHS`] more: a link with room
//! shows a higher delivery rate, which the rate's windowed max keeps, and
//! the cap grows with it. The next round fills it by [`DRAIN_EIGHTHS`] less,
//! so the queue the probe built on a full link drains again; half as much
//! as the probe added, since the plain cap already leaves room for half a
//! pipe of queue and a deeper cut would idle a link whose acks come late.

use std::time::{Duration, Instant};

/// Rounds (min RTTs) in one cycle: one probing, one draining, the rest at
/// the plain cap.
pub(crate) const ROUNDS: u32 = 8;

/// Eighths of a pipe added to the cap while probing.
pub(crate) const PROBE_EIGHTHS: i64 = 4;

/// Eighths of a pipe taken from the cap while draining.
pub(crate) const DRAIN_EIGHTHS: i64 = 2;

/// Where a link is in its probing cycle.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GainCycle {
    start: Option<Instant>,
    /// Eighths of a pipe added to the cap in the current round.
    extra_eighths: i64,
}

impl GainCycle {
    /// Moves the cycle to `now`, one round per `round` (the min RTT,
    /// floored at a millisecond so a zero RTT cannot stall it).
    pub(crate) fn advance(&mut self, now: Instant, round: Duration) {
        let start = *self.start.get_or_insert(now);
        let round = round.max(Duration::from_millis(1));
        let rounds = now.saturating_duration_since(start).as_nanos() / round.as_nanos();
        self.extra_eighths = match rounds % u128::from(ROUNDS) {
            0 => PROBE_EIGHTHS,
            1 => -DRAIN_EIGHTHS,
            _ => 0,
        };
    }

    /// Eighths of a pipe to add to the cap now (negative while draining).
    pub(crate) fn extra_eighths(&self) -> i64 {
        self.extra_eighths
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_round_probes_the_next_drains_the_rest_are_plain() {
        let t0 = Instant::now();
        let round = Duration::from_millis(10);
        let mut cycle = GainCycle::default();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut seen = Vec::new();
        for ms in (0..170).step_by(10) {
            cycle.advance(at(ms + 5), round);
            seen.push(cycle.extra_eighths());
        }
        let (p, d) = (PROBE_EIGHTHS, -DRAIN_EIGHTHS);
        assert_eq!(
            seen,
            [p, d, 0, 0, 0, 0, 0, 0, p, d, 0, 0, 0, 0, 0, 0, p],
            "cycle starts at the first advance"
        );
        let mut zero_rtt = GainCycle::default();
        zero_rtt.advance(t0, Duration::ZERO);
        zero_rtt.advance(at(1), Duration::ZERO);
        assert_eq!(zero_rtt.extra_eighths(), d, "a zero RTT counts as 1 ms");
    }
}
