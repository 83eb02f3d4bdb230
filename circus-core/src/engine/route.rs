//! Which client session owns a tunnel address: the gateway's routing table.
//!
//! The gateway receives plain IP packets from its TUN device and must hand each
//! one to the client whose tunnel addresses contain the destination. Host
//! routes (`/32`, `/128`), the common case of one address per client, are a
//! hash lookup; shorter prefixes (a client routing a whole subnet) are few and
//! scanned longest-first.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 prefix such as `100.64.0.2/32` or `fd00::/64`.
///
/// Peers are configured with the prefixes their tunnel uses; a bare address
/// parses as a host prefix so configs can list plain addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

/// Why a string is not an [`IpPrefix`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    #[error("`{0}` is not an IP address (expected e.g. 100.64.0.2/32 or fd00::2/128)")]
    Address(String),
    /// The part after `/` is not a number within the address family's width.
    #[error("prefix length `{given}` is invalid: expected 0..={max}")]
    Length {
        /// The text after the `/`.
        given: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
}

impl IpPrefix {
    /// A prefix of `len` bits; host bits of `addr` are cleared so two spellings
    /// of the same network compare equal.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixError> {
        let max = max_len(addr);
        if len > max {
            return Err(PrefixError::Length {
                given: len.to_string(),
                max,
            });
        }
        Ok(Self {
            addr: mask(addr, len),
            len,
        })
    }

    /// The prefix holding exactly `addr` (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            len: max_len(addr),
        }
    }

    /// Network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Number of leading bits that must match.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for a zero-length prefix (`0.0.0.0/0`, `::/0`), which matches everything
    /// of its family.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `ip` lies inside this prefix (families never match each other).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.len) == self.addr
            }
            _ => false,
        }
    }

    fn is_host(&self) -> bool {
        self.len == max_len(self.addr)
    }
}

fn max_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr_text, len_text) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| PrefixError::Address(addr_text.to_owned()))?;
        match len_text {
            None => Ok(Self::host(addr)),
            Some(l) => {
                let len: u8 = l.parse().map_err(|_| PrefixError::Length {
                    given: l.to_owned(),
                    max: max_len(addr),
                })?;
                Self::new(addr, len)
            }
        }
    }
}

impl From<IpAddr> for IpPrefix {
    fn from(addr: IpAddr) -> Self {
        Self::host(addr)
    }
}

/// Destination address of a raw IPv4 or IPv6 packet, or `None` when the
/// packet is too short or not IP (such packets are dropped, never routed).
pub fn destination(packet: &[u8]) -> Option<IpAddr> {
    address_at(packet, 16, 24)
}

/// Source address of a raw IPv4 or IPv6 packet, or `None` when the packet
/// is too short or not IP.
pub fn source(packet: &[u8]) -> Option<IpAddr> {
    address_at(packet, 12, 8)
}

/// The address at byte `v4` of an IPv4 header or byte `v6` of an IPv6 one,
/// by the version nibble.
fn address_at(packet: &[u8], v4: usize, v6: usize) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => {
            let b: [u8; 4] = packet.get(v4..v4 + 4)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        6 => {
            let b: [u8; 16] = packet.get(v6..v6 + 16)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        _ => None,
    }
}

/// Whether `packet` belongs to the link it was sent on and must not cross
/// the tunnel: from an IPv4 or IPv6 link-local address (the kernel's router
/// solicitations and multicast listener reports on a TUN device), or to a
/// link-local multicast group or the broadcast address. The far end would
/// refuse it anyway, as a source outside the client's prefixes.
pub(crate) fn is_link_scoped(packet: &[u8]) -> bool {
    let link_local_source = match source(packet) {
        Some(IpAddr::V4(a)) => a.is_link_local(),
        Some(IpAddr::V6(a)) => a.is_unicast_link_local(),
        None => false,
    };
    let link_local_group = match destination(packet) {
        // 224.0.0.0/24: local network control block, never forwarded.
        Some(IpAddr::V4(a)) => a.is_broadcast() || a.octets()[..3] == [224, 0, 0],
        // ff02::/16 and ff01::/16: link- and interface-local scope.
        Some(IpAddr::V6(a)) => a.is_multicast() && a.segments()[0] & 0x000f <= 2,
        None => false,
    };
    link_local_source || link_local_group
}

/// Reads one address of a packet: [`source`] or [`destination`].
pub(crate) type AddressOf = fn(&[u8]) -> Option<IpAddr>;

/// Cryptokey routing, as WireGuard's allowed IPs: whether `addr` of
/// `packet` (its [`source`] or [`destination`]) lies in one of `prefixes`.
/// A packet too short or not IP is never allowed.
pub(crate) fn allowed(prefixes: &[IpPrefix], addr: AddressOf, packet: &[u8]) -> bool {
    addr(packet).is_some_and(|ip| prefixes.iter().any(|p| p.contains(ip)))
}

/// Maps tunnel addresses to an owner index (the gateway's peer slot).
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    hosts: HashMap<IpAddr, usize>,
    /// Non-host prefixes, longest first, so the first match is the most specific.
    prefixes: Vec<(IpPrefix, usize)>,
}

impl RouteTable {
    pub(crate) fn insert(&mut self, prefix: IpPrefix, owner: usize) {
        if prefix.is_host() {
            self.hosts.insert(prefix.addr, owner);
        } else {
            self.prefixes.push((prefix, owner));
            self.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len));
        }
    }

    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<usize> {
        if let Some(&owner) = self.hosts.get(&ip) {
            return Some(owner);
        }
        self.prefixes
            .iter()
            .find(|(p, _)| p.contains(ip))
            .map(|&(_, owner)| owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare header of the address's family from `src` to `dst`.
    fn header(src: &str, dst: &str) -> Vec<u8> {
        match (src.parse().unwrap(), dst.parse().unwrap()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut p = vec![0x45; 20];
                p[12..16].copy_from_slice(&s.octets());
                p[16..20].copy_from_slice(&d.octets());
                p
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut p = vec![0x60; 40];
                p[8..24].copy_from_slice(&s.octets());
                p[24..40].copy_from_slice(&d.octets());
                p
            }
            _ => unreachable!("one family"),
        }
    }

    #[test]
    fn link_scoped_packets_are_told_from_traffic() {
        for (src, dst) in [
            ("fe80::1", "ff02::2"), // router solicitation
            ("fe80::1", "fd00::1"), // link-local source anywhere
            ("::", "ff02::16"),     // listener report before an address
            ("100.64.0.2", "224.0.0.251"),
            ("169.254.1.1", "198.18.0.1"),
            ("100.64.0.2", "255.255.255.255"),
        ] {
            assert!(is_link_scoped(&header(src, dst)), "{src} -> {dst}");
        }
        for (src, dst) in [
            ("100.64.0.2", "198.18.0.1"),
            ("fd00::2", "fd00::1"),
            ("fd00::2", "ff0e::1"), // global-scope multicast may be routed
            ("100.64.0.2", "239.1.1.1"),
        ] {
            assert!(!is_link_scoped(&header(src, dst)), "{src} -> {dst}");
        }
        assert!(!is_link_scoped(&[]), "not IP: left to the usual checks");
    }

    #[test]
    fn parses_hosts_and_prefixes() {
        let p: IpPrefix = "100.64.1.7/16".parse().unwrap();
        assert_eq!(p.to_string(), "100.64.0.0/16");
        assert!(p.contains("100.64.200.1".parse().unwrap()));
        assert!(!p.contains("100.65.0.1".parse().unwrap()));
        assert!(!p.contains("fd00::1".parse().unwrap()));
        let h: IpPrefix = "fd00::2".parse().unwrap();
        assert_eq!(h.len(), 128);
        assert!(matches!(
            "10.0.0.0/33".parse::<IpPrefix>(),
            Err(PrefixError::Length { max: 32, .. })
        ));
        assert!(matches!(
            "nonsense/8".parse::<IpPrefix>(),
            Err(PrefixError::Address(_))
        ));
        assert!("0.0.0.0/0".parse::<IpPrefix>().unwrap().is_empty());
    }

    #[test]
    fn routes_longest_prefix_and_hosts() {
        let mut t = RouteTable::default();
        t.insert("100.64.0.0/10".parse().unwrap(), 0);
        t.insert("100.64.5.0/24".parse().unwrap(), 1);
        t.insert("100.64.5.9".parse().unwrap(), 2);
        t.insert("fd00::/64".parse().unwrap(), 3);
        assert_eq!(t.lookup("100.64.5.9".parse().unwrap()), Some(2));
        assert_eq!(t.lookup("100.64.5.8".parse().unwrap()), Some(1));
        assert_eq!(t.lookup("100.70.0.1".parse().unwrap()), Some(0));
        assert_eq!(t.lookup("fd00::7".parse().unwrap()), Some(3));
        assert_eq!(t.lookup("fd01::7".parse().unwrap()), None);
        assert_eq!(t.lookup("8.8.8.8".parse().unwrap()), None);
    }

    #[test]
    fn reads_destination_of_v4_and_v6_and_rejects_garbage() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[16..20].copy_from_slice(&[100, 64, 0, 2]);
        assert_eq!(destination(&v4), Some("100.64.0.2".parse().unwrap()));
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[24] = 0xfd;
        v6[39] = 2;
        assert_eq!(destination(&v6), Some("fd00::2".parse().unwrap()));
        assert_eq!(destination(&v4[..19]), None);
        assert_eq!(source(&v4[..15]), None);
        assert_eq!(destination(&[0x10; 64]), None);
        assert_eq!(destination(&[]), None);
    }

    #[test]
    fn reads_source_of_v4_and_v6() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[12..16].copy_from_slice(&[100, 64, 0, 3]);
        assert_eq!(source(&v4), Some("100.64.0.3".parse().unwrap()));
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[8] = 0xfd;
        v6[23] = 3;
        assert_eq!(source(&v6), Some("fd00::3".parse().unwrap()));
        assert_eq!(source(&v6[..23]), None);
    }

    #[test]
    fn allows_only_addresses_inside_the_prefixes() {
        let prefixes: Vec<IpPrefix> = vec![
            "100.64.0.2".parse().unwrap(),
            "10.20.0.0/16".parse().unwrap(),
            "fd00::2".parse().unwrap(),
        ];
        let v4 = |src: [u8; 4]| {
            let mut p = [0u8; 20];
            p[0] = 0x45;
            p[12..16].copy_from_slice(&src);
            p
        };
        assert!(allowed(&prefixes, source, &v4([100, 64, 0, 2])));
        assert!(allowed(&prefixes, source, &v4([10, 20, 7, 7])));
        assert!(!allowed(&prefixes, source, &v4([100, 64, 0, 3])));
        assert!(!allowed(&prefixes, destination, &v4([100, 64, 0, 2])));
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[8] = 0xfd;
        v6[23] = 2;
        assert!(allowed(&prefixes, source, &v6));
        v6[23] = 3;
        assert!(!allowed(&prefixes, source, &v6));
        assert!(!allowed(&prefixes, source, &[]));
        assert!(!allowed(&[], source, &v4([100, 64, 0, 2])));
    }

    proptest::proptest! {
        /// Any bytes at all: the check answers, it never panics, and what
        /// is too short to hold the address is refused.
        #[test]
        fn random_bytes_never_panic_the_check(packet in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let everything: Vec<IpPrefix> = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
            // Each with the header length up to the end of its address.
            let checks: [(AddressOf, usize, usize); 2] = [(source, 16, 24), (destination, 20, 40)];
            for (addr, v4_end, v6_end) in checks {
                let ok = allowed(&everything, addr, &packet);
                let long_enough = match packet.first().map(|b| b >> 4) {
                    Some(4) => packet.len() >= v4_end,
                    Some(6) => packet.len() >= v6_end,
                    _ => false,
                };
                proptest::prop_assert_eq!(ok, long_enough);
            }
        }
    }
}
