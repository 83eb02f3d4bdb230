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
//! - [`output`]: the report directory name and the commit id.
//! - [`pause_monitor`]: watches for the host's pauses, which the outage
//!   figures leave out.

pub mod emulation;
pub mod output;
pub mod pause_monitor;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::metrics::{
    MetricsConfig, RunLogs, SystemMetrics, SystemSeries, TimelineEvent, system_metrics,
    system_series,
};
use crate::scenario::{Scenario, SystemKind};
use crate::systems::{PROBE_FLOWS, SystemError, TrafficPlan, adapter};
use crate::topology::addressing::SERVER_ADDRESS;
use crate::topology::{NetnsError, RUN_TAG, Role, Topology, TopologyConfig, TopologyError};
use crate::traffic::probe::{ProbeLog, ProbeReceiver, ProbeSenderConfig, send_probes};
use crate::traffic::tcp::{TcpBulkReceiver, TcpLog, TcpReceiverConfig, TcpSenderConfig, send_bulk};
use crate::traffic::udp::{UdpLoad, UdpLoadLog, UdpLoadReceiver, send_udp_load};
use crate::traffic::{MonoNanos, TrafficError};

pub use emulation::{Emulation, EmulationError, TimelinePlayer};
pub use pause_monitor::PauseMonitor;

/// UDP port of the probe receiver on the server.
pub const PROBE_PORT: u16 = 9000;
/// TCP port of the bulk-flow receiver on the server.
pub const TCP_PORT: u16 = 9001;
/// UDP port of the UDP load receiver on the server.
pub const UDP_LOAD_PORT: u16 = 9002;
/// Time between setting up a system and the scenario's time zero: lets
/// routes settle, ARP resolve and tunnels finish their handshakes.
const WARMUP: Duration = Duration::from_millis(500);
/// Time after the last probe before the receivers stop: covers the longest
/// queue a scenario builds (a few hundred ms) so in-flight probes count.
const DRAIN: Duration = Duration::from_millis(1500);

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

/// The figures and plot series of one system's run.
pub struct SystemRun {
    pub backend: &'static str,
    pub metrics: SystemMetrics,
    pub series: SystemSeries,
}

/// Runs every system of `scenario` (in its order) and returns their runs by
/// name. `progress` shows scenario time across all systems.
pub fn run_systems(
    scenario: &Scenario,
    systems: &[SystemKind],
    progress: &ProgressBar,
) -> Result<BTreeMap<String, SystemRun>, RunError> {
    let per_system = scenario.duration + WARMUP + DRAIN;
    progress.set_length((per_system * systems.len() as u32).as_millis() as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{bar:40}] {elapsed_precise} of ~{duration_precise} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut runs = BTreeMap::new();
    for (index, kind) in systems.iter().enumerate() {
        progress.set_prefix(kind.as_str());
        progress.set_position((per_system * index as u32).as_millis() as u64);
        let run = run_system(scenario, *kind, index as u32, progress)?;
        runs.insert(kind.as_str().to_string(), run);
    }
    progress.finish_and_clear();
    Ok(runs)
}

/// One system's run on a fresh topology.
pub fn run_system(
    scenario: &Scenario,
    kind: SystemKind,
    stream_id: u32,
    progress: &ProgressBar,
) -> Result<SystemRun, RunError> {
    let ((probes, tcp, origin), host_pauses, links, backend, flow_links) =
        with_system(scenario, kind, progress, |topology, emulation, plan| {
            let monitor = PauseMonitor::start();
            let measured = measure(scenario, topology, emulation, plan, stream_id, progress);
            let host_pauses = monitor.map(PauseMonitor::stop);
            let links = emulation.link_counters(scenario)?;
            let flow_links = plan.flow_links.as_ref().map(|flow_links| {
                flow_links
                    .iter()
                    .filter_map(|&link| scenario.links.get(link))
                    .map(|link| link.name.clone())
                    .collect::<Vec<_>>()
            });
            let backend = emulation.backend_name();
            Ok((measured?, host_pauses, links, backend, flow_links))
        })?;

    let events: Vec<TimelineEvent> = scenario.events.iter().map(TimelineEvent::from).collect();
    let logs = RunLogs {
        origin,
        probes: &probes,
        tcp: tcp.as_ref(),
        events: &events,
        links: &links,
        host_pauses: host_pauses.as_ref(),
        flow_links: flow_links.as_deref(),
    };
    let config = MetricsConfig::default();
    Ok(SystemRun {
        backend,
        metrics: system_metrics(&logs, &config),
        series: system_series(&logs, &config),
    })
}

/// Builds a fresh topology with the scenario's links, starts their emulation
/// and the system `kind` on them, runs `work`, and takes it all down again
/// (system, emulation, topology) whatever `work` returned. `work` gets the
/// topology, the emulation and how the system wants traffic sent.
pub fn with_system<T>(
    scenario: &Scenario,
    kind: SystemKind,
    progress: &ProgressBar,
    work: impl FnOnce(&Topology, &Emulation, &TrafficPlan) -> Result<T, RunError>,
) -> Result<T, RunError> {
    let mut system = adapter(kind);
    progress.set_message("building topology");
    let topology = Topology::build(&TopologyConfig {
        tag: RUN_TAG.to_string(),
        links: scenario.links.len(),
    })?;
    // Declared after the topology so it is dropped (stopped) first.
    let emulation = Emulation::start(&topology, scenario)?;
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

/// Runs the traffic and the timeline; returns the probe log, the TCP log (if
/// the scenario has flows) and the scenario's time zero.
fn measure(
    scenario: &Scenario,
    topology: &Topology,
    emulation: &Emulation,
    plan: &TrafficPlan,
    stream_id: u32,
    progress: &ProgressBar,
) -> Result<(ProbeLog, Option<TcpLog>, MonoNanos), RunError> {
    let server = IpAddr::V4(SERVER_ADDRESS);
    let origin = MonoNanos::now() + WARMUP;
    let capacity = (scenario.traffic.probe.rate_pps as usize)
        .saturating_mul(scenario.duration.as_secs() as usize + 2)
        .saturating_mul(2);
    let probe_receiver = topology.netns(Role::Server).run(move || {
        ProbeReceiver::bind(SocketAddr::new(server, PROBE_PORT), stream_id, capacity)
    })??;
    let tcp_flows = scenario.traffic.tcp.flows;
    let tcp_receiver = if tcp_flows > 0 {
        let config = TcpReceiverConfig {
            flavor: plan.tcp_flavor,
            origin,
            bin: Duration::from_millis(100),
            duration: scenario.duration,
            until_flows_closed: None,
        };
        Some(
            topology
                .netns(Role::Server)
                .run(move || TcpBulkReceiver::bind(SocketAddr::new(server, TCP_PORT), config))??,
        )
    } else {
        None
    };

    let stop_receivers = Arc::new(AtomicBool::new(false));
    let stop_senders = Arc::new(AtomicBool::new(false));
    let probe_receiving = {
        let stop = stop_receivers.clone();
        Receiving {
            thread: "probe receiver",
            addr: probe_receiver.local_addr(),
            handle: std::thread::spawn(move || probe_receiver.run(&stop)),
        }
    };
    let tcp_receiving = tcp_receiver.map(|receiver| {
        let stop = stop_receivers.clone();
        Receiving {
            thread: "tcp receiver",
            addr: receiver.local_addr(),
            handle: std::thread::spawn(move || receiver.run(&stop)),
        }
    });

    let mut probe_config = ProbeSenderConfig::new(
        SocketAddr::new(server, PROBE_PORT),
        scenario.traffic.probe,
        scenario.duration,
        stream_id,
    );
    probe_config.flows = PROBE_FLOWS;
    probe_config.flow_devices = plan.flow_devices.clone();
    let probe_sending = {
        let stop = stop_senders.clone();
        topology
            .netns(Role::Client)
            .spawn("probe-sender", move || {
                send_probes(&probe_config, origin, &stop)
            })?
    };
    let tcp_sending = if tcp_flows > 0 {
        let config = TcpSenderConfig {
            target: SocketAddr::new(server, TCP_PORT),
            flows: u16::try_from(tcp_flows).unwrap_or(u16::MAX),
            duration: scenario.duration,
            flavor: plan.tcp_flavor,
            connect_timeout: Duration::from_secs(3),
            flow_devices: plan.flow_devices.clone(),
        };
        let stop = stop_senders.clone();
        Some(topology.netns(Role::Client).spawn("tcp-sender", move || {
            origin.sleep_until();
            send_bulk(&config, &stop)
        })?)
    } else {
        None
    };

    let played = play_timeline(scenario, topology, emulation, origin, progress);
    if played.is_err() {
        stop_senders.store(true, Ordering::Relaxed);
    }
    let sent = probe_sending.join()?;
    let tcp_sent = tcp_sending.map(|t| t.join()).transpose()?;
    progress.set_message("draining");
    wait_until(origin + scenario.duration + DRAIN, progress);
    stop_receivers.store(true, Ordering::Relaxed);
    let received = probe_receiving.join()?;
    let tcp_log = tcp_receiving.map(Receiving::join).transpose()?;
    played?;
    let sent = sent?;
    if let Some(reports) = tcp_sent.transpose()? {
        for error in reports.iter().filter_map(|r| r.error.as_deref()) {
            tracing::warn!("tcp flow: {error}");
        }
    }
    Ok((ProbeLog { sent, received }, tcp_log, origin))
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
    with_system(scenario, kind, progress, |topology, _, plan| {
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
                std::thread::spawn(move || receiver.run(start + ramp, end, &stop))
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
    })
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
    handle: std::thread::JoinHandle<Result<T, TrafficError>>,
}

impl<T> Receiving<T> {
    fn join(self) -> Result<T, RunError> {
        let (thread, addr) = (self.thread, self.addr);
        self.handle
            .join()
            .map_err(|_| TrafficError::ThreadPanicked { thread, addr })?
            .map_err(RunError::from)
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
            handle: std::thread::spawn(|| panic!("receiver failed")),
        };
        let message = receiving.join().unwrap_err().to_string();
        assert_eq!(
            message,
            format!("the tcp receiver thread for {addr} panicked")
        );
    }
}
