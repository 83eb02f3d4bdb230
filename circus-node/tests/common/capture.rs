//! Real packets of a session, captured off an interface, and an echo
//! server that counts: what the replay and hostile-input tests need.

use super::{GATEWAY_PORT, Netns};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// An AF_PACKET socket on `interface` seeing frames both ways (run it in
/// the namespace that has the interface), keeping only what the classic BPF
/// `filter` accepts (everything if empty), with reads that time out after
/// 50 ms so a capture loop can check its stop flag.
pub fn packet_socket(interface: &str, filter: &[libc::sock_filter]) -> OwnedFd {
    // ETH_P_ALL: the kernel hands outgoing frames only to taps of all
    // protocols, not to an ETH_P_IP socket.
    const ETH_P_ALL: u16 = 0x0003;
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM,
            i32::from(ETH_P_ALL.to_be()),
        )
    };
    assert!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` is a fresh, valid descriptor owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if !filter.is_empty() {
        let program = libc::sock_fprog {
            len: u16::try_from(filter.len()).expect("filter length"),
            filter: filter.as_ptr().cast_mut(),
        };
        // SAFETY: attaching a valid filter program that outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&raw const program).cast(),
                std::mem::size_of::<libc::sock_fprog>() as u32,
            )
        };
        assert_eq!(rc, 0, "filter: {}", std::io::Error::last_os_error());
    }
    let index = nix::net::if_::if_nametoindex(interface).expect("interface index");
    // SAFETY: zeroed sockaddr_ll is valid; the fields set below are all bind needs.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_ALL.to_be();
    addr.sll_ifindex = index as i32;
    // SAFETY: `addr` is a valid sockaddr_ll of the size given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(rc, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    // SAFETY: setting SO_RCVTIMEO with a valid timeval.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
    }
    fd
}

/// Captures the UDP payloads sent to the gateway port through one
/// interface (AF_PACKET, both directions: run it in the namespace that has
/// the interface), so a test can replay and mutate real packets. Stops when
/// `stop` is set or after 2000 datagrams.
pub fn capture(interface: &str, stop: Arc<AtomicBool>) -> Vec<Vec<u8>> {
    let fd = packet_socket(interface, &[]);
    let mut captured = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) && captured.len() < 2000 {
        // SAFETY: reading into a buffer we own, of the length given.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Ok(n) = usize::try_from(n) else { continue };
        let packet = &buf[..n];
        if n < 28 || packet[0] >> 4 != 4 || packet[9] != 17 {
            continue;
        }
        let ihl = usize::from(packet[0] & 0x0f) * 4;
        let Some(udp) = packet.get(ihl..) else {
            continue;
        };
        if udp.len() < 8 || u16::from_be_bytes([udp[2], udp[3]]) != GATEWAY_PORT {
            continue;
        }
        captured.push(udp[8..].to_vec());
    }
    captured
}

/// A UDP echo server that counts what it receives.
pub fn counting_echo(ns: &Netns, addr: SocketAddr) -> Arc<AtomicU64> {
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    ns.spawn(move || {
        let socket = UdpSocket::bind(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 2048];
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                counter.fetch_add(1, Ordering::Relaxed);
                let _ = socket.send_to(&buf[..n], from);
            }
        }
    });
    ready_rx.recv().unwrap();
    count
}
