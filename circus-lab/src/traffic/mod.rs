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
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

pub use clock::{FifoPriority, MonoNanos, TimerSlack};

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

/// How long receivers keep listening after the last probe is due, so probes
/// still in flight (slow links, queues, the reorder hold) are counted: the
/// same for a real run and a simulated one.
pub const DRAIN: Duration = Duration::from_millis(1500);

/// How often a receiver blocked in a receive wakes up to check its stop flag.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(20);

/// Binds a receiver's UDP socket on the caller's thread (in the receiver's
/// namespace), with reads that time out after [`STOP_POLL`] so the thread
/// sees its stop flag; returns it with the address actually bound (the real
/// port when 0 was asked for).
pub(crate) fn bind_stoppable(addr: SocketAddr) -> Result<(UdpSocket, SocketAddr), TrafficError> {
    let socket = UdpSocket::bind(addr).map_err(|source| TrafficError::Bind { addr, source })?;
    let addr = socket
        .local_addr()
        .map_err(|source| TrafficError::Bind { addr, source })?;
    socket
        .set_read_timeout(Some(STOP_POLL))
        .map_err(|source| TrafficError::Bind { addr, source })?;
    Ok((socket, addr))
}

/// Whether a socket call failed only for now (nothing ready, a timeout, a
/// signal), so the caller just tries again.
pub(crate) fn is_transient(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
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
