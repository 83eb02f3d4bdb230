//! `single-link`: everything over the link that is best at the start, no
//! tunnel, no failover. What a site with one uplink (or a router without
//! multi-WAN) gets; when that link dies, everything dies with it.

use super::{SystemError, SystemUnderTest, TrafficPlan, best_link_at_start};
use crate::scenario::Scenario;
use crate::topology::Topology;
use crate::topology::addressing::{SERVER_SUBNET, SUBNET_PREFIX_LEN};

/// The single-link baseline.
pub struct SingleLink;

impl SystemUnderTest for SingleLink {
    fn start(
        &mut self,
        topology: &Topology,
        scenario: &Scenario,
    ) -> Result<TrafficPlan, SystemError> {
        let link = best_link_at_start(scenario);
        topology.route_client_via(SERVER_SUBNET, SUBNET_PREFIX_LEN, link, 10)?;
        Ok(TrafficPlan {
            flow_links: Some(vec![link]),
            ..TrafficPlan::routed()
        })
    }

    fn stop(&mut self) -> Result<(), SystemError> {
        Ok(())
    }
}
