//! One small adapter per system under test.

pub mod mptcp_pm;
