//! The Noise IKpsk2 handshake: one message each way, then session keys.
//!
//! IK because the client knows the gateway's static key in advance, so the
//! client's identity travels encrypted in the first message and the whole
//! handshake is one round trip (as in WireGuard). psk2 mixes the per-client
//! pre-shared key into the second message.
//!
//! The responder keeps no state between messages: [`Responder::respond`]
//! reads the init, checks the sender's static key against the caller's peer
//! list and its timestamp against the last one accepted from that peer, and
//! only then writes the response and returns keys. Anything else is an error
//! and the caller sends nothing back. A wrong PSK cannot be seen by the
//! responder (the PSK enters only with message 2); the initiator detects it
//! on message 2, and the responder learns the session is good when the first
//! transport packet under the new keys authenticates (see [`Accepted`]).
//!
//! Both messages carry mac1 and the init a mac2 ([`super::cookie`]): the
//! initiator writes them here; the responder's caller checks the init's
//! before calling [`Responder::respond`], which is where the cost is.

use snow::params::NoiseParams;
use snow::{Builder, HandshakeState};

use super::cookie::{Cookie, MacKeys, init_mac2};
use super::{Psk, PublicKey, SessionKeys, StaticSecret};
use crate::wire::{
    CookieReply, HANDSHAKE_INIT_LEN, HANDSHAKE_RESPONSE_LEN, HandshakeInit, HandshakeResponse,
    MAC_LEN, NOISE_INIT_LEN, NOISE_RESPONSE_LEN, VERSION, WireError,
};

const NOISE_PATTERN: &str = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// Binds the handshake to this protocol and version: a Noise message made
/// for anything else fails to authenticate here.
const PROLOGUE: &[u8] = b"circus v1";
const PSK_POSITION: u8 = 2;
/// Bytes of the init's encrypted payload: unix seconds u64 and nanoseconds
/// u32, big-endian (WireGuard's TAI64N layout, on the unix epoch).
pub const TIMESTAMP_LEN: usize = 12;

/// Why a handshake message was refused. In every case no reply is sent and
/// no state is kept.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The output buffer cannot hold the handshake packet.
    #[error("handshake packet could not be written: {0}")]
    Wire(#[from] WireError),
    /// The init did not decrypt with our static key (garbage, a probe, or
    /// meant for another gateway), or its payload is not a valid timestamp.
    #[error("handshake init failed to authenticate")]
    BadInit,
    /// The init is authentic but its static key is not a configured peer.
    #[error("handshake init from unknown peer {0}")]
    UnknownPeer(PublicKey),
    /// The init's timestamp is not newer than the last accepted from this
    /// peer: a replayed (or reordered older) init.
    #[error(
        "handshake init from {peer} replayed: timestamp {timestamp_ns} ns is not after the last accepted {last_ns} ns"
    )]
    Replayed {
        peer: PublicKey,
        timestamp_ns: u64,
        last_ns: u64,
    },
    /// The response or cookie reply is not for our pending handshake.
    #[error("handshake response for index {got}, ours is {expected}")]
    IndexMismatch { expected: u32, got: u32 },
    /// The response's mac1 is wrong: not made for us.
    #[error("handshake response has a wrong mac1")]
    BadMac1,
    /// The cookie reply did not decrypt for our last init: forged, or
    /// answering an init we no longer wait on.
    #[error("cookie reply failed to authenticate")]
    BadCookieReply,
    /// The response did not authenticate: forged, corrupted, or the PSK
    /// differs from the gateway's.
    #[error("handshake response failed to authenticate (wrong preshared key?)")]
    BadResponse,
    /// snow failed outside of authenticating input: its setup, or the
    /// random source for the ephemeral key.
    #[error("noise handshake failed: {0}")]
    Noise(#[from] snow::Error),
}

fn params() -> Result<NoiseParams, HandshakeError> {
    Ok(NOISE_PATTERN.parse()?)
}

/// The keys of an established session and the peer's index for it.
#[derive(Debug)]
pub struct Established {
    pub keys: SessionKeys,
    /// The index the peer chose: the `receiver_index` of every transport
    /// packet we send it.
    pub remote_index: u32,
}

/// The client side between sending the init and receiving the response.
pub struct Initiator {
    noise: HandshakeState,
    sender_index: u32,
    /// Noise message 1, kept so the init can be sent again with a mac2.
    message: [u8; NOISE_INIT_LEN],
    /// The init's mac1: a cookie reply must be bound to it.
    mac1: [u8; MAC_LEN],
    /// Keys of messages to the gateway (mac1, cookie replies).
    to_gateway: MacKeys,
    /// Keys of messages to us (the response's mac1).
    to_us: MacKeys,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("sender_index", &self.sender_index)
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// Writes a handshake init packet (without mac2) into `out` and returns
    /// the pending handshake with the packet's length
    /// ([`HANDSHAKE_INIT_LEN`]).
    ///
    /// `sender_index` is our index for the new session (the gateway echoes
    /// it). `unix_time_ns` must increase from one init to the next, since
    /// the gateway refuses an init not newer than the last it accepted; pass
    /// `max(wall clock, previous + 1)` so a clock stepping back does not lock
    /// the client out.
    pub fn start(
        local: &StaticSecret,
        remote: &PublicKey,
        psk: &Psk,
        sender_index: u32,
        unix_time_ns: u64,
        out: &mut [u8],
    ) -> Result<(Self, usize), HandshakeError> {
        ensure_room(out, HANDSHAKE_INIT_LEN, "handshake init")?;
        let mut noise = Builder::new(params()?)
            .local_private_key(local.as_bytes())?
            .remote_public_key(remote.as_bytes())?
            .psk(PSK_POSITION, psk.as_bytes())?
            .prologue(PROLOGUE)?
            .build_initiator()?;
        let mut message = [0u8; NOISE_INIT_LEN];
        let written = noise.write_message(&encode_timestamp(unix_time_ns), &mut message)?;
        if written != NOISE_INIT_LEN {
            return Err(WireError::BadLength {
                what: "handshake init noise message",
                expected: NOISE_INIT_LEN,
                actual: written,
            }
            .into());
        }
        let to_gateway = MacKeys::for_receiver(remote);
        let mut init = HandshakeInit {
            sender_index,
            noise: &message,
            mac1: [0; MAC_LEN],
            mac2: [0; MAC_LEN],
        };
        init.mac1 = to_gateway.init_mac1(&init);
        let initiator = Self {
            noise,
            sender_index,
            message,
            mac1: init.mac1,
            to_gateway,
            to_us: MacKeys::for_receiver(&local.public_key()),
        };
        let len = initiator.write_init(None, out)?;
        Ok((initiator, len))
    }

    /// Writes the init again, with mac2 under `cookie` if given (the one
    /// the gateway sent to the address this init goes out from); returns
    /// [`HANDSHAKE_INIT_LEN`].
    pub fn write_init(&self, cookie: Option<&Cookie>, out: &mut [u8]) -> Result<usize, WireError> {
        let mut init = HandshakeInit {
            sender_index: self.sender_index,
            noise: &self.message,
            mac1: self.mac1,
            mac2: [0; MAC_LEN],
        };
        if let Some(cookie) = cookie {
            init.mac2 = init_mac2(cookie, &init);
        }
        init.emit(out)
    }

    /// The cookie in a cookie reply to our init.
    pub fn open_cookie_reply(&self, reply: &CookieReply) -> Result<Cookie, HandshakeError> {
        if reply.receiver_index != self.sender_index {
            return Err(HandshakeError::IndexMismatch {
                expected: self.sender_index,
                got: reply.receiver_index,
            });
        }
        self.to_gateway
            .open_cookie_reply(reply, &self.mac1)
            .ok_or(HandshakeError::BadCookieReply)
    }

    /// Our index for the pending session; responses carry it as
    /// `receiver_index`.
    pub fn sender_index(&self) -> u32 {
        self.sender_index
    }

    /// Completes the handshake with the gateway's response.
    ///
    /// A response that fails leaves `self` untouched, so a forged response
    /// cannot spoil the handshake: the genuine one is still accepted.
    pub fn finish(
        &mut self,
        response: &HandshakeResponse<'_>,
    ) -> Result<Established, HandshakeError> {
        if response.receiver_index != self.sender_index {
            return Err(HandshakeError::IndexMismatch {
                expected: self.sender_index,
                got: response.receiver_index,
            });
        }
        if !self.to_us.response_mac1_valid(response) {
            return Err(HandshakeError::BadMac1);
        }
        let mut payload = [0u8; NOISE_RESPONSE_LEN];
        // snow restores its state when a message fails to authenticate.
        self.noise
            .read_message(response.noise, &mut payload)
            .map_err(|_| HandshakeError::BadResponse)?;
        let (initiator_to_responder, responder_to_initiator) =
            self.noise.dangerously_get_raw_split();
        Ok(Established {
            keys: SessionKeys::new(initiator_to_responder, responder_to_initiator),
            remote_index: response.sender_index,
        })
    }
}

/// What the responder needs to know about a configured peer, borrowed
/// from the caller's peer table.
#[derive(Debug, Clone, Copy)]
pub struct KnownPeer<'a> {
    pub psk: &'a Psk,
    /// Timestamp of the last init accepted from this peer, if any; the next
    /// one must be strictly newer.
    pub last_timestamp_ns: Option<u64>,
}

/// An init that passed every check, with the response already written.
///
/// The caller must record `timestamp_ns` as the peer's last accepted init.
/// It must not send with these keys, nor drop the peer's current session,
/// until a transport packet from the peer authenticates under them: only
/// then is it known that the peer has the same PSK and received the
/// response (key confirmation, as in WireGuard). Until then the acceptance
/// may also come from a replayed init that the timestamp check could not
/// catch, e.g. after a gateway restart forgot the last timestamps.
#[derive(Debug)]
pub struct Accepted {
    pub peer: PublicKey,
    pub timestamp_ns: u64,
    pub session: Established,
    /// Length of the response packet written into the caller's buffer.
    pub response_len: usize,
}

/// The gateway side: answers inits with its static key.
pub struct Responder {
    local: StaticSecret,
    params: NoiseParams,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("public", &self.local.public_key())
            .finish_non_exhaustive()
    }
}

impl Responder {
    pub fn new(local: StaticSecret) -> Result<Self, HandshakeError> {
        Ok(Self {
            local,
            params: params()?,
        })
    }

    /// Verifies `init` and, only if it is authentic, from a peer `lookup`
    /// knows, and newer than that peer's last init, writes the response
    /// into `out` and returns the new session.
    ///
    /// The init's MACs are not checked here: the caller checks them first
    /// (see [`super::CookieJar`]), since that is what makes a flood cheap.
    ///
    /// `local_index` is our index for the session. The response is shorter
    /// than the init, so answering spoofed-source inits amplifies nothing.
    pub fn respond<'p>(
        &self,
        init: &HandshakeInit<'_>,
        local_index: u32,
        lookup: impl FnOnce(&PublicKey) -> Option<KnownPeer<'p>>,
        out: &mut [u8],
    ) -> Result<Accepted, HandshakeError> {
        ensure_room(out, HANDSHAKE_RESPONSE_LEN, "handshake response")?;
        let mut noise = Builder::new(self.params.clone())
            .local_private_key(self.local.as_bytes())?
            .prologue(PROLOGUE)?
            .build_responder()?;
        let mut payload = [0u8; NOISE_INIT_LEN];
        let payload_len = noise
            .read_message(init.noise, &mut payload)
            .map_err(|_| HandshakeError::BadInit)?;
        let timestamp_ns = payload
            .get(..payload_len)
            .and_then(decode_timestamp)
            .ok_or(HandshakeError::BadInit)?;
        let peer = noise
            .get_remote_static()
            .and_then(|key| <[u8; 32]>::try_from(key).ok())
            .map(PublicKey::from_bytes)
            .ok_or(HandshakeError::BadInit)?;
        let known = lookup(&peer).ok_or(HandshakeError::UnknownPeer(peer))?;
        if let Some(last_ns) = known.last_timestamp_ns
            && timestamp_ns <= last_ns
        {
            return Err(HandshakeError::Replayed {
                peer,
                timestamp_ns,
                last_ns,
            });
        }

        noise.set_psk(usize::from(PSK_POSITION), known.psk.as_bytes())?;
        let mut message = [0u8; NOISE_RESPONSE_LEN];
        let written = noise.write_message(&[], &mut message)?;
        let mut response = HandshakeResponse {
            sender_index: local_index,
            receiver_index: init.sender_index,
            noise: &message[..written],
            mac1: [0; MAC_LEN],
        };
        response.mac1 = MacKeys::for_receiver(&peer).response_mac1(&response);
        let response_len = response.emit(out)?;
        let (initiator_to_responder, responder_to_initiator) = noise.dangerously_get_raw_split();
        Ok(Accepted {
            peer,
            timestamp_ns,
            session: Established {
                keys: SessionKeys::new(responder_to_initiator, initiator_to_responder),
                remote_index: init.sender_index,
            },
            response_len,
        })
    }
}

fn ensure_room(out: &[u8], needed: usize, what: &'static str) -> Result<(), HandshakeError> {
    if out.len() < needed {
        return Err(WireError::BufferTooSmall {
            what,
            needed,
            available: out.len(),
        }
        .into());
    }
    Ok(())
}

fn encode_timestamp(unix_time_ns: u64) -> [u8; TIMESTAMP_LEN] {
    const NANOS_PER_SECOND: u64 = 1_000_000_000;
    let mut out = [0u8; TIMESTAMP_LEN];
    out[..8].copy_from_slice(&(unix_time_ns / NANOS_PER_SECOND).to_be_bytes());
    // Below 10^9, so it fits in u32.
    out[8..].copy_from_slice(&((unix_time_ns % NANOS_PER_SECOND) as u32).to_be_bytes());
    out
}

/// The unix time in nanoseconds, or `None` if the payload is not a
/// well-formed timestamp (wrong size, nanoseconds >= 10^9, or beyond u64).
fn decode_timestamp(payload: &[u8]) -> Option<u64> {
    let bytes: &[u8; TIMESTAMP_LEN] = payload.try_into().ok()?;
    let (seconds, nanos) = bytes.split_at(8);
    let seconds = u64::from_be_bytes(seconds.try_into().ok()?);
    let nanos = u32::from_be_bytes(nanos.try_into().ok()?);
    if nanos >= 1_000_000_000 {
        return None;
    }
    seconds
        .checked_mul(1_000_000_000)?
        .checked_add(u64::from(nanos))
}

// The wire format's fixed sizes must match what this Noise pattern produces.
const _: () = assert!(NOISE_INIT_LEN == 32 + 32 + 16 + TIMESTAMP_LEN + 16);
const _: () = assert!(VERSION == 1, "PROLOGUE names the version");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_malformed_ones_are_refused() {
        for ns in [
            0,
            999_999_999,
            1_000_000_000,
            1_764_000_000_123_456_789,
            u64::MAX,
        ] {
            assert_eq!(decode_timestamp(&encode_timestamp(ns)), Some(ns));
        }
        let mut bad_nanos = encode_timestamp(0);
        bad_nanos[8..].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert_eq!(decode_timestamp(&bad_nanos), None);
        let mut too_late = [0u8; TIMESTAMP_LEN];
        too_late[..8].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(decode_timestamp(&too_late), None);
        assert_eq!(decode_timestamp(&[0; TIMESTAMP_LEN - 1]), None);
    }
}
