//! The scenario's links in the simulation: each one a pair of link models
//! (up and down), the client's carrier on it and the client's address on it
//! (the lab's addressing plan), all changed by the scenario timeline as the
//! real runner changes the emulator and the topology.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use crate::emulator::model::{Direction, DropReason, LinkCondition, LinkModel, Verdict};
use crate::metrics::LinkCounters;
use crate::scenario::{LinkChange, Scenario, TimelineStep};
use crate::topology::LinkAddressing;

/// Bytes a link carries around a UDP payload: Ethernet (the emulator
/// forwards whole frames), IPv4 and UDP headers. The link models see the
/// same frame sizes as the real forwarder.
pub(super) const FRAME_OVERHEAD: usize = ETHERNET_HEADER + 20 + 8;

/// The Ethernet header the emulator's frames carry.
const ETHERNET_HEADER: usize = 14;

/// The client's UDP port on every link.
const CLIENT_PORT: u16 = 51_820;

/// What the client's side of a link noticed when a timeline step applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CarrierChange {
    Lost,
    Regained,
}

#[derive(Debug)]
struct SimLink {
    up: LinkModel,
    down: LinkModel,
    carrier: bool,
    addressing: LinkAddressing,
    /// The client's current address on the link.
    client_address: Ipv4Addr,
    /// What the link delivered, both directions together, counted as the
    /// real emulator counts the frames it forwards (Ethernet, IP and UDP
    /// headers included).
    carried: LinkCounters,
}

/// Every link of the scenario.
#[derive(Debug)]
pub(super) struct SimLinks {
    links: Vec<SimLink>,
    /// Address changes so far, on any link: each picks the next alternative
    /// address.
    address_changes: u8,
}

impl SimLinks {
    /// The links as they are at the start of the scenario.
    pub fn new(scenario: &Scenario) -> SimLinks {
        let links = (0..scenario.links.len())
            .filter_map(|index| {
                let addressing = LinkAddressing::for_link(index);
                Some(SimLink {
                    up: scenario.link_model(index, Direction::Up)?,
                    down: scenario.link_model(index, Direction::Down)?,
                    carrier: true,
                    client_address: addressing.client_address,
                    addressing,
                    carried: LinkCounters {
                        link: scenario.links[index].name.clone(),
                        bytes: 0,
                        packets: 0,
                    },
                })
            })
            .collect();
        SimLinks {
            links,
            address_changes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Applies one timeline step; says whether the client's interface lost
    /// or regained carrier, which the client engine is told about.
    pub fn apply(&mut self, step: &TimelineStep) -> Option<CarrierChange> {
        let link = self.links.get_mut(step.link_index)?;
        match &step.change {
            LinkChange::Condition(condition) => {
                link.up.set_condition(*condition);
                link.down.set_condition(*condition);
                // Only `down` takes the interface's carrier (a blackhole
                // is silent), as the runner does.
                let had_carrier = link.carrier;
                link.carrier = *condition != LinkCondition::Down;
                match (had_carrier, link.carrier) {
                    (true, false) => Some(CarrierChange::Lost),
                    (false, true) => Some(CarrierChange::Regained),
                    _ => None,
                }
            }
            LinkChange::Params(params) => {
                link.up.set_params((**params).clone());
                link.down.set_params((**params).clone());
                None
            }
            LinkChange::ChangeAddress => {
                self.address_changes = self.address_changes.wrapping_add(1).max(1);
                link.client_address = link
                    .addressing
                    .alternative_client_address(self.address_changes);
                None
            }
        }
    }

    /// What `link` does to a datagram of `len` UDP payload bytes sent at
    /// `now` in `direction`.
    pub fn carry(
        &mut self,
        now: Duration,
        link: usize,
        direction: Direction,
        len: usize,
    ) -> Verdict {
        self.carry_frame(now, link, direction, len + FRAME_OVERHEAD)
    }

    /// What `link` does to an IP packet of `len` bytes sent without a
    /// tunnel (a baseline's TCP segment): only Ethernet is added.
    pub fn carry_packet(
        &mut self,
        now: Duration,
        link: usize,
        direction: Direction,
        len: usize,
    ) -> Verdict {
        self.carry_frame(now, link, direction, len + ETHERNET_HEADER)
    }

    fn carry_frame(
        &mut self,
        now: Duration,
        link: usize,
        direction: Direction,
        frame_len: usize,
    ) -> Verdict {
        let Some(link) = self.links.get_mut(link) else {
            return Verdict::Drop(DropReason::Down);
        };
        let model = match direction {
            Direction::Up => &mut link.up,
            Direction::Down => &mut link.down,
        };
        let verdict = model.on_frame(now, frame_len);
        if let Verdict::Deliver { duplicate_at, .. } = verdict {
            let copies = 1 + u64::from(duplicate_at.is_some());
            link.carried.packets += copies;
            link.carried.bytes += copies * frame_len as u64;
        }
        verdict
    }

    /// Starts counting afresh (at the scenario's zero, after a warm-up).
    pub fn reset_carried(&mut self) {
        for link in &mut self.links {
            link.carried.bytes = 0;
            link.carried.packets = 0;
        }
    }

    /// What each link delivered so far, in scenario order.
    pub fn carried(&self) -> Vec<LinkCounters> {
        self.links.iter().map(|link| link.carried.clone()).collect()
    }

    /// The client's current address on `link`, as the gateway sees it.
    pub fn client_address(&self, link: usize) -> SocketAddr {
        let ip = self
            .links
            .get(link)
            .map_or(Ipv4Addr::UNSPECIFIED, |link| link.client_address);
        SocketAddr::V4(SocketAddrV4::new(ip, CLIENT_PORT))
    }

    /// The link on which the client currently has `address`. A datagram to
    /// an address the client has left reaches nobody, as on a real network.
    pub fn link_of_client_address(&self, address: SocketAddr) -> Option<usize> {
        (0..self.links.len()).find(|&link| self.client_address(link) == address)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::emulator::model::DropReason;

    const TOML: &str = r#"
name = "links"
duration = "10s"
seed = 1
systems = ["circus"]

[[link]]
name = "wifi"
delay = "10ms"

[[link]]
name = "lte"
delay = "30ms"

[[event]]
at = "1s"
link = "wifi"
action = "down"
for = "1s"

[[event]]
at = "3s"
link = "wifi"
action = "blackhole"
for = "1s"

[[event]]
at = "5s"
link = "lte"
action = "address"
"#;

    fn scenario() -> Scenario {
        Scenario::from_toml(TOML, Path::new("links.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn carrier_follows_down_and_up_but_not_a_blackhole() {
        let scenario = scenario();
        let mut links = SimLinks::new(&scenario);
        let changes: Vec<_> = scenario.timeline().iter().map(|s| links.apply(s)).collect();
        assert_eq!(
            changes,
            [
                Some(CarrierChange::Lost),
                Some(CarrierChange::Regained),
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn a_blackholed_link_drops_both_ways_and_counts_only_what_it_delivered() {
        let scenario = scenario();
        let mut links = SimLinks::new(&scenario);
        let timeline = scenario.timeline();
        let now = Duration::from_millis(3500);
        links.apply(&timeline[2]);
        for direction in [Direction::Up, Direction::Down] {
            assert_eq!(
                links.carry(now, 0, direction, 100),
                Verdict::Drop(DropReason::Blackhole)
            );
        }
        assert_eq!(
            links.carry(now, 1, Direction::Up, 100),
            Verdict::Deliver {
                at: now + Duration::from_millis(30),
                duplicate_at: None
            }
        );
        let carried = links.carried();
        assert_eq!((carried[0].packets, carried[0].bytes), (0, 0));
        let frame = (100 + FRAME_OVERHEAD) as u64;
        assert_eq!((carried[1].packets, carried[1].bytes), (1, frame));
        assert_eq!(carried[1].link, "lte");
    }

    #[test]
    fn after_an_address_change_the_old_address_reaches_nobody() {
        let scenario = scenario();
        let mut links = SimLinks::new(&scenario);
        let before = links.client_address(1);
        assert_eq!(before.to_string(), "198.18.1.2:51820");
        assert_eq!(links.link_of_client_address(before), Some(1));
        let timeline = scenario.timeline();
        links.apply(&timeline[4]);
        let after = links.client_address(1);
        assert_ne!(after, before);
        assert_eq!(links.link_of_client_address(after), Some(1));
        assert_eq!(links.link_of_client_address(before), None);
        assert_eq!(
            links.link_of_client_address(links.client_address(0)),
            Some(0)
        );
    }
}
