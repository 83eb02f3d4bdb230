//! The scenario's bulk TCP flows between the client site and the server, as
//! a simulated system carries them: whatever carries packets (circus's
//! engines, or a baseline's links) asks for what each side sends and hands
//! back what arrives; this routes packets to the flows' ends and logs the
//! goodput of each direction as the real receivers do.
//!
//! Directions are the link models' ([`Direction`]): an upload flow's data
//! travels `Up` (its sender is on the client side) and its ACKs `Down`; a
//! download flow is the mirror image. One flow type serves both.

use std::net::SocketAddrV4;
use std::time::Duration;

use super::segment;
use super::{FlowConfig, Goodput, Receiver, Sender};
use crate::emulator::model::Direction;
use crate::runner::{TCP_DOWN_PORT, TCP_PORT};
use crate::scenario::Scenario;
use crate::sim::probe::{CLIENT_TUNNEL_ADDRESS, virtual_nanos};
use crate::topology::addressing::SERVER_ADDRESS;
use crate::traffic::tcp::TcpLog;

/// Client port of flow 0 (upload or download); flow `i` uses `+ i`.
const FIRST_CLIENT_PORT: u16 = 50_000;

/// One flow and which way its data goes.
#[derive(Debug)]
struct Flow {
    data: Direction,
    sender: Sender,
    receiver: Receiver,
    /// Its index among the flows of its direction (its goodput log entry,
    /// and what pins it to a link in per-connection systems).
    index: usize,
}

/// Every bulk flow of a simulated run, in both directions.
#[derive(Debug)]
pub struct TcpTraffic {
    flows: Vec<Flow>,
    up: Option<Goodput>,
    down: Option<Goodput>,
}

/// What to build: flows per direction, and the path's packet size.
#[derive(Clone, Copy, Debug)]
pub struct TcpPlan {
    pub up_flows: u32,
    pub down_flows: u32,
    /// Largest IP packet the path carries (a tunnel's inner MTU).
    pub mtu: usize,
}

impl TcpPlan {
    /// The scenario's flows over a path of `mtu`.
    pub fn for_scenario(scenario: &Scenario, mtu: usize) -> TcpPlan {
        TcpPlan {
            up_flows: scenario.traffic.tcp.up_flows(),
            down_flows: scenario.traffic.tcp.down_flows(),
            mtu,
        }
    }
}

impl TcpTraffic {
    /// The flows of `plan`, writing from `start` for `duration` (the
    /// scenario's zero and length, where goodput is also measured from).
    pub fn new(plan: TcpPlan, start: Duration, duration: Duration) -> TcpTraffic {
        let stop = start + duration;
        let mut flows = Vec::new();
        let mut configs = |data: Direction, count: u32| -> Vec<FlowConfig> {
            (0..count)
                .map(|index| {
                    let port = FIRST_CLIENT_PORT.wrapping_add(index as u16);
                    // The tunnel address also stands for the client's
                    // address on a link: only the flows' ends read it.
                    let client = SocketAddrV4::new(CLIENT_TUNNEL_ADDRESS, port);
                    // The server's ports are the real runner's: uploads and
                    // downloads listen apart.
                    let (src, dst) = match data {
                        Direction::Up => (client, SocketAddrV4::new(SERVER_ADDRESS, TCP_PORT)),
                        Direction::Down => {
                            (SocketAddrV4::new(SERVER_ADDRESS, TCP_DOWN_PORT), client)
                        }
                    };
                    let config = FlowConfig::new(src, dst, plan.mtu, start, stop);
                    let (sender, receiver) = config.ends();
                    flows.push(Flow {
                        data,
                        sender,
                        receiver,
                        index: index as usize,
                    });
                    config
                })
                .collect()
        };
        let up = configs(Direction::Up, plan.up_flows);
        let down = configs(Direction::Down, plan.down_flows);
        let origin = virtual_nanos(start);
        let goodput = |configs: Vec<FlowConfig>| {
            (!configs.is_empty()).then(|| Goodput::new(origin, duration, &configs))
        };
        TcpTraffic {
            up: goodput(up),
            down: goodput(down),
            flows,
        }
    }

    /// When a flow's end next needs [`TcpTraffic::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.flows
            .iter()
            .flat_map(|flow| [flow.sender.poll_timeout(), flow.receiver.poll_timeout()])
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Duration) {
        for flow in &mut self.flows {
            if flow.sender.poll_timeout().is_some_and(|at| at <= now) {
                flow.sender.handle_timeout(now);
            }
            if flow.receiver.poll_timeout().is_some_and(|at| at <= now) {
                flow.receiver.handle_timeout(now);
            }
        }
    }

    /// Hands `send(flow index, packet)` every packet the flows' ends want
    /// to send in `direction` now: data of the flows going that way, ACKs
    /// of the others.
    pub fn poll_transmit(
        &mut self,
        now: Duration,
        direction: Direction,
        buf: &mut [u8],
        mut send: impl FnMut(usize, &[u8]),
    ) {
        for flow in &mut self.flows {
            if flow.data == direction {
                while let Some(len) = flow.sender.poll_transmit(now, buf) {
                    send(flow.index, &buf[..len]);
                }
            } else {
                while let Some(len) = flow.receiver.poll_transmit(now, buf) {
                    send(flow.index, &buf[..len]);
                }
            }
        }
    }

    /// A packet that travelled `direction` and arrived at its end; returns
    /// false if it belongs to no flow (a probe, say).
    pub fn handle_packet(&mut self, now: Duration, direction: Direction, packet: &[u8]) -> bool {
        let Ok((endpoints, _)) = segment::parse(packet) else {
            return false;
        };
        for flow in &mut self.flows {
            if flow.data == direction && flow.sender_endpoints() == endpoints {
                let bytes = flow.receiver.handle_packet(now, packet);
                let goodput = match direction {
                    Direction::Up => &mut self.up,
                    Direction::Down => &mut self.down,
                };
                if let Some(goodput) = goodput {
                    let at = virtual_nanos(now);
                    goodput.delivered(flow.index, at, bytes);
                }
                return true;
            }
            if flow.data != direction && flow.sender_endpoints().reversed() == endpoints {
                flow.sender.handle_packet(now, packet);
                return true;
            }
        }
        false
    }

    /// The goodput logs of the upload and the download flows (`None` for a
    /// direction without flows).
    pub fn into_logs(self) -> (Option<TcpLog>, Option<TcpLog>) {
        (
            self.up.map(Goodput::into_log),
            self.down.map(Goodput::into_log),
        )
    }
}

impl Flow {
    /// The data's addresses (the ACKs' reversed).
    fn sender_endpoints(&self) -> segment::Endpoints {
        self.sender.endpoints()
    }
}
