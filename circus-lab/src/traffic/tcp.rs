//! Bulk TCP flows: N connections each writing as fast as the path allows for
//! a duration; the receiver counts bytes per time bin, from which the metrics
//! derive goodput.
//!
//! With [`TcpFlavor::Mptcp`] both ends open their sockets with
//! `IPPROTO_MPTCP` (the `mptcp` baseline); everything else is identical.
//!
//! Sockets are non-blocking and waited on with `poll` in short slices, so
//! every loop sees the end of the run even on a dead path: MPTCP listeners
//! ignore `SO_RCVTIMEO` in `accept`, so socket timeouts are not enough.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

use super::{MonoNanos, TrafficError, is_transient};

/// Linux's protocol number for MPTCP sockets (not in every libc yet).
pub const IPPROTO_MPTCP: i32 = 262;
/// The senders' congestion control. A namespace inherits the host's
/// default, which varies (this lab's host runs BBR, which shrugs off the
/// random loss CUBIC backs off from), and only the initial namespace may
/// change it: set per socket (root may pick any), results stay comparable
/// across hosts and with the simulator's model, CUBIC as Linux ships it.
const CONGESTION_CONTROL: &[u8] = b"cubic";
/// How long one wait for a socket lasts before the loop checks for the end.
const POLL: Duration = Duration::from_millis(50);
/// Bytes handed to the kernel per write and read.
const CHUNK: usize = 64 * 1024;

/// Plain TCP or kernel MPTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TcpFlavor {
    Tcp,
    Mptcp,
}

impl TcpFlavor {
    fn protocol(self) -> Protocol {
        match self {
            TcpFlavor::Tcp => Protocol::TCP,
            TcpFlavor::Mptcp => Protocol::from(IPPROTO_MPTCP),
        }
    }

    fn open(self, addr: SocketAddr) -> Result<Socket, TrafficError> {
        Socket::new(
            Domain::for_address(addr),
            Type::STREAM,
            Some(self.protocol()),
        )
        .map_err(|source| TrafficError::Socket {
            what: match self {
                TcpFlavor::Tcp => "TCP",
                TcpFlavor::Mptcp => "MPTCP",
            },
            addr,
            source,
        })
    }
}

/// The sending side of the bulk flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSenderConfig {
    pub target: SocketAddr,
    pub flows: u16,
    /// How long each flow keeps writing.
    pub duration: Duration,
    pub flavor: TcpFlavor,
    /// A flow whose connection is not established by then is reported failed.
    pub connect_timeout: Duration,
    /// Flow `i` leaves on interface `flow_devices[i % len]`; empty leaves the
    /// choice to routing (see the probe sender's field of the same name).
    pub flow_devices: Vec<String>,
}

/// What one sending flow did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpFlowReport {
    pub bytes_written: u64,
    /// Why the flow stopped early (connect or write error), if it did.
    pub error: Option<String>,
}

/// Opens `flows` connections and writes on each until `duration` has passed
/// or `stop` is set. One thread per flow (they inherit the caller's network
/// namespace); blocks until all are done. A failed flow does not stop the
/// others: its error is in its report.
pub fn send_bulk(
    config: &TcpSenderConfig,
    stop: &AtomicBool,
) -> Result<Vec<TcpFlowReport>, TrafficError> {
    if config.flows == 0 {
        return Err(TrafficError::Config {
            key: "flows",
            expected: "at least 1",
            got: "0".into(),
        });
    }
    let end = MonoNanos::now() + config.duration;
    thread::scope(|scope| {
        let handles: Vec<_> = (0..config.flows)
            .map(|flow| scope.spawn(move || send_one_flow(config, flow, end, stop)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().map_err(|_| TrafficError::ThreadPanicked {
                    thread: "tcp sender flow",
                    addr: config.target,
                })
            })
            .collect()
    })
}

fn send_one_flow(
    config: &TcpSenderConfig,
    flow: u16,
    end: MonoNanos,
    stop: &AtomicBool,
) -> TcpFlowReport {
    match connect_flow(config, flow) {
        Ok(socket) => write_until(socket, config.target, end, stop),
        Err(error) => TcpFlowReport {
            bytes_written: 0,
            error: Some(error),
        },
    }
}

/// Opens flow `flow`'s connection to `config.target`, pinned to its
/// device if any; the error says what failed.
fn connect_flow(config: &TcpSenderConfig, flow: u16) -> Result<Socket, String> {
    let socket = config
        .flavor
        .open(config.target)
        .map_err(|error| error.to_string())?;
    super::bind_device(&socket, super::pinned_device(&config.flow_devices, flow))
        .and_then(|()| socket.connect_timeout(&config.target.into(), config.connect_timeout))
        .and_then(|()| socket.set_nonblocking(true))
        .map_err(|error| format!("connect to {}: {error}", config.target))?;
    Ok(socket)
}

/// Writes on a connected socket until `end` or `stop`, then closes its
/// sending side so the receiver sees the end.
fn write_until(
    socket: Socket,
    peer: SocketAddr,
    end: MonoNanos,
    stop: &AtomicBool,
) -> TcpFlowReport {
    let mut report = TcpFlowReport {
        bytes_written: 0,
        error: None,
    };
    if let Err(error) = socket.set_nonblocking(true) {
        report.error = Some(format!("write to {peer}: {error}"));
        return report;
    }
    if let Err(error) = socket.set_tcp_congestion(CONGESTION_CONTROL) {
        report.error = Some(format!(
            "congestion control {}: {error}",
            String::from_utf8_lossy(CONGESTION_CONTROL)
        ));
        return report;
    }
    let mut stream = std::net::TcpStream::from(socket);
    let chunk = vec![0u8; CHUNK];
    while MonoNanos::now() < end && !stop.load(Ordering::Relaxed) {
        match wait_for(&stream, libc::POLLOUT).and_then(|()| stream.write(&chunk)) {
            Ok(written) => report.bytes_written += written as u64,
            Err(e) if is_transient(e.kind()) => {}
            Err(error) => {
                report.error = Some(format!("write to {peer}: {error}"));
                break;
            }
        }
    }
    // The receiver sees EOF; an error here only means the peer is gone.
    let _ = stream.shutdown(Shutdown::Write);
    report
}

/// Binds and listens on `addr` (non-blocking) on the caller's thread;
/// returns the listener and the address actually bound.
fn listen(addr: SocketAddr, flavor: TcpFlavor) -> Result<(Socket, SocketAddr), TrafficError> {
    let listener = flavor.open(addr)?;
    let bind_error = |source| TrafficError::Bind { addr, source };
    listener.set_reuse_address(true).map_err(bind_error)?;
    listener.bind(&addr.into()).map_err(bind_error)?;
    listener.listen(128).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let bound = listener
        .local_addr()
        .ok()
        .and_then(|local| local.as_socket())
        .unwrap_or(addr);
    Ok((listener, bound))
}

/// Accepts connections on `listener` until `stop`, handing each to `serve`
/// on a thread of its own; returns what they returned, in accept order.
fn accept_each<T: Send>(
    listener: &Socket,
    addr: SocketAddr,
    stop: &AtomicBool,
    done: impl Fn(usize, bool) -> bool,
    serve: impl Fn(Socket, SocketAddr) -> T + Sync,
    thread_name: &'static str,
) -> Result<Vec<T>, TrafficError> {
    thread::scope(|scope| {
        let mut handles: Vec<thread::ScopedJoinHandle<'_, T>> = Vec::new();
        while !stop.load(Ordering::Relaxed)
            && !done(handles.len(), handles.iter().all(|h| h.is_finished()))
        {
            match wait_for(listener, libc::POLLIN).and_then(|()| listener.accept()) {
                Ok((socket, peer)) => {
                    let peer = peer.as_socket().unwrap_or(addr);
                    let serve = &serve;
                    handles.push(scope.spawn(move || serve(socket, peer)));
                }
                Err(e) if is_transient(e.kind()) => {}
                Err(source) => {
                    // Let the accepted flows finish, then report.
                    stop.store(true, Ordering::Relaxed);
                    for handle in handles {
                        let _ = handle.join();
                    }
                    return Err(TrafficError::Accept { addr, source });
                }
            }
        }
        handles
            .into_iter()
            .map(|handle| {
                handle.join().map_err(|_| TrafficError::ThreadPanicked {
                    thread: thread_name,
                    addr,
                })
            })
            .collect()
    })
}

/// The server's side of download flows: accepts the client's connections
/// and writes on each until `end`.
pub struct TcpBulkServer {
    listener: Socket,
    addr: SocketAddr,
}

impl TcpBulkServer {
    /// Binds and listens on the caller's thread (in the server's namespace).
    pub fn bind(addr: SocketAddr, flavor: TcpFlavor) -> Result<Self, TrafficError> {
        let (listener, addr) = listen(addr, flavor)?;
        Ok(Self { listener, addr })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accepts connections and writes on each until `end` (or `stop`).
    pub fn run(
        self,
        end: MonoNanos,
        stop: &AtomicBool,
    ) -> Result<Vec<TcpFlowReport>, TrafficError> {
        accept_each(
            &self.listener,
            self.addr,
            stop,
            |_, _| MonoNanos::now() >= end,
            |socket, peer| write_until(socket, peer, end, stop),
            "tcp download sender flow",
        )
    }
}

/// The receiving side of the bulk flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpReceiverConfig {
    pub flavor: TcpFlavor,
    /// Time zero of the bins (the scenario's start).
    pub origin: MonoNanos,
    /// Width of one byte-count bin.
    pub bin: Duration,
    /// The measurement window over which goodput is averaged, from `origin`.
    pub duration: Duration,
    /// Return without waiting for `stop` once this many flows were accepted
    /// and their senders closed them all: a transfer is then counted to its
    /// last byte however slow the machine. `None` (the lab) runs until `stop`.
    pub until_flows_closed: Option<u16>,
}

/// Bytes one accepted connection delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpFlowLog {
    pub peer: SocketAddr,
    pub bytes: u64,
    pub first_byte: Option<MonoNanos>,
    pub last_byte: Option<MonoNanos>,
}

/// Bytes received by all flows, per time bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpLog {
    pub origin: MonoNanos,
    pub bin: Duration,
    /// The measurement window (from `origin`) goodput is averaged over.
    pub duration: Duration,
    /// Bytes received in `[origin + i*bin, origin + (i+1)*bin)`; bytes before
    /// `origin` count in the first bin, bytes after the window in the last.
    pub bytes_per_bin: Vec<u64>,
    pub flows: Vec<TcpFlowLog>,
}

impl TcpLog {
    /// An empty log for `config` (no flow connected yet).
    pub fn empty(config: &TcpReceiverConfig) -> Self {
        Self {
            origin: config.origin,
            bin: config.bin,
            duration: config.duration,
            bytes_per_bin: vec![0; bin_count(config)],
            flows: Vec::new(),
        }
    }

    /// All bytes received.
    pub fn total_bytes(&self) -> u64 {
        self.bytes_per_bin.iter().sum()
    }
}

/// The bin of `bins` that bytes received at `now` count in: from `origin`
/// in steps of `bin`, the last one taking everything after the window.
/// The simulator's receivers bin with it too.
pub fn bin_index(origin: MonoNanos, bin: Duration, bins: usize, now: MonoNanos) -> usize {
    let bin_ns = bin.as_nanos().max(1);
    let index = (now.saturating_since(origin).as_nanos() / bin_ns) as usize;
    index.min(bins.saturating_sub(1))
}

/// Bins covering the window, plus one for bytes arriving after it.
fn bin_count(config: &TcpReceiverConfig) -> usize {
    let bin_ns = config.bin.as_nanos().max(1);
    config.duration.as_nanos().div_ceil(bin_ns) as usize + 1
}

/// How the receiving side gets its connections.
enum Connections {
    /// Listens (the server receiving uploads).
    Accept(Socket),
    /// Connects out (the client receiving downloads).
    Connect(TcpSenderConfig),
}

/// A bulk receiver, listening for uploads or connecting for downloads.
pub struct TcpBulkReceiver {
    connections: Connections,
    addr: SocketAddr,
    config: TcpReceiverConfig,
}

impl TcpBulkReceiver {
    /// Binds and listens on the caller's thread (in the receiver's namespace).
    pub fn bind(addr: SocketAddr, config: TcpReceiverConfig) -> Result<Self, TrafficError> {
        check_bin(&config)?;
        let (listener, addr) = listen(addr, config.flavor)?;
        Ok(Self {
            connections: Connections::Accept(listener),
            addr,
            config,
        })
    }

    /// A receiver that opens `connect.flows` connections to a
    /// [`TcpBulkServer`] at `connect.target` (pinned as `connect` says) and
    /// counts what comes back. Connects when run, from the caller's thread's
    /// namespace.
    pub fn connect(
        connect: TcpSenderConfig,
        config: TcpReceiverConfig,
    ) -> Result<Self, TrafficError> {
        check_bin(&config)?;
        Ok(Self {
            addr: connect.target,
            connections: Connections::Connect(connect),
            config,
        })
    }

    /// The bound address (with the actual port if 0 was asked for), or the
    /// server's for a connecting receiver.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counts the bytes of every connection until `stop` is set (or, with
    /// [`TcpReceiverConfig::until_flows_closed`], all flows ended); one
    /// thread per connection, each with its own preallocated bins, merged at
    /// the end.
    pub fn run(self, stop: &AtomicBool) -> Result<TcpLog, TrafficError> {
        let config = &self.config;
        let flows: Vec<(TcpFlowLog, Vec<u64>)> = match &self.connections {
            Connections::Accept(listener) => accept_each(
                listener,
                self.addr,
                stop,
                |accepted, all_finished| {
                    config
                        .until_flows_closed
                        .is_some_and(|n| accepted >= usize::from(n) && all_finished)
                },
                |socket, peer| receive_one_flow(socket, peer, config, stop),
                "tcp receiver flow",
            )?,
            Connections::Connect(connect) => thread::scope(|scope| {
                let handles: Vec<_> = (0..connect.flows)
                    .map(|flow| {
                        scope.spawn(move || match connect_flow(connect, flow) {
                            Ok(socket) => receive_one_flow(socket, connect.target, config, stop),
                            Err(error) => {
                                tracing::warn!("tcp download flow: {error}");
                                let flow = TcpFlowLog {
                                    peer: connect.target,
                                    bytes: 0,
                                    first_byte: None,
                                    last_byte: None,
                                };
                                (flow, Vec::new())
                            }
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|handle| {
                        handle.join().map_err(|_| TrafficError::ThreadPanicked {
                            thread: "tcp download receiver flow",
                            addr: connect.target,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })?,
        };
        let mut log = TcpLog::empty(config);
        for (flow, bins) in flows {
            for (total, bytes) in log.bytes_per_bin.iter_mut().zip(bins) {
                *total += bytes;
            }
            log.flows.push(flow);
        }
        Ok(log)
    }
}

fn check_bin(config: &TcpReceiverConfig) -> Result<(), TrafficError> {
    if config.bin.is_zero() {
        return Err(TrafficError::Config {
            key: "bin",
            expected: "a positive duration",
            got: "0s".into(),
        });
    }
    Ok(())
}

fn receive_one_flow(
    socket: Socket,
    peer: SocketAddr,
    config: &TcpReceiverConfig,
    stop: &AtomicBool,
) -> (TcpFlowLog, Vec<u64>) {
    let mut flow = TcpFlowLog {
        peer,
        bytes: 0,
        first_byte: None,
        last_byte: None,
    };
    let mut bins = vec![0u64; bin_count(config)];
    if socket.set_nonblocking(true).is_err() {
        return (flow, bins);
    }
    let mut stream = std::net::TcpStream::from(socket);
    let mut buf = vec![0u8; CHUNK];
    while !stop.load(Ordering::Relaxed) {
        match wait_for(&stream, libc::POLLIN).and_then(|()| stream.read(&mut buf)) {
            Ok(0) => break,
            Ok(len) => {
                let now = MonoNanos::now();
                let bin = bin_index(config.origin, config.bin, bins.len(), now);
                bins[bin] += len as u64;
                flow.bytes += len as u64;
                flow.first_byte.get_or_insert(now);
                flow.last_byte = Some(now);
            }
            Err(e) if is_transient(e.kind()) => {}
            Err(_) => break,
        }
    }
    (flow, bins)
}

/// Waits up to [`POLL`] for `socket` to be ready for `events`; not ready in
/// time is reported as `WouldBlock` so callers treat it like a spurious wakeup.
fn wait_for(socket: &impl AsRawFd, events: libc::c_short) -> io::Result<()> {
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, the count passed is 1.
    match unsafe { libc::poll(&mut fd, 1, POLL.as_millis() as libc::c_int) } {
        0 => Err(ErrorKind::WouldBlock.into()),
        ready if ready > 0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
