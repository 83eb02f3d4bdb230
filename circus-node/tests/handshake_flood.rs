//! A flood of handshake inits from random spoofed source addresses, sent
//! through a raw socket as fast as one thread can, while a real client
//! connects: the client's tunnel must carry traffic within 1 s of its
//! start and keep working. A capture of what the gateway sends back shows
//! that the flood gets nothing before the gateway is under load, cookie
//! replies (smaller than the inits) after, and inits not made for this
//! gateway (wrong mac1) nothing ever.
//!
//! Half of the flood carries a valid mac1 (the gateway's public key is no
//! secret) from 198.19.0.0/17, the other half random bytes from
//! 198.19.128.0/17. The gateway routes 198.19.0.0/16 back over the link,
//! so its replies go on the wire where the capture sees them (and the
//! client namespace, which does not forward, drops them).

mod common;

use circus_core::crypto::{MacKeys, PublicKey};
use circus_core::wire::{COOKIE_REPLY_LEN, HANDSHAKE_INIT_LEN, HandshakeInit, MAC_LEN};
use common::capture::packet_socket;
use common::junk::Junk;
use common::*;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The slow start: valid-mac1 inits at a rate the gateway takes without
/// load, so none may be answered.
const QUIET_PPS: u64 = 100;
const QUIET_FOR: Duration = Duration::from_millis(500);
/// Then full rate for this long; the client starts `CLIENT_AFTER` into it.
const FLOOD_FOR: Duration = Duration::from_secs(3);
const CLIENT_AFTER: Duration = Duration::from_millis(500);

/// What the flood sent.
#[derive(Debug)]
struct Flood {
    quiet_sent: u64,
    /// When the full-rate phase began.
    loud_start: Instant,
    loud_sent: u64,
    loud_for: Duration,
    /// CPU time of the sending thread.
    cpu: Duration,
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the rusage we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Writes one flood datagram (IPv4 + UDP + init) into `packet`: even
/// numbers a valid-mac1 init from 198.19.0.0/17, odd ones random bytes from
/// 198.19.128.0/17, both from a random port.
fn flood_packet(n: u64, junk: &mut Junk, keys: &MacKeys, target: Ipv4Addr, packet: &mut [u8]) {
    let valid = n.is_multiple_of(2);
    let r = junk.next();
    let host = (r as u16) & 0x7fff | if valid { 0 } else { 0x8000 };
    let source = Ipv4Addr::new(198, 19, (host >> 8) as u8, host as u8);
    // Never the gateway's own port, so the capture's filter tells replies apart.
    let port = 1024 + ((r >> 16) as u16 % 50_000);
    let ip_len = 20 + 8 + HANDSHAKE_INIT_LEN;
    packet[0] = 0x45;
    packet[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    packet[8] = 64;
    packet[9] = 17;
    packet[12..16].copy_from_slice(&source.octets());
    packet[16..20].copy_from_slice(&target.octets());
    packet[20..22].copy_from_slice(&port.to_be_bytes());
    packet[22..24].copy_from_slice(&GATEWAY_PORT.to_be_bytes());
    packet[24..26].copy_from_slice(&((8 + HANDSHAKE_INIT_LEN) as u16).to_be_bytes());
    // UDP checksum 0: none (IPv4). The kernel fills in the IP checksum.
    let body = &mut packet[28..28 + HANDSHAKE_INIT_LEN];
    let mut noise = [0u8; circus_core::wire::NOISE_INIT_LEN];
    for chunk in noise.chunks_mut(8) {
        chunk.copy_from_slice(&junk.next().to_be_bytes()[..chunk.len()]);
    }
    let mut init = HandshakeInit {
        sender_index: r as u32,
        noise: &noise,
        mac1: [0; MAC_LEN],
        mac2: [0; MAC_LEN],
    };
    if valid {
        init.mac1 = keys.init_mac1(&init);
    } else {
        init.mac1[..8].copy_from_slice(&junk.next().to_be_bytes());
    }
    init.emit(body).expect("init fits");
}

/// Sends the flood from a raw socket: a quiet phase, then as fast as this
/// thread can until `FLOOD_FOR` has passed.
fn flood(gateway: PublicKey, target: Ipv4Addr, loud_started: std::sync::mpsc::Sender<()>) -> Flood {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a fresh, valid descriptor owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let keys = MacKeys::for_receiver(&gateway);
    let mut junk = Junk(0x5eed_f100_d000_0001);
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(target).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mut packet = [0u8; 28 + HANDSHAKE_INIT_LEN];
    let mut send = |n: u64, packet: &mut [u8]| {
        flood_packet(n, &mut junk, &keys, target, packet);
        // SAFETY: sending a buffer we own to a valid sockaddr_in.
        unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&raw const to).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        }
    };
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < QUIET_FOR {
        send(n, &mut packet);
        n += 1;
        std::thread::sleep(Duration::from_secs_f64(1.0 / QUIET_PPS as f64));
    }
    let quiet_sent = n;
    let cpu_before = thread_cpu();
    let loud_start = Instant::now();
    let _ = loud_started.send(());
    while loud_start.elapsed() < FLOOD_FOR {
        for _ in 0..64 {
            send(n, &mut packet);
            n += 1;
        }
    }
    Flood {
        quiet_sent,
        loud_start,
        loud_sent: n - quiet_sent,
        loud_for: loud_start.elapsed(),
        cpu: thread_cpu() - cpu_before,
    }
}

/// A reply the gateway sent to a flood address.
#[derive(Debug, Clone, Copy)]
struct Reply {
    at: Instant,
    /// UDP payload bytes.
    len: usize,
    /// Sent to the wrong-mac1 half of the flood.
    to_bad_mac1: bool,
}

/// Captures, on `interface`, the UDP datagrams from the gateway's port to
/// 198.19.0.0/16 (the flood's sources), with a socket filter so that the
/// flood itself is not copied to the capture.
fn capture(
    interface: &str,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<()>,
) -> Vec<Reply> {
    // Classic BPF on the IPv4 header: UDP, destination in 198.19.0.0/16,
    // source port the gateway's.
    let filter = [
        bpf(0x30, 0, 0, 9),           // ldb [9]: protocol
        bpf(0x15, 0, 7, 17),          // UDP?
        bpf(0x20, 0, 0, 16),          // ld [16]: destination
        bpf(0x54, 0, 0, 0xffff_0000), // and /16
        bpf(0x15, 0, 4, 0xc613_0000), // 198.19.0.0?
        bpf(0xb1, 0, 0, 0),           // ldx 4*([0]&0xf): header length
        bpf(0x48, 0, 0, 0),           // ldh [x+0]: source port
        bpf(0x15, 0, 1, u32::from(GATEWAY_PORT)),
        bpf(0x06, 0, 0, 0xffff), // accept
        bpf(0x06, 0, 0, 0),      // drop
    ];
    let fd = packet_socket(interface, &filter);
    let _ = ready.send(());
    let mut replies = Vec::new();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: reading into a buffer we own, of the length given.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Ok(n) = usize::try_from(n) else { continue };
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        if n < ihl + 8 {
            continue;
        }
        replies.push(Reply {
            at: Instant::now(),
            len: n - ihl - 8,
            to_bad_mac1: buf[18] & 0x80 != 0,
        });
    }
    replies
}

/// UDP datagrams the kernel dropped at a full socket buffer in `ns`.
fn socket_drops(ns: &Netns) -> u64 {
    ns.run(|| {
        // thread-self: /proc/self/net would show the main thread's namespace.
        let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").expect("snmp");
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
        let (names, values) = (udp.next().expect("names"), udp.next().expect("values"));
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(name, _)| *name == "RcvbufErrors")
            .and_then(|(_, value)| value.parse().ok())
            .expect("RcvbufErrors")
    })
}

fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// How long after `start` a UDP echo through the tunnel first comes back.
fn first_echo(ns: &Netns, to: SocketAddr, start: Instant, limit: Duration) -> Option<Duration> {
    ns.run(move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let mut buf = [0u8; 64];
        while start.elapsed() < limit {
            let _ = socket.send_to(b"hello", to);
            if socket.recv_from(&mut buf).is_ok() {
                return Some(start.elapsed());
            }
        }
        None
    })
}

#[test]
fn a_spoofed_init_flood_locks_out_nobody_and_gets_only_cookie_replies() {
    if !require_netns() {
        return;
    }
    let client_ns = Netns::new("floodc");
    let gateway_ns = Netns::new("floodg");
    veth(&client_ns, "cl0", &gateway_ns, "gl0", 0);
    // Replies to the flood's sources go back over the link, the way the
    // flood came in (so reverse-path filtering lets the flood in, too).
    gateway_ns.ip(&["route", "add", "198.19.0.0/16", "via", "198.18.0.2"]);
    let (gateway_secret, gateway_public) = circus_core::crypto::generate_keypair().unwrap();
    let id = ClientIdentity::new(2);
    let gateway = start_gateway(&gateway_ns, gateway_config(&gateway_secret, &[&id]));
    let echo_addr = SocketAddr::from((GATEWAY_TUNNEL, 7));
    udp_echo(&gateway_ns, echo_addr);

    let stop = Arc::new(AtomicBool::new(false));
    let (capture_ready, capturing_ready) = std::sync::mpsc::channel();
    let capturing = gateway_ns.spawn({
        let stop = stop.clone();
        move || capture("gl0", stop, capture_ready)
    });
    capturing_ready.recv().unwrap();

    let cpu_before = process_cpu();
    let target = Ipv4Addr::new(198, 18, 0, 1);
    let (loud_tx, loud_rx) = std::sync::mpsc::channel();
    let flooding = client_ns.spawn(move || flood(gateway_public, target, loud_tx));
    loud_rx.recv().unwrap();
    std::thread::sleep(CLIENT_AFTER);

    let drops_before = socket_drops(&gateway_ns);
    let client_start = Instant::now();
    let client = start_client(
        &client_ns,
        client_config(&id, gateway_public, &[("cl0", 0)]),
    );
    let to_tunnel = first_echo(&client_ns, echo_addr, client_start, Duration::from_secs(5));
    let drops_while_connecting = socket_drops(&gateway_ns) - drops_before;
    let during = echo_stream(&client_ns, echo_addr, 200, 200, 200);
    let flood = flooding.join().unwrap();
    let cpu_total = process_cpu() - cpu_before;
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let replies = capturing.join().unwrap();

    let report = gateway.status().expect("gateway status");
    let refused = |reason: &str| report.refused.get(reason).copied().unwrap_or(0);
    let flood_pps = flood.loud_sent as f64 / flood.loud_for.as_secs_f64();
    let quiet_end = flood.loud_start;
    let first_reply = replies
        .first()
        .map(|r| r.at.saturating_duration_since(quiet_end));
    eprintln!(
        "flood: {flood:?}, {flood_pps:.0} packets/s at full rate; time to tunnel: {to_tunnel:?}; \
         echo during the flood: {during:?}; replies to the flood captured: {}, largest {:?} bytes, \
         first {first_reply:?} after full rate began; CPU of the process besides the flood \
         thread: {:.2} s over {:.2} s",
        replies.len(),
        replies.iter().map(|r| r.len).max(),
        cpu_total.saturating_sub(flood.cpu).as_secs_f64(),
        flood.loud_for.as_secs_f64() + CLIENT_AFTER.as_secs_f64(),
    );
    eprintln!("gateway refused: {:?}", report.refused);
    eprintln!("{}", circus_node::status::render(&report));

    eprintln!(
        "datagrams the gateway's socket dropped while the client connected: {drops_while_connecting}"
    );
    let to_tunnel = to_tunnel.expect("the tunnel carried traffic");
    // What the cookies guarantee: the flood costs the gateway so little that
    // the client's handshake goes through at once. Where one thread floods
    // faster than the gateway's one thread reads (the kernel then drops at
    // the socket, the client's inits as often as the flood's), an init can
    // be lost and the client's retry comes a second later: then only a
    // bound of one retry per second of the flood holds.
    let bound = if drops_while_connecting == 0 {
        Duration::from_secs(1)
    } else {
        FLOOD_FOR - CLIENT_AFTER + Duration::from_secs(1)
    };
    assert!(
        to_tunnel < bound,
        "the tunnel works within {bound:?} of the client's start: {to_tunnel:?}"
    );
    // Traffic keeps flowing, losing no more than the socket drops of a
    // flood the gateway cannot read fast enough (the tunnel's packets share
    // that socket); the session is never lost (one handshake, below).
    assert!(
        during.received * 4 >= during.sent,
        "and keeps working through the flood: {during:?}"
    );
    assert!(flood.quiet_sent > 0 && flood.loud_sent > 10 * flood.quiet_sent);
    assert!(
        replies.iter().all(|r| r.at >= quiet_end),
        "no reply before the gateway is under load: {first_reply:?}"
    );
    assert!(
        replies
            .iter()
            .all(|r| r.len == COOKIE_REPLY_LEN && r.len < HANDSHAKE_INIT_LEN),
        "only cookie replies, smaller than the init"
    );
    assert!(
        replies.iter().all(|r| !r.to_bad_mac1),
        "nothing ever to an init with a wrong mac1"
    );
    assert!(!replies.is_empty(), "the flood put the gateway under load");
    assert!(refused("handshake_cookie_reply") >= replies.len() as u64);
    assert!(refused("handshake_bad_mac1") > 0);
    assert_eq!(report.sessions[0].handshakes, 1, "{:?}", report.sessions[0]);
    assert!(report.sessions[0].connected);
    drop(client);
}
