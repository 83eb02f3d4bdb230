//! Link emulation.
//!
//! - [`model`]: the pure, seeded link model that decides each frame's fate;
//!   shared by the real forwarder and the virtual-time simulator.
//! - [`trace`]: Mahimahi delivery traces and a synthetic cellular generator.

pub mod model;
pub mod trace;
