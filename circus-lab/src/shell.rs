//! `circus-lab shell`: the user's own programs on the scenario's links, as
//! Mahimahi's `mm-link` gives a shell behind an emulated link.
//!
//! One topology with the scenario's links and one system on them
//! ([`with_system`], which also takes it all down at the end). The
//! scenario's timeline plays on a thread, again and again or once, and says
//! on stderr which event is in effect; meanwhile the user's shell, or the
//! one command given, runs in the client namespace, attached to the lab's
//! terminal ([`LabProcess::start_attached`]). No lab traffic runs: the
//! user's programs are the traffic. When the shell or command ends, so
//! does everything else, and the lab exits with its status.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::runner::{Emulation, RunError, TimelinePlayer, with_system};
use crate::scenario::{Scenario, TimelineStep};
use crate::systems::{System, TrafficPlan};
use crate::topology::addressing::SERVER_ADDRESS;
use crate::topology::process::{Finished, LabProcess};
use crate::topology::{Role, Topology};

/// The environment variable holding the server's address in the shell.
pub const SERVER_ENV: &str = "CIRCUS_SERVER";

/// How often the shell's end and the timeline's stop are looked at.
const POLL: Duration = Duration::from_millis(50);

/// What `circus-lab shell` runs.
#[derive(Clone, Debug)]
pub struct ShellConfig {
    /// The system the client's traffic goes through: built in or a system
    /// file (resolved as a scenario's `systems` entries are).
    pub system: System,
    /// Play the timeline once (the links then stay as it leaves them)
    /// instead of looping it.
    pub once: bool,
    /// The command and its arguments; empty for an interactive shell.
    pub command: Vec<String>,
}

/// Why the shell could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("shell in the client namespace: {0}")]
    Process(io::Error),
    #[error("command {0:?}: arguments cannot hold a NUL byte")]
    Quote(String),
    #[error("the timeline thread panicked")]
    TimelinePanicked,
}

/// Runs `config`'s shell or command in the client namespace of a fresh
/// topology with `scenario`'s links and `config.system` on them, while the
/// timeline plays; returns the exit status to exit with (a shell's
/// convention: 128 + the signal that ended it).
pub fn run(scenario: &Scenario, config: &ShellConfig) -> Result<i32, ShellError> {
    let line = command_line(&config.command)?;
    eprintln!(
        "circus-lab: building {} ({} links) with {}",
        scenario.name,
        scenario.links.len(),
        config.system
    );
    with_system(
        scenario,
        config.system.adapter(0, None),
        &ProgressBar::hidden(),
        None,
        |topology, emulation, plan| {
            announce(topology, config.system.name(), plan);
            // `with_system` speaks `RunError`: the shell's own errors come
            // out once everything is down.
            Ok(attend(scenario, config.once, topology, emulation, &line))
        },
    )?
}

/// The `sh -c` line: the command's words quoted, or the user's `$SHELL`
/// (else `sh`). `exec`, so the process the lab waits for and signals is
/// the user's program itself.
fn command_line(command: &[String]) -> Result<String, ShellError> {
    let words: Vec<String> = if command.is_empty() {
        vec![std::env::var("SHELL").unwrap_or_else(|_| "sh".to_owned())]
    } else {
        command.to_vec()
    };
    shlex::try_join(words.iter().map(String::as_str))
        .map(|quoted| format!("exec {quoted}"))
        .map_err(|_| ShellError::Quote(words.join(" ")))
}

/// Tells the user where they are and where the server is.
fn announce(topology: &Topology, system: &str, plan: &TrafficPlan) {
    eprintln!(
        "circus-lab: shell in namespace {} through {system}; the server is {SERVER_ADDRESS} \
         (${SERVER_ENV}), in namespace {}",
        topology.netns(Role::Client).name(),
        topology.netns(Role::Server).name(),
    );
    if *plan != TrafficPlan::routed() {
        eprintln!(
            "circus-lab: note: {system} pins the lab's own sockets to links or makes them \
             MPTCP; programs here follow the client's routes"
        );
    }
}

/// Starts the shell and the timeline, and waits for the shell's end.
fn attend(
    scenario: &Scenario,
    once: bool,
    topology: &Topology,
    emulation: &Emulation,
    line: &str,
) -> Result<i32, ShellError> {
    let server = SERVER_ADDRESS.to_string();
    let mut process = LabProcess::start_attached(
        topology.netns(Role::Client),
        "shell",
        line,
        &[(SERVER_ENV, &server)],
    )
    .map_err(ShellError::Process)?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut playing = Some(scope.spawn(|| play(scenario, once, topology, emulation, &stop)));
        let ended = watch(&mut process, &mut playing);
        // On every way out, or the scope would wait for a looping timeline.
        stop.store(true, Ordering::Relaxed);
        let played = playing.map_or(Ok(()), join_timeline);
        let finished = ended?;
        played?;
        Ok(exit_status(&finished))
    })
}

/// Waits for the shell to end; if the timeline fails meanwhile (the links
/// would be left half changed), stops the shell and returns that error.
fn watch(
    process: &mut LabProcess,
    playing: &mut Option<ScopedJoinHandle<'_, Result<(), RunError>>>,
) -> Result<Finished, ShellError> {
    loop {
        if let Some(finished) = process.wait_for(POLL).map_err(ShellError::Process)? {
            return Ok(finished);
        }
        if playing.as_ref().is_some_and(ScopedJoinHandle::is_finished)
            && let Some(Err(e)) = playing.take().map(join_timeline)
        {
            // The caller drops the process, which kills its group.
            eprintln!("circus-lab: {e}; stopping the shell");
            return Err(e);
        }
    }
}

fn join_timeline(playing: ScopedJoinHandle<'_, Result<(), RunError>>) -> Result<(), ShellError> {
    match playing.join() {
        Ok(played) => Ok(played?),
        Err(_) => Err(ShellError::TimelinePanicked),
    }
}

/// The status a shell would give: the exit code, or 128 + the signal.
fn exit_status(finished: &Finished) -> i32 {
    match (finished.exit_code, finished.signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// Plays the timeline from now, once or again from its start every
/// scenario duration, until `stop`; says each step on stderr.
fn play(
    scenario: &Scenario,
    once: bool,
    topology: &Topology,
    emulation: &Emulation,
    stop: &AtomicBool,
) -> Result<(), RunError> {
    let steps = scenario.timeline();
    if steps.is_empty() {
        eprintln!("circus-lab: no events: the links stay as they start");
        return Ok(());
    }
    let mut player = TimelinePlayer::new(topology);
    let mut start = Instant::now();
    for pass in 1u64.. {
        if pass > 1 {
            player.restart(&steps, scenario, topology, emulation)?;
            eprintln!("circus-lab: [pass {pass}, 0.0s] the links are back as they start");
        }
        for step in &steps {
            if !sleep_until(start + step.at, stop) {
                return Ok(());
            }
            eprintln!(
                "circus-lab: [pass {pass}, {:.1}s] {}",
                step.at.as_secs_f64(),
                describe(step, scenario)
            );
            player.apply(step, scenario, topology, emulation)?;
        }
        if once {
            eprintln!("circus-lab: timeline over; the links stay as they are");
            return Ok(());
        }
        start += scenario.duration;
        if !sleep_until(start, stop) {
            return Ok(());
        }
    }
    Ok(())
}

/// What a step does in words: "wifi0 blackhole for 2s" when it starts its
/// event, "wifi0 blackhole ends" when it ends it.
fn describe(step: &TimelineStep, scenario: &Scenario) -> String {
    let Some(event) = scenario.events.get(step.event_index) else {
        return format!("link {} changes", step.link_index);
    };
    let what = format!("{} {}", event.link, event.action.name());
    match event.duration {
        _ if step.at != event.at => format!("{what} ends"),
        Some(lasting) => format!("{what} for {lasting:?}"),
        None => what,
    }
}

/// Sleeps until `deadline`; false if `stop` was set first.
fn sleep_until(deadline: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(POLL));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;

    fn words(line: &str) -> Vec<String> {
        let quoted = line.strip_prefix("exec ").expect("an exec line");
        shlex::split(quoted).expect("a line sh can split")
    }

    #[test]
    fn a_command_keeps_its_words_through_the_shell_line() {
        let command = ["printf", "%s\n", "it's", "a b", "$HOME", "*"].map(String::from);
        let line = command_line(&command).unwrap();
        assert_eq!(words(&line), command);
        // Nothing in it is expanded by the shell.
        assert!(line.contains("'$HOME'") && line.contains("'*'"), "{line}");
    }

    #[test]
    fn no_command_is_the_users_shell() {
        let expected = std::env::var("SHELL").unwrap_or_else(|_| "sh".to_owned());
        assert_eq!(words(&command_line(&[]).unwrap()), [expected]);
    }

    #[test]
    fn a_nul_byte_is_an_error_naming_the_command() {
        let error = command_line(&["echo".into(), "a\0b".into()]).unwrap_err();
        assert!(error.to_string().contains("NUL"), "{error}");
    }

    proptest! {
        #[test]
        fn any_words_without_nul_survive_quoting(
            command in prop::collection::vec("[^\u{0}]{0,12}", 1..6)
        ) {
            let line = command_line(&command).unwrap();
            prop_assert_eq!(words(&line), command);
        }
    }

    #[test]
    fn steps_say_which_event_starts_and_ends() {
        let scenario = Scenario::from_toml(
            r#"
            name = "describe"
            seed = 1
            systems = ["circus"]
            duration = "10s"
            [[link]]
            name = "wifi0"
            delay = "5ms"
            [[event]]
            at = "1s"
            link = "wifi0"
            action = "down"
            for = "1500ms"
            [[event]]
            at = "4s"
            link = "wifi0"
            action = "blackhole"
            "#,
            Path::new("describe.toml"),
        )
        .unwrap();
        let said: Vec<String> = scenario
            .timeline()
            .iter()
            .map(|step| describe(step, &scenario))
            .collect();
        assert_eq!(
            said,
            ["wifi0 down for 1.5s", "wifi0 down ends", "wifi0 blackhole"]
        );
    }

    #[test]
    fn a_signal_is_reported_as_a_shell_would() {
        let finished = |exit_code, signal| Finished {
            label: "shell".into(),
            exit_code,
            signal,
            wall: Duration::ZERO,
            killed_by_lab: false,
            stdout: "/dev/stdout".into(),
            stderr: "/dev/stderr".into(),
        };
        assert_eq!(exit_status(&finished(Some(3), None)), 3);
        assert_eq!(exit_status(&finished(None, Some(9))), 137);
    }
}
