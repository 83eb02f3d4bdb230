//! What the emulator costs: forwarding capacity with no impairments, and the
//! latency it adds over a direct veth path measured in the same run (a noisy
//! shared machine makes figures from different runs incomparable).
//! `circus-lab bench` and `benches/forwarder.rs` call [`measure`].
//!
//! Also home of the small UDP echo and round-trip prober used for these
//! figures and by the emulator's tests.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::packet_socket::{MessageBatch, PacketSocket, interface_index};
use super::{ForwardedLink, Forwarder, ForwarderError, ForwarderOptions, tune_thread};
use crate::emulator::model::{Direction, LinkModel, LinkParams};
use crate::topology::addressing::GATEWAY_SERVER_SIDE;
use crate::topology::{Role, SERVER_ADDRESS, Topology, TopologyConfig, TopologyError};

/// What to measure.
#[derive(Clone, Debug)]
pub struct CapacityOptions {
    /// Namespace tag of the scratch topology.
    pub tag: String,
    /// How long the sender floods the link.
    pub flood: Duration,
    /// Flood frames are as long as UDP datagrams with this payload (small
    /// frames are the hard case).
    pub payload: usize,
    /// Probes per latency measurement (1 ms apart).
    pub probes: u32,
    /// Capture the link into this directory while measuring, to see what
    /// `--pcap` costs (`None`: no capture, as in lab runs without it).
    pub captures: Option<PathBuf>,
}

impl Default for CapacityOptions {
    /// 2 s of 64-byte datagrams, 500 probes per path.
    fn default() -> Self {
        CapacityOptions {
            tag: crate::topology::RUN_TAG.into(),
            flood: Duration::from_secs(2),
            payload: 64,
            probes: 500,
            captures: None,
        }
    }
}

/// Median and 99th percentile of one-way latency (half the round trip).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OneWay {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

/// The figures.
#[derive(Clone, Debug)]
pub struct CapacityReport {
    /// Frames per second the sender offered during the flood.
    pub offered_pps: f64,
    /// Frames per second the emulator forwarded (one direction).
    pub forwarded_pps: f64,
    /// One-way latency through the emulator, unloaded.
    pub emulated: OneWay,
    /// One-way latency over a direct veth pair, unloaded, same run.
    pub direct: OneWay,
    /// Whether the forwarder threads got real-time priority.
    pub realtime: bool,
}

impl CapacityReport {
    /// Median latency the emulator adds over a direct veth pair.
    pub fn added_p50(&self) -> Duration {
        self.emulated.p50.saturating_sub(self.direct.p50)
    }
}

impl fmt::Display for CapacityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "forwarded {:.0} frames/s (offered {:.0}/s), real-time priority: {}",
            self.forwarded_pps,
            self.offered_pps,
            if self.realtime { "yes" } else { "no" }
        )?;
        write!(
            f,
            "one-way latency p50/p99: emulated {:.3}/{:.3} ms, direct veth {:.3}/{:.3} ms, added p50 {:.3} ms",
            ms(self.emulated.p50),
            ms(self.emulated.p99),
            ms(self.direct.p50),
            ms(self.direct.p99),
            ms(self.added_p50())
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Why the measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// Building the scratch topology.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// Starting or reading the forwarder.
    #[error(transparent)]
    Forwarder(#[from] ForwarderError),
    /// A socket.
    #[error("capacity measurement: {action}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// What failed.
        source: io::Error,
    },
    /// Too few probes came back to give a latency.
    #[error(
        "capacity measurement: only {returned} of {sent} probes came back over the {path} path"
    )]
    ProbesLost {
        /// "emulated" or "direct".
        path: &'static str,
        /// Probes that came back.
        returned: usize,
        /// Probes sent.
        sent: u32,
    },
}

/// Builds a one-link topology with an unimpaired emulator and measures.
pub fn measure(options: &CapacityOptions) -> Result<CapacityReport, CapacityError> {
    let topology = Topology::build(&TopologyConfig {
        tag: options.tag.clone(),
        links: 1,
    })?;
    let link = topology.links()[0].clone();
    let forwarded = ForwardedLink::new(
        &link,
        LinkModel::new(LinkParams::default(), Direction::Up, 1),
        LinkModel::new(LinkParams::default(), Direction::Down, 2),
    );
    let forwarded = match &options.captures {
        Some(dir) => forwarded.capturing_to(dir, "capacity"),
        None => forwarded,
    };
    let forwarder = Forwarder::start(
        topology.netns(Role::Emu),
        vec![forwarded],
        &ForwarderOptions::new(Instant::now()),
    )?;
    let io = |action| move |source| CapacityError::Io { action, source };
    let bind = |role: Role, address: Ipv4Addr| {
        topology
            .netns(role)
            .run(|| UdpSocket::bind(SocketAddrV4::new(address, 0)))
            .map_err(TopologyError::from)?
            .map_err(io("bind a UDP socket"))
    };

    // The gateway echoes on both of its paths: the link and the direct veth.
    let echo = UdpEcho::start(bind(Role::Gateway, Ipv4Addr::UNSPECIFIED)?)
        .map_err(io("start the echo"))?;
    let port = echo.address().port();
    let through_emulator = SocketAddr::from((link.gateway_address, port));
    let direct = SocketAddr::from((GATEWAY_SERVER_SIDE, port));
    let client = bind(Role::Client, link.client_address)?;
    let server = bind(Role::Server, SERVER_ADDRESS)?;
    let one_way = |socket: &UdpSocket, to, path| -> Result<OneWay, CapacityError> {
        // One probe first: ARP.
        round_trips(socket, to, 1, Duration::ZERO, Duration::from_secs(1)).map_err(io("probe"))?;
        let mut rtts = round_trips(
            socket,
            to,
            options.probes,
            Duration::from_millis(1),
            Duration::from_secs(1),
        )
        .map_err(io("probe"))?;
        if rtts.len() < (options.probes as usize * 9).div_ceil(10) {
            return Err(CapacityError::ProbesLost {
                path,
                returned: rtts.len(),
                sent: options.probes,
            });
        }
        rtts.sort();
        let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q).round() as usize] / 2;
        Ok(OneWay {
            p50: at(0.5),
            p99: at(0.99),
        })
    };
    let emulated = one_way(&client, through_emulator, "emulated")?;
    let direct = one_way(&server, direct, "direct")?;
    drop(echo);

    // Flood raw frames into the link: the UDP stack of a sender could not
    // outrun the forwarder on two cores. They go to an unknown MAC address
    // with a local experimental ethertype, so the gateway drops them at once.
    let flood_socket = topology
        .netns(Role::Client)
        .run(|| interface_index(&link.client_interface).and_then(PacketSocket::sender))
        .map_err(TopologyError::from)?
        .map_err(io("open a packet socket in the client namespace"))?;
    let flood = Flood::start(flood_socket, options.payload + UDP_FRAME_OVERHEAD);
    let quarter = options.flood / 4;
    std::thread::sleep(quarter);
    let (t0, sent0, up0) = (
        Instant::now(),
        flood.sent(),
        forwarder.counters(0, Direction::Up)?,
    );
    std::thread::sleep(quarter * 2);
    let (t1, sent1, up1) = (
        Instant::now(),
        flood.sent(),
        forwarder.counters(0, Direction::Up)?,
    );
    flood.stop();
    let seconds = (t1 - t0).as_secs_f64();
    Ok(CapacityReport {
        offered_pps: (sent1 - sent0) as f64 / seconds,
        forwarded_pps: (up1.forwarded - up0.forwarded) as f64 / seconds,
        emulated,
        direct,
        realtime: up1.realtime,
    })
}

/// Ethernet, IPv4 and UDP headers: the flood's frames are as long as UDP
/// datagrams of the configured payload would be.
const UDP_FRAME_OVERHEAD: usize = 14 + 20 + 8;

/// Real-time priority of the flood sender (the forwarder's default is 10).
const FLOOD_PRIORITY: i32 = 5;

/// A thread sending one frame over and over as fast as it can, 64 per
/// `sendmmsg`.
struct Flood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

impl Flood {
    fn start(socket: PacketSocket, frame_len: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (stop_flag, counter) = (Arc::clone(&stop), Arc::clone(&sent));
        let thread = std::thread::spawn(move || {
            // Below the forwarder's priority, above the compilers sharing
            // the machine: the figure is the forwarder's, not the sender's.
            tune_thread(Some(FLOOD_PRIORITY));
            let mut frame = vec![0u8; frame_len.max(60)];
            frame[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
            frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
            frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            let mut batch = MessageBatch::new(64);
            for i in 0..64 {
                batch.point(i, frame.as_mut_ptr(), frame.len());
            }
            while !stop_flag.load(Ordering::Relaxed) {
                // SAFETY: every entry points at `frame`, alive for the loop.
                if let Ok(n) = unsafe { batch.send(&socket, 0, 64) } {
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        });
        Flood { stop, sent, thread }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Sends every datagram it receives back to its sender, until dropped.
pub struct UdpEcho {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpEcho {
    /// Echoes on `socket` (already bound, in whatever namespace).
    pub fn start(socket: UdpSocket) -> io::Result<UdpEcho> {
        let address = socket.local_addr()?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop_flag.load(Ordering::Relaxed) {
                if let Ok((len, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..len], from);
                }
            }
        });
        Ok(UdpEcho {
            address,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends `count` probes `interval` apart from `socket` to an echo at `to`;
/// returns the round-trip times of those back within `wait` after the last
/// was sent (in arrival order).
pub fn round_trips(
    socket: &UdpSocket,
    to: SocketAddr,
    count: u32,
    interval: Duration,
    wait: Duration,
) -> io::Result<Vec<Duration>> {
    const PROBE_LEN: usize = 64;
    let base = Instant::now();
    let receiver = socket.try_clone()?;
    receiver.set_read_timeout(Some(Duration::from_millis(20)))?;
    let deadline = base + interval * count + wait;
    let collector = std::thread::spawn(move || {
        let mut rtts = Vec::with_capacity(count as usize);
        let mut buf = [0u8; PROBE_LEN];
        while rtts.len() < count as usize && Instant::now() < deadline {
            if let Ok(PROBE_LEN) = receiver.recv(&mut buf) {
                let sent_ns = u64::from_be_bytes(buf[..8].try_into().unwrap_or_default());
                let now_ns = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
                rtts.push(Duration::from_nanos(now_ns.saturating_sub(sent_ns)));
            }
        }
        rtts
    });
    let mut probe = [0u8; PROBE_LEN];
    for _ in 0..count {
        let sent_ns = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        probe[..8].copy_from_slice(&sent_ns.to_be_bytes());
        socket.send_to(&probe, to)?;
        std::thread::sleep(interval);
    }
    collector
        .join()
        .map_err(|_| io::Error::other("the probe collector panicked"))
}
