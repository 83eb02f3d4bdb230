//! Does a figure grow without bound? A pure judgement over a sampled series,
//! so it is tested on synthetic series rather than on hour-long runs.
//!
//! A daemon's memory and descriptors rise at start (buffers, sockets, the
//! first handshake) and then should stay flat, give or take what the flaps
//! of the moment hold open. So the first fifth of the samples is left out
//! as warm-up, and the rest is judged two ways that must agree:
//! - the median of its last third against the median of its first third
//!   (medians, so one spike at either end decides nothing);
//! - the least-squares slope over all of it, projected over its span (so a
//!   step that happened once and stayed is told from a steady climb only
//!   when both say "up" by more than the tolerance).
//!
//! The figure grows when both exceed the tolerance: the larger of an
//! absolute amount and a fraction of the first third's median.

use serde::Serialize;

/// Fraction of the samples left out at the start as warm-up.
const WARMUP_FRACTION: f64 = 0.2;
/// Fewer samples after warm-up than this and nothing is judged: thirds of
/// fewer than three samples have no meaningful median.
pub const MIN_JUDGED_SAMPLES: usize = 9;

/// How much a figure may rise between the first and the last third of a
/// run before it counts as growing.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Tolerance {
    /// In the figure's own unit (KiB, descriptors, threads).
    pub absolute: f64,
    /// Fraction of the first third's median.
    pub relative: f64,
}

impl Tolerance {
    /// The rise allowed for a figure whose first third's median is `base`.
    pub fn allowed(&self, base: f64) -> f64 {
        self.absolute.max(self.relative * base.abs())
    }
}

/// The judgement of one series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Growth {
    /// Samples judged (after warm-up).
    pub judged: usize,
    pub first_third_median: f64,
    pub last_third_median: f64,
    /// Least-squares slope, in the figure's unit per hour.
    pub slope_per_hour: f64,
    /// The rise the slope predicts over the judged span.
    pub projected_rise: f64,
    /// The rise the tolerance allows.
    pub allowed: f64,
    /// Whether both the medians and the slope rose by more than `allowed`.
    pub grows: bool,
}

/// Judges `series` (time in seconds, value); `None` when there are too few
/// samples after warm-up to say anything.
pub fn judge(series: &[(f64, f64)], tolerance: Tolerance) -> Option<Growth> {
    let skip = (series.len() as f64 * WARMUP_FRACTION).ceil() as usize;
    let judged = series.get(skip..)?;
    if judged.len() < MIN_JUDGED_SAMPLES {
        return None;
    }
    let third = judged.len() / 3;
    let values = |part: &[(f64, f64)]| part.iter().map(|&(_, v)| v).collect::<Vec<_>>();
    let first_third_median = median(values(&judged[..third]));
    let last_third_median = median(values(&judged[judged.len() - third..]));
    let slope = slope(judged);
    let span = judged[judged.len() - 1].0 - judged[0].0;
    let projected_rise = slope * span;
    let allowed = tolerance.allowed(first_third_median);
    Some(Growth {
        judged: judged.len(),
        first_third_median,
        last_third_median,
        slope_per_hour: slope * 3600.0,
        projected_rise,
        allowed,
        grows: last_third_median - first_third_median > allowed && projected_rise > allowed,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Least-squares slope of value over time; 0 when all times are equal.
fn slope(series: &[(f64, f64)]) -> f64 {
    let n = series.len() as f64;
    let mean_t = series.iter().map(|&(t, _)| t).sum::<f64>() / n;
    let mean_v = series.iter().map(|&(_, v)| v).sum::<f64>() / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for &(t, v) in series {
        covariance += (t - mean_t) * (v - mean_v);
        variance += (t - mean_t) * (t - mean_t);
    }
    if variance > 0.0 {
        covariance / variance
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// RSS-like: 20 MiB in KiB, allowed to rise 2 MiB or 10 %.
    const RSS: Tolerance = Tolerance {
        absolute: 2048.0,
        relative: 0.1,
    };
    /// One sample every 5 s for 30 minutes.
    const SAMPLES: usize = 360;

    fn series(value: impl Fn(usize, f64) -> f64) -> Vec<(f64, f64)> {
        (0..SAMPLES)
            .map(|i| {
                let t = i as f64 * 5.0;
                (t, value(i, t))
            })
            .collect()
    }

    #[test]
    fn a_flat_series_does_not_grow() {
        let growth = judge(&series(|_, _| 20_480.0), RSS).unwrap();
        assert!(!growth.grows, "{growth:?}");
        assert_eq!(growth.slope_per_hour, 0.0);
    }

    #[test]
    fn a_noisy_flat_series_with_a_warmup_climb_and_spikes_does_not_grow() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let noise: Vec<f64> = (0..SAMPLES)
            .map(|_| rng.random_range(-1500.0..1500.0))
            .collect();
        let growth = judge(
            &series(|i, _| {
                // Climbs to 20 MiB in the first minute, then wobbles, with
                // a 6 MiB spike every few minutes (a burst of queued packets).
                let base = 20_480.0 * (i as f64 / 12.0).min(1.0);
                let spike = if i % 50 == 49 { 6144.0 } else { 0.0 };
                base + noise[i] + spike
            }),
            RSS,
        )
        .unwrap();
        assert!(!growth.grows, "{growth:?}");
    }

    #[test]
    fn a_small_step_that_stays_is_not_a_leak() {
        // A 1 MiB step halfway (a pool grew once): within tolerance.
        let small = judge(
            &series(|i, _| 20_480.0 + if i > 180 { 1024.0 } else { 0.0 }),
            RSS,
        )
        .unwrap();
        assert!(!small.grows, "{small:?}");
    }

    #[test]
    fn a_leaking_series_grows() {
        // 16 KiB more every sample (5.6 MiB in 30 minutes), under noise of
        // about as much as 60 samples' worth of leak.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let noise: Vec<f64> = (0..SAMPLES)
            .map(|_| rng.random_range(-500.0..500.0))
            .collect();
        let growth = judge(&series(|i, _| 20_480.0 + 16.0 * i as f64 + noise[i]), RSS).unwrap();
        assert!(growth.grows, "{growth:?}");
        assert!((growth.slope_per_hour - 16.0 * 720.0).abs() < 1000.0);
    }

    #[test]
    fn leaking_descriptors_grow() {
        let fds = Tolerance {
            absolute: 3.0,
            relative: 0.0,
        };
        // One descriptor lost every 20 samples (a socket per flap not closed).
        let growth = judge(&series(|i, _| 12.0 + (i / 20) as f64), fds).unwrap();
        assert!(growth.grows, "{growth:?}");
        // Flapping between 11 and 13 as links go down and up: flat.
        let flapping = judge(&series(|i, _| 12.0 + [0.0, 1.0, -1.0][i % 3]), fds).unwrap();
        assert!(!flapping.grows, "{flapping:?}");
    }

    #[test]
    fn too_few_samples_are_not_judged() {
        let short: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, i as f64 * 1e6)).collect();
        assert_eq!(judge(&short, RSS), None);
        assert_eq!(judge(&[], RSS), None);
    }
}
