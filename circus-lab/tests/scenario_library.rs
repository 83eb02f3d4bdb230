//! The shipped scenarios load, and say what they claim to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use circus_lab::emulator::model::Direction;
use circus_lab::emulator::trace::{CellularProfile, Trace, synthesize_cellular};
use circus_lab::scenario::{Action, Scenario, SystemKind};
use circus_lab::systems::registry::BUILT_INS;

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// Every built-in system, in the registry's order.
fn built_ins() -> Vec<SystemKind> {
    BUILT_INS.iter().map(|entry| entry.kind).collect()
}

fn load(name: &str) -> Scenario {
    let path = scenarios_dir().join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn flappy_has_a_flapping_link_and_one_carrier_loss() {
    let scenario = load("flappy");
    assert_eq!(scenario.name, "flappy");
    assert_eq!(scenario.duration, Duration::from_secs(60));
    assert_eq!(scenario.systems, built_ins());
    assert!((2..=3).contains(&scenario.links.len()));
    assert_eq!(scenario.traffic.probe.rate_pps, 1000);
    assert!((2..=4).contains(&scenario.traffic.tcp.flows));

    let blackholes: Vec<_> = scenario
        .events
        .iter()
        .filter(|e| e.action == Action::Blackhole)
        .collect();
    assert!(blackholes.len() >= 3);
    assert!(blackholes.iter().all(|e| e.link == blackholes[0].link));
    for pair in blackholes.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!((10..=20).contains(&gap.as_secs()), "gap {gap:?}");
    }
    for event in &blackholes {
        let lasting = event.duration.unwrap();
        assert!((2..=5).contains(&lasting.as_secs()), "{lasting:?}");
    }
    let downs: Vec<_> = scenario
        .events
        .iter()
        .filter(|e| e.action == Action::Down)
        .collect();
    assert_eq!(downs.len(), 1);
    assert_ne!(downs[0].link, blackholes[0].link);
}

/// The shipped synthetic cellular traces: file, profile, seed. Both
/// directions of a link share a seed, so a fade (lost coverage) takes both
/// at once; the seeds are picked for means near the calibrated ones and a
/// fade inside a 40 s run, at different times for the two links.
fn shipped_traces() -> [(&'static str, CellularProfile, u64); 4] {
    let length = Duration::from_secs(45);
    let down = CellularProfile::lte_downlink(length);
    let up = CellularProfile::lte_uplink(length);
    [
        ("cellular-down.trace", down, 9),
        ("cellular-up.trace", up, 9),
        ("cellular-b-down.trace", down, 10),
        ("cellular-b-up.trace", up, 10),
    ]
}

/// The trace files in scenarios/traces/ are exactly what the generator
/// makes. To regenerate them: `CIRCUS_WRITE_TRACES=1 cargo test -p circus-lab
/// --test scenario_library shipped_traces`.
#[test]
fn shipped_traces_are_the_generator_output() {
    let folder = scenarios_dir().join("traces");
    for (file, profile, seed) in shipped_traces() {
        let generated = synthesize_cellular(&profile, seed);
        let path = folder.join(file);
        if std::env::var_os("CIRCUS_WRITE_TRACES").is_some() {
            std::fs::write(&path, generated.to_mahimahi()).unwrap();
        }
        let shipped = Trace::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            shipped, generated,
            "{file} differs from the generator's output"
        );
    }
}

#[test]
fn every_shipped_scenario_loads_and_says_what_it_models() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(scenarios_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("# "),
                "{} should start with a comment on what it models",
                path.display()
            );
            let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                path.file_stem().unwrap().to_str().unwrap(),
                scenario.name,
                "file name and scenario name differ"
            );
            names.push(scenario.name);
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "all-down",
            "asymmetric-latency",
            "bloated-pair",
            "bufferbloat",
            "cellular-pair",
            "cellular-trace",
            "ci-blackhole",
            "ci-uneven",
            "download",
            "equal-pair",
            "flap-fast",
            "flappy",
            "hetero-delay",
            "hetero-rate",
            "lossy-pair",
            "roaming"
        ]
    );
}

#[test]
fn lossy_pair_has_2_and_8_percent_and_burst_loss() {
    let scenario = load("lossy-pair");
    let losses: Vec<f64> = scenario.links.iter().map(|l| l.params.loss).collect();
    assert_eq!(losses, vec![0.02, 0.08]);
    assert_eq!(
        scenario
            .links
            .iter()
            .filter(|l| l.params.burst_loss.is_some())
            .count(),
        1
    );
}

#[test]
fn asymmetric_latency_pairs_20_and_600_ms_round_trips() {
    let scenario = load("asymmetric-latency");
    let round_trips: Vec<Duration> = scenario.links.iter().map(|l| l.params.delay * 2).collect();
    assert_eq!(
        round_trips,
        vec![Duration::from_millis(20), Duration::from_millis(600)]
    );
}

/// How long the upload bottleneck queue of link `index` takes to drain at
/// the link's rate, in seconds (infinite without a rate).
fn queue_seconds(scenario: &Scenario, index: usize) -> f64 {
    let model = scenario.link_model(index, Direction::Up).unwrap();
    let rate = model.params().rate_bps.unwrap_or(u64::MAX);
    model.queue_bytes() as f64 * 8.0 / rate as f64
}

#[test]
fn bufferbloat_queue_holds_seconds() {
    let scenario = load("bufferbloat");
    let bloated = (0..scenario.links.len()).any(|i| queue_seconds(&scenario, i) >= 1.0);
    assert!(bloated, "no link queues a second or more");
    assert!(
        scenario.traffic.tcp.flows > 0,
        "the queue only fills under load"
    );
}

/// A link as (rate in Mbit/s, one-way delay in ms, loss in %).
type Shape = (u64, u64, u64);

/// Each link's shape, in file order.
fn link_shapes(scenario: &Scenario) -> Vec<Shape> {
    scenario
        .links
        .iter()
        .map(|l| {
            let rate = l.params.rate_bps.unwrap_or_default() / 1_000_000;
            let loss = (l.params.loss * 100.0).round() as u64;
            (rate, l.params.delay.as_millis() as u64, loss)
        })
        .collect()
}

/// The heterogeneous scenarios without events: their links, their TCP flows,
/// every system, and short enough for a real run.
#[test]
fn steady_heterogeneous_scenarios_have_their_links_and_tcp() {
    let cases: [(&str, &[Shape], u32); 4] = [
        ("hetero-delay", &[(20, 10, 0), (20, 300, 0)], 2),
        ("hetero-rate", &[(50, 5, 0), (4, 60, 3), (1, 250, 10)], 4),
        ("bloated-pair", &[(5, 8, 0), (20, 20, 0)], 4),
        ("equal-pair", &[(20, 25, 0), (20, 35, 0)], 2),
    ];
    for (name, shapes, flows) in cases {
        let scenario = load(name);
        assert_eq!(link_shapes(&scenario), shapes, "{name}");
        assert_eq!(scenario.traffic.tcp.flows, flows, "{name}");
        assert!(scenario.events.is_empty(), "{name}");
        assert_eq!(scenario.systems, built_ins(), "{name}");
        assert!((30..=40).contains(&scenario.duration.as_secs()), "{name}");
    }
}

#[test]
fn bloated_pair_queues_2s_on_the_slow_link_only() {
    let scenario = load("bloated-pair");
    assert!((queue_seconds(&scenario, 0) - 2.0).abs() < 0.01);
    assert!(queue_seconds(&scenario, 1) <= 0.1);
}

#[test]
fn all_down_takes_every_link_down_for_5s_at_once() {
    let scenario = load("all-down");
    assert_eq!(scenario.events.len(), scenario.links.len());
    let first = &scenario.events[0];
    for (index, event) in scenario.events.iter().enumerate() {
        assert_eq!(event.action, Action::Down);
        assert_eq!(event.at, first.at);
        assert_eq!(event.duration, Some(Duration::from_secs(5)));
        assert_eq!(event.link_index, index);
    }
}

#[test]
fn flap_fast_flaps_every_500ms() {
    let scenario = load("flap-fast");
    let flaps: Vec<Duration> = scenario
        .events
        .iter()
        .filter(|e| e.action == Action::Blackhole || e.action == Action::Down)
        .map(|e| e.at)
        .collect();
    assert!(flaps.len() >= 20, "only {} flaps", flaps.len());
    assert!(
        flaps
            .windows(2)
            .all(|w| w[1] - w[0] == Duration::from_millis(500))
    );
}

/// The (up, down) trace files of the traced links, in file order.
fn trace_files(scenario: &Scenario) -> Vec<(PathBuf, PathBuf)> {
    scenario
        .links
        .iter()
        .filter_map(|l| l.params.trace.as_ref())
        .map(|t| (t.up.path.clone(), t.down.path.clone()))
        .collect()
}

/// The shipped trace pair `cellular{suffix}-{up,down}.trace`.
fn shipped_pair(suffix: &str) -> (PathBuf, PathBuf) {
    let folder = scenarios_dir().join("traces");
    (
        folder.join(format!("cellular{suffix}-up.trace")),
        folder.join(format!("cellular{suffix}-down.trace")),
    )
}

#[test]
fn cellular_trace_uses_the_shipped_traces() {
    let scenario = load("cellular-trace");
    assert_eq!(trace_files(&scenario), vec![shipped_pair("")]);
}

#[test]
fn cellular_pair_has_two_traced_links_and_wifi_blackholing_2s_every_8s() {
    let scenario = load("cellular-pair");
    assert_eq!(
        trace_files(&scenario),
        vec![shipped_pair(""), shipped_pair("-b")]
    );
    let starts: Vec<Duration> = scenario.events.iter().map(|e| e.at).collect();
    assert!(starts.len() >= 4, "only {} blackholes", starts.len());
    assert!(
        starts
            .windows(2)
            .all(|w| w[1] - w[0] == Duration::from_secs(8))
    );
    for event in &scenario.events {
        assert_eq!(event.action, Action::Blackhole);
        assert_eq!(event.duration, Some(Duration::from_secs(2)));
        let link = &scenario.links[event.link_index];
        assert!(link.params.trace.is_none(), "{} is traced", link.name);
    }
    assert_eq!(scenario.traffic.tcp.flows, 3);
}

#[test]
fn roaming_changes_a_link_address() {
    let scenario = load("roaming");
    assert!(
        scenario
            .events
            .iter()
            .any(|e| e.action == Action::ChangeAddress)
    );
}

#[test]
fn readme_example_is_valid() {
    let readme = std::fs::read_to_string(scenarios_dir().join("README.md")).unwrap();
    let example = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README.md has a toml example");
    let scenario = Scenario::from_toml(example, &scenarios_dir().join("README.md"))
        .unwrap_or_else(|e| panic!("{e}"));
    let starts: Vec<u64> = scenario.events.iter().map(|e| e.at.as_secs()).collect();
    assert_eq!(starts, vec![10, 20, 25, 40, 55]);
    let commands: Vec<&str> = scenario.commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(commands, ["http", "fetch"]);
}

#[test]
fn download_serves_50_mb_and_checks_it_while_links_flap() {
    let scenario = load("download");
    let [server, client] = scenario.commands.as_slice() else {
        panic!("a server and a download: {:?}", scenario.commands);
    };
    assert!(server.is_service() && server.role == circus_lab::scenario::CommandRole::Server);
    assert!(
        server
            .run
            .as_str()
            .contains("head -c 50000000 /dev/urandom")
    );
    assert!(server.run.as_str().contains("sha256sum"));
    assert!(!client.is_service() && client.role == circus_lab::scenario::CommandRole::Client);
    assert!(client.run.as_str().contains("curl") && client.run.as_str().contains("file.sha256"));
    // One 20 Mbit/s link alone carries 50 MB in 20 s: the run leaves room.
    assert!(
        scenario
            .links
            .iter()
            .all(|l| l.params.rate_bps == Some(20_000_000))
    );
    assert!(scenario.duration >= std::time::Duration::from_secs(40));
    assert!(scenario.events.len() >= 3);
}
