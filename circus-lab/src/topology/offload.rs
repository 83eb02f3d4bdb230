//! Turning veth offloads off with the `SIOCETHTOOL` ioctl (no ethtool binary).
//!
//! With offloads on, a veth passes 64 KB TCP super-frames (TSO/GSO/GRO) and
//! frames whose checksum is left for "hardware" to fill in. The emulator
//! forwards raw frames: a super-frame would be delayed and rate-limited as one
//! packet, and a frame with a pending checksum would arrive corrupt after the
//! packet-socket hop. Off, every frame is MTU-sized and complete.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One legacy ethtool on/off feature: its get and set commands.
#[derive(Clone, Copy, Debug)]
struct Feature {
    name: &'static str,
    get: u32,
    set: u32,
}

// From <linux/ethtool.h>; libc does not carry them.
const TSO: Feature = Feature {
    name: "tcp-segmentation-offload",
    get: 0x1e,
    set: 0x1f,
};
const GSO: Feature = Feature {
    name: "generic-segmentation-offload",
    get: 0x23,
    set: 0x24,
};
const GRO: Feature = Feature {
    name: "generic-receive-offload",
    get: 0x2b,
    set: 0x2c,
};
const TX_CHECKSUM: Feature = Feature {
    name: "tx-checksumming",
    get: 0x16,
    set: 0x17,
};
const RX_CHECKSUM: Feature = Feature {
    name: "rx-checksumming",
    get: 0x14,
    set: 0x15,
};

/// Segmentation first: the kernel refuses to drop checksumming while a
/// feature that depends on it is still on.
const OFFLOADS: [Feature; 5] = [TSO, GSO, GRO, TX_CHECKSUM, RX_CHECKSUM];

/// A failed ethtool request.
#[derive(Debug, thiserror::Error)]
#[error("interface {interface}: cannot {action} {feature}: {source}")]
pub struct OffloadError {
    /// The interface.
    pub interface: String,
    /// "turn off" or "read".
    pub action: &'static str,
    /// The ethtool feature name, as `ethtool -k` prints it.
    pub feature: &'static str,
    /// The error from the ioctl.
    pub source: io::Error,
}

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Turns segmentation, receive coalescing and checksum offloads off on
/// `interface` in the calling thread's namespace.
pub fn disable_offloads(interface: &str) -> Result<(), OffloadError> {
    let socket = control_socket().map_err(|source| OffloadError {
        interface: interface.to_owned(),
        action: "open a socket to turn off",
        feature: "offloads",
        source,
    })?;
    for feature in OFFLOADS {
        ethtool(&socket, interface, feature.set, 0).map_err(|source| OffloadError {
            interface: interface.to_owned(),
            action: "turn off",
            feature: feature.name,
            source,
        })?;
    }
    Ok(())
}

/// The names of the offloads still on for `interface` (empty once
/// [`disable_offloads`] succeeded).
pub fn enabled_offloads(interface: &str) -> Result<Vec<&'static str>, OffloadError> {
    let socket = control_socket().map_err(|source| OffloadError {
        interface: interface.to_owned(),
        action: "open a socket to read",
        feature: "offloads",
        source,
    })?;
    let mut enabled = Vec::new();
    for feature in OFFLOADS {
        let on = ethtool(&socket, interface, feature.get, 0).map_err(|source| OffloadError {
            interface: interface.to_owned(),
            action: "read",
            feature: feature.name,
            source,
        })?;
        if on != 0 {
            enabled.push(feature.name);
        }
    }
    Ok(enabled)
}

fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket() has no memory preconditions; the fd is checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Runs one ethtool command with an `ethtool_value`; returns its `data`.
fn ethtool(socket: &OwnedFd, interface: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let name = interface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name must be 1 to 15 bytes",
        ));
    }
    let mut value = EthtoolValue { cmd, data };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in request.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    request.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    // SAFETY: `request` names the interface and points at `value`, both alive
    // for the call; SIOCETHTOOL reads and writes only the ethtool_value.
    let result = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &mut request) };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value.data)
}
