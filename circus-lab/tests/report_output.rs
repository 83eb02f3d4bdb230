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
use circus_lab::report::setup::{EventSetup, LinkSetup};
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
    let mut summary = Summary {
        scenario: "flappy".into(),
        duration_s: 60.0,
        backend: "userspace".into(),
        seed: 7,
        scenario_hash: "3f2a9c".into(),
        commit: "abc1234".into(),
        best_link_tcp_mbps: Some(12.5),
        best_link_tcp_down_mbps: Some(20.0),
        best_link: Some("wifi0".into()),
        systems: BTreeMap::new(),
        commands_not_run: Vec::new(),
        system_order: Vec::new(),
        links: ["wifi0", "lte0"]
            .map(|name| LinkSetup {
                name: name.into(),
                params: format!("{name}'s properties"),
            })
            .to_vec(),
        timeline: comparison
            .events
            .iter()
            .map(|e| EventSetup {
                at_s: e.at.as_secs_f64(),
                link: e.link.clone(),
                action: e.action.clone(),
                for_s: e.duration.map(|d| d.as_secs_f64()),
                effect: format!("{} does {}", e.link, e.action),
            })
            .collect(),
    };
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
        // In the comparison's order (circus, single-link, multiwan), not
        // the names' order.
        summary.add_system(system.name, system_metrics(&run, Some(&run), &config));
        let up = system_series(&run, &config);
        let down = Some(up.clone());
        series.insert(system.name.to_string(), DirectionSeries { up, down });
    }
    Dataset {
        summary,
        series,
        events: comparison.events,
    }
}

/// The report of the synthetic dataset, written once per test process
/// (drawing is slow in debug builds) to target/tmp/clm-report-<pid>, where it
/// can be looked at. nextest runs each test in a process of its own: a
/// folder each keeps them from rewriting the files another is reading.
/// Folders of processes that have ended are removed.
fn written() -> &'static (Dataset, ReportFiles) {
    static WRITTEN: OnceLock<(Dataset, ReportFiles)> = OnceLock::new();
    WRITTEN.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ended = name
                .strip_prefix("clm-report-")
                .is_some_and(|pid| !Path::new("/proc").join(pid).exists());
            if ended {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = tmp.join(format!("clm-report-{}", std::process::id()));
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
    assert_eq!(
        json["system_order"],
        serde_json::json!(["circus", "single-link", "multiwan"])
    );
    assert_eq!(json["links"][1]["name"], "lte0");
    assert_eq!(json["timeline"][0]["for_s"], 3.0);
    assert_eq!(json["timeline"][1]["effect"], "lte0 does down");
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
            "event_zoom.png",
            "event_zoom.svg",
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
        "![event_zoom](event_zoom.png)",
        "| lte0 | lte0's properties |",
        "| 10.000 | wifi0 | blackhole | 3 s | wifi0 does blackhole |",
        "| 30.000 | lte0 | down | - | lte0 does down |",
        "each curve ends at its delivered share",
        "in 10 ms bins",
    ] {
        assert!(md.contains(expected), "report.md lacks {expected:?}:\n{md}");
    }
    // What the systems faced comes first; the systems in the order they ran.
    let at = |heading: &str| md.find(heading).unwrap_or_else(|| panic!("no {heading}"));
    let headings = [
        "## Links",
        "## Timeline",
        "## Comparison",
        "## circus",
        "## single-link",
        "## multiwan",
        "## Plots",
    ];
    let positions: Vec<usize> = headings.iter().map(|h| at(h)).collect();
    assert!(positions.is_sorted(), "{headings:?} at {positions:?}");
    assert!(
        !md.contains("The zoom shows the first"),
        "four events all fit in the zoom"
    );
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
    // The systems in the order they ran, not by name.
    for (line, (system, direction)) in lines[4..].iter().zip([
        ("circus", "up"),
        ("circus", "down"),
        ("single-link", "up"),
        ("single-link", "down"),
        ("multiwan", "up"),
        ("multiwan", "down"),
    ]) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&cells[..2], [system, direction], "{table}");
    }
    assert!(
        lines[6].contains("88.333 %") && lines[6].contains("81 %"),
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

/// A run of 1000 probes per second for `seconds`, none arriving of those
/// sent while `lost(ms since the start)`, the rest after 20 ms; `events` its
/// timeline.
fn run_series(
    seconds: u64,
    lost: impl Fn(u64) -> bool,
    events: &[circus_lab::metrics::TimelineEvent],
) -> circus_lab::metrics::SystemSeries {
    let log = synthetic::stream(1000, Duration::from_secs(seconds), 1, |seq| {
        (!lost(seq)).then(|| Duration::from_millis(20))
    });
    let run = RunLogs {
        origin: ORIGIN,
        probes: &log,
        tcp: None,
        events,
        links: &[],
        host_pauses: None,
        flow_links: None,
    };
    system_series(&run, &MetricsConfig::default())
}

#[test]
fn zoom_bins_show_a_30_ms_outage_the_100_ms_series_hides() {
    // Nothing sent from 1.52 s to 1.55 s arrives; the event is at 1.5 s.
    let events = [synthetic::lasting(1_500, "wifi0", "blackhole", 30)];
    let series = run_series(3, |ms| (1_520..1_550).contains(&ms), &events);

    let window = &series.windows[0];
    assert_eq!(series.window_bin, Duration::from_millis(10));
    assert_eq!(window.at_s, 1.5);
    assert_eq!(window.bins.len(), 200, "±1 s in 10 ms bins");
    assert!((window.bins[0].start_s - 0.5).abs() < 1e-9);
    let ratios: Vec<Option<f64>> = window.bins.iter().map(|b| b.delivery_ratio()).collect();
    // Bins 102-104 are 1.52-1.55 s: 10 probes sent in each, none delivered.
    assert_eq!(ratios[101], Some(1.0));
    assert_eq!(ratios[102..105], [Some(0.0); 3]);
    assert_eq!(ratios[105], Some(1.0));
    assert_eq!(ratios.iter().filter(|r| **r == Some(0.0)).count(), 3);
    assert_eq!(window.bins[103].sent, 10);
    assert_eq!(window.bins[103].latency_p50_ms, None);
    assert_eq!(window.bins[101].latency_p50_ms, Some(20.0));
    // The 100 ms bin holding the outage still delivered 70 %: no bin of the
    // whole-run series is empty.
    assert_eq!(series.bins[15].delivery_ratio(), Some(0.7));
    assert!(series.bins.iter().all(|b| b.delivered > 0));
}

#[test]
fn zoom_windows_reach_before_the_start_and_stop_at_the_cap() {
    let events: Vec<_> = (0..12)
        .map(|i| synthetic::event(300 + i * 100, "wifi0", "down"))
        .collect();
    let series = run_series(3, |_| false, &events);
    assert_eq!(series.windows.len(), MetricsConfig::default().event_windows);
    // The first window opens 0.7 s before the run: nothing sent then.
    let first = &series.windows[0];
    assert!((first.bins[0].start_s + 0.7).abs() < 1e-9);
    assert!(first.bins[..70].iter().all(|b| b.sent == 0));
    assert!(first.bins[70..].iter().all(|b| b.sent == 10));
}

#[test]
fn latency_cdf_counts_lost_probes_as_never_arriving() {
    // One probe in five lost: the curve ends at 80 %, not 100 %.
    let series = run_series(2, |ms| ms % 5 == 0, &[]);
    let cdf = &series.latency_cdf;
    assert_eq!(cdf.first(), Some(&(20.0, 0.0)));
    let (latency, share) = *cdf.last().unwrap();
    assert_eq!(latency, 20.0);
    assert!((share - 0.8).abs() < 1e-12, "ends at {share}");
    assert!(cdf.windows(2).all(|w| w[0].1 <= w[1].1));
    // Nothing delivered: no curve at all.
    assert!(run_series(1, |_| true, &[]).latency_cdf.is_empty());
}

#[test]
fn systems_keep_the_order_they_ran_in() {
    let data = dataset();
    let metrics = |name: &str| data.summary.systems[name].clone();
    let mut summary = Summary {
        systems: BTreeMap::new(),
        system_order: Vec::new(),
        ..data.summary.clone()
    };
    for name in ["single-link", "multiwan", "circus"] {
        summary.add_system(name, metrics(name));
    }
    summary.add_system("multiwan", metrics("multiwan"));
    let order: Vec<&str> = summary.systems_in_order().map(|(name, _)| name).collect();
    assert_eq!(order, ["single-link", "multiwan", "circus"]);
    assert_eq!(summary.system_order, order, "added again, listed once");

    let rows = circus_lab::report::table::summary_rows(&summary);
    let names: Vec<&str> = rows.iter().map(|row| row[0].as_str()).collect();
    assert_eq!(
        names,
        [
            "single-link",
            "single-link",
            "multiwan",
            "multiwan",
            "circus",
            "circus"
        ]
    );
    let md = circus_lab::report::markdown::render(&summary, &[]);
    let at = |heading: &str| md.find(heading).unwrap();
    assert!(at("## single-link") < at("## multiwan") && at("## multiwan") < at("## circus"));

    // Colours go by that order: the first system gets the first colour,
    // whatever its name.
    let colors = circus_lab::report::plots::system_colors;
    let first_color = colors(&data.summary)[0].2;
    let ordered: Vec<(&str, _)> = colors(&summary)
        .into_iter()
        .map(|(name, _, color)| (name, color))
        .collect();
    assert_eq!(ordered[0], ("single-link", first_color));
    assert_ne!(ordered[2], ("circus", first_color));

    // A summary from before `system_order` lists its systems by name; a
    // name the order lists twice or that did not run is skipped.
    summary.system_order = vec!["circus".into(), "mptcp".into(), "circus".into()];
    let order: Vec<&str> = summary.systems_in_order().map(|(name, _)| name).collect();
    assert_eq!(order, ["circus", "multiwan", "single-link"]);
}

#[test]
fn report_md_describes_the_links_and_the_timeline() {
    let flappy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/flappy.toml");
    let scenario = circus_lab::scenario::Scenario::load(&flappy).unwrap();
    let summary = Summary::for_scenario(&scenario, "userspace", "abc1234");
    let md = circus_lab::report::markdown::render(&summary, &[]);
    for expected in [
        "| wifi0 | 20 Mbit/s, delay 12 ms ± 4 ms, loss 1 %, queue 100 ms (default) |",
        "| lte0 | 10 Mbit/s, delay 30 ms ± 8 ms, loss 0.5 %, queue 200 ms |",
        "| 8.000 | wifi0 | blackhole | 3 s | frames vanish, the interface stays up |",
        "| 30.000 | lte0 | down | 5 s | carrier lost, the interface goes down |",
    ] {
        assert!(md.contains(expected), "report.md lacks {expected:?}:\n{md}");
    }
    assert!(md.find("## Timeline").unwrap() < md.find("## Comparison").unwrap());

    let text = r#"
        name = "described"
        duration = "10s"
        seed = 1
        systems = ["circus"]

        [[link]]
        name = "dsl0"
        delay = "10ms"
        rate = "2mbit"
        queue = "64kB"
        duplicate = "1%"
        reorder = { fraction = "2%", extra_delay = "15ms" }
        burst_loss = { to_bad = "1%", to_good = "20%", loss_in_bad = "80%" }

        [[link]]
        name = "sat0"
        delay = "1.5s"

        [[event]]
        at = "2s"
        link = "dsl0"
        action = "set"
        for = "1500ms"
        set = { delay = "200ms", loss = "5%", rate = "500kbit" }

        [[event]]
        at = "4s"
        link = "sat0"
        action = "address"
    "#;
    let scenario =
        circus_lab::scenario::Scenario::from_toml(text, Path::new("described.toml")).unwrap();
    let summary = Summary::for_scenario(&scenario, "sim", "abc1234");
    assert_eq!(
        summary.links[0].params,
        "2 Mbit/s, delay 10 ms, queue 64000 bytes, burst loss (Gilbert-Elliott, mean 3.8095 %, \
         bursts of 5 frames), duplicate 1 %, reorder 2 % by +15 ms"
    );
    assert_eq!(summary.links[1].params, "no rate limit, delay 1.5 s");
    let set = &summary.timeline[0];
    assert_eq!(
        (set.at_s, set.action.as_str(), set.for_s),
        (2.0, "set", Some(1.5))
    );
    assert_eq!(set.effect, "500 kbit/s, delay 200 ms, loss 5 %");
    assert_eq!(
        summary.timeline[1].effect,
        "the client's address on the link changes"
    );

    // A trace link names its files and their mean rate.
    let traced = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/cellular-trace.toml");
    let scenario = circus_lab::scenario::Scenario::load(&traced).unwrap();
    let summary = Summary::for_scenario(&scenario, "sim", "abc1234");
    let described: Vec<&str> = summary.links.iter().map(|l| l.params.as_str()).collect();
    assert!(
        described
            .iter()
            .any(|p| p.starts_with("up trace cellular-up.trace (mean ")
                && p.contains("down trace cellular-down.trace (mean ")),
        "{described:?}"
    );
}
