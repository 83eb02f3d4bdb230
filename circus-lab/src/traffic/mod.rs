//! Traffic the lab generates and measures itself, so every system under test
//! carries exactly the same work.
//!
//! - [`clock`]: CLOCK_MONOTONIC readings shared by all namespaces (one-way latency).
//! - [`probe`]: the sequenced, timestamped UDP probe stream (sender, receiver, logs).
//! - [`tcp`]: bulk TCP (or MPTCP) flows and their per-time-bin byte counts.
//! - [`udp`]: a fixed UDP load and the payload goodput that arrives of it.
//!
//! Senders and receivers are blocking and run on the caller's thread, which the
//! caller has already moved into the right network namespace. Threads they spawn
//! inherit that namespace (Linux copies the creating thread's namespaces), so
//! nothing here calls `setns`.

pub mod clock;
pub mod probe;
pub mod tcp;
pub mod udp;

use std::io;
use std::net::SocketAddr;

pub use clock::{MonoNanos, TimerSlack};

/// Why generating or measuring traffic failed. Each variant names the socket
/// address or setting involved.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("traffic setting `{key}`: expected {expected}, got {got}")]
    Config {
        key: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("cannot open a {what} socket for {addr}: {source}")]
    Socket {
        what: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("cannot bind to {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("receiving on {addr} failed: {source}")]
    Receive { addr: SocketAddr, source: io::Error },
    #[error("accepting connections on {addr} failed: {source}")]
    Accept { addr: SocketAddr, source: io::Error },
    #[error("the {thread} thread for {addr} panicked")]
    ThreadPanicked {
        /// Which thread: "probe receiver", "tcp sender flow", ...
        thread: &'static str,
        addr: SocketAddr,
    },
}

/// The interface flow `flow` is pinned to, if any.
pub(crate) fn pinned_device(devices: &[String], flow: u16) -> Option<&str> {
    match devices.len() {
        0 => None,
        n => Some(devices[usize::from(flow) % n].as_str()),
    }
}

/// Binds `socket` to `device` (SO_BINDTODEVICE) so it leaves on that
/// interface whatever the routing table prefers; `None` does nothing.
pub(crate) fn bind_device(socket: &socket2::Socket, device: Option<&str>) -> io::Result<()> {
    match device {
        Some(name) => socket.bind_device(Some(name.as_bytes())),
        None => Ok(()),
    }
}
