//! Link emulation.
//!
//! - [`forwarder`]: the userspace emulator that moves real frames between
//!   the veth ends of each link, timed by one model per direction.
//! - [`model`]: the pure, seeded link model that decides each frame's fate;
//!   shared by the real forwarder and the virtual-time simulator.
//! - [`netem`]: the kernel netem backend, where the kernel has it, and the
//!   choice between it and the userspace forwarder.
//! - [`trace`]: Mahimahi delivery traces and a synthetic cellular generator.

pub mod forwarder;
pub mod model;
pub mod netem;
pub mod trace;
