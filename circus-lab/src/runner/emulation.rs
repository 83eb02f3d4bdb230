//! The emulated links of one run, whichever backend emulates them, and the
//! replay of the scenario's timeline onto them.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Instant;

use crate::emulator::forwarder::{ForwardedLink, Forwarder, ForwarderError, ForwarderOptions};
use crate::emulator::model::{Direction, LinkCondition};
use crate::emulator::netem::{self, NetemError, ResolvedBackend};
use crate::metrics::LinkCounters;
use crate::scenario::{Backend, LinkChange, Scenario, TimelineStep};
use crate::topology::{Role, Topology, TopologyError};

/// Why the links could not be emulated or changed.
#[derive(Debug, thiserror::Error)]
pub enum EmulationError {
    #[error(transparent)]
    Forwarder(#[from] ForwarderError),
    #[error(transparent)]
    Netem(#[from] NetemError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// `--pcap` with `backend = "netem"`: only the forwarder sees frames.
    #[error(
        "packet captures need the userspace emulator: the scenario asks for \
         backend = \"netem\"; set backend = \"userspace\" or \"auto\" to capture"
    )]
    CaptureNeedsUserspace,
}

/// The running link emulation of one topology.
pub enum Emulation {
    /// The lab's forwarder in the emu namespace.
    Userspace(Forwarder),
    /// Kernel netem qdiscs on bridged emu interfaces.
    Netem,
}

impl Emulation {
    /// Starts emulating every link of `scenario` in `topology` with the
    /// resolved backend; link models are seeded from the scenario. With
    /// `captures`, each link's directions are captured into that directory
    /// (see [`crate::emulator::forwarder::capture`]), which takes the
    /// userspace backend.
    pub fn start(
        topology: &Topology,
        scenario: &Scenario,
        captures: Option<&Path>,
    ) -> Result<Emulation, EmulationError> {
        let requested = match (scenario.backend, captures) {
            (Backend::Auto, Some(_)) => Backend::Userspace,
            (Backend::Netem, Some(_)) => return Err(EmulationError::CaptureNeedsUserspace),
            (backend, _) => backend,
        };
        match netem::resolve(requested, topology)? {
            ResolvedBackend::Userspace => {
                let links = topology
                    .links()
                    .iter()
                    .zip(&scenario.links)
                    .enumerate()
                    .map(|(index, (addressing, spec))| {
                        let model = |direction| {
                            scenario
                                .link_model(index, direction)
                                .expect("a topology is built with the scenario's links")
                        };
                        let link = ForwardedLink::new(
                            addressing,
                            model(Direction::Up),
                            model(Direction::Down),
                        );
                        match captures {
                            Some(dir) => link.capturing_to(dir, &spec.name),
                            None => link,
                        }
                    })
                    .collect();
                let mut options = ForwarderOptions::new(Instant::now());
                if !scenario.emulator_realtime {
                    options.realtime_priority = None;
                }
                Ok(Emulation::Userspace(Forwarder::start(
                    topology.netns(Role::Emu),
                    links,
                    &options,
                )?))
            }
            ResolvedBackend::Netem => {
                let params: Vec<_> = scenario.links.iter().map(|l| l.params.clone()).collect();
                netem::install(topology, &params)?;
                Ok(Emulation::Netem)
            }
        }
    }

    /// The backend's name as `summary.json` reports it.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Emulation::Userspace(_) => "userspace",
            Emulation::Netem => "netem",
        }
    }

    /// Bytes and frames each link carried in both directions (the forwarder
    /// counts them; netem keeps no such counters, so the list is empty).
    pub fn link_counters(&self, scenario: &Scenario) -> Result<Vec<LinkCounters>, EmulationError> {
        let Emulation::Userspace(forwarder) = self else {
            return Ok(Vec::new());
        };
        scenario
            .links
            .iter()
            .enumerate()
            .map(|(index, link)| {
                let up = forwarder.counters(index, Direction::Up)?;
                let down = forwarder.counters(index, Direction::Down)?;
                Ok(LinkCounters {
                    link: link.name.clone(),
                    bytes: up.forwarded_bytes + down.forwarded_bytes,
                    packets: up.forwarded + down.forwarded,
                })
            })
            .collect()
    }

    /// Stops the forwarder threads (before the topology is removed).
    pub fn stop(self) -> Result<(), EmulationError> {
        match self {
            Emulation::Userspace(forwarder) => Ok(forwarder.stop()?),
            Emulation::Netem => Ok(()),
        }
    }
}

/// Applies timeline steps to a running emulation and the topology, and keeps
/// what the steps changed (carrier, client addresses).
pub struct TimelinePlayer {
    client_addresses: Vec<Ipv4Addr>,
    carrier_down: Vec<bool>,
    address_changes: u8,
}

impl TimelinePlayer {
    pub fn new(topology: &Topology) -> TimelinePlayer {
        TimelinePlayer {
            client_addresses: topology.links().iter().map(|l| l.client_address).collect(),
            carrier_down: vec![false; topology.links().len()],
            address_changes: 0,
        }
    }

    /// Applies one step. A `down` also drops the carrier of the client's
    /// interface (the modem lost its signal); the next `up` restores it.
    pub fn apply(
        &mut self,
        step: &TimelineStep,
        scenario: &Scenario,
        topology: &Topology,
        emulation: &Emulation,
    ) -> Result<(), EmulationError> {
        self.change(step.link_index, &step.change, scenario, topology, emulation)
    }

    /// Puts every link that `steps` change back as the scenario starts it
    /// (up, with its first parameters), so the timeline can play again
    /// from its start (`circus-lab shell` loops it). Client addresses keep
    /// their last change: a new lease, not the old one back.
    pub fn restart(
        &mut self,
        steps: &[TimelineStep],
        scenario: &Scenario,
        topology: &Topology,
        emulation: &Emulation,
    ) -> Result<(), EmulationError> {
        let mut changed: Vec<usize> = steps.iter().map(|step| step.link_index).collect();
        changed.sort_unstable();
        changed.dedup();
        for link in changed {
            let first = Box::new(scenario.links[link].params.clone());
            let up = LinkChange::Condition(LinkCondition::Up);
            self.change(link, &up, scenario, topology, emulation)?;
            self.change(
                link,
                &LinkChange::Params(first),
                scenario,
                topology,
                emulation,
            )?;
        }
        Ok(())
    }

    fn change(
        &mut self,
        link: usize,
        change: &LinkChange,
        scenario: &Scenario,
        topology: &Topology,
        emulation: &Emulation,
    ) -> Result<(), EmulationError> {
        match change {
            LinkChange::Condition(condition) => {
                let down = *condition == LinkCondition::Down;
                if down != self.carrier_down[link] {
                    topology.set_carrier(link, !down)?;
                    self.carrier_down[link] = down;
                }
                match emulation {
                    Emulation::Userspace(forwarder) => forwarder.set_condition(link, *condition)?,
                    Emulation::Netem => {
                        let params = &scenario.links[link].params;
                        netem::apply(topology, link, params, *condition)?
                    }
                }
            }
            LinkChange::Params(params) => match emulation {
                Emulation::Userspace(forwarder) => forwarder.set_params(link, params)?,
                Emulation::Netem => netem::apply(topology, link, params, LinkCondition::Up)?,
            },
            LinkChange::ChangeAddress => {
                // A new host number on the same subnet: what a new DHCP lease
                // behind the same kind of router looks like to both ends.
                self.address_changes = self.address_changes.wrapping_add(1);
                let old = self.client_addresses[link];
                let [a, b, c, _] = old.octets();
                let new = Ipv4Addr::new(a, b, c, 10 + self.address_changes % 200);
                topology.change_client_address(link, old, new)?;
                self.client_addresses[link] = new;
            }
        }
        Ok(())
    }
}
