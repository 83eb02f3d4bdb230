//! `circus-lab bench`: the regression suite and its baseline.
//!
//! - [`baseline`]: `reports/baseline.json`, tolerances and the comparison.
//! - [`suite`]: which scenarios run how, and the table and Markdown report.
//! - [`throughput`]: tunnel cost and bonding gain in TCP goodput.

pub mod baseline;
pub mod suite;
pub mod throughput;
