//! The gateway engine: answers handshakes from configured clients and keeps
//! one session per client, keyed by the client's static key.
//!
//! Unauthenticated input never creates state and never gets a reply bigger
//! than itself: garbage, unknown keys and bad inits are dropped silently
//! (counted); inits pass the [`InitGate`] first (mac1, and under load a
//! cookie reply instead of the handshake); a valid init gets a response
//! smaller than the init and keys that stay pending until the client's
//! first transport packet under them authenticates (key confirmation).
//! Only then does a session exist.
//!
//! A client may send only from its own tunnel addresses (cryptokey
//! routing): a decrypted packet with any other source is dropped and
//! counted, so one client cannot pose as another.
//!
//! Work per packet and per timer does not grow with the number of
//! configured clients: sessions are found by receiver index in a hash map,
//! sessions with packets to deliver or send wait in [`ReadyQueue`]s, and
//! their deadlines in a [`TimerHeap`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use crate::crypto::{HandshakeError, KeyError, KnownPeer, Psk, PublicKey, Responder, StaticSecret};
use crate::wire::{
    COOKIE_REPLY_LEN, HANDSHAKE_RESPONSE_LEN, HandshakeInit, Packet, TransportHeader,
};

use super::init_gate::{InitGate, Verdict};
use super::keys::KeySlot;
use super::ready::ReadyQueue;
use super::route::{IpPrefix, RouteTable, allowed, destination, source};
use super::session::{Arrival, Session};
use super::timers::TimerHeap;
use super::{Config, GatewayCounters, GatewayStats};

/// Set in a client's handshake `sender_index` when the handshake starts a new
/// data plane (first connection, or after the client lost its session, e.g.
/// it restarted): the gateway then drops the old session's sequence state
/// instead of continuing it, as it does for a rekey. The index is otherwise
/// opaque to the gateway, so the flag costs no wire format change.
pub(crate) const FRESH_SESSION_BIT: u32 = 1 << 31;

/// Handshake responses and cookie replies waiting to be sent; more are
/// dropped (the client retries), which bounds what a flood can queue. Above
/// the daemon's receive batch (128 datagrams, drained before the next), so
/// a flood's cookie replies do not push out a real client's.
const MAX_PENDING_REPLIES: usize = 256;

/// The largest reply to an init: a response or a cookie reply.
const MAX_REPLY_LEN: usize = HANDSHAKE_RESPONSE_LEN;
const _: () = assert!(COOKIE_REPLY_LEN <= MAX_REPLY_LEN);

/// A handshake response or cookie reply waiting to be sent.
#[derive(Debug)]
struct Reply {
    to: SocketAddr,
    len: usize,
    bytes: [u8; MAX_REPLY_LEN],
}

/// A client the gateway accepts.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The client's static public key: its identity.
    pub public: PublicKey,
    /// The pre-shared key mixed into this client's handshakes.
    pub psk: Psk,
    /// Tunnel addresses routed to this client (its own address, usually
    /// one IPv4 and one IPv6 host prefix).
    pub tunnel_addrs: Vec<IpPrefix>,
}

/// Why a gateway could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Two peers have the same static key.
    #[error("peer {0} is configured twice (each client needs its own key)")]
    DuplicatePeer(PublicKey),
    /// Two peers claim the same tunnel prefix.
    #[error("tunnel prefix {prefix} is claimed by peers {first} and {second}")]
    DuplicatePrefix {
        prefix: IpPrefix,
        first: PublicKey,
        second: PublicKey,
    },
    /// The Noise responder could not be set up.
    #[error("handshake setup failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// No randomness for the cookie secret.
    #[error("cookie secret: {0}")]
    Cookie(#[from] KeyError),
    /// No randomness for the first session index.
    #[error("session indices: {0}")]
    SessionIndex(#[source] KeyError),
}

/// A random first session index (see `Gateway::next_index`).
fn first_index() -> Result<u32, GatewayError> {
    let random = crate::crypto::random_key("session index").map_err(GatewayError::SessionIndex)?;
    Ok(u32::from_le_bytes([
        random[0], random[1], random[2], random[3],
    ]))
}

/// One datagram the gateway wants sent: `buf[..len]` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayTransmit {
    pub to: SocketAddr,
    pub len: usize,
}

/// Keys of a verified init, waiting for the client to use them.
#[derive(Debug)]
struct Pending {
    slot: KeySlot,
    fresh: bool,
}

/// A configured client. Pending keys and the session are boxed: they hold
/// replay windows and queues worth kilobytes, and most of ten thousand
/// configured clients have neither at any one time.
#[derive(Debug)]
struct Peer {
    config: PeerConfig,
    last_init_ns: Option<u64>,
    pending: Option<Box<Pending>>,
    session: Option<Box<Session>>,
}

/// The gateway side of circus tunnels: see the [module docs](self).
#[derive(Debug)]
pub struct Gateway {
    config: Config,
    responder: Responder,
    gate: InitGate,
    peers: Vec<Peer>,
    by_key: HashMap<PublicKey, usize>,
    /// Our session indices (current, previous and pending keys) to peers.
    by_index: HashMap<u32, usize>,
    routes: RouteTable,
    replies: VecDeque<Reply>,
    /// The next session index to hand out. It starts at a random value, as
    /// WireGuard's do: a restarted gateway then does not give a new
    /// session the index the old one had, so the client's datagrams still
    /// in flight for the old session are refused as of an unknown index
    /// (the sign that tells the client to handshake again), not taken for
    /// the new session's and refused as unauthentic.
    next_index: u32,
    /// Sessions that may have datagrams to send, and packets to deliver,
    /// served round robin so one busy client cannot starve the others.
    sendable: ReadyQueue,
    deliverable: ReadyQueue,
    /// Sessions whose deadline may have moved since it was last armed:
    /// recomputed once per `poll_timeout`, not once per packet.
    retime: ReadyQueue,
    timers: TimerHeap,
    /// Peers due in the current `handle_timeout` (kept for its capacity).
    due: Vec<usize>,
    /// Confirmed sessions, counted so `session_count` needs no scan.
    sessions: usize,
    scratch: Vec<u8>,
    counters: GatewayCounters,
}

impl Gateway {
    /// A gateway with static key `local` accepting `peers`.
    pub fn new(
        config: Config,
        local: StaticSecret,
        peers: Vec<PeerConfig>,
    ) -> Result<Self, GatewayError> {
        let mut by_key = HashMap::new();
        let mut routes = RouteTable::default();
        let mut owners: HashMap<IpPrefix, usize> = HashMap::new();
        for (i, peer) in peers.iter().enumerate() {
            if by_key.insert(peer.public, i).is_some() {
                return Err(GatewayError::DuplicatePeer(peer.public));
            }
            for &prefix in &peer.tunnel_addrs {
                if let Some(&first) = owners.get(&prefix) {
                    return Err(GatewayError::DuplicatePrefix {
                        prefix,
                        first: peers[first].public,
                        second: peer.public,
                    });
                }
                owners.insert(prefix, i);
                routes.insert(prefix, i);
            }
        }
        let scratch = vec![0; config.reorder.max_packet_size + super::OVERHEAD + 64];
        let n = peers.len();
        Ok(Self {
            gate: InitGate::new(&local.public_key())?,
            responder: Responder::new(local)?,
            config,
            peers: peers
                .into_iter()
                .map(|config| Peer {
                    config,
                    last_init_ns: None,
                    pending: None,
                    session: None,
                })
                .collect(),
            by_key,
            by_index: HashMap::new(),
            routes,
            replies: VecDeque::with_capacity(MAX_PENDING_REPLIES),
            next_index: first_index()?,
            sendable: ReadyQueue::new(n),
            deliverable: ReadyQueue::new(n),
            retime: ReadyQueue::new(n),
            timers: TimerHeap::new(n),
            due: Vec::new(),
            sessions: 0,
            scratch,
            counters: GatewayCounters::default(),
        })
    }

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        match Packet::parse(datagram) {
            Ok(Packet::HandshakeInit(init)) => self.on_init(now, from, &init),
            Ok(Packet::Transport(t)) => self.on_transport(now, from, t.header, datagram),
            Ok(Packet::HandshakeResponse(_) | Packet::CookieReply(_)) | Err(_) => {
                self.counters.malformed += 1
            }
        }
    }

    fn on_init(&mut self, now: Instant, from: SocketAddr, init: &HandshakeInit<'_>) {
        if self.replies.len() == MAX_PENDING_REPLIES {
            self.counters.responses_dropped += 1;
            return;
        }
        let mut reply = [0u8; MAX_REPLY_LEN];
        match self.gate.judge(now, from, init, &mut reply) {
            Verdict::Process => {}
            Verdict::CookieReply(len) => {
                self.counters.cookie_replies += 1;
                self.replies.push_back(Reply {
                    to: from,
                    len,
                    bytes: reply,
                });
                return;
            }
            Verdict::BadMac1 => {
                self.counters.inits_bad_mac1 += 1;
                return;
            }
            Verdict::RateLimited => {
                self.counters.inits_rate_limited += 1;
                return;
            }
        }
        let index = self.allocate_index();
        let (by_key, peers) = (&self.by_key, &self.peers);
        let lookup = |key: &PublicKey| {
            by_key.get(key).map(|&i| KnownPeer {
                psk: &peers[i].config.psk,
                last_timestamp_ns: peers[i].last_init_ns,
            })
        };
        let Ok(accepted) = self.responder.respond(init, index, lookup, &mut reply) else {
            self.counters.handshakes_refused += 1;
            return;
        };
        let Some(&i) = self.by_key.get(&accepted.peer) else {
            self.counters.handshakes_refused += 1;
            return;
        };
        let peer = &mut self.peers[i];
        peer.last_init_ns = Some(accepted.timestamp_ns);
        let slot = KeySlot::new(
            now,
            accepted.session.keys,
            index,
            accepted.session.remote_index,
        );
        let fresh = init.sender_index & FRESH_SESSION_BIT != 0;
        if let Some(old) = peer.pending.replace(Box::new(Pending { slot, fresh })) {
            self.by_index.remove(&old.slot.local_index);
        }
        self.by_index.insert(index, i);
        self.replies.push_back(Reply {
            to: from,
            len: accepted.response_len,
            bytes: reply,
        });
        self.counters.handshakes_answered += 1;
    }

    fn allocate_index(&mut self) -> u32 {
        // 0 stays unused: nothing is ever addressed to it by mistake.
        loop {
            let index = self.next_index;
            self.next_index = self.next_index.wrapping_add(1);
            if index != 0 && !self.by_index.contains_key(&index) {
                return index;
            }
        }
    }

    fn on_transport(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: TransportHeader,
        datagram: &[u8],
    ) {
        let Some(&i) = self.by_index.get(&header.receiver_index) else {
            self.counters.unknown_index += 1;
            return;
        };
        let peer = &mut self.peers[i];
        let len = if peer
            .pending
            .as_ref()
            .is_some_and(|p| p.slot.local_index == header.receiver_index)
        {
            let Some(pending) = peer.pending.as_mut() else {
                return;
            };
            let Ok(len) = pending.slot.open(header, datagram, &mut self.scratch) else {
                self.counters.unauthentic += 1;
                return;
            };
            // Confirmed: the client has these keys and our psk.
            let Some(Pending { slot, fresh }) = peer.pending.take().map(|p| *p) else {
                return;
            };
            if fresh || peer.session.is_none() {
                if let Some(old) = peer.session.take() {
                    for index in old.keys.indices() {
                        self.by_index.remove(&index);
                    }
                } else {
                    self.sessions += 1;
                }
                peer.session = Some(Box::new(Session::new(now, &self.config, true)));
            }
            let Some(session) = peer.session.as_mut() else {
                return;
            };
            if let Some(dropped) = session
                .keys
                .install(now, slot, self.config.previous_keys_for)
            {
                self.by_index.remove(&dropped);
            }
            session.count_handshake();
            len
        } else {
            let Some(session) = peer.session.as_mut() else {
                self.counters.unknown_index += 1;
                return;
            };
            match session.keys.open(now, header, datagram, &mut self.scratch) {
                Ok(len) => len,
                Err(e) => {
                    session.count_open_error(e);
                    return;
                }
            }
        };
        let Some(session) = peer.session.as_mut() else {
            return;
        };
        let plaintext = &self.scratch[..len];
        let closed =
            session.handle_plaintext(now, Arrival::Remote(from), datagram.len(), plaintext);
        // A session whose confirming packet did not even parse has never
        // heard from its client: it goes as it came.
        if closed || session.last_received.is_none() {
            self.drop_session(i);
        } else {
            self.sendable.push(i);
            self.deliverable.push(i);
            self.retime.push(i);
        }
    }

    fn drop_session(&mut self, i: usize) {
        if let Some(old) = self.peers[i].session.take() {
            self.sessions -= 1;
            self.timers.disarm(i);
            for index in old.keys.indices() {
                self.by_index.remove(&index);
            }
        }
    }

    /// An IP packet from the TUN device: queued on the session of the client
    /// whose tunnel prefixes contain its destination (IPv4 or IPv6), or
    /// dropped and counted.
    pub fn handle_tun_packet(&mut self, now: Instant, packet: &[u8]) {
        let Some(i) = destination(packet).and_then(|ip| self.routes.lookup(ip)) else {
            self.counters.unroutable += 1;
            return;
        };
        match self.peers[i].session.as_mut() {
            Some(session) => {
                session.handle_tun_packet(now, packet);
                self.sendable.push(i);
                self.retime.push(i);
            }
            None => self.counters.unroutable += 1,
        }
    }

    /// Runs the timers that are due; forgets sessions idle past
    /// `idle_timeout`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.retime_sessions();
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        while let Some(i) = self.timers.pop_due(now) {
            due.push(i);
        }
        for &i in &due {
            self.run_timers(now, i);
        }
        self.due = due;
    }

    fn run_timers(&mut self, now: Instant, i: usize) {
        let Some(session) = self.peers[i].session.as_mut() else {
            return;
        };
        if let Some(expired) = session.handle_timeout(now) {
            self.by_index.remove(&expired);
        }
        let idle = session
            .last_received
            .is_none_or(|t| now.saturating_duration_since(t) >= self.config.idle_timeout);
        if idle {
            self.drop_session(i);
        } else {
            // Timers release held packets, resends and probes.
            self.sendable.push(i);
            self.deliverable.push(i);
            self.retime.push(i);
        }
    }

    /// Re-arms the deadline of every session that changed since the last
    /// call.
    fn retime_sessions(&mut self) {
        let idle = self.config.idle_timeout;
        while let Some(i) = self.retime.pop_front() {
            let deadline = self.peers[i].session.as_mut().and_then(|s| {
                let forget = s.last_received.map(|t| t + idle);
                s.poll_timeout().into_iter().chain(forget).min()
            });
            self.timers.arm(i, deadline);
        }
    }

    /// Writes the next datagram into `buf` and says where it goes: pending
    /// handshake responses and cookie replies first, then sessions in turn.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<GatewayTransmit> {
        if let Some(reply) = self.replies.pop_front() {
            let out = buf.get_mut(..reply.len)?;
            out.copy_from_slice(reply.bytes.get(..reply.len)?);
            return Some(GatewayTransmit {
                to: reply.to,
                len: reply.len,
            });
        }
        while let Some(i) = self.sendable.front() {
            let Some(session) = self.peers[i].session.as_mut() else {
                self.sendable.pop_front();
                continue;
            };
            self.retime.push(i);
            while let Some((link, len)) = session.poll_transmit(now, buf) {
                // Links are learned from the client's packets, so every link
                // has an address; the check only guards the invariant.
                if let Some(to) = session.remote(link) {
                    self.sendable.rotate();
                    return Some(GatewayTransmit { to, len });
                }
            }
            self.sendable.pop_front();
        }
        None
    }

    /// The next tunnel packet for the TUN device (sessions in turn, each in
    /// order). A packet whose source is not among its client's tunnel
    /// addresses is dropped and counted (`dropped_not_allowed`).
    pub fn poll_deliver(&mut self, buf: &mut [u8]) -> Option<usize> {
        while let Some(i) = self.deliverable.front() {
            let Peer {
                config, session, ..
            } = &mut self.peers[i];
            let Some(session) = session.as_mut() else {
                self.deliverable.pop_front();
                continue;
            };
            let theirs = &config.tunnel_addrs;
            if let Some(len) = session.poll_deliver(buf, |p| allowed(theirs, source, p)) {
                self.retime.push(i);
                self.deliverable.rotate();
                return Some(len);
            }
            self.deliverable.pop_front();
        }
        None
    }

    /// When `handle_timeout` must run next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.retime_sessions();
        self.timers.next()
    }

    /// Whether the client with key `public` has a confirmed session.
    pub fn has_session(&self, public: &PublicKey) -> bool {
        self.by_key
            .get(public)
            .is_some_and(|&i| self.peers[i].session.is_some())
    }

    /// Number of confirmed sessions.
    pub fn session_count(&self) -> usize {
        self.sessions
    }

    /// Per-session stats and gateway-wide counters (a scan of every
    /// configured client: for metrics, not per packet).
    pub fn stats(&self) -> GatewayStats {
        GatewayStats {
            sessions: self
                .peers
                .iter()
                .filter_map(|p| p.session.as_ref().map(|s| (p.config.public, s.stats())))
                .collect(),
            counters: self.counters,
        }
    }
}
