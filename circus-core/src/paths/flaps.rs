//! Route-flap damping for one link: every recent demotion doubles the good
//! probes the next return needs and the interval between them, so a link
//! that keeps dying is held out for longer and longer instead of bouncing in
//! and out, and time forgives.

use std::time::{Duration, Instant};

use super::PathConfig;

/// Demotions of a usable link to `Down` still remembered.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FlapDamping {
    /// Demotions counted at `last`, before forgiveness since then.
    flaps: u32,
    last: Option<Instant>,
}

impl FlapDamping {
    /// The link failed at `now`: a `demotion` if it was usable and went
    /// `Down`, else a relapse while it was probing its way back (it went
    /// `Down` again or lost a probe). A relapse adds no flap (the link was
    /// not in use), but forgiveness starts over from it: a link held out
    /// while it keeps failing is not forgiven for the time it spent failing.
    pub(crate) fn on_failure(&mut self, now: Instant, demotion: bool, config: &PathConfig) {
        let most = config.max_flap_doublings.saturating_add(1);
        let remembered = self.remembered(now, config);
        if remembered == 0 && !demotion {
            return;
        }
        self.flaps = remembered.saturating_add(u32::from(demotion)).min(most);
        self.last = Some(now);
    }

    /// Consecutive good probes that bring the link back at `now`: the
    /// configured count, doubled per [`doublings`](Self::doublings).
    pub(crate) fn probes_to_return(&self, now: Instant, config: &PathConfig) -> u32 {
        config
            .good_probes_to_return
            .saturating_mul(1 << self.doublings(now, config))
    }

    /// Interval between the probes of a return at `now`: the configured
    /// one, doubled per [`doublings`](Self::doublings).
    pub(crate) fn return_probe_interval(&self, now: Instant, config: &PathConfig) -> Duration {
        config
            .return_probe_interval
            .saturating_mul(1 << self.doublings(now, config))
    }

    /// One for each remembered demotion after the first (one outage is no
    /// flapping), up to `max_flap_doublings`.
    fn doublings(&self, now: Instant, config: &PathConfig) -> u32 {
        self.remembered(now, config)
            .saturating_sub(1)
            .min(config.max_flap_doublings)
            .min(u32::BITS - 2)
    }

    /// Demotions remembered at `now`: one is forgiven per `flap_decay`
    /// since the last failure.
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
            damping.on_failure(now, true, &config);
            assert_eq!(
                damping.probes_to_return(now, &config),
                probes,
                "demotion {i}"
            );
        }
    }

    #[test]
    fn each_recent_demotion_doubles_the_interval_between_return_probes() {
        let config = PathConfig::default();
        let t0 = Instant::now();
        let mut damping = FlapDamping::default();
        let ms = Duration::from_millis;
        assert_eq!(damping.return_probe_interval(t0, &config), ms(20));
        for probes in [20, 40, 80, 160, 160] {
            damping.on_failure(t0, true, &config);
            assert_eq!(damping.return_probe_interval(t0, &config), ms(probes));
        }
    }

    #[test]
    fn a_relapse_while_probing_restarts_forgiveness_but_adds_no_flap() {
        let config = PathConfig::default();
        let t0 = Instant::now();
        let mut damping = FlapDamping::default();
        damping.on_failure(t0, false, &config);
        assert_eq!(
            damping.probes_to_return(t0, &config),
            3,
            "a new link failing its first probes has not flapped"
        );
        damping.on_failure(t0, true, &config);
        damping.on_failure(t0, true, &config);
        let relapse = t0 + config.flap_decay - Duration::from_millis(1);
        damping.on_failure(relapse, false, &config);
        assert_eq!(damping.probes_to_return(relapse, &config), 6);
        assert_eq!(
            damping.probes_to_return(t0 + config.flap_decay, &config),
            6,
            "not forgiven while it kept failing"
        );
        assert_eq!(
            damping.probes_to_return(relapse + config.flap_decay, &config),
            3
        );
    }

    /// The lab's link down 2 s of every 5 s once went `Down` again right
    /// after a return (a host pause): that false demotion must not hold
    /// every later return at the next doubling.
    #[test]
    fn a_false_demotion_in_a_five_second_rhythm_is_soon_forgiven() {
        let config = PathConfig::default();
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut damping = FlapDamping::default();
        damping.on_failure(t0, true, &config);
        damping.on_failure(t0 + secs(1), true, &config);
        let mut needed = Vec::new();
        for cycle in 1..=3 {
            let at = t0 + secs(5 * cycle);
            damping.on_failure(at, true, &config);
            needed.push(damping.probes_to_return(at, &config));
        }
        assert_eq!(needed, [6, 3, 3]);
    }

    #[test]
    fn time_forgives_one_demotion_per_decay_period() {
        let config = PathConfig::default();
        let t0 = Instant::now();
        let mut damping = FlapDamping::default();
        for _ in 0..3 {
            damping.on_failure(t0, true, &config);
        }
        let after = |periods: u32| t0 + config.flap_decay * periods;
        assert_eq!(damping.probes_to_return(after(0), &config), 12);
        assert_eq!(damping.probes_to_return(after(1), &config), 6);
        assert_eq!(damping.probes_to_return(after(2), &config), 3);
        damping.on_failure(after(2), true, &config);
        assert_eq!(
            damping.probes_to_return(after(2), &config),
            6,
            "a demotion adds to what is still remembered"
        );
    }
}
