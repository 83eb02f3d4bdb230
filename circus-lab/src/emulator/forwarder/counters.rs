//! Per-direction counters, updated by the forwarder thread and read by anyone
//! at any time without stopping it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

use crate::emulator::model::DropReason;

/// Why the forwarder itself (not the link model) dropped a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocalDrop {
    /// Longer than a frame buffer (offloads left on?).
    Oversize,
    /// Every buffer was holding a frame in flight.
    NoBuffer,
    /// The kernel refused to send it (e.g. the interface was down).
    SendFailed,
}

const MODEL_REASONS: [DropReason; 5] = [
    DropReason::Blackhole,
    DropReason::Down,
    DropReason::QueueFull,
    DropReason::Loss,
    DropReason::BurstLoss,
];
const LOCAL_REASONS: [LocalDrop; 3] = [
    LocalDrop::Oversize,
    LocalDrop::NoBuffer,
    LocalDrop::SendFailed,
];

fn model_index(reason: DropReason) -> usize {
    match reason {
        DropReason::Blackhole => 0,
        DropReason::Down => 1,
        DropReason::QueueFull => 2,
        DropReason::Loss => 3,
        DropReason::BurstLoss => 4,
    }
}

fn local_index(reason: LocalDrop) -> usize {
    match reason {
        LocalDrop::Oversize => 0,
        LocalDrop::NoBuffer => 1,
        LocalDrop::SendFailed => 2,
    }
}

/// Live counters of one direction of one link.
#[derive(Debug, Default)]
pub struct DirectionCounters {
    received: AtomicU64,
    received_bytes: AtomicU64,
    forwarded: AtomicU64,
    forwarded_bytes: AtomicU64,
    duplicated: AtomicU64,
    model_drops: [AtomicU64; 5],
    local_drops: [AtomicU64; 3],
    lateness_max_ns: AtomicU64,
    lateness_sum_ns: AtomicU64,
    in_flight: AtomicU64,
    realtime: AtomicBool,
}

impl DirectionCounters {
    pub(super) fn on_received(&self, bytes: usize) {
        self.received.fetch_add(1, Relaxed);
        self.received_bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub(super) fn on_duplicated(&self) {
        self.duplicated.fetch_add(1, Relaxed);
    }

    pub(super) fn on_model_drop(&self, reason: DropReason) {
        self.model_drops[model_index(reason)].fetch_add(1, Relaxed);
    }

    pub(super) fn on_local_drop(&self, reason: LocalDrop, frames: u64) {
        self.local_drops[local_index(reason)].fetch_add(frames, Relaxed);
    }

    /// A sent batch: its frame and byte counts and its lateness figures.
    pub(super) fn on_sent(
        &self,
        frames: u64,
        bytes: u64,
        lateness_sum_ns: u64,
        lateness_max_ns: u64,
    ) {
        self.forwarded.fetch_add(frames, Relaxed);
        self.forwarded_bytes.fetch_add(bytes, Relaxed);
        self.lateness_sum_ns.fetch_add(lateness_sum_ns, Relaxed);
        self.lateness_max_ns.fetch_max(lateness_max_ns, Relaxed);
    }

    pub(super) fn set_in_flight(&self, frames: usize) {
        self.in_flight.store(frames as u64, Relaxed);
    }

    pub(super) fn set_realtime(&self, realtime: bool) {
        self.realtime.store(realtime, Relaxed);
    }

    /// A consistent-enough copy (each field read once, no lock).
    pub fn snapshot(&self) -> CounterSnapshot {
        let forwarded = self.forwarded.load(Relaxed);
        let lateness_sum = self.lateness_sum_ns.load(Relaxed);
        CounterSnapshot {
            received: self.received.load(Relaxed),
            received_bytes: self.received_bytes.load(Relaxed),
            forwarded,
            forwarded_bytes: self.forwarded_bytes.load(Relaxed),
            duplicated: self.duplicated.load(Relaxed),
            model_drops: MODEL_REASONS.map(|r| (r, self.model_drops[model_index(r)].load(Relaxed))),
            local_drops: LOCAL_REASONS.map(|r| (r, self.local_drops[local_index(r)].load(Relaxed))),
            max_lateness: Duration::from_nanos(self.lateness_max_ns.load(Relaxed)),
            mean_lateness: Duration::from_nanos(lateness_sum.checked_div(forwarded).unwrap_or(0)),
            in_flight: self.in_flight.load(Relaxed),
            realtime: self.realtime.load(Relaxed),
        }
    }
}

/// Counters of one direction at one moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CounterSnapshot {
    /// Frames that arrived at the emulator.
    pub received: u64,
    /// Their bytes (whole Ethernet frames).
    pub received_bytes: u64,
    /// Frames sent on, duplicates included.
    pub forwarded: u64,
    /// Their bytes.
    pub forwarded_bytes: u64,
    /// Extra copies made by the duplication setting.
    pub duplicated: u64,
    /// Drops decided by the link model, per reason.
    pub model_drops: [(DropReason, u64); 5],
    /// Drops by the forwarder itself, per reason.
    pub local_drops: [(LocalDrop, u64); 3],
    /// Longest time a frame left after its due time.
    pub max_lateness: Duration,
    /// Mean time frames left after their due time.
    pub mean_lateness: Duration,
    /// Frames waiting for their due time.
    pub in_flight: u64,
    /// Whether the thread runs with real-time (SCHED_FIFO) priority.
    pub realtime: bool,
}

impl CounterSnapshot {
    /// Frames the link model dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.model_drops[model_index(reason)].1
    }

    /// Frames the forwarder dropped for `reason`.
    pub fn dropped_locally(&self, reason: LocalDrop) -> u64 {
        self.local_drops[local_index(reason)].1
    }
}
