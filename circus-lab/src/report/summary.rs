//! `summary.json`: the result of one run, in the shape DESIGN.md documents
//! and external checks rely on:
//!
//! ```json
//! { "scenario": "flappy", "duration_s": 60.0, "backend": "userspace", "seed": 7,
//!   "scenario_hash": "...", "commit": "...",
//!   "systems": { "circus": { "delivery_ratio": 0.9996, "lost": 12, "duplicates": 0,
//!       "max_outage_ms": 41.0, "max_recovery_ms": 35.0,
//!       "latency_ms": { "p50": 31.2, "p90": 40.1, "p99": 70.5, "max": 90.2 },
//!       "reordered_ratio": 0.001, "tcp_goodput_mbps": 17.3,
//!       "events": [ { "at_s": 10.0, "link": "wifi0", "action": "blackhole",
//!                     "outage_ms": 41.0, "recovery_ms": 35.0, "lost": 9 } ],
//!       "link_share": { "lte0": 0.4, "wifi0": 0.6 }, "sent": 60000, "delivered": 59988,
//!       "max_flow_outage_ms": 40.0 } } }
//! ```
//!
//! Keys come out in a fixed order (struct fields in declaration order, maps
//! sorted by name) and numbers are rounded when computed, so the same run
//! gives the same bytes. Null means "not measured": `tcp_goodput_mbps`
//! without TCP flows, latencies when no probe arrived.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ReportError;
use super::setup::{EventSetup, LinkSetup};
use crate::metrics::SystemMetrics;
use crate::scenario::Scenario;

/// The name `summary.json` gives the simulator as its backend.
pub const SIM_BACKEND: &str = "sim";

/// The best single link of a run, as measured with plain TCP over each link
/// alone (or, without TCP, by the probes each link delivers).
#[derive(Debug, Clone, PartialEq)]
pub struct BestLink {
    pub link: String,
    pub tcp_mbps: Option<f64>,
    pub tcp_down_mbps: Option<f64>,
}

/// The whole `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub scenario: String,
    pub duration_s: f64,
    /// Link emulation backend actually used ("userspace", "netem", "sim").
    pub backend: String,
    pub seed: u64,
    /// Content hash of the scenario file, so a result names its exact input.
    pub scenario_hash: String,
    /// The commit of circus that ran.
    pub commit: String,
    /// Plain TCP from client to server over the best link alone, no tunnel,
    /// in Mbit/s: the reference every system's TCP is judged against.
    /// `null` when not measured (no TCP that way).
    #[serde(default)]
    pub best_link_tcp_mbps: Option<f64>,
    /// The same from server to client.
    #[serde(default)]
    pub best_link_tcp_down_mbps: Option<f64>,
    /// The link the reference found best, which `single-link` uses.
    #[serde(default)]
    pub best_link: Option<String>,
    /// System name ("circus", "single-link", ...) -> its figures.
    pub systems: BTreeMap<String, SystemMetrics>,
    /// The names of `systems` in the order they ran, the scenario's: tables
    /// and plots follow it (see [`Summary::systems_in_order`]). Absent from
    /// older summaries.
    #[serde(default)]
    pub system_order: Vec<String>,
    /// The scenario's links as set at the start, in its order.
    #[serde(default)]
    pub links: Vec<LinkSetup>,
    /// The scenario's timeline, in time order.
    #[serde(default)]
    pub timeline: Vec<EventSetup>,
    /// The scenario's commands (`[[traffic.command]]`) that this mode could
    /// not run (the simulator runs no real programs); absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands_not_run: Vec<String>,
}

impl Summary {
    /// The summary of a run of `scenario`, before any system's figures are
    /// added. `backend` is the backend actually used (`auto` resolved).
    pub fn for_scenario(scenario: &Scenario, backend: &str, commit: &str) -> Self {
        Self {
            scenario: scenario.name.clone(),
            duration_s: scenario.duration.as_secs_f64(),
            backend: backend.to_string(),
            seed: scenario.seed,
            scenario_hash: scenario.content_hash().to_string(),
            commit: commit.to_string(),
            best_link_tcp_mbps: None,
            best_link_tcp_down_mbps: None,
            best_link: None,
            systems: BTreeMap::new(),
            system_order: Vec::new(),
            links: scenario.links.iter().map(LinkSetup::from).collect(),
            timeline: scenario.events.iter().map(EventSetup::from).collect(),
            commands_not_run: Vec::new(),
        }
    }

    /// Adds (or replaces) the figures of `name`, which ran after the
    /// systems already added.
    pub fn add_system(&mut self, name: &str, metrics: SystemMetrics) {
        if !self.system_order.iter().any(|n| n == name) {
            self.system_order.push(name.to_string());
        }
        self.systems.insert(name.to_string(), metrics);
    }

    /// Every system's figures, in the order they ran; then, by name, any
    /// `system_order` does not list (a summary older than it).
    pub fn systems_in_order(&self) -> impl Iterator<Item = (&str, &SystemMetrics)> {
        let listed = self
            .system_order
            .iter()
            .enumerate()
            .filter(|&(index, name)| !self.system_order[..index].contains(name))
            .filter_map(|(_, name)| self.systems.get_key_value(name));
        let unlisted = self
            .systems
            .iter()
            .filter(|(name, _)| !self.system_order.contains(name));
        listed
            .chain(unlisted)
            .map(|(name, metrics)| (name.as_str(), metrics))
    }

    /// Records the best-link reference, if one was measured.
    pub fn set_best_link(&mut self, best: Option<BestLink>) {
        if let Some(best) = best {
            self.best_link_tcp_mbps = best.tcp_mbps;
            self.best_link_tcp_down_mbps = best.tcp_down_mbps;
            self.best_link = Some(best.link);
        }
    }

    /// `system`'s TCP goodput as a share of the best link's, per direction
    /// (up, down); `None` where either was not measured.
    pub fn tcp_ratio_to_best_link(&self, system: &str) -> (Option<f64>, Option<f64>) {
        let share = |goodput: Option<f64>, best: Option<f64>| match (goodput, best) {
            (Some(goodput), Some(best)) if best > 0.0 => Some(goodput / best),
            _ => None,
        };
        let metrics = self.systems.get(system);
        (
            share(
                metrics.and_then(|m| m.tcp_goodput_mbps),
                self.best_link_tcp_mbps,
            ),
            share(
                metrics.and_then(|m| m.tcp_goodput_down_mbps),
                self.best_link_tcp_down_mbps,
            ),
        )
    }

    /// Pretty-printed JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        // Serializing plain structs, strings, numbers and string-keyed maps
        // into a String cannot fail.
        let mut json = serde_json::to_string_pretty(self).expect("a Summary always serializes");
        json.push('\n');
        json
    }

    /// Reads a `summary.json` written by [`Summary::to_json`] (e.g. a baseline).
    pub fn load(path: &Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ReportError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }
}
