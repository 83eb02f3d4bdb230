//! Writing `/proc/sys` values of the calling thread's namespace.
//!
//! `/proc/sys/net` shows the namespace of the thread that opens the file, so
//! this is called on a thread inside the namespace (see [`super::Netns::run`]).

use std::io;
use std::path::PathBuf;

/// A sysctl that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {value:?} to {}: {source}", path.display())]
pub struct SysctlError {
    /// The file under /proc/sys.
    pub path: PathBuf,
    /// The value.
    pub value: String,
    /// Why it failed.
    pub source: io::Error,
}

/// Writes `value` to `/proc/sys/<key>` (key with slashes: `net/ipv4/ip_forward`).
pub fn write(key: &str, value: &str) -> Result<(), SysctlError> {
    let path = PathBuf::from("/proc/sys").join(key);
    std::fs::write(&path, value).map_err(|source| SysctlError {
        path,
        value: value.to_owned(),
        source,
    })
}

/// Reads `/proc/sys/<key>`, trimmed.
pub fn read(key: &str) -> Result<String, SysctlError> {
    let path = PathBuf::from("/proc/sys").join(key);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(source) => Err(SysctlError {
            path,
            value: String::new(),
            source,
        }),
    }
}
