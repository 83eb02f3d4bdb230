//! Outer packets (handshake init/response, cookie reply, transport) and the
//! transport plaintext's payload header.

use super::WireError;
use super::codec::{Reader, Writer};
use crate::LinkId;

/// The only format version this code speaks.
pub const VERSION: u8 = 1;

const TYPE_HANDSHAKE_INIT: u8 = 1;
const TYPE_HANDSHAKE_RESPONSE: u8 = 2;
const TYPE_TRANSPORT: u8 = 3;
const TYPE_COOKIE_REPLY: u8 = 4;

/// Bytes of Noise IKpsk2 message 1 with its 12-byte timestamp payload:
/// ephemeral key 32, encrypted static key 32 + 16, encrypted timestamp 12 + 16.
pub const NOISE_INIT_LEN: usize = 32 + (32 + 16) + (12 + 16);
/// Bytes of Noise IKpsk2 message 2 with an empty payload: ephemeral key 32,
/// encrypted empty payload 16.
pub const NOISE_RESPONSE_LEN: usize = 32 + 16;
/// Size of each handshake MAC (keyed BLAKE2s-128, as in WireGuard).
pub const MAC_LEN: usize = 16;
/// Size of a cookie: a MAC of the sender's address.
pub const COOKIE_LEN: usize = MAC_LEN;
/// Size of the cookie reply's random nonce (XChaCha20-Poly1305).
pub const COOKIE_NONCE_LEN: usize = 24;
/// Total size of a handshake init packet: header, Noise message, mac1, mac2.
pub const HANDSHAKE_INIT_LEN: usize = INIT_HEADER_LEN + NOISE_INIT_LEN + 2 * MAC_LEN;
/// Total size of a handshake response packet: header, Noise message, mac1.
/// Smaller than the init, so a response never amplifies a spoofed init.
pub const HANDSHAKE_RESPONSE_LEN: usize = RESPONSE_HEADER_LEN + NOISE_RESPONSE_LEN + MAC_LEN;
/// Total size of a cookie reply: header, nonce, encrypted cookie and its tag.
/// Smaller than the init that caused it.
pub const COOKIE_REPLY_LEN: usize = 2 + 4 + COOKIE_NONCE_LEN + COOKIE_LEN + TAG_LEN;
/// Bytes before the init's Noise message: version, type, sender_index.
pub const INIT_HEADER_LEN: usize = 2 + 4;
/// Bytes before the response's Noise message: version, type, both indices.
pub const RESPONSE_HEADER_LEN: usize = 2 + 4 + 4;
/// Size of the transport header: version, type, receiver_index, counter.
pub const TRANSPORT_HEADER_LEN: usize = 2 + 4 + 8;
/// Size of the Poly1305 tag after every transport ciphertext.
pub const TAG_LEN: usize = 16;
/// Size of the payload header at the start of every transport plaintext.
pub const PAYLOAD_HEADER_LEN: usize = 1 + 8;

// Checked at compile time: the no-amplification rule is a property of the
// format. Every reply the gateway sends to an unproven address is smaller
// than the init that caused it.
const _: () = assert!(HANDSHAKE_RESPONSE_LEN < HANDSHAKE_INIT_LEN);
const _: () = assert!(COOKIE_REPLY_LEN < HANDSHAKE_INIT_LEN);

/// A parsed outer packet, borrowing from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    HandshakeInit(HandshakeInit<'a>),
    HandshakeResponse(HandshakeResponse<'a>),
    CookieReply(CookieReply),
    Transport(TransportPacket<'a>),
}

impl<'a> Packet<'a> {
    /// Parses one UDP datagram. Never panics; any malformed input is an error.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, WireError> {
        let mut reader = Reader::new(datagram);
        let version = reader.u8("packet version")?;
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        match reader.u8("packet type")? {
            TYPE_HANDSHAKE_INIT => {
                expect_len("handshake init", HANDSHAKE_INIT_LEN, datagram.len())?;
                Ok(Packet::HandshakeInit(HandshakeInit {
                    sender_index: reader.u32("init sender_index")?,
                    noise: reader.bytes(NOISE_INIT_LEN, "init noise")?,
                    mac1: reader.array("init mac1")?,
                    mac2: reader.array("init mac2")?,
                }))
            }
            TYPE_HANDSHAKE_RESPONSE => {
                expect_len("handshake response", HANDSHAKE_RESPONSE_LEN, datagram.len())?;
                Ok(Packet::HandshakeResponse(HandshakeResponse {
                    sender_index: reader.u32("response sender_index")?,
                    receiver_index: reader.u32("response receiver_index")?,
                    noise: reader.bytes(NOISE_RESPONSE_LEN, "response noise")?,
                    mac1: reader.array("response mac1")?,
                }))
            }
            TYPE_COOKIE_REPLY => {
                expect_len("cookie reply", COOKIE_REPLY_LEN, datagram.len())?;
                Ok(Packet::CookieReply(CookieReply {
                    receiver_index: reader.u32("cookie reply receiver_index")?,
                    nonce: reader.array("cookie reply nonce")?,
                    sealed_cookie: reader.array("cookie reply cookie")?,
                }))
            }
            TYPE_TRANSPORT => {
                let header = TransportHeader {
                    receiver_index: reader.u32("transport receiver_index")?,
                    counter: reader.u64("transport counter")?,
                };
                let sealed = reader.rest();
                if sealed.len() < TAG_LEN {
                    return Err(WireError::Truncated {
                        what: "transport tag",
                        needed: TAG_LEN,
                        available: sealed.len(),
                    });
                }
                Ok(Packet::Transport(TransportPacket { header, sealed }))
            }
            other => Err(WireError::UnknownPacketType(other)),
        }
    }
}

fn expect_len(what: &'static str, expected: usize, actual: usize) -> Result<(), WireError> {
    if actual == expected {
        Ok(())
    } else {
        Err(WireError::BadLength {
            what,
            expected,
            actual,
        })
    }
}

/// First handshake message, client to gateway.
///
/// `mac1` covers [`header`](Self::header) and `noise`; `mac2` covers those
/// and `mac1` (see [`crate::crypto`] for the keys). Both are computed over
/// the fields rather than raw bytes, so they need no second copy of the
/// packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeInit<'a> {
    /// The initiator's index for this session: the gateway puts it in the
    /// response and in every transport packet it sends back.
    pub sender_index: u32,
    /// Noise message 1, exactly [`NOISE_INIT_LEN`] bytes.
    pub noise: &'a [u8],
    /// Proves the sender knows the gateway's public key.
    pub mac1: [u8; MAC_LEN],
    /// Proves the sender received a cookie at its address; zero without one.
    pub mac2: [u8; MAC_LEN],
}

impl HandshakeInit<'_> {
    /// The packet's bytes before the Noise message.
    pub fn header(&self) -> [u8; INIT_HEADER_LEN] {
        let mut header = [VERSION, TYPE_HANDSHAKE_INIT, 0, 0, 0, 0];
        header[2..].copy_from_slice(&self.sender_index.to_be_bytes());
        header
    }

    /// Writes the whole packet; returns [`HANDSHAKE_INIT_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        expect_len(
            "handshake init noise message",
            NOISE_INIT_LEN,
            self.noise.len(),
        )?;
        let mut writer = Writer::new(buf);
        writer.bytes(&self.header(), "handshake init")?;
        writer.bytes(self.noise, "handshake init")?;
        writer.bytes(&self.mac1, "handshake init")?;
        writer.bytes(&self.mac2, "handshake init")?;
        Ok(writer.len())
    }
}

/// Second handshake message, gateway to client.
///
/// `mac1` covers [`header`](Self::header) and `noise`, keyed by the
/// client's public key, so the client refuses a stray response without
/// any curve arithmetic. There is no mac2: the client answers nobody's
/// handshakes, so it never hands out cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeResponse<'a> {
    /// The responder's index for this session.
    pub sender_index: u32,
    /// The initiator's `sender_index`, echoed so it finds its pending handshake.
    pub receiver_index: u32,
    /// Noise message 2, exactly [`NOISE_RESPONSE_LEN`] bytes.
    pub noise: &'a [u8],
    pub mac1: [u8; MAC_LEN],
}

impl HandshakeResponse<'_> {
    /// The packet's bytes before the Noise message.
    pub fn header(&self) -> [u8; RESPONSE_HEADER_LEN] {
        let mut header = [0; RESPONSE_HEADER_LEN];
        header[..2].copy_from_slice(&[VERSION, TYPE_HANDSHAKE_RESPONSE]);
        header[2..6].copy_from_slice(&self.sender_index.to_be_bytes());
        header[6..].copy_from_slice(&self.receiver_index.to_be_bytes());
        header
    }

    /// Writes the whole packet; returns [`HANDSHAKE_RESPONSE_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        expect_len(
            "handshake response noise message",
            NOISE_RESPONSE_LEN,
            self.noise.len(),
        )?;
        let mut writer = Writer::new(buf);
        writer.bytes(&self.header(), "handshake response")?;
        writer.bytes(self.noise, "handshake response")?;
        writer.bytes(&self.mac1, "handshake response")?;
        Ok(writer.len())
    }
}

/// The gateway's answer, under load, to an init without a valid mac2: a
/// cookie for the init's source address, encrypted so that only the
/// sender of that init can use it (see [`crate::crypto`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieReply {
    /// The init's `sender_index`, so the client finds its handshake.
    pub receiver_index: u32,
    pub nonce: [u8; COOKIE_NONCE_LEN],
    /// The cookie encrypted, followed by its [`TAG_LEN`]-byte tag.
    pub sealed_cookie: [u8; COOKIE_LEN + TAG_LEN],
}

impl CookieReply {
    /// Writes the whole packet; returns [`COOKIE_REPLY_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let mut writer = Writer::new(buf);
        writer.u8(VERSION, "cookie reply")?;
        writer.u8(TYPE_COOKIE_REPLY, "cookie reply")?;
        writer.u32(self.receiver_index, "cookie reply")?;
        writer.bytes(&self.nonce, "cookie reply")?;
        writer.bytes(&self.sealed_cookie, "cookie reply")?;
        Ok(writer.len())
    }
}

/// The cleartext header of a transport packet; also its AEAD associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportHeader {
    /// The receiver's session index: how it finds the keys without trying all.
    pub receiver_index: u32,
    /// Per-direction packet counter; the AEAD nonce and the replay-window key.
    pub counter: u64,
}

impl TransportHeader {
    /// Writes the [`TRANSPORT_HEADER_LEN`] header bytes; returns that length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let mut writer = Writer::new(buf);
        writer.u8(VERSION, "transport header")?;
        writer.u8(TYPE_TRANSPORT, "transport header")?;
        writer.u32(self.receiver_index, "transport header")?;
        writer.u64(self.counter, "transport header")?;
        Ok(writer.len())
    }
}

/// A transport packet before decryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportPacket<'a> {
    pub header: TransportHeader,
    /// Ciphertext followed by the [`TAG_LEN`]-byte tag (at least the tag).
    pub sealed: &'a [u8],
}

/// Start of every transport plaintext: which link sent it, with which
/// per-link packet number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadHeader {
    /// The link the packet was sent on, as the client numbers links.
    pub link: LinkId,
    /// The packet number in that link's own number space (RFC 9002 per path).
    pub path_pn: u64,
}

impl PayloadHeader {
    /// Parses the header and returns it with the frame bytes that follow.
    pub fn parse(plaintext: &[u8]) -> Result<(Self, &[u8]), WireError> {
        let mut reader = Reader::new(plaintext);
        let header = PayloadHeader {
            link: LinkId(reader.u8("payload link")?),
            path_pn: reader.u64("payload path_pn")?,
        };
        Ok((header, reader.rest()))
    }

    /// Writes the [`PAYLOAD_HEADER_LEN`] header bytes; returns that length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let mut writer = Writer::new(buf);
        writer.u8(self.link.0, "payload header")?;
        writer.u64(self.path_pn, "payload header")?;
        Ok(writer.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_header_layout_is_fixed() {
        let mut buf = [0u8; TRANSPORT_HEADER_LEN];
        let header = TransportHeader {
            receiver_index: 0x0102_0304,
            counter: 0x0506_0708_090a_0b0c,
        };
        assert_eq!(header.emit(&mut buf), Ok(TRANSPORT_HEADER_LEN));
        assert_eq!(buf, [1, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn transport_without_full_tag_is_truncated() {
        let mut buf = [0u8; TRANSPORT_HEADER_LEN + TAG_LEN - 1];
        TransportHeader {
            receiver_index: 1,
            counter: 2,
        }
        .emit(&mut buf)
        .unwrap();
        assert!(matches!(
            Packet::parse(&buf),
            Err(WireError::Truncated {
                what: "transport tag",
                ..
            })
        ));
    }

    #[test]
    fn wrong_version_and_type_are_refused() {
        assert_eq!(
            Packet::parse(&[2, 3]),
            Err(WireError::UnsupportedVersion(2))
        );
        assert_eq!(Packet::parse(&[1, 9]), Err(WireError::UnknownPacketType(9)));
        assert!(matches!(
            Packet::parse(&[]),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn handshake_with_extra_byte_is_refused() {
        let noise = [7u8; NOISE_INIT_LEN];
        let mut buf = [0u8; HANDSHAKE_INIT_LEN + 1];
        let len = HandshakeInit {
            sender_index: 5,
            noise: &noise,
            mac1: [1; MAC_LEN],
            mac2: [2; MAC_LEN],
        }
        .emit(&mut buf)
        .unwrap();
        assert_eq!(len, HANDSHAKE_INIT_LEN);
        assert!(matches!(
            Packet::parse(&buf),
            Err(WireError::BadLength {
                what: "handshake init",
                ..
            })
        ));
    }

    #[test]
    fn emit_refuses_noise_of_the_wrong_size() {
        let mut buf = [0u8; 200];
        let init = HandshakeInit {
            sender_index: 1,
            noise: &[0; 10],
            mac1: [0; MAC_LEN],
            mac2: [0; MAC_LEN],
        };
        assert!(matches!(
            init.emit(&mut buf),
            Err(WireError::BadLength {
                expected: NOISE_INIT_LEN,
                ..
            })
        ));
    }
}
