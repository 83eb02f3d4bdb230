//! External systems in real namespaces: the shipped wireguard-go file runs
//! a short scenario like any built-in system, its processes log into the
//! report folder, and a SIGKILL of the lab mid-run leaves nothing after the
//! next start's sweep.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use circus_lab::runner::run_systems;
use circus_lab::scenario::Scenario;
use circus_lab::topology::naming::name_start;
use circus_lab::topology::netns::NETNS_DIR;
use circus_lab::topology::{RUN_TAG, netns_available_for_test, sweep_stale};
use indicatif::ProgressBar;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// ci-blackhole, shortened: wifi0 blackholes for 1 s of 3 s.
fn scenario(system: &Path, duration: &str) -> String {
    format!(
        r#"
name = "external-test"
duration = "{duration}"
seed = 11
systems = ["{}"]

[[link]]
name = "wifi0"
delay = "10ms"
rate = "20mbit"

[[link]]
name = "lte0"
delay = "25ms"
rate = "10mbit"

[[event]]
at = "1s"
link = "wifi0"
action = "blackhole"
for = "1s"

[traffic]
probe = {{ rate = "500pps", size = 200 }}
tcp = {{ flows = 0 }}
"#,
        system.display()
    )
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../systems")
        .join(format!("{name}.toml"))
}

/// A private folder, removed at the end.
struct Folder(PathBuf);

impl Folder {
    fn new(test: &str) -> Folder {
        let path = std::env::temp_dir().join(format!("circus-ext-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Folder(path)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Namespaces and wireguard-go both present, or the test is skipped (a
/// failure under CIRCUS_REQUIRE_NETNS=1, as CI installs wireguard-go).
fn wireguard_available(test: &str) -> bool {
    if !netns_available_for_test(test) {
        return false;
    }
    let installed = ["wireguard-go", "wg"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !installed {
        let reason = "wireguard-go or wg is not installed (Debian: wireguard-go wireguard-tools)";
        if std::env::var("CIRCUS_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
            panic!("{test}: {reason}");
        }
        eprintln!("skipping {test}: {reason}");
    }
    installed
}

#[test]
fn wireguard_go_runs_a_scenario_and_appears_in_the_summary() {
    let test = "wireguard_go_runs_a_scenario_and_appears_in_the_summary";
    if !wireguard_available(test) {
        return;
    }
    let folder = Folder::new("run");
    let text = scenario(&shipped("wireguard-go"), "3s");
    let scenario = Scenario::from_toml(&text, &folder.0.join("s.toml")).unwrap();
    let logs = folder.0.join("logs");
    let results = run_systems(
        &scenario,
        &scenario.systems,
        &folder.0,
        &ProgressBar::hidden(),
        None,
    )
    .unwrap_or_else(|e| panic!("run failed: {e}"));
    let outcome = results.outcome(&scenario, "test");
    let json: serde_json::Value = serde_json::from_str(&outcome.summary.to_json()).unwrap();
    let wireguard = &json["systems"]["wireguard-go"];
    // The best link alone is lte0 (wifi0 blackholes): the tunnel on it
    // loses nothing.
    assert_eq!(json["best_link"], "lte0", "{json}");
    // Upload figures are the system's own keys, download ones under `down`.
    for (direction, figures) in [("up", wireguard), ("down", &wireguard["down"])] {
        let ratio = figures["delivery_ratio"].as_f64();
        assert!(
            ratio.is_some_and(|r| r > 0.99),
            "{direction}: {ratio:?} in {wireguard}"
        );
    }
    for log in ["setup-0", "gateway-0", "client-0", "ready"] {
        let file = logs.join("wireguard-go").join(format!("{log}.stderr"));
        assert!(file.is_file(), "{} is in the report folder", file.display());
    }
}

/// Pids of the wireguard-go processes inside the namespace `/run/netns/<name>`.
fn wireguard_in(namespace: &str) -> Vec<u32> {
    let Ok(target) = std::fs::metadata(Path::new(NETNS_DIR).join(namespace)) else {
        return Vec::new();
    };
    let entries = std::fs::read_dir("/proc").unwrap();
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            let ns = std::fs::metadata(entry.path().join("ns/net")).ok()?;
            let inside = ns.ino() == target.ino() && ns.dev() == target.dev();
            (comm.trim() == "wireguard-go" && inside).then_some(pid)
        })
        .collect()
}

/// The namespaces of lab runs of process `pid`.
fn namespaces_of(pid: u32) -> Vec<String> {
    let prefix = format!("{}{RUN_TAG}-{pid}-", name_start());
    let entries = std::fs::read_dir(NETNS_DIR).map(|e| e.flatten().collect::<Vec<_>>());
    entries
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

#[test]
fn sigkill_of_a_run_leaves_no_process_and_no_namespace_after_the_next_start() {
    let test = "sigkill_of_a_run_leaves_no_process_and_no_namespace_after_the_next_start";
    if !wireguard_available(test) {
        return;
    }
    let folder = Folder::new("sigkill");
    // The shipped file on link 0, so no best-link runs come first.
    let system = folder.0.join("wireguard-go.toml");
    let text = std::fs::read_to_string(shipped("wireguard-go")).unwrap();
    std::fs::write(&system, text.replace("best.", "link0.")).unwrap();
    let file = folder.0.join("s.toml");
    std::fs::write(&file, scenario(&system, "60s")).unwrap();
    let mut lab = Command::new(env!("CARGO_BIN_EXE_circus-lab"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(folder.0.join("report"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = lab.id();
    // The system runs once both ends of the tunnel do (one wireguard-go
    // in the gateway's namespace, one in the client's).
    let deadline = Instant::now() + Duration::from_secs(30);
    let running = loop {
        let namespaces = namespaces_of(pid);
        let pids: Vec<u32> = namespaces.iter().flat_map(|ns| wireguard_in(ns)).collect();
        if pids.len() >= 2 {
            break pids;
        }
        assert!(Instant::now() < deadline, "wireguard-go never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    assert_eq!(lab.wait().unwrap().signal(), Some(Signal::SIGKILL as i32));
    assert!(
        running.iter().any(|&p| alive(p)),
        "SIGKILL leaves wireguard-go running in the namespaces"
    );
    assert!(!namespaces_of(pid).is_empty(), "and the namespaces");

    // What the next start does before building its topology.
    sweep_stale(RUN_TAG).unwrap();
    assert_eq!(namespaces_of(pid), Vec::<String>::new());
    let deadline = Instant::now() + Duration::from_secs(2);
    while running.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left: Vec<u32> = running.into_iter().filter(|&p| alive(p)).collect();
    assert_eq!(left, Vec::<u32>::new(), "wireguard-go processes left");
}
