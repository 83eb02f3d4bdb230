//! circus-lab: the circus laboratory.
//!
//! Builds real topologies in network namespaces, emulates bad links, replays
//! scenario files against circus and the baselines, and reports the results.
//!
//! Map of the crate, one folder per concern:
//! - [`scenario`]: the scenario schema, parsing and validation.
//! - [`topology`]: namespaces, veths, addresses, routes, cleanup.
//! - [`bench`]: the regression suite and `reports/baseline.json`.
//! - [`emulator`]: the link model (pure, seeded) and the frame forwarder.
//! - [`traffic`]: probe stream and TCP bulk flows.
//! - [`systems`]: one adapter per system under test: the built-in registry, and external systems from TOML files.
//! - [`metrics`]: from receiver logs to the figures of `summary.json`.
//! - [`report`]: `summary.json`, `report.md` and plots.
//! - [`runner`]: `circus-lab run`: every system of a scenario in real namespaces.
//! - [`shell`]: `circus-lab shell`: the user's own programs on the scenario's links.
//! - [`soak`]: `circus-lab soak`: the daemons as processes for a long time, watched for leaks.
//! - [`sim`]: the same scenarios on virtual time, circus-core engines over link models.

pub mod bench;
pub mod emulator;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod shell;
pub mod sim;
pub mod soak;
pub mod systems;
pub mod topology;
pub mod traffic;
