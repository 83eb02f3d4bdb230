//! `circus-lab bench`: the regression suite and its baseline.
//!
//! - [`baseline`]: `reports/baseline.json`, tolerances and the comparison.

pub mod baseline;
