//! Smoothed RTT, RTT variance and minimum RTT of one link (RFC 9002 section 5).

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub(crate) struct RttEstimator {
    latest: Duration,
    smoothed: Duration,
    var: Duration,
    min: Duration,
    /// False until the first sample, and again after the link went down: the
    /// next sample then replaces the old estimates instead of being averaged
    /// into them, because a link that comes back may have a new route.
    has_sample: bool,
}

impl RttEstimator {
    pub(crate) fn new(initial: Duration) -> Self {
        RttEstimator {
            latest: initial,
            smoothed: initial,
            var: initial / 2,
            min: initial,
            has_sample: false,
        }
    }

    /// Folds in one sample; `ack_delay` (already capped at max_ack_delay) is
    /// the time the receiver held the ack, which is not path delay.
    pub(crate) fn update(&mut self, latest: Duration, ack_delay: Duration) {
        self.latest = latest;
        if !self.has_sample {
            self.has_sample = true;
            self.min = latest;
            self.smoothed = latest;
            self.var = latest / 2;
            return;
        }
        self.min = self.min.min(latest);
        let adjusted = if latest >= self.min + ack_delay {
            latest - ack_delay
        } else {
            latest
        };
        let deviation = self.smoothed.abs_diff(adjusted);
        self.var = (self.var * 3 + deviation) / 4;
        self.smoothed = (self.smoothed * 7 + adjusted) / 8;
    }

    /// Keeps the current values for timers, but lets the next sample start afresh.
    pub(crate) fn restart(&mut self) {
        self.has_sample = false;
    }

    /// Whether the estimates come from a sample since the last restart.
    pub(crate) fn has_sample(&self) -> bool {
        self.has_sample
    }

    pub(crate) fn smoothed(&self) -> Duration {
        self.smoothed
    }

    pub(crate) fn var(&self) -> Duration {
        self.var
    }

    pub(crate) fn min(&self) -> Duration {
        self.min
    }

    pub(crate) fn latest(&self) -> Duration {
        self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_sample_sets_all_estimates() {
        let mut rtt = RttEstimator::new(333 * MS);
        rtt.update(30 * MS, Duration::ZERO);
        assert_eq!(
            (rtt.smoothed(), rtt.var(), rtt.min()),
            (30 * MS, 15 * MS, 30 * MS)
        );
    }

    #[test]
    fn ack_delay_is_removed_only_when_it_cannot_undercut_min_rtt() {
        let mut rtt = RttEstimator::new(333 * MS);
        rtt.update(30 * MS, Duration::ZERO);
        rtt.update(40 * MS, 10 * MS);
        assert_eq!(rtt.smoothed(), 30 * MS, "40 ms minus 10 ms of ack delay");
        rtt.update(35 * MS, 10 * MS);
        assert_eq!(
            rtt.smoothed(),
            (30 * MS * 7 + 35 * MS) / 8,
            "35 - 10 < min 30: kept"
        );
    }

    #[test]
    fn steady_samples_shrink_the_variance() {
        let mut rtt = RttEstimator::new(333 * MS);
        for _ in 0..50 {
            rtt.update(30 * MS, Duration::ZERO);
        }
        assert!(rtt.var() < MS / 10);
        assert_eq!(rtt.smoothed(), 30 * MS);
    }

    #[test]
    fn restart_replaces_estimates_with_the_next_sample() {
        let mut rtt = RttEstimator::new(333 * MS);
        rtt.update(30 * MS, Duration::ZERO);
        rtt.restart();
        assert_eq!(rtt.smoothed(), 30 * MS, "old estimate still sizes timers");
        rtt.update(200 * MS, Duration::ZERO);
        assert_eq!((rtt.smoothed(), rtt.min()), (200 * MS, 200 * MS));
    }
}
