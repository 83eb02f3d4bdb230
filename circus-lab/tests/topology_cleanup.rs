//! Nothing the lab creates outlives it, namespaces or files: normal exit,
//! panic, SIGTERM, Ctrl-C, and SIGKILL followed by the next run's sweep.
//!
//! Each case runs a child process (this test binary again, running only
//! `child_process_entry` with a mode in the environment) that builds a
//! topology, puts a status socket in its run directory as the daemons do,
//! starts a command in its client namespace that leaves one process in its
//! group and one that escapes it (`setsid`), as external systems' daemons
//! do, prints its prefix and run directory, and then ends the way the case
//! says.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use circus_lab::topology::netns::NETNS_DIR;
use circus_lab::topology::process::LabProcess;
use circus_lab::topology::{Role, Topology, TopologyConfig, netns_available_for_test, sweep_stale};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const CHILD_MODE_ENV: &str = "CIRCUS_LAB_TOPOLOGY_CHILD";
const TAG: &str = "t";

fn config() -> TopologyConfig {
    TopologyConfig {
        tag: TAG.into(),
        links: 1,
    }
}

/// The child's body; a no-op in a normal test run.
#[test]
fn child_process_entry() {
    let Ok(mode) = std::env::var(CHILD_MODE_ENV) else {
        return;
    };
    let topology = Topology::build(&config()).expect("child builds a topology");
    // Bound and left in place: a socket's file outlives its listener.
    let socket = UnixListener::bind(topology.run_dir().join("client.sock"));
    socket.expect("a socket in the run directory");
    let command = format!("{0} & setsid {0} & wait", sleeper(std::process::id()));
    let process = LabProcess::start(
        topology.netns(Role::Client),
        "sleepers",
        &command,
        &[],
        topology.run_dir(),
    );
    let _process = process.expect("a command in the client namespace");
    // Both sleepers run before the parent is told to go on.
    while processes_running(&sleeper(std::process::id())) < 2 {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "PREFIX {} RUNDIR {}",
        topology.prefix(),
        topology.run_dir().display()
    );
    match mode.as_str() {
        "exit" => {}
        "panic" => panic!("the child panics on purpose"),
        // Waits for the parent's signal; gives up after a minute so a failed
        // parent cannot leave it running.
        _ => std::thread::sleep(Duration::from_secs(60)),
    }
}

/// A child in `mode`, with the namespace prefix and run directory it
/// printed once built.
fn spawn_child(mode: &str) -> (Child, String, PathBuf) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE_ENV, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = None;
    let mut line = String::new();
    while printed.is_none() && stdout.read_line(&mut line).unwrap_or(0) > 0 {
        // libtest prints "test child_process_entry ... " on the same line first.
        printed = line
            .split_once("PREFIX ")
            .and_then(|(_, rest)| rest.trim().split_once(" RUNDIR "))
            .map(|(prefix, dir)| (prefix.to_owned(), PathBuf::from(dir)));
        line.clear();
    }
    let (prefix, run_dir) = printed.expect("the child printed its prefix and run directory");
    assert!(
        run_dir.join("client.sock").exists(),
        "the child's socket is in place"
    );
    // Keep reading so the child's last lines do not fail on a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (child, prefix, run_dir)
}

/// The command line of the child's sleepers: unique to that child.
fn sleeper(child: u32) -> String {
    format!("sleep 600.{child}")
}

/// How many processes run exactly `command_line`.
fn processes_running(command_line: &str) -> usize {
    let wanted: Vec<u8> = command_line
        .split(' ')
        .flat_map(|word| word.bytes().chain([0]))
        .collect();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted))
                .count()
        })
        .unwrap_or(0)
}

/// Asserts that the run left nothing: no namespace, no run directory, no
/// process it started.
fn nothing_left(child: u32, prefix: &str, run_dir: &Path) {
    assert_eq!(namespaces_with(prefix), Vec::<String>::new());
    assert!(!run_dir.exists(), "{} was removed", run_dir.display());
    // A killed process may take a moment to be reaped.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while processes_running(&sleeper(child)) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        processes_running(&sleeper(child)),
        0,
        "processes left running"
    );
}

fn namespaces_with(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|name| name.starts_with(&format!("{prefix}-")))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn wait(mut child: Child) -> ExitStatus {
    child.wait().unwrap()
}

#[test]
fn normal_exit_removes_everything() {
    if !netns_available_for_test("normal_exit_removes_everything") {
        return;
    }
    let (child, prefix, run_dir) = spawn_child("exit");
    let pid = child.id();
    assert!(wait(child).success());
    nothing_left(pid, &prefix, &run_dir);
}

#[test]
fn panic_removes_everything() {
    if !netns_available_for_test("panic_removes_everything") {
        return;
    }
    let (child, prefix, run_dir) = spawn_child("panic");
    let pid = child.id();
    assert!(!wait(child).success(), "the child panicked");
    nothing_left(pid, &prefix, &run_dir);
}

fn signal_removes_everything(signal: Signal) {
    let (child, prefix, run_dir) = spawn_child("wait");
    assert_eq!(
        namespaces_with(&prefix).len(),
        Role::ALL.len(),
        "built before the signal"
    );
    let pid = child.id();
    kill(Pid::from_raw(pid as i32), signal).unwrap();
    let status = wait(child);
    assert_eq!(
        status.signal(),
        Some(signal as i32),
        "the signal still ends the process"
    );
    nothing_left(pid, &prefix, &run_dir);
}

#[test]
fn sigterm_removes_everything() {
    if !netns_available_for_test("sigterm_removes_everything") {
        return;
    }
    signal_removes_everything(Signal::SIGTERM);
}

#[test]
fn ctrl_c_removes_everything() {
    if !netns_available_for_test("ctrl_c_removes_everything") {
        return;
    }
    signal_removes_everything(Signal::SIGINT);
}

#[test]
fn sigkill_leftovers_are_swept_by_the_next_run() {
    if !netns_available_for_test("sigkill_leftovers_are_swept_by_the_next_run") {
        return;
    }
    let (child, prefix, run_dir) = spawn_child("wait");
    let pid = child.id();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    assert_eq!(wait(child).signal(), Some(Signal::SIGKILL as i32));
    assert_eq!(
        namespaces_with(&prefix).len(),
        Role::ALL.len(),
        "SIGKILL leaves them behind"
    );
    assert!(run_dir.join("client.sock").exists(), "and the run's files");
    assert!(
        processes_running(&sleeper(pid)) > 0,
        "and the processes that left the lab's process group"
    );

    let next_run = Topology::build(&config()).unwrap();
    nothing_left(pid, &prefix, &run_dir);
    drop(next_run);
}

#[test]
fn sweep_leaves_namespaces_of_live_runs_alone() {
    if !netns_available_for_test("sweep_leaves_namespaces_of_live_runs_alone") {
        return;
    }
    let topology = Topology::build(&config()).unwrap();
    let removed = sweep_stale(TAG).unwrap();
    let ours = topology.prefix().to_string();
    assert!(
        removed.iter().all(|name| !name.starts_with(&ours)),
        "{removed:?}"
    );
    assert_eq!(namespaces_with(&ours).len(), Role::ALL.len());
    assert!(topology.run_dir().is_dir(), "its run directory stays too");
}
