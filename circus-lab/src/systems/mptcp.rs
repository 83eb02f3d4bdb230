//! `mptcp`: kernel Multipath TCP for the TCP traffic. The client announces
//! one subflow endpoint per extra link, so every connection opens a subflow
//! on each link and the kernel schedules over them. MPTCP carries TCP only:
//! the UDP probe stream takes the ordinary route, over the best link, so
//! this system's probe figures are those of a single link (what an MPTCP
//! deployment gives to UDP, e.g. voice and games).

use super::mptcp_pm::MptcpPathManager;
use super::{
    SystemError, SystemUnderTest, TrafficPlan, best_link_at_start, route_server_over_all_links,
};
use crate::scenario::Scenario;
use crate::topology::{Role, Topology};
use crate::traffic::tcp::TcpFlavor;

/// The kernel MPTCP baseline.
pub struct Mptcp;

impl SystemUnderTest for Mptcp {
    fn start(
        &mut self,
        topology: &Topology,
        scenario: &Scenario,
    ) -> Result<TrafficPlan, SystemError> {
        let primary = best_link_at_start(scenario);
        route_server_over_all_links(topology, primary)?;
        let subflows = u32::try_from(topology.links().len())
            .unwrap_or(u32::MAX)
            .min(8);
        let endpoints: Vec<_> = topology
            .links()
            .iter()
            .filter(|link| link.index != primary)
            .map(|link| (link.client_address, link.client_interface.clone()))
            .collect();
        let configure_client = move || -> std::io::Result<()> {
            let mut pm = MptcpPathManager::open()?;
            pm.set_limits(subflows)?;
            for (id, (address, interface)) in endpoints.iter().enumerate() {
                let index = nix::net::if_::if_nametoindex(interface.as_str())?;
                pm.add_subflow_endpoint(id as u8 + 1, *address, index)?;
            }
            Ok(())
        };
        let io = |what: &str| {
            let what = what.to_string();
            move |source| SystemError::Io {
                system: "mptcp",
                what,
                source,
            }
        };
        topology
            .netns(Role::Client)
            .run(configure_client)
            .map_err(crate::topology::TopologyError::from)?
            .map_err(io("adding client subflow endpoints"))?;
        // The server accepts the joins of the extra subflows.
        topology
            .netns(Role::Server)
            .run(move || MptcpPathManager::open()?.set_limits(subflows))
            .map_err(crate::topology::TopologyError::from)?
            .map_err(io("setting server MPTCP limits"))?;
        Ok(TrafficPlan {
            flow_devices: Vec::new(),
            tcp_flavor: TcpFlavor::Mptcp,
            // The UDP probes take the ordinary route.
            flow_links: Some(vec![primary]),
        })
    }

    fn stop(&mut self) -> Result<(), SystemError> {
        Ok(())
    }
}
