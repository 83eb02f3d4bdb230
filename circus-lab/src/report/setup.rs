//! What the systems faced, in words: each link's properties at the start and
//! each timeline event. Written into `summary.json` (so a result names its
//! conditions, not only a scenario hash) and near the top of `report.md`, so
//! a reader need not open the scenario file to read the plots.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::emulator::model::{
    DEFAULT_QUEUE, GilbertElliott, LinkParams, QueueLimit, Reorder, TraceFile,
};
use crate::scenario::{Action, Event, LinkParamsPatch, LinkSpec};

/// One emulated link as the scenario sets it at the start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSetup {
    pub name: String,
    /// E.g. "20 Mbit/s, delay 12 ms ± 4 ms, loss 1 %, queue 100 ms (default)".
    pub params: String,
}

impl From<&LinkSpec> for LinkSetup {
    fn from(link: &LinkSpec) -> Self {
        Self {
            name: link.name.clone(),
            params: describe_params(&link.params),
        }
    }
}

/// One timeline event and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSetup {
    /// Seconds since the scenario's start.
    pub at_s: f64,
    pub link: String,
    /// The action's name as in the scenario ("blackhole", "set", ...).
    pub action: String,
    /// How long until the link is restored; `null`: until another event.
    pub for_s: Option<f64>,
    /// E.g. "frames vanish, the interface stays up" or "delay 200 ms, loss 5 %".
    pub effect: String,
}

impl From<&Event> for EventSetup {
    fn from(event: &Event) -> Self {
        Self {
            at_s: event.at.as_secs_f64(),
            link: event.link.clone(),
            action: event.action.name().to_string(),
            for_s: event.duration.map(|d| d.as_secs_f64()),
            effect: describe_action(&event.action),
        }
    }
}

fn describe_action(action: &Action) -> String {
    match action {
        Action::Blackhole => "frames vanish, the interface stays up".to_string(),
        Action::Down => "carrier lost, the interface goes down".to_string(),
        Action::Up => "working again (carrier up, no blackhole)".to_string(),
        Action::Set(patch) => describe_patch(patch),
        Action::ChangeAddress => "the client's address on the link changes".to_string(),
    }
}

/// Every property, the bottleneck first; zero loss, duplication and
/// reordering are left out, and the queue of a link without a bottleneck.
fn describe_params(params: &LinkParams) -> String {
    let mut parts = vec![match (&params.trace, params.rate_bps) {
        (Some(traces), _) if traces.up.path == traces.down.path => trace(&traces.up),
        (Some(traces), _) => format!("up {}, down {}", trace(&traces.up), trace(&traces.down)),
        (None, Some(bps)) => rate(bps),
        (None, None) => "no rate limit".to_string(),
    }];
    parts.push(delay(params.delay, params.jitter));
    if params.loss > 0.0 {
        parts.push(format!("loss {}", percent(params.loss)));
    }
    // A queue only builds up behind a bottleneck.
    if params.trace.is_some() || params.rate_bps.is_some() {
        parts.push(match params.queue {
            Some(limit) => queue(limit),
            None => format!("{} (default)", queue(DEFAULT_QUEUE)),
        });
    }
    parts.extend(params.burst_loss.map(burst_loss));
    if params.duplicate > 0.0 {
        parts.push(format!("duplicate {}", percent(params.duplicate)));
    }
    parts.extend(params.reorder.map(reorder));
    parts.join(", ")
}

/// The properties a `set` event changes.
fn describe_patch(patch: &LinkParamsPatch) -> String {
    let parts: Vec<String> = [
        patch.rate_bps.map(rate),
        patch.delay.map(|d| format!("delay {}", duration(d))),
        patch.jitter.map(|j| format!("jitter {}", duration(j))),
        patch.loss.map(|l| format!("loss {}", percent(l))),
        patch.queue.map(queue),
        patch.burst_loss.map(burst_loss),
        patch.duplicate.map(|d| format!("duplicate {}", percent(d))),
        patch.reorder.map(reorder),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "nothing changes".to_string()
    } else {
        parts.join(", ")
    }
}

fn trace(file: &TraceFile) -> String {
    let name = file.path.file_name().unwrap_or(file.path.as_os_str());
    format!(
        "trace {} (mean {})",
        name.to_string_lossy(),
        rate(file.trace.mean_rate_bps())
    )
}

fn delay(delay: Duration, jitter: Duration) -> String {
    if jitter.is_zero() {
        format!("delay {}", duration(delay))
    } else {
        format!("delay {} ± {}", duration(delay), duration(jitter))
    }
}

fn queue(limit: QueueLimit) -> String {
    match limit {
        QueueLimit::Delay(d) => format!("queue {}", duration(d)),
        QueueLimit::Bytes(b) => format!("queue {b} bytes"),
    }
}

fn burst_loss(chain: GilbertElliott) -> String {
    format!(
        "burst loss (Gilbert-Elliott, mean {}, bursts of {} frames)",
        percent(chain.mean_loss()),
        rounded(1.0 / chain.to_good.max(f64::MIN_POSITIVE), 1)
    )
}

fn reorder(reorder: Reorder) -> String {
    format!(
        "reorder {} by +{}",
        percent(reorder.fraction),
        duration(reorder.extra_delay)
    )
}

/// "20 Mbit/s", "1.5 Gbit/s", "500 kbit/s".
fn rate(bps: u64) -> String {
    let bps = bps as f64;
    let (value, unit) = if bps >= 1e9 {
        (bps / 1e9, "Gbit/s")
    } else if bps >= 1e6 {
        (bps / 1e6, "Mbit/s")
    } else if bps >= 1e3 {
        (bps / 1e3, "kbit/s")
    } else {
        (bps, "bit/s")
    };
    format!("{} {unit}", rounded(value, 3))
}

/// "3 s", "12 ms", "0.25 ms".
fn duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{} s", rounded(d.as_secs_f64(), 3))
    } else {
        format!("{} ms", rounded(d.as_secs_f64() * 1e3, 3))
    }
}

/// A fraction as a percentage: 0.005 gives "0.5 %".
fn percent(fraction: f64) -> String {
    format!("{} %", rounded(fraction * 100.0, 4))
}

/// `value` with at most `decimals` decimals and no trailing zeros.
fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}
