//! X25519 static keys and the pre-shared key, with their base64 text form.
//!
//! The text form is what `wg` uses (standard base64, 44 characters), so keys
//! can be pasted between tools and config files. Secrets are wiped from
//! memory on drop and never shown by `Debug`, so a logged config or state
//! does not leak them; `Display` is what `circus-node keygen` prints.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use curve25519_dalek::montgomery::MontgomeryPoint;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use zeroize::Zeroize;

/// Length of every key in bytes.
pub const KEY_LEN: usize = 32;

/// Why a key could not be read or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not standard base64.
    #[error("{kind} is not valid base64 ({source}); expected 44 characters as printed by keygen")]
    Base64 {
        kind: &'static str,
        source: base64::DecodeError,
    },
    /// The text decodes to the wrong number of bytes.
    #[error("{kind} must decode to {KEY_LEN} bytes (44 base64 characters), got {actual} bytes")]
    WrongLength { kind: &'static str, actual: usize },
    /// The operating system's random source failed.
    #[error("no randomness available to generate a {kind}")]
    Random { kind: &'static str },
}

fn decode(kind: &'static str, text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let mut bytes = BASE64
        .decode(text.trim())
        .map_err(|source| KeyError::Base64 { kind, source })?;
    let key = <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| KeyError::WrongLength {
        kind,
        actual: bytes.len(),
    });
    bytes.zeroize();
    key
}

pub(crate) fn random_key(kind: &'static str) -> Result<[u8; KEY_LEN], KeyError> {
    let mut key = [0u8; KEY_LEN];
    let mut rng = DefaultResolver
        .resolve_rng()
        .ok_or(KeyError::Random { kind })?;
    rng.try_fill_bytes(&mut key)
        .map_err(|_| KeyError::Random { kind })?;
    Ok(key)
}

/// A peer's X25519 public key: its identity, and how the gateway finds
/// which client a handshake comes from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE64.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, KeyError> {
        decode("public key", text).map(Self)
    }
}

/// Our X25519 private key.
#[derive(Clone)]
pub struct StaticSecret([u8; KEY_LEN]);

impl StaticSecret {
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The public key peers must be configured with.
    pub fn public_key(&self) -> PublicKey {
        // The same clamped base-point multiplication snow performs.
        PublicKey(MontgomeryPoint::mul_base_clamped(self.0).to_bytes())
    }
}

impl Drop for StaticSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Display for StaticSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE64.encode(self.0))
    }
}

impl fmt::Debug for StaticSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticSecret(<redacted>, public {})", self.public_key())
    }
}

impl FromStr for StaticSecret {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, KeyError> {
        decode("private key", text).map(Self)
    }
}

/// The pre-shared key mixed into the handshake: a second secret per client,
/// so that recording traffic today and breaking X25519 later is not enough
/// (the post-quantum argument WireGuard makes for its PSK).
#[derive(Clone)]
pub struct Psk([u8; KEY_LEN]);

impl Psk {
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A fresh random PSK from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        random_key("preshared key").map(Self)
    }
}

impl Drop for Psk {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Display for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE64.encode(self.0))
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

impl FromStr for Psk {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, KeyError> {
        decode("preshared key", text).map(Self)
    }
}

/// A fresh static key pair from the operating system's random source.
pub fn generate_keypair() -> Result<(StaticSecret, PublicKey), KeyError> {
    let secret = StaticSecret(random_key("private key")?);
    let public = secret.public_key();
    Ok((secret, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_text() {
        let (secret, public) = generate_keypair().unwrap();
        let psk = Psk::generate().unwrap();
        assert_eq!(secret.to_string().len(), 44);
        let secret_again: StaticSecret = secret.to_string().parse().unwrap();
        assert_eq!(secret_again.as_bytes(), secret.as_bytes());
        assert_eq!(public.to_string().parse::<PublicKey>().unwrap(), public);
        let psk_again: Psk = psk.to_string().parse().unwrap();
        assert_eq!(psk_again.as_bytes(), psk.as_bytes());
        assert_ne!(psk.as_bytes(), &[0; KEY_LEN], "generated from randomness");
    }

    #[test]
    fn public_key_matches_rfc7748_test_vector() {
        // RFC 7748, section 6.1: Alice's private and public key.
        let secret: StaticSecret = BASE64
            .encode([
                0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2,
                0x66, 0x45, 0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5,
                0x1d, 0xb9, 0x2c, 0x2a,
            ])
            .parse()
            .unwrap();
        let expected = [
            0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54, 0x74, 0x8b, 0x7d, 0xdc, 0xb4, 0x3e,
            0xf7, 0x5a, 0x0d, 0xbf, 0x3a, 0x0d, 0x26, 0x38, 0x1a, 0xf4, 0xeb, 0xa4, 0xa9, 0x8e,
            0xaa, 0x9b, 0x4e, 0x6a,
        ];
        assert_eq!(secret.public_key().as_bytes(), &expected);
    }

    #[test]
    fn bad_text_says_what_was_expected() {
        let err = "not base64!".parse::<PublicKey>().unwrap_err();
        assert!(matches!(
            err,
            KeyError::Base64 {
                kind: "public key",
                ..
            }
        ));
        let short = BASE64.encode([1u8; 16]);
        let err = short.parse::<Psk>().unwrap_err();
        assert_eq!(
            err,
            KeyError::WrongLength {
                kind: "preshared key",
                actual: 16
            }
        );
        assert!(err.to_string().contains("32 bytes"));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let (secret, _) = generate_keypair().unwrap();
        let psk = Psk::generate().unwrap();
        assert!(!format!("{secret:?}").contains(&secret.to_string()));
        assert!(!format!("{psk:?}").contains(&psk.to_string()));
    }
}
