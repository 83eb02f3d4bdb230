//! The client engine: initiates the handshake and drives rekeys around one
//! session with the gateway.
//!
//! It also notices a lost session by itself. A restarted gateway has no
//! keys for the old session and can only drop its packets, so every link
//! goes `Down` within a few RTTs of the restart (links are probed even when
//! idle). The client then starts a fresh handshake in parallel with the old
//! session, retried with a short backoff while the silence lasts
//! ([`Recovery`]). Nothing unauthenticated triggers this, so a stranger
//! cannot tear a session down; at worst a blackholed site sends an init per
//! link per `handshake_retry`, as a connecting client does.

use std::time::{Duration, Instant};

use crate::LinkId;
use crate::crypto::{
    COOKIE_USABLE_FOR, Cookie, Initiator, Psk, PublicKey, REKEY_AFTER_MESSAGES, StaticSecret,
};
use crate::paths::PathState;
use crate::wire::Packet;

use super::keys::KeySlot;
use super::route::{IpPrefix, allowed, destination, is_link_scoped};
use super::session::{Arrival, Session};
use super::{Config, QueueDepth, Stats, Transmit, gateway::FRESH_SESSION_BIT};

/// A handshake in progress.
#[derive(Debug)]
struct Handshake {
    /// Holds the init, sent once on every link that is up.
    initiator: Initiator,
    /// Whether the session's data plane starts over with these keys (first
    /// connection, or the old session was lost); a rekey keeps it.
    fresh: bool,
    /// Links the current init still has to go out on.
    pending_links: Vec<LinkId>,
}

/// First retry delay of a handshake the tunnel waits for (the first
/// connect, or one started because every link went silent); it doubles
/// after each unanswered attempt, up to `handshake_retry`. A rekey of a
/// working session is in no hurry and retries at `handshake_retry`.
///
/// 100 ms: a restarted gateway is back in service within that much of its
/// return plus a round trip while the backoff is short, an init lost to a
/// gateway whose socket overflows under a flood costs 100 ms rather than a
/// second, and an outage that lasts has the attempts slow to one per
/// `handshake_retry` within a second. Four inits per link in the first
/// second stay within the gateway's per-source budget (8 per second,
/// burst 16).
const CONNECT_FIRST_RETRY: Duration = Duration::from_millis(100);

/// A session presumed lost because every link went silent: a fresh
/// handshake runs while the old session keeps probing.
#[derive(Debug, Clone, Copy)]
struct Recovery {
    /// When the silence was noticed: an authenticated packet of the old
    /// session after this shows the gateway still has it.
    since: Instant,
}

/// A cookie the gateway sent to one link's address, for the init's mac2.
#[derive(Debug, Clone, Copy)]
struct LinkCookie {
    link: LinkId,
    cookie: Cookie,
    received: Instant,
}

/// The client side of a circus tunnel: see the [module docs](super).
///
/// The client connects by itself: the first `poll_transmit` after links are
/// added sends a handshake init on each of them, and it is resent every
/// `handshake_retry` until the gateway answers on any link.
#[derive(Debug)]
pub struct Client {
    config: Config,
    local: StaticSecret,
    gateway: PublicKey,
    psk: Psk,
    /// Our own tunnel prefixes: the only destinations the gateway may send
    /// us packets for.
    tunnel_addrs: Vec<IpPrefix>,
    /// Unix time at `created`: handshake timestamps are derived from `now`,
    /// so they increase even though the engine reads no clock.
    unix_at_created_ns: u64,
    created: Instant,
    session: Session,
    handshake: Option<Handshake>,
    /// When to send the next init (first attempt, retry or rekey).
    next_init_at: Option<Instant>,
    next_index: u32,
    /// The next handshake starts a new data plane.
    fresh: bool,
    /// Set while a silence of every link has a fresh handshake running.
    recovery: Option<Recovery>,
    /// Wait before the next attempt of a handshake the tunnel waits for
    /// (see [`CONNECT_FIRST_RETRY`]).
    connect_retry: Duration,
    /// [`close`](Client::close) was called: nothing but the Close goes out.
    closed: bool,
    /// The gateway's latest cookie per link (each link sends from its own
    /// address, and a cookie proves one address); at most one per link.
    cookies: Vec<LinkCookie>,
    scratch: Vec<u8>,
}

impl Client {
    /// A client for the gateway with static key `gateway`.
    ///
    /// `unix_time_ns` is the wall-clock time matching `now`; handshake inits
    /// carry timestamps derived from it, and the gateway refuses an init not
    /// newer than the last one it accepted from this client.
    ///
    /// `tunnel_addrs` are this client's own tunnel prefixes (its address,
    /// and any subnet behind it that the gateway routes here): a packet
    /// from the gateway for any other destination is dropped and counted,
    /// as WireGuard does with its allowed IPs.
    pub fn new(
        config: Config,
        local: StaticSecret,
        gateway: PublicKey,
        psk: Psk,
        tunnel_addrs: Vec<IpPrefix>,
        now: Instant,
        unix_time_ns: u64,
    ) -> Self {
        let session = Session::new(now, &config, false);
        let scratch = vec![0; config.reorder.max_packet_size + super::OVERHEAD + 64];
        Self {
            config,
            local,
            gateway,
            psk,
            tunnel_addrs,
            unix_at_created_ns: unix_time_ns,
            created: now,
            session,
            handshake: None,
            next_init_at: Some(now),
            // Low bits of the time: a restarted client does not reuse the
            // index its predecessor had a moment ago.
            next_index: (unix_time_ns / 1000) as u32 & !FRESH_SESSION_BIT,
            fresh: true,
            recovery: None,
            connect_retry: CONNECT_FIRST_RETRY,
            closed: false,
            cookies: Vec::new(),
            scratch,
        }
    }

    /// Adds a link (an interface with its own socket); it is probed, and
    /// used once its state is `Up`.
    pub fn link_add(&mut self, now: Instant, link: LinkId) {
        self.session.add_link(now, link);
        if let Some(h) = &mut self.handshake
            && !h.pending_links.contains(&link)
        {
            h.pending_links.push(link);
        }
    }

    /// Ends the session for a clean shutdown: the following `poll_transmit`
    /// calls return one Close per link with carrier, so the gateway frees
    /// the session at once instead of keeping it until it times out; after
    /// them, and from now on, nothing else is sent and no timer is due.
    /// Drain `poll_transmit`, then stop.
    pub fn close(&mut self) {
        self.closed = true;
        self.handshake = None;
        self.next_init_at = None;
        self.recovery = None;
        self.session.close();
    }

    /// Removes a link; data it had in flight is resent on the others.
    pub fn link_remove(&mut self, now: Instant, link: LinkId) {
        self.session.remove_link(now, link);
    }

    /// The link's interface came up (carrier, address): it is probed again.
    pub fn link_up(&mut self, now: Instant, link: LinkId) {
        self.session.set_carrier(now, link, true);
    }

    /// The link's interface went down: it is out of use at once, without
    /// waiting for acks to stop.
    pub fn link_down(&mut self, now: Instant, link: LinkId) {
        self.session.set_carrier(now, link, false);
    }

    /// State of one link, `None` if unknown.
    pub fn link_state(&self, link: LinkId) -> Option<PathState> {
        self.session.link_state(link)
    }

    /// The gateway's public key, for status displays.
    pub fn gateway_key(&self) -> PublicKey {
        self.gateway
    }

    /// Whether a handshake completed and the session is not presumed lost.
    pub fn is_connected(&self) -> bool {
        self.session.keys.current_ref().is_some() && !self.fresh
    }

    /// How full the send queue is. While it is full,
    /// [`handle_tun_packet`](Self::handle_tun_packet) drops a queued packet
    /// for each one it takes: a driver that stops reading its TUN device
    /// meanwhile sheds overload where it costs nothing (the kernel drops
    /// at the device's queue) instead of spending a read and a copy on
    /// every packet, then dropping one.
    pub fn send_queue(&self) -> QueueDepth {
        self.session.send_queue()
    }

    /// Queues an IP packet read from the TUN device. Dropped (and counted)
    /// when the queue is full or the packet exceeds the configured maximum.
    /// The TUN device's own link-scoped chatter (router solicitations,
    /// listener reports from its link-local address) is dropped uncounted:
    /// it is not traffic, and the gateway would count it as spoofed.
    pub fn handle_tun_packet(&mut self, now: Instant, packet: &[u8]) {
        if !is_link_scoped(packet) {
            self.session.handle_tun_packet(now, packet);
        }
    }

    /// A datagram arrived on `link`'s socket. Anything that does not
    /// authenticate is dropped without a trace but a counter.
    pub fn handle_datagram(&mut self, now: Instant, link: LinkId, datagram: &[u8]) {
        match Packet::parse(datagram) {
            Ok(Packet::HandshakeResponse(response)) => {
                // The old session may have spoken earlier in this batch:
                // then the gateway kept it and this answer is not needed.
                self.check_silence(now);
                let Some(h) = &mut self.handshake else {
                    return;
                };
                let Ok(established) = h.initiator.finish(&response) else {
                    return;
                };
                let index = h.initiator.sender_index();
                let fresh = h.fresh;
                self.handshake = None;
                self.next_init_at = None;
                self.recovery = None;
                self.connect_retry = CONNECT_FIRST_RETRY;
                if fresh && self.session.keys.current_ref().is_some() {
                    self.restart_session(now);
                }
                self.fresh = false;
                let slot = KeySlot::new(now, established.keys, index, established.remote_index);
                self.session
                    .keys
                    .install(now, slot, self.config.previous_keys_for);
                self.session.count_handshake();
                // The gateway sends nothing with the new keys until one of
                // our packets authenticates under them.
                self.session.confirm_on(link);
            }
            Ok(Packet::CookieReply(reply)) => {
                let Some(h) = &mut self.handshake else {
                    return;
                };
                let Ok(cookie) = h.initiator.open_cookie_reply(&reply) else {
                    self.session.count_malformed();
                    return;
                };
                // The gateway is under load and did not take the init from
                // this link: send it again at once, now with proof of our
                // address, rather than after a retry interval.
                if !h.pending_links.contains(&link) {
                    h.pending_links.push(link);
                }
                let stored = LinkCookie {
                    link,
                    cookie,
                    received: now,
                };
                match self.cookies.iter_mut().find(|c| c.link == link) {
                    Some(slot) => *slot = stored,
                    None => self.cookies.push(stored),
                }
            }
            Ok(Packet::Transport(transport)) => {
                let opened =
                    self.session
                        .keys
                        .open(now, transport.header, datagram, &mut self.scratch);
                match opened {
                    Ok(len) => {
                        let plaintext = &self.scratch[..len];
                        let closed = self.session.handle_plaintext(
                            now,
                            Arrival::Local(link),
                            datagram.len(),
                            plaintext,
                        );
                        if closed {
                            // The gateway ended the session: start afresh.
                            self.fresh = true;
                            self.next_init_at = Some(now);
                        }
                    }
                    Err(e) => self.session.count_open_error(e),
                }
            }
            Ok(Packet::HandshakeInit(_)) | Err(_) => self.session.count_malformed(),
        }
    }

    /// A new data plane for the same links, after the old session was lost.
    fn restart_session(&mut self, now: Instant) {
        let mut session = Session::new(now, &self.config, false);
        for (link, carrier) in self.session.links() {
            session.add_link(now, link);
            if !carrier {
                session.set_carrier(now, link, false);
            }
        }
        session.keys = std::mem::take(&mut self.session.keys);
        self.session = session;
    }

    /// Runs timers: handshake retries and rekeys, path timers, key expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.session.handle_timeout(now);
        self.check_session(now);
    }

    /// Decides whether a handshake is due: none yet, keys old or worn,
    /// every link silent (at once), or the gateway silent for `dead_after`.
    fn check_session(&mut self, now: Instant) {
        self.check_silence(now);
        if self.handshake.is_some() || self.next_init_at.is_some() {
            return;
        }
        let Some(keys) = self.session.keys.current_ref() else {
            self.next_init_at = Some(now);
            return;
        };
        let heard = self.session.last_received.unwrap_or(keys.established);
        if now.saturating_duration_since(heard.max(keys.established)) >= self.config.dead_after {
            self.fresh = true;
            self.next_init_at = Some(now);
        } else if now.saturating_duration_since(keys.established) >= self.config.rekey_after
            || keys.sent() >= REKEY_AFTER_MESSAGES
        {
            self.next_init_at = Some(now);
        }
    }

    /// Starts a recovery when every link has gone silent, and ends it when
    /// the old session speaks again (the gateway kept it: the fresh
    /// handshake, not yet confirmed, is dropped and the gateway's pending
    /// keys for it are never used).
    fn check_silence(&mut self, now: Instant) {
        match self.recovery {
            Some(r) if self.session.last_received.is_some_and(|t| t > r.since) => {
                self.recovery = None;
                self.handshake = None;
                self.next_init_at = None;
                self.fresh = false;
            }
            None if self.is_connected() && self.session.all_links_silent() => {
                // A rekey under way is superseded: it would not restart
                // the data plane, and a restarted gateway's must.
                self.recovery = Some(Recovery { since: now });
                self.connect_retry = CONNECT_FIRST_RETRY;
                self.fresh = true;
                self.next_init_at = Some(now);
            }
            _ => {}
        }
    }

    /// When to resend an unanswered init: `handshake_retry` for a rekey of
    /// a working session, else the connect backoff, doubled for the attempt
    /// after.
    fn next_retry(&mut self) -> Duration {
        let cap = self.config.handshake_retry;
        if self.is_connected() && self.recovery.is_none() {
            return cap;
        }
        let retry = self.connect_retry.min(cap);
        self.connect_retry = (retry * 2).min(cap);
        retry
    }

    /// Starts (or restarts) a handshake if one is due.
    fn drive_handshake(&mut self, now: Instant) {
        self.check_session(now);
        let retry_due = self.handshake.is_some() && self.next_init_at.is_some_and(|t| t <= now);
        if !(retry_due || (self.handshake.is_none() && self.next_init_at.is_some_and(|t| t <= now)))
        {
            return;
        }
        let fresh = self.fresh;
        let index = self.next_index | if fresh { FRESH_SESSION_BIT } else { 0 };
        self.next_index = self.next_index.wrapping_add(1) & !FRESH_SESSION_BIT;
        let elapsed = now.saturating_duration_since(self.created).as_nanos();
        let unix = self
            .unix_at_created_ns
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX));
        self.next_init_at = Some(now + self.next_retry());
        // Only fails without OS randomness; the retry timer tries again.
        let Ok((initiator, _len)) = Initiator::start(
            &self.local,
            &self.gateway,
            &self.psk,
            index,
            unix,
            &mut self.scratch,
        ) else {
            return;
        };
        let pending_links = self
            .session
            .links()
            .filter(|(_, carrier)| *carrier)
            .map(|(l, _)| l)
            .collect();
        self.handshake = Some(Handshake {
            initiator,
            fresh,
            pending_links,
        });
    }

    /// Writes the next datagram to send into `buf` (at least the link MTU)
    /// and says on which link.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if self.closed {
            let (link, len) = self.session.poll_close(now, buf)?;
            return Some(Transmit { link, len });
        }
        self.drive_handshake(now);
        if let Some(h) = &mut self.handshake
            && let Some(link) = h.pending_links.pop()
        {
            let cookie = self
                .cookies
                .iter()
                .find(|c| c.link == link)
                .filter(|c| now.saturating_duration_since(c.received) < COOKIE_USABLE_FOR)
                .map(|c| &c.cookie);
            let len = h.initiator.write_init(cookie, buf).ok()?;
            return Some(Transmit { link, len });
        }
        let (link, len) = self.session.poll_transmit(now, buf)?;
        Some(Transmit { link, len })
    }

    /// The next tunnel packet for the TUN device, in order; packets for a
    /// destination outside our tunnel prefixes are dropped and counted.
    pub fn poll_deliver(&mut self, buf: &mut [u8]) -> Option<usize> {
        let ours = &self.tunnel_addrs;
        self.session
            .poll_deliver(buf, |packet| allowed(ours, destination, packet))
    }

    /// When `handle_timeout` must run next (or something is due now).
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let handshake = self.next_init_at;
        let idle = self.handshake.is_none() && self.next_init_at.is_none();
        let rekey = self.session.keys.current_ref().filter(|_| idle).map(|k| {
            let dead = self
                .session
                .last_received
                .unwrap_or(k.established)
                .max(k.established)
                + self.config.dead_after;
            dead.min(k.established + self.config.rekey_after)
        });
        self.session
            .poll_timeout()
            .into_iter()
            .chain(handshake)
            .chain(rekey)
            .min()
    }

    /// Counters and per-link estimates.
    pub fn stats(&self) -> Stats {
        self.session.stats()
    }
}
