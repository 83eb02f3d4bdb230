//! Key types of the configs.
//!
//! TEMPORARY stand-ins until `circus_core::crypto` lands (core-secure);
//! then this module re-exports `StaticSecret`, `PublicKey`, `Psk` from there
//! and implements `keygen`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::str::FromStr;

macro_rules! key32 {
    ($name:ident) => {
        #[derive(Clone, Default, PartialEq, Eq)]
        pub struct $name(pub [u8; 32]);

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }

        impl FromStr for $name {
            type Err = KeyParseError;
            fn from_str(s: &str) -> Result<Self, KeyParseError> {
                let bytes = STANDARD.decode(s.trim()).map_err(|_| KeyParseError)?;
                Ok($name(bytes.try_into().map_err(|_| KeyParseError)?))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&STANDARD.encode(self.0))
            }
        }
    };
}

key32!(StaticSecret);
key32!(PublicKey);
key32!(Psk);

#[derive(Debug, thiserror::Error)]
#[error("expected a base64 32-byte key")]
pub struct KeyParseError;
