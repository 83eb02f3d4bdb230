//! Packet formats: parse from and emit into caller-owned buffers.
//!
//! Parsing returns borrowed views ([`Packet`], [`Frame`]) that were fully
//! checked once, so no accessor can panic or read out of bounds; any
//! malformed input is a typed [`WireError`]. Emitting writes into a
//! `&mut [u8]` and returns the length written. Nothing here allocates, so the
//! per-packet path stays allocation-free (smoltcp's parse/emit habit).
//!
//! # Outer packets (what goes in a UDP datagram)
//!
//! All integers are big-endian. Every packet starts with
//! `[version u8 = 1][type u8]`, so a future format can be told apart and
//! refused cleanly instead of being misread.
//!
//! ```text
//! HandshakeInit     (type 1, 146 bytes): sender_index u32, Noise message 1 (108 bytes),
//!                                         mac1 (16 bytes), mac2 (16 bytes)
//! HandshakeResponse (type 2,  74 bytes): sender_index u32, receiver_index u32,
//!                                         Noise message 2 (48 bytes), mac1 (16 bytes)
//! Transport         (type 3, >= 30 bytes): receiver_index u32, counter u64, ciphertext, tag (16 bytes)
//! CookieReply       (type 4,  62 bytes): receiver_index u32, nonce (24 bytes),
//!                                         encrypted cookie (16 bytes) and tag (16 bytes)
//! ```
//!
//! The handshake sizes are fixed by the Noise pattern (see [`crate::crypto`]),
//! so parsing demands the exact length. The response and the cookie reply
//! are shorter than the init, so a spoofed init can never make the gateway
//! reflect more bytes than it received. The MACs and the cookie reply are
//! WireGuard's (whitepaper section 5.4): mac1 lets the gateway refuse an init
//! not meant for it with one keyed hash, before any curve arithmetic; mac2
//! and the cookie reply let it demand, when under load, that the sender
//! prove it receives at its source address. The 14-byte transport header is
//! the AEAD associated data and its counter the AEAD nonce, so it is
//! authenticated without being encrypted.
//!
//! # Transport plaintext
//!
//! ```text
//! link u8, path_pn u64      payload header: the sending link and its own packet
//!                           number, for per-link RTT and loss detection
//! frame*                    one or more frames, each starting with a type byte
//! ```
//!
//! Frames ([`Frame`]):
//! - `Padding` (type 0): runs to the end of the payload; pads probes to a size.
//! - `Ping` (type 1): no body; ack-eliciting, so it is the link probe.
//! - `Data` (type 2): `seq u64, flow_gap u32, len u16, packet`: one IP
//!   packet with its global sequence number (for duplicate removal and loss
//!   accounting) and the distance back to the previous packet of its flow
//!   (for in-order delivery per flow).
//! - `Ack` (type 3): acknowledges path packet numbers of one link, in
//!   descending ranges encoded as in QUIC (see [`AckFrame`]).
//! - `Close` (type 4): `reason u8`.
//!
//! Ping and Data are ack-eliciting; Padding, Ack and Close are not, so acks
//! never trigger acks.
//!
//! # Overhead
//!
//! An IP packet sent alone costs [`TRANSPORT_HEADER_LEN`] + [`TAG_LEN`] +
//! [`PAYLOAD_HEADER_LEN`] + [`DATA_FRAME_HEADER_LEN`] = 54 bytes.

mod ack;
mod codec;
mod frame;
mod packet;

pub use ack::{AckFrame, AckRanges, MAX_ACK_RANGES, emit_ack};
pub use codec::VARINT_MAX;
pub use frame::{DATA_FRAME_HEADER_LEN, Frame, FrameIter};
pub use packet::{
    COOKIE_LEN, COOKIE_NONCE_LEN, COOKIE_REPLY_LEN, CookieReply, HANDSHAKE_INIT_LEN,
    HANDSHAKE_RESPONSE_LEN, HandshakeInit, HandshakeResponse, INIT_HEADER_LEN, MAC_LEN,
    NOISE_INIT_LEN, NOISE_RESPONSE_LEN, PAYLOAD_HEADER_LEN, Packet, PayloadHeader,
    RESPONSE_HEADER_LEN, TAG_LEN, TRANSPORT_HEADER_LEN, TransportHeader, TransportPacket, VERSION,
};

/// Why bytes could not be parsed, or a value could not be emitted.
///
/// `what` names the field or packet concerned, so a log line says which part
/// of which packet was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ended inside a field.
    #[error("truncated {what}: needed {needed} bytes, {available} left")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    /// A fixed-size packet had another size.
    #[error("{what} must be exactly {expected} bytes, got {actual}")]
    BadLength {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    /// The version byte is not [`VERSION`]: the peer speaks another format.
    #[error("unsupported protocol version {0} (expected {VERSION})")]
    UnsupportedVersion(u8),
    /// The packet type byte is none of handshake init/response, transport,
    /// cookie reply.
    #[error("unknown packet type {0} (expected 1 to 4)")]
    UnknownPacketType(u8),
    /// The frame type byte is none of padding, ping, data, ack, close.
    #[error("unknown frame type {0} (expected 0 to 4)")]
    UnknownFrameType(u8),
    /// The output buffer cannot hold what was to be written.
    #[error("buffer too small for {what}: needed {needed} bytes, {available} available")]
    BufferTooSmall {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    /// A value does not fit a QUIC varint (at most 2^62 - 1).
    #[error("{what} value {value} exceeds the varint maximum 2^62 - 1")]
    VarintTooLarge { what: &'static str, value: u64 },
    /// An ack delay on the wire does not fit in u32 microseconds.
    #[error("ack delay {0} us exceeds u32")]
    AckDelayTooLarge(u64),
    /// An ack's ranges go below packet number zero.
    #[error("ack ranges run below packet number 0")]
    AckRangeUnderflow,
    /// Ranges given to [`emit_ack`] are empty, not descending, overlapping
    /// or adjacent (adjacent ranges must be merged by the caller).
    #[error(
        "ack ranges must be non-empty, descending and separated by at least one missing number"
    )]
    InvalidAckRanges,
    /// A data frame's packet is longer than its u16 length field allows.
    #[error("data packet of {0} bytes exceeds 65535")]
    DataTooLong(usize),
}
