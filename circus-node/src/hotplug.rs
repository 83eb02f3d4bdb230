//! Link hot-plug: notice interfaces appearing, disappearing, losing carrier
//! or changing address, without restarting the daemon.
//!
//! The kernel announces such changes on rtnetlink multicast groups; the
//! watcher only uses them as a wake-up and then reads the whole interface
//! table with `getifaddrs` (itself netlink, in the calling thread's
//! namespace, unlike `/sys`, which shows the namespace sysfs was mounted in).
//! A periodic rescan covers missed events (netlink drops them when its
//! buffer overflows). Rescans allocate; they happen on events, not packets.

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Safety net for lost netlink events; short enough that a missed event
/// costs at most this long, long enough to cost nothing when idle.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// What the daemon needs to know about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceState {
    /// Kernel index: a new index means a new interface under an old name,
    /// and sockets bound to the old one are dead.
    pub index: u32,
    /// Administratively up and with carrier (`IFF_UP` and `IFF_RUNNING`).
    pub running: bool,
    pub addresses: Vec<IpAddr>,
}

impl InterfaceState {
    /// Whether packets to `peer` can leave through this interface now: it is
    /// running and has an address of the peer's family to send from.
    pub fn can_reach(&self, peer: SocketAddr) -> bool {
        self.running && self.addresses.iter().any(|a| a.is_ipv4() == peer.is_ipv4())
    }
}

/// All interfaces of the calling thread's network namespace, by name.
pub fn scan() -> io::Result<BTreeMap<String, InterfaceState>> {
    let mut table: BTreeMap<String, InterfaceState> = BTreeMap::new();
    for entry in getifaddrs()? {
        let state = table.entry(entry.interface_name).or_insert(InterfaceState {
            index: 0,
            running: false,
            addresses: Vec::new(),
        });
        let Some(address) = entry.address else {
            continue;
        };
        if let Some(link) = address.as_link_addr() {
            // The AF_PACKET entry exists for every interface, with or
            // without addresses, and carries its index and flags.
            state.index = u32::try_from(link.ifindex()).unwrap_or(0);
            state.running = entry
                .flags
                .contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_RUNNING);
        } else if let Some(v4) = address.as_sockaddr_in() {
            state.addresses.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = address.as_sockaddr_in6() {
            state.addresses.push(IpAddr::V6(v6.ip()));
        }
    }
    table.retain(|_, s| s.index != 0);
    Ok(table)
}

/// The MTU of interface `name` (`SIOCGIFMTU`), in the calling thread's
/// namespace. Kept out of [`InterfaceState`]: an MTU change must not
/// rebind a link's socket, only resize the tunnel ([`crate::tun_mtu`]).
pub fn interface_mtu(name: &str) -> io::Result<u32> {
    // SAFETY: `ifreq` is a plain C struct (a name array and a union of
    // integers and addresses) for which all zero bytes are a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= request.ifr_name.len() || name.as_bytes().contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    for (to, from) in request.ifr_name.iter_mut().zip(name.as_bytes()) {
        *to = *from as libc::c_char;
    }
    // Any socket answers interface ioctls; a datagram one is the cheapest.
    let socket = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: SIOCGIFMTU reads the NUL-terminated name in `request` and
    // writes its `ifru_mtu`; `request` is a live, writable ifreq.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFMTU, &mut request) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the ioctl succeeded, so it wrote the union's `ifru_mtu`.
    let mtu = unsafe { request.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// Wakes the daemon when interfaces may have changed.
pub struct InterfaceWatcher {
    events: Option<AsyncFd<OwnedFd>>,
    rescan: tokio::time::Interval,
    scratch: Box<[u8]>,
}

impl InterfaceWatcher {
    /// Subscribes to link and address events; if that fails (no netlink in
    /// a sandbox), falls back to the periodic rescan alone.
    pub fn new() -> Self {
        let events = subscribe()
            .and_then(|fd| {
                // SAFETY: `fd` is an open netlink socket owned by the
                // AsyncFd for its whole life; nothing else closes it.
                unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                    .map_err(io::Error::from)
            })
            .map_err(|e| tracing::warn!(error = %e, "no netlink events, polling interfaces every {RESCAN_INTERVAL:?}"))
            .ok();
        let mut rescan = tokio::time::interval(RESCAN_INTERVAL);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        InterfaceWatcher {
            events,
            rescan,
            scratch: vec![0; 16 * 1024].into_boxed_slice(),
        }
    }

    /// Resolves when a netlink event arrived (all pending ones are consumed)
    /// or the rescan interval passed. Cancel-safe.
    pub async fn changed(&mut self) {
        let Some(events) = &self.events else {
            self.rescan.tick().await;
            return;
        };
        tokio::select! {
            guard = events.readable() => {
                let Ok(mut guard) = guard else { return };
                // Drain: one rescan covers any number of events.
                loop {
                    match recv(events.get_ref().as_raw_fd(), &mut self.scratch, MsgFlags::MSG_DONTWAIT) {
                        Ok(0) => break,
                        Ok(_) => continue,
                        Err(nix::errno::Errno::EAGAIN) => {
                            guard.clear_ready();
                            break;
                        }
                        // ENOBUFS: events were lost; the rescan sees the result.
                        Err(_) => break,
                    }
                }
            }
            _ = self.rescan.tick() => {}
        }
    }
}

impl Default for InterfaceWatcher {
    fn default() -> Self {
        Self::new()
    }
}

fn subscribe() -> io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    let groups = (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR) as u32;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_seen_with_its_address() {
        let table = scan().unwrap();
        let lo = table.get("lo").expect("every namespace has lo");
        assert_eq!(lo.index, 1);
        if lo.running {
            assert!(lo.addresses.contains(&IpAddr::from([127, 0, 0, 1])));
            assert!(lo.can_reach("127.0.0.1:1".parse().unwrap()));
        }
    }

    #[test]
    fn interface_mtu_of_loopback_and_of_no_interface() {
        assert!(interface_mtu("lo").unwrap() >= 1280);
        assert!(interface_mtu("no-such-if").is_err());
        assert!(interface_mtu("a-name-longer-than-ifnamsiz").is_err());
        assert!(interface_mtu("l\0o").is_err());
    }
}
