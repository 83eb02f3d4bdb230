//! Keys: the types come from `circus_core::crypto`; this module adds what
//! the command line needs (`keygen`) and safe key files: written private
//! to their owner, and refused when anyone else could read them, as ssh
//! does with its private keys.

pub use circus_core::crypto::{KEY_LEN, KeyError, Psk, PublicKey, StaticSecret, generate_keypair};

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A fresh pre-shared key.
pub fn generate_psk() -> Result<Psk, KeyError> {
    Psk::generate()
}

/// The all-zero PSK, used when a config sets none: Noise IKpsk2 then gives
/// the security of plain IK, as WireGuard without a preshared key.
pub fn no_psk() -> Psk {
    Psk::from_bytes([0; KEY_LEN])
}

/// Permission bits that must be clear on a secret file: any access by the
/// group or by others.
const NOT_OWNER: u32 = 0o077;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(
        "key file {} exists; it may hold the key your peers trust. Use --force to replace it \
         (the peers then need the new public key)",
        path.display()
    )]
    Exists { path: PathBuf },
    #[error("cannot write key file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read key file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "key file {} may be read by group or others (mode {mode:03o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
}

/// Writes `secret` in base64 to `path`, readable only by its owner,
/// creating missing parent directories with mode 0700. An existing file is
/// kept unless `replace` (it may hold the key peers trust); a replaced key
/// is swapped in whole by a rename, so a crash leaves the old or the new.
pub fn write_secret_file(
    path: &Path,
    secret: &StaticSecret,
    replace: bool,
) -> Result<(), KeyFileError> {
    let write_err = |source| KeyFileError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write_err)?;
    }
    if !replace {
        return match create_private(path, secret) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(KeyFileError::Exists {
                path: path.to_owned(),
            }),
            other => other.map_err(write_err),
        };
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    create_private(&temporary, secret)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|source| {
            let _ = std::fs::remove_file(&temporary);
            write_err(source)
        })
}

/// A new file with mode 0600 holding the key; fails if `path` exists.
fn create_private(path: &Path, secret: &StaticSecret) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{secret}")?;
    file.sync_all()
}

/// Reads a private or pre-shared key file, refusing one that the group or
/// others may access: a key that others could read is no longer secret,
/// and a daemon that accepted it would hide that.
pub fn read_secret_file(path: &Path) -> Result<String, KeyFileError> {
    let read_err = |source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let mode = file.metadata().map_err(read_err)?.permissions().mode();
    if mode & NOT_OWNER != 0 {
        return Err(KeyFileError::Exposed {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_err)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cnd-keys-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn secret_file_is_private_in_a_private_new_directory() {
        let dir = scratch("new");
        let path = dir.join("etc/circus/client.key");
        let (secret, public) = generate_keypair().unwrap();
        write_secret_file(&path, &secret, false).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.join("etc/circus")), 0o700, "created directories");
        assert_eq!(mode(&dir.join("etc")), 0o700);
        let read: StaticSecret = read_secret_file(&path).unwrap().parse().unwrap();
        assert_eq!(read.public_key(), public);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn existing_key_is_replaced_only_when_asked() {
        let dir = scratch("replace");
        let path = dir.join("gateway.key");
        let (first, _) = generate_keypair().unwrap();
        let (second, second_public) = generate_keypair().unwrap();
        write_secret_file(&path, &first, false).unwrap();
        let refused = write_secret_file(&path, &second, false).unwrap_err();
        assert!(matches!(refused, KeyFileError::Exists { .. }));
        assert!(refused.to_string().contains("--force"), "{refused}");
        assert_eq!(read_secret_file(&path).unwrap(), format!("{first}\n"));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_secret_file(&path, &second, true).unwrap();
        let read: StaticSecret = read_secret_file(&path).unwrap().parse().unwrap();
        assert_eq!(read.public_key(), second_public);
        assert_eq!(mode(&path), 0o600, "the replacement is private again");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_file_others_may_read_is_refused_with_the_fix() {
        let dir = scratch("exposed");
        let path = dir.join("client.key");
        let (secret, _) = generate_keypair().unwrap();
        write_secret_file(&path, &secret, false).unwrap();
        for exposed in [0o640, 0o604, 0o620, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(exposed)).unwrap();
            let err = read_secret_file(&path).unwrap_err().to_string();
            assert!(
                err.contains(&format!("(mode {exposed:03o})"))
                    && err.contains(&format!("run `chmod 600 {}`", path.display())),
                "{err}"
            );
            assert!(!err.contains(&secret.to_string()), "{err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(
            read_secret_file(&path).is_ok(),
            "read-only for the owner is fine"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
