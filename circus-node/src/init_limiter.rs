//! A cheap gate in front of the gateway's handshake: at most a few
//! handshake inits per second per source address, and a global ceiling.
//!
//! An init costs the gateway two X25519 operations before it can tell a
//! client from a stranger or a replay (Noise IK must decrypt the sender's
//! static key and timestamp first). Without a limit, anyone who captured
//! one init could replay it at line rate and keep the gateway's CPU busy on
//! curve arithmetic while real clients' packets wait. Real clients send an
//! init per link once a second at most while connecting and once per rekey
//! (two minutes) afterwards, so the limits below never touch them.
//!
//! Buckets live in a fixed table indexed by a hash of the source address:
//! no allocation, no growth under a flood of spoofed sources (those hit the
//! global ceiling). Two sources that share a slot share its budget.

use circus_core::wire::Packet;
use std::net::IpAddr;
use std::time::Instant;

/// Inits per second let through from one source address: a client behind
/// one NAT address with several links retries once a second per link.
pub const PER_SOURCE_RATE: f64 = 8.0;
/// Back-to-back inits allowed from one source: every link of a client
/// sending its first init at once (the client's 16-link maximum).
pub const PER_SOURCE_BURST: f64 = 16.0;
/// Inits per second let through in all: ~100 clients reconnecting at once
/// after a gateway restart, at a few milliseconds of CPU per second.
pub const GLOBAL_RATE: f64 = 200.0;
pub const GLOBAL_BURST: f64 = 400.0;

const SLOTS: usize = 1024;

/// A token bucket: `tokens` refill at a rate up to a burst size.
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

pub struct InitLimiter {
    sources: Box<[Bucket]>,
    global: Bucket,
}

impl Default for InitLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl InitLimiter {
    pub fn new() -> Self {
        InitLimiter {
            sources: vec![Bucket::FULL; SLOTS].into_boxed_slice(),
            global: Bucket::FULL,
        }
    }

    /// Whether an init from `source` may reach the handshake now.
    pub fn allow(&mut self, now: Instant, source: IpAddr) -> bool {
        let slot = &mut self.sources[slot_of(source)];
        slot.take(now, PER_SOURCE_RATE, PER_SOURCE_BURST)
            && self.global.take(now, GLOBAL_RATE, GLOBAL_BURST)
    }
}

/// Whether a datagram is a well-formed handshake init: the only kind that
/// costs public-key operations before authentication. Parsing only checks
/// lengths and header bytes.
pub fn is_handshake_init(datagram: &[u8]) -> bool {
    matches!(Packet::parse(datagram), Ok(Packet::HandshakeInit(_)))
}

/// FNV-1a over the address bytes: spreads neighbouring addresses.
fn slot_of(source: IpAddr) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    match source {
        IpAddr::V4(a) => mix(&a.octets()),
        IpAddr::V6(a) => mix(&a.octets()),
    }
    (hash % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_source_gets_its_burst_then_its_rate() {
        let mut limiter = InitLimiter::new();
        let t0 = Instant::now();
        let a = IpAddr::from([198, 18, 0, 2]);
        let allowed = (0..100).filter(|_| limiter.allow(t0, a)).count();
        assert_eq!(allowed, PER_SOURCE_BURST as usize);
        // One second later: the rate's worth again, not more.
        let t1 = t0 + Duration::from_secs(1);
        let allowed = (0..100).filter(|_| limiter.allow(t1, a)).count();
        assert_eq!(allowed, PER_SOURCE_RATE as usize);
        // Another source is not affected.
        assert!(limiter.allow(t1, IpAddr::from([198, 18, 1, 2])));
    }

    #[test]
    fn many_sources_meet_the_global_ceiling() {
        let mut limiter = InitLimiter::new();
        let now = Instant::now();
        let allowed = (0..4096u32)
            .filter(|i| limiter.allow(now, IpAddr::from(i.to_be_bytes())))
            .count();
        assert_eq!(allowed, GLOBAL_BURST as usize);
    }

    #[test]
    fn recognises_inits_only() {
        use circus_core::wire::HANDSHAKE_INIT_LEN;
        let mut init = vec![0u8; HANDSHAKE_INIT_LEN];
        init[..2].copy_from_slice(&[circus_core::wire::VERSION, 1]);
        assert!(is_handshake_init(&init));
        init[1] = 3;
        assert!(!is_handshake_init(&init), "transport");
        assert!(!is_handshake_init(&init[..2]));
        assert!(!is_handshake_init(&[]));
    }
}
