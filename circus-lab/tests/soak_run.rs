//! `circus-lab soak` for a few seconds in real namespaces: both daemons run
//! as processes through passes of a flapping scenario, are sampled, nothing
//! is judged to grow, every pass's probes arrive, and the record is written.

use std::path::Path;
use std::time::Duration;

use circus_lab::scenario::Scenario;
use circus_lab::soak::{self, SoakConfig};
use circus_lab::topology::netns_available_for_test;
use indicatif::ProgressBar;

/// Two links; one blackholes, the other loses carrier, every 4 s pass.
const SCENARIO: &str = r#"
name = "soak-test"
duration = "4s"
seed = 5
systems = ["circus"]

[[link]]
name = "a"
delay = "5ms"
rate = "20mbit"

[[link]]
name = "b"
delay = "10ms"
rate = "10mbit"

[[event]]
at = "1s"
link = "a"
action = "blackhole"
for = "1s"

[[event]]
at = "2.5s"
link = "b"
action = "down"
for = "1s"

[traffic]
probe = { rate = "200pps", size = 200 }
"#;

#[test]
fn a_short_soak_of_the_real_daemons_stays_flat() {
    let test = "a_short_soak_of_the_real_daemons_stays_flat";
    if !netns_available_for_test(test) {
        return;
    }
    let node = match soak::default_node() {
        Ok(node) => node,
        Err(reason) if std::env::var("CIRCUS_REQUIRE_NETNS").is_ok_and(|v| v == "1") => {
            panic!("{test}: {reason}")
        }
        Err(reason) => return eprintln!("skipping {test}: {reason}"),
    };
    let scenario = Scenario::from_toml(SCENARIO, Path::new("soak_run.rs")).unwrap();
    let out = std::env::temp_dir().join(format!("circus-soak-test-{}", std::process::id()));
    let config = SoakConfig {
        duration: Duration::from_secs(12),
        every: Duration::from_millis(500),
        node,
        out: out.clone(),
    };
    let report = soak::run(&scenario, &config, &ProgressBar::hidden())
        .unwrap_or_else(|e| panic!("soak failed: {e}"));
    let written = (
        std::fs::read_to_string(out.join("samples.csv")),
        std::fs::read_to_string(out.join("soak.json")),
    );
    let _ = std::fs::remove_dir_all(&out);

    assert!(report.passes.len() >= 2, "{:?}", report.passes);
    for pass in &report.passes {
        // Circus carries every probe through a blackhole of one link and
        // the loss of the other's carrier; a few may be lost at a switch.
        assert!(
            pass.probes_received * 100 >= pass.probes_sent * 95 && pass.probes_sent > 0,
            "{pass:?}"
        );
    }
    assert!(
        report.samples.len() >= 20,
        "{} samples",
        report.samples.len()
    );
    for row in &report.samples {
        assert!(row.client.rss_kib > 0 && row.gateway.rss_kib > 0, "{row:?}");
        assert!(row.client.fds > 0 && row.gateway.fds > 0, "{row:?}");
        assert!(row.client.handshakes >= 1, "{row:?}");
    }
    assert_eq!(report.figures.len(), 6);
    assert!(report.figures.iter().all(|f| f.growth.is_some()));
    assert!(report.grown().is_empty(), "{}", report.render());
    let (csv, json) = (written.0.unwrap(), written.1.unwrap());
    assert_eq!(csv.lines().count(), report.samples.len() + 1);
    assert!(csv.starts_with("t_s,client_rss_kib,client_fds"));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["figures"].as_array().map(Vec::len), Some(6));
}
