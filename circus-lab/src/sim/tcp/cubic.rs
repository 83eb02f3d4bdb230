//! CUBIC congestion control (RFC 9438) as Linux runs it by default: window
//! in segments, beta 0.7, C 0.4, fast convergence, the Reno-friendly
//! region, and HyStart's delay test ending slow start when the round trip
//! grows (so a deep bottleneck queue is not filled to overflow in slow
//! start). Recovery itself (how fast to send while repairing losses) is the
//! sender's, with proportional rate reduction; this module only says how
//! large the window is and how it grows.

use std::time::Duration;

/// Multiplicative decrease: Linux's 717/1024.
const BETA: f64 = 717.0 / 1024.0;
/// Cubic scaling constant, segments per second cubed.
const C: f64 = 0.4;
/// HyStart is not used below this window (Linux's `hystart_low_window`).
const HYSTART_LOW_WINDOW: f64 = 16.0;
/// RTT samples per round HyStart takes its minimum over.
const HYSTART_SAMPLES: u32 = 8;
/// HyStart's delay threshold is min RTT / 8, clamped to these bounds.
const HYSTART_MIN_DELAY: Duration = Duration::from_millis(4);
const HYSTART_MAX_DELAY: Duration = Duration::from_millis(16);

#[derive(Clone, Debug)]
pub struct Cubic {
    /// Congestion window, segments.
    cwnd: f64,
    ssthresh: f64,
    /// Window before the last reduction.
    w_max: f64,
    /// Start of the current growth epoch (the first ACK after a reduction).
    epoch_start: Option<Duration>,
    /// Time from the epoch's start to reach `origin` again, seconds.
    k: f64,
    /// The window the cubic curve plateaus at in this epoch.
    origin: f64,
    /// What Reno would have grown to in this epoch.
    reno_window: f64,
    /// Smallest RTT of the current round's first samples.
    round_min_rtt: Duration,
    round_samples: u32,
}

impl Cubic {
    pub fn new(initial_window: u32) -> Cubic {
        Cubic {
            cwnd: f64::from(initial_window),
            ssthresh: f64::INFINITY,
            w_max: 0.0,
            epoch_start: None,
            k: 0.0,
            origin: 0.0,
            reno_window: 0.0,
            round_min_rtt: Duration::MAX,
            round_samples: 0,
        }
    }

    /// The window in whole segments, at least one.
    pub fn window(&self) -> u64 {
        (self.cwnd as u64).max(1)
    }

    pub fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    pub fn ssthresh(&self) -> u64 {
        if self.ssthresh.is_finite() {
            self.ssthresh as u64
        } else {
            u64::MAX
        }
    }

    /// A new round trip starts (the first segment sent in the previous one
    /// was acknowledged): HyStart takes fresh samples.
    pub fn on_round_start(&mut self) {
        self.round_min_rtt = Duration::MAX;
        self.round_samples = 0;
    }

    /// `acked` segments were newly delivered outside recovery; `rtt` is the
    /// ACK's RTT sample if it had one, `min_rtt` the flow's smallest.
    pub fn on_ack(&mut self, now: Duration, acked: u64, rtt: Option<Duration>, min_rtt: Duration) {
        if acked == 0 {
            return;
        }
        let acked = acked as f64;
        if self.in_slow_start() {
            if let Some(rtt) = rtt {
                self.hystart(rtt, min_rtt);
            }
            self.cwnd = (self.cwnd + acked).min(self.ssthresh.max(self.cwnd));
            return;
        }
        let epoch_start = *self.epoch_start.get_or_insert_with(|| {
            if self.cwnd < self.w_max {
                self.k = ((self.w_max - self.cwnd) / C).cbrt();
                self.origin = self.w_max;
            } else {
                self.k = 0.0;
                self.origin = self.cwnd;
            }
            self.reno_window = self.cwnd;
            now
        });
        // Linux looks one min RTT ahead: the window for when this ACK's
        // segments are answered. Before any RTT sample (a loss before the
        // first measured ACK) there is nothing to look ahead by.
        let ahead = if min_rtt == Duration::MAX {
            Duration::ZERO
        } else {
            min_rtt
        };
        let t = now
            .saturating_sub(epoch_start)
            .saturating_add(ahead)
            .as_secs_f64();
        // At most 1.5x per round trip, as Linux clamps its growth.
        let target = (self.origin + C * (t - self.k).powi(3)).min(self.cwnd * 1.5);
        let cubic_growth = if target > self.cwnd {
            (target - self.cwnd) / self.cwnd
        } else {
            0.01 / self.cwnd
        };
        // Reno-friendly region: never grow slower than Reno with CUBIC's beta.
        self.reno_window += 3.0 * (1.0 - BETA) / (1.0 + BETA) * acked / self.cwnd;
        let reno_growth = (self.reno_window - self.cwnd).max(0.0) / self.cwnd;
        self.cwnd += cubic_growth.max(reno_growth) * acked;
    }

    /// HyStart's delay test: this round's minimum RTT is clearly above the
    /// flow's minimum, so the queue is building: leave slow start here.
    fn hystart(&mut self, rtt: Duration, min_rtt: Duration) {
        if self.cwnd < HYSTART_LOW_WINDOW || self.round_samples >= HYSTART_SAMPLES {
            return;
        }
        self.round_samples += 1;
        self.round_min_rtt = self.round_min_rtt.min(rtt);
        let threshold = (min_rtt / 8).clamp(HYSTART_MIN_DELAY, HYSTART_MAX_DELAY);
        if self.round_samples == HYSTART_SAMPLES && self.round_min_rtt >= min_rtt + threshold {
            self.ssthresh = self.cwnd;
        }
    }

    /// A loss was detected: remembers the window and returns the reduced one
    /// recovery works towards.
    pub fn on_congestion(&mut self) -> u64 {
        self.epoch_start = None;
        // Fast convergence: a flow that lost below its previous peak gives
        // up more, leaving room for newer flows.
        self.w_max = if self.cwnd < self.w_max {
            self.cwnd * (1.0 + BETA) / 2.0
        } else {
            self.cwnd
        };
        // Whole segments, as the window recovery ends with.
        self.ssthresh = (self.cwnd * BETA).floor().max(2.0);
        self.ssthresh as u64
    }

    /// The retransmission timer fired: a reduction, and slow start from one
    /// segment. As Linux's CUBIC on entering the loss state, the previous
    /// peak is forgotten: after a long outage the path may have changed, so
    /// growth beyond `ssthresh` starts slowly again instead of racing back
    /// towards the old window.
    pub fn on_timeout(&mut self, already_reduced: bool) {
        if !already_reduced {
            self.on_congestion();
        }
        self.w_max = 0.0;
        self.epoch_start = None;
        self.on_round_start();
        self.cwnd = 1.0;
    }

    /// Sets the window (proportional rate reduction during recovery, and
    /// `ssthresh` when recovery ends).
    pub fn set_window(&mut self, segments: u64) {
        self.cwnd = segments.max(1) as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(50);

    #[test]
    fn congestion_avoidance_before_any_rtt_sample_grows_without_overflow() {
        // A loss before the first measured ACK: min RTT still unknown (MAX).
        let mut cubic = Cubic::new(100);
        let ssthresh = cubic.on_congestion();
        cubic.set_window(ssthresh);
        cubic.on_ack(Duration::from_secs(1), 10, None, Duration::MAX);
        cubic.on_ack(Duration::from_secs(2), 10, None, Duration::MAX);
        assert!(cubic.window() >= ssthresh && cubic.window() < 2 * ssthresh);
    }

    #[test]
    fn slow_start_doubles_per_round_until_ssthresh() {
        let mut cubic = Cubic::new(10);
        cubic.on_ack(Duration::ZERO, 10, Some(RTT), RTT);
        assert_eq!(cubic.window(), 20);
        assert!(cubic.in_slow_start());
    }

    #[test]
    fn a_loss_cuts_to_beta_and_the_window_grows_back_to_its_peak() {
        // A window large enough for the cubic curve, not the Reno-friendly
        // line, to lead.
        let mut cubic = Cubic::new(1000);
        let ssthresh = cubic.on_congestion();
        assert_eq!(ssthresh, 700);
        cubic.set_window(ssthresh);
        assert!(!cubic.in_slow_start());
        // K = cbrt(300 / 0.4) = 9.1 s: back at 1000 segments by then, one
        // window of ACKs per round trip.
        let mut now = Duration::ZERO;
        while now < Duration::from_millis(9100) {
            let window = cubic.window();
            cubic.on_ack(now, window, Some(RTT), RTT);
            now += RTT;
        }
        let window = cubic.window();
        assert!((990..=1020).contains(&window), "window {window}");
    }

    #[test]
    fn hystart_leaves_slow_start_when_the_queue_builds() {
        let mut cubic = Cubic::new(32);
        cubic.on_round_start();
        for _ in 0..HYSTART_SAMPLES {
            cubic.on_ack(
                Duration::ZERO,
                1,
                Some(RTT + Duration::from_millis(20)),
                RTT,
            );
        }
        assert!(!cubic.in_slow_start());
    }

    #[test]
    fn a_timeout_restarts_from_one_segment() {
        let mut cubic = Cubic::new(40);
        cubic.on_timeout(false);
        assert_eq!(cubic.window(), 1);
        assert_eq!(cubic.ssthresh(), 28);
    }
}
