//! The paced probe sender.
//!
//! Packet `seq` is due at `start + seq / rate`, an absolute deadline on
//! CLOCK_MONOTONIC, so oversleeping one packet does not delay the rest (no
//! drift). A packet found late is sent at once; none is skipped, so the number
//! sent is exactly `rate x duration` and losses are comparable across systems.

use socket2::{Domain, Socket, Type};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::PROBE_PRIORITY;
use super::wire::{HELLO_SEQ, PROBE_HEADER_LEN, ProbeHeader};
use crate::scenario::ProbeSpec;
use crate::traffic::{FifoPriority, MonoNanos, TimerSlack, TrafficError};

/// Largest UDP payload over IPv4.
pub const MAX_SIZE: usize = 65_507;

/// What to send, to whom, how fast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSenderConfig {
    pub target: SocketAddr,
    /// Local address every flow socket binds to; unspecified lets routing choose.
    pub source: IpAddr,
    /// Source port of flow 0; flow `i` uses `first_source_port + i`. 0 lets the
    /// kernel pick a distinct ephemeral port per flow.
    pub first_source_port: u16,
    /// Number of flows (sockets) the sequence is spread over, round-robin.
    pub flows: u16,
    pub rate_pps: u64,
    /// UDP payload bytes per probe, header included.
    pub size: usize,
    pub duration: Duration,
    /// Written into every probe; the receiver ignores other streams.
    pub stream_id: u32,
    /// Flow `i` leaves on interface `flow_devices[i % len]` whatever the
    /// routing table prefers (the multiwan baseline pins flows to links);
    /// empty leaves the choice to routing.
    pub flow_devices: Vec<String>,
    /// A download sender (on the server): flow `i` is sent to wherever the
    /// latest hello on its socket came from (see
    /// [`super::ProbeReceiver::bind_flows`]), not to `target`; until a hello
    /// arrived its probes count as lost.
    pub reply_to_hellos: bool,
}

impl ProbeSenderConfig {
    /// The scenario's probe stream to `target`: one flow, ephemeral source port.
    pub fn new(target: SocketAddr, probe: ProbeSpec, duration: Duration, stream_id: u32) -> Self {
        Self {
            target,
            source: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            first_source_port: 0,
            flows: 1,
            rate_pps: probe.rate_pps,
            size: probe.size as usize,
            duration,
            stream_id,
            flow_devices: Vec::new(),
            reply_to_hellos: false,
        }
    }

    /// Number of probes the stream consists of: `rate x duration`, rounded down.
    pub fn packet_count(&self) -> u64 {
        (self.duration.as_nanos() * u128::from(self.rate_pps) / 1_000_000_000) as u64
    }

    fn validate(&self) -> Result<(), TrafficError> {
        let invalid = |key, expected, got: String| TrafficError::Config { key, expected, got };
        if self.flows == 0 {
            return Err(invalid("flows", "at least 1", self.flows.to_string()));
        }
        if self.rate_pps == 0 {
            return Err(invalid("rate_pps", "at least 1", self.rate_pps.to_string()));
        }
        if !(PROBE_HEADER_LEN..=MAX_SIZE).contains(&self.size) {
            return Err(invalid(
                "size",
                "a UDP payload of 26 to 65507 bytes",
                self.size.to_string(),
            ));
        }
        if self.first_source_port != 0
            && u32::from(self.first_source_port) + u32::from(self.flows) > 65_536
        {
            return Err(invalid(
                "first_source_port",
                "a port that leaves room for one port per flow",
                self.first_source_port.to_string(),
            ));
        }
        Ok(())
    }
}

/// The sender's side of a probe stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendLog {
    pub stream_id: u32,
    pub rate_pps: u64,
    pub size: usize,
    pub flows: u16,
    /// Local port of each flow's socket, by flow index.
    pub source_ports: Vec<u16>,
    /// The deadline of sequence number 0.
    pub start: MonoNanos,
    /// Actual send time of each sequence number, indexed by seq. A probe whose
    /// `send_to` failed is still listed (it counts as lost).
    pub sent_at: Vec<MonoNanos>,
    /// `send_to` calls that failed (no route, buffer full, ...).
    pub send_errors: u64,
    /// Largest delay between a probe's deadline and its actual send time.
    pub max_lateness: Duration,
    /// Whether the sender ran at real-time priority, so that its lateness
    /// was the host's doing, not the load's. Absent from older logs.
    #[serde(default)]
    pub realtime: bool,
}

impl SendLog {
    /// When `seq` was due.
    pub fn due(&self, seq: u64) -> MonoNanos {
        let offset = u128::from(seq) * 1_000_000_000 / u128::from(self.rate_pps.max(1));
        MonoNanos(self.start.0.saturating_add(offset as u64))
    }

    /// The flow that carried `seq`.
    pub fn flow_of(&self, seq: u64) -> u16 {
        (seq % u64::from(self.flows.max(1))) as u16
    }
}

/// Sends the stream on the caller's thread (already in the sender's network
/// namespace), starting at the absolute time `start`, until all probes are sent
/// or `stop` is set. Blocks for about `duration`.
pub fn send_probes(
    config: &ProbeSenderConfig,
    start: MonoNanos,
    stop: &AtomicBool,
) -> Result<SendLog, TrafficError> {
    config.validate()?;
    let sockets = open_flow_sockets(config)?;
    let source_ports = sockets
        .iter()
        .map(|socket| socket.local_addr().map_or(0, |addr| addr.port()))
        .collect();
    let count = config.packet_count();
    let mut log = SendLog {
        stream_id: config.stream_id,
        rate_pps: config.rate_pps,
        size: config.size,
        flows: config.flows,
        source_ports,
        start,
        sent_at: Vec::with_capacity(count as usize),
        send_errors: 0,
        max_lateness: Duration::ZERO,
        realtime: false,
    };
    let mut payload = vec![0u8; config.size];
    let mut targets = vec![(!config.reply_to_hellos).then_some(config.target); sockets.len()];
    let mut next_hello_check = start;
    let _slack = TimerSlack::tighten();
    let realtime = FifoPriority::enter(PROBE_PRIORITY);
    log.realtime = realtime.is_some();
    for seq in 0..count {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let deadline = log.due(seq);
        deadline.sleep_until();
        let now = MonoNanos::now();
        if config.reply_to_hellos && now >= next_hello_check {
            learn_targets(&sockets, config.stream_id, &mut targets);
            next_hello_check = now + HELLO_CHECK;
        }
        log.max_lateness = log.max_lateness.max(now.saturating_since(deadline));
        let flow = log.flow_of(seq);
        let header = ProbeHeader {
            stream_id: config.stream_id,
            seq,
            sent: now,
            flow,
        };
        // validate() guarantees size >= PROBE_HEADER_LEN.
        payload[..PROBE_HEADER_LEN].copy_from_slice(&header.encode());
        let sent = targets[usize::from(flow)]
            .is_some_and(|to| sockets[usize::from(flow)].send_to(&payload, to).is_ok());
        if !sent {
            log.send_errors += 1;
        }
        log.sent_at.push(now);
    }
    Ok(log)
}

/// How often a download sender reads the hellos that arrived: a path change
/// is followed within this, at the cost of a few non-blocking reads.
const HELLO_CHECK: Duration = Duration::from_millis(10);

/// Reads every hello waiting on the flows' (non-blocking) sockets and
/// points each flow at the address its latest hello came from.
fn learn_targets(sockets: &[UdpSocket], stream_id: u32, targets: &mut [Option<SocketAddr>]) {
    let mut buf = [0u8; PROBE_HEADER_LEN];
    for (socket, target) in sockets.iter().zip(targets) {
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            let hello = ProbeHeader::parse(&buf[..len]);
            if hello.is_ok_and(|h| h.seq == HELLO_SEQ && h.stream_id == stream_id) {
                *target = Some(from);
            }
        }
    }
}

/// Unconnected sockets: an ICMP error from a dead path must not turn later
/// sends into ECONNREFUSED errors.
fn open_flow_sockets(config: &ProbeSenderConfig) -> Result<Vec<UdpSocket>, TrafficError> {
    (0..config.flows)
        .map(|flow| {
            let port = match config.first_source_port {
                0 => 0,
                first => first + flow,
            };
            let addr = SocketAddr::new(config.source, port);
            let device = super::super::pinned_device(&config.flow_devices, flow);
            let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)
                .and_then(|socket| {
                    super::super::bind_device(&socket, device)?;
                    socket.bind(&addr.into())?;
                    // A download sender also reads hellos between probes.
                    socket.set_nonblocking(config.reply_to_hellos)?;
                    Ok(socket)
                })
                .map_err(|source| TrafficError::Bind { addr, source })?;
            Ok(UdpSocket::from(socket))
        })
        .collect()
}
