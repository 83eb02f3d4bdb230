//! Queueing delay on the way back: how much later than their fastest the
//! peer's acks arrive on one link.
//!
//! A link's in-flight cap is sized from its delivery rate and minimum RTT.
//! When the other direction of the same link is busy (a download beside an
//! upload, the peer's bulk beside ours), every ack waits in that direction's
//! queue and the round trip grows by the wait. A cap sized for the minimum
//! RTT then cannot keep the forward direction busy: less is delivered per
//! round trip, the measured rate falls, the cap with it, and each direction
//! settles wherever its estimate happens to be (in sim, 78 % of one
//! 20 Mbit/s link with TCP both ways, and an up/down split that swung from
//! run to run). The cap must grow by that wait, but not by the forward
//! direction's own queue, which would only grow the queue.
//!
//! So the two are told apart: the acker stamps each ack with its clock.
//! The clocks differ by an unknown offset, yet the smallest (arrival -
//! stamp) over a window is that offset plus the base one-way delay, and any
//! excess over it is queueing on the way back. The window lets the floor
//! follow clock drift (tens of ppm: a millisecond over the two windows).

use std::time::{Duration, Instant};

/// How long a floor sample stands: the floor is the smallest of this
/// window's samples and the previous window's.
const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default)]
pub(crate) struct ReturnDelay {
    /// Smallest (arrival - stamp) of the current and the previous window,
    /// microseconds, wrapping (the offset between the clocks is arbitrary).
    floors: [Option<u32>; 2],
    window_start: Option<Instant>,
    /// Smoothed excess over the floor, microseconds.
    smoothed_us: u32,
}

impl ReturnDelay {
    /// One ack stamped `stamp_us` by the peer arrived at `now`, which is
    /// `local_us` on this end's clock.
    pub(crate) fn on_ack(&mut self, now: Instant, local_us: u32, stamp_us: u32) {
        let transit = local_us.wrapping_sub(stamp_us);
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= WINDOW {
            self.floors = [None, self.floors[0]];
            self.window_start = Some(now);
        }
        self.floors[0] = Some(self.floors[0].map_or(transit, |f| earlier(f, transit)));
        let floor = self
            .floors
            .iter()
            .flatten()
            .fold(transit, |a, &b| earlier(a, b));
        let excess = transit.wrapping_sub(floor);
        // 7/8 old + 1/8 new, as srtt: one delayed ack moves it little.
        self.smoothed_us = ((u64::from(self.smoothed_us) * 7 + u64::from(excess)) / 8) as u32;
    }

    /// Current queueing delay on the way back.
    pub(crate) fn delay(&self) -> Duration {
        Duration::from_micros(u64::from(self.smoothed_us))
    }

    /// Forgets everything: a link back from `Down` may have a new route.
    pub(crate) fn restart(&mut self) {
        *self = Self::default();
    }
}

/// The earlier of two wrapping microsecond values that lie within half the
/// wrap (35 minutes) of each other.
fn earlier(a: u32, b: u32) -> u32 {
    if (b.wrapping_sub(a) as i32) < 0 { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    /// Acks every ms for `ms` ms; the peer's clock is `offset` ahead (any
    /// value, wrapping), transit `base_us` plus `queue(i)` microseconds.
    fn feed(
        delay: &mut ReturnDelay,
        t0: Instant,
        from_ms: u32,
        ms: u32,
        offset: u32,
        base_us: u32,
        queue: impl Fn(u32) -> u32,
    ) {
        for i in from_ms..from_ms + ms {
            let local = i * 1000;
            let stamp = local.wrapping_sub(base_us + queue(i)).wrapping_add(offset);
            delay.on_ack(t0 + i * MS, local, stamp);
        }
    }

    #[test]
    fn a_steady_path_has_no_return_delay_whatever_the_clock_offset() {
        for offset in [0, 12_345, u32::MAX - 3, 1 << 31] {
            let mut delay = ReturnDelay::default();
            feed(&mut delay, Instant::now(), 0, 500, offset, 20_000, |_| 0);
            assert_eq!(delay.delay(), Duration::ZERO, "offset {offset}");
        }
    }

    #[test]
    fn a_queue_on_the_way_back_shows_as_its_wait() {
        let t0 = Instant::now();
        let mut delay = ReturnDelay::default();
        feed(&mut delay, t0, 0, 200, 77, 20_000, |_| 0);
        feed(&mut delay, t0, 200, 200, 77, 20_000, |_| 15_000);
        let got = delay.delay().as_micros();
        assert!((14_900..=15_000).contains(&got), "{got}");
    }

    #[test]
    fn the_floor_follows_a_drifting_clock_within_two_windows() {
        // The peer's clock falls behind 50 us per second (50 ppm): transit
        // grows without any queue.
        let t0 = Instant::now();
        let mut delay = ReturnDelay::default();
        feed(&mut delay, t0, 0, 60_000, 0, 20_000, |i| i / 20);
        assert!(
            delay.delay() <= Duration::from_millis(1),
            "{:?}",
            delay.delay()
        );
    }

    #[test]
    fn restart_forgets_the_floor() {
        let t0 = Instant::now();
        let mut delay = ReturnDelay::default();
        feed(&mut delay, t0, 0, 100, 0, 20_000, |_| 0);
        delay.restart();
        // A longer route after the restart is the new floor, not a queue.
        feed(&mut delay, t0, 100, 100, 0, 60_000, |_| 0);
        assert_eq!(delay.delay(), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn the_delay_is_never_more_than_the_largest_queue_seen(
            offset in any::<u32>(),
            base in 0u32..1_000_000,
            queues in proptest::collection::vec(0u32..2_000_000, 1..300),
        ) {
            let t0 = Instant::now();
            let mut delay = ReturnDelay::default();
            delay.on_ack(t0, 0, 0u32.wrapping_sub(base).wrapping_add(offset));
            for (i, q) in queues.iter().enumerate() {
                let local = (i as u32 + 1) * 1000;
                let stamp = local.wrapping_sub(base + q).wrapping_add(offset);
                delay.on_ack(t0 + (i as u32 + 1) * MS, local, stamp);
            }
            let largest = *queues.iter().max().unwrap();
            prop_assert!(delay.delay() <= Duration::from_micros(u64::from(largest)));
        }
    }
}
