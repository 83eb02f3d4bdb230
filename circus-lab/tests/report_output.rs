//! summary.json shape, report.md and plots, from a synthetic comparison.

#[path = "metrics_support/synthetic.rs"]
mod synthetic;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use circus_lab::metrics::{
    HostPauses, LinkCounters, MetricsConfig, RunLogs, system_metrics, system_series,
};
use circus_lab::report::{DirectionSeries, ReportFiles, Summary, summary_table, write_report};
use circus_lab::traffic::MonoNanos;
use circus_lab::traffic::tcp::TcpLog;
use serde_json::Value;
use synthetic::{ORIGIN, comparison};

struct Dataset {
    summary: Summary,
    series: BTreeMap<String, DirectionSeries>,
    events: Vec<circus_lab::metrics::TimelineEvent>,
}

fn dataset() -> Dataset {
    let comparison = comparison();
    let config = MetricsConfig::default();
    let tcp = TcpLog {
        origin: ORIGIN,
        bin: Duration::from_secs(1),
        duration: Duration::from_secs(60),
        bytes_per_bin: vec![1_250_000; 61],
        flows: Vec::new(),
    };
    let mut systems = BTreeMap::new();
    let mut series = BTreeMap::new();
    for system in &comparison.systems {
        let links: Vec<LinkCounters> = system
            .link_bytes
            .iter()
            .map(|&(link, bytes)| LinkCounters {
                link: link.into(),
                bytes,
                packets: bytes / 1000,
            })
            .collect();
        let run = RunLogs {
            origin: ORIGIN,
            probes: &system.probes,
            tcp: Some(&tcp),
            events: &comparison.events,
            links: &links,
            host_pauses: None,
            flow_links: (!system.flow_links.is_empty()).then_some(system.flow_links.as_slice()),
        };
        // The same stream stands in for the download, so both directions'
        // figures are written and drawn.
        systems.insert(
            system.name.to_string(),
            system_metrics(&run, Some(&run), &config),
        );
        let up = system_series(&run, &config);
        let down = Some(up.clone());
        series.insert(system.name.to_string(), DirectionSeries { up, down });
    }
    Dataset {
        summary: Summary {
            scenario: "flappy".into(),
            duration_s: 60.0,
            backend: "userspace".into(),
            seed: 7,
            scenario_hash: "3f2a9c".into(),
            commit: "abc1234".into(),
            best_link_tcp_mbps: Some(12.5),
            best_link_tcp_down_mbps: Some(20.0),
            best_link: Some("wifi0".into()),
            systems,
            commands_not_run: Vec::new(),
        },
        series,
        events: comparison.events,
    }
}

/// The report of the synthetic dataset, written once for all tests (drawing
/// is slow in debug builds) to target/tmp/clm-report, where it can be looked at.
fn written() -> &'static (Dataset, ReportFiles) {
    static WRITTEN: OnceLock<(Dataset, ReportFiles)> = OnceLock::new();
    WRITTEN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clm-report");
        let _ = std::fs::remove_dir_all(&dir);
        let data = dataset();
        let files = write_report(&dir, &data.summary, &data.series, &data.events).unwrap();
        (data, files)
    })
}

fn number(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {value}"))
}

#[test]
fn summary_json_has_every_documented_key() {
    let (_, files) = written();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(&files.summary_json).unwrap()).unwrap();

    assert_eq!(json["scenario"], "flappy");
    assert_eq!(number(&json, "duration_s"), 60.0);
    assert_eq!(json["backend"], "userspace");
    assert_eq!(json["seed"], 7);
    assert_eq!(json["scenario_hash"], "3f2a9c");
    assert_eq!(json["commit"], "abc1234");
    let systems = json["systems"].as_object().unwrap();
    assert_eq!(
        systems.keys().collect::<Vec<_>>(),
        ["circus", "multiwan", "single-link"]
    );
    for (name, system) in systems {
        let ratio = number(system, "delivery_ratio");
        assert!((0.0..=1.0).contains(&ratio), "{name}");
        for key in ["lost", "duplicates"] {
            assert!(system[key].is_u64(), "{name}.{key}");
        }
        for key in [
            "max_outage_ms",
            "max_recovery_ms",
            "reordered_ratio",
            "tcp_goodput_mbps",
        ] {
            number(system, key);
        }
        for key in ["p50", "p90", "p99"] {
            assert!(
                number(&system["latency_ms"], key) > 20.0,
                "{name}.latency_ms.{key}"
            );
        }
        let events = system["events"].as_array().unwrap();
        assert_eq!(events.len(), 4, "{name}");
        for event in events {
            number(event, "at_s");
            number(event, "outage_ms");
            number(event, "recovery_ms");
            assert!(event["lost"].is_u64());
            assert!(event["link"].is_string() && event["action"].is_string());
        }
        assert_eq!(events[0]["at_s"], 10.0);
        assert_eq!(events[0]["link"], "wifi0");
        assert_eq!(events[0]["action"], "blackhole");
        let share = system["link_share"].as_object().unwrap();
        assert_eq!(share.keys().collect::<Vec<_>>(), ["lte0", "wifi0"]);
    }
    assert_eq!(number(&systems["circus"], "tcp_goodput_mbps"), 10.167);
    assert_eq!(number(&systems["circus"], "tcp_goodput_down_mbps"), 10.167);
    assert_eq!(number(&json, "best_link_tcp_mbps"), 12.5);
    assert_eq!(number(&json, "best_link_tcp_down_mbps"), 20.0);
    assert_eq!(json["best_link"], "wifi0");
    for (name, system) in systems {
        let down = &system["down"];
        for key in [
            "delivery_ratio",
            "max_outage_ms",
            "max_flow_outage_ms",
            "max_recovery_ms",
        ] {
            assert_eq!(down[key], system[key], "{name}.down.{key}");
        }
        assert_eq!(down["lost"], system["lost"], "{name}.down.lost");
        assert_eq!(down["events"], system["events"], "{name}.down.events");
        assert_eq!(
            down["latency_ms"], system["latency_ms"],
            "{name}.down.latency_ms"
        );
    }

    // The figures tell the systems apart as the synthetic runs intend.
    let single = &systems["single-link"];
    assert_eq!(single["events"][0]["lost"], 3000);
    assert_eq!(number(&single["events"][0], "recovery_ms"), 2999.0);
    let circus = &systems["circus"];
    assert_eq!(circus["events"][0]["lost"], 20);
    assert_eq!(number(&circus["events"][0], "recovery_ms"), 38.0);
    assert!(number(&circus["events"][0], "outage_ms") < 10.0);
    assert_eq!(
        circus["events"][2]["lost"], 0,
        "lte0 coming back loses nothing"
    );
    let multiwan = &systems["multiwan"];
    assert_eq!(
        multiwan["events"][1]["lost"], 4000,
        "lte0's flows die until lte0 comes back"
    );
    assert_eq!(
        multiwan["events"][2]["lost"], 500,
        "and for the second after it did"
    );
    assert_eq!(
        multiwan["unattributed_lost"], 10_500,
        "then no event explains why they stay dead"
    );
    assert_eq!(single["unattributed_lost"], 0);
}

#[test]
fn summary_json_is_deterministic_and_round_trips() {
    let data = dataset();
    let json = data.summary.to_json();
    assert_eq!(json, dataset().summary.to_json(), "same input, same bytes");
    // Documented keys appear in DESIGN.md's order.
    let order = [
        "\"scenario\"",
        "\"duration_s\"",
        "\"backend\"",
        "\"seed\"",
        "\"systems\"",
    ];
    let positions: Vec<usize> = order.iter().map(|key| json.find(key).unwrap()).collect();
    assert!(positions.is_sorted(), "{positions:?}");
    let system_order = [
        "\"delivery_ratio\"",
        "\"lost\"",
        "\"duplicates\"",
        "\"max_outage_ms\"",
        "\"max_flow_outage_ms\"",
        "\"max_recovery_ms\"",
        "\"latency_ms\"",
        "\"reordered_ratio\"",
        "\"events\"",
        "\"unattributed_lost\"",
        "\"tcp_goodput_mbps\"",
        "\"tcp_goodput_down_mbps\"",
        "\"link_share\"",
        "\"down\": {",
    ];
    let positions: Vec<usize> = system_order
        .iter()
        .map(|key| json.find(key).unwrap())
        .collect();
    assert!(positions.is_sorted(), "{positions:?}");

    let (_, files) = written();
    assert_eq!(std::fs::read_to_string(&files.summary_json).unwrap(), json);
    assert_eq!(Summary::load(&files.summary_json).unwrap(), data.summary);
}

#[test]
fn plots_are_written_as_png_and_svg() {
    let (_, files) = written();
    let names: Vec<String> = files
        .plots
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "timeline.png",
            "timeline.svg",
            "latency_cdf.png",
            "latency_cdf.svg",
            "link_share.png",
            "link_share.svg"
        ]
    );
    for plot in &files.plots {
        let bytes = std::fs::read(plot).unwrap();
        assert!(
            bytes.len() > 10_000,
            "{} has only {} bytes",
            plot.display(),
            bytes.len()
        );
        if plot.extension().unwrap() == "png" {
            assert!(bytes.starts_with(b"\x89PNG"), "{}", plot.display());
        } else {
            let svg = String::from_utf8(bytes).unwrap();
            assert!(svg.starts_with("<svg"), "{}", plot.display());
            assert!(
                svg.contains("circus"),
                "{} names the systems",
                plot.display()
            );
        }
    }
}

#[test]
fn report_md_has_tables_and_links_to_the_plots() {
    let (_, files) = written();
    let md = std::fs::read_to_string(&files.report_md).unwrap();
    assert!(md.starts_with("# circus-lab report: flappy"));
    for expected in [
        "| system | dir | delivered | lost |",
        "### Upload (client to server)",
        "### Download (server to client)",
        "| TCP as a share of the best link, up / down | 81 % / 51 % |",
        "| best link alone, no tunnel | wifi0, TCP up 12.50 / down 20.00 Mbit/s |",
        "## circus",
        "## single-link",
        "## multiwan",
        "| 10.000 | wifi0 | blackhole |",
        "| 30.000 | lte0 | down |",
        "Lost while no event was in effect: 10500",
        "![timeline](timeline.png)",
        "[latency_cdf.svg](latency_cdf.svg)",
        "![link_share](link_share.png)",
        "`3f2a9c`",
        "| host pauses | not watched for; outages include them |",
    ] {
        assert!(md.contains(expected), "report.md lacks {expected:?}:\n{md}");
    }
}

#[test]
fn report_md_says_what_was_left_out_for_host_pauses() {
    let mut summary = dataset().summary;
    let watched = summary.systems.get_mut("circus").expect("circus ran");
    watched.host_pauses = HostPauses::from_spans([
        (MonoNanos(1_000_000), MonoNanos(21_000_000)),
        (MonoNanos(50_000_000), MonoNanos(55_000_000)),
    ])
    .summary();
    let md = circus_lab::report::markdown::render(&summary, &[]);
    assert!(
        md.contains(
            "| host pauses, left out of the outages | 2 pauses, 25.0 ms in all, longest 20.0 ms |"
        ),
        "{md}"
    );
    assert!(summary_table(&summary).contains("25.0"));

    summary.backend = circus_lab::report::SIM_BACKEND.to_string();
    let md = circus_lab::report::markdown::render(&summary, &[]);
    assert!(md.contains("| host pauses | none: virtual time |"), "{md}");
}

#[test]
fn terminal_table_aligns_one_row_per_system() {
    let table = summary_table(&dataset().summary);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines.len(),
        2 + 2 + 6,
        "title, best link, header, rule, three systems up and down:\n{table}"
    );
    assert!(lines[0].starts_with("flappy"));
    assert!(lines[1].starts_with("best link alone (no tunnel): wifi0"));
    let width = lines[2].chars().count();
    assert!(
        lines[2..].iter().all(|l| l.chars().count() == width),
        "ragged:\n{table}"
    );
    for (line, (system, direction)) in lines[4..].iter().zip([
        ("circus", "up"),
        ("circus", "down"),
        ("multiwan", "up"),
        ("multiwan", "down"),
        ("single-link", "up"),
        ("single-link", "down"),
    ]) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&cells[..2], [system, direction], "{table}");
    }
    assert!(
        lines[8].contains("88.333 %") && lines[8].contains("81 %"),
        "single-link delivery and TCP share:\n{table}"
    );
}

#[test]
fn a_scenario_names_the_summary_and_its_timeline() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/flappy.toml");
    let scenario = circus_lab::scenario::Scenario::load(&path).unwrap();
    let summary = Summary::for_scenario(&scenario, "userspace", "abc1234");
    assert_eq!(summary.scenario, "flappy");
    assert_eq!(summary.duration_s, 60.0);
    assert_eq!(summary.seed, 7);
    assert_eq!(summary.scenario_hash, scenario.content_hash().to_string());
    assert!(summary.systems.is_empty());

    let timeline: Vec<circus_lab::metrics::TimelineEvent> =
        scenario.events.iter().map(Into::into).collect();
    assert_eq!(timeline[0].at, Duration::from_secs(8));
    assert_eq!(timeline[0].link, "wifi0");
    assert_eq!(timeline[0].action, "blackhole");
    assert_eq!(timeline[0].duration, Some(Duration::from_secs(3)));
    assert!(
        timeline
            .iter()
            .any(|e| e.link == "lte0" && e.action == "down")
    );
}
