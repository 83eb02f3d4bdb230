//! `single-link`: everything over one link, no tunnel, no failover. What a
//! site with one uplink (or a router without multi-WAN) gets; when that link
//! dies, everything dies with it. The runner runs it over each link in turn
//! and reports the best of them ([`super::best_link`]), so it is also the
//! best-link reference every system's TCP is judged against.

use super::{SystemError, SystemUnderTest, TrafficPlan};
use crate::scenario::Scenario;
use crate::topology::Topology;
use crate::topology::addressing::{SERVER_SUBNET, SUBNET_PREFIX_LEN};

/// The single-link baseline over link `link` (scenario index).
pub struct SingleLink {
    pub link: usize,
}

impl SystemUnderTest for SingleLink {
    fn start(
        &mut self,
        topology: &Topology,
        _scenario: &Scenario,
    ) -> Result<TrafficPlan, SystemError> {
        let link = self.link;
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
