//! How fast `circus-lab sim` runs a scenario: the goal is a minute of
//! scenario at 1000 probes/s in well under a second (release build).
//!
//! `cargo bench -p circus-lab --bench sim` runs flappy.toml (60 s, three
//! links, five events, 1000 probes/s) through every simulated system and
//! the metrics, and circus alone.

use std::path::Path;

use circus_lab::scenario::{Scenario, SystemKind};
use circus_lab::sim;
use criterion::{Criterion, criterion_group, criterion_main};

fn flappy() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/flappy.toml");
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn simulate(c: &mut Criterion) {
    let scenario = flappy();
    let mut group = c.benchmark_group("sim-flappy-60s");
    // Each iteration takes a good fraction of a second.
    group.sample_size(10);
    group.bench_function("all-systems-and-metrics", |b| {
        b.iter(|| sim::run(&scenario, "bench").unwrap_or_else(|e| panic!("{e}")))
    });
    group.bench_function("circus", |b| {
        b.iter(|| sim::run_system(&scenario, SystemKind::Circus).unwrap_or_else(|e| panic!("{e}")))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Criterion's own plots need font features this workspace's plotters
    // build leaves out; the figures are what matter.
    config = Criterion::default().without_plots();
    targets = simulate
}
criterion_main!(benches);
