//! The probe stream: sequenced, timestamped UDP datagrams sent at a precise
//! rate, from which the metrics derive delivery, loss, duplicates, reordering,
//! latency, outage and recovery.
//!
//! One stream has one global sequence number (0, 1, 2, ...) spread
//! round-robin over `flows` UDP sockets with distinct source ports: packet `seq`
//! belongs to flow `seq % flows`. Per-connection baselines (multiwan) pin each
//! flow to one link by hashing its addresses, so several flows exercise several
//! links.
//!
//! - [`wire`]: the payload header (magic, stream id, seq, send time, flow).
//! - [`sender`]: paced sender, logs the send time of every sequence number.
//! - [`receiver`]: receiver logging every datagram into preallocated memory.

pub mod receiver;
pub mod sender;
pub mod wire;

use serde::{Deserialize, Serialize};

use super::MonoNanos;

pub use receiver::{ProbeReceiver, ReceiveLog};
pub use sender::{ProbeSenderConfig, SendLog, send_probes};
pub use wire::{PROBE_HEADER_LEN, PROBE_MAGIC, ProbeHeader, ProbeWireError};

/// SCHED_FIFO priority of the probe sender and receiver: above the
/// emulator's forwarder (10), below the pause monitor (50). The lab's own
/// load cannot then make a probe late or its arrival stamp late; only the
/// host can, and the metrics take that out (see
/// [`crate::metrics::pauses`]).
pub const PROBE_PRIORITY: i32 = 20;

/// One received probe datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub seq: u64,
    pub flow: u16,
    /// Send timestamp carried in the payload.
    pub sent: MonoNanos,
    /// When the receiver read it.
    pub received: MonoNanos,
}

/// Both ends of one probe stream: what was sent and what arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeLog {
    pub sent: SendLog,
    pub received: ReceiveLog,
}

impl ProbeLog {
    /// The log of a stream that was not sent (the scenario sends probes the
    /// other way only): nothing sent, nothing received.
    pub fn unsent(stream_id: u32) -> ProbeLog {
        ProbeLog {
            sent: SendLog {
                stream_id,
                rate_pps: 1,
                size: PROBE_HEADER_LEN,
                flows: 1,
                source_ports: Vec::new(),
                start: MonoNanos(0),
                sent_at: Vec::new(),
                send_errors: 0,
                max_lateness: std::time::Duration::ZERO,
                realtime: false,
            },
            received: ReceiveLog {
                stream_id,
                records: Vec::new(),
                not_recorded: 0,
                foreign: 0,
            },
        }
    }
}
