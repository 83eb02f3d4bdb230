//! The local TUN device: where the IP packets to bond come from and where
//! the peer's packets go.

use crate::config::{LinkConfig, TunConfig};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// Bytes the tunnel adds to each IP packet inside the outer UDP payload.
pub const TUNNEL_OVERHEAD: u16 = circus_core::engine::OVERHEAD as u16;

/// Outer IP + UDP header of a datagram to `to`.
fn outer_header_len(to: SocketAddr) -> u16 {
    match to {
        SocketAddr::V4(_) => 20 + 8,
        SocketAddr::V6(_) => 40 + 8,
    }
}

/// The largest tunnelled packet `link` carries unfragmented: its MTU (the
/// configured one, or its interface's if that is smaller) minus the outer
/// IP/UDP header and the tunnel's own overhead.
pub fn link_carries(link: &LinkConfig, interface_mtu: Option<u32>) -> u16 {
    let mtu = interface_mtu.map_or(link.mtu, |m| {
        link.mtu.min(u16::try_from(m).unwrap_or(u16::MAX))
    });
    mtu.saturating_sub(outer_header_len(link.gateway) + TUNNEL_OVERHEAD)
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
#[error(
    "cannot create TUN device {name:?} ({address}, mtu {mtu}): {source} (needs root or CAP_NET_ADMIN and /dev/net/tun)"
)]
pub struct TunError {
    pub name: String,
    pub address: String,
    pub mtu: u16,
    #[source]
    pub source: tun::Error,
}

/// Creates the device, assigns the address and subnet and brings it up, in
/// the network namespace of the calling thread. It disappears when dropped.
pub fn open(tun: &TunConfig, mtu: u16) -> Result<tun::AsyncDevice, TunError> {
    let mut cfg = tun::Configuration::default();
    cfg.tun_name(&tun.name)
        .address(tun.address.addr)
        .netmask(tun.address.netmask())
        .mtu(mtu)
        .up()
        // Every read and write carries a virtio-net header (see `vnet`).
        .platform_config(|p| {
            p.vnet_hdr(true);
        });
    tun::create_as_async(&cfg).map_err(|source| TunError {
        name: tun.name.clone(),
        address: tun.address.to_string(),
        mtu,
        source,
    })
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
            mtu,
        }
    }

    #[test]
    fn smallest_link_and_family_decide() {
        let tun = TunConfig {
            name: "t".into(),
            address: "100.64.0.2/10".parse().unwrap(),
            mtu: None,
        };
        let links = [link(1500, "198.18.0.1:1"), link(1400, "198.18.1.1:1")];
        assert_eq!(tun_mtu(&tun, &links), 1400 - 28 - TUNNEL_OVERHEAD);
        let v6 = [link(1500, "[fd00::1]:1")];
        assert_eq!(tun_mtu(&tun, &v6), 1500 - 48 - TUNNEL_OVERHEAD);
        let fixed = TunConfig {
            mtu: Some(1280),
            ..tun
        };
        assert_eq!(tun_mtu(&fixed, &links), 1280);
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
