//! circus-lab: the circus laboratory.
//!
//! Builds real topologies in network namespaces, emulates bad links, replays
//! scenario files against circus and the baselines, and reports the results.
//!
//! Map of the crate, one folder per concern:
//! - [`scenario`]: the scenario schema, parsing and validation.
//! - [`topology`]: namespaces, veths, addresses, routes, cleanup.
//! - [`emulator`]: the link model (pure, seeded) and the frame forwarder.
//! - [`traffic`]: probe stream and TCP bulk flows.
//! - [`systems`]: one adapter per system under test.
//! - [`metrics`]: from receiver logs to the figures of `summary.json`.
//! - [`report`]: `summary.json`, `report.md` and plots.
//! - [`sim`]: the same scenarios on virtual time, circus-core engines over link models.

pub mod emulator;
pub mod metrics;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod systems;
pub mod topology;
pub mod traffic;
