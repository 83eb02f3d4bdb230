//! From one system's logs to the figures of `summary.json`.
//!
//! Pure functions: the same logs give the same figures, whether they come from
//! a run in namespaces or from the simulator.
//!
//! - [`delivery`]: which probe arrived when, duplicates, reordering, latency.
//! - [`events`]: which event each loss belongs to; outage and recovery of
//!   each timeline event.
//! - [`logs`]: one system's logs, the same from a real run and from `sim`.
//! - [`series`]: delivery and latency over time, in fine bins around each
//!   event, and the latency CDF (lost probes included), for plots.
//! - [`pauses`]: the host's pauses, left out of every gap.
//! - [`commands`]: how the user's own commands ended.
//!
//! Definitions (all from the receiver's view of the probe stream):
//! - delivery ratio: distinct sequence numbers received / probes sent;
//!   `lost` = sent - distinct received; `duplicates` = extra copies received.
//! - latency: receive time - send time of the first copy of each probe
//!   (one-way; both clocks are the host's CLOCK_MONOTONIC).
//! - reordered ratio: share of first copies that arrived after a higher
//!   sequence number of the same flow (a flow is what one connection sees;
//!   packets of different flows may pass each other harmlessly).
//! - outage and recovery: see [`events`]. The run's `max_outage_ms` is its
//!   longest gap between any two deliveries; `max_flow_outage_ms` the longest
//!   one flow waited beyond its normal spacing (see
//!   [`Delivery::longest_flow_gap`]), which per-connection spreading cannot
//!   hide. Every gap leaves out the time the host paused the lab (see
//!   [`pauses`]); `host_pauses` says how much that was.
//! - TCP goodput: bytes received by all bulk flows x 8 / the measurement window.
//! - link share: each link's share of the bytes all links carried.

pub mod commands;
pub mod delivery;
pub mod events;
pub mod logs;
pub mod pauses;
pub mod series;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::scenario::Event;
use crate::traffic::MonoNanos;
use crate::traffic::probe::ProbeLog;
use crate::traffic::tcp::TcpLog;

pub use commands::CommandReport;
pub use delivery::Delivery;
pub use events::EventMetrics;
pub use logs::{StreamLogs, SystemLogs};
pub use pauses::{HostPauses, PauseSummary};
pub use series::{EventWindow, SeriesBin, SystemSeries, system_series};

/// One entry of the scenario timeline, as the metrics need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEvent {
    /// Since the scenario's start.
    pub at: Duration,
    pub link: String,
    /// The action's name as written in the scenario ("blackhole", "down", ...).
    pub action: String,
    /// For how long the action holds, if it is undone automatically.
    pub duration: Option<Duration>,
}

impl From<&Event> for TimelineEvent {
    fn from(event: &Event) -> Self {
        Self {
            at: event.at,
            link: event.link.clone(),
            action: event.action.name().to_string(),
            duration: event.duration,
        }
    }
}

/// What one link carried during the run (both directions), from the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCounters {
    pub link: String,
    pub bytes: u64,
    pub packets: u64,
}

/// Everything measured for one system in one run.
#[derive(Debug, Clone, Copy)]
pub struct RunLogs<'a> {
    /// CLOCK_MONOTONIC at the scenario's time zero (event times count from it).
    pub origin: MonoNanos,
    pub probes: &'a ProbeLog,
    /// The bulk TCP flows, if the scenario had any.
    pub tcp: Option<&'a TcpLog>,
    pub events: &'a [TimelineEvent],
    pub links: &'a [LinkCounters],
    /// `None` where pauses were not watched for (the simulator has none).
    pub host_pauses: Option<&'a HostPauses>,
    /// The link (by name) each probe flow was pinned to: flow `f` went over
    /// `flow_links[f % len]`. `None` for systems that choose links per
    /// packet, whose losses are attributed without knowing the link (see
    /// [`events`]).
    pub flow_links: Option<&'a [String]>,
}

impl<'a> RunLogs<'a> {
    /// The probe stream's view, host pauses left out of its gaps.
    pub fn delivery(&self) -> Delivery<'a> {
        Delivery::analyse(self.probes, self.host_pauses.unwrap_or(HostPauses::none()))
    }
}

/// Knobs of the event attribution and the time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Losses sent up to this long before an event can belong to it: probes
    /// already queued on a link when it died. 200 ms covers a 150 ms one-way
    /// delay line plus queueing.
    pub in_flight_lookback: Duration,
    /// An event without `for` is in effect until the next event on its link,
    /// at most this long: a change left in place longer is the link's new
    /// normal (see [`events`]).
    pub attribution_max: Duration,
    /// After an event ends, its losses go on being counted this long: queues
    /// draining, failure detectors taking the link back, neighbours resolved
    /// again (see [`events`]).
    pub recovery_allowance: Duration,
    /// Width of a time-series bin in the plots.
    pub series_bin: Duration,
    /// The zoomed plots cover this long before and after each event.
    pub event_window: Duration,
    /// Width of a bin in those windows: 10 ms shows an outage of 10-50 ms
    /// that a 100 ms bin averages away, and still holds 10 probes at the
    /// default 1000 probes per second.
    pub event_window_bin: Duration,
    /// Windows are computed for the first this many events only: each costs
    /// a pass over the probes, and a plot of more rows is not read at a
    /// glance (a timeline with `every` can have thousands of events).
    pub event_windows: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            in_flight_lookback: Duration::from_millis(200),
            attribution_max: Duration::from_secs(10),
            recovery_allowance: Duration::from_secs(1),
            series_bin: Duration::from_millis(100),
            event_window: Duration::from_secs(1),
            event_window_bin: Duration::from_millis(10),
            event_windows: series::EVENT_WINDOWS,
        }
    }
}

/// One-way latency percentiles in milliseconds; `null` when nothing arrived.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// The probe stream's figures in one direction. Field order is the
/// serialized key order: the documented keys first, in DESIGN.md's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamMetrics {
    pub delivery_ratio: f64,
    pub lost: u64,
    pub duplicates: u64,
    /// Longest gap between deliveries anywhere in the run.
    pub max_outage_ms: f64,
    /// Longest time one flow of the probe stream went without a delivery
    /// beyond its normal spacing (see [`Delivery::longest_flow_gap`]).
    pub max_flow_outage_ms: f64,
    /// Longest recovery of any event.
    pub max_recovery_ms: f64,
    pub latency_ms: LatencyMs,
    pub reordered_ratio: f64,
    pub events: Vec<EventMetrics>,
    /// Lost probes no event answers for (see [`events`]): with the events'
    /// `lost`, they add up to `lost`. Absent from older summaries.
    #[serde(default)]
    pub unattributed_lost: u64,
    pub sent: u64,
    pub delivered: u64,
}

/// The figures of one system: exactly one `systems.<name>` object of
/// `summary.json`. The upload stream's keys sit at the top level (their
/// meaning since the first summaries), the download stream's under `down`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemMetrics {
    #[serde(flatten)]
    pub up: StreamMetrics,
    /// `null` when the scenario had no TCP flows from client to server.
    pub tcp_goodput_mbps: Option<f64>,
    /// `null` when the scenario had no TCP flows from server to client.
    #[serde(default)]
    pub tcp_goodput_down_mbps: Option<f64>,
    /// Link name -> share of the bytes carried (sums to 1 when anything was).
    pub link_share: BTreeMap<String, f64>,
    /// The host's pauses during the run, left out of every outage figure.
    /// Absent from summaries older than the pause monitor.
    #[serde(default)]
    pub host_pauses: PauseSummary,
    /// The download probe stream; `null` when the scenario sent none.
    #[serde(default)]
    pub down: Option<StreamMetrics>,
    /// The user's own commands, in the scenario's order; absent when the
    /// scenario has none or they were not run (the simulator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandReport>,
}

/// Computes every figure of one system from its upload view and, if the
/// scenario had download traffic, its download view.
pub fn system_metrics(
    up: &RunLogs<'_>,
    down: Option<&RunLogs<'_>>,
    config: &MetricsConfig,
) -> SystemMetrics {
    SystemMetrics {
        up: stream_metrics(up, config),
        tcp_goodput_mbps: up.tcp.and_then(goodput_mbps),
        tcp_goodput_down_mbps: down.and_then(|d| d.tcp).and_then(goodput_mbps),
        link_share: link_share(up.links),
        host_pauses: up.host_pauses.map(HostPauses::summary).unwrap_or_default(),
        down: down
            .filter(|d| !d.probes.sent.sent_at.is_empty())
            .map(|d| stream_metrics(d, config)),
        commands: Vec::new(),
    }
}

/// The probe figures of one direction.
fn stream_metrics(run: &RunLogs<'_>, config: &MetricsConfig) -> StreamMetrics {
    let delivery = run.delivery();
    let events::EventFigures {
        events,
        unattributed_lost,
    } = events::event_figures(&delivery, run.origin, run.events, run.flow_links, config);
    let max_recovery_ms = events.iter().map(|e| e.recovery_ms).fold(0.0, f64::max);
    let sent = delivery.sent_count();
    let delivered = delivery.delivered_count();
    StreamMetrics {
        delivery_ratio: ratio(delivered, sent),
        lost: sent - delivered,
        duplicates: delivery.duplicates(),
        max_outage_ms: millis(delivery.longest_gap()),
        max_flow_outage_ms: millis(delivery.longest_flow_gap()),
        max_recovery_ms,
        latency_ms: delivery.latency_percentiles(),
        reordered_ratio: ratio(delivery.reordered(), delivered),
        events,
        unattributed_lost,
        sent,
        delivered,
    }
}

/// Bulk TCP goodput over the log's measurement window, in Mbit/s.
fn goodput_mbps(tcp: &TcpLog) -> Option<f64> {
    let seconds = tcp.duration.as_secs_f64();
    (seconds > 0.0).then(|| round(tcp.total_bytes() as f64 * 8.0 / seconds / 1e6, 3))
}

fn link_share(links: &[LinkCounters]) -> BTreeMap<String, f64> {
    let total: u64 = links.iter().map(|l| l.bytes).sum();
    links
        .iter()
        .map(|l| (l.link.clone(), ratio(l.bytes, total)))
        .collect()
}

/// `part / whole` rounded to 6 decimals, 0 when `whole` is 0.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round(part as f64 / whole as f64, 6)
    }
}

/// A duration in milliseconds, rounded to the microsecond: the JSON stays
/// readable and identical input gives identical bytes.
fn millis(duration: Duration) -> f64 {
    round(duration.as_secs_f64() * 1e3, 3)
}

pub(crate) fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}
