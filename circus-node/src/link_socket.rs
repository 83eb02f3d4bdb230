//! One UDP socket per link, pinned to its interface.
//!
//! `SO_BINDTODEVICE` makes each link's packets leave on that link whatever
//! the routing table says (the default route may well point into circus's
//! own TUN), and makes the kernel deliver to the socket only what arrived on
//! that interface. The local address stays unspecified, so an address
//! change on the interface (DHCP, roaming) needs no new socket for sending;
//! the daemon still rebinds on such changes to drop any cached route.

use socket2::{Domain, Protocol, Socket, Type};
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
