//! The simulator is deterministic: the same scenario and seed give the same
//! `summary.json`, byte for byte, while another seed changes it.

use std::path::Path;
use std::time::Duration;

use circus_lab::scenario::{Scenario, SystemKind};
use circus_lab::sim;

/// flappy, cut to its first wifi0 blackhole (8 s to 11 s) so the test stays
/// quick in debug builds.
fn short_flappy() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/flappy.toml");
    let mut scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    scenario.duration = Duration::from_secs(14);
    scenario.events.retain(|event| event.at < scenario.duration);
    scenario
}

fn summary_json(scenario: &Scenario) -> String {
    let report = sim::run(scenario, "test-commit").unwrap_or_else(|e| panic!("{e}"));
    report.summary.to_json()
}

#[test]
fn same_seed_gives_byte_identical_summary_json() {
    let scenario = short_flappy();
    let first = summary_json(&scenario);
    let second = summary_json(&scenario);
    assert_eq!(first, second);

    let mut reseeded = scenario.clone();
    reseeded.seed += 1;
    assert_ne!(
        summary_json(&reseeded),
        first,
        "the seed must drive the link models"
    );
}

#[test]
fn summary_names_the_sim_backend_and_leaves_out_what_it_cannot_simulate() {
    let scenario = short_flappy();
    assert!(scenario.systems.contains(&SystemKind::Mptcp));
    let report = sim::run(&scenario, "test-commit").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.summary.backend, sim::BACKEND);
    assert_eq!(report.skipped, vec![SystemKind::Mptcp]);
    let names: Vec<&str> = report.summary.systems.keys().map(String::as_str).collect();
    assert_eq!(names, ["circus", "multiwan", "single-link"]);
    for (name, figures) in &report.summary.systems {
        let goodput = figures.tcp_goodput_mbps.unwrap_or(0.0);
        assert!(goodput > 1.0, "{name}: TCP goodput {goodput} Mbit/s");
        assert_eq!(figures.sent, 14_000, "{name}");
        assert_eq!(figures.events.len(), 1, "{name}");
    }
    assert_eq!(report.series.len(), 3);
    assert_eq!(report.events.len(), 1);
}
