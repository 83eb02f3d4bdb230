//! Time series and distributions for the plots.
//!
//! Two resolutions: the whole run in coarse bins (100 ms by default, a
//! readable line over minutes), and a window around each timeline event in
//! fine bins (10 ms), where an outage of a few tens of milliseconds shows.
//! Fine bins exist only inside the windows, so memory stays bounded by the
//! number of events, not the run's length.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Delivery, MetricsConfig, RunLogs};
use crate::traffic::MonoNanos;

/// Probes sent during one time bin and how they fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesBin {
    /// Start of the bin, seconds since the scenario's start (negative for a
    /// window that opens before it).
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

/// The probes sent around one timeline event, in fine bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventWindow {
    /// The event's time, seconds since the scenario's start.
    pub at_s: f64,
    /// From `at_s` - [`MetricsConfig::event_window`] to `at_s` + the same,
    /// bins of [`SystemSeries::window_bin`], the first starting at the
    /// window's start.
    pub bins: Vec<SeriesBin>,
}

/// What the plots show of one system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSeries {
    pub bin: Duration,
    /// Probes grouped by send time, one entry per bin from the start.
    pub bins: Vec<SeriesBin>,
    /// (latency ms, share of the probes *sent* that arrived within that
    /// latency), ascending. A lost probe counts as an infinite latency, so
    /// the curve ends at the delivered share, not at 1: a system that lost
    /// 20 % tops out at 0.8. At most [`CDF_POINTS`] + 1 points.
    pub latency_cdf: Vec<(f64, f64)>,
    /// Width of the bins of [`SystemSeries::windows`].
    pub window_bin: Duration,
    /// One window per timeline event, in the timeline's order, for the
    /// first [`MetricsConfig::event_windows`] events.
    pub windows: Vec<EventWindow>,
}

/// How many events get a window by default (see
/// [`MetricsConfig::event_windows`]).
pub const EVENT_WINDOWS: usize = 8;

/// Resolution of the latency CDF: enough for a smooth curve on a plot.
pub const CDF_POINTS: usize = 500;

/// Bins the probes of one run by send time, computes the latency CDF and
/// the fine windows around the first of `run.events`.
pub fn system_series(run: &RunLogs<'_>, config: &MetricsConfig) -> SystemSeries {
    let delivery = run.delivery();
    let bin_ns = config.series_bin.as_nanos().max(1);
    let bin_count = delivery.sent_at().last().map_or(0, |&last| {
        (since(run.origin, last).max(0) as u128 / bin_ns) as usize + 1
    });
    // Probes sent before the origin (none in practice) go to the first bin.
    let bins = binned(
        probes(&delivery).map(|(sent, latency)| (since(run.origin, sent).max(0), latency)),
        0,
        config.series_bin,
        bin_count,
    );
    let mut delivered_ns: Vec<u64> = probes(&delivery)
        .filter_map(|(_, latency)| latency)
        .collect();
    delivered_ns.sort_unstable();
    let windows = run
        .events
        .iter()
        .take(config.event_windows)
        .map(|event| event_window(&delivery, run.origin, event.at, config))
        .collect();
    SystemSeries {
        bin: config.series_bin,
        bins,
        latency_cdf: cdf(&delivered_ns, delivery.sent_count()),
        window_bin: config.event_window_bin,
        windows,
    }
}

/// The fine bins of the window around an event at `at` since `origin`.
fn event_window(
    delivery: &Delivery<'_>,
    origin: MonoNanos,
    at: Duration,
    config: &MetricsConfig,
) -> EventWindow {
    let half = config.event_window.as_nanos() as i128;
    let bin = config.event_window_bin.max(Duration::from_nanos(1));
    let count = (2 * half / bin.as_nanos() as i128) as usize;
    let from = at.as_nanos() as i128 - half;
    EventWindow {
        at_s: at.as_secs_f64(),
        bins: binned(
            probes(delivery).map(|(sent, latency)| (since(origin, sent), latency)),
            from,
            bin,
            count,
        ),
    }
}

/// Each probe's send time and, if it arrived, its one-way latency in ns.
fn probes<'d>(delivery: &'d Delivery<'_>) -> impl Iterator<Item = (MonoNanos, Option<u64>)> + 'd {
    delivery
        .sent_at()
        .iter()
        .zip(delivery.first_received())
        .map(|(&sent, received)| {
            let latency = received.map(|r| r.saturating_since(sent).as_nanos() as u64);
            (sent, latency)
        })
}

/// Nanoseconds from `origin` to `time`, negative if `time` came first.
fn since(origin: MonoNanos, time: MonoNanos) -> i128 {
    i128::from(time.0) - i128::from(origin.0)
}

/// `count` bins of `width` from `from` (ns since the scenario's start),
/// filled with `probes` (send time in ns since the start, latency in ns);
/// probes outside the bins are left out.
fn binned(
    probes: impl Iterator<Item = (i128, Option<u64>)>,
    from: i128,
    width: Duration,
    count: usize,
) -> Vec<SeriesBin> {
    let width_ns = width.as_nanos().max(1) as i128;
    let mut sent = vec![0u64; count];
    let mut latencies_ns: Vec<Vec<u64>> = vec![Vec::new(); count];
    for (sent_ns, latency) in probes {
        let offset = sent_ns - from;
        let Some(bin) = usize::try_from(offset.div_euclid(width_ns))
            .ok()
            .filter(|&bin| bin < count)
        else {
            continue;
        };
        sent[bin] += 1;
        latencies_ns[bin].extend(latency);
    }
    sent.into_iter()
        .zip(latencies_ns)
        .enumerate()
        .map(|(index, (sent, mut latencies))| {
            latencies.sort_unstable();
            SeriesBin {
                start_s: (from + index as i128 * width_ns) as f64 / 1e9,
                sent,
                delivered: latencies.len() as u64,
                latency_p50_ms: quantile_ms(&latencies, 0.5),
                latency_p99_ms: quantile_ms(&latencies, 0.99),
            }
        })
        .collect()
}

/// The nearest-rank quantile of ascending nanosecond values, in ms.
fn quantile_ms(sorted_ns: &[u64], quantile: f64) -> Option<f64> {
    let rank = (quantile * sorted_ns.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_ns.len().max(1)) - 1;
    sorted_ns.get(index).map(|&ns| ns as f64 / 1e6)
}

/// The CDF of `sent` probes whose delivered ones took `delivered_ns`
/// (ascending): the shares are of all probes sent, so the last point is the
/// delivered share.
fn cdf(delivered_ns: &[u64], sent: u64) -> Vec<(f64, f64)> {
    if delivered_ns.is_empty() || sent == 0 {
        return Vec::new();
    }
    let delivered_share = delivered_ns.len() as f64 / sent as f64;
    let points = CDF_POINTS.min(delivered_ns.len());
    (0..=points)
        .map(|i| {
            let share = i as f64 / points as f64;
            let latency = quantile_ms(delivered_ns, share).unwrap_or_default();
            (latency, share * delivered_share)
        })
        .collect()
}
