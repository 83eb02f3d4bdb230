//! WireGuard's cookie MACs (whitepaper section 5.4): cheap proofs that
//! come before any curve arithmetic.
//!
//! - mac1 = MAC(HASH("mac1----" || receiver's public key), message): the
//!   sender knows whom it is talking to. The gateway checks it on every
//!   init with one keyed hash and drops a failure silently, so inits not
//!   meant for it cost almost nothing; the client checks it on responses.
//! - cookie = MAC(secret, sender's IP address and port), with a random
//!   secret the gateway replaces every [`COOKIE_SECRET_LIFETIME`].
//! - mac2 = MAC(cookie, message including mac1): the sender received a
//!   cookie at the address it sends from. Zero when it holds none.
//! - cookie reply: under load the gateway answers an init without a valid
//!   mac2 with its cookie, encrypted with XChaCha20-Poly1305 under
//!   HASH("cookie--" || gateway's public key) and bound (as associated
//!   data) to the init's mac1, so only someone who saw that init can use
//!   the reply, and a reply forged by an off-path attacker fails.
//!
//! MAC is keyed BLAKE2s with a 16-byte output, HASH is BLAKE2s-256, as in
//! WireGuard. MACs are compared in constant time (`Mac::verify_slice`).
//! Nothing here allocates or reads a clock.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};

use super::{KeyError, PublicKey};
use crate::wire::{
    COOKIE_LEN, COOKIE_NONCE_LEN, COOKIE_REPLY_LEN, CookieReply, HandshakeInit, HandshakeResponse,
    MAC_LEN, TAG_LEN, WireError,
};

const LABEL_MAC1: &[u8] = b"mac1----";
const LABEL_COOKIE: &[u8] = b"cookie--";

/// How long the gateway uses one cookie secret: a cookie proves the
/// address for at most this long, so a client that moves or a captured
/// cookie stops working soon (WireGuard's value).
pub const COOKIE_SECRET_LIFETIME: Duration = Duration::from_secs(120);

/// How long a client uses a cookie after receiving it: the secret's
/// lifetime less WireGuard's 5 s allowance for the reply's travel. A cookie
/// the gateway rotated away sooner only costs one more cookie reply.
pub const COOKIE_USABLE_FOR: Duration = Duration::from_secs(115);

/// A cookie: the gateway's MAC of one source address.
pub type Cookie = [u8; COOKIE_LEN];

/// Keyed BLAKE2s-128 of the concatenated `parts`.
fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    mac_state(key, parts).finalize().into_bytes().into()
}

/// Whether `expected` is the MAC of `parts`, compared in constant time.
fn mac_matches(key: &[u8], parts: &[&[u8]], expected: &[u8; MAC_LEN]) -> bool {
    mac_state(key, parts).verify_slice(expected).is_ok()
}

fn mac_state(key: &[u8], parts: &[&[u8]]) -> Blake2sMac<U16> {
    // Every key here is 16 or 32 bytes, within BLAKE2s's 1..=32.
    let mut state = <Blake2sMac<U16> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("MAC keys are 16 or 32 bytes"));
    for part in parts {
        state.update(part);
    }
    state
}

fn hash(label: &[u8], public: &PublicKey) -> [u8; 32] {
    Blake2s256::new()
        .chain_update(label)
        .chain_update(public.as_bytes())
        .finalize()
        .into()
}

/// The two keys every handshake sender derives from its receiver's public
/// key: one for mac1, one for the cookie reply's encryption.
#[derive(Clone)]
pub struct MacKeys {
    mac1: [u8; 32],
    cookie: Key,
}

impl std::fmt::Debug for MacKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MacKeys").finish_non_exhaustive()
    }
}

impl MacKeys {
    /// The keys for messages to the owner of `receiver`.
    pub fn for_receiver(receiver: &PublicKey) -> Self {
        Self {
            mac1: hash(LABEL_MAC1, receiver),
            cookie: hash(LABEL_COOKIE, receiver).into(),
        }
    }

    /// mac1 of `init`, sent to our receiver.
    pub fn init_mac1(&self, init: &HandshakeInit<'_>) -> [u8; MAC_LEN] {
        mac(&self.mac1, &[&init.header(), init.noise])
    }

    /// Whether `init` carries the right mac1 for our receiver.
    pub fn init_mac1_valid(&self, init: &HandshakeInit<'_>) -> bool {
        mac_matches(&self.mac1, &[&init.header(), init.noise], &init.mac1)
    }

    /// mac1 of `response`, sent to our receiver.
    pub fn response_mac1(&self, response: &HandshakeResponse<'_>) -> [u8; MAC_LEN] {
        mac(&self.mac1, &[&response.header(), response.noise])
    }

    /// Whether `response` carries the right mac1 for our receiver.
    pub fn response_mac1_valid(&self, response: &HandshakeResponse<'_>) -> bool {
        mac_matches(
            &self.mac1,
            &[&response.header(), response.noise],
            &response.mac1,
        )
    }

    /// The cookie in `reply`, if it decrypts under our receiver's cookie key
    /// and was made for the init whose mac1 is `init_mac1`.
    pub fn open_cookie_reply(
        &self,
        reply: &CookieReply,
        init_mac1: &[u8; MAC_LEN],
    ) -> Option<Cookie> {
        let (sealed, tag) = reply.sealed_cookie.split_at(COOKIE_LEN);
        let mut cookie: Cookie = sealed.try_into().ok()?;
        XChaCha20Poly1305::new(&self.cookie)
            .decrypt_in_place_detached(
                XNonce::from_slice(&reply.nonce),
                init_mac1,
                &mut cookie,
                Tag::from_slice(tag),
            )
            .ok()?;
        Some(cookie)
    }
}

/// mac2 of `init` under `cookie`.
pub fn init_mac2(cookie: &Cookie, init: &HandshakeInit<'_>) -> [u8; MAC_LEN] {
    mac(cookie, &[&init.header(), init.noise, &init.mac1])
}

/// What an init's mac2 proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mac2 {
    /// The sender received our current cookie at the init's source address.
    Valid,
    /// It did not (no cookie, another address, a stale secret): this is
    /// the cookie to send it.
    Missing(Cookie),
}

/// The gateway's side: checks mac1 and mac2 of inits and writes cookie
/// replies, with a secret that it replaces every [`COOKIE_SECRET_LIFETIME`].
pub struct CookieJar {
    /// Keys of messages sent to us.
    keys: MacKeys,
    secret: [u8; 32],
    /// When the secret was first used; `None` until then, since the jar is
    /// made before the engine is given a time.
    secret_since: Option<Instant>,
    /// Reply nonces: a random prefix drawn with each secret and a counter,
    /// unique without a system call per reply. The cookie key outlives the
    /// secret (it is derived from our public key), hence the random part.
    nonce_prefix: [u8; COOKIE_NONCE_LEN - 8],
    nonce_counter: u64,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar")
            .field("secret_since", &self.secret_since)
            .finish_non_exhaustive()
    }
}

impl CookieJar {
    /// A jar for the gateway whose public key is `local`.
    pub fn new(local: &PublicKey) -> Result<Self, KeyError> {
        let (secret, nonce_prefix) = fresh_secret()?;
        Ok(Self {
            keys: MacKeys::for_receiver(local),
            secret,
            secret_since: None,
            nonce_prefix,
            nonce_counter: 0,
        })
    }

    /// Whether `init` was made for us (the one check before any other work).
    pub fn mac1_valid(&self, init: &HandshakeInit<'_>) -> bool {
        self.keys.init_mac1_valid(init)
    }

    /// The cookie for `source` now.
    fn cookie(&mut self, now: Instant, source: SocketAddr) -> Cookie {
        let since = *self.secret_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= COOKIE_SECRET_LIFETIME {
            // Should the OS have no randomness, keep the old secret and
            // try again after another lifetime.
            if let Ok((secret, prefix)) = fresh_secret() {
                self.secret = secret;
                self.nonce_prefix = prefix;
                self.nonce_counter = 0;
            }
            self.secret_since = Some(now);
        }
        let mut address = [0u8; 18];
        let len = match source.ip() {
            IpAddr::V4(ip) => {
                address[..4].copy_from_slice(&ip.octets());
                4
            }
            IpAddr::V6(ip) => {
                address[..16].copy_from_slice(&ip.octets());
                16
            }
        };
        address[len..len + 2].copy_from_slice(&source.port().to_be_bytes());
        mac(&self.secret, &[&address[..len + 2]])
    }

    /// Whether `init`'s mac2 proves that its sender received our current
    /// cookie at `source`; if not, the cookie to send it.
    pub fn check_mac2(&mut self, now: Instant, source: SocketAddr, init: &HandshakeInit) -> Mac2 {
        let cookie = self.cookie(now, source);
        if mac_matches(
            &cookie,
            &[&init.header(), init.noise, &init.mac1],
            &init.mac2,
        ) {
            Mac2::Valid
        } else {
            Mac2::Missing(cookie)
        }
    }

    /// Writes a reply carrying `cookie` (from [`check_mac2`](Self::check_mac2))
    /// to `init` into `out`; returns its length ([`COOKIE_REPLY_LEN`]).
    pub fn write_reply(
        &mut self,
        cookie: &Cookie,
        init: &HandshakeInit<'_>,
        out: &mut [u8],
    ) -> Result<usize, WireError> {
        if out.len() < COOKIE_REPLY_LEN {
            return Err(WireError::BufferTooSmall {
                what: "cookie reply",
                needed: COOKIE_REPLY_LEN,
                available: out.len(),
            });
        }
        let mut nonce = [0u8; COOKIE_NONCE_LEN];
        nonce[..COOKIE_NONCE_LEN - 8].copy_from_slice(&self.nonce_prefix);
        nonce[COOKIE_NONCE_LEN - 8..].copy_from_slice(&self.nonce_counter.to_be_bytes());
        self.nonce_counter = self.nonce_counter.wrapping_add(1);
        let mut sealed_cookie = [0u8; COOKIE_LEN + TAG_LEN];
        let (body, tag_out) = sealed_cookie.split_at_mut(COOKIE_LEN);
        body.copy_from_slice(cookie);
        // Encrypting 16 bytes cannot exceed XChaCha20's length limit.
        let tag = XChaCha20Poly1305::new(&self.keys.cookie)
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), &init.mac1, body)
            .unwrap_or_else(|_| unreachable!("a 16-byte cookie is within the AEAD limit"));
        tag_out.copy_from_slice(&tag);
        CookieReply {
            receiver_index: init.sender_index,
            nonce,
            sealed_cookie,
        }
        .emit(out)
    }
}

/// A new cookie secret and nonce prefix from the OS.
fn fresh_secret() -> Result<([u8; 32], [u8; COOKIE_NONCE_LEN - 8]), KeyError> {
    let secret = super::keys::random_key("cookie secret")?;
    let prefix = super::keys::random_key("cookie nonce")?;
    let mut nonce_prefix = [0u8; COOKIE_NONCE_LEN - 8];
    nonce_prefix.copy_from_slice(&prefix[..COOKIE_NONCE_LEN - 8]);
    Ok((secret, nonce_prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::generate_keypair;
    use crate::wire::{NOISE_INIT_LEN, Packet};

    const NOISE: [u8; NOISE_INIT_LEN] = [0x5a; NOISE_INIT_LEN];

    fn source() -> SocketAddr {
        "198.18.0.2:40000".parse().unwrap()
    }

    /// An init to `gateway` with a valid mac1 and, given a cookie, mac2.
    fn init_to(gateway: &PublicKey, cookie: Option<&Cookie>) -> HandshakeInit<'static> {
        let mut init = HandshakeInit {
            sender_index: 7,
            noise: &NOISE,
            mac1: [0; MAC_LEN],
            mac2: [0; MAC_LEN],
        };
        init.mac1 = MacKeys::for_receiver(gateway).init_mac1(&init);
        if let Some(cookie) = cookie {
            init.mac2 = init_mac2(cookie, &init);
        }
        init
    }

    fn reply_of(bytes: &[u8]) -> CookieReply {
        match Packet::parse(bytes) {
            Ok(Packet::CookieReply(reply)) => reply,
            other => panic!("expected a cookie reply, got {other:?}"),
        }
    }

    /// The cookie the gateway hands to `source` for `init`, as the client
    /// opens it.
    fn get_cookie(
        jar: &mut CookieJar,
        gateway: &PublicKey,
        now: Instant,
        source: SocketAddr,
        init: &HandshakeInit<'_>,
    ) -> Cookie {
        let Mac2::Missing(cookie) = jar.check_mac2(now, source, init) else {
            panic!("the init has no valid mac2 yet");
        };
        let mut out = [0u8; COOKIE_REPLY_LEN];
        assert_eq!(
            jar.write_reply(&cookie, init, &mut out),
            Ok(COOKIE_REPLY_LEN)
        );
        MacKeys::for_receiver(gateway)
            .open_cookie_reply(&reply_of(&out), &init.mac1)
            .expect("the genuine reply opens")
    }

    fn valid(jar: &mut CookieJar, now: Instant, from: SocketAddr, init: &HandshakeInit) -> bool {
        jar.check_mac2(now, from, init) == Mac2::Valid
    }

    #[test]
    fn mac1_is_keyed_by_the_receivers_public_key() {
        let (_, gateway) = generate_keypair().unwrap();
        let (_, other) = generate_keypair().unwrap();
        let jar = CookieJar::new(&gateway).unwrap();
        assert!(jar.mac1_valid(&init_to(&gateway, None)));
        assert!(!jar.mac1_valid(&init_to(&other, None)), "wrong key");
        let mut tampered = init_to(&gateway, None);
        tampered.sender_index ^= 1;
        assert!(!jar.mac1_valid(&tampered), "header is covered");
        let noise = [0x5b; NOISE_INIT_LEN];
        let tampered = HandshakeInit {
            noise: &noise,
            ..init_to(&gateway, None)
        };
        assert!(!jar.mac1_valid(&tampered), "noise is covered");
    }

    #[test]
    fn response_mac1_is_checked_by_its_receiver_only() {
        let (_, client) = generate_keypair().unwrap();
        let (_, other) = generate_keypair().unwrap();
        let noise = [3u8; crate::wire::NOISE_RESPONSE_LEN];
        let mut response = HandshakeResponse {
            sender_index: 1,
            receiver_index: 2,
            noise: &noise,
            mac1: [0; MAC_LEN],
        };
        response.mac1 = MacKeys::for_receiver(&client).response_mac1(&response);
        assert!(MacKeys::for_receiver(&client).response_mac1_valid(&response));
        assert!(!MacKeys::for_receiver(&other).response_mac1_valid(&response));
        response.receiver_index = 3;
        assert!(!MacKeys::for_receiver(&client).response_mac1_valid(&response));
    }

    #[test]
    fn a_cookie_proves_its_source_address_until_the_secret_changes() {
        let (_, gateway) = generate_keypair().unwrap();
        let mut jar = CookieJar::new(&gateway).unwrap();
        let t0 = Instant::now();
        let without = init_to(&gateway, None);
        assert!(!valid(&mut jar, t0, source(), &without), "zero mac2");

        let cookie = get_cookie(&mut jar, &gateway, t0, source(), &without);
        let with = init_to(&gateway, Some(&cookie));
        assert!(valid(&mut jar, t0, source(), &with));
        let later = t0 + COOKIE_SECRET_LIFETIME - Duration::from_millis(1);
        assert!(valid(&mut jar, later, source(), &with));

        let other_port: SocketAddr = "198.18.0.2:40001".parse().unwrap();
        let other_ip: SocketAddr = "198.18.0.3:40000".parse().unwrap();
        let v6: SocketAddr = "[fd00::2]:40000".parse().unwrap();
        for wrong in [other_port, other_ip, v6] {
            assert!(!valid(&mut jar, t0, wrong, &with), "from {wrong}");
        }

        // A cookie made with another secret: another jar, or a stale one.
        let mut other_jar = CookieJar::new(&gateway).unwrap();
        assert!(!valid(&mut other_jar, t0, source(), &with), "other secret");
        let stale = t0 + COOKIE_SECRET_LIFETIME;
        assert!(!valid(&mut jar, stale, source(), &with), "rotated secret");
        let renewed = get_cookie(&mut jar, &gateway, stale, source(), &without);
        assert_ne!(renewed, cookie);
        assert!(valid(
            &mut jar,
            stale,
            source(),
            &init_to(&gateway, Some(&renewed))
        ));
    }

    #[test]
    fn a_cookie_reply_opens_only_for_the_init_it_answers() {
        let (_, gateway) = generate_keypair().unwrap();
        let (_, other) = generate_keypair().unwrap();
        let mut jar = CookieJar::new(&gateway).unwrap();
        let init = init_to(&gateway, None);
        let mut out = [0u8; COOKIE_REPLY_LEN];
        let cookie = [9; COOKIE_LEN];
        jar.write_reply(&cookie, &init, &mut out).unwrap();
        let reply = reply_of(&out);
        assert_eq!(reply.receiver_index, init.sender_index);
        let keys = MacKeys::for_receiver(&gateway);
        assert_eq!(keys.open_cookie_reply(&reply, &init.mac1), Some(cookie));

        let mut other_mac1 = init.mac1;
        other_mac1[0] ^= 1;
        assert!(
            keys.open_cookie_reply(&reply, &other_mac1).is_none(),
            "other init"
        );
        assert!(
            MacKeys::for_receiver(&other)
                .open_cookie_reply(&reply, &init.mac1)
                .is_none(),
            "other gateway"
        );
        for byte in 6..COOKIE_REPLY_LEN {
            let mut tampered = out;
            tampered[byte] ^= 0x10;
            assert!(
                keys.open_cookie_reply(&reply_of(&tampered), &init.mac1)
                    .is_none(),
                "byte {byte} flipped"
            );
        }
    }

    #[test]
    fn reply_nonces_do_not_repeat() {
        let (_, gateway) = generate_keypair().unwrap();
        let mut jar = CookieJar::new(&gateway).unwrap();
        let init = init_to(&gateway, None);
        let mut nonces = std::collections::HashSet::new();
        for _ in 0..100 {
            let mut out = [0u8; COOKIE_REPLY_LEN];
            jar.write_reply(&[0; COOKIE_LEN], &init, &mut out).unwrap();
            assert!(nonces.insert(reply_of(&out).nonce));
        }
        assert!(matches!(
            jar.write_reply(&[0; COOKIE_LEN], &init, &mut [0u8; COOKIE_REPLY_LEN - 1]),
            Err(WireError::BufferTooSmall { .. })
        ));
    }
}
