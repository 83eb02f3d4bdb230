//! Time series and distributions for the plots.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{MetricsConfig, RunLogs};

/// Probes sent during one time bin and how they fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesBin {
    /// Start of the bin, seconds since the scenario's start.
    pub start_s: f64,
    pub sent: u64,
    pub delivered: u64,
    /// Median and 99th percentile one-way latency of the delivered probes.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

impl SeriesBin {
    /// Share of this bin's probes that arrived; `None` if none was sent.
    pub fn delivery_ratio(&self) -> Option<f64> {
        (self.sent > 0).then(|| self.delivered as f64 / self.sent as f64)
    }
}

/// What the plots show of one system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSeries {
    pub bin: Duration,
    /// Probes grouped by send time, one entry per bin from the start.
    pub bins: Vec<SeriesBin>,
    /// (latency ms, share of delivered probes with at most that latency),
    /// ascending; at most [`CDF_POINTS`] + 1 points.
    pub latency_cdf: Vec<(f64, f64)>,
}

/// Resolution of the latency CDF: enough for a smooth curve on a plot.
pub const CDF_POINTS: usize = 500;

/// Bins the probes of one run by send time and computes the latency CDF.
pub fn system_series(run: &RunLogs<'_>, config: &MetricsConfig) -> SystemSeries {
    let delivery = run.delivery();
    let bin_ns = config.series_bin.as_nanos().max(1);
    let bin_of = |sent: crate::traffic::MonoNanos| {
        (sent.saturating_since(run.origin).as_nanos() / bin_ns) as usize
    };
    let bin_count = delivery
        .sent_at()
        .last()
        .map_or(0, |&last| bin_of(last) + 1);
    let mut sent = vec![0u64; bin_count];
    let mut latencies_ns: Vec<Vec<u64>> = vec![Vec::new(); bin_count];
    let mut all_latencies_ns = Vec::with_capacity(delivery.delivered_count() as usize);
    for (&sent_at, received) in delivery.sent_at().iter().zip(delivery.first_received()) {
        let bin = bin_of(sent_at);
        sent[bin] += 1;
        if let Some(received) = received {
            let latency = received.saturating_since(sent_at).as_nanos() as u64;
            latencies_ns[bin].push(latency);
            all_latencies_ns.push(latency);
        }
    }
    let bins = sent
        .into_iter()
        .zip(latencies_ns)
        .enumerate()
        .map(|(index, (sent, mut latencies))| {
            latencies.sort_unstable();
            SeriesBin {
                start_s: (config.series_bin * index as u32).as_secs_f64(),
                sent,
                delivered: latencies.len() as u64,
                latency_p50_ms: quantile_ms(&latencies, 0.5),
                latency_p99_ms: quantile_ms(&latencies, 0.99),
            }
        })
        .collect();
    all_latencies_ns.sort_unstable();
    SystemSeries {
        bin: config.series_bin,
        bins,
        latency_cdf: cdf(&all_latencies_ns),
    }
}

/// The nearest-rank quantile of ascending nanosecond values, in ms.
fn quantile_ms(sorted_ns: &[u64], quantile: f64) -> Option<f64> {
    let rank = (quantile * sorted_ns.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_ns.len().max(1)) - 1;
    sorted_ns.get(index).map(|&ns| ns as f64 / 1e6)
}

fn cdf(sorted_ns: &[u64]) -> Vec<(f64, f64)> {
    if sorted_ns.is_empty() {
        return Vec::new();
    }
    let points = CDF_POINTS.min(sorted_ns.len());
    (0..=points)
        .map(|i| {
            let share = i as f64 / points as f64;
            let latency = quantile_ms(sorted_ns, share).unwrap_or_default();
            (latency, share)
        })
        .collect()
}
