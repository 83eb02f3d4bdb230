//! Interface addresses with prefix length, as written in configs
//! ("100.64.0.2/10", "fd00:64::2/64"), and the TUN device's pair of them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address family's address type: how wide it is, so one prefix type
/// serves both families.
pub trait Family: Copy + Eq + FromStr + fmt::Display {
    /// Bits in an address: 32 or 128.
    const BITS: u8;
}

impl Family for Ipv4Addr {
    const BITS: u8 = 32;
}

impl Family for Ipv6Addr {
    const BITS: u8 = 128;
}

/// An address inside a subnet: `100.64.0.2/10` is the host 100.64.0.2 on the
/// subnet 100.64.0.0/10, which the kernel routes into the TUN device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfPrefix<A> {
    pub addr: A,
    /// 0..=`A::BITS`.
    pub len: u8,
}

pub type Ipv4Prefix = IfPrefix<Ipv4Addr>;
pub type Ipv6Prefix = IfPrefix<Ipv6Addr>;

impl Ipv4Prefix {
    /// The netmask, e.g. 255.192.0.0 for /10.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an IP address with prefix length such as \"100.64.0.2/32\"")]
pub struct PrefixParseError;

impl<A: Family> FromStr for IfPrefix<A> {
    type Err = PrefixParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s.split_once('/').ok_or(PrefixParseError)?;
        let addr = addr.parse().map_err(|_| PrefixParseError)?;
        let len = len.parse::<u8>().map_err(|_| PrefixParseError)?;
        if len > A::BITS {
            return Err(PrefixParseError);
        }
        Ok(IfPrefix { addr, len })
    }
}

impl<A: fmt::Display> fmt::Display for IfPrefix<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The TUN device's addresses: at most one per family and at least one, so
/// a tunnel may be IPv4, IPv6 or both (dual stack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunAddresses {
    pub v4: Option<Ipv4Prefix>,
    pub v6: Option<Ipv6Prefix>,
}

/// Why a list of addresses is not a [`TunAddresses`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunAddressError {
    /// Entry `index` is not an address with prefix length.
    Malformed {
        index: usize,
    },
    /// Entry `index` is of a family an earlier entry already gave.
    SecondOfFamily {
        index: usize,
    },
    Empty,
}

impl TunAddresses {
    /// An IPv4-only tunnel.
    pub fn v4(prefix: Ipv4Prefix) -> Self {
        TunAddresses {
            v4: Some(prefix),
            v6: None,
        }
    }

    /// Parses config entries such as `["100.64.0.2/10", "fd00:64::2/64"]`.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, TunAddressError> {
        let mut out = TunAddresses { v4: None, v6: None };
        for (index, entry) in entries.into_iter().enumerate() {
            let entry = entry.trim();
            let taken = if let Ok(p) = entry.parse::<Ipv4Prefix>() {
                out.v4.replace(p).is_some()
            } else if let Ok(p) = entry.parse::<Ipv6Prefix>() {
                out.v6.replace(p).is_some()
            } else {
                return Err(TunAddressError::Malformed { index });
            };
            if taken {
                return Err(TunAddressError::SecondOfFamily { index });
            }
        }
        if out.v4.is_none() && out.v6.is_none() {
            return Err(TunAddressError::Empty);
        }
        Ok(out)
    }

    /// The host addresses themselves (no subnet), IPv4 first.
    pub fn hosts(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self.v4.map(|p| IpAddr::V4(p.addr));
        let v6 = self.v6.map(|p| IpAddr::V6(p.addr));
        v4.into_iter().chain(v6)
    }

    /// Each address with its subnet's prefix length, IPv4 first.
    pub fn subnets(&self) -> impl Iterator<Item = (IpAddr, u8)> + '_ {
        let v4 = self.v4.map(|p| (IpAddr::V4(p.addr), p.len));
        let v6 = self.v6.map(|p| (IpAddr::V6(p.addr), p.len));
        v4.into_iter().chain(v6)
    }

    /// Each address as the config writes it, IPv4 first.
    pub fn entries(&self) -> Vec<String> {
        let v4 = self.v4.map(|p| p.to_string());
        let v6 = self.v6.map(|p| p.to_string());
        v4.into_iter().chain(v6).collect()
    }
}

impl fmt::Display for TunAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.entries().join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_masks() {
        let p: Ipv4Prefix = "100.64.0.2/10".parse().unwrap();
        assert_eq!(p.addr, Ipv4Addr::new(100, 64, 0, 2));
        assert_eq!(p.netmask(), Ipv4Addr::new(255, 192, 0, 0));
        let all: Ipv4Prefix = "0.0.0.0/0".parse().unwrap();
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
        let v6: Ipv6Prefix = "fd00:64::2/64".parse().unwrap();
        assert_eq!((v6.addr, v6.len), ("fd00:64::2".parse().unwrap(), 64));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "100.64.0.2",
            "100.64.0.2/33",
            "100.64.0/8",
            "x/8",
            "1.2.3.4/-1",
            "",
            "fd00::2/64",
        ] {
            assert_eq!(bad.parse::<Ipv4Prefix>(), Err(PrefixParseError), "{bad}");
        }
        for bad in ["fd00::2", "fd00::2/129", "100.64.0.2/10", "fd00::g/64"] {
            assert_eq!(bad.parse::<Ipv6Prefix>(), Err(PrefixParseError), "{bad}");
        }
    }

    #[test]
    fn tun_addresses_take_one_of_each_family() {
        let both = TunAddresses::parse(["fd00:64::2/64", " 100.64.0.2/10 "]).unwrap();
        assert_eq!(both.v4, Some("100.64.0.2/10".parse().unwrap()));
        assert_eq!(both.v6, Some("fd00:64::2/64".parse().unwrap()));
        assert_eq!(both.to_string(), "100.64.0.2/10, fd00:64::2/64");
        let hosts: Vec<IpAddr> = both.hosts().collect();
        assert_eq!(
            hosts,
            [
                "100.64.0.2".parse::<IpAddr>().unwrap(),
                "fd00:64::2".parse().unwrap()
            ]
        );
        let v6_only = TunAddresses::parse(["fd00:64::2/64"]).unwrap();
        assert_eq!(v6_only.v4, None);
        assert_eq!(
            TunAddresses::parse(["100.64.0.2/10", "100.64.0.3/10"]),
            Err(TunAddressError::SecondOfFamily { index: 1 })
        );
        assert_eq!(
            TunAddresses::parse(["fd00::2/64", "100.64.0.2/10", "fd00::3/64"]),
            Err(TunAddressError::SecondOfFamily { index: 2 })
        );
        assert_eq!(
            TunAddresses::parse(["100.64.0.2/10", "nonsense"]),
            Err(TunAddressError::Malformed { index: 1 })
        );
        assert_eq!(TunAddresses::parse([]), Err(TunAddressError::Empty));
    }

    fn prefix_text() -> impl Strategy<Value = String> {
        prop_oneof![
            (any::<u32>(), 0u8..=32).prop_map(|(a, l)| format!("{}/{l}", Ipv4Addr::from(a))),
            (any::<u128>(), 0u8..=128).prop_map(|(a, l)| format!("{}/{l}", Ipv6Addr::from(a))),
        ]
    }

    proptest! {
        #[test]
        fn display_round_trips(v4: u32, len4 in 0u8..=32, v6: u128, len6 in 0u8..=128) {
            let p = Ipv4Prefix { addr: Ipv4Addr::from(v4), len: len4 };
            prop_assert_eq!(p.to_string().parse::<Ipv4Prefix>(), Ok(p));
            let q = Ipv6Prefix { addr: Ipv6Addr::from(v6), len: len6 };
            prop_assert_eq!(q.to_string().parse::<Ipv6Prefix>(), Ok(q));
            let both = TunAddresses { v4: Some(p), v6: Some(q) };
            prop_assert_eq!(TunAddresses::parse(both.entries().iter().map(String::as_str)), Ok(both));
        }

        /// Any list of valid prefixes is accepted exactly when it has at
        /// most one of each family, and keeps what it was given.
        #[test]
        fn lists_accept_one_per_family(list in proptest::collection::vec(prefix_text(), 0..4)) {
            let v4 = list.iter().filter(|e| e.contains('.')).count();
            let v6 = list.len() - v4;
            match TunAddresses::parse(list.iter().map(String::as_str)) {
                Ok(parsed) => {
                    prop_assert!(v4 <= 1 && v6 <= 1 && !list.is_empty());
                    prop_assert_eq!(parsed.v4.is_some(), v4 == 1);
                    prop_assert_eq!(parsed.v6.is_some(), v6 == 1);
                    for entry in &list {
                        match entry.parse::<Ipv4Prefix>() {
                            Ok(p) => prop_assert_eq!(parsed.v4, Some(p)),
                            Err(_) => prop_assert_eq!(parsed.v6, entry.parse().ok()),
                        }
                    }
                }
                Err(TunAddressError::SecondOfFamily { .. }) => prop_assert!(v4 > 1 || v6 > 1),
                Err(TunAddressError::Empty) => prop_assert!(list.is_empty()),
                Err(e) => prop_assert!(false, "{e:?} for {list:?}"),
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}", t in "\\PC{0,40}") {
            let _ = s.parse::<Ipv4Prefix>();
            let _ = s.parse::<Ipv6Prefix>();
            let _ = TunAddresses::parse([s.as_str(), t.as_str()]);
        }
    }
}
