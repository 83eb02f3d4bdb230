//! Scenarios: which links, what happens to them when, what traffic, which
//! systems to compare. Loaded from TOML (schema in `scenarios/README.md`) and
//! validated up front, so a mistake is reported with its file, key and the
//! expected value before anything is built.
//!
//! - `raw`: the file as written (serde, unknown keys rejected);
//! - `units`: durations, rates, percentages and queue bounds as text;
//! - `validate`: from the raw file to a checked [`Scenario`];
//! - `timeline`: events expanded into the link changes to apply, in order;
//! - [`command`]: the user's own commands (`[[traffic.command]]`);
//! - [`template`]: `{name}` placeholders in their shell lines;
//! - `error`: [`ScenarioError`] and key paths.

pub mod command;
mod error;
mod raw;
pub mod template;
mod timeline;
pub mod units;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use blake2::{Blake2s256, Digest};
use serde::{Deserialize, Serialize};

use crate::emulator::model::{
    Direction, GilbertElliott, LinkModel, LinkParams, QueueLimit, Reorder,
};
use crate::systems::registry;

pub use crate::systems::System;
pub use command::{CommandRole, CommandSpec, CommandStart};
pub use error::ScenarioError;
pub(crate) use error::{KeyPath, SourceMap};
pub use timeline::{LinkChange, TimelineStep};

/// Most links a scenario may have (circus-core schedules over at most 16).
pub const MAX_LINKS: usize = 16;

/// A checked scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    /// The file it was loaded from (not part of the content hash).
    #[serde(skip)]
    pub file: PathBuf,
    pub duration: Duration,
    /// Seeds every random decision of the run (see [`Scenario::model_seed`]).
    pub seed: u64,
    pub backend: Backend,
    /// Whether the userspace forwarder's threads run at real-time priority
    /// (SCHED_FIFO), which keeps frames within a millisecond of their due
    /// time under load. Throughput benchmarks turn it off: a real-time
    /// thread preempts the system under test at every frame it is woken
    /// for, which breaks the daemons' batches into single packets and
    /// halves a tunnel's packet rate, while a plain sender hardly notices.
    /// Left out of the content hash when on (the default), so existing
    /// scenarios keep their hash.
    #[serde(skip_serializing_if = "is_true")]
    pub emulator_realtime: bool,
    /// Systems to compare, in the order they run.
    pub systems: Vec<System>,
    /// The circus scheduler policy name ("balanced", "redundant", "adaptive",
    /// "round-robin"); `None` leaves circus at its default.
    pub policy: Option<String>,
    pub links: Vec<LinkSpec>,
    /// Timeline events in time order; each repetition of an event with
    /// `every` is listed on its own.
    pub events: Vec<Event>,
    pub traffic: Traffic,
    /// The user's own commands (`[[traffic.command]]`), in file order. Left
    /// out of the content hash when there are none, so scenarios without
    /// them keep their hash.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandSpec>,
}

fn is_true(value: &bool) -> bool {
    *value
}

/// How links are emulated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The lab's own forwarder with [`LinkModel`]; works on any kernel.
    Userspace,
    /// Linux netem qdiscs, where the kernel has them.
    Netem,
    /// netem if the kernel has it, else userspace.
    #[default]
    Auto,
}

/// A built-in system under test; its name, description, adapter and
/// simulator come from [`crate::systems::registry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SystemKind {
    /// circus client and gateway.
    Circus,
    /// All traffic over the link that is best at the start, no tunnel.
    SingleLink,
    /// Each flow pinned to one link by hash, as pfSense/OPNsense gateway groups.
    Multiwan,
    /// Kernel MPTCP for the TCP traffic.
    Mptcp,
}

impl SystemKind {
    /// The name used in scenario files and reports.
    pub fn as_str(self) -> &'static str {
        registry::built_in(self).name
    }
}

impl fmt::Display for SystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serialized as its name, as the content hash has always seen it.
impl Serialize for SystemKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A system name that is no built-in system.
#[derive(Debug, thiserror::Error)]
#[error("unknown system {0:?}: expected one of {names}", names = registry::names())]
pub struct UnknownSystem(pub String);

impl FromStr for SystemKind {
    type Err = UnknownSystem;

    fn from_str(name: &str) -> Result<SystemKind, UnknownSystem> {
        registry::by_name(name)
            .map(|entry| entry.kind)
            .ok_or_else(|| UnknownSystem(name.to_owned()))
    }
}

/// One emulated link, with its properties at the start.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkSpec {
    pub name: String,
    pub params: LinkParams,
}

/// A timeline event as written in the scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Time since the start of the run.
    pub at: Duration,
    /// Name of the link it acts on.
    pub link: String,
    /// Index of that link in [`Scenario::links`].
    pub link_index: usize,
    pub action: Action,
    /// For blackhole, down and set: how long until the link is restored
    /// (up, or its parameters from before). `None`: until another event.
    pub duration: Option<Duration>,
}

/// What an event does to its link.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Action {
    /// Frames vanish silently; the interface stays up.
    Blackhole,
    /// Carrier down: the interface goes down.
    Down,
    /// Back to working (carrier up, no blackhole).
    Up,
    /// Change some link parameters.
    Set(LinkParamsPatch),
    /// The client's address on this link changes (roaming to a new network).
    ChangeAddress,
}

impl Action {
    /// The action's name as in scenario files and `summary.json`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Blackhole => "blackhole",
            Action::Down => "down",
            Action::Up => "up",
            Action::Set(_) => "set",
            Action::ChangeAddress => "address",
        }
    }
}

/// Link parameters a `set` event changes; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LinkParamsPatch {
    pub delay: Option<Duration>,
    pub jitter: Option<Duration>,
    pub loss: Option<f64>,
    pub rate_bps: Option<u64>,
    pub queue: Option<QueueLimit>,
    pub burst_loss: Option<GilbertElliott>,
    pub duplicate: Option<f64>,
    pub reorder: Option<Reorder>,
}

impl LinkParamsPatch {
    /// `base` with this patch's values in place of its own.
    pub fn apply(&self, base: &LinkParams) -> LinkParams {
        LinkParams {
            delay: self.delay.unwrap_or(base.delay),
            jitter: self.jitter.unwrap_or(base.jitter),
            loss: self.loss.unwrap_or(base.loss),
            rate_bps: self.rate_bps.or(base.rate_bps),
            queue: self.queue.or(base.queue),
            burst_loss: self.burst_loss.or(base.burst_loss),
            duplicate: self.duplicate.unwrap_or(base.duplicate),
            reorder: self.reorder.or(base.reorder),
            trace: base.trace.clone(),
        }
    }

    /// True if the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == LinkParamsPatch::default()
    }
}

/// The traffic the lab generates and measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub probe: ProbeSpec,
    pub tcp: TcpSpec,
}

/// Which way the lab's traffic runs: from the client to the server
/// (upload), from the server to the client (download), or both at once.
/// Downloads are most of what a site does and run through the gateway's
/// scheduler, so both is the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficDirection {
    Up,
    Down,
    #[default]
    Both,
}

impl TrafficDirection {
    /// Whether traffic runs from the client to the server.
    pub fn up(self) -> bool {
        self != TrafficDirection::Down
    }

    /// Whether traffic runs from the server to the client.
    pub fn down(self) -> bool {
        self != TrafficDirection::Up
    }
}

/// The sequenced, timestamped UDP probe stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeSpec {
    pub rate_pps: u64,
    /// UDP payload bytes per probe.
    pub size: u32,
    pub direction: TrafficDirection,
}

impl ProbeSpec {
    /// 1000 probes per second resolve a 1 ms outage; 200 bytes is small
    /// enough not to load a slow link.
    pub const DEFAULT: ProbeSpec = ProbeSpec {
        rate_pps: 1000,
        size: 200,
        direction: TrafficDirection::Both,
    };
    /// Room for a sequence number and timestamps.
    pub const MIN_SIZE: u32 = 32;
    /// The largest UDP payload in one 1500-byte IPv4 packet.
    pub const MAX_SIZE: u32 = 1472;
}

/// Bulk TCP flows measuring goodput.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TcpSpec {
    /// Number of parallel flows in each direction it runs; 0 runs none.
    pub flows: u32,
    pub direction: TrafficDirection,
}

impl TcpSpec {
    pub const MAX_FLOWS: u32 = 64;

    /// Flows from the client to the server.
    pub fn up_flows(&self) -> u32 {
        if self.direction.up() { self.flows } else { 0 }
    }

    /// Flows from the server to the client.
    pub fn down_flows(&self) -> u32 {
        if self.direction.down() { self.flows } else { 0 }
    }
}

/// A digest of a scenario's content, so a report names exactly what it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl Scenario {
    /// Reads, parses and validates a scenario file. Trace paths are
    /// relative to the file's folder.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            file: path.to_owned(),
            source,
        })?;
        Scenario::from_toml(&text, path)
    }

    /// Parses and validates scenario text; `file` names it in errors and
    /// anchors relative trace paths.
    pub fn from_toml(text: &str, file: &Path) -> Result<Scenario, ScenarioError> {
        validate::scenario_from_toml(text, file)
    }

    /// BLAKE2s-256 over the canonical content: the checked values and the
    /// traces' contents, so formatting, comments, spelling ("1s" or "1000ms")
    /// and file locations do not change it, while any effective change does.
    pub fn content_hash(&self) -> ContentHash {
        // Serializing plain data into a Vec cannot fail.
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        ContentHash(Blake2s256::digest(&canonical).into())
    }

    /// The seed for the model of link `link_index` in `direction`: distinct
    /// per link and direction, and fixed by the scenario seed.
    pub fn model_seed(&self, link_index: usize, direction: Direction) -> u64 {
        let lane = (link_index as u64) << 1 | u64::from(direction == Direction::Down);
        split_mix(self.seed ^ split_mix(lane))
    }

    /// A model of link `link_index` in `direction` as it is at the start.
    pub fn link_model(&self, link_index: usize, direction: Direction) -> Option<LinkModel> {
        let link = self.links.get(link_index)?;
        Some(LinkModel::new(
            link.params.clone(),
            direction,
            self.model_seed(link_index, direction),
        ))
    }

    /// Index of the link called `name`.
    pub fn link_index(&self, name: &str) -> Option<usize> {
        self.links.iter().position(|link| link.name == name)
    }
}

/// SplitMix64's finalizer: spreads nearby inputs over the whole range.
fn split_mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
