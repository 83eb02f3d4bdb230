//! circus-core: the circus bonding protocol as a sans-IO state machine.
//!
//! This crate opens no sockets, reads no clock and runs no async runtime. Its
//! users feed it packets and the current time and drain what it wants sent,
//! delivered and when it next wants to run (see `engine`). Because time and IO
//! are injected, the same code runs in `circus-node`, in the lab's
//! virtual-time simulator and in deterministic tests.
//!
//! Map of the crate, one module per concern:
//! - [`wire`]: packet formats; parsing never panics on any input.
//! - [`crypto`]: Noise IKpsk2 handshake, per-packet AEAD, anti-replay window.
//! - [`paths`]: per-link RTT, loss and rate estimation and the link state machine.
//! - [`scheduler`]: which link(s) carry each packet.
//! - [`reorder`]: duplicate removal and bounded in-order delivery.
//! - [`engine`]: the client and gateway state machines tying these together.
//! - [`mss`]: TCP MSS clamping of handshakes to the tunnel MTU.

pub mod crypto;
pub mod engine;
pub mod mss;
pub mod paths;
pub mod reorder;
pub mod scheduler;
pub mod wire;

/// Identifies one of the client's links (wifi, LTE, ...) end to end.
///
/// The id is chosen by the client and carried in every packet, so both peers
/// name a path the same way even though the gateway sees only addresses,
/// which change under NAT rebinding and DHCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u8);

impl std::fmt::Display for LinkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "link{}", self.0)
    }
}
