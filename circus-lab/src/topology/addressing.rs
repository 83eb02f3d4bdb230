//! The lab's addressing plan: interface names and IPv4 addresses, all inside
//! 198.18.0.0/15 (RFC 2544 benchmarking range, never routed on the Internet).
//!
//! ```text
//!  client ns            emu ns                 gateway ns             server ns
//!  link<i> 198.18.<i>.2 ── cli<i> ~ gw<i> ── link<i> 198.18.<i>.1
//!                                             to-server 198.19.0.1 ── to-gateway 198.19.0.2
//! ```
//!
//! Link `i` is one L2 segment (the emulator forwards frames, it is not a
//! router), so both of its ends share the subnet 198.18.<i>.0/24 and the
//! gateway end is the client's next hop on that link. The server's subnet
//! 198.19.0.0/24 sits behind the gateway; the server routes 198.18.0.0/15 and
//! the tunnel range 100.64.0.0/10 back via the gateway, so a system may NAT
//! or not. The client gets no default route: each system under test chooses
//! how to reach the server (see [`super::Topology::route_client_via`]).
//!
//! Both ends of a link have fixed MAC addresses, `02:00:c6:12:<i>:<host>`
//! (locally administered, the host byte as in the IPv4 address), and know
//! each other's from the start: neighbour resolution never crosses the
//! emulated link (see [`super::Topology::build`]).

use std::net::Ipv4Addr;

/// Links a topology supports (circus-core handles at most 16 links).
pub const MAX_LINKS: usize = 16;

/// Prefix length of every lab subnet.
pub const SUBNET_PREFIX_LEN: u8 = 24;

/// The gateway's address on the server subnet.
pub const GATEWAY_SERVER_SIDE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The server's address: the destination of all test traffic.
pub const SERVER_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
/// The server subnet (with [`SUBNET_PREFIX_LEN`]).
pub const SERVER_SUBNET: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 0);
/// Gateway-side interface towards the server.
pub const GATEWAY_TO_SERVER: &str = "to-server";
/// Server-side interface towards the gateway.
pub const SERVER_TO_GATEWAY: &str = "to-gateway";

/// All link subnets, routed back via the gateway from the server.
pub const LINKS_RANGE: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 0, 0), 15);
/// The tunnel range (inner addresses of tunnelling systems), also routed back.
pub const TUNNEL_RANGE: (Ipv4Addr, u8) = (Ipv4Addr::new(100, 64, 0, 0), 10);

/// Names and addresses of one emulated link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkAddressing {
    /// The link's position, 0-based (scenario order).
    pub index: usize,
    /// Interface in the client namespace.
    pub client_interface: String,
    /// The client's address on the link.
    pub client_address: Ipv4Addr,
    /// Interface in the gateway namespace.
    pub gateway_interface: String,
    /// The gateway's address on the link: the client's next hop.
    pub gateway_address: Ipv4Addr,
    /// MAC address of the client's interface.
    pub client_mac: [u8; 6],
    /// MAC address of the gateway's interface.
    pub gateway_mac: [u8; 6],
    /// Emulator-side interface facing the client (carrier control acts here).
    pub emu_client_side: String,
    /// Emulator-side interface facing the gateway.
    pub emu_gateway_side: String,
}

impl LinkAddressing {
    /// The plan for link `index` (< [`MAX_LINKS`]).
    pub fn for_link(index: usize) -> LinkAddressing {
        let octet = u8::try_from(index).unwrap_or(u8::MAX);
        LinkAddressing {
            index,
            client_interface: format!("link{index}"),
            client_address: Ipv4Addr::new(198, 18, octet, 2),
            gateway_interface: format!("link{index}"),
            gateway_address: Ipv4Addr::new(198, 18, octet, 1),
            client_mac: [0x02, 0x00, 198, 18, octet, 2],
            gateway_mac: [0x02, 0x00, 198, 18, octet, 1],
            emu_client_side: format!("cli{index}"),
            emu_gateway_side: format!("gw{index}"),
        }
    }

    /// The link's subnet address (with [`SUBNET_PREFIX_LEN`]).
    pub fn subnet(&self) -> Ipv4Addr {
        let [a, b, c, _] = self.gateway_address.octets();
        Ipv4Addr::new(a, b, c, 0)
    }

    /// Another client address on the same subnet: the `n`-th alternative
    /// (`n` >= 1), for "the link's address changed" events (DHCP, roaming).
    pub fn alternative_client_address(&self, n: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.client_address.octets();
        Ipv4Addr::new(a, b, c, 2u8.saturating_add(n).min(254))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_get_distinct_subnets_inside_the_benchmarking_range() {
        let plans: Vec<_> = (0..MAX_LINKS).map(LinkAddressing::for_link).collect();
        for (i, plan) in plans.iter().enumerate() {
            assert_eq!(
                plan.client_address.octets()[..3],
                plan.gateway_address.octets()[..3]
            );
            assert_ne!(plan.client_address, plan.gateway_address);
            assert_eq!(plan.client_address.octets()[0], 198);
            assert_eq!(plan.client_address.octets()[1] & 0xfe, 18);
            assert!(plan.emu_client_side.len() < 16 && plan.emu_gateway_side.len() < 16);
            assert_ne!(plan.client_mac, plan.gateway_mac);
            for mac in [plan.client_mac, plan.gateway_mac] {
                assert_eq!(mac[0] & 0b11, 0b10, "locally administered unicast");
            }
            for other in &plans[i + 1..] {
                assert_ne!(plan.subnet(), other.subnet());
            }
            assert_ne!(plan.subnet(), SERVER_SUBNET);
        }
    }

    #[test]
    fn alternative_addresses_stay_on_the_link_and_differ() {
        let plan = LinkAddressing::for_link(3);
        let alt = plan.alternative_client_address(1);
        assert_eq!(alt.octets()[..3], plan.client_address.octets()[..3]);
        assert_ne!(alt, plan.client_address);
        assert_ne!(alt, plan.gateway_address);
    }
}
