//! The UDP goodput measurement of `bench --throughput`, in real namespaces
//! on two slow links: the figure is what the path carries, not what the
//! sender offers, and circus over both links carries more than one link.

use std::path::Path;
use std::time::Duration;

use circus_lab::bench::throughput::udp_load;
use circus_lab::runner::udp_goodput;
use circus_lab::scenario::{Scenario, SystemKind};
use circus_lab::topology::netns_available_for_test;
use indicatif::ProgressBar;

const SCENARIO: &str = r#"
name = "udp-goodput-test"
duration = "2s"
seed = 5
systems = ["single-link", "circus"]

[[link]]
name = "a"
delay = "5ms"
rate = "5mbit"

[[link]]
name = "b"
delay = "5ms"
rate = "5mbit"
"#;

#[test]
fn udp_goodput_is_what_the_path_carries() {
    if !netns_available_for_test("udp_goodput_is_what_the_path_carries") {
        return;
    }
    let scenario = Scenario::from_toml(SCENARIO, Path::new("udp_goodput.rs")).unwrap();
    let mut load = udp_load(10_000_000);
    load.duration = Duration::from_secs(2);
    let ramp = Duration::from_millis(500);
    let run = |kind| {
        udp_goodput(&scenario, kind, &load, ramp, &ProgressBar::hidden())
            .unwrap_or_else(|e| panic!("{kind}: {e}"))
    };

    let single = run(SystemKind::SingleLink);
    assert_eq!(single.sent.refused, 0, "{single:?}");
    assert_eq!(single.received.window, Duration::from_millis(1500));
    assert_eq!(
        single.received.bytes,
        single.received.datagrams * load.size as u64,
        "{single:?}"
    );
    // 10 Mbit/s offered into one 5 Mbit/s link (which also carries the
    // headers): the goodput is the link's, a little under 5 Mbit/s.
    let one_link = single.received.goodput_mbps();
    assert!(
        (3.5..=5.0).contains(&one_link),
        "single link: {one_link} Mbit/s"
    );

    let circus = run(SystemKind::Circus);
    let bonded = circus.received.goodput_mbps();
    assert!(
        bonded > one_link * 1.3,
        "circus over two links: {bonded} Mbit/s, one link {one_link}"
    );
}
