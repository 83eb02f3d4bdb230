//! The local TUN device: where the IP packets to bond come from and where
//! the peer's packets go.

use crate::config::{Ipv6Prefix, LinkConfig, TunConfig};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// Bytes the tunnel adds to each IP packet inside the outer UDP payload.
pub const TUNNEL_OVERHEAD: u16 = circus_core::engine::OVERHEAD as u16;

/// Smallest MTU of a device that carries IPv6 (RFC 8200): below it the
/// kernel turns IPv6 off on the device.
pub const IPV6_MIN_MTU: u16 = 1280;

/// Outer IP + UDP header of the link's datagrams. A gateway given by host
/// name may later resolve to the other family, so such a link counts the
/// larger IPv6 header (as wg-quick always does).
fn outer_header_len(link: &LinkConfig) -> u16 {
    match link.gateway {
        SocketAddr::V4(_) if link.gateway_host.is_none() => 20 + 8,
        _ => 40 + 8,
    }
}

/// The largest tunnelled packet `link` carries unfragmented: its MTU (the
/// configured one, or its interface's if that is smaller) minus the outer
/// IP/UDP header and the tunnel's own overhead.
pub fn link_carries(link: &LinkConfig, interface_mtu: Option<u32>) -> u16 {
    let mtu = interface_mtu.map_or(link.mtu, |m| {
        link.mtu.min(u16::try_from(m).unwrap_or(u16::MAX))
    });
    mtu.saturating_sub(outer_header_len(link) + TUNNEL_OVERHEAD)
}

/// The TUN MTU that lets every tunnelled packet fit every link unfragmented:
/// the smallest link's [`link_carries`], or what the config sets.
/// Per-packet link choice means any packet may take any link, so the
/// smallest link decides. Interfaces are not looked at here: the client
/// lowers the MTU once it sees them ([`crate::tun_mtu`]).
pub fn tun_mtu(tun: &TunConfig, links: &[LinkConfig]) -> u16 {
    tun.mtu.unwrap_or_else(|| {
        links
            .iter()
            .map(|l| link_carries(l, None))
            .min()
            .unwrap_or(crate::config::DEFAULT_LINK_MTU - 28 - TUNNEL_OVERHEAD)
    })
}

/// The gateway's TUN MTU: clients' links are unknown to it, so assume the
/// common Ethernet MTU over IPv4 unless configured.
pub fn gateway_tun_mtu(tun: &TunConfig) -> u16 {
    tun.mtu
        .unwrap_or(crate::config::DEFAULT_LINK_MTU - 28 - TUNNEL_OVERHEAD)
}

#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error(
        "cannot create TUN device {name:?} ({address}, mtu {mtu}): {source} (needs root or CAP_NET_ADMIN and /dev/net/tun)"
    )]
    Create {
        name: String,
        address: String,
        mtu: u16,
        #[source]
        source: tun::Error,
    },
    #[error(
        "TUN device {name:?} has an IPv6 address but mtu {mtu}, below IPv6's minimum of {IPV6_MIN_MTU}: set [tun] mtu or the links' mtu higher, or drop the IPv6 address"
    )]
    Ipv6Mtu { name: String, mtu: u16 },
    #[error("cannot give TUN device {name:?} the address {address}: {source}")]
    Ipv6Address {
        name: String,
        address: Ipv6Prefix,
        #[source]
        source: io::Error,
    },
}

/// Creates the device, assigns its addresses and subnets and brings it up,
/// in the network namespace of the calling thread. It disappears when
/// dropped.
pub fn open(tun: &TunConfig, mtu: u16) -> Result<tun::AsyncDevice, TunError> {
    if tun.address.v6.is_some() && mtu < IPV6_MIN_MTU {
        return Err(TunError::Ipv6Mtu {
            name: tun.name.clone(),
            mtu,
        });
    }
    let mut cfg = tun::Configuration::default();
    cfg.tun_name(&tun.name)
        .mtu(mtu)
        .up()
        // Every read and write carries a virtio-net header (see `vnet`).
        .platform_config(|p| {
            p.vnet_hdr(true);
        });
    if let Some(v4) = tun.address.v4 {
        cfg.address(v4.addr).netmask(v4.netmask());
    }
    let device = tun::create_as_async(&cfg).map_err(|source| TunError::Create {
        name: tun.name.clone(),
        address: tun.address.to_string(),
        mtu,
        source,
    })?;
    if let Some(v6) = tun.address.v6 {
        add_ipv6_address(&tun.name, v6).map_err(|source| TunError::Ipv6Address {
            name: tun.name.clone(),
            address: v6,
            source,
        })?;
    }
    Ok(device)
}

/// Adds `prefix` to the interface `name` (the `tun` crate sets IPv4 only),
/// with `SIOCSIFADDR` on an IPv6 socket, as `ifconfig` does; the kernel
/// adds the subnet's route with it. No duplicate address detection runs:
/// a TUN device is `IFF_NOARP`, so the address is usable at once.
fn add_ipv6_address(name: &str, prefix: Ipv6Prefix) -> io::Result<()> {
    let index = nix::net::if_::if_nametoindex(name)?;
    let socket = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None)?;
    let request = libc::in6_ifreq {
        ifr6_addr: libc::in6_addr {
            s6_addr: prefix.addr.octets(),
        },
        ifr6_prefixlen: u32::from(prefix.len),
        ifr6_ifindex: index as libc::c_int,
    };
    // SAFETY: SIOCSIFADDR on an AF_INET6 socket reads one `in6_ifreq`,
    // which lives on the stack for the call; `socket` is open.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFADDR, &raw const request) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the kernel takes UDP super-packets on writes to `tun` (Linux 6.2
/// and later; every kernel takes TCP ones). Those kernels are the ones
/// that know the `TUN_F_USO4` offload flag, so setting it tells them apart,
/// as wireguard-go does; the offloads are turned off again at once, so
/// reads stay whole, checksummed packets.
pub fn takes_udp_super_packets(tun: &tun::AsyncDevice) -> bool {
    let fd = tun.as_raw_fd();
    let offloads = libc::TUN_F_CSUM | libc::TUN_F_USO4 | libc::TUN_F_USO6;
    // SAFETY: TUNSETOFFLOAD takes its flags by value, and `fd` is the open
    // TUN device `tun` owns.
    if unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, libc::c_ulong::from(offloads)) } != 0 {
        tracing::info!(
            "this kernel takes no UDP super-packets on TUN writes (before 6.2): each datagram is written alone"
        );
        return false;
    }
    // SAFETY: as above.
    if unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, 0 as libc::c_ulong) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot turn TUN offloads off again; offloaded reads are dropped");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(mtu: u16, gateway: &str) -> LinkConfig {
        LinkConfig {
            name: "l".into(),
            interface: "l".into(),
            gateway: gateway.parse().unwrap(),
            gateway_host: None,
            mtu,
        }
    }

    #[test]
    fn smallest_link_and_family_decide() {
        let tun = TunConfig {
            name: "t".into(),
            address: crate::config::TunAddresses::v4("100.64.0.2/10".parse().unwrap()),
            mtu: None,
        };
        let links = [link(1500, "198.18.0.1:1"), link(1400, "198.18.1.1:1")];
        assert_eq!(tun_mtu(&tun, &links), 1400 - 28 - TUNNEL_OVERHEAD);
        let v6 = [link(1500, "[fd00::1]:1")];
        assert_eq!(tun_mtu(&tun, &v6), 1500 - 48 - TUNNEL_OVERHEAD);
        let named = [LinkConfig {
            gateway_host: Some("gw.example.net".into()),
            ..link(1500, "198.18.0.1:1")
        }];
        assert_eq!(
            tun_mtu(&tun, &named),
            1500 - 48 - TUNNEL_OVERHEAD,
            "a name may turn into an IPv6 address"
        );
        let fixed = TunConfig {
            mtu: Some(1280),
            ..tun
        };
        assert_eq!(tun_mtu(&fixed, &links), 1280);
    }

    #[test]
    fn ipv6_needs_an_mtu_of_1280() {
        let tun = TunConfig {
            name: "t".into(),
            address: crate::config::TunAddresses {
                v4: None,
                v6: Some("fd00:64::2/64".parse().unwrap()),
            },
            mtu: None,
        };
        let Err(err) = open(&tun, IPV6_MIN_MTU - 1) else {
            panic!("a TUN device with IPv6 and mtu 1279 was created");
        };
        let err = err.to_string();
        assert!(
            err.contains("mtu 1279, below IPv6's minimum of 1280"),
            "{err}"
        );
    }

    #[test]
    fn a_link_carries_what_its_smaller_mtu_allows() {
        let l = link(1400, "198.18.0.1:1");
        assert_eq!(link_carries(&l, None), 1400 - 28 - TUNNEL_OVERHEAD);
        assert_eq!(link_carries(&l, Some(9000)), 1400 - 28 - TUNNEL_OVERHEAD);
        assert_eq!(link_carries(&l, Some(1300)), 1300 - 28 - TUNNEL_OVERHEAD);
        assert_eq!(link_carries(&l, Some(70_000)), 1400 - 28 - TUNNEL_OVERHEAD);
        assert_eq!(link_carries(&l, Some(20)), 0);
    }
}
