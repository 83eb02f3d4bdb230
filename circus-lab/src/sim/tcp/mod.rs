//! A bulk TCP model for the simulator: one sender that always has data and
//! one receiver per flow, sans-IO in the manner of quinn-proto (time is an
//! argument, the caller owns the buffers, each end says when it next wants
//! to run), exchanging real IPv4/TCP packets so a tunnel classifies them as
//! it would Linux's.
//!
//! It behaves as Linux's defaults do, since its goodput is compared with
//! real runs: CUBIC with HyStart, SACK, RACK loss detection (time-based, so
//! a multipath tunnel's reordering is not taken for loss once seen), PRR
//! during recovery, RTO per RFC 6298 with a 200 ms minimum and exponential
//! backoff, delayed ACKs (every second segment or 40 ms, at once for
//! out-of-order data), initial window 10, no pacing.
//!
//! Left out: the handshake (flows start established, with window scaling
//! and SACK agreed), receive-window autotuning (the window is its
//! configured maximum from the start, which autotuning reaches within a few
//! round trips of a bulk flow), tail loss probes, DSACK-based undo, ECN.
//!
//! Map:
//! - `segment`: the packets, written and parsed;
//! - `ranges`: SACK and out-of-order ranges;
//! - `cubic`: the congestion window;
//! - `sender`, `receiver`: the two ends of a flow;
//! - `traffic`: a run's flows in both directions, for the systems' drivers;
//! - [`Goodput`]: what receivers delivered, as the real receiver logs it.

mod cubic;
mod ranges;
mod receiver;
pub mod segment;
mod sender;
mod traffic;

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

pub use receiver::Receiver;
pub use segment::Endpoints;
pub use sender::Sender;
pub use traffic::{TcpPlan, TcpTraffic};

use crate::traffic::MonoNanos;
use crate::traffic::tcp::{TcpFlavor, TcpFlowLog, TcpLog, TcpReceiverConfig, bin_index};

/// Linux's initial congestion window, segments (RFC 6928).
pub const INITIAL_WINDOW: u32 = 10;
/// The real receiver's bin width (the runner's).
pub const GOODPUT_BIN: Duration = Duration::from_millis(100);
/// Linux's largest receive window with default sysctls (`tcp_rmem` 6 MB).
pub const DEFAULT_RECEIVE_WINDOW: u32 = 6 << 20;

/// One flow's settings, shared by its two ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// The sender's and receiver's addresses: data goes `src` to `dst`,
    /// ACKs back.
    pub endpoints: Endpoints,
    /// The first sequence number (the handshake is not modelled).
    pub isn: u32,
    /// Payload bytes per segment.
    pub mss: usize,
    /// The receive window the receiver advertises, bytes.
    pub receive_window: u32,
    /// When the sender starts writing.
    pub start: Duration,
    /// When the sending application stops writing; what it wrote by then
    /// (what the socket's send buffer held) is still delivered.
    pub stop: Duration,
}

impl FlowConfig {
    /// A flow from `src` to `dst` over a path whose packets may be `mtu`
    /// bytes, writing from `start` to `stop`. The sequence numbers start
    /// near the top of their space, so wrapping is exercised early.
    pub fn new(
        src: SocketAddrV4,
        dst: SocketAddrV4,
        mtu: usize,
        start: Duration,
        stop: Duration,
    ) -> FlowConfig {
        FlowConfig {
            endpoints: Endpoints { src, dst },
            isn: u32::MAX - 1_000_000 * u32::from(src.port() % 64),
            mss: mss_for_mtu(mtu),
            receive_window: DEFAULT_RECEIVE_WINDOW,
            start,
            stop,
        }
    }

    /// The sender and the receiver of the flow.
    pub fn ends(&self) -> (Sender, Receiver) {
        (Sender::new(self), Receiver::new(self))
    }
}

/// Payload bytes per segment in packets of `mtu` bytes, with the headers
/// and the timestamp option Linux sends on every segment.
pub fn mss_for_mtu(mtu: usize) -> usize {
    mtu.saturating_sub(segment::HEADERS_LEN).max(64)
}

/// The byte offset from the flow's start that the 32-bit sequence number
/// `seq` stands for, taken as the one closest to `near` (wrapping is
/// resolved the way every TCP does: the peer is never 2 GB off).
fn unwrap_seq(seq: u32, isn: u32, near: u64) -> u64 {
    let offset = seq.wrapping_sub(isn);
    let near_low = near as u32;
    let delta = offset.wrapping_sub(near_low) as i32;
    near.saturating_add_signed(i64::from(delta))
}

/// The 32-bit sequence number of byte `offset`.
fn wrap_seq(offset: u64, isn: u32) -> u32 {
    isn.wrapping_add(offset as u32)
}

/// Bytes the receivers of one direction delivered in order to their
/// application, binned and per flow as the real bulk receiver logs them
/// ([`crate::traffic::tcp`]), on the simulation's clock.
#[derive(Debug)]
pub struct Goodput {
    log: TcpLog,
}

impl Goodput {
    /// An empty log for `flows`, with the real receiver's bins from
    /// `origin` over the measurement window `duration`.
    pub fn new(origin: MonoNanos, duration: Duration, flows: &[FlowConfig]) -> Goodput {
        let mut log = TcpLog::empty(&TcpReceiverConfig {
            flavor: TcpFlavor::Tcp,
            origin,
            bin: GOODPUT_BIN,
            duration,
            until_flows_closed: None,
        });
        log.flows = flows
            .iter()
            .map(|flow| TcpFlowLog {
                peer: SocketAddr::V4(flow.endpoints.src),
                bytes: 0,
                first_byte: None,
                last_byte: None,
            })
            .collect();
        Goodput { log }
    }

    /// Flow `flow` (its index in the list given to [`Goodput::new`])
    /// delivered `bytes` at `now`.
    pub fn delivered(&mut self, flow: usize, now: MonoNanos, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let log = &mut self.log;
        let bin = bin_index(log.origin, log.bin, log.bytes_per_bin.len(), now);
        if let Some(count) = log.bytes_per_bin.get_mut(bin) {
            *count += bytes;
        }
        if let Some(flow) = log.flows.get_mut(flow) {
            flow.bytes += bytes;
            flow.first_byte.get_or_insert(now);
            flow.last_byte = Some(now);
        }
    }

    pub fn into_log(self) -> TcpLog {
        self.log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_unwrap_across_the_wrap() {
        let isn = u32::MAX - 10;
        assert_eq!(unwrap_seq(wrap_seq(5, isn), isn, 0), 5);
        assert_eq!(unwrap_seq(wrap_seq(20, isn), isn, 8), 20);
        let far = (1u64 << 32) + 100;
        assert_eq!(unwrap_seq(wrap_seq(far, isn), isn, far - 50_000), far);
        assert_eq!(unwrap_seq(wrap_seq(far - 7, isn), isn, far), far - 7);
        // Never below zero, whatever the peer says.
        assert_eq!(unwrap_seq(isn.wrapping_sub(5), isn, 0), 0);
    }

    #[test]
    fn mss_leaves_room_for_linux_headers() {
        assert_eq!(mss_for_mtu(1500), 1448);
    }
}
