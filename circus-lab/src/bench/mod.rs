//! `circus-lab bench`: the regression suite and its baseline.
//!
//! - [`baseline`]: `reports/baseline.json`, tolerances and the comparison.
//! - [`suite`]: which scenarios run how, and the table and Markdown report.

pub mod baseline;
pub mod suite;
