//! Runs the user's own commands (`[[traffic.command]]`) during one system's
//! run: services before time zero, each job at its time, all of them in
//! their namespace as the lab's children ([`LabProcess`]), with their output
//! in the report folder. At the end of the drain whatever still runs is
//! stopped and said to be, so a hang shows in the report rather than
//! holding the run.
//!
//! The values filled into their shell lines are found, not assumed: the
//! client's address is the source address its routes pick towards the
//! server once the system is set up (the tunnel address for circus, the
//! preferred link's for routed systems), so any system's routes give the
//! right one.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::RunError;
use crate::metrics::{CommandReport, round};
use crate::scenario::command::{TEMPLATE_ENV, TEMPLATE_VALUES};
use crate::scenario::{CommandRole, CommandSpec, CommandStart, Scenario};
use crate::topology::addressing::SERVER_ADDRESS;
use crate::topology::process::{Finished, LabProcess};
use crate::topology::{Netns, Role, Topology};
use crate::traffic::MonoNanos;

/// How often running commands are looked at: their wall time is exact to
/// about this.
const POLL: Duration = Duration::from_millis(10);

/// What a command still running at the end gets between SIGTERM and
/// SIGKILL: enough for a server to close its sockets.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// Where one system's run puts its commands' output: `<report>/commands/<run>/`.
#[derive(Clone, Debug)]
pub struct CommandOutput {
    /// The report folder; reports name files relative to it.
    pub report_dir: PathBuf,
    /// The run's folder name: the system, or `single-link-<link>` for the
    /// runs over each link alone.
    pub run: String,
}

impl CommandOutput {
    fn dir(&self) -> PathBuf {
        self.report_dir.join("commands").join(&self.run)
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.report_dir)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// The commands of one system's run while they run.
pub struct RunningCommands {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<Vec<CommandReport>>>>,
}

/// Starts the scenario's services now (before `origin`, the scenario's
/// time zero) and a thread that starts each job at its time; `None` when
/// the scenario has no commands.
pub fn start(
    scenario: &Scenario,
    topology: &Topology,
    origin: MonoNanos,
    output: &CommandOutput,
) -> Result<Option<RunningCommands>, RunError> {
    if scenario.commands.is_empty() {
        return Ok(None);
    }
    let failed = |what: &str| {
        let what = what.to_owned();
        move |source| RunError::Commands { what, source }
    };
    let logs = output.dir();
    std::fs::create_dir_all(&logs).map_err(failed(&logs.display().to_string()))?;
    let scratch = topology.run_dir().join("commands");
    std::fs::create_dir_all(&scratch).map_err(failed(&scratch.display().to_string()))?;
    let client = client_address(topology).map_err(failed("the client's address"))?;
    let values = [
        SERVER_ADDRESS.to_string(),
        client.to_string(),
        scratch.display().to_string(),
    ];
    let mut schedule = Schedule {
        commands: scenario.commands.clone(),
        origin,
        output: output.clone(),
        logs,
        values,
        client: topology.netns(Role::Client).clone(),
        server: topology.netns(Role::Server).clone(),
        running: Vec::new(),
        ended: Vec::new(),
    };
    for (index, spec) in scenario.commands.iter().enumerate() {
        if spec.is_service() {
            schedule
                .launch(index)
                .map_err(failed(&format!("starting {}", spec.name)))?;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("commands".into())
            .spawn(move || schedule.run(&stop))
            .map_err(failed("the commands thread"))?
    };
    Ok(Some(RunningCommands {
        stop,
        thread: Some(thread),
    }))
}

impl RunningCommands {
    /// Stops whatever still runs and returns how each command ended, in
    /// the scenario's order.
    pub fn finish(mut self) -> Result<Vec<CommandReport>, RunError> {
        self.stop.store(true, Ordering::Relaxed);
        let io = |source| RunError::Commands {
            what: "running them".into(),
            source,
        };
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(reports)) => reports.map_err(io),
            Some(Err(_)) => Err(io(io::Error::other("the commands thread panicked"))),
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for RunningCommands {
    /// On an early return of the run: the thread stops, and its processes
    /// with it.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The commands' state, owned by their thread.
struct Schedule {
    commands: Vec<CommandSpec>,
    origin: MonoNanos,
    output: CommandOutput,
    logs: PathBuf,
    /// In [`TEMPLATE_VALUES`] order.
    values: [String; TEMPLATE_VALUES.len()],
    client: Netns,
    server: Netns,
    /// (index in `commands`, start in scenario seconds, process).
    running: Vec<(usize, f64, LabProcess)>,
    ended: Vec<(usize, CommandReport)>,
}

impl Schedule {
    /// Starts jobs when due and notes ends until `stop`; then stops what
    /// still runs.
    fn run(mut self, stop: &AtomicBool) -> io::Result<Vec<CommandReport>> {
        let mut jobs: Vec<(Duration, usize)> = self
            .commands
            .iter()
            .enumerate()
            .filter_map(|(index, spec)| match spec.start {
                CommandStart::At(at) => Some((at, index)),
                CommandStart::Service => None,
            })
            .collect();
        jobs.sort();
        let mut jobs = jobs.into_iter().peekable();
        while !stop.load(Ordering::Relaxed) {
            while let Some((_, index)) =
                jobs.next_if(|&(at, _)| MonoNanos::now() >= self.origin + at)
            {
                self.launch(index)?;
            }
            self.note_ends()?;
            std::thread::sleep(POLL);
        }
        self.note_ends()?;
        for (index, at_s, process) in std::mem::take(&mut self.running) {
            let finished = process.stop(STOP_GRACE)?;
            self.end(index, at_s, &finished);
        }
        self.ended.sort_by_key(|(index, _)| *index);
        Ok(self.ended.into_iter().map(|(_, report)| report).collect())
    }

    fn launch(&mut self, index: usize) -> io::Result<()> {
        let spec = &self.commands[index];
        let values = self.values.each_ref().map(String::as_str);
        let env: Vec<(&str, &str)> = TEMPLATE_ENV.into_iter().zip(values).collect();
        let netns = match spec.role {
            CommandRole::Client => &self.client,
            CommandRole::Server => &self.server,
        };
        let now = MonoNanos::now();
        let process =
            LabProcess::start(netns, &spec.name, &spec.render(&values), &env, &self.logs)?;
        let at_s = (now.0 as f64 - self.origin.0 as f64) / 1e9;
        self.running.push((index, at_s, process));
        Ok(())
    }

    /// Moves the commands that have ended from `running` to `ended`.
    fn note_ends(&mut self) -> io::Result<()> {
        for (index, at_s, mut process) in std::mem::take(&mut self.running) {
            match process.poll()? {
                Some(finished) => self.end(index, at_s, &finished),
                None => self.running.push((index, at_s, process)),
            }
        }
        Ok(())
    }

    fn end(&mut self, index: usize, at_s: f64, finished: &Finished) {
        let spec = &self.commands[index];
        let report = CommandReport {
            name: spec.name.clone(),
            role: spec.role,
            service: spec.is_service(),
            at_s: round(at_s, 3),
            exit_code: finished.exit_code,
            signal: finished.signal,
            wall_s: round(finished.wall.as_secs_f64(), 3),
            completed: finished.succeeded(),
            still_running_at_end: finished.killed_by_lab,
            stdout: self.output.relative(&finished.stdout),
            stderr: self.output.relative(&finished.stderr),
        };
        self.ended.push((index, report));
    }
}

/// The source address the client's routes pick towards the server: a
/// connected UDP socket sends nothing, but the kernel chooses its source.
fn client_address(topology: &Topology) -> io::Result<IpAddr> {
    topology
        .netns(Role::Client)
        .run(|| {
            let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
            socket.connect(SocketAddr::from((SERVER_ADDRESS, 9)))?;
            Ok(socket.local_addr()?.ip())
        })
        .map_err(io::Error::other)?
}
