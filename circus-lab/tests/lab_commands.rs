//! `[[traffic.command]]` end to end in real namespaces: a service and a
//! download with a checksum through circus, a command that fails and one
//! that hangs past the run, all reported in `summary.json`, the table and
//! `report.md`, and nothing left running afterwards.

use std::path::{Path, PathBuf};

use circus_lab::metrics::CommandReport;
use circus_lab::report::{summary_table, write_report};
use circus_lab::runner::run_systems;
use circus_lab::scenario::Scenario;
use circus_lab::topology::netns_available_for_test;
use indicatif::ProgressBar;

/// One clean link, 4 s: the server makes a 2 MB file and serves it, the
/// client downloads and checks it; `address` prints the filled-in values;
/// `fails` exits 1; `hangs` outlives the run.
const SCENARIO: &str = r#"
name = "lab-commands-test"
duration = "4s"
seed = 5
systems = ["circus"]

[[link]]
name = "wifi0"
delay = "5ms"
rate = "50mbit"

[traffic]
probe = { rate = "100pps", size = 100 }

[[traffic.command]]
name = "http"
in = "server"
service = true
run = """
cd {dir} && head -c 2000000 /dev/urandom > file && sha256sum < file | cut -d' ' -f1 > file.sha256 \
  && exec python3 -m http.server 8000 --bind {server}"""

[[traffic.command]]
name = "download"
at = "0.5s"
run = """
cd {dir} && curl -sS --fail --retry 10 --retry-connrefused --retry-delay 1 -o download \
  http://{server}:8000/file && [ "$(sha256sum < download | cut -d' ' -f1)" = "$(cat file.sha256)" ]"""

[[traffic.command]]
name = "address"
in = "server"
at = "0s"
run = "echo {client} $CIRCUS_LAB_SERVER"

[[traffic.command]]
name = "fails"
at = "1s"
run = "echo no >&2; exit 1"

[[traffic.command]]
name = "hangs"
at = "1s"
run = "echo $$; exec sleep 600"
"#;

/// Whether `tool` is on the PATH; the test needs curl and python3.
fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// A report folder removed at the end of the test, whatever happens.
struct Folder(PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn commands_run_in_their_namespaces_and_every_end_is_reported() {
    let test = "commands_run_in_their_namespaces_and_every_end_is_reported";
    if !netns_available_for_test(test) {
        return;
    }
    for tool in ["curl", "python3"] {
        let required = std::env::var("CIRCUS_REQUIRE_NETNS").is_ok_and(|v| v == "1");
        assert!(have(tool) || !required, "{test}: {tool} is not installed");
        if !have(tool) {
            eprintln!("skipping {test}: {tool} is not installed");
            return;
        }
    }
    let folder = Folder(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("lab-commands-{}", std::process::id())),
    );
    let scenario = Scenario::from_toml(SCENARIO, Path::new("lab_commands.rs")).unwrap();
    let outcome = run_systems(
        &scenario,
        &scenario.systems,
        &folder.0,
        &ProgressBar::hidden(),
        None,
    )
    .unwrap_or_else(|e| panic!("run failed: {e}"))
    .outcome(&scenario, "test");
    let commands = &outcome.summary.systems["circus"].commands;
    let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["http", "download", "address", "fails", "hangs"]);
    let command =
        |name: &str| -> &CommandReport { commands.iter().find(|c| c.name == name).unwrap() };
    let output = |path: &str| std::fs::read_to_string(folder.0.join(path)).unwrap();

    // The download arrived whole (the checksum matched: exit 0) while the
    // service ran; the service was stopped at the end, which is its normal end.
    let download = command("download");
    assert!(
        download.completed,
        "{download:?}: {}",
        output(&download.stderr)
    );
    assert_eq!(download.exit_code, Some(0));
    assert!((download.at_s - 0.5).abs() < 0.1, "{download:?}");
    assert!(
        download.wall_s > 0.0 && download.wall_s < 5.0,
        "{download:?}"
    );
    let http = command("http");
    assert!(
        http.service && http.still_running_at_end && http.ok(),
        "{http:?}"
    );
    assert!(
        http.at_s < 0.0,
        "a service starts before time zero: {http:?}"
    );

    // The server sees circus's client at its tunnel address.
    let address = command("address");
    assert_eq!(address.stdout, "commands/circus/address.stdout");
    assert_eq!(output(&address.stdout), "100.64.0.2 198.19.0.2\n");

    let fails = command("fails");
    assert_eq!(fails.exit_code, Some(1));
    assert!(!fails.completed && !fails.ok() && !fails.still_running_at_end);
    assert_eq!(output(&fails.stderr), "no\n");

    // The hang was stopped at the end of the drain (4 s + 1.5 s), and its
    // process is gone.
    let hangs = command("hangs");
    assert!(hangs.still_running_at_end && !hangs.completed && !hangs.ok());
    assert!(
        hangs.signal.is_some() && hangs.exit_code.is_none(),
        "{hangs:?}"
    );
    assert!(hangs.wall_s > 4.0 && hangs.wall_s < 6.0, "{hangs:?}");
    let pid = output(&hangs.stdout);
    assert!(
        !Path::new("/proc").join(pid.trim()).exists(),
        "the hung command (pid {pid}) still runs"
    );

    // Failures show in the table and the report; the keys are in summary.json.
    let table = summary_table(&outcome.summary);
    assert!(table.contains("FAILED: exit 1"), "{table}");
    assert!(
        table.contains("FAILED: still running at the end"),
        "{table}"
    );
    let files = write_report(
        &folder.0,
        &outcome.summary,
        &outcome.series,
        &outcome.events,
    )
    .unwrap();
    let report = std::fs::read_to_string(&files.report_md).unwrap();
    assert!(report.contains("## Commands"), "{report}");
    assert!(
        report.contains("| circus | download | client |"),
        "{report}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files.summary_json).unwrap()).unwrap();
    let listed = &json["systems"]["circus"]["commands"][1];
    for key in [
        "name",
        "in",
        "at_s",
        "exit_code",
        "signal",
        "wall_s",
        "completed",
        "still_running_at_end",
        "stdout",
        "stderr",
    ] {
        assert!(listed.get(key).is_some(), "no {key} in {listed}");
    }
    assert_eq!(listed["exit_code"], 0);
}
