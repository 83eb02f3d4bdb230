//! Route-flap damping for one link: every recent demotion doubles the good
//! probes the next return needs, so a link that keeps dying is held out for
//! longer and longer instead of bouncing in and out, and time forgives.

use std::time::Instant;

use super::PathConfig;

/// Demotions of a usable link to `Down` still remembered.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FlapDamping {
    /// Demotions counted at `last`, before forgiveness since then.
    flaps: u32,
    last: Option<Instant>,
}

impl FlapDamping {
    /// A usable link went `Down` at `now`.
    pub(crate) fn on_demotion(&mut self, now: Instant, config: &PathConfig) {
        let most = config.max_flap_doublings.saturating_add(1);
        self.flaps = self.remembered(now, config).saturating_add(1).min(most);
        self.last = Some(now);
    }

    /// Consecutive good probes that bring the link back at `now`: the
    /// configured count, doubled for each remembered demotion after the
    /// first (one outage is no flapping), up to `max_flap_doublings`.
    pub(crate) fn probes_to_return(&self, now: Instant, config: &PathConfig) -> u32 {
        let doublings = self
            .remembered(now, config)
            .saturating_sub(1)
            .min(config.max_flap_doublings)
            .min(u32::BITS - 1);
        config.good_probes_to_return.saturating_mul(1 << doublings)
    }

    /// Demotions remembered at `now`: one is forgiven per `flap_decay`
    /// since the last.
    fn remembered(&self, now: Instant, config: &PathConfig) -> u32 {
        let Some(last) = self.last else {
            return 0;
        };
        let decay = config.flap_decay.as_nanos().max(1);
        let forgiven = now.saturating_duration_since(last).as_nanos() / decay;
        self.flaps
            .saturating_sub(u32::try_from(forgiven).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_recent_demotion_doubles_the_probes_up_to_the_cap() {
        let config = PathConfig::default();
        let t0 = Instant::now();
        let mut damping = FlapDamping::default();
        assert_eq!(damping.probes_to_return(t0, &config), 3);
        let expected = [3, 6, 12, 24, 24];
        for (i, probes) in expected.into_iter().enumerate() {
            let now = t0 + Duration::from_secs(i as u64);
            damping.on_demotion(now, &config);
            assert_eq!(
                damping.probes_to_return(now, &config),
                probes,
                "demotion {i}"
            );
        }
    }

    #[test]
    fn time_forgives_one_demotion_per_decay_period() {
        let config = PathConfig::default();
        let t0 = Instant::now();
        let mut damping = FlapDamping::default();
        for _ in 0..3 {
            damping.on_demotion(t0, &config);
        }
        let after = |periods: u32| t0 + config.flap_decay * periods;
        assert_eq!(damping.probes_to_return(after(0), &config), 12);
        assert_eq!(damping.probes_to_return(after(1), &config), 6);
        assert_eq!(damping.probes_to_return(after(2), &config), 3);
        damping.on_demotion(after(2), &config);
        assert_eq!(
            damping.probes_to_return(after(2), &config),
            6,
            "a demotion adds to what is still remembered"
        );
    }
}
