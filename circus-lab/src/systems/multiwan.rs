//! `multiwan`: each flow pinned to one link by a hash of the flow, as
//! pfSense/OPNsense gateway groups and most multi-WAN routers do. Load is
//! spread, but a flow never moves: when its link dies, the flow dies (the
//! router's state entry keeps it on the dead link; only new connections
//! would go elsewhere).

use super::{PROBE_FLOWS, SystemError, SystemUnderTest, TrafficPlan, route_server_over_all_links};
use crate::scenario::Scenario;
use crate::topology::Topology;

/// The per-connection multi-WAN baseline.
pub struct Multiwan;

impl SystemUnderTest for Multiwan {
    fn start(
        &mut self,
        topology: &Topology,
        scenario: &Scenario,
    ) -> Result<TrafficPlan, SystemError> {
        route_server_over_all_links(topology, 0)?;
        let links = topology.links();
        let flow_links: Vec<usize> = (0..u64::from(PROBE_FLOWS))
            .map(|flow| flow_link(scenario.seed, flow, links.len()))
            .collect();
        let flow_devices = flow_links
            .iter()
            .map(|&link| links[link].client_interface.clone())
            .collect();
        Ok(TrafficPlan {
            flow_devices,
            flow_links: Some(flow_links),
            ..TrafficPlan::routed()
        })
    }

    fn stop(&mut self) -> Result<(), SystemError> {
        Ok(())
    }
}

/// The link flow `flow` is pinned to: a well-mixed hash (splitmix64) of the
/// flow and the seed, so the pinning is fixed for a seed yet not simply
/// round-robin (real hashes leave links unevenly loaded).
pub fn flow_link(seed: u64, flow: u64, links: usize) -> usize {
    let mut z = seed ^ flow.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % links.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_is_stable_for_a_seed_and_uses_every_link() {
        let pinned: Vec<_> = (0..u64::from(PROBE_FLOWS))
            .map(|f| flow_link(7, f, 3))
            .collect();
        let again: Vec<_> = (0..u64::from(PROBE_FLOWS))
            .map(|f| flow_link(7, f, 3))
            .collect();
        assert_eq!(pinned, again);
        for link in 0..3 {
            assert!(pinned.contains(&link), "link {link} carries no flow");
        }
        assert!(pinned.iter().all(|&l| l < 3));
    }
}
