//! Handshake, per-packet encryption and replay protection.
//!
//! - [`StaticSecret`], [`PublicKey`], [`Psk`]: X25519 static keys and the
//!   pre-shared key, with their base64 text form.
//! - [`Initiator`] / [`Responder`]: the Noise `IKpsk2` handshake
//!   (X25519, ChaCha20-Poly1305, BLAKE2s, via snow), one round trip.
//! - [`MacKeys`] / [`CookieJar`]: the handshake's mac1 and mac2 and the
//!   gateway's cookie replies (WireGuard's defence against handshake floods).
//! - [`SessionKeys`]: in-place ChaCha20-Poly1305 per transport packet.
//! - [`ReplayWindow`]: each counter accepted once, with room for multipath
//!   reordering.
//!
//! # Rekeying
//!
//! The core reads no clock, so this module only states the policy; the
//! engine drives it with the `now` it is given. The values are WireGuard's,
//! whose reasons carry over, except the retry interval:
//! - the initiator (client) starts a new handshake after [`REKEY_AFTER_TIME`]
//!   or [`REKEY_AFTER_MESSAGES`] packets sent on the current keys;
//! - keys older than [`REJECT_AFTER_TIME`], or whose counter reached
//!   [`REJECT_AFTER_MESSAGES`], are used neither to send nor to receive;
//! - an unanswered init is resent after [`HANDSHAKE_RETRY_AFTER`] with a new
//!   timestamp, and attempts stop after [`REKEY_ATTEMPT_TIME`];
//! - after a new handshake, the previous receiving keys stay usable until
//!   they reach [`REJECT_AFTER_TIME`], since packets sent on a slow link
//!   before the switch arrive after it; the responder keeps sending on the
//!   previous keys until the new ones are confirmed by an authenticated
//!   packet from the initiator (see [`Accepted`]).

mod cookie;
mod handshake;
mod keys;
mod replay;
mod session;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use cookie::{
    COOKIE_SECRET_LIFETIME, COOKIE_USABLE_FOR, Cookie, CookieJar, Mac2, MacKeys, init_mac2,
};
pub use handshake::{
    Accepted, Established, HandshakeError, Initiator, KnownPeer, Responder, TIMESTAMP_LEN,
};
pub(crate) use keys::random_key;
pub use keys::{KEY_LEN, KeyError, Psk, PublicKey, StaticSecret, generate_keypair};
pub use replay::{REPLAY_WINDOW_WIDTH, ReplayWindow};
pub use session::{CryptoError, SessionKeys};

/// Start a new handshake once the current keys are this old: bounds how much
/// traffic one key protects and how far back a stolen key reaches (forward
/// secrecy in two-minute steps).
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);

/// Never use keys older than this. The 60 s beyond [`REKEY_AFTER_TIME`] let
/// a rekey survive lost handshakes; after that the session is dead rather
/// than running on stale keys indefinitely.
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);

/// Start a new handshake after this many packets on one key: a busy tunnel
/// rekeys long before any counter limit, whatever the time.
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;

/// Never send or accept a counter at or above this: the counter is the
/// nonce and must never wrap; the margin keeps the replay window's arithmetic
/// clear of overflow.
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);

/// Resend an unanswered init after this long. Shorter than WireGuard's 5 s
/// because circus exists to recover from a dead link quickly; 1 s still
/// exceeds the round trip of the slowest links it bonds (satellite, bad LTE
/// around 600 ms), and an init is only 146 bytes.
pub const HANDSHAKE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Give up a rekey or connection attempt after this long without a response.
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
