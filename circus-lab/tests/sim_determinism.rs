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
    report.outcome.summary.to_json()
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
    assert!(scenario.systems.contains(&SystemKind::Mptcp.into()));
    let report = sim::run(&scenario, "test-commit").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report.outcome.summary.backend,
        circus_lab::report::SIM_BACKEND
    );
    assert_eq!(report.skipped, vec![SystemKind::Mptcp]);
    let names: Vec<&str> = report
        .outcome
        .summary
        .systems
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["circus", "multiwan", "single-link"]);
    for (name, figures) in &report.outcome.summary.systems {
        for goodput in [figures.tcp_goodput_mbps, figures.tcp_goodput_down_mbps] {
            assert!(
                goodput.is_some_and(|mbps| mbps > 1.0),
                "{name}: TCP goodput {goodput:?} Mbit/s"
            );
        }
        assert_eq!(figures.up.sent, 14_000, "{name}");
        assert_eq!(figures.up.events.len(), 1, "{name}");
        let down = figures
            .down
            .as_ref()
            .expect("probes run both ways by default");
        assert_eq!(down.sent, 14_000, "{name}: the download stream");
        assert!(
            down.delivery_ratio > 0.5,
            "{name}: the download stream arrives"
        );
    }
    assert_eq!(report.outcome.series.len(), 3);
    assert_eq!(report.outcome.events.len(), 1);
}
