//! The scenario file as written: serde structures that reject unknown keys
//! and malformed values. Required keys are `Option`s here so that a missing
//! one gets a message naming it (see `validate`).

use std::path::PathBuf;

use serde::Deserialize;

use super::command::CommandRole;
use super::units::{BitRate, DurationText, PacketRate, Percent, QueueText};
use super::{Backend, TrafficDirection};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub name: Option<String>,
    pub duration: Option<DurationText>,
    pub seed: Option<u64>,
    pub backend: Option<Backend>,
    pub emulator_realtime: Option<bool>,
    /// Built-in names or system files (resolved in `validate`).
    pub systems: Option<Vec<String>>,
    pub policy: Option<String>,
    #[serde(default)]
    pub link: Vec<RawLink>,
    #[serde(default)]
    pub event: Vec<RawEvent>,
    pub traffic: Option<RawTraffic>,
}

/// A `[[link]]` table, and also the `set` table of an event, which takes the
/// same parameters (but no `name` or `trace`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    pub name: Option<String>,
    pub trace: Option<RawTrace>,
    pub delay: Option<DurationText>,
    pub jitter: Option<DurationText>,
    pub loss: Option<Percent>,
    pub rate: Option<BitRate>,
    pub queue: Option<QueueText>,
    pub burst_loss: Option<RawBurstLoss>,
    pub duplicate: Option<Percent>,
    pub reorder: Option<RawReorder>,
}

/// `trace = "file"` for both directions, or `trace = { up = "..", down = ".." }`.
/// (An untagged enum reports its `expecting` text alone, so it reads as a message.)
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "expected a trace file path, or a table { up = \"file\", down = \"file\" }"
)]
pub(super) enum RawTrace {
    Both(PathBuf),
    Split { up: PathBuf, down: PathBuf },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBurstLoss {
    pub to_bad: Percent,
    pub to_good: Percent,
    pub loss_in_good: Option<Percent>,
    pub loss_in_bad: Option<Percent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReorder {
    pub fraction: Percent,
    pub extra_delay: DurationText,
}

#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawAction {
    Blackhole,
    Down,
    Up,
    Set,
    Address,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvent {
    pub at: Option<DurationText>,
    pub link: Option<String>,
    pub action: Option<RawAction>,
    #[serde(rename = "for")]
    pub lasting: Option<DurationText>,
    pub every: Option<DurationText>,
    pub until: Option<DurationText>,
    pub set: Option<RawLink>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTraffic {
    pub probe: Option<RawProbe>,
    pub tcp: Option<RawTcp>,
    #[serde(default)]
    pub command: Vec<RawCommand>,
}

/// A `[[traffic.command]]` table (checked in `command`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCommand {
    pub name: Option<String>,
    #[serde(rename = "in")]
    pub role: Option<CommandRole>,
    pub at: Option<DurationText>,
    pub run: Option<String>,
    pub service: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    pub rate: Option<PacketRate>,
    pub size: Option<u32>,
    pub direction: Option<TrafficDirection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTcp {
    pub flows: u32,
    pub direction: Option<TrafficDirection>,
}
