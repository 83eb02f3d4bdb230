//! circus-node: the client and gateway daemon around `circus-core`.
//!
//! The binary (`circus-node keygen | client | gateway | status`) is a thin
//! command line over this library; the lab calls [`run_client`] and
//! [`run_gateway`] through [`embed`], on threads inside its network namespaces.
//!
//! Map of the crate:
//! - [`config`]: TOML files to validated settings, with precise errors.
//! - [`keys`]: key types, `keygen`, private key files.
//! - [`daemon`]: the two daemons as library calls: set-up and teardown.
//! - [`embed`]: a daemon on a caller's thread, waited for via its status.
//! - [`driver`]: the tokio event loops around the sans-IO engine.
//! - [`tun_device`]: the TUN device and its MTU.
//! - [`tun_mtu`]: the client's TUN MTU lowered at run time to fit its links.
//! - [`link_socket`]: UDP sockets bound to an interface (`SO_BINDTODEVICE`).
//! - [`link_set`]: the client's links following interface hot-plug.
//! - [`hotplug`]: interface table and netlink change notifications.
//! - [`resolve`]: gateway host names, looked up again when the gateway is lost.
//! - [`routing`]: the client's routes into its TUN device (policy routing).
//! - [`dns`]: the TUN link's DNS servers through systemd-resolved.
//! - [`nat`]: the gateway's forwarding and masquerading (`nat = true`).
//! - [`status`]: the status report and its unix socket.
//! - [`logs`]: stderr logs filtered by `RUST_LOG`.
//! - [`prometheus`]: the report as a Prometheus text endpoint.
pub mod config;
pub mod daemon;
pub mod dns;
pub mod driver;
pub mod embed;
pub mod hotplug;
pub mod keys;
pub mod link_set;
pub mod link_socket;
pub mod logs;
pub mod nat;
pub mod prometheus;
mod report;
pub mod resolve;
pub mod routing;
pub mod status;
pub mod tun_device;
pub mod tun_mtu;
pub mod vnet;

pub use daemon::{NodeError, run_client, run_gateway};
