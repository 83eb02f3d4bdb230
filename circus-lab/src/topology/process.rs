//! Processes the lab starts inside its namespaces: external systems'
//! daemons, the user's own traffic commands, ready checks.
//!
//! A process must never outlive the run that started it, whatever way the
//! run ends:
//! - normal end, errors and panics: [`LabProcess::stop`] or its drop kills
//!   the process group;
//! - SIGINT/SIGTERM/SIGHUP: the cleanup signal handler kills every
//!   registered process group ([`super::cleanup`]);
//! - SIGKILL of the lab: the direct child gets SIGKILL from the kernel
//!   (`PR_SET_PDEATHSIG`), and whatever it forked is still inside a lab
//!   namespace, where the next start's sweep finds and kills it before
//!   removing the namespace ([`kill_processes_in`]).
//!
//! Commands are shell lines (`sh -c`), so users can write redirections and
//! pipes as they would in a terminal. Output goes to files, never to the
//! lab's terminal, where it would tear the progress bar; the one exception
//! is a process the user works in (`circus-lab shell`), started with
//! [`LabProcess::start_attached`]: it gets the lab's standard streams and,
//! if the lab has it, the terminal's foreground, so Ctrl-C and Ctrl-Z go to
//! it rather than to the lab (whose SIGINT handler would tear the lab down).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, killpg, sigaction};
use nix::unistd::{Pid, getpgrp, isatty, tcgetpgrp, tcsetpgrp};

use super::cleanup::{ProcessGroupSlot, register_process_group};
use super::netns::Netns;

/// How often waiting loops look at a child.
const POLL: Duration = Duration::from_millis(10);

/// A shell command started in a namespace, with its output in two files.
#[derive(Debug)]
pub struct LabProcess {
    label: String,
    child: Child,
    started: Instant,
    stdout: PathBuf,
    stderr: PathBuf,
    /// Keeps the group registered with the signal handler while it runs.
    group: Option<ProcessGroupSlot>,
    /// The terminal lent to an attached process, taken back on drop.
    terminal: Option<LentTerminal>,
}

/// How a process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub label: String,
    /// The exit code, `None` when a signal ended it.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// From start to exit (or to the lab's kill).
    pub wall: Duration,
    /// Whether the lab had to end it (still running at its stop).
    pub killed_by_lab: bool,
    /// Where its output went: its log files, or `/dev/stdout` and
    /// `/dev/stderr` (the lab's own) for an attached process.
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Finished {
    /// Exited by itself with status 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.killed_by_lab
    }

    /// "exit 0", "exit 3", "killed by signal 9", and "(stopped by the lab)"
    /// when the lab ended it.
    pub fn describe(&self) -> String {
        let how = match (self.exit_code, self.signal) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "unknown end".to_owned(),
        };
        if self.killed_by_lab {
            format!("{how} (still running at the end, stopped by the lab)")
        } else {
            how
        }
    }
}

impl LabProcess {
    /// Starts `sh -c command` inside `netns`, in its own process group,
    /// with stdin closed and stdout/stderr in `<log_dir>/<label>.stdout` and
    /// `.stderr`. `env` is added to the lab's environment.
    pub fn start(
        netns: &Netns,
        label: &str,
        command: &str,
        env: &[(&str, &str)],
        log_dir: &Path,
    ) -> io::Result<LabProcess> {
        let stdout = log_dir.join(format!("{label}.stdout"));
        let stderr = log_dir.join(format!("{label}.stderr"));
        let with_path = |path: &Path| {
            let path = path.to_owned();
            move |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        };
        let out = File::create(&stdout).map_err(with_path(&stdout))?;
        let err = File::create(&stderr).map_err(with_path(&stderr))?;
        let mut shell = Command::new("sh");
        shell.stdin(Stdio::null()).stdout(out).stderr(err);
        Self::spawn(netns, label, command, env, shell, (stdout, stderr), None)
    }

    /// Starts `sh -c command` inside `netns` like [`LabProcess::start`], but
    /// with the lab's stdin, stdout and stderr, for a user to work in. If
    /// the lab is the terminal's foreground process group, the process's
    /// group becomes it until the process is dropped: keys such as Ctrl-C
    /// signal the process, not the lab.
    pub fn start_attached(
        netns: &Netns,
        label: &str,
        command: &str,
        env: &[(&str, &str)],
    ) -> io::Result<LabProcess> {
        let terminal = LentTerminal::prepare();
        let mut shell = Command::new("sh");
        shell
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        let streams = ("/dev/stdout".into(), "/dev/stderr".into());
        Self::spawn(netns, label, command, env, shell, streams, terminal)
    }

    /// Starts `shell` (`sh` with its streams set) on `command` in `netns`,
    /// in its own process group, which becomes the terminal's foreground
    /// group when `terminal` is lent to it.
    fn spawn(
        netns: &Netns,
        label: &str,
        command: &str,
        env: &[(&str, &str)],
        mut shell: Command,
        (stdout, stderr): (PathBuf, PathBuf),
        terminal: Option<LentTerminal>,
    ) -> io::Result<LabProcess> {
        let namespace = netns.open().map_err(io::Error::other)?;
        let namespace_fd = namespace.as_raw_fd();
        let take_terminal = terminal.is_some();
        shell.arg("-c").arg(command).envs(env.iter().copied());
        // SAFETY: between fork and exec only raw system calls run (setns,
        // setpgid, prctl, getppid, tcsetpgrp, signal): no allocation and no
        // locks.
        unsafe {
            shell.pre_exec(move || {
                if libc::setns(namespace_fd, libc::CLONE_NEWNET) != 0
                    || libc::setpgid(0, 0) != 0
                    || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // The lab died between fork and prctl: nobody would kill us.
                if libc::getppid() == 1 {
                    return Err(io::Error::other("the lab exited"));
                }
                // The lab ignores SIGTTOU while it lends the terminal, so
                // this background group may take the foreground; the
                // process itself gets the default back (ignoring survives
                // exec), as a shell gives its jobs.
                if take_terminal
                    && (libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid()) != 0
                        || libc::signal(libc::SIGTTOU, libc::SIG_DFL) == libc::SIG_ERR)
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = shell
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{label}: start `{command}`: {e}")))?;
        let group = register_process_group(child.id());
        Ok(LabProcess {
            label: label.to_owned(),
            child,
            started: Instant::now(),
            stdout,
            stderr,
            group,
            terminal,
        })
    }

    /// How it ended, if it has; never blocks.
    pub fn poll(&mut self) -> io::Result<Option<Finished>> {
        Ok(self
            .child
            .try_wait()?
            .map(|status| self.finished(status, false)))
    }

    /// Waits until it ends or `limit` passes; `None` if it still runs.
    pub fn wait_for(&mut self, limit: Duration) -> io::Result<Option<Finished>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(finished) = self.poll()? {
                return Ok(Some(finished));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Ends the process group: SIGTERM, then SIGKILL after `grace`. Returns
    /// how the process ended (`killed_by_lab` if it was still running).
    pub fn stop(mut self, grace: Duration) -> io::Result<Finished> {
        if let Some(finished) = self.poll()? {
            self.kill_group(Signal::SIGKILL);
            return Ok(finished);
        }
        let stopped_at = Instant::now();
        self.kill_group(Signal::SIGTERM);
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if stopped_at.elapsed() >= grace {
                self.kill_group(Signal::SIGKILL);
                break self.child.wait()?;
            }
            std::thread::sleep(POLL);
        };
        // Whatever the shell left behind in its group goes too.
        self.kill_group(Signal::SIGKILL);
        let mut finished = self.finished(status, true);
        finished.wall = stopped_at - self.started;
        Ok(finished)
    }

    fn kill_group(&self, signal: Signal) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // ESRCH: the group is already empty.
            let _ = killpg(Pid::from_raw(pid), signal);
        }
    }

    fn finished(&self, status: ExitStatus, killed_by_lab: bool) -> Finished {
        Finished {
            label: self.label.clone(),
            exit_code: status.code(),
            signal: status.signal(),
            wall: self.started.elapsed(),
            killed_by_lab,
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
        }
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        self.kill_group(Signal::SIGKILL);
        let _ = self.child.wait();
        drop(self.group.take());
        drop(self.terminal.take());
    }
}

/// The lab's terminal (on stdin) while an attached process's group is its
/// foreground group; dropping it makes the lab's group the foreground
/// again.
#[derive(Debug)]
struct LentTerminal {
    lab_group: Pid,
    /// SIGTTOU's action before the lab ignored it.
    previous_sigttou: SigAction,
}

impl LentTerminal {
    /// Ready to lend the terminal if stdin is one and the lab is its
    /// foreground group (a lab started in the background must not take
    /// it). A group outside the foreground that sets the foreground gets
    /// SIGTTOU, which stops it: the lab ignores SIGTTOU until the terminal
    /// is back (its output to stderr meanwhile is not stopped either).
    fn prepare() -> Option<LentTerminal> {
        let stdin = io::stdin();
        let lab_group = getpgrp();
        if !isatty(&stdin).unwrap_or(false) || tcgetpgrp(&stdin).ok() != Some(lab_group) {
            return None;
        }
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: installs SIG_IGN, which runs no code.
        let previous_sigttou = unsafe { sigaction(Signal::SIGTTOU, &ignore) }.ok()?;
        Some(LentTerminal {
            lab_group,
            previous_sigttou,
        })
    }
}

impl Drop for LentTerminal {
    fn drop(&mut self) {
        if let Err(e) = tcsetpgrp(io::stdin(), self.lab_group) {
            tracing::warn!("cannot take the terminal back: {e}");
        }
        // SAFETY: restores the action that was in place before `prepare`.
        let _ = unsafe { sigaction(Signal::SIGTTOU, &self.previous_sigttou) };
    }
}

/// Runs `command` in `netns` to its end, at most `limit`: a setup step or
/// a ready check.
pub fn run_to_end(
    netns: &Netns,
    label: &str,
    command: &str,
    env: &[(&str, &str)],
    log_dir: &Path,
    limit: Duration,
) -> io::Result<Finished> {
    let mut process = LabProcess::start(netns, label, command, env, log_dir)?;
    match process.wait_for(limit)? {
        Some(finished) => Ok(finished),
        None => process.stop(Duration::ZERO),
    }
}

/// Kills (SIGKILL) every process whose network namespace is the one at
/// `namespace_file`; returns how many. Processes keep a namespace alive
/// after its file is gone, so this runs before the file is removed.
pub fn kill_processes_in(namespace_file: &Path) -> usize {
    let Ok(target) = std::fs::metadata(namespace_file) else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let own = std::process::id();
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        // The lab's own threads enter namespaces too; never kill ourselves.
        if pid == own {
            continue;
        }
        let Ok(ns) = std::fs::metadata(entry.path().join("ns/net")) else {
            continue;
        };
        let inside = ns.ino() == target.ino() && ns.dev() == target.dev();
        if inside
            && let Ok(raw) = i32::try_from(pid)
            && kill(Pid::from_raw(raw), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}
