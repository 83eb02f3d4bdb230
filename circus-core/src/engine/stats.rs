//! Counters and per-link estimates for logs, metrics and tests.
//!
//! Counters only grow; estimates are the latest values. `stats()` builds a
//! fresh snapshot (it allocates a little), so call it for metrics, not per
//! packet.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::LinkId;
use crate::crypto::PublicKey;
use crate::paths::PathState;

/// Traffic counters of one link, as seen by one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Datagrams sent on the link (data, acks, probes).
    pub packets_sent: u64,
    /// Bytes of those datagrams.
    pub bytes_sent: u64,
    /// Authenticated datagrams received on the link.
    pub packets_received: u64,
    /// Bytes of those datagrams.
    pub bytes_received: u64,
    /// Datagrams that carried a tunneled packet (first copies and resends).
    pub data_sent: u64,
    /// Of `data_sent`, the resends of packets lost on another (or this) link.
    pub resent: u64,
    /// Datagrams with no data that carried a Ping (probes and eliciting acks).
    pub pings_sent: u64,
    /// Datagrams with no data that carried only an ack.
    pub acks_sent: u64,
    /// Times the link's state changed.
    pub state_changes: u64,
}

/// One link: its estimates and counters.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkStats {
    pub link: LinkId,
    pub state: PathState,
    /// Smoothed round-trip time (RFC 9002).
    pub srtt: Duration,
    /// Round-trip time variation.
    pub rttvar: Duration,
    /// Fraction of recent packets declared lost, 0.0 to 1.0.
    pub loss_rate: f32,
    /// Estimated delivery rate in bytes per second.
    pub delivery_rate: u64,
    /// Bytes sent and neither acknowledged nor declared lost.
    pub bytes_in_flight: u64,
    /// Most bytes bulk packets may keep in flight (see
    /// [`Path::in_flight_cap`](crate::paths::Path::in_flight_cap)).
    pub in_flight_cap: u64,
    /// Lowest RTT seen since the link last came back.
    pub min_rtt: Duration,
    /// Queueing delay of the peer's acks on their way back.
    pub return_delay: Duration,
    /// Gateway side: the client's current address on this link.
    pub remote: Option<SocketAddr>,
    pub counters: LinkCounters,
}

/// How full the send queue is: what a driver needs to stop reading its
/// TUN device while the queue is full (see [`Client::send_queue`](super::Client::send_queue)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    /// Packets waiting to be sent.
    pub queued: usize,
    /// Most packets the queue holds ([`Config::queue_packets`](super::Config::queue_packets)).
    pub limit: usize,
    /// Some link can send, so the queue drains. A full queue that drains
    /// is overload; one that does not is an outage, where reading on costs
    /// nothing that matters and lets the queue keep light flows' packets
    /// (it drops bulk ones to make room) until a link returns.
    pub draining: bool,
}

impl QueueDepth {
    /// Whether the next packet queued would drop another.
    pub fn is_full(&self) -> bool {
        self.queued >= self.limit
    }
}

/// Session-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Packets accepted from the local TUN side.
    pub tun_packets: u64,
    /// Bytes of those packets.
    pub tun_bytes: u64,
    /// Queued packets dropped to make room for an arriving one while the
    /// transmit queue was full (from the head of the longest flow).
    pub dropped_queue_full: u64,
    /// Queued packets dropped by CoDel: their flow kept a standing queue
    /// above the target delay.
    pub dropped_codel: u64,
    /// TUN packets dropped because they exceed the configured maximum size.
    pub dropped_too_large: u64,
    /// Decrypted tunnel packets dropped by cryptokey routing (WireGuard's
    /// allowed IPs): the peer may not send them. On the gateway, a source
    /// address outside the client's tunnel prefixes (a client spoofing
    /// another's address); on the client, a destination outside its own
    /// prefixes. Packets too short to hold the address count too.
    pub dropped_not_allowed: u64,
    /// Queued packets dropped because no link could take them in time.
    pub dropped_expired: u64,
    /// Resends of packets whose link lost them or failed.
    pub resent: u64,
    /// Packets delivered to the local TUN side, in order.
    pub delivered: u64,
    /// Bytes of those packets.
    pub delivered_bytes: u64,
    /// Received copies of packets already delivered or buffered.
    pub duplicates: u64,
    /// Received packets that came after their gap was given up.
    pub stale: u64,
    /// Sequence numbers given up as lost by the reorder buffer.
    pub lost: u64,
    /// Datagrams that failed authentication or decoding after decryption.
    pub rejected: u64,
    /// Datagrams refused by the replay window.
    pub replayed: u64,
    /// Handshakes completed (the first one and every rekey).
    pub handshakes: u64,
}

/// A snapshot of one session.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub links: Vec<LinkStats>,
    pub totals: Totals,
    /// When the keys in use were agreed (the last handshake), for status
    /// displays; `None` before the first.
    pub last_handshake: Option<Instant>,
    /// Current reorder hold time, derived from the links' RTT spread.
    pub hold_time: Duration,
}

impl Stats {
    /// The entry for `link`, if the session knows it.
    pub fn link(&self, link: LinkId) -> Option<&LinkStats> {
        self.links.iter().find(|l| l.link == link)
    }
}

/// Gateway-wide counters for traffic that belongs to no session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayCounters {
    /// Datagrams that did not parse as a circus packet.
    pub malformed: u64,
    /// Handshake inits refused (bad, unknown key, replayed).
    pub handshakes_refused: u64,
    /// Handshake responses sent.
    pub handshakes_answered: u64,
    /// Transport packets for an index no session holds.
    pub unknown_index: u64,
    /// Transport packets for a known index that did not authenticate.
    pub unauthentic: u64,
    /// TUN packets whose destination is no peer's tunnel address.
    pub unroutable: u64,
    /// Handshake inits dropped because the reply queue was full.
    pub responses_dropped: u64,
    /// Handshake inits without a valid mac1 (not made for this gateway),
    /// dropped before any other work.
    pub inits_bad_mac1: u64,
    /// Cookie replies sent: inits that came under load without proof of
    /// their source address.
    pub cookie_replies: u64,
    /// Proven inits over their source address's rate, under load.
    pub inits_rate_limited: u64,
}

/// A snapshot of the gateway: each session with its client's key.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayStats {
    pub sessions: Vec<(PublicKey, Stats)>,
    pub counters: GatewayCounters,
}
