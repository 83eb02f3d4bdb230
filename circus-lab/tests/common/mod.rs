//! Shared by the emulator tests: a one-link topology with a running forwarder.

// Each test file that includes this uses a different subset.
#![allow(dead_code)]

use std::net::{SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use circus_lab::emulator::forwarder::capacity::{UdpEcho, round_trips};
use circus_lab::emulator::forwarder::{ForwardedLink, Forwarder, ForwarderOptions};
use circus_lab::emulator::model::{Direction, LinkModel, LinkParams};
use circus_lab::topology::{Role, Topology, TopologyConfig};

/// A one-link topology with the emulator running on it.
pub struct Lab {
    pub forwarder: Forwarder,
    pub topology: Topology,
}

impl Lab {
    pub fn start(params: LinkParams) -> Lab {
        Lab::start_tagged("t", params)
    }

    /// A lab whose namespaces carry `tag` (so a test's can be told apart).
    pub fn start_tagged(tag: &str, params: LinkParams) -> Lab {
        Lab::start_capturing(tag, params, None)
    }

    /// A tagged lab whose link, named `link`, is captured into `captures`
    /// if given.
    pub fn start_capturing(tag: &str, params: LinkParams, captures: Option<&Path>) -> Lab {
        let topology = Topology::build(&TopologyConfig {
            tag: tag.into(),
            links: 1,
        })
        .unwrap();
        let link = ForwardedLink::new(
            &topology.links()[0],
            LinkModel::new(params.clone(), Direction::Up, 1),
            LinkModel::new(params, Direction::Down, 2),
        );
        let link = match captures {
            Some(dir) => link.capturing_to(dir, "link"),
            None => link,
        };
        let forwarder = Forwarder::start(
            topology.netns(Role::Emu),
            vec![link],
            &ForwarderOptions::new(Instant::now()),
        )
        .unwrap();
        Lab {
            forwarder,
            topology,
        }
    }

    /// A UDP socket in the namespace of `role`, bound to `address`.
    pub fn socket(&self, role: Role, address: SocketAddrV4) -> UdpSocket {
        self.topology
            .netns(role)
            .run(|| UdpSocket::bind(address))
            .unwrap()
            .unwrap()
    }

    /// An echo on the gateway's end of link 0, and a socket on the client's.
    pub fn echo_pair(&self) -> (UdpEcho, UdpSocket) {
        let link = &self.topology.links()[0];
        let server = self.socket(Role::Gateway, SocketAddrV4::new(link.gateway_address, 0));
        let client = self.socket(Role::Client, SocketAddrV4::new(link.client_address, 0));
        (UdpEcho::start(server).unwrap(), client)
    }

    /// Round trips of `count` probes `interval` apart from the client to
    /// the echo, waiting up to `wait` after the last.
    pub fn probe(
        &self,
        echo: &UdpEcho,
        client: &UdpSocket,
        count: u32,
        interval: Duration,
        wait: Duration,
    ) -> Vec<Duration> {
        round_trips(client, echo.address(), count, interval, wait).unwrap()
    }
}

pub fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}
