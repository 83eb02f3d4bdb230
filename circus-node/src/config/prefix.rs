//! IPv4 address with prefix length, as written in configs ("100.64.0.2/10").

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An address inside a subnet: `100.64.0.2/10` is the host 100.64.0.2 on the
/// subnet 100.64.0.0/10. Used for the TUN address (host + routed subnet) and
/// for the destinations a gateway routes to each client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Prefix {
    pub addr: Ipv4Addr,
    /// 0..=32.
    pub len: u8,
}

impl Ipv4Prefix {
    /// The netmask, e.g. 255.192.0.0 for /10.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0))
    }

    /// Whether `ip` lies in this prefix's subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask());
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an IPv4 address with prefix length such as \"100.64.0.2/32\"")]
pub struct PrefixParseError;

impl FromStr for Ipv4Prefix {
    type Err = PrefixParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s.split_once('/').ok_or(PrefixParseError)?;
        let addr = addr.parse().map_err(|_| PrefixParseError)?;
        let len = len.parse::<u8>().map_err(|_| PrefixParseError)?;
        if len > 32 {
            return Err(PrefixParseError);
        }
        Ok(Ipv4Prefix { addr, len })
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
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
        assert!(p.contains(Ipv4Addr::new(100, 127, 255, 255)));
        assert!(!p.contains(Ipv4Addr::new(100, 128, 0, 0)));
        let all: Ipv4Prefix = "0.0.0.0/0".parse().unwrap();
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
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
        ] {
            assert_eq!(bad.parse::<Ipv4Prefix>(), Err(PrefixParseError), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(addr: u32, len in 0u8..=32) {
            let p = Ipv4Prefix { addr: Ipv4Addr::from(addr), len };
            prop_assert_eq!(p.to_string().parse::<Ipv4Prefix>(), Ok(p));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Ipv4Prefix>();
        }
    }
}
