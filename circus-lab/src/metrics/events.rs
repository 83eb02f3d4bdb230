//! Which timeline event each lost probe and each delivery gap belongs to,
//! and the figures of each event.
//!
//! A loss belongs to the event on the link that carried (or should have
//! carried) the lost probe, while that event is in effect and for a bounded
//! recovery after it; a loss no event answers for is **unattributed** and
//! counted on its own. Every loss goes to exactly one event or to the
//! unattributed count, so they add up to `lost`. In detail:
//!
//! **Span of an event** (send times, since the scenario's start):
//! - It starts at `at`, less `in_flight_lookback` (200 ms) for every action
//!   but `up`: probes already queued on a link when it died or changed are
//!   lost by that event. Restoring a link harms nothing already on it.
//! - It is **in effect** until: `at + for` for an event with a duration;
//!   for `down`, `blackhole` and `set` without one, the next event on the
//!   same link (typically its `up`), at most `attribution_max` (10 s) after
//!   `at`: a change left in place that long is the link's new normal, and a
//!   system that spreads packets would otherwise have every later random
//!   loss booked to it; for `up` and `address`, only at `at` itself (they
//!   happen once; what they cause follows as recovery).
//! - After it ends comes `recovery_allowance` (1 s): the system may still be
//!   losing probes while its queues drain, its failure detector takes the
//!   link back or the link's neighbours are resolved again (glorytun here
//!   took ~450 ms to stop losing after a silent link death; circus takes a
//!   link back after several good probes, a few per second). Bounded, so a
//!   random loss long after the event is not the event's; one within the
//!   allowance is, since nothing tells it apart, so on a lossy link an
//!   event's recovery can read up to the allowance longer than the loss
//!   it really caused.
//! - A later event on the same link takes over from where its own span
//!   starts: one link's events never overlap, so a link's `up` gets the
//!   losses after the link returned, not the `down` before it. Events on
//!   other links never cut a span: a blackhole's losses stay its own while
//!   something else happens elsewhere.
//!
//! **Owner of a loss** sent at `s`:
//! - For systems that pin flows to links (`single-link`, `multiwan`, and
//!   `mptcp`'s UDP probes), the probe's link is known from its flow
//!   (`flow_links`); its owner is the event of that link whose span holds
//!   `s`, if any. Losses on a link without an event in effect are
//!   unattributed, however much happens on other links.
//! - For systems that spread packets (`circus`), the link is unknown: the
//!   owner is one of the events whose spans hold `s`, by this claim order:
//!   an event in effect since its `at`, then one whose lookback holds `s`
//!   (its probes in flight), then one in its recovery allowance (the
//!   present trouble before the tail of a past one); among those, one that
//!   takes its link out (`down`, `blackhole`) before one that changes or
//!   restores it; then the most recent (the later-listed among equals).
//!   So a `set` on another link, or the lookback of a later event, never
//!   takes the losses of a link that is dead.
//!
//! **Figures** ([`EventMetrics`]):
//! - **lost**: the losses it owns.
//! - **recovery_ms**: from `at` to the send time of the last loss it owns
//!   (0 if none was sent after `at`): how long the system kept losing
//!   packets because of it. A system that keeps delivering for a while after
//!   a link dies and then collapses has a long recovery, not none.
//! - **outage_ms**: the longest gap between consecutive deliveries (receiver
//!   clock) it owns, by the rule above applied to the gap's first affected
//!   probe (the first one the gap lost or delayed). A system that stalls
//!   everything has a long outage; a switch to a slower link shows as a gap
//!   as long as the latency step; a system that loses every other packet
//!   for half a second has an outage of ~2 ms but a recovery of ~500 ms.

use std::cmp::Reverse;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::delivery::Delivery;
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

/// Every event's figures, and the losses none of them owns.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFigures {
    /// In the order of the timeline given.
    pub events: Vec<EventMetrics>,
    pub unattributed_lost: u64,
}

/// Attributes the losses and gaps of `delivery` to `events` (see the module
/// doc). `flow_links[flow % len]` names the link probe flow `flow` was
/// pinned to; `None` (or empty) when the system chooses links itself.
pub fn event_figures(
    delivery: &Delivery<'_>,
    origin: MonoNanos,
    events: &[TimelineEvent],
    flow_links: Option<&[String]>,
    config: &MetricsConfig,
) -> EventFigures {
    let attribution = Attribution::new(origin, events, config);
    let link_of = |seq: u64| {
        let links = flow_links.filter(|links| !links.is_empty())?;
        links
            .get(delivery.flow_of(seq) % links.len())
            .map(String::as_str)
    };
    let mut lost = vec![0u64; events.len()];
    let mut last_lost: Vec<Option<MonoNanos>> = vec![None; events.len()];
    let mut unattributed_lost = 0;
    for (seq, sent) in delivery.lost() {
        match attribution.owner(sent, link_of(seq)) {
            Some(event) => {
                lost[event] += 1;
                last_lost[event] = last_lost[event].max(Some(sent));
            }
            None => unattributed_lost += 1,
        }
    }
    let mut outage = vec![Duration::ZERO; events.len()];
    for gap in delivery.gaps() {
        let link = link_of(gap.first_affected_seq);
        if let Some(event) = attribution.owner(gap.first_affected, link) {
            outage[event] = outage[event].max(gap.length);
        }
    }
    let events = events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let at = origin + event.at;
            let recovery = last_lost[index].map_or(Duration::ZERO, |s| s.saturating_since(at));
            EventMetrics {
                at_s: round(event.at.as_secs_f64(), 3),
                link: event.link.clone(),
                action: event.action.clone(),
                outage_ms: millis(outage[index]),
                recovery_ms: millis(recovery),
                lost: lost[index],
            }
        })
        .collect();
    EventFigures {
        events,
        unattributed_lost,
    }
}

/// How an action bears on the probes of its link.
#[derive(Debug, Clone, Copy)]
struct ActionKind {
    /// Probes already on the link when it happens can be lost by it.
    looks_back: bool,
    /// Without `for`, it holds until the next event on its link.
    lasting: bool,
    /// The link carries nothing while it holds.
    takes_link_out: bool,
}

impl ActionKind {
    /// By the action's name as `summary.json` writes it (see
    /// [`crate::scenario::Action::name`]).
    fn of(action: &str) -> Self {
        match action {
            "down" | "blackhole" => Self {
                looks_back: true,
                lasting: true,
                takes_link_out: true,
            },
            "up" => Self {
                looks_back: false,
                lasting: false,
                takes_link_out: false,
            },
            "address" => Self {
                looks_back: true,
                lasting: false,
                takes_link_out: false,
            },
            // `set`, and any action of a newer scenario schema: a change to
            // the link that stays until undone.
            _ => Self {
                looks_back: true,
                lasting: true,
                takes_link_out: false,
            },
        }
    }
}

/// Where a time lies in an event's span, weakest claim first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// After the event ended, within its recovery allowance.
    Recovering,
    /// Before its `at`: probes that were on the link when it happened.
    InFlight,
    /// From its `at` until it ends.
    InEffect,
}

/// The send times (on the logs' clock) one event answers for.
#[derive(Debug, Clone, Copy)]
struct Span<'a> {
    link: &'a str,
    at: MonoNanos,
    start: MonoNanos,
    /// In effect in `start..effect_end`, then its recovery allowance until
    /// `end`; `start <= effect_end <= end`.
    effect_end: MonoNanos,
    end: MonoNanos,
    takes_link_out: bool,
}

/// Every event's span, and for each stretch of time the events whose spans
/// hold it, in claim order.
struct Attribution<'a> {
    spans: Vec<Span<'a>>,
    /// Where the set of spans holding a time changes, ascending.
    bounds: Vec<MonoNanos>,
    /// `claims[k]`: the events whose spans hold `bounds[k]..bounds[k + 1]`,
    /// strongest claim first.
    claims: Vec<Vec<usize>>,
}

impl<'a> Attribution<'a> {
    fn new(origin: MonoNanos, events: &'a [TimelineEvent], config: &MetricsConfig) -> Self {
        let kinds: Vec<ActionKind> = events.iter().map(|e| ActionKind::of(&e.action)).collect();
        let starts: Vec<Duration> = events
            .iter()
            .zip(&kinds)
            .map(|(event, kind)| {
                if kind.looks_back {
                    event.at.saturating_sub(config.in_flight_lookback)
                } else {
                    event.at
                }
            })
            .collect();
        let spans: Vec<Span<'a>> = events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                // The events that follow this one on its link (listed later
                // among those at the same time).
                let following = || {
                    (0..events.len()).filter(move |&other| {
                        events[other].link == event.link
                            && (events[other].at, other) > (event.at, index)
                    })
                };
                let next_at = following().map(|other| events[other].at).min();
                let taken_over = following().map(|other| starts[other]).min();
                let effect_end = match event.duration {
                    Some(duration) => event.at.saturating_add(duration),
                    None if kinds[index].lasting => {
                        let capped = event.at.saturating_add(config.attribution_max);
                        next_at.map_or(capped, |next| next.min(capped))
                    }
                    None => event.at,
                };
                let recovered = effect_end.saturating_add(config.recovery_allowance);
                let start = starts[index];
                let end = taken_over
                    .map_or(recovered, |t| t.min(recovered))
                    .max(start);
                Span {
                    link: &event.link,
                    at: origin + event.at,
                    start: origin + start,
                    effect_end: origin + effect_end.clamp(start, end),
                    end: origin + end,
                    takes_link_out: kinds[index].takes_link_out,
                }
            })
            .collect();

        let mut bounds: Vec<MonoNanos> = spans
            .iter()
            .flat_map(|span| [span.start, span.at, span.effect_end, span.end])
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        let claims = bounds
            .iter()
            .map(|&from| {
                let mut holding: Vec<usize> = (0..spans.len())
                    .filter(|&index| (spans[index].start..spans[index].end).contains(&from))
                    .collect();
                holding.sort_by_key(|&index| {
                    let span = &spans[index];
                    let phase = if from >= span.effect_end {
                        Phase::Recovering
                    } else if from < span.at {
                        Phase::InFlight
                    } else {
                        Phase::InEffect
                    };
                    Reverse((phase, span.takes_link_out, span.at, index))
                });
                holding
            })
            .collect();
        Self {
            spans,
            bounds,
            claims,
        }
    }

    /// The event that owns a loss (or gap) first affecting a probe sent at
    /// `sent` on `link` (`None`: the link is unknown), if any.
    fn owner(&self, sent: MonoNanos, link: Option<&str>) -> Option<usize> {
        let stretch = self
            .bounds
            .partition_point(|&bound| bound <= sent)
            .checked_sub(1)?;
        self.claims
            .get(stretch)?
            .iter()
            .copied()
            .find(|&index| link.is_none_or(|link| self.spans[index].link == link))
    }
}
