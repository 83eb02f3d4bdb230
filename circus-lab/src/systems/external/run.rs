//! Running an external system: setup commands, then the gateway's and the
//! client's processes, the ready check polled until it succeeds, and the
//! route that sends the client's traffic into the system. Every command is a
//! [`LabProcess`] in its namespace, so nothing it starts outlives the run
//! (see [`crate::topology::process`]), and its output stays in files: the
//! report's `logs/<system>/` when the run has a report folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use blake2::{Blake2s256, Digest};

use super::template::{Context, Values};
use super::{ExternalSystem, Namespace, RouteSpec};
use crate::scenario::Scenario;
use crate::systems::{SystemError, SystemUnderTest, TrafficPlan};
use crate::topology::addressing::{SERVER_SUBNET, SUBNET_PREFIX_LEN};
use crate::topology::process::{Finished, LabProcess, run_to_end};
use crate::topology::{Netns, NextHop, Role, Topology};

/// The longest a setup, route or stop command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);
/// How long the processes get between SIGTERM and SIGKILL at the end.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Between two tries of the ready check.
const READY_POLL: Duration = Duration::from_millis(100);

/// The adapter of one external system.
pub struct External {
    system: Arc<ExternalSystem>,
    best_link: usize,
    /// Where the logs go (`<report>/logs`); `None`: the topology's run
    /// directory, removed with it.
    log_root: Option<PathBuf>,
    running: Option<Running>,
}

/// One run of the system: what `start` set up, for the checks and `stop`.
struct Running {
    system: Arc<ExternalSystem>,
    values: Values,
    log_dir: PathBuf,
    client: Netns,
    gateway: Netns,
    /// Dropping them kills their process groups, on every way out.
    processes: Vec<LabProcess>,
}

impl External {
    pub fn new(system: Arc<ExternalSystem>, best_link: usize, log_root: Option<&Path>) -> External {
        External {
            system,
            best_link,
            log_root: log_root.map(Path::to_owned),
            running: None,
        }
    }

    /// The run's directories and template values.
    fn prepare(&self, topology: &Topology, scenario: &Scenario) -> Result<Running, SystemError> {
        let name = &self.system.name;
        let dir = topology.run_dir().join(name);
        let log_dir = match &self.log_root {
            Some(root) => root.join(name),
            None => topology.run_dir().join("logs").join(name),
        };
        for folder in [&dir, &log_dir] {
            std::fs::create_dir_all(folder).map_err(|source| SystemError::Io {
                system: "external system",
                what: format!("{name}: create {}", folder.display()),
                source,
            })?;
        }
        let id = run_id(&topology.prefix().files());
        let circus_node =
            crate::soak::default_node().unwrap_or_else(|_| PathBuf::from("circus-node"));
        let link_names: Vec<String> = scenario.links.iter().map(|l| l.name.clone()).collect();
        let values = Values::new(&Context {
            links: topology.links(),
            link_names: &link_names,
            best_link: self.best_link,
            dir: &dir,
            id: &id,
            circus_node: &circus_node,
        });
        Ok(Running {
            system: self.system.clone(),
            values,
            log_dir,
            client: topology.netns(Role::Client).clone(),
            gateway: topology.netns(Role::Gateway).clone(),
            processes: Vec::new(),
        })
    }
}

impl Running {
    fn failed(&self, message: String) -> SystemError {
        SystemError::External {
            system: self.system.name.clone(),
            message,
        }
    }

    fn netns(&self, namespace: Namespace) -> &Netns {
        match namespace {
            Namespace::Client => &self.client,
            Namespace::Gateway => &self.gateway,
        }
    }

    fn expand(&self, command: &str) -> Result<String, SystemError> {
        self.values
            .expand(command)
            .map_err(|e| self.failed(format!("`{command}`: {e}")))
    }

    /// Runs `command` to its end (at most `limit`) and says how it ended.
    fn run_once(
        &self,
        namespace: Namespace,
        label: &str,
        command: &str,
        limit: Duration,
    ) -> Result<Finished, SystemError> {
        let line = self.expand(command)?;
        run_to_end(
            self.netns(namespace),
            label,
            &line,
            &[],
            &self.log_dir,
            limit,
        )
        .map_err(|e| self.failed(format!("{label}: {e}")))
    }

    /// Runs `command` to its end; an error unless it exits 0.
    fn must_succeed(
        &self,
        namespace: Namespace,
        label: &str,
        command: &str,
    ) -> Result<(), SystemError> {
        let finished = self.run_once(namespace, label, command, COMMAND_LIMIT)?;
        if finished.succeeded() {
            return Ok(());
        }
        Err(self.failed(format!(
            "{label} `{command}`: {}; see {}",
            finished.describe(),
            finished.stderr.display()
        )))
    }

    fn setup(&self) -> Result<(), SystemError> {
        for (index, command) in self.system.setup.iter().enumerate() {
            self.must_succeed(Namespace::Client, &format!("setup-{index}"), command)?;
        }
        Ok(())
    }

    /// Starts the gateway's processes, then the client's.
    fn start_processes(&mut self) -> Result<(), SystemError> {
        let system = self.system.clone();
        let sides = [
            (Namespace::Gateway, "gateway", &system.gateway),
            (Namespace::Client, "client", &system.client),
        ];
        for (namespace, word, side) in sides {
            for (index, command) in side.start.iter().enumerate() {
                let label = format!("{word}-{index}");
                let line = self.expand(command)?;
                let process =
                    LabProcess::start(self.netns(namespace), &label, &line, &[], &self.log_dir)
                        .map_err(|e| self.failed(format!("{label}: {e}")))?;
                self.processes.push(process);
            }
        }
        Ok(())
    }

    /// Polls the ready check until it succeeds; fails early when one of the
    /// processes has ended with an error.
    fn wait_until_ready(&mut self) -> Result<(), SystemError> {
        let ready = self.system.ready.clone();
        let deadline = Instant::now() + ready.timeout;
        loop {
            self.check_processes()?;
            let left = deadline.saturating_duration_since(Instant::now());
            let check = self.run_once(ready.namespace, "ready", &ready.command, left)?;
            if check.succeeded() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.failed(format!(
                    "not ready after {:?}: `{}` still fails ({}); see {}",
                    ready.timeout,
                    ready.command,
                    check.describe(),
                    check.stderr.display()
                )));
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// An error if a process ended with an error (one that exits 0, such
    /// as a configuration script, has simply done its work).
    fn check_processes(&mut self) -> Result<(), SystemError> {
        let mut ended = None;
        for process in &mut self.processes {
            match process.poll() {
                Ok(Some(finished)) if !finished.succeeded() => ended = Some(Ok(finished)),
                Ok(_) => {}
                Err(e) => ended = Some(Err(e)),
            }
        }
        match ended {
            None => Ok(()),
            Some(Err(e)) => Err(self.failed(e.to_string())),
            Some(Ok(finished)) => Err(self.failed(format!(
                "{} ended before the system was ready: {}; see {}",
                finished.label,
                finished.describe(),
                finished.stderr.display()
            ))),
        }
    }

    fn route(&self, topology: &Topology) -> Result<(), SystemError> {
        match &self.system.route {
            RouteSpec::ViaDevice(device) => {
                let device = NextHop::Device(self.expand(device)?);
                topology.route_client(SERVER_SUBNET, SUBNET_PREFIX_LEN, device, 10)?;
                Ok(())
            }
            RouteSpec::Command(command) => self.must_succeed(Namespace::Client, "route", command),
        }
    }

    /// Runs the stop commands, then ends every process; the first error.
    fn stop(mut self) -> Result<(), SystemError> {
        let mut first_error = None;
        let system = self.system.clone();
        let sides = [
            (Namespace::Client, "client", &system.client),
            (Namespace::Gateway, "gateway", &system.gateway),
        ];
        for (namespace, word, side) in sides {
            for (index, command) in side.stop.iter().enumerate() {
                let label = format!("{word}-stop-{index}");
                if let Err(e) = self.must_succeed(namespace, &label, command) {
                    first_error.get_or_insert(e);
                }
            }
        }
        for process in std::mem::take(&mut self.processes) {
            if let Err(e) = process.stop(STOP_GRACE) {
                first_error.get_or_insert(self.failed(e.to_string()));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl SystemUnderTest for External {
    fn start(
        &mut self,
        topology: &Topology,
        scenario: &Scenario,
    ) -> Result<TrafficPlan, SystemError> {
        let running = self.prepare(topology, scenario)?;
        running.setup()?;
        // Kept in `self` from here, so `stop` (or the drop) ends whatever
        // did start, even when a later step fails.
        let running = self.running.insert(running);
        running.start_processes()?;
        running.wait_until_ready()?;
        running.route(topology)?;
        Ok(TrafficPlan::routed())
    }

    fn stop(&mut self) -> Result<(), SystemError> {
        self.running.take().map_or(Ok(()), Running::stop)
    }
}

/// Six hex digits from the topology's name: short enough for interface
/// names (at most 15 bytes), distinct between runs.
fn run_id(prefix: &str) -> String {
    let digest = Blake2s256::digest(prefix.as_bytes());
    digest[..3].iter().map(|b| format!("{b:02x}")).collect()
}
