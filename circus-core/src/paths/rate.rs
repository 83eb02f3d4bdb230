//! Delivery-rate estimation of one link: bytes acknowledged over time.
//!
//! Follows draft-cheng-iccrg-delivery-rate-estimation (as BBR does): every
//! sent packet remembers how much had been delivered when it left; when it is
//! acknowledged, the bytes delivered since then over the longer of its send
//! and ack intervals is one rate sample. The estimate is the highest sample
//! over a time window, because samples taken while the sender had little to
//! send (app-limited) understate what the link can carry.

use std::time::{Duration, Instant};

/// Delivery state when a packet was sent; stored with the packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateSnapshot {
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
}

#[derive(Debug, Clone)]
pub(crate) struct DeliveryRate {
    /// Bytes acknowledged since the link was created.
    delivered: u64,
    delivered_time: Option<Instant>,
    first_sent_time: Option<Instant>,
    max: WindowedMax,
}

impl DeliveryRate {
    pub(crate) fn new() -> Self {
        DeliveryRate {
            delivered: 0,
            delivered_time: None,
            first_sent_time: None,
            max: WindowedMax::default(),
        }
    }

    /// Snapshot for a packet sent at `now`. With nothing in flight the
    /// intervals restart, so idle time is not counted as slow delivery.
    pub(crate) fn on_sent(&mut self, now: Instant, nothing_in_flight: bool) -> RateSnapshot {
        if nothing_in_flight {
            self.first_sent_time = Some(now);
            self.delivered_time = Some(now);
        }
        RateSnapshot {
            delivered: self.delivered,
            delivered_time: *self.delivered_time.get_or_insert(now),
            first_sent_time: *self.first_sent_time.get_or_insert(now),
        }
    }

    pub(crate) fn on_acked(&mut self, now: Instant, bytes: u64) {
        self.delivered += bytes;
        self.delivered_time = Some(now);
    }

    /// Takes one sample from the newest packet of an ack (after `on_acked`
    /// for all of the ack's packets). Samples over less than `min_rtt` are
    /// dropped: ack compression makes them overstate the rate.
    pub(crate) fn sample(
        &mut self,
        now: Instant,
        packet: &RateSnapshot,
        time_sent: Instant,
        min_rtt: Duration,
        window: Duration,
    ) {
        self.first_sent_time = Some(time_sent);
        let send_elapsed = time_sent.saturating_duration_since(packet.first_sent_time);
        let ack_elapsed = now.saturating_duration_since(packet.delivered_time);
        let interval = send_elapsed.max(ack_elapsed);
        if interval.is_zero() || interval < min_rtt {
            return;
        }
        let bytes = u128::from(self.delivered - packet.delivered);
        let rate = bytes * 1_000_000_000 / interval.as_nanos();
        self.max
            .update(now, u64::try_from(rate).unwrap_or(u64::MAX), window);
    }

    /// Estimated delivery rate in bytes per second; 0 until measured.
    pub(crate) fn bytes_per_second(&self) -> u64 {
        self.max.best()
    }
}

/// Running maximum over a time window, kept in three samples (Kathleen
/// Nichols' algorithm, as in Linux `lib/win_minmax.c`): the best, second best
/// and third best of successive sub-windows, so the maximum expires smoothly
/// without storing every sample.
#[derive(Debug, Clone, Default)]
struct WindowedMax {
    samples: Option<[(Instant, u64); 3]>,
}

impl WindowedMax {
    fn best(&self) -> u64 {
        self.samples.map_or(0, |s| s[0].1)
    }

    fn update(&mut self, now: Instant, value: u64, window: Duration) {
        let new = (now, value);
        let Some(s) = &mut self.samples else {
            self.samples = Some([new; 3]);
            return;
        };
        if value >= s[0].1 || now.saturating_duration_since(s[2].0) > window {
            *s = [new; 3];
            return;
        }
        if value >= s[1].1 {
            s[1] = new;
            s[2] = new;
        } else if value >= s[2].1 {
            s[2] = new;
        }
        let age = now.saturating_duration_since(s[0].0);
        if age > window {
            s[0] = s[1];
            s[1] = s[2];
            s[2] = new;
            if now.saturating_duration_since(s[0].0) > window {
                s[0] = s[1];
                s[1] = s[2];
                s[2] = new;
            }
        } else if s[1].0 == s[0].0 && age > window / 4 {
            s[1] = new;
            s[2] = new;
        } else if s[2].0 == s[1].0 && age > window / 2 {
            s[2] = new;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn windowed_max_keeps_the_best_sample_until_it_expires() {
        let t0 = Instant::now();
        let mut max = WindowedMax::default();
        max.update(t0, 100, 1000 * MS);
        max.update(t0 + 100 * MS, 40, 1000 * MS);
        assert_eq!(max.best(), 100);
        max.update(t0 + 600 * MS, 50, 1000 * MS);
        assert_eq!(max.best(), 100);
        max.update(t0 + 1200 * MS, 30, 1000 * MS);
        assert_eq!(
            max.best(),
            50,
            "100 expired, the next best of the window remains"
        );
    }

    #[test]
    fn steady_flow_measures_its_rate() {
        // 1000 bytes every ms, acked 20 ms later: 1 MB/s.
        let t0 = Instant::now();
        let mut rate = DeliveryRate::new();
        let mut in_flight = Vec::new();
        for i in 0..200u32 {
            let now = t0 + i * MS;
            while let Some(&(sent, snap)) = in_flight.first() {
                if sent + 20 * MS > now {
                    break;
                }
                in_flight.remove(0);
                rate.on_acked(now, 1000);
                rate.sample(now, &snap, sent, 20 * MS, 1000 * MS);
            }
            let snap = rate.on_sent(now, in_flight.is_empty());
            in_flight.push((now, snap));
        }
        let measured = rate.bytes_per_second();
        assert!((950_000..=1_100_000).contains(&measured), "{measured}");
    }
}
