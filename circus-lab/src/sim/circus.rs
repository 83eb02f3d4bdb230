//! The `circus` system on virtual time: the real client and gateway engines
//! of circus-core, exchanging their datagrams over the scenario's link
//! models, with the probe stream entering the client's TUN side and leaving
//! the gateway's.
//!
//! The driver is a discrete-event loop in the manner of quinn-proto's test
//! `Pair`: find the earliest thing that can happen (a probe due, a timeline
//! step, a datagram arriving, an engine timer), jump the clock there, feed
//! it in, and drain whatever the engines want sent or delivered.
//!
//! Before the scenario's time zero the client connects and its links come
//! up as both ends see them (a warm-up the real runner also waits for), so
//! the figures measure the scenario, not the handshake.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use circus_core::LinkId;
use circus_core::crypto::{Psk, StaticSecret};
use circus_core::engine::{Client, Config, Gateway, IpPrefix, PeerConfig};
use circus_core::paths::PathState;
use circus_core::scheduler::Policy;

use super::links::{CarrierChange, SimLinks};
use super::probe::{CLIENT_TUNNEL_ADDRESS, ProbePacket, ProbeStream, Streams};
use super::tcp::{TcpPlan, TcpTraffic};
use super::wire::Wire;
use super::{SimError, stream_id, system_logs};
use crate::emulator::model::Direction;
use crate::metrics::SystemLogs;
use crate::scenario::{Scenario, SystemKind, TimelineStep};
use crate::traffic::DRAIN;

/// Longest the client may take to connect and bring its links up before
/// the scenario starts anyway (a link with a 600 ms round trip needs a
/// few seconds of probes; one that never comes up must not stall the run).
const WARM_UP_LIMIT: Duration = Duration::from_secs(10);

/// Unix time handed to the client at the start, for handshake timestamps:
/// a constant, so nothing depends on the wall clock.
const UNIX_TIME_AT_START_NS: u64 = 1_750_000_000_000_000_000;

/// Buffer size for datagrams and tunnel packets: above any link MTU.
const BUFFER_LEN: usize = 65_536;

/// Events handled at one virtual instant before the engines are presumed
/// stuck in a loop (a timer that is always due but never handled).
const MAX_EVENTS_AT_ONE_INSTANT: u32 = 1_000_000;

/// The largest packet the TUN devices take, as circus-node sets it for
/// links of the usual MTU (IPv4 and UDP headers and the tunnel's overhead
/// taken off): what TCP segments through the tunnel fit.
const TUN_MTU: usize =
    circus_node::config::DEFAULT_LINK_MTU as usize - 28 - circus_core::engine::OVERHEAD;

/// Static keys and pre-shared key of the simulated peers: fixed, since only
/// figures matter here and they must not depend on randomness. (The
/// handshake's ephemeral keys are still random; they change ciphertexts,
/// never sizes or timing.)
const CLIENT_SECRET: [u8; 32] = [0x11; 32];
const GATEWAY_SECRET: [u8; 32] = [0x22; 32];
const PSK: [u8; 32] = [0x33; 32];

/// Simulates circus over the scenario with its scheduler policy.
pub(super) fn run(scenario: &Scenario) -> Result<SystemLogs, SimError> {
    let policy = match &scenario.policy {
        Some(name) => Policy::from_str(name).map_err(|_| SimError::Policy(name.clone()))?,
        None => Policy::default(),
    };
    let mut sim = CircusSim::new(scenario, policy)?;
    let zero = sim.warm_up()?;
    let id = stream_id(SystemKind::Circus);
    let mut probes = Streams {
        up: ProbeStream::for_scenario(scenario, Direction::Up, zero, id),
        down: ProbeStream::for_scenario(scenario, Direction::Down, zero, id),
    };
    let mut tcp = TcpTraffic::new(
        TcpPlan::for_scenario(scenario, TUN_MTU),
        zero,
        scenario.duration,
    );
    sim.run_scenario(
        scenario,
        &mut Traffic {
            probes: &mut probes,
            tcp: &mut tcp,
        },
    )?;
    Ok(system_logs(
        scenario,
        SystemKind::Circus,
        probes,
        tcp,
        sim.links.carried(),
        // circus chooses the link of each packet itself.
        None,
    ))
}

/// Both engines, the links between them and the probe log.
struct CircusSim {
    /// Virtual time zero; engines see `base + Duration`.
    base: Instant,
    now: Duration,
    client: Client,
    gateway: Gateway,
    links: SimLinks,
    wire: Wire,
    /// Scratch for datagrams the engines send.
    transmit: Vec<u8>,
    /// Scratch for tunnel packets the engines deliver.
    deliver: Vec<u8>,
    /// Scratch for TCP packets entering the tunnel.
    segment: Vec<u8>,
    /// Consecutive events handled without the clock moving.
    events_now: u32,
}

impl CircusSim {
    fn new(scenario: &Scenario, policy: Policy) -> Result<CircusSim, SimError> {
        // Any instant serves as zero: the engines only compare instants.
        let base = Instant::now();
        let config = Config {
            policy,
            ..Config::default()
        };
        let client_secret = StaticSecret::from_bytes(CLIENT_SECRET);
        let gateway_secret = StaticSecret::from_bytes(GATEWAY_SECRET);
        let peer = PeerConfig {
            public: client_secret.public_key(),
            psk: Psk::from_bytes(PSK),
            tunnel_addrs: vec![IpPrefix::host(IpAddr::V4(CLIENT_TUNNEL_ADDRESS))],
        };
        let gateway_public = gateway_secret.public_key();
        let gateway = Gateway::new(config.clone(), gateway_secret, vec![peer])?;
        let mut client = Client::new(
            config,
            client_secret,
            gateway_public,
            Psk::from_bytes(PSK),
            vec![IpPrefix::host(IpAddr::V4(CLIENT_TUNNEL_ADDRESS))],
            base,
            UNIX_TIME_AT_START_NS,
        );
        let links = SimLinks::new(scenario);
        for link in 0..links.len() {
            client.link_add(base, link_id(link));
        }
        Ok(CircusSim {
            base,
            now: Duration::ZERO,
            client,
            gateway,
            links,
            wire: Wire::default(),
            transmit: vec![0; BUFFER_LEN],
            deliver: vec![0; BUFFER_LEN],
            segment: vec![0; BUFFER_LEN],
            events_now: 0,
        })
    }

    /// Runs until the client is connected with every link up (or the limit
    /// passed); returns that time, the scenario's zero.
    fn warm_up(&mut self) -> Result<Duration, SimError> {
        // No probes yet: what the gateway delivers now is not recorded.
        self.flush(None);
        while !self.ready() && self.now < WARM_UP_LIMIT {
            let next = self.next_engine_event().unwrap_or(WARM_UP_LIMIT);
            self.move_clock(next.min(WARM_UP_LIMIT))?;
            self.handle_events(None);
        }
        Ok(self.now)
    }

    /// Connected, and every link up as both ends see it.
    fn ready(&mut self) -> bool {
        if !self.client.is_connected() {
            return false;
        }
        let links = self.links.len();
        let client_ready =
            (0..links).all(|link| self.client.link_state(link_id(link)) == Some(PathState::Up));
        // Only checked once the client is ready: `stats` allocates.
        client_ready
            && self.gateway.stats().sessions.iter().any(|(_, session)| {
                session.links.len() == links
                    && session.links.iter().all(|link| link.state == PathState::Up)
            })
    }

    /// The scenario proper: the probe streams, the TCP flows and the
    /// timeline from the streams' start, then the drain; the streams and
    /// the flows log what happened.
    fn run_scenario(
        &mut self,
        scenario: &Scenario,
        traffic: &mut Traffic<'_>,
    ) -> Result<(), SimError> {
        let zero = self.now;
        self.links.reset_carried();
        let mut up_packet = ProbePacket::new(traffic.probes.up.size(), Direction::Up);
        let mut down_packet = ProbePacket::new(traffic.probes.down.size(), Direction::Down);
        let timeline: Vec<TimelineStep> = scenario.timeline();
        let mut steps = timeline.iter().peekable();
        let stop = zero + scenario.duration + DRAIN;
        loop {
            let next_probe = traffic.probes.next_due();
            let next_step = steps.peek().map(|step| zero + step.at);
            let next_tcp = traffic.tcp.poll_timeout();
            let Some(next) = [next_probe, next_step, next_tcp, self.next_engine_event()]
                .into_iter()
                .flatten()
                .min()
                .filter(|&next| next <= stop)
            else {
                break;
            };
            self.move_clock(next)?;
            while let Some(step) = steps.next_if(|step| zero + step.at <= self.now) {
                self.apply(step);
            }
            let now = self.instant();
            let probes = &mut *traffic.probes;
            while probes.up.next_due().is_some_and(|(_, at)| at <= self.now) {
                let header = probes.up.send_next(self.now);
                self.client.handle_tun_packet(now, up_packet.write(&header));
            }
            while probes.down.next_due().is_some_and(|(_, at)| at <= self.now) {
                let header = probes.down.send_next(self.now);
                self.gateway
                    .handle_tun_packet(now, down_packet.write(&header));
            }
            if traffic.tcp.poll_timeout().is_some_and(|at| at <= self.now) {
                traffic.tcp.handle_timeout(self.now);
            }
            self.handle_events(Some(traffic));
        }
        Ok(())
    }

    /// When the engines or the wire next need attention.
    fn next_engine_event(&mut self) -> Option<Duration> {
        let client = self.client.poll_timeout().map(|at| self.since_base(at));
        let gateway = self.gateway.poll_timeout().map(|at| self.since_base(at));
        [client, gateway, self.wire.next_arrival()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Moves the clock forward (never back: a timer already due fires now).
    fn move_clock(&mut self, to: Duration) -> Result<(), SimError> {
        if to > self.now {
            self.now = to;
            self.events_now = 0;
        } else {
            self.events_now += 1;
            if self.events_now > MAX_EVENTS_AT_ONE_INSTANT {
                return Err(SimError::Stuck { at: self.now });
            }
        }
        Ok(())
    }

    /// Delivers arrived datagrams, fires due timers, then drains the engines.
    fn handle_events(&mut self, traffic: Option<&mut Traffic<'_>>) {
        let now = self.instant();
        while let Some(arrived) = self.wire.pop_arrived(self.now) {
            let datagram = self.wire.datagram(arrived);
            match arrived.direction {
                Direction::Up => {
                    let from = self.links.client_address(arrived.link);
                    self.gateway.handle_datagram(now, from, datagram);
                }
                Direction::Down => {
                    self.client
                        .handle_datagram(now, link_id(arrived.link), datagram);
                }
            }
            self.wire.release(arrived);
        }
        if self.client.poll_timeout().is_some_and(|at| at <= now) {
            self.client.handle_timeout(now);
        }
        if self.gateway.poll_timeout().is_some_and(|at| at <= now) {
            self.gateway.handle_timeout(now);
        }
        self.flush(traffic);
    }

    /// Applies a timeline step to the links and tells the client about its
    /// interfaces' carrier, as the kernel would.
    fn apply(&mut self, step: &TimelineStep) {
        let now = self.instant();
        let link = link_id(step.link_index);
        match self.links.apply(step) {
            Some(CarrierChange::Lost) => self.client.link_down(now, link),
            Some(CarrierChange::Regained) => self.client.link_up(now, link),
            None => {}
        }
    }

    /// Feeds the TCP flows' packets into the engines, puts everything the
    /// engines want sent on the wire and hands what they deliver to the
    /// probe logs and the flows; again while the flows have an answer (an
    /// ACK for delivered data) to feed in.
    fn flush(&mut self, mut traffic: Option<&mut Traffic<'_>>) {
        loop {
            if let Some(traffic) = traffic.as_deref_mut() {
                self.feed_tcp(traffic.tcp);
            }
            self.transmit_datagrams();
            if !self.deliver(traffic.as_deref_mut()) {
                break;
            }
        }
    }

    /// The flows' packets into the TUN sides: the client's for what goes
    /// up, the gateway's for what goes down.
    fn feed_tcp(&mut self, tcp: &mut TcpTraffic) {
        let now = self.instant();
        let (client, gateway) = (&mut self.client, &mut self.gateway);
        tcp.poll_transmit(self.now, Direction::Up, &mut self.segment, |_, packet| {
            client.handle_tun_packet(now, packet);
        });
        tcp.poll_transmit(self.now, Direction::Down, &mut self.segment, |_, packet| {
            gateway.handle_tun_packet(now, packet);
        });
    }

    /// Puts everything the engines want sent on the wire.
    fn transmit_datagrams(&mut self) {
        let now = self.instant();
        while let Some(transmit) = self.client.poll_transmit(now, &mut self.transmit) {
            let link = usize::from(transmit.link.0);
            let datagram = &self.transmit[..transmit.len];
            let verdict = self
                .links
                .carry(self.now, link, Direction::Up, datagram.len());
            self.wire.put(verdict, link, Direction::Up, datagram);
        }
        while let Some(transmit) = self.gateway.poll_transmit(now, &mut self.transmit) {
            // A datagram to an address the client has left reaches nobody.
            let Some(link) = self.links.link_of_client_address(transmit.to) else {
                continue;
            };
            let datagram = &self.transmit[..transmit.len];
            let verdict = self
                .links
                .carry(self.now, link, Direction::Down, datagram.len());
            self.wire.put(verdict, link, Direction::Down, datagram);
        }
    }

    /// Hands what the engines deliver on their TUN sides (the gateway's
    /// went up, the client's came down) to the traffic; says whether a TCP
    /// flow received something, and so may answer. Before the scenario
    /// starts nothing is recorded.
    fn deliver(&mut self, mut traffic: Option<&mut Traffic<'_>>) -> bool {
        let mut to_tcp = false;
        for direction in [Direction::Up, Direction::Down] {
            loop {
                let delivered = match direction {
                    Direction::Up => self.gateway.poll_deliver(&mut self.deliver),
                    Direction::Down => self.client.poll_deliver(&mut self.deliver),
                };
                let Some(len) = delivered else {
                    break;
                };
                if let Some(traffic) = traffic.as_deref_mut() {
                    to_tcp |= traffic.receive(self.now, direction, &self.deliver[..len]);
                }
            }
        }
        to_tcp
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    fn since_base(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.base)
    }
}

/// The traffic at the tunnel's ends.
struct Traffic<'a> {
    probes: &'a mut Streams,
    tcp: &'a mut TcpTraffic,
}

impl Traffic<'_> {
    /// A packet that travelled `direction` reached its end: a TCP flow's
    /// (then true: the flow may answer) or a probe.
    fn receive(&mut self, now: Duration, direction: Direction, packet: &[u8]) -> bool {
        if self.tcp.handle_packet(now, direction, packet) {
            return true;
        }
        if let Some(header) = ProbePacket::read(packet) {
            let stream = match direction {
                Direction::Up => &mut self.probes.up,
                Direction::Down => &mut self.probes.down,
            };
            stream.received(&header, now);
        }
        false
    }
}

/// The engine's name for the scenario's link `index` (at most 16 links).
fn link_id(index: usize) -> LinkId {
    LinkId(u8::try_from(index).unwrap_or(u8::MAX))
}
