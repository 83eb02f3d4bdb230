//! The shipped scenarios load, and say what they claim to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use circus_lab::scenario::{Action, Scenario, SystemKind};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
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
    assert_eq!(scenario.systems, SystemKind::ALL.to_vec());
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
