//! The circus protocol engines: [`Client`] and [`Gateway`].
//!
//! Both are sans-IO state machines in the style of quinn-proto: the caller
//! feeds them what happened (`handle_tun_packet`, `handle_datagram`,
//! `handle_timeout`, link events) with the current time, then drains what
//! they want done (`poll_transmit` into a caller-owned buffer,
//! `poll_deliver`, `poll_timeout`). They never read a clock or touch a
//! socket, so the daemon, the lab's simulator and the tests run the same
//! code, the latter two on virtual time.
//!
//! Map of the engine:
//! - [`client`](Client): handshake initiator (retried over every link,
//!   rekeyed on a timer, restarted when every link falls silent) around one
//!   session.
//! - [`gateway`](Gateway): handshake responder; sessions keyed by client
//!   static key, routed by tunnel address, following link address changes.
//! - `init_gate`: the gateway's mac1 check, load detection, cookie replies
//!   and per-source limit in front of the handshake.
//! - `session`: one peer's data plane (scheduling, acks, recovery, reorder),
//!   identical on both ends.
//! - `link`, `keys`, `packet_ring`: per-link bookkeeping, key generations,
//!   the preallocated transmit queue and resend store.
//! - `ready`, `timers`: the gateway's queues of sessions with work and heap
//!   of session deadlines, so its cost per event does not grow with the
//!   number of configured clients.
//! - `resend_queue`: what waits to be resent, light flows' first.
//! - `fair_queue`, `flow`: the send queue's fq_codel-style scheduling
//!   (flow-fair, sparse flows first, CoDel per flow) and flow hashing.
//! - [`route`](IpPrefix): tunnel prefixes, destination lookup and the
//!   cryptokey-routing check (a peer sends only from, and receives only
//!   for, its own prefixes).
//! - [`stats`](Stats): counters and estimates for metrics and tests.
//!
//! # Behaviour in brief
//! Each tunnel packet gets a global sequence number and is sent on the
//! link(s) the scheduler picks; each datagram also carries its link's own
//! packet number, and the peer acks those per link, on that link. Links that
//! idle are probed. When a link loses packets, or stops answering, the data
//! it carried is resent on the others while the receiver can still place it.
//! The receiver removes duplicates and restores order with a hold time
//! derived from the links' RTT spread.

mod client;
mod fair_queue;
mod flow;
mod gateway;
mod init_gate;
mod keys;
mod link;
mod packet_ring;
mod ready;
mod resend_queue;
mod route;
mod session;
mod stats;
mod timers;

use std::time::Duration;

pub use client::Client;
pub use gateway::{Gateway, GatewayError, GatewayTransmit, PeerConfig};
pub use route::{IpPrefix, PrefixError, destination};
pub use stats::{
    GatewayCounters, GatewayStats, LinkCounters, LinkStats, QueueDepth, Stats, Totals,
};

use crate::LinkId;
use crate::crypto;
use crate::paths::PathConfig;
use crate::reorder::ReorderConfig;
use crate::scheduler::Policy;
use crate::wire::{DATA_FRAME_HEADER_LEN, PAYLOAD_HEADER_LEN, TAG_LEN, TRANSPORT_HEADER_LEN};

/// Bytes the tunnel adds to an IP packet: transport header, payload header,
/// data frame header, AEAD tag and room for a piggybacked ack. The node sets
/// the TUN MTU to `link MTU - OVERHEAD - 28` (IPv4 + UDP headers), so no
/// datagram ever exceeds a link's MTU.
pub const OVERHEAD: usize = TRANSPORT_HEADER_LEN
    + PAYLOAD_HEADER_LEN
    + DATA_FRAME_HEADER_LEN
    + TAG_LEN
    + session::ACK_RESERVE;

/// Engine settings, shared by client and gateway.
#[derive(Debug, Clone)]
pub struct Config {
    /// How packets are spread over links.
    pub policy: Policy,
    /// Per-link loss detection and state machine.
    pub path: PathConfig,
    /// Reordering limits; `reorder.max_packet_size` is also the largest
    /// tunnel packet accepted from the TUN side.
    pub reorder: ReorderConfig,
    /// Client: start a new handshake when the keys are this old.
    /// Default [`crypto::REKEY_AFTER_TIME`] (120 s).
    pub rekey_after: Duration,
    /// How long replaced keys keep opening packets after a rekey, for
    /// packets still in flight on slow links. Default 60 s, so keys are
    /// never used past [`crypto::REJECT_AFTER_TIME`].
    pub previous_keys_for: Duration,
    /// Client: resend an unanswered handshake init after this long; also
    /// the longest wait between the faster retries that follow a silence of
    /// every link. Default [`crypto::HANDSHAKE_RETRY_AFTER`] (1 s).
    pub handshake_retry: Duration,
    /// Client: with no authenticated packet for this long the session is
    /// presumed lost and a fresh handshake starts. A backstop: a lost
    /// session (gateway restarted) is normally noticed within a few RTTs,
    /// when every link has gone `Down`. Links are probed several times a
    /// second, so 10 s of silence is not an idle session.
    pub dead_after: Duration,
    /// Gateway: forget a session with no authenticated packet for this long.
    /// Default [`crypto::REJECT_AFTER_TIME`] (180 s): its keys are unusable
    /// by then anyway.
    pub idle_timeout: Duration,
    /// Most tunnel packets waiting for a link with room. When full, the
    /// head of the flow with the most bytes queued is dropped to make room
    /// (never the arriving packet, so a sparse flow is not starved by a
    /// bulk one). Default 512: CoDel keeps the queue short, this only
    /// bounds bursts (and the extra pool slots it costs).
    pub queue_packets: usize,
    /// A queued packet not sent within this time is dropped: when no link
    /// can take it, a late packet is worse than a lost one. Default 500 ms.
    pub queue_delay: Duration,
    /// Flow buckets of the send queue: packets are hashed by IP 5-tuple
    /// into one of these, and buckets take turns (deficit round robin,
    /// one max-size packet per turn), flows with no backlog first. Default
    /// 256: a site's concurrent bulk flows rarely share a bucket, and the
    /// table stays a few kilobytes.
    pub flow_queues: usize,
    /// CoDel target: queueing delay a flow may keep standing in the send
    /// queue. Default 5 ms, RFC 8289's value (5-10% of a typical RTT).
    pub codel_target: Duration,
    /// CoDel interval: how long a flow's delay must stay above target before
    /// its head packets are dropped (then at `interval / sqrt(n)`). Default
    /// 100 ms, RFC 8289's value: about a worst-case RTT of the links, so a
    /// TCP flow has time to react to one drop before the next.
    pub codel_interval: Duration,
    /// Sent packets kept for resending (ring slots, each
    /// `reorder.max_packet_size` bytes). Default 2048: 2 s at 1000
    /// packets/s, 20 ms at 100k packets/s; resends older than the reorder
    /// hold cap are useless anyway.
    pub history_packets: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            path: PathConfig::default(),
            reorder: ReorderConfig::default(),
            rekey_after: crypto::REKEY_AFTER_TIME,
            previous_keys_for: crypto::REJECT_AFTER_TIME - crypto::REKEY_AFTER_TIME,
            handshake_retry: crypto::HANDSHAKE_RETRY_AFTER,
            dead_after: Duration::from_secs(10),
            idle_timeout: crypto::REJECT_AFTER_TIME,
            queue_packets: 512,
            queue_delay: Duration::from_millis(500),
            flow_queues: 256,
            codel_target: Duration::from_millis(5),
            codel_interval: Duration::from_millis(100),
            history_packets: 2048,
        }
    }
}

/// One datagram the client wants sent: `buf[..len]` on the socket of `link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub link: LinkId,
    pub len: usize,
}
