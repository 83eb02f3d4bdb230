//! Per-packet AEAD with the keys a handshake produced.

use std::fmt;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::REJECT_AFTER_MESSAGES;
use crate::wire::TAG_LEN;

/// Why a packet could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The buffer cannot hold the plaintext plus the tag.
    #[error("buffer of {available} bytes cannot hold {needed} bytes of ciphertext and tag")]
    BufferTooSmall { needed: usize, available: usize },
    /// Beyond ChaCha20-Poly1305's message size limit (256 GiB); no datagram
    /// comes near it.
    #[error("plaintext of {0} bytes exceeds the AEAD message limit")]
    MessageTooLong(usize),
    /// A sealed payload shorter than the tag.
    #[error("sealed payload of {0} bytes is shorter than the {TAG_LEN}-byte tag")]
    Truncated(usize),
    /// The tag does not match: wrong key, or the header, ciphertext or tag
    /// was altered. The packet must be dropped without any reply.
    #[error("packet failed authentication")]
    AuthenticationFailed,
    /// The counter reached [`REJECT_AFTER_MESSAGES`]; a new handshake is
    /// overdue and these keys must not be used any more.
    #[error("counter {0} is past the limit for one set of keys")]
    CounterExhausted(u64),
}

/// The two directions' ChaCha20-Poly1305 keys of one session.
///
/// Used in place: the caller's buffer holds the plaintext and receives the
/// tag, so no packet is copied or allocated. The nonce is the packet counter,
/// laid out as Noise's ChaChaPoly does (4 zero bytes, counter little-endian),
/// and the 14-byte transport header is the associated data, so the counter
/// and receiver index cannot be altered either.
///
/// The cipher is ring's: its assembly ChaCha20-Poly1305 picks the CPU's
/// vector units at run time, so a generic x86-64 build still gets the AVX2
/// code (the RustCrypto crates only inline theirs when built for it), which
/// roughly halves the per-packet cost of the hot path.
#[derive(Clone)]
pub struct SessionKeys {
    send: LessSafeKey,
    receive: LessSafeKey,
}

impl SessionKeys {
    pub(super) fn new(send: [u8; 32], receive: [u8; 32]) -> Self {
        Self {
            send: chacha20_poly1305_key(&send),
            receive: chacha20_poly1305_key(&receive),
        }
    }

    /// Encrypts `buf[..plaintext_len]` in place and writes the tag after it;
    /// returns `plaintext_len + TAG_LEN`.
    ///
    /// `header` is the emitted [`crate::wire::TransportHeader`] carrying the
    /// same `counter`; each counter must be used once per session (the caller
    /// keeps one increasing counter per direction).
    pub fn seal(
        &self,
        counter: u64,
        header: &[u8],
        buf: &mut [u8],
        plaintext_len: usize,
    ) -> Result<usize, CryptoError> {
        if counter >= REJECT_AFTER_MESSAGES {
            return Err(CryptoError::CounterExhausted(counter));
        }
        let needed = plaintext_len + TAG_LEN;
        if buf.len() < needed {
            return Err(CryptoError::BufferTooSmall {
                needed,
                available: buf.len(),
            });
        }
        let (plaintext, rest) = buf.split_at_mut(plaintext_len);
        let tag = self
            .send
            .seal_in_place_separate_tag(nonce(counter), Aad::from(header), plaintext)
            .map_err(|_| CryptoError::MessageTooLong(plaintext_len))?;
        rest[..TAG_LEN].copy_from_slice(tag.as_ref());
        Ok(needed)
    }

    /// Authenticates and decrypts `buf` (ciphertext then tag) in place;
    /// returns the plaintext length, the plaintext being `buf[..len]`.
    ///
    /// On failure `buf` may hold garbage and must be dropped. Check the
    /// counter with [`super::ReplayWindow::check`] before, and commit it
    /// after success only.
    pub fn open(&self, counter: u64, header: &[u8], buf: &mut [u8]) -> Result<usize, CryptoError> {
        if counter >= REJECT_AFTER_MESSAGES {
            return Err(CryptoError::CounterExhausted(counter));
        }
        let plaintext_len = buf
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::Truncated(buf.len()))?;
        self.receive
            .open_in_place(nonce(counter), Aad::from(header), buf)
            .map_err(|_| CryptoError::AuthenticationFailed)?;
        Ok(plaintext_len)
    }
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys(<redacted>)")
    }
}

fn chacha20_poly1305_key(key: &[u8; 32]) -> LessSafeKey {
    // ring rejects only a key of the wrong length, which a [u8; 32] is not.
    let key = UnboundKey::new(&CHACHA20_POLY1305, key)
        .expect("a 32-byte key is what ChaCha20-Poly1305 takes");
    LessSafeKey::new(key)
}

/// Noise's ChaChaPoly nonce: 4 zero bytes, then the counter little-endian.
fn nonce(counter: u64) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (SessionKeys, SessionKeys) {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        (SessionKeys::new(a, b), SessionKeys::new(b, a))
    }

    #[test]
    fn seal_then_open_restores_the_plaintext() {
        let (alice, bob) = pair();
        let header = [1, 3, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9];
        let mut buf = [0u8; 64];
        buf[..5].copy_from_slice(b"hello");
        let sealed = alice.seal(9, &header, &mut buf, 5).unwrap();
        assert_eq!(sealed, 5 + TAG_LEN);
        assert_ne!(&buf[..5], b"hello", "encrypted in place");
        let len = bob.open(9, &header, &mut buf[..sealed]).unwrap();
        assert_eq!(&buf[..len], b"hello");
    }

    /// Pins the wire format across AEAD implementations: the expected bytes
    /// come from OpenSSL's ChaCha20-Poly1305 (via Python's `cryptography`)
    /// with nonce = 4 zero bytes || counter little-endian and the header as
    /// associated data, so peers built on another crate still interoperate.
    #[test]
    fn sealed_bytes_match_an_independent_implementation() {
        let keys = SessionKeys::new([1u8; 32], [1u8; 32]);
        let header = [1, 3, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9];
        let counter = 0x0102_0304_0506_0708;
        let plaintext = b"circus hot path";
        let mut buf = [0u8; 64];
        buf[..plaintext.len()].copy_from_slice(plaintext);
        let sealed = keys
            .seal(counter, &header, &mut buf, plaintext.len())
            .unwrap();
        let expected = [
            0x3e, 0x26, 0xbc, 0xad, 0xed, 0x5b, 0x2f, 0x8b, 0x0b, 0xa8, 0x08, 0x8e, 0x4a, 0x08,
            0xb8, 0xf9, 0x34, 0x04, 0x6e, 0xf5, 0xa8, 0x38, 0x98, 0x3f, 0xba, 0x38, 0x0b, 0xaa,
            0x89, 0x20, 0xa9,
        ];
        assert_eq!(&buf[..sealed], &expected[..]);
        let len = keys.open(counter, &header, &mut buf[..sealed]).unwrap();
        assert_eq!(&buf[..len], plaintext);
    }

    #[test]
    fn each_direction_has_its_own_key() {
        let (alice, _) = pair();
        let mut buf = [0u8; 32];
        let sealed = alice.seal(0, &[], &mut buf, 4).unwrap();
        assert_eq!(
            alice.open(0, &[], &mut buf[..sealed]),
            Err(CryptoError::AuthenticationFailed),
            "a reflected packet must not authenticate"
        );
    }

    #[test]
    fn short_buffers_and_exhausted_counters_are_errors() {
        let (alice, bob) = pair();
        let mut buf = [0u8; 10];
        assert_eq!(
            alice.seal(0, &[], &mut buf, 5),
            Err(CryptoError::BufferTooSmall {
                needed: 21,
                available: 10
            })
        );
        assert_eq!(bob.open(0, &[], &mut buf), Err(CryptoError::Truncated(10)));
        let mut buf = [0u8; 32];
        assert_eq!(
            alice.seal(REJECT_AFTER_MESSAGES, &[], &mut buf, 1),
            Err(CryptoError::CounterExhausted(REJECT_AFTER_MESSAGES))
        );
    }
}
