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
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
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
/// (whose address family it takes), on an ephemeral port.
pub fn bind_to_interface(interface: &str, peer: SocketAddr) -> io::Result<UdpSocket> {
    let (domain, any) = match peer {
        SocketAddr::V4(_) => (Domain::IPV4, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
        SocketAddr::V6(_) => (Domain::IPV6, SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))),
    };
    let socket = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
    socket.bind_device(Some(interface.as_bytes()))?;
    set_buffers(&socket);
    socket.set_nonblocking(true)?;
    socket.bind(&any.into())?;
    UdpSocket::from_std(socket.into())
}

/// The gateway's one listening socket.
pub fn bind_listener(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.cloexec(),
        Some(Protocol::UDP),
    )?;
    set_buffers(&socket);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
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

#[cfg(test)]
mod send_many_tests {
    use super::*;

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
}
