//! UDP load: one thread sends fixed-size datagrams at a fixed offered load;
//! the receiver counts the payload bytes that arrive in a measurement window.
//! Its goodput is what a path carries in packets, without the super-packets
//! (GSO/TSO) that make kernel TCP over veth an unfair reference for a tunnel
//! that handles every packet on its own.
//!
//! Both ends batch their system calls (`sendmmsg`, `recvmmsg`, up to
//! [`BATCH`] datagrams) so that they, not the path, are rarely the limit. The
//! sender paces whole batches: batch `k` is due at `start + k x batch time`,
//! an absolute deadline, so a late batch is sent at once and the load catches
//! up; a sender that cannot keep up simply sends as fast as it can.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{MonoNanos, TimerSlack, TrafficError};

/// Datagrams per `sendmmsg` / `recvmmsg` call.
pub const BATCH: usize = 32;
/// Largest payload sent: one unfragmented datagram over a 1500-byte IPv4 path.
pub const MAX_SIZE: usize = 1472;
/// Receive slot per datagram: any payload up to [`MAX_SIZE`] fits.
const SLOT: usize = 2048;
/// Socket buffers: absorb bursts while a thread is descheduled.
const BUFFER_BYTES: usize = 8 << 20;

/// What to send, to whom, how fast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpLoad {
    pub target: SocketAddr,
    /// UDP payload bytes per datagram.
    pub size: usize,
    /// Offered load in payload bits per second.
    pub rate_bps: u64,
    pub duration: Duration,
    /// Interface the datagrams must leave on whatever the routing table
    /// prefers (see the probe sender's `flow_devices`); `None` follows routing.
    pub device: Option<String>,
}

impl UdpLoad {
    /// Time one batch of [`BATCH`] datagrams takes at the offered load.
    fn batch_interval(&self) -> Duration {
        let bits = (BATCH * self.size * 8) as u128;
        Duration::from_nanos((bits * 1_000_000_000 / u128::from(self.rate_bps)) as u64)
    }

    fn validate(&self) -> Result<(), TrafficError> {
        let invalid = |key, expected, got: String| TrafficError::Config { key, expected, got };
        if !(1..=MAX_SIZE).contains(&self.size) {
            return Err(invalid(
                "size",
                "a UDP payload of 1 to 1472 bytes",
                self.size.to_string(),
            ));
        }
        if self.rate_bps == 0 {
            return Err(invalid("rate_bps", "at least 1", self.rate_bps.to_string()));
        }
        Ok(())
    }
}

/// What the sender did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpSendReport {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Datagrams it refused (full buffer, no route).
    pub refused: u64,
}

/// Sends on the caller's thread (already in the sender's namespace) from
/// `start` for the configured duration, or until `stop` is set.
pub fn send_udp_load(
    config: &UdpLoad,
    start: MonoNanos,
    stop: &AtomicBool,
) -> Result<UdpSendReport, TrafficError> {
    config.validate()?;
    let local = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .and_then(|socket| {
            super::bind_device(&socket, config.device.as_deref())?;
            socket.bind(&local.into())?;
            Ok(UdpSocket::from(socket))
        })
        .map_err(|source| TrafficError::Bind {
            addr: local,
            source,
        })?;
    enlarge_buffer(&socket, libc::SO_SNDBUFFORCE);
    let payload = vec![0x5a_u8; config.size];
    let target = socket2::SockAddr::from(config.target);
    let mut iovecs = [libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    }; BATCH];
    // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
    let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (header, iovec) in headers.iter_mut().zip(&mut iovecs) {
        header.msg_hdr.msg_name = target.as_ptr() as *mut libc::c_void;
        header.msg_hdr.msg_namelen = target.len();
        header.msg_hdr.msg_iov = iovec;
        header.msg_hdr.msg_iovlen = 1;
    }
    let interval = config.batch_interval();
    let end = start + config.duration;
    let mut report = UdpSendReport {
        sent: 0,
        refused: 0,
    };
    let _slack = TimerSlack::tighten();
    let mut due = start;
    while due < end && !stop.load(Ordering::Relaxed) {
        due.sleep_until();
        let mut done = 0;
        while done < BATCH {
            // SAFETY: the headers point at `iovecs`, `payload` and `target`,
            // all alive for the call; the kernel only reads them (and
            // writes `msg_len`).
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    headers[done..].as_mut_ptr(),
                    (BATCH - done) as libc::c_uint,
                    0,
                )
            };
            if n > 0 {
                done += n as usize;
                report.sent += n as u64;
            } else if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                // The first datagram was refused: count it, go on.
                done += 1;
                report.refused += 1;
            }
        }
        due = due + interval;
    }
    Ok(report)
}

/// What the receiver counted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UdpReceiveLog {
    /// Datagrams and their payload bytes received inside the window.
    pub datagrams: u64,
    pub bytes: u64,
    /// Datagrams received outside the window (ramp-up, drain).
    pub outside: u64,
    /// Length of the measurement window.
    pub window: Duration,
}

impl UdpReceiveLog {
    /// Payload bits per second received during the window, in Mbit/s.
    pub fn goodput_mbps(&self) -> f64 {
        if self.window.is_zero() {
            return 0.0;
        }
        self.bytes as f64 * 8.0 / self.window.as_secs_f64() / 1e6
    }
}

/// Both ends of one UDP load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UdpLoadLog {
    pub sent: UdpSendReport,
    pub received: UdpReceiveLog,
}

/// A bound UDP load receiver; [`UdpLoadReceiver::run`] counts until stopped.
pub struct UdpLoadReceiver {
    socket: UdpSocket,
    addr: SocketAddr,
}

impl UdpLoadReceiver {
    /// Binds on the caller's thread (in the receiver's namespace).
    pub fn bind(addr: SocketAddr) -> Result<Self, TrafficError> {
        let (socket, addr) = super::bind_stoppable(addr)?;
        enlarge_buffer(&socket, libc::SO_RCVBUFFORCE);
        Ok(Self { socket, addr })
    }

    /// The bound address (with the actual port if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counts datagrams on the caller's thread until `stop` is set; those
    /// read in `[from, until)` make the goodput. A batch is stamped with
    /// the time its `recvmmsg` returned.
    pub fn run(
        self,
        from: MonoNanos,
        until: MonoNanos,
        stop: &AtomicBool,
    ) -> Result<UdpReceiveLog, TrafficError> {
        let mut log = UdpReceiveLog {
            datagrams: 0,
            bytes: 0,
            outside: 0,
            window: until.saturating_since(from),
        };
        let mut slots = vec![0u8; SLOT * BATCH];
        let mut iovecs: Vec<libc::iovec> = slots
            .chunks_mut(SLOT)
            .map(|slot| libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: slot.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (header, iovec) in headers.iter_mut().zip(&mut iovecs) {
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
        }
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: each header points at one iovec over its own slot of
            // `slots`, alive and not otherwise borrowed during the call.
            // Blocks for the first datagram (up to super::STOP_POLL), then takes
            // what is already queued.
            let n = unsafe {
                libc::recvmmsg(
                    self.socket.as_raw_fd(),
                    headers.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) {
                    continue;
                }
                return Err(TrafficError::Receive {
                    addr: self.addr,
                    source: e,
                });
            }
            let now = MonoNanos::now();
            let received = &headers[..n as usize];
            if (from..until).contains(&now) {
                log.datagrams += received.len() as u64;
                log.bytes += received.iter().map(|h| u64::from(h.msg_len)).sum::<u64>();
            } else {
                log.outside += received.len() as u64;
            }
        }
        Ok(log)
    }
}

/// Best effort: the lab runs as root, so the size is forced past
/// `rmem_max`/`wmem_max`; the default works too, only with more drops.
fn enlarge_buffer(socket: &UdpSocket, option: libc::c_int) {
    let size = BUFFER_BYTES as libc::c_int;
    // SAFETY: a SOL_SOCKET option with an int value of the size given, on a
    // descriptor `socket` keeps open.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw const size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "UDP load keeps the default socket buffer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_lasts_its_bits_at_the_offered_load() {
        let config = UdpLoad {
            target: "127.0.0.1:9".parse().unwrap(),
            size: 1000,
            rate_bps: 256_000_000,
            duration: Duration::from_secs(1),
            device: None,
        };
        // 32 x 1000 B x 8 = 256,000 bits at 256 Mbit/s: 1 ms.
        assert_eq!(config.batch_interval(), Duration::from_millis(1));
    }

    #[test]
    fn loopback_goodput_counts_only_the_window() {
        let receiver = UdpLoadReceiver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let config = UdpLoad {
            target: receiver.local_addr(),
            size: 1200,
            rate_bps: 20_000_000,
            duration: Duration::from_millis(600),
            device: None,
        };
        let start = MonoNanos::now() + Duration::from_millis(50);
        let (from, until) = (
            start + Duration::from_millis(200),
            start + Duration::from_millis(500),
        );
        let stop = AtomicBool::new(false);
        let log = std::thread::scope(|scope| {
            let receiving = scope.spawn(|| receiver.run(from, until, &stop));
            let report = send_udp_load(&config, start, &AtomicBool::new(false)).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            stop.store(true, Ordering::Relaxed);
            let log = receiving.join().unwrap().unwrap();
            assert_eq!(report.refused, 0);
            assert_eq!(log.datagrams + log.outside, report.sent);
            log
        });
        assert_eq!(log.bytes, log.datagrams * 1200);
        assert!(log.outside > 0, "{log:?}");
        // 20 Mbit/s offered on loopback; wide bounds, only catching a broken
        // window or unit (the machine is shared).
        let goodput = log.goodput_mbps();
        assert!((10.0..30.0).contains(&goodput), "{goodput} Mbit/s");
    }
}
