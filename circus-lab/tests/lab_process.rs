//! Commands the lab runs inside a namespace: they run there (not in the
//! lab's namespace), their exit status, output files and wall time are
//! reported, and one that outlives its limit is stopped and said to be.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use circus_lab::topology::cleanup::CleanupGuard;
use circus_lab::topology::netns_available_for_test;
use circus_lab::topology::process::{LabProcess, run_to_end};

fn namespace(guard: &mut CleanupGuard, test: &str) -> circus_lab::topology::Netns {
    guard
        .create_netns(&format!("lpt-{}-{test}", std::process::id()))
        .expect("a namespace")
}

#[test]
fn a_command_runs_inside_the_namespace_and_reports_its_end() {
    if !netns_available_for_test("a_command_runs_inside_the_namespace_and_reports_its_end") {
        return;
    }
    let mut guard = CleanupGuard::new();
    let netns = namespace(&mut guard, "end");
    let logs = guard
        .create_run_dir(&format!("lpt-{}-end-files", std::process::id()))
        .unwrap();
    let finished = run_to_end(
        &netns,
        "namespace",
        "readlink /proc/self/ns/net; echo \"$GREETING\" >&2; exit 3",
        &[("GREETING", "hello")],
        &logs,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(finished.exit_code, Some(3));
    assert!(!finished.killed_by_lab && !finished.succeeded());
    assert_eq!(finished.describe(), "exit 3");
    // The shell printed its namespace, `net:[INODE]`: the lab's namespace's.
    let inside = std::fs::read_to_string(&finished.stdout).unwrap();
    let expected = std::fs::metadata(netns.path()).unwrap().ino();
    assert_eq!(inside.trim(), format!("net:[{expected}]"));
    assert_eq!(
        std::fs::read_to_string(&finished.stderr).unwrap(),
        "hello\n"
    );
}

#[test]
fn a_command_past_its_limit_is_stopped_and_reported() {
    if !netns_available_for_test("a_command_past_its_limit_is_stopped_and_reported") {
        return;
    }
    let mut guard = CleanupGuard::new();
    let netns = namespace(&mut guard, "limit");
    let logs = guard
        .create_run_dir(&format!("lpt-{}-limit-files", std::process::id()))
        .unwrap();
    let finished = run_to_end(
        &netns,
        "hangs",
        "sleep 30",
        &[],
        &logs,
        Duration::from_millis(200),
    )
    .unwrap();
    assert!(finished.killed_by_lab);
    assert!(finished.signal.is_some(), "ended by a signal");
    assert!(finished.wall >= Duration::from_millis(200) && finished.wall < Duration::from_secs(5));
    assert!(
        finished.describe().contains("stopped by the lab"),
        "{}",
        finished.describe()
    );

    // SIGTERM first: a command that exits on it is not killed.
    let mut polite = LabProcess::start(&netns, "polite", "sleep 30", &[], &logs).unwrap();
    assert!(polite.poll().unwrap().is_none(), "still running");
    let finished = polite.stop(Duration::from_secs(5)).unwrap();
    assert_eq!(finished.signal, Some(libc::SIGTERM));
    assert!(finished.killed_by_lab);
}
