//! The probe receiver: logs every datagram of its stream into memory reserved
//! up front, so receiving allocates nothing per packet.
//!
//! An upload receiver (on the server) listens on one socket. A download
//! receiver (on the client) opens one socket per flow, as a site's
//! applications would, and calls the server from each with hellos, so the
//! server sends each flow back to the address its hellos came from, over
//! whatever path the system under test gives that flow.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::{Domain, Socket, Type};

use serde::{Deserialize, Serialize};

use super::PROBE_PRIORITY;
use super::ProbeRecord;
use super::wire::{HELLO_SEQ, ProbeHeader};
use crate::traffic::{FifoPriority, MonoNanos, STOP_POLL, TrafficError, is_transient};

/// How often a download receiver repeats its hellos: often enough that a
/// flow whose path changed (a new address, a link back) is found again
/// within a fraction of a second, rarely enough to cost nothing.
const HELLO_INTERVAL: Duration = Duration::from_millis(100);

/// Socket receive buffer asked for: absorbs bursts while the thread is descheduled.
const RECEIVE_BUFFER_BYTES: usize = 4 << 20;
/// Largest datagram read; longer ones are truncated (the header is at the start).
const MAX_DATAGRAM: usize = 65_536;

/// The receiver's side of a probe stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiveLog {
    pub stream_id: u32,
    /// Every probe of this stream, in arrival order, duplicates included.
    pub records: Vec<ProbeRecord>,
    /// Probes that arrived after `records` reached its capacity.
    pub not_recorded: u64,
    /// Datagrams that were not probes of this stream (other stream, garbage).
    pub foreign: u64,
}

/// A bound probe receiver; [`ProbeReceiver::run`] records until stopped.
pub struct ProbeReceiver {
    sockets: Vec<UdpSocket>,
    addr: SocketAddr,
    stream_id: u32,
    capacity: usize,
    /// A download receiver's server: flow `i` says hello to its port + `i`.
    hello_to: Option<SocketAddr>,
}

impl ProbeReceiver {
    /// Binds on the caller's thread (in the receiver's namespace). `capacity`
    /// is the most records kept; give room for duplicates, e.g. twice the
    /// stream's packet count.
    pub fn bind(addr: SocketAddr, stream_id: u32, capacity: usize) -> Result<Self, TrafficError> {
        let (socket, addr) = crate::traffic::bind_stoppable(addr)?;
        // Read until empty after each poll, like the download sockets.
        socket
            .set_nonblocking(true)
            .map_err(|source| TrafficError::Bind { addr, source })?;
        enlarge_receive_buffer(&socket, addr);
        Ok(Self {
            sockets: vec![socket],
            addr,
            stream_id,
            capacity,
            hello_to: None,
        })
    }

    /// A download receiver: `flows` sockets, flow `i` pinned to
    /// `flow_devices[i % len]` (if any) and saying hello to `server`'s port
    /// + `i`. Binds on the caller's thread (in the client's namespace).
    pub fn bind_flows(
        server: SocketAddr,
        flows: u16,
        flow_devices: &[String],
        stream_id: u32,
        capacity: usize,
    ) -> Result<Self, TrafficError> {
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        let sockets = (0..flows)
            .map(|flow| {
                let device = crate::traffic::pinned_device(flow_devices, flow);
                let socket = Socket::new(Domain::IPV4, Type::DGRAM, None)
                    .and_then(|socket| {
                        crate::traffic::bind_device(&socket, device)?;
                        socket.bind(&any.into())?;
                        socket.set_nonblocking(true)?;
                        Ok(UdpSocket::from(socket))
                    })
                    .map_err(|source| TrafficError::Bind { addr: any, source })?;
                enlarge_receive_buffer(&socket, any);
                Ok(socket)
            })
            .collect::<Result<Vec<_>, TrafficError>>()?;
        Ok(Self {
            sockets,
            addr: server,
            stream_id,
            capacity,
            hello_to: Some(server),
        })
    }

    /// The bound address (with the actual port if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Records probes on the caller's thread until `stop` is set. Set it only
    /// after the sender finished plus the largest expected latency, or the
    /// last probes in flight count as lost.
    pub fn run(self, stop: &AtomicBool) -> Result<ReceiveLog, TrafficError> {
        let mut log = ReceiveLog {
            stream_id: self.stream_id,
            records: Vec::with_capacity(self.capacity),
            not_recorded: 0,
            foreign: 0,
        };
        let mut buf = vec![0u8; MAX_DATAGRAM];
        // Arrival stamps taken late would read as gaps that were never there.
        let _realtime = FifoPriority::enter(PROBE_PRIORITY);
        // Built once: nothing is allocated per wakeup either.
        let mut ready: Vec<PollFd<'_>> = self
            .sockets
            .iter()
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
            .collect();
        let timeout = PollTimeout::try_from(STOP_POLL).unwrap_or(PollTimeout::MAX);
        let mut next_hello = MonoNanos::now();
        while !stop.load(Ordering::Relaxed) {
            if let Some(server) = self.hello_to
                && MonoNanos::now() >= next_hello
            {
                self.say_hello(server);
                next_hello = MonoNanos::now() + HELLO_INTERVAL;
            }
            match poll(&mut ready, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(errno) => {
                    return Err(TrafficError::Receive {
                        addr: self.addr,
                        source: errno.into(),
                    });
                }
            }
            for (socket, fd) in self.sockets.iter().zip(&ready) {
                if fd.revents().is_none_or(|events| events.is_empty()) {
                    continue;
                }
                loop {
                    match socket.recv(&mut buf) {
                        Ok(len) => self.record(&buf[..len], &mut log),
                        Err(e) if is_transient(e.kind()) => break,
                        // An ICMP error from a dead path, reported on a
                        // download flow's socket: the flow goes on.
                        Err(e)
                            if self.hello_to.is_some()
                                && e.kind() == ErrorKind::ConnectionRefused =>
                        {
                            break;
                        }
                        Err(source) => {
                            return Err(TrafficError::Receive {
                                addr: self.addr,
                                source,
                            });
                        }
                    }
                }
            }
        }
        Ok(log)
    }

    /// One hello from every flow's socket; a hello that cannot be sent (no
    /// route while a link is down) is simply tried again next time.
    fn say_hello(&self, server: SocketAddr) {
        for (flow, socket) in self.sockets.iter().enumerate() {
            let hello = ProbeHeader {
                stream_id: self.stream_id,
                seq: HELLO_SEQ,
                sent: MonoNanos::now(),
                flow: flow as u16,
            };
            let to = SocketAddr::new(server.ip(), server.port().wrapping_add(flow as u16));
            let _ = socket.send_to(&hello.encode(), to);
        }
    }

    /// Logs one datagram read just now.
    fn record(&self, datagram: &[u8], log: &mut ReceiveLog) {
        let received = MonoNanos::now();
        match ProbeHeader::parse(datagram) {
            Ok(header) if header.stream_id == self.stream_id => {
                if log.records.len() < self.capacity {
                    log.records.push(ProbeRecord {
                        seq: header.seq,
                        flow: header.flow,
                        sent: header.sent,
                        received,
                    });
                } else {
                    log.not_recorded += 1;
                }
            }
            _ => log.foreign += 1,
        }
    }
}

fn enlarge_receive_buffer(socket: &UdpSocket, addr: SocketAddr) {
    if let Err(error) = socket2::SockRef::from(socket).set_recv_buffer_size(RECEIVE_BUFFER_BYTES) {
        tracing::debug!(%addr, %error, "probe receiver keeps the default socket buffer");
    }
}
