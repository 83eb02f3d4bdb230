//! Keys: the types come from `circus_core::crypto`; this module adds what
//! the command line needs (`keygen`) and safe key files.

pub use circus_core::crypto::{KEY_LEN, KeyError, Psk, PublicKey, StaticSecret, generate_keypair};

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A fresh pre-shared key.
pub fn generate_psk() -> Result<Psk, KeyError> {
    Psk::generate()
}

/// The all-zero PSK, used when a config sets none: Noise IKpsk2 then gives
/// the security of plain IK, as WireGuard without a preshared key.
pub fn no_psk() -> Psk {
    Psk::from_bytes([0; KEY_LEN])
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write key file {}: {source}", path.display())]
pub struct KeyFileError {
    pub path: std::path::PathBuf,
    #[source]
    pub source: io::Error,
}

/// Writes `secret` in base64 to a new file readable only by its owner; an
/// existing file is never overwritten (it may hold the key peers trust).
pub fn write_secret_file(path: &Path, secret: &StaticSecret) -> Result<(), KeyFileError> {
    let write = || -> io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        writeln!(file, "{secret}")?;
        file.sync_all()
    };
    write().map_err(|source| KeyFileError {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_file_is_private_and_never_overwritten() {
        let path = std::env::temp_dir().join(format!("cnd-key-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (secret, public) = generate_keypair().unwrap();
        write_secret_file(&path, &secret).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        let read: StaticSecret = text.parse().unwrap();
        assert_eq!(read.public_key(), public);
        assert!(
            write_secret_file(&path, &secret).is_err(),
            "existing file kept"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
