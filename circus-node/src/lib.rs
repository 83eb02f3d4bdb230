//! circus-node: the client and gateway daemon around `circus-core`.
//!
//! Map of the crate:
//! - [`config`]: TOML files to validated settings, with precise errors.
//! - [`keys`]: key types and `keygen`.
pub mod config;
pub mod hotplug;
pub mod keys;
pub mod link_set;
pub mod link_socket;
pub mod prometheus;
pub mod status;
pub mod tun_device;
