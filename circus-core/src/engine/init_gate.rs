//! The gateway's gate in front of the handshake: which inits may cost
//! curve arithmetic, which get a cookie reply, which are dropped.
//!
//! An init costs the gateway several X25519 operations before it can tell
//! a client from a stranger or a replay, so a flood of inits from spoofed
//! addresses could keep it too busy to answer real clients. WireGuard's
//! answer (whitepaper section 5.4), followed here:
//! - an init without a valid mac1 (not made for this gateway) is dropped
//!   silently, always: one keyed hash, no reply;
//! - not under load, an init with a valid mac1 goes to the handshake;
//! - under load, only an init whose mac2 proves that its sender received
//!   a cookie at its source address goes on, and then only within a rate
//!   per source address (now proven, so a flood cannot spend a real
//!   client's budget); any other gets a cookie reply, smaller than the init
//!   and costing a few hashes, instead of the handshake.
//!
//! "Under load" means that more than [`LOAD_RATE`] inits per second (after
//! a burst of [`LOAD_BURST`]) had a valid mac1, and lasts [`LOAD_HOLD`]
//! after that was last true. So a spoofed flood gets no reply at all until
//! the gateway is under load, and cookie replies after: it never locks out
//! a client, who answers the cookie reply at once with a valid mac2.
//!
//! Nothing here allocates per packet: the per-source table is fixed-size.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::crypto::{CookieJar, KeyError, Mac2, PublicKey};
use crate::wire::HandshakeInit;

/// Inits per second with a valid mac1 that the gateway takes without proof
/// of address. The handshake costs about 0.2 ms of CPU here, so this is
/// about 4% of a core; ~100 clients reconnecting at once after a gateway
/// restart fit within the burst.
pub const LOAD_RATE: f64 = 200.0;
pub const LOAD_BURST: f64 = 400.0;
/// How long the gateway stays under load after the rate was last exceeded
/// (WireGuard's value): long enough that a flood does not flip it on and
/// off, so that a client's cookie is asked for consistently.
pub const LOAD_HOLD: Duration = Duration::from_secs(1);
/// Proven inits per second from one source address: a client behind one
/// NAT address with several links retries once a second per link.
pub const PER_SOURCE_RATE: f64 = 8.0;
/// Back-to-back inits from one source address: every link of a client
/// sending its first init at once (the daemon's 16-link maximum).
pub const PER_SOURCE_BURST: f64 = 16.0;

/// Per-source buckets. Two sources that share a slot share its budget;
/// the slot is a keyed hash, so an attacker cannot pick a victim's slot.
const SOURCE_SLOTS: usize = 1024;

/// What to do with an init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Go on with the handshake.
    Process,
    /// A cookie reply of this length was written; no handshake.
    CookieReply(usize),
    /// mac1 is wrong: not for us. No reply.
    BadMac1,
    /// Proven source over its rate. No reply.
    RateLimited,
}

/// See the [module docs](self).
#[derive(Debug)]
pub(super) struct InitGate {
    cookies: CookieJar,
    load: Bucket,
    under_load_until: Option<Instant>,
    sources: Box<[Bucket]>,
    source_hasher: RandomState,
}

impl InitGate {
    /// A gate for the gateway with public key `local`.
    pub(super) fn new(local: &PublicKey) -> Result<Self, KeyError> {
        Ok(Self {
            cookies: CookieJar::new(local)?,
            load: Bucket::FULL,
            under_load_until: None,
            sources: vec![Bucket::FULL; SOURCE_SLOTS].into_boxed_slice(),
            source_hasher: RandomState::new(),
        })
    }

    /// Judges `init` from `from`; a cookie reply goes into `reply` (at
    /// least [`crate::wire::COOKIE_REPLY_LEN`] bytes).
    pub(super) fn judge(
        &mut self,
        now: Instant,
        from: SocketAddr,
        init: &HandshakeInit<'_>,
        reply: &mut [u8],
    ) -> Verdict {
        if !self.cookies.mac1_valid(init) {
            return Verdict::BadMac1;
        }
        if !self.load.take(now, LOAD_RATE, LOAD_BURST) {
            self.under_load_until = Some(now + LOAD_HOLD);
        }
        if self.under_load_until.is_none_or(|until| now >= until) {
            return Verdict::Process;
        }
        if let Mac2::Missing(cookie) = self.cookies.check_mac2(now, from, init) {
            return match self.cookies.write_reply(&cookie, init, reply) {
                Ok(len) => Verdict::CookieReply(len),
                // Only a caller's too-small buffer; nothing to send then.
                Err(_) => Verdict::RateLimited,
            };
        }
        let slot = self.slot_of(from.ip());
        if self.sources[slot].take(now, PER_SOURCE_RATE, PER_SOURCE_BURST) {
            Verdict::Process
        } else {
            Verdict::RateLimited
        }
    }

    fn slot_of(&self, source: IpAddr) -> usize {
        (self.source_hasher.hash_one(source) % SOURCE_SLOTS as u64) as usize
    }
}

/// A token bucket: tokens refill at a rate up to a burst size.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Option<Instant>,
}

impl Bucket {
    const FULL: Bucket = Bucket {
        tokens: f64::INFINITY,
        updated: None,
    };

    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let elapsed = self
            .updated
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.updated = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{MacKeys, generate_keypair, init_mac2};
    use crate::wire::{COOKIE_REPLY_LEN, MAC_LEN, NOISE_INIT_LEN, Packet};

    const NOISE: [u8; NOISE_INIT_LEN] = [0x33; NOISE_INIT_LEN];

    struct Setup {
        gate: InitGate,
        to_gateway: MacKeys,
        t0: Instant,
    }

    fn setup() -> Setup {
        let (_, public) = generate_keypair().unwrap();
        Setup {
            gate: InitGate::new(&public).unwrap(),
            to_gateway: MacKeys::for_receiver(&public),
            t0: Instant::now(),
        }
    }

    impl Setup {
        fn init(&self, cookie: Option<&[u8; 16]>) -> HandshakeInit<'static> {
            let mut init = HandshakeInit {
                sender_index: 9,
                noise: &NOISE,
                mac1: [0; MAC_LEN],
                mac2: [0; MAC_LEN],
            };
            init.mac1 = self.to_gateway.init_mac1(&init);
            if let Some(cookie) = cookie {
                init.mac2 = init_mac2(cookie, &init);
            }
            init
        }

        fn judge(&mut self, at: Instant, from: SocketAddr, init: &HandshakeInit) -> Verdict {
            self.gate
                .judge(at, from, init, &mut [0u8; COOKIE_REPLY_LEN])
        }

        /// Puts the gate under load at `at` with valid-mac1 inits from
        /// spoofed sources, as a flood would.
        fn overload(&mut self, at: Instant) {
            let init = self.init(None);
            for i in 0..LOAD_BURST as u32 + 1 {
                let from = SocketAddr::from((i.to_be_bytes(), 1000));
                self.gate
                    .judge(at, from, &init, &mut [0u8; COOKIE_REPLY_LEN]);
            }
        }
    }

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([198, 18, 0, last], port))
    }

    #[test]
    fn wrong_mac1_is_dropped_under_load_or_not() {
        let mut s = setup();
        let mut init = s.init(None);
        init.mac1[3] ^= 1;
        assert_eq!(s.judge(s.t0, addr(2, 1), &init), Verdict::BadMac1);
        s.overload(s.t0);
        assert_eq!(s.judge(s.t0, addr(2, 1), &init), Verdict::BadMac1);
    }

    #[test]
    fn without_load_valid_mac1_is_processed_and_the_flood_gets_no_reply() {
        let mut s = setup();
        let init = s.init(None);
        for i in 0..LOAD_BURST as u32 {
            let from = SocketAddr::from((i.to_be_bytes(), 1000));
            assert_eq!(s.judge(s.t0, from, &init), Verdict::Process, "init {i}");
        }
        // The next one exceeds the budget: a cookie reply, not a handshake.
        assert!(matches!(
            s.judge(s.t0, addr(2, 1), &init),
            Verdict::CookieReply(COOKIE_REPLY_LEN)
        ));
    }

    #[test]
    fn under_load_a_cookie_from_the_same_address_gets_through() {
        let mut s = setup();
        s.overload(s.t0);
        let client = addr(2, 40000);
        let mut reply = [0u8; COOKIE_REPLY_LEN];
        let first = s.init(None);
        let len = match s.gate.judge(s.t0, client, &first, &mut reply) {
            Verdict::CookieReply(len) => len,
            other => panic!("expected a cookie reply, got {other:?}"),
        };
        let Ok(Packet::CookieReply(parsed)) = Packet::parse(&reply[..len]) else {
            panic!("not a cookie reply");
        };
        let cookie: [u8; 16] = s
            .to_gateway
            .open_cookie_reply(&parsed, &first.mac1)
            .unwrap();
        let proven = s.init(Some(&cookie));
        assert_eq!(s.judge(s.t0, client, &proven), Verdict::Process);
        // The same cookie from another address proves nothing.
        assert!(matches!(
            s.judge(s.t0, addr(3, 40000), &proven),
            Verdict::CookieReply(_)
        ));
        // Once the secret changed, the stale cookie earns another reply.
        let stale = s.t0 + crate::crypto::COOKIE_SECRET_LIFETIME;
        s.overload(stale);
        assert!(matches!(
            s.judge(stale, client, &proven),
            Verdict::CookieReply(_)
        ));
    }

    #[test]
    fn under_load_proven_sources_are_rate_limited_each() {
        let mut s = setup();
        s.overload(s.t0);
        let client = addr(2, 40000);
        let mut reply = [0u8; COOKIE_REPLY_LEN];
        let first = s.init(None);
        let Verdict::CookieReply(len) = s.gate.judge(s.t0, client, &first, &mut reply) else {
            panic!("expected a cookie reply");
        };
        let Ok(Packet::CookieReply(parsed)) = Packet::parse(&reply[..len]) else {
            panic!("not a cookie reply");
        };
        let cookie = s
            .to_gateway
            .open_cookie_reply(&parsed, &first.mac1)
            .unwrap();
        let proven = s.init(Some(&cookie));
        let passed = (0..100)
            .filter(|_| s.judge(s.t0, client, &proven) == Verdict::Process)
            .count();
        assert_eq!(passed, PER_SOURCE_BURST as usize);
        assert_eq!(s.judge(s.t0, client, &proven), Verdict::RateLimited);
    }

    #[test]
    fn load_ends_a_hold_after_the_flood() {
        let mut s = setup();
        s.overload(s.t0);
        let init = s.init(None);
        let during = s.t0 + LOAD_HOLD / 2;
        assert!(matches!(
            s.judge(during, addr(2, 1), &init),
            Verdict::CookieReply(_)
        ));
        // The bucket refilled and nobody exceeded it for a hold time.
        let after = during + LOAD_HOLD + Duration::from_millis(10);
        assert_eq!(s.judge(after, addr(2, 1), &init), Verdict::Process);
    }
}
