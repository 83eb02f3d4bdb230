//! The probe receiver: logs every datagram of its stream into memory reserved
//! up front, so receiving allocates nothing per packet.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::PROBE_PRIORITY;
use super::ProbeRecord;
use super::wire::ProbeHeader;
use crate::traffic::{FifoPriority, MonoNanos, TrafficError};

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
    socket: UdpSocket,
    addr: SocketAddr,
    stream_id: u32,
    capacity: usize,
}

impl ProbeReceiver {
    /// Binds on the caller's thread (in the receiver's namespace). `capacity`
    /// is the most records kept; give room for duplicates, e.g. twice the
    /// stream's packet count.
    pub fn bind(addr: SocketAddr, stream_id: u32, capacity: usize) -> Result<Self, TrafficError> {
        let (socket, addr) = crate::traffic::bind_stoppable(addr)?;
        if let Err(error) =
            socket2::SockRef::from(&socket).set_recv_buffer_size(RECEIVE_BUFFER_BYTES)
        {
            tracing::debug!(%addr, %error, "probe receiver keeps the default socket buffer");
        }
        Ok(Self {
            socket,
            addr,
            stream_id,
            capacity,
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
        while !stop.load(Ordering::Relaxed) {
            let len = match self.socket.recv(&mut buf) {
                Ok(len) => len,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(source) => {
                    return Err(TrafficError::Receive {
                        addr: self.addr,
                        source,
                    });
                }
            };
            let received = MonoNanos::now();
            match ProbeHeader::parse(&buf[..len]) {
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
        Ok(log)
    }
}
