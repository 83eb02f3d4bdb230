//! `circus-lab shell` as a user runs it (the built binary): a command in
//! the client namespace reaches the server through circus while the
//! timeline plays, its exit status is the lab's, the timeline's progress is
//! on stderr, and nothing of the run is left once it exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use circus_lab::topology::netns::NETNS_DIR;
use circus_lab::topology::{SERVER_ADDRESS, netns_available_for_test};

/// Two links; the first blackholes early and briefly, so a three-second
/// command sees the event start and end, and a loop restarts every second.
const SCENARIO: &str = r#"
name = "lab-shell-test"
duration = "1s"
seed = 5
systems = ["circus"]

[[link]]
name = "wifi0"
delay = "5ms"
rate = "20mbit"

[[link]]
name = "lte0"
delay = "15ms"
rate = "10mbit"

[[event]]
at = "200ms"
link = "wifi0"
action = "blackhole"
for = "300ms"
"#;

/// A file of this test process's own in the temporary directory, removed
/// on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("lab-shell-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `circus-lab shell SCENARIO ARGS...` to its end; returns its output
/// and pid (which names its namespaces).
fn shell(scenario: &Path, args: &[&str]) -> (Output, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_circus-lab"))
        .arg("shell")
        .arg(scenario)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("circus-lab starts");
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

/// The namespaces and run directories whose names carry `pid` as the
/// lab's names do (`<start><tag>-<pid>-<instance>-<role>`).
fn left_behind(pid: u32) -> Vec<String> {
    let marker = format!("-{pid}-");
    [Path::new(NETNS_DIR).to_owned(), std::env::temp_dir()]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|entries| entries.flatten())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.contains(&marker) && !name.starts_with("lab-shell-"))
        .collect()
}

/// Whether `pid` is still a process (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
}

/// Whether `program` (from Debian's `package`) is installed: a test needing
/// one that is missing skips, unless CIRCUS_REQUIRE_NETNS=1 (`.ci/run`
/// installs them).
fn tool_available(test: &str, program: &str, package: &str) -> bool {
    let found = Command::new(program).arg("-V").output().is_ok();
    if !found {
        let reason = format!("{program} not found (apt-get install {package})");
        assert!(
            std::env::var("CIRCUS_REQUIRE_NETNS").as_deref() != Ok("1"),
            "{test}: {reason}"
        );
        eprintln!("skipping {test}: {reason}");
    }
    found
}

#[test]
fn ping_reaches_the_server_through_circus_and_nothing_is_left() {
    let test = "ping_reaches_the_server_through_circus_and_nothing_is_left";
    if !netns_available_for_test(test) || !tool_available(test, "ping", "iputils-ping") {
        return;
    }
    let scenario = TempFile::new("ping.toml", SCENARIO);
    let server = SERVER_ADDRESS.to_string();
    let (output, pid) = shell(
        &scenario.0,
        &["--once", "--", "ping", "-c", "3", "-W", "1", &server],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{:?}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("3 packets transmitted"), "{stdout}");
    assert!(
        stderr.contains(&format!("the server is {server}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("[pass 1, 0.2s] wifi0 blackhole for 300ms"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[pass 1, 0.5s] wifi0 blackhole ends"),
        "{stderr}"
    );
    assert!(stderr.contains("timeline over"), "{stderr}");
    assert!(!stderr.contains("[pass 2,"), "--once plays once: {stderr}");
    assert_eq!(left_behind(pid), Vec::<String>::new());
}

#[test]
fn the_command_status_is_the_lab_status_and_its_processes_go_with_it() {
    let test = "the_command_status_is_the_lab_status_and_its_processes_go_with_it";
    if !netns_available_for_test(test) {
        return;
    }
    let scenario = TempFile::new("status.toml", SCENARIO);
    let pid_file = TempFile::new("status.pid", "");
    // A background process the command leaves behind, and a timeline that
    // loops meanwhile (one-second passes).
    let script = format!(
        "sleep 300 & echo $! > {}; sleep 2.3; exit 3",
        pid_file.0.display()
    );
    let started = Instant::now();
    let (output, pid) = shell(&scenario.0, &["--", "sh", "-c", &script]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "{stderr}");
    assert!(
        stderr.contains("[pass 2, 0.0s] the links are back as they start"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[pass 3, 0.2s] wifi0 blackhole for 300ms"),
        "{stderr}"
    );
    let orphan: u32 = std::fs::read_to_string(&pid_file.0)
        .unwrap()
        .trim()
        .parse()
        .expect("the command wrote its background pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(orphan) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(orphan),
        "the command's background sleep {orphan} survived"
    );
    assert_eq!(left_behind(pid), Vec::<String>::new());
}

#[test]
fn a_missing_scenario_is_named() {
    let missing = std::env::temp_dir().join("lab-shell-no-such-scenario.toml");
    let (output, _) = shell(&missing, &["--", "true"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: cannot read the scenario", missing.display())),
        "{stderr}"
    );
}

#[test]
fn under_a_terminal_the_command_is_its_foreground_group() {
    let test = "under_a_terminal_the_command_is_its_foreground_group";
    // `script` gives the lab a terminal of its own.
    if !netns_available_for_test(test) || !tool_available(test, "script", "bsdutils") {
        return;
    }
    let scenario = TempFile::new("terminal.toml", SCENARIO);
    // Fields 5 and 8 of /proc/PID/stat: the process group and the
    // terminal's foreground group. Ctrl-C signals the foreground group.
    let check = "read -r _ _ _ _ group _ _ foreground _ < /proc/$$/stat; \
                 test \"$group\" = \"$foreground\"";
    let lab = format!(
        "{} shell {} --once -- sh -c {}",
        env!("CARGO_BIN_EXE_circus-lab"),
        scenario.0.display(),
        shlex::try_quote(check).unwrap()
    );
    let mut script = Command::new("script")
        .args(["-qec", &lab, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script starts");
    // Held open until the end: at end of input `script` may stop early.
    let input = script.stdin.take();
    let status = script.wait().unwrap();
    drop(input);
    let mut said = String::new();
    std::io::Read::read_to_string(&mut script.stdout.take().unwrap(), &mut said).unwrap();
    assert!(status.success(), "{status:?}: {said}");
}
