//! The built-in systems, one entry each. A system's name in scenario files
//! and reports, its line in `--help` and in "expected one of ..." errors, its
//! adapter for real runs and how the simulator runs it all come from
//! [`BUILT_INS`], so adding a built-in system is its adapter module plus one
//! variant of [`SystemKind`] and one entry here.

use super::{SystemUnderTest, circus, mptcp, multiwan, single_link};
use crate::metrics::SystemLogs;
use crate::scenario::{Scenario, SystemKind};
use crate::sim::{self, SimError};

/// How the simulator runs a system over a whole scenario.
pub type Simulate = fn(&Scenario) -> Result<SystemLogs, SimError>;

/// One built-in system.
pub struct BuiltIn {
    pub kind: SystemKind,
    /// The name in scenario files, `--systems` and reports.
    pub name: &'static str,
    /// One line for `--help` and error messages.
    pub about: &'static str,
    /// The adapter for a real run; `best_link` is the link the single-link
    /// runs found best.
    pub adapter: fn(best_link: usize) -> Box<dyn SystemUnderTest>,
    /// Whether a real run must first measure the best link for it.
    pub needs_best_link: bool,
    /// How `circus-lab sim` runs it; `None`: it needs a real kernel.
    pub simulate: Option<Simulate>,
}

/// Every built-in system, in the order `--help` lists them.
pub static BUILT_INS: [BuiltIn; 4] = [
    BuiltIn {
        kind: SystemKind::Circus,
        name: "circus",
        about: "circus client and gateway, one tunnel link per emulated link",
        adapter: |_| Box::new(circus::Circus::default()),
        needs_best_link: false,
        simulate: Some(sim::simulate_circus),
    },
    BuiltIn {
        kind: SystemKind::SingleLink,
        name: "single-link",
        about: "everything over the best link alone, no tunnel, no failover",
        adapter: |link| Box::new(single_link::SingleLink { link }),
        needs_best_link: true,
        simulate: Some(sim::simulate_single_link),
    },
    BuiltIn {
        kind: SystemKind::Multiwan,
        name: "multiwan",
        about: "each flow pinned to one link by hash (pfSense gateway groups)",
        adapter: |_| Box::new(multiwan::Multiwan),
        needs_best_link: false,
        simulate: Some(sim::simulate_multiwan),
    },
    BuiltIn {
        kind: SystemKind::Mptcp,
        name: "mptcp",
        about: "kernel MPTCP, one subflow per link, for the TCP traffic",
        adapter: |primary| Box::new(mptcp::Mptcp { primary }),
        needs_best_link: true,
        simulate: None,
    },
];

/// The entry of `kind`.
pub fn built_in(kind: SystemKind) -> &'static BuiltIn {
    // Every kind has an entry (a unit test checks it); the first is a
    // harmless fallback rather than a panic.
    BUILT_INS
        .iter()
        .find(|entry| entry.kind == kind)
        .unwrap_or(&BUILT_INS[0])
}

/// The built-in called `name`.
pub fn by_name(name: &str) -> Option<&'static BuiltIn> {
    BUILT_INS.iter().find(|entry| entry.name == name)
}

/// "circus, single-link, multiwan, mptcp": for "expected one of" messages.
pub fn names() -> String {
    let names: Vec<&str> = BUILT_INS.iter().map(|entry| entry.name).collect();
    names.join(", ")
}

/// One line per built-in, name and description, for `--help`.
pub fn help() -> String {
    let lines: Vec<String> = BUILT_INS
        .iter()
        .map(|entry| format!("  {:<12} {}", entry.name, entry.about))
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_kinds_are_unique() {
        for (index, entry) in BUILT_INS.iter().enumerate() {
            for other in &BUILT_INS[..index] {
                assert_ne!(entry.name, other.name);
                assert_ne!(entry.kind, other.kind);
            }
        }
    }

    #[test]
    fn every_built_in_parses_from_its_name_and_back() {
        for entry in &BUILT_INS {
            let kind: SystemKind = entry.name.parse().unwrap();
            assert_eq!(kind, entry.kind);
            assert_eq!(kind.as_str(), entry.name);
            assert!(std::ptr::eq(built_in(kind), entry));
        }
    }

    #[test]
    fn an_unknown_name_lists_every_built_in() {
        let message = "pfsense".parse::<SystemKind>().unwrap_err().to_string();
        for entry in &BUILT_INS {
            assert!(message.contains(entry.name), "{message}");
        }
        assert!(help().lines().count() == BUILT_INS.len());
    }

    #[test]
    fn only_kernel_systems_escape_the_simulator() {
        let skipped: Vec<&str> = BUILT_INS
            .iter()
            .filter(|entry| entry.simulate.is_none())
            .map(|entry| entry.name)
            .collect();
        assert_eq!(skipped, ["mptcp"]);
    }
}
