//! The client's TUN MTU at run time: lowered when a link turns out to
//! carry less than the device's MTU assumed.
//!
//! At start the MTU comes from the configured links ([`tun_device::tun_mtu`]);
//! the interfaces themselves are only seen once the daemon runs, may
//! appear later (a USB modem plugged in) and may change their MTU (a PPP
//! or LTE link renegotiating). Any packet may take any link, so a link
//! that carries less than the TUN MTU would drop or fragment the larger
//! packets; the TUN MTU is lowered to fit it, and with it the MSS clamp,
//! so that new TCP connections fit too (existing ones learn the new MTU
//! from the kernel's own "packet too big" answer on the TUN device).
//!
//! The MTU is only ever lowered: raising it when a small link goes away
//! would make it follow every flap of that link. A `[tun] mtu` set in the
//! config is the user's decision and is kept; a link that cannot carry it
//! is reported instead.

use crate::config::{LinkConfig, MIN_TUN_MTU, TunConfig};
use crate::hotplug::{self, InterfaceState};
use crate::tun_device;
use circus_core::mss::MssClamp;
use std::collections::BTreeMap;
use tun::AbstractDevice;

/// What a look at the links calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtuDecision<'a> {
    /// Every link carries the current MTU, or the news was already acted on.
    Keep,
    /// Lower the TUN MTU to `mtu` because of `link`.
    Lower { mtu: u16, link: &'a str },
    /// The configured MTU stays, although `link` carries only `carries`.
    CannotCarry { carries: u16, link: &'a str },
}

/// The TUN MTU and the decisions taken about it so far.
#[derive(Debug)]
pub struct TunMtu {
    current: u16,
    /// Set by `[tun] mtu`: never changed, only warned about.
    configured: bool,
    /// Never lowered below this: [`MIN_TUN_MTU`], or IPv6's minimum when
    /// the device has an IPv6 address (the kernel removes IPv6 from a
    /// device whose MTU falls below 1280).
    floor: u16,
    /// The smallest link capacity last warned about, so a rescan every
    /// second does not repeat the warning.
    warned: Option<u16>,
}

impl TunMtu {
    /// The MTU the device is created with.
    pub fn new(tun: &TunConfig, links: &[LinkConfig]) -> Self {
        TunMtu {
            current: tun_device::tun_mtu(tun, links),
            configured: tun.mtu.is_some(),
            floor: if tun.address.v6.is_some() {
                tun_device::IPV6_MIN_MTU
            } else {
                MIN_TUN_MTU
            },
            warned: None,
        }
    }

    pub fn current(&self) -> u16 {
        self.current
    }

    /// The MSS ceiling for TCP handshakes read from the device.
    pub fn clamp(&self) -> MssClamp {
        MssClamp::new(self.current)
    }

    /// Decides from what each present link carries now
    /// ([`tun_device::link_carries`]); the smallest decides. Lowers
    /// `current` when it says [`MtuDecision::Lower`]; never below
    /// [`MIN_TUN_MTU`], where nothing useful fits anyway, nor below 1280
    /// with an IPv6 tunnel address.
    pub fn update<'a>(
        &mut self,
        carried: impl IntoIterator<Item = (&'a str, u16)>,
    ) -> MtuDecision<'a> {
        let Some((link, carries)) = carried.into_iter().min_by_key(|&(_, c)| c) else {
            return MtuDecision::Keep;
        };
        if carries >= self.current {
            self.warned = None;
            return MtuDecision::Keep;
        }
        if self.configured {
            if self.warned == Some(carries) {
                return MtuDecision::Keep;
            }
            self.warned = Some(carries);
            return MtuDecision::CannotCarry { carries, link };
        }
        let mtu = carries.max(self.floor);
        if mtu >= self.current {
            return MtuDecision::Keep;
        }
        self.current = mtu;
        MtuDecision::Lower { mtu, link }
    }

    /// Reads the MTU of each link's interface in `interfaces` and acts on
    /// [`TunMtu::update`]: resizes `device` and logs why. Interfaces whose
    /// MTU cannot be read count with their configured MTU.
    pub(crate) fn follow_links<'a>(
        &mut self,
        links: impl IntoIterator<Item = &'a LinkConfig>,
        interfaces: &BTreeMap<String, InterfaceState>,
        device: &mut tun::AsyncDevice,
    ) {
        let carried = links
            .into_iter()
            .filter(|l| interfaces.contains_key(&l.interface))
            .map(|l| {
                let mtu = hotplug::interface_mtu(&l.interface).ok();
                (l.name.as_str(), tun_device::link_carries(l, mtu))
            });
        match self.update(carried) {
            MtuDecision::Keep => {}
            MtuDecision::Lower { mtu, link } => match device.set_mtu(mtu) {
                Ok(()) => tracing::info!(
                    link,
                    mtu,
                    "TUN MTU lowered to what the link carries; TCP handshakes are clamped to it"
                ),
                // The clamp is lowered all the same: new TCP connections fit.
                Err(e) => {
                    tracing::warn!(link, mtu, error = %e, "cannot lower the TUN MTU to what the link carries; TCP handshakes are clamped to it")
                }
            },
            MtuDecision::CannotCarry { carries, link } => tracing::warn!(
                link,
                carries,
                mtu = self.current,
                "the link cannot carry packets of the configured [tun] mtu; larger ones are fragmented or lost on it (lower [tun] mtu or remove it)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tun(mtu: Option<u16>) -> TunConfig {
        TunConfig {
            name: "t".into(),
            address: crate::config::TunAddresses {
                v4: Some("100.64.0.2/10".parse().unwrap()),
                v6: None,
            },
            mtu,
        }
    }

    fn link(mtu: u16) -> LinkConfig {
        LinkConfig {
            name: "l".into(),
            interface: "l".into(),
            gateway: "198.18.0.1:1".parse().unwrap(),
            gateway_host: None,
            mtu,
        }
    }

    #[test]
    fn a_smaller_link_lowers_the_mtu_and_the_clamp_once() {
        let mut mtu = TunMtu::new(&tun(None), &[link(1500)]);
        let start = mtu.current();
        assert_eq!(mtu.update([("wifi", start + 100)]), MtuDecision::Keep);
        assert_eq!(mtu.update([("wifi", start)]), MtuDecision::Keep);
        assert_eq!(
            mtu.update([("wifi", start), ("lte", 1200), ("dsl", 1300)]),
            MtuDecision::Lower {
                mtu: 1200,
                link: "lte"
            }
        );
        assert_eq!(mtu.current(), 1200);
        assert_eq!(mtu.clamp(), MssClamp::new(1200));
        assert_eq!(mtu.update([("lte", 1200)]), MtuDecision::Keep);
        // Never raised again when the small link goes away.
        assert_eq!(mtu.update([("wifi", start)]), MtuDecision::Keep);
        assert_eq!(mtu.update(std::iter::empty()), MtuDecision::Keep);
        assert_eq!(mtu.current(), 1200);
    }

    #[test]
    fn never_below_the_smallest_useful_mtu() {
        let mut mtu = TunMtu::new(&tun(None), &[link(1500)]);
        assert_eq!(
            mtu.update([("tiny", 100)]),
            MtuDecision::Lower {
                mtu: MIN_TUN_MTU,
                link: "tiny"
            }
        );
        assert_eq!(mtu.update([("tiny", 100)]), MtuDecision::Keep);
        assert_eq!(mtu.current(), MIN_TUN_MTU);
    }

    #[test]
    fn never_below_ipv6s_minimum_with_an_ipv6_tunnel_address() {
        let mut dual = tun(None);
        dual.address.v6 = Some("fd00:64::2/64".parse().unwrap());
        let mut mtu = TunMtu::new(&dual, &[link(1500)]);
        assert_eq!(
            mtu.update([("lte", 1200)]),
            MtuDecision::Lower {
                mtu: tun_device::IPV6_MIN_MTU,
                link: "lte"
            }
        );
        assert_eq!(mtu.current(), tun_device::IPV6_MIN_MTU);
    }

    #[test]
    fn a_configured_mtu_is_kept_and_a_short_link_warned_about_once() {
        let mut mtu = TunMtu::new(&tun(Some(1400)), &[link(1500)]);
        assert_eq!(mtu.current(), 1400);
        assert_eq!(mtu.update([("wifi", 1400)]), MtuDecision::Keep);
        let short = MtuDecision::CannotCarry {
            carries: 1300,
            link: "lte",
        };
        assert_eq!(mtu.update([("wifi", 1400), ("lte", 1300)]), short);
        assert_eq!(
            mtu.update([("wifi", 1400), ("lte", 1300)]),
            MtuDecision::Keep
        );
        // Warned again when it gets worse, or comes back after recovering.
        assert_eq!(
            mtu.update([("lte", 1250)]),
            MtuDecision::CannotCarry {
                carries: 1250,
                link: "lte"
            }
        );
        assert_eq!(mtu.update([("lte", 1500)]), MtuDecision::Keep);
        assert_eq!(
            mtu.update([("lte", 1250)]),
            MtuDecision::CannotCarry {
                carries: 1250,
                link: "lte"
            }
        );
        assert_eq!(mtu.current(), 1400);
        assert_eq!(mtu.clamp(), MssClamp::new(1400));
    }
}
