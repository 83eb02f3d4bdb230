//! A ping: ICMP echo requests from a namespace over a raw socket. The far
//! end's kernel answers them, so nothing has to run there.

use super::Netns;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(10);
/// How long replies are still awaited after the stop.
const LINGER: Duration = Duration::from_secs(1);
const PAYLOAD_LEN: usize = 56;
const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST: u8 = 8;

/// Outcome of a ping.
#[derive(Debug, Clone, Copy)]
pub struct PingResult {
    pub sent: u32,
    /// Distinct sequence numbers answered intact.
    pub replied: u32,
    /// Replies with our identifier that are not exactly the reply to the
    /// request they name (checksum, payload, or a sequence never sent).
    pub corrupted: u32,
    /// Intact replies to a sequence number already answered.
    pub duplicates: u32,
    pub max_rtt: Duration,
}

impl PingResult {
    pub fn lost(&self) -> u32 {
        self.sent - self.replied
    }
}

/// Echo requests every 10 ms from a thread inside a namespace, until
/// [`Pinger::stop`].
pub struct Pinger {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<PingResult>,
}

impl Pinger {
    pub fn start(ns: &Netns, to: Ipv4Addr) -> Pinger {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = ns.spawn(move || {
            let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
                .expect("raw ICMP socket");
            ready_tx.send(()).unwrap();
            let mut ping = Ping::new(socket, to);
            let mut next = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                ping.send();
                // On a schedule: the kernel rounds read timeouts up to its
                // tick (4 ms at HZ=250), which would stretch each interval.
                next = (next + INTERVAL).max(Instant::now());
                ping.receive_until(next);
            }
            ping.receive_until(Instant::now() + LINGER);
            ping.result
        });
        ready_rx.recv().expect("pinger started");
        Pinger { stop, thread }
    }

    /// Stops sending and returns the result once late replies had a second.
    pub fn stop(self) -> PingResult {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("pinger thread panicked")
    }
}

struct Ping {
    socket: Socket,
    to: SockAddr,
    /// A raw socket sees every ICMP packet of its namespace: the
    /// identifier tells our replies from others.
    id: u16,
    /// When each sequence number was sent.
    sent_at: Vec<Instant>,
    /// Whether each sequence number has been answered intact.
    answered: Vec<bool>,
    result: PingResult,
}

impl Ping {
    fn new(socket: Socket, to: Ipv4Addr) -> Ping {
        Ping {
            socket,
            to: SocketAddrV4::new(to, 0).into(),
            id: std::process::id() as u16,
            sent_at: Vec::new(),
            answered: Vec::new(),
            result: PingResult {
                sent: 0,
                replied: 0,
                corrupted: 0,
                duplicates: 0,
                max_rtt: Duration::ZERO,
            },
        }
    }

    fn send(&mut self) {
        let seq = u16::try_from(self.sent_at.len()).expect("under 65536 echoes (11 minutes)");
        // A failed send still counts as sent: it shows as lost.
        let _ = self
            .socket
            .send_to(&message(ECHO_REQUEST, self.id, seq), &self.to);
        self.sent_at.push(Instant::now());
        self.answered.push(false);
        self.result.sent += 1;
    }

    /// Receives and judges replies until `until`, blocking in between.
    fn receive_until(&mut self, until: Instant) {
        let mut buf = [0u8; 1500];
        loop {
            let wait = until.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return;
            }
            // socket2 passes a timeout under 1 µs on as zero, which the
            // kernel takes as none at all.
            let wait = wait.max(Duration::from_micros(1));
            self.socket.set_read_timeout(Some(wait)).unwrap();
            if let Ok(n) = (&self.socket).read(&mut buf) {
                self.judge(&buf[..n]);
            }
        }
    }

    /// Counts one packet from the raw socket, which includes its IPv4 header.
    fn judge(&mut self, packet: &[u8]) {
        let Some(icmp) = packet
            .first()
            .and_then(|b| packet.get(usize::from(b & 0x0f) * 4..))
        else {
            return;
        };
        if icmp.len() < 8 || icmp[0] != ECHO_REPLY || icmp[4..6] != self.id.to_be_bytes() {
            return;
        }
        let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
        let index = usize::from(seq);
        // Comparing every byte checks the checksum and the payload at once.
        if index >= self.sent_at.len() || icmp != message(ECHO_REPLY, self.id, seq) {
            self.result.corrupted += 1;
        } else if self.answered[index] {
            self.result.duplicates += 1;
        } else {
            self.answered[index] = true;
            self.result.replied += 1;
            self.result.max_rtt = self.result.max_rtt.max(self.sent_at[index].elapsed());
        }
    }
}

/// An echo request or reply (`kind`) as RFC 792 lays it out, with a
/// payload that depends on `seq` and on each byte's position, so a reply
/// carrying another echo's payload, or shifted bytes, does not match.
fn message(kind: u8, id: u16, seq: u16) -> [u8; 8 + PAYLOAD_LEN] {
    let mut message = [0u8; 8 + PAYLOAD_LEN];
    message[0] = kind;
    message[4..6].copy_from_slice(&id.to_be_bytes());
    message[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, byte) in message[8..].iter_mut().enumerate() {
        *byte = ((u32::from(seq) << 8 | i as u32).wrapping_mul(0x9e37_79b1) >> 24) as u8;
    }
    let sum = internet_checksum::checksum(&message);
    message[2..4].copy_from_slice(&sum);
    message
}
