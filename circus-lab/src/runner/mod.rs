//! `circus-lab run`: one scenario, every system in turn, real namespaces.
//!
//! Each system gets a freshly built topology with the same links, the same
//! seeds and the same traffic, so their figures differ only by what the
//! system does. The steps of one system's run:
//! 1. build the topology and start the link emulation;
//! 2. let the adapter set up routes and daemons ([`crate::systems`]);
//! 3. start receivers on the server, then the probe stream and TCP flows on
//!    the client at a common time zero;
//! 4. replay the scenario's timeline onto the links;
//! 5. drain, stop, collect counters and logs, and turn them into figures.
//!
//! - [`emulation`]: the links (userspace forwarder or netem) and the timeline.
//! - [`commands`]: the user's own commands, run beside the lab's traffic.
//! - [`output`]: the report directory name and the commit id.
//! - [`pause_monitor`]: watches for the host's pauses, which the outage
//!   figures leave out.

pub mod commands;
pub mod emulation;
pub mod output;
pub mod pause_monitor;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::metrics::{CommandReport, MetricsConfig, StreamLogs, SystemLogs, TimelineEvent};
use crate::report::{BestLink, Outcome, assemble};
use crate::scenario::{Scenario, System, SystemKind};
use crate::systems::single_link::SingleLink;
use crate::systems::{PROBE_FLOWS, SystemError, SystemUnderTest, TrafficPlan, best_link, registry};
use crate::topology::addressing::SERVER_ADDRESS;
use crate::topology::{
    NetnsError, NetnsThread, RUN_TAG, Role, Topology, TopologyConfig, TopologyError,
};
use crate::traffic::probe::{
    ProbeLog, ProbeReceiver, ProbeSenderConfig, ReceiveLog, SendLog, send_probes,
};
use crate::traffic::tcp::{
    TcpBulkReceiver, TcpBulkServer, TcpFlowReport, TcpLog, TcpReceiverConfig, TcpSenderConfig,
    send_bulk,
};
use crate::traffic::udp::{UdpLoad, UdpLoadLog, UdpLoadReceiver, send_udp_load};
use crate::traffic::{DRAIN, MonoNanos, TrafficError};

pub use commands::CommandOutput;
pub use emulation::{Emulation, EmulationError, TimelinePlayer};
pub use pause_monitor::PauseMonitor;

/// UDP port of the probe receiver on the server.
pub const PROBE_PORT: u16 = 9000;
/// TCP port of the bulk-flow receiver on the server.
pub const TCP_PORT: u16 = 9001;
/// UDP port of the UDP load receiver on the server.
pub const UDP_LOAD_PORT: u16 = 9002;
/// TCP port the client connects to for download flows.
pub const TCP_DOWN_PORT: u16 = 9003;
/// UDP port of the download probe stream's flow 0 on the server; flow `i`
/// uses this + `i`.
pub const PROBE_DOWN_PORT: u16 = 9100;
/// Time between setting up a system and the scenario's time zero: lets
/// routes settle, ARP resolve and tunnels finish their handshakes.
const WARMUP: Duration = Duration::from_millis(500);

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    // Boxed: these carry netlink messages and would make every Result of
    // the runner large.
    #[error(transparent)]
    Topology(Box<TopologyError>),
    #[error(transparent)]
    Emulation(Box<EmulationError>),
    #[error(transparent)]
    System(#[from] SystemError),
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The user's commands could not be started or watched.
    #[error("commands: {what}: {source}")]
    Commands {
        what: String,
        source: std::io::Error,
    },
}

impl From<TopologyError> for RunError {
    fn from(error: TopologyError) -> Self {
        RunError::Topology(Box::new(error))
    }
}

impl From<EmulationError> for RunError {
    fn from(error: EmulationError) -> Self {
        RunError::Emulation(Box::new(error))
    }
}

/// What `circus-lab run` measured: each system's logs in the scenario's
/// order, the backend the links were emulated by, and the best-link
/// reference.
pub struct RunResults {
    pub logs: Vec<SystemLogs>,
    pub backend: &'static str,
    pub best_link: Option<BestLink>,
}

/// Runs every system of `scenario` (in its order). First, if the scenario
/// compares against the best link (single-link or mptcp among its systems,
/// or TCP flows to judge), `single-link` over each link in turn: the best
/// of those runs is the `single-link` row and the TCP reference, and mptcp's
/// primary link. `progress` shows scenario time across all runs. The
/// scenario's commands write their output under `report_dir`. With
/// `captures`, each run's links are captured into `<captures>/<run>/`
/// (`<run>` is the system, or `single-link-<link>` for the runs over one
/// link). External systems' processes log under `<report_dir>/logs`.
pub fn run_systems(
    scenario: &Scenario,
    systems: &[System],
    report_dir: &Path,
    progress: &ProgressBar,
    captures: Option<&Path>,
) -> Result<RunResults, RunError> {
    let reference_runs = if needs_best_link(scenario, systems) {
        scenario.links.len()
    } else {
        0
    };
    let other_runs = systems
        .iter()
        .filter(|&system| *system != System::BuiltIn(SystemKind::SingleLink))
        .count();
    let per_system = scenario.duration + WARMUP + DRAIN;
    progress.set_length((per_system * (reference_runs + other_runs) as u32).as_millis() as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{prefix:>16} [{bar:40}] {elapsed_precise} of ~{duration_precise} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut backend = "userspace";
    let mut run_number = 0u32;
    let mut run = |kind: System, system: Box<dyn SystemUnderTest>, label: String, run: String| {
        progress.set_prefix(label);
        progress.set_position((per_system * run_number).as_millis() as u64);
        run_number += 1;
        let captures = captures.map(|dir| dir.join(&run));
        let output = CommandOutput {
            report_dir: report_dir.to_owned(),
            run,
        };
        let (logs, used) = run_system(
            scenario,
            kind,
            system,
            run_number,
            &output,
            progress,
            captures.as_deref(),
        )?;
        backend = used;
        Ok::<_, RunError>(logs)
    };
    let mut alone = Vec::new();
    for (link, spec) in scenario.links.iter().enumerate().take(reference_runs) {
        let system = Box::new(SingleLink { link });
        alone.push(run(
            SystemKind::SingleLink.into(),
            system,
            format!("{} alone", spec.name),
            format!("single-link-{}", spec.name),
        )?);
    }
    let events: Vec<TimelineEvent> = scenario.events.iter().map(TimelineEvent::from).collect();
    let alone_metrics: Vec<_> = alone
        .iter()
        .map(|logs| logs.metrics(&events, &MetricsConfig::default()))
        .collect();
    let best = best_link::best_of(&alone_metrics);
    let process_logs = report_dir.join("logs");
    let mut logs = Vec::new();
    for system in systems {
        match (system, best) {
            (System::BuiltIn(SystemKind::SingleLink), Some(best)) => logs.push(alone[best].clone()),
            _ => logs.push(run(
                system.clone(),
                system.adapter(best.unwrap_or(0), Some(&process_logs)),
                system.name().to_string(),
                system.name().to_string(),
            )?),
        }
    }
    progress.finish_and_clear();
    Ok(RunResults {
        logs,
        backend,
        best_link: best.map(|i| best_link::reference(&scenario.links[i].name, &alone_metrics[i])),
    })
}

impl RunResults {
    /// The run's results (see [`crate::report::assemble`]).
    pub fn outcome(&self, scenario: &Scenario, commit: &str) -> Outcome {
        assemble(
            scenario,
            self.backend,
            commit,
            &self.logs,
            self.best_link.clone(),
        )
    }
}

/// Whether a run of `systems` needs the best link measured: single-link is
/// that link, mptcp and single-path external systems start on it, and TCP
/// is judged against it.
pub fn needs_best_link(scenario: &Scenario, systems: &[System]) -> bool {
    scenario.traffic.tcp.flows > 0 || systems.iter().any(System::needs_best_link)
}

/// One system's run on a fresh topology: its logs and the backend used.
/// The scenario's commands write their output as `commands` says; links
/// are captured into `captures` if given.
pub fn run_system(
    scenario: &Scenario,
    kind: System,
    system: Box<dyn SystemUnderTest>,
    stream_id: u32,
    commands: &CommandOutput,
    progress: &ProgressBar,
    captures: Option<&Path>,
) -> Result<(SystemLogs, &'static str), RunError> {
    let work = |topology: &Topology, emulation: &Emulation, plan: &TrafficPlan| {
        let monitor = PauseMonitor::start();
        let measured = measure(
            scenario,
            topology,
            emulation,
            plan,
            stream_id,
            Some(commands),
            progress,
        );
        let host_pauses = monitor.map(PauseMonitor::stop);
        let links = emulation.link_counters(scenario)?;
        let Measured {
            origin,
            up,
            down,
            commands,
        } = measured?;
        let flow_links = plan.flow_links.as_ref().map(|flow_links| {
            flow_links
                .iter()
                .filter_map(|&link| scenario.links.get(link))
                .map(|link| link.name.clone())
                .collect()
        });
        let logs = SystemLogs {
            system: kind,
            origin,
            up,
            down,
            links,
            host_pauses,
            flow_links,
            commands,
        };
        Ok((logs, emulation.backend_name()))
    };
    with_system(scenario, system, progress, captures, work)
}

/// Builds a fresh topology with the scenario's links, starts their emulation
/// and the system `kind` on them, runs `work`, and takes it all down again
/// (system, emulation, topology) whatever `work` returned. `work` gets the
/// topology, the emulation and how the system wants traffic sent. With
/// `captures`, the links are captured into that directory.
pub fn with_system<T>(
    scenario: &Scenario,
    mut system: Box<dyn SystemUnderTest>,
    progress: &ProgressBar,
    captures: Option<&Path>,
    work: impl FnOnce(&Topology, &Emulation, &TrafficPlan) -> Result<T, RunError>,
) -> Result<T, RunError> {
    progress.set_message("building topology");
    let topology = Topology::build(&TopologyConfig {
        tag: RUN_TAG.to_string(),
        links: scenario.links.len(),
    })?;
    // Declared after the topology so it is dropped (stopped) first.
    let emulation = Emulation::start(&topology, scenario, captures)?;
    progress.set_message("starting the system");
    let plan = system.start(&topology, scenario)?;
    let worked = work(&topology, &emulation, &plan);
    let stopped = system.stop();
    emulation.stop()?;
    drop(topology);
    let worked = worked?;
    stopped?;
    Ok(worked)
}

/// What [`measure`] measured.
pub(crate) struct Measured {
    /// The scenario's time zero.
    pub origin: MonoNanos,
    pub up: StreamLogs,
    /// `None` when the scenario sends nothing from server to client.
    pub down: Option<StreamLogs>,
    /// How the scenario's commands ended; empty when none ran.
    pub commands: Vec<CommandReport>,
}

/// Runs the traffic of both directions, the scenario's commands (when
/// `commands` says where their output goes) and the timeline.
pub(crate) fn measure(
    scenario: &Scenario,
    topology: &Topology,
    emulation: &Emulation,
    plan: &TrafficPlan,
    stream_id: u32,
    commands: Option<&CommandOutput>,
    progress: &ProgressBar,
) -> Result<Measured, RunError> {
    let origin = MonoNanos::now() + WARMUP;
    // Before the traffic, so services are up at time zero; stopped on
    // every way out (its drop).
    let commands = match commands {
        Some(output) => commands::start(scenario, topology, origin, output)?,
        None => None,
    };
    let traffic = Traffic {
        scenario,
        topology,
        plan,
        origin,
        stream_id,
        stop_receivers: Arc::new(AtomicBool::new(false)),
        stop_senders: Arc::new(AtomicBool::new(false)),
    };
    let up = traffic.start_upload()?;
    let down = traffic.start_download()?;

    let played = play_timeline(scenario, topology, emulation, origin, progress);
    if played.is_err() {
        traffic.stop_senders.store(true, Ordering::Relaxed);
    }
    let up = up.finish_sending();
    let down = down.map(Running::finish_sending);
    progress.set_message("draining");
    wait_until(origin + scenario.duration + DRAIN, progress);
    traffic.stop_receivers.store(true, Ordering::Relaxed);
    let commands = commands.map(commands::RunningCommands::finish);
    let up = up.finish_receiving(stream_id);
    let down = down.map(|d| d.finish_receiving(stream_id));
    played?;
    Ok(Measured {
        origin,
        up: up?,
        down: down.transpose()?,
        commands: commands.transpose()?.unwrap_or_default(),
    })
}

/// What one system's measurement needs to start its traffic.
struct Traffic<'a> {
    scenario: &'a Scenario,
    topology: &'a Topology,
    plan: &'a TrafficPlan,
    origin: MonoNanos,
    stream_id: u32,
    /// Set after the drain: receivers stop.
    stop_receivers: Arc<AtomicBool>,
    /// Set when the timeline fails: senders stop early.
    stop_senders: Arc<AtomicBool>,
}

/// One direction's traffic while it runs: the probe stream's two ends (if
/// it runs that way) and the TCP flows' two ends (if any run that way).
#[derive(Default)]
struct Running {
    probe_sending: Option<NetnsThread<Result<SendLog, TrafficError>>>,
    probe_receiving: Option<Receiving<ReceiveLog>>,
    tcp_sending: Option<NetnsThread<Result<Vec<TcpFlowReport>, TrafficError>>>,
    tcp_receiving: Option<Receiving<TcpLog>>,
    sent: Option<Result<SendLog, RunError>>,
    tcp_sent: Option<Result<Vec<TcpFlowReport>, RunError>>,
}

impl Traffic<'_> {
    fn server(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(SERVER_ADDRESS), port)
    }

    /// Room for every probe of a stream and its duplicates.
    fn probe_capacity(&self) -> usize {
        (self.scenario.traffic.probe.rate_pps as usize)
            .saturating_mul(self.scenario.duration.as_secs() as usize + 2)
            .saturating_mul(2)
    }

    fn tcp_receiver_config(&self) -> TcpReceiverConfig {
        TcpReceiverConfig {
            flavor: self.plan.tcp_flavor,
            origin: self.origin,
            bin: Duration::from_millis(100),
            duration: self.scenario.duration,
            until_flows_closed: None,
        }
    }

    /// The client's connections to the server's `port`, pinned as the plan says.
    fn client_connections(&self, port: u16, flows: u32) -> TcpSenderConfig {
        TcpSenderConfig {
            target: self.server(port),
            flows: u16::try_from(flows).unwrap_or(u16::MAX),
            duration: self.scenario.duration,
            flavor: self.plan.tcp_flavor,
            connect_timeout: Duration::from_secs(3),
            flow_devices: self.plan.flow_devices.clone(),
        }
    }

    fn probe_sender(&self, target: SocketAddr) -> ProbeSenderConfig {
        let mut config = ProbeSenderConfig::new(
            target,
            self.scenario.traffic.probe,
            self.scenario.duration,
            self.stream_id,
        );
        config.flows = PROBE_FLOWS;
        config
    }

    /// Client to server: receivers on the server, senders on the client.
    fn start_upload(&self) -> Result<Running, RunError> {
        let server = self.topology.netns(Role::Server);
        let client = self.topology.netns(Role::Client);
        let mut running = Running::default();
        if self.scenario.traffic.probe.direction.up() {
            let (addr, id, capacity) = (
                self.server(PROBE_PORT),
                self.stream_id,
                self.probe_capacity(),
            );
            let receiver = server.run(move || ProbeReceiver::bind(addr, id, capacity))??;
            running.probe_receiving =
                Some(self.receive("probe receiver", addr, move |stop| receiver.run(stop)));
            let mut config = self.probe_sender(addr);
            config.flow_devices = self.plan.flow_devices.clone();
            let (stop, origin) = (self.stop_senders.clone(), self.origin);
            running.probe_sending =
                Some(client.spawn("probe-sender", move || send_probes(&config, origin, &stop))?);
        }
        let flows = self.scenario.traffic.tcp.up_flows();
        if flows > 0 {
            let (addr, config) = (self.server(TCP_PORT), self.tcp_receiver_config());
            let receiver = server.run(move || TcpBulkReceiver::bind(addr, config))??;
            running.tcp_receiving =
                Some(self.receive("tcp receiver", addr, move |stop| receiver.run(stop)));
            let config = self.client_connections(TCP_PORT, flows);
            let (stop, origin) = (self.stop_senders.clone(), self.origin);
            running.tcp_sending = Some(client.spawn("tcp-sender", move || {
                origin.sleep_until();
                send_bulk(&config, &stop)
            })?);
        }
        Ok(running)
    }

    /// Server to client: the client calls the server (probe hellos, TCP
    /// connections) and the server sends back over whatever path the
    /// system gives each flow, as a site's downloads go.
    fn start_download(&self) -> Result<Option<Running>, RunError> {
        let traffic = self.scenario.traffic;
        let flows = traffic.tcp.down_flows();
        if !traffic.probe.direction.down() && flows == 0 {
            return Ok(None);
        }
        let server = self.topology.netns(Role::Server);
        let client = self.topology.netns(Role::Client);
        let mut running = Running::default();
        if traffic.probe.direction.down() {
            let addr = self.server(PROBE_DOWN_PORT);
            let (id, capacity, devices) = (
                self.stream_id,
                self.probe_capacity(),
                self.plan.flow_devices.clone(),
            );
            let receiver = client.run(move || {
                ProbeReceiver::bind_flows(addr, PROBE_FLOWS, &devices, id, capacity)
            })??;
            running.probe_receiving = Some(self.receive_in(
                client,
                "download probe receiver",
                addr,
                move |stop| receiver.run(stop),
            )?);
            let mut config = self.probe_sender(addr);
            config.source = addr.ip();
            config.first_source_port = PROBE_DOWN_PORT;
            config.reply_to_hellos = true;
            let (stop, origin) = (self.stop_senders.clone(), self.origin);
            running.probe_sending = Some(server.spawn("probe-down-sender", move || {
                send_probes(&config, origin, &stop)
            })?);
        }
        if flows > 0 {
            let addr = self.server(TCP_DOWN_PORT);
            let flavor = self.plan.tcp_flavor;
            let sender = server.run(move || TcpBulkServer::bind(addr, flavor))??;
            let (stop, end) = (
                self.stop_senders.clone(),
                self.origin + self.scenario.duration,
            );
            running.tcp_sending =
                Some(server.spawn("tcp-down-sender", move || sender.run(end, &stop))?);
            let receiver = TcpBulkReceiver::connect(
                self.client_connections(TCP_DOWN_PORT, flows),
                self.tcp_receiver_config(),
            )?;
            let origin = self.origin;
            running.tcp_receiving =
                Some(
                    self.receive_in(client, "download tcp receiver", addr, move |stop| {
                        origin.sleep_until();
                        receiver.run(stop)
                    })?,
                );
        }
        Ok(Some(running))
    }

    /// A receiver already bound in its namespace, run on a plain thread
    /// (it inherits nothing it needs: its sockets are open).
    fn receive<T: Send + 'static>(
        &self,
        thread: &'static str,
        addr: SocketAddr,
        run: impl FnOnce(&AtomicBool) -> Result<T, TrafficError> + Send + 'static,
    ) -> Receiving<T> {
        let stop = self.stop_receivers.clone();
        Receiving {
            thread,
            addr,
            handle: ReceiverThread::Plain(std::thread::spawn(move || run(&stop))),
        }
    }

    /// A receiver run on a thread inside `netns` (it opens sockets there).
    fn receive_in<T: Send + 'static>(
        &self,
        netns: &crate::topology::Netns,
        thread: &'static str,
        addr: SocketAddr,
        run: impl FnOnce(&AtomicBool) -> Result<T, TrafficError> + Send + 'static,
    ) -> Result<Receiving<T>, RunError> {
        let stop = self.stop_receivers.clone();
        Ok(Receiving {
            thread,
            addr,
            handle: ReceiverThread::InNetns(netns.spawn(thread, move || run(&stop))?),
        })
    }
}

impl Running {
    /// Waits for the senders (they stop at the end of the scenario).
    fn finish_sending(mut self) -> Self {
        self.sent = self.probe_sending.take().map(|t| {
            t.join()
                .map_err(RunError::from)
                .and_then(|r| r.map_err(RunError::from))
        });
        self.tcp_sent = self.tcp_sending.take().map(|t| {
            t.join()
                .map_err(RunError::from)
                .and_then(|r| r.map_err(RunError::from))
        });
        self
    }

    /// Waits for the receivers (told to stop after the drain) and returns
    /// the direction's logs.
    fn finish_receiving(self, stream_id: u32) -> Result<StreamLogs, RunError> {
        let received = self.probe_receiving.map(Receiving::join).transpose();
        let tcp = self.tcp_receiving.map(Receiving::join).transpose();
        let sent = self.sent.transpose()?;
        if let Some(reports) = self.tcp_sent.transpose()? {
            for error in reports.iter().filter_map(|r| r.error.as_deref()) {
                tracing::warn!("tcp flow: {error}");
            }
        }
        let probes = match (sent, received?) {
            (Some(sent), Some(received)) => ProbeLog { sent, received },
            _ => ProbeLog::unsent(stream_id),
        };
        Ok(StreamLogs { probes, tcp: tcp? })
    }
}

/// Runs a fixed UDP load from the client to the server through the system
/// `kind` on a fresh topology with the scenario's links (its timeline and
/// traffic are not used) and returns what was sent and received. The load
/// starts after [`WARMUP`]; its first `ramp` is left out of the goodput, so
/// a system that learns its links first is judged at its steady state.
pub fn udp_goodput(
    scenario: &Scenario,
    kind: SystemKind,
    load: &UdpLoad,
    ramp: Duration,
    progress: &ProgressBar,
) -> Result<UdpLoadLog, RunError> {
    // Links of a throughput comparison are alike: single-link takes the first.
    let work = |topology: &Topology, _: &Emulation, plan: &TrafficPlan| {
        progress.set_message("UDP load");
        let server = SocketAddr::new(IpAddr::V4(SERVER_ADDRESS), UDP_LOAD_PORT);
        let receiver = topology
            .netns(Role::Server)
            .run(move || UdpLoadReceiver::bind(server))??;
        let start = MonoNanos::now() + WARMUP;
        let end = start + load.duration;
        let stop_receiver = Arc::new(AtomicBool::new(false));
        let receiving = Receiving {
            thread: "udp load receiver",
            addr: server,
            handle: {
                let stop = stop_receiver.clone();
                ReceiverThread::Plain(std::thread::spawn(move || {
                    receiver.run(start + ramp, end, &stop)
                }))
            },
        };
        let mut load = load.clone();
        load.target = server;
        load.device = crate::traffic::pinned_device(&plan.flow_devices, 0).map(str::to_owned);
        let sent = topology
            .netns(Role::Client)
            .spawn("udp-load", move || {
                send_udp_load(&load, start, &AtomicBool::new(false))
            })
            .map(|sending| sending.join());
        if sent.is_ok() {
            // Datagrams still in flight at the end fall outside the window.
            wait_until(end + Duration::from_millis(100), progress);
        }
        // Stopped on every path, so a failed sender leaves no thread behind.
        stop_receiver.store(true, Ordering::Relaxed);
        let received = receiving.join()?;
        Ok(UdpLoadLog {
            sent: sent???,
            received,
        })
    };
    with_system(
        scenario,
        (registry::built_in(kind).adapter)(0),
        progress,
        None,
        work,
    )
}

/// Applies each timeline step at its time, showing progress meanwhile.
fn play_timeline(
    scenario: &Scenario,
    topology: &Topology,
    emulation: &Emulation,
    origin: MonoNanos,
    progress: &ProgressBar,
) -> Result<(), RunError> {
    let mut player = TimelinePlayer::new(topology);
    for step in scenario.timeline() {
        wait_until(origin + step.at, progress);
        if let Some(event) = scenario.events.get(step.event_index) {
            progress.set_message(format!(
                "{:.1}s {} {}",
                step.at.as_secs_f64(),
                event.link,
                event.action.name()
            ));
        }
        player.apply(&step, scenario, topology, emulation)?;
    }
    wait_until(origin + scenario.duration, progress);
    Ok(())
}

/// Sleeps until `deadline`, advancing the progress bar every 100 ms.
fn wait_until(deadline: MonoNanos, progress: &ProgressBar) {
    loop {
        let now = MonoNanos::now();
        if now.0 >= deadline.0 {
            return;
        }
        let left = Duration::from_nanos(deadline.0 - now.0);
        let nap = left.min(Duration::from_millis(100));
        std::thread::sleep(nap);
        progress.inc(nap.as_millis() as u64);
    }
}

/// A receiver thread on the server, with what to name it by if it panics
/// (the probe and TCP receivers listen on different ports).
struct Receiving<T> {
    thread: &'static str,
    addr: SocketAddr,
    handle: ReceiverThread<T>,
}

/// A receiver's thread: a plain one, or one inside a namespace.
enum ReceiverThread<T> {
    Plain(std::thread::JoinHandle<Result<T, TrafficError>>),
    InNetns(NetnsThread<Result<T, TrafficError>>),
}

impl<T> Receiving<T> {
    fn join(self) -> Result<T, RunError> {
        let (thread, addr) = (self.thread, self.addr);
        let panicked = || TrafficError::ThreadPanicked { thread, addr };
        let result = match self.handle {
            ReceiverThread::Plain(handle) => handle.join().map_err(|_| panicked())?,
            ReceiverThread::InNetns(handle) => handle.join().map_err(|_| panicked())?,
        };
        result.map_err(RunError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicked_receiver_is_named_by_its_own_thread_and_port() {
        let addr = SocketAddr::new(IpAddr::V4(SERVER_ADDRESS), TCP_PORT);
        let receiving = Receiving::<()> {
            thread: "tcp receiver",
            addr,
            handle: ReceiverThread::Plain(std::thread::spawn(|| panic!("receiver failed"))),
        };
        let message = receiving.join().unwrap_err().to_string();
        assert_eq!(
            message,
            format!("the tcp receiver thread for {addr} panicked")
        );
    }
}
