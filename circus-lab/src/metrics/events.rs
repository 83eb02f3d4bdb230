//! Outage and recovery around each timeline event.
//!
//! An event at time `t` (since the scenario's start) owns the window
//! `[t, end)`, where `end` is the next later event's time or
//! `t + attribution_max`, whichever comes first.
//!
//! - **outage_ms**: the longest gap between consecutive deliveries (receiver
//!   clock) that belongs to the event: the first probe the gap lost or
//!   delayed was sent in `[t - in_flight_lookback, end)` (the lookback as for
//!   losses, below). Each gap belongs to one event only, even if it lasts
//!   into the next event's window. A system that stalls everything has a long
//!   outage; a switch to a slower link shows as a gap as long as the latency
//!   step.
//! - **loss burst**: the probes lost because of the event. Lost probes sent in
//!   `[t - in_flight_lookback, end)` are split into
//!   bursts wherever two consecutive losses were sent `burst_gap` or more
//!   apart; the bursts holding a loss sent within `burst_gap` of `t` are the
//!   event's. The lookback catches probes already queued on a link when it
//!   died; it stops where the previous event's window ends, so no loss counts
//!   twice. Requiring the burst to touch `t` keeps isolated random losses
//!   later in the window out of it.
//! - **lost**: the probes in the event's bursts.
//! - **recovery_ms**: from `t` to the send time of the last probe of the
//!   event's bursts (0 if none was sent after `t`): how long the system kept
//!   losing packets before it stopped using the bad link. A system that loses
//!   every other packet for half a second has an outage of ~2 ms but a
//!   recovery of ~500 ms.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::delivery::{Delivery, Gap};
use super::{MetricsConfig, TimelineEvent, millis, round};
use crate::traffic::MonoNanos;

/// The figures of one timeline event: one entry of `events` in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMetrics {
    pub at_s: f64,
    pub link: String,
    pub action: String,
    pub outage_ms: f64,
    pub recovery_ms: f64,
    pub lost: u64,
}

/// The figures of every event, in the order given.
pub fn event_metrics(
    delivery: &Delivery<'_>,
    origin: MonoNanos,
    events: &[TimelineEvent],
    config: &MetricsConfig,
) -> Vec<EventMetrics> {
    let gaps = delivery.gaps();
    let lost: Vec<MonoNanos> = delivery.lost_send_times().collect();
    events
        .iter()
        .map(|event| {
            let window = EventWindow::new(event, events, config);
            let at = origin + event.at;
            let (burst_lost, last_lost) = loss_burst(
                &lost,
                origin + window.lookback_start,
                at,
                origin + window.end,
                config.burst_gap,
            );
            EventMetrics {
                at_s: round(event.at.as_secs_f64(), 3),
                link: event.link.clone(),
                action: event.action.clone(),
                outage_ms: millis(longest_gap_in(
                    &gaps,
                    origin + window.lookback_start,
                    origin + window.end,
                )),
                recovery_ms: millis(last_lost.map_or(Duration::ZERO, |s| s.saturating_since(at))),
                lost: burst_lost,
            }
        })
        .collect()
}

/// The stretch of the timeline (since the scenario's start) attributed to
/// one event.
struct EventWindow {
    lookback_start: Duration,
    end: Duration,
}

impl EventWindow {
    fn new(event: &TimelineEvent, events: &[TimelineEvent], config: &MetricsConfig) -> Self {
        let previous = events
            .iter()
            .map(|e| e.at)
            .filter(|&at| at < event.at)
            .max();
        let next = events
            .iter()
            .map(|e| e.at)
            .filter(|&at| at > event.at)
            .min();
        let cap = event.at + config.attribution_max;
        // The lookback never reaches into the previous event's window (which
        // ends here or after attribution_max), so no loss counts twice.
        let lookback_start = event.at.saturating_sub(config.in_flight_lookback);
        let lookback_start = previous.map_or(lookback_start, |previous| {
            lookback_start.max((previous + config.attribution_max).min(event.at))
        });
        Self {
            lookback_start,
            end: next.map_or(cap, |n| n.min(cap)),
        }
    }
}

fn longest_gap_in(gaps: &[Gap], start: MonoNanos, end: MonoNanos) -> Duration {
    gaps.iter()
        .filter(|gap| (start..end).contains(&gap.first_affected))
        .map(|gap| gap.length)
        .max()
        .unwrap_or_default()
}

/// Counts the lost probes (send times `lost`, ascending) in the bursts that
/// touch `at`, and returns the send time of the last one.
fn loss_burst(
    lost: &[MonoNanos],
    window_start: MonoNanos,
    at: MonoNanos,
    window_end: MonoNanos,
    burst_gap: Duration,
) -> (u64, Option<MonoNanos>) {
    let first = lost.partition_point(|&s| s < window_start);
    let last = lost.partition_point(|&s| s < window_end);
    let in_window = &lost[first..last];
    let touches_event = |sent: MonoNanos| {
        let distance = if sent >= at {
            sent.saturating_since(at)
        } else {
            at.saturating_since(sent)
        };
        distance < burst_gap
    };
    let (mut count, mut last_sent) = (0, None);
    for burst in in_window.chunk_by(|a, b| b.saturating_since(*a) < burst_gap) {
        if burst.iter().any(|&sent| touches_event(sent)) {
            count += burst.len() as u64;
            last_sent = burst.last().copied();
        }
    }
    (count, last_sent)
}
