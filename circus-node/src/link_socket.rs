//! One UDP socket per link, pinned to its interface.
//!
//! `SO_BINDTODEVICE` makes each link's packets leave on that link whatever
//! the routing table says (the default route may well point into circus's
//! own TUN), and makes the kernel deliver to the socket only what arrived on
//! that interface. The local address stays unspecified, so an address
//! change on the interface (DHCP, roaming) needs no new socket for sending;
//! the daemon still rebinds on such changes to drop any cached route.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::Instant;
use tokio::net::UdpSocket;

/// Socket buffer size: a few hundred full-size packets, so a burst from the
/// TUN or a late wakeup of the event loop does not drop at the socket.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
#[error("cannot open the UDP socket of link {link:?} on interface {interface:?}: {source}")]
pub struct LinkSocketError {
    pub link: String,
    pub interface: String,
    #[source]
    pub source: io::Error,
}

/// A non-blocking UDP socket bound to `interface`, for sending to `peer`
/// (whose address family it takes), on an ephemeral port. `mark` is the
/// firewall mark that keeps its datagrams out of the daemon's own routes
/// into the TUN device ([`crate::routing`]).
pub fn bind_to_interface(
    interface: &str,
    peer: SocketAddr,
    mark: Option<u32>,
) -> io::Result<UdpSocket> {
    let (domain, any) = match peer {
        SocketAddr::V4(_) => (Domain::IPV4, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
        SocketAddr::V6(_) => (Domain::IPV6, SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))),
    };
    let socket = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
    socket.bind_device(Some(interface.as_bytes()))?;
    if let Some(mark) = mark {
        // The kernel stores the mark as an int-sized value; the bits are
        // what matter, so a table number above i32::MAX keeps its bits.
        setsockopt_int(&socket, libc::SO_MARK, mark as libc::c_int)?;
    }
    set_buffers(&socket);
    socket.set_nonblocking(true)?;
    socket.bind(&any.into())?;
    UdpSocket::from_std(socket.into())
}

/// The gateway's one listening socket. An IPv6 one also takes IPv4
/// (`IPV6_V6ONLY` off, whatever the system default), so `[::]:51820`
/// serves clients of both families; their IPv4 addresses then appear
/// v4-mapped, which [`canonical`] and [`destination`] translate.
pub fn bind_listener(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.cloexec(),
        Some(Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    set_buffers(&socket);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// A datagram's source as the engine should see it: an IPv4 client reaching
/// a dual-stack socket arrives as `[::ffff:a.b.c.d]`, and is the same peer
/// as `a.b.c.d` (its cookie, its session, what the status shows).
pub fn canonical(from: SocketAddr) -> SocketAddr {
    SocketAddr::new(from.ip().to_canonical(), from.port())
}

/// Where to address a datagram for `to` on a socket of the family
/// `socket_v6`: an IPv6 socket reaches an IPv4 peer at its v4-mapped
/// address.
pub fn destination(to: SocketAddr, socket_v6: bool) -> SocketAddr {
    match to {
        SocketAddr::V4(v4) if socket_v6 => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        other => other,
    }
}

/// Best effort: with CAP_NET_ADMIN the size is forced past the system's
/// `rmem_max`/`wmem_max` (often only 208 kB); without it the kernel's cap
/// applies, which works, only with more drops under bursts.
fn set_buffers(socket: &Socket) {
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        let size = SOCKET_BUFFER_BYTES as libc::c_int;
        if setsockopt_int(socket, force, size).is_err()
            && let Err(e) = setsockopt_int(socket, plain, size)
        {
            tracing::debug!(error = %e, "could not enlarge a UDP socket buffer");
        }
    }
}

fn setsockopt_int(socket: &Socket, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: a plain SOL_SOCKET option with an int value of the size given,
    // on a descriptor `socket` keeps open.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Most datagrams handed to the kernel in one `sendmmsg` call.
pub const SEND_BATCH: usize = 32;

/// Sends `datagrams` on `socket` in as few `sendmmsg` calls as possible,
/// each to its address. Returns how many were sent; the rest were refused
/// (full send buffer or an error) and are dropped, as a congested link
/// would drop them.
///
/// One call per batch instead of one per datagram saves the system calls,
/// and above all the wake-ups: the first datagram wakes the receiver (in the
/// lab, the emulator's real-time threads) and the others join its queue
/// before it runs, so under load the two sides no longer ping-pong per
/// packet.
pub fn send_many(socket: &impl AsRawFd, datagrams: &[(&[u8], &SockAddr)]) -> usize {
    let mut sent = 0;
    while sent < datagrams.len() {
        let chunk = &datagrams[sent..datagrams.len().min(sent + SEND_BATCH)];
        let mut iovecs: [libc::iovec; SEND_BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; SEND_BATCH];
        // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
        let mut headers: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
        for (k, (datagram, to)) in chunk.iter().enumerate() {
            iovecs[k] = libc::iovec {
                iov_base: datagram.as_ptr() as *mut libc::c_void,
                iov_len: datagram.len(),
            };
            let header = &mut headers[k].msg_hdr;
            header.msg_name = to.as_ptr() as *mut libc::c_void;
            header.msg_namelen = to.len();
            header.msg_iov = &mut iovecs[k];
            header.msg_iovlen = 1;
        }
        // SAFETY: the headers point into `iovecs`, `chunk` and the addresses,
        // all alive for the call; the kernel only reads them (and writes
        // `msg_len`).
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                chunk.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            // The first datagram of the chunk was refused: drop it and go on
            // with the rest (an ICMP error concerns an earlier send).
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                break;
            }
            sent += 1;
            continue;
        }
        sent += n as usize;
    }
    sent
}

/// Most datagrams taken from a socket in one `recvmmsg` call.
pub const RECV_BATCH: usize = 32;

/// Room for one received datagram: any UDP payload fits.
const RECV_SLOT: usize = 65_536;

/// Buffers for up to [`RECV_BATCH`] datagrams received in one call, with
/// their lengths, sources and the time of the call. Allocated once; each
/// slot is virtual memory of which only the bytes received are touched.
pub struct RecvBatch {
    slots: Box<[u8]>,
    lens: [usize; RECV_BATCH],
    sources: [libc::sockaddr_storage; RECV_BATCH],
    count: usize,
    received_at: Instant,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            slots: vec![0u8; RECV_SLOT * RECV_BATCH].into_boxed_slice(),
            lens: [0; RECV_BATCH],
            // SAFETY: sockaddr_storage is plain data; all-zero is AF_UNSPEC.
            sources: unsafe { std::mem::zeroed() },
            count: 0,
            received_at: Instant::now(),
        }
    }
}

impl RecvBatch {
    /// Datagrams received by the last [`recv_many`].
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The time to give the engine for these datagrams: read when the
    /// receive call returned, so no earlier than any of them arrived.
    ///
    /// A time read before the call (or before an earlier call of the same
    /// burst) is stale for datagrams that arrive while the thread waits or
    /// is preempted in between: an ack that arrived 7 ms after the time was
    /// read made a 10 ms link's RTT sample 3 ms. The link's minimum RTT
    /// keeps such a sample, and with it the link's in-flight cap (rate x
    /// min RTT) shrank to its floor: on the lab's hetero-rate scenario the
    /// 50 Mbit/s link carried 14 Mbit/s of upload for the rest of the run.
    /// A late time only makes a sample longer by the processing delay,
    /// which the minimum ignores.
    pub fn received_at(&self) -> Instant {
        self.received_at
    }

    /// Datagram `k` (`k < len()`), cut to its slot if it was longer.
    pub fn datagram(&self, k: usize) -> &[u8] {
        let start = k * RECV_SLOT;
        &self.slots[start..start + self.lens[k].min(RECV_SLOT)]
    }

    /// Where datagram `k` came from (IPv4 or IPv6, else `None`).
    pub fn source(&self, k: usize) -> Option<SocketAddr> {
        let storage = &self.sources[k];
        match libc::c_int::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in for AF_INET; the
                // storage is larger and suitably aligned.
                let a = unsafe {
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, a sockaddr_in6 for AF_INET6.
                let a = unsafe {
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// Receives up to [`RECV_BATCH`] datagrams already waiting on `socket` in
/// one `recvmmsg`, without blocking, into `batch`; returns how many (at
/// least one) or the error (`WouldBlock` when none is waiting). One call
/// per batch instead of one per datagram is what lets a loaded loop keep
/// up: on a virtual machine each system call costs about as much as the
/// engine's work on a packet.
pub fn recv_many(socket: &impl AsRawFd, batch: &mut RecvBatch) -> io::Result<usize> {
    batch.count = 0;
    let mut iovecs: [libc::iovec; RECV_BATCH] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; RECV_BATCH];
    // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
    let mut headers: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
    for (k, (slot, source)) in batch
        .slots
        .chunks_mut(RECV_SLOT)
        .zip(batch.sources.iter_mut())
        .enumerate()
    {
        iovecs[k] = libc::iovec {
            iov_base: slot.as_mut_ptr().cast(),
            iov_len: slot.len(),
        };
        let header = &mut headers[k].msg_hdr;
        header.msg_name = (source as *mut libc::sockaddr_storage).cast();
        header.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        header.msg_iov = &mut iovecs[k];
        header.msg_iovlen = 1;
    }
    // SAFETY: each header points at its own iovec over its own slot and
    // its own address storage, all alive and not otherwise borrowed during
    // the call; the kernel writes at most the lengths given.
    let n = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            RECV_BATCH as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    batch.received_at = Instant::now();
    let n = n as usize;
    for (len, header) in batch.lens.iter_mut().zip(&headers[..n]) {
        *len = header.msg_len as usize;
    }
    batch.count = n;
    Ok(n)
}

#[cfg(test)]
mod send_many_tests {
    use super::*;

    #[test]
    fn v4_mapped_addresses_are_one_peer() {
        let mapped: SocketAddr = "[::ffff:198.18.0.2]:4000".parse().unwrap();
        let v4: SocketAddr = "198.18.0.2:4000".parse().unwrap();
        let v6: SocketAddr = "[fd00::2]:4000".parse().unwrap();
        assert_eq!(canonical(mapped), v4);
        assert_eq!(canonical(v4), v4);
        assert_eq!(canonical(v6), v6);
        assert_eq!(destination(v4, true), mapped);
        assert_eq!(destination(v4, false), v4);
        assert_eq!(destination(v6, true), v6);
    }

    /// A `[::]` listener hears an IPv4 sender, and its answer, sent to the
    /// canonical address, reaches it.
    #[tokio::test]
    async fn dual_stack_listener_serves_ipv4_peers() {
        let listener = bind_listener("[::]:0".parse().unwrap()).unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"hi", ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = listener.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hi");
        let from = canonical(from);
        assert_eq!(from, client.local_addr().unwrap());
        let to = SockAddr::from(destination(from, true));
        assert_eq!(send_many(&listener, &[(b"back", &to)]), 1);
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"back");
    }

    #[test]
    fn sends_more_than_one_batch_in_order() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = SockAddr::from(receiver.local_addr().unwrap());
        let payloads: Vec<Vec<u8>> = (0..SEND_BATCH as u8 + 8).map(|i| vec![i; 100]).collect();
        let datagrams: Vec<(&[u8], &SockAddr)> =
            payloads.iter().map(|p| (p.as_slice(), &to)).collect();
        assert_eq!(send_many(&sender, &datagrams), payloads.len());
        let mut buf = [0u8; 200];
        for p in &payloads {
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], p.as_slice());
        }
    }

    #[test]
    fn receives_a_batch_with_sources_then_would_block() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_nonblocking(true).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        for i in 0..RECV_BATCH as u8 + 3 {
            sender.send_to(&vec![i; 10 + usize::from(i)], to).unwrap();
        }
        let mut batch = RecvBatch::default();
        assert_eq!(recv_many(&receiver, &mut batch).unwrap(), RECV_BATCH);
        for k in 0..RECV_BATCH {
            assert_eq!(batch.datagram(k), vec![k as u8; 10 + k].as_slice());
            assert_eq!(batch.source(k), Some(sender.local_addr().unwrap()));
        }
        assert_eq!(recv_many(&receiver, &mut batch).unwrap(), 3);
        assert_eq!(
            batch.datagram(2),
            vec![RECV_BATCH as u8 + 2; 12 + RECV_BATCH].as_slice()
        );
        let e = recv_many(&receiver, &mut batch).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(batch.is_empty());
    }

    /// Each batch carries the time of its own receive call, so a datagram
    /// that arrived after an earlier batch of the same burst is never given
    /// that batch's time (which made RTT samples too short).
    #[test]
    fn each_batch_is_timed_no_earlier_than_its_datagrams_arrived() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_nonblocking(true).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        let mut batch = RecvBatch::default();
        sender.send_to(b"first", to).unwrap();
        let first_sent = Instant::now();
        recv_many(&receiver, &mut batch).unwrap();
        let first = batch.received_at();
        assert!(first >= first_sent);
        std::thread::sleep(std::time::Duration::from_millis(20));
        sender.send_to(b"second", to).unwrap();
        let second_sent = Instant::now();
        recv_many(&receiver, &mut batch).unwrap();
        assert_eq!(batch.datagram(0), b"second");
        assert!(
            batch.received_at() >= second_sent,
            "{:?} before the datagram was sent",
            second_sent - batch.received_at()
        );
    }
}
