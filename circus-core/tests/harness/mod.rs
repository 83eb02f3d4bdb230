//! Deterministic two-sided test network for circus engines, on virtual time.
//!
//! In the spirit of quinn-proto's `tests/util.rs` `Pair`: one [`Gateway`] and
//! any number of [`Client`]s exchange datagrams over model links with a fixed
//! one-way delay, an optional rate limit behind a bounded drop-tail queue,
//! seeded random loss and a silent blackhole switch. Nothing
//! reads a clock: the simulation jumps straight to the next thing that can
//! happen (a datagram arriving, an engine timer, a traffic source ticking),
//! so a minute of traffic runs in seconds and every run is identical.
//!
//! Traffic sources write sequenced IPv4 packets into an engine's TUN side;
//! every packet an engine delivers is logged with its arrival time so tests
//! can assert loss, duplicates, order and gaps afterwards ([`FlowReport`]).

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use circus_core::LinkId;
use circus_core::crypto::{Psk, PublicKey, StaticSecret};
use circus_core::engine::{Client, Config, Gateway, IpPrefix, PeerConfig};
use circus_core::paths::PathState;
use circus_core::wire::Packet;

/// Unix time of the simulation's start, as handed to engines for handshake
/// timestamps (any fixed value works; it only has to move forward).
const UNIX_START_NS: u64 = 1_750_000_000_000_000_000;

/// Address the gateway listens on.
pub const GATEWAY_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), 51820);

/// Base properties of one model link, both directions alike.
#[derive(Debug, Clone, Copy)]
pub struct LinkSpec {
    /// Round-trip time; each direction gets half.
    pub rtt: Duration,
    /// Probability that a datagram is dropped, per direction, independently.
    pub loss: f64,
    /// Bottleneck rate in bits per second, per direction; 0 means unlimited
    /// (no serialization time, no queue).
    pub rate_bps: u64,
    /// Bound of the bottleneck queue in sending time at `rate_bps`
    /// (drop-tail): a datagram that would wait longer is dropped.
    pub queue: Duration,
}

impl LinkSpec {
    /// A clean link of the given round-trip time in milliseconds.
    pub fn rtt_ms(ms: u64) -> Self {
        Self {
            rtt: Duration::from_millis(ms),
            loss: 0.0,
            rate_bps: 0,
            queue: Duration::from_millis(100),
        }
    }

    /// The same link limited to `mbit` Mbit/s in each direction, behind a
    /// drop-tail queue of `queue_ms` of sending time (the lab emulator's
    /// default queue is 100 ms).
    pub fn with_rate(self, mbit: u64, queue_ms: u64) -> Self {
        Self {
            rate_bps: mbit * 1_000_000,
            queue: Duration::from_millis(queue_ms),
            ..self
        }
    }

    /// The same link dropping `loss` of the datagrams in each direction.
    pub fn with_loss(self, loss: f64) -> Self {
        Self { loss, ..self }
    }
}

/// One client-side link in the model.
#[derive(Debug)]
pub struct SimLink {
    pub id: LinkId,
    pub spec: LinkSpec,
    /// Silent failure: the interface stays up, every datagram vanishes.
    pub blackholed: bool,
    /// The client's address on this link as the gateway sees it.
    pub addr: SocketAddr,
    rng: u64,
    /// Datagrams the model dropped (loss or blackhole), both directions.
    pub dropped: u64,
    /// Datagrams dropped because the bottleneck queue was full.
    pub dropped_queue: u64,
    /// Bytes carried (that left the bottleneck), upstream and downstream.
    pub carried: [u64; 2],
    /// When the bottleneck finishes sending what it holds, per direction
    /// (upstream, downstream).
    busy_until: [Option<Instant>; 2],
}

impl SimLink {
    fn passes(&mut self) -> bool {
        if self.blackholed {
            self.dropped += 1;
            return false;
        }
        if self.spec.loss > 0.0 && unit(&mut self.rng) < self.spec.loss {
            self.dropped += 1;
            return false;
        }
        true
    }

    /// Offers a datagram of `len` bytes at `now`; returns when it arrives at
    /// the far end, or `None` if the model dropped it.
    fn transmit(&mut self, now: Instant, upstream: bool, len: usize) -> Option<Instant> {
        if !self.passes() {
            return None;
        }
        let dir = usize::from(!upstream);
        let mut departs = now;
        let bits_ns = (len as u64 * 8).saturating_mul(1_000_000_000);
        if let Some(ns) = bits_ns.checked_div(self.spec.rate_bps) {
            let start = self.busy_until[dir].map_or(now, |b| b.max(now));
            if start - now > self.spec.queue {
                self.dropped_queue += 1;
                return None;
            }
            departs = start + Duration::from_nanos(ns);
            self.busy_until[dir] = Some(departs);
        }
        self.carried[dir] += len as u64;
        Some(departs + self.spec.rtt / 2)
    }
}

/// splitmix64: a tiny seeded generator, good enough for loss decisions.
fn next_u64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(state: &mut u64) -> f64 {
    (next_u64(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// A client engine with its links and what it delivered to its TUN.
pub struct SimClient {
    pub engine: Client,
    pub public: PublicKey,
    secret: StaticSecret,
    psk: Psk,
    config: Config,
    pub links: Vec<SimLink>,
    pub tunnel_addr: Ipv4Addr,
    /// Handshake inits the client sent, on all links.
    pub inits_sent: u64,
    /// Packets the client delivered to its TUN, with arrival time.
    pub delivered: Vec<(Instant, Vec<u8>)>,
}

impl SimClient {
    pub fn link(&mut self, id: LinkId) -> &mut SimLink {
        self.links
            .iter_mut()
            .find(|l| l.id == id)
            .expect("the test names an existing link")
    }
}

/// A traffic source: fixed-rate sequenced packets into one engine's TUN side.
#[derive(Debug, Clone)]
struct Flow {
    id: u32,
    client: usize,
    /// Client to gateway when true.
    upstream: bool,
    interval: Duration,
    size: usize,
    next_at: Instant,
    stop_at: Instant,
    next_seq: u64,
    sent: Vec<Instant>,
}

/// How a flow fared: computed from the receiver's log.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowReport {
    pub sent: u64,
    /// Distinct sequence numbers delivered.
    pub delivered: u64,
    /// Sequence numbers never delivered.
    pub lost: Vec<u64>,
    pub duplicates: u64,
    /// Deliveries whose sequence number was below an earlier delivery's.
    pub out_of_order: u64,
    /// Longest time between two consecutive deliveries inside the window.
    pub max_gap: Duration,
    /// Delivery time of the packet after the longest gap.
    pub max_gap_end: Option<Instant>,
    /// One-way latency (TUN in to TUN out, first delivery) of every
    /// delivered packet, ascending.
    pub latencies: Vec<Duration>,
}

impl FlowReport {
    /// The `q` quantile (0..=1) of [`latencies`](Self::latencies).
    pub fn latency(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }
}

/// Datagram in flight on a model link.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Flight {
    at: Instant,
    order: u64,
    client: usize,
    link: LinkId,
    upstream: bool,
    from: SocketAddr,
    bytes: Vec<u8>,
}

/// The network: see the module documentation.
pub struct Sim {
    pub start: Instant,
    pub now: Instant,
    pub gateway: Gateway,
    pub gateway_public: PublicKey,
    /// While set, the gateway's process is gone: datagrams to it vanish.
    pub gateway_down: bool,
    /// What [`restart_gateway`](Sim::restart_gateway) builds a new one from.
    gateway_setup: (Config, StaticSecret, Vec<PeerConfig>),
    pub clients: Vec<SimClient>,
    /// Packets the gateway delivered to its TUN, with arrival time.
    pub gateway_delivered: Vec<(Instant, Vec<u8>)>,
    /// Datagrams the gateway sent to an address no client link has.
    pub unroutable: u64,
    /// Every change of a client link's state: (time, client, link, new state).
    pub transitions: Vec<(Instant, usize, LinkId, Option<PathState>)>,
    flights: BinaryHeap<Reverse<Flight>>,
    flight_order: u64,
    flows: Vec<Flow>,
    buf: Vec<u8>,
}

/// Client side of a new simulation, before it is built.
pub struct ClientSpec {
    pub secret: StaticSecret,
    pub public: PublicKey,
    /// The psk the client uses (tests of a wrong psk change only this).
    pub psk: Psk,
    /// The psk the gateway has for this client.
    pub gateway_psk: Psk,
    /// Whether the gateway knows this client at all.
    pub known: bool,
    /// Prefixes the gateway routes to this client besides its
    /// [`tunnel_prefixes`], which the client itself does not claim (a
    /// gateway configured wider than the client).
    pub gateway_only_routes: Vec<IpPrefix>,
    pub links: Vec<LinkSpec>,
}

impl ClientSpec {
    /// A client known to the gateway with matching psk.
    pub fn new(seed: u8, links: &[LinkSpec]) -> Self {
        let (secret, public) = keypair(seed);
        let psk = Psk::from_bytes([seed ^ 0x5a; 32]);
        Self {
            secret,
            public,
            psk: psk.clone(),
            gateway_psk: psk,
            known: true,
            gateway_only_routes: Vec::new(),
            links: links.to_vec(),
        }
    }
}

fn new_gateway((config, secret, peers): &(Config, StaticSecret, Vec<PeerConfig>)) -> Gateway {
    Gateway::new(config.clone(), secret.clone(), peers.clone()).expect("valid gateway config")
}

/// A deterministic key pair from one seed byte, so test runs are identical.
pub fn keypair(seed: u8) -> (StaticSecret, PublicKey) {
    let secret = StaticSecret::from_bytes([seed; 32]);
    let public = secret.public_key();
    (secret, public)
}

/// The tunnel address of client `i`: 100.64.0.(i+2).
pub fn tunnel_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(100, 64, 0, 2 + i as u8)
}

/// Client `i`'s tunnel prefixes: [`tunnel_addr`] and fd00::(i+2).
pub fn tunnel_prefixes(i: usize) -> Vec<IpPrefix> {
    vec![
        std::net::IpAddr::V4(tunnel_addr(i)).into(),
        format!("fd00::{}/128", i + 2)
            .parse()
            .expect("valid prefix"),
    ]
}

/// Address the simulated Internet host behind the gateway uses.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

/// A sequenced test packet: an IPv4 header (so the gateway can route it),
/// then flow id and sequence number, padded to `size`.
pub fn test_packet(src: Ipv4Addr, dst: Ipv4Addr, flow: u32, seq: u64, size: usize) -> Vec<u8> {
    let size = size.max(32);
    let mut p = vec![0u8; size];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..24].copy_from_slice(&flow.to_be_bytes());
    p[24..32].copy_from_slice(&seq.to_be_bytes());
    p
}

/// Flow id and sequence number of a packet built by [`test_packet`].
pub fn parse_test_packet(p: &[u8]) -> Option<(u32, u64)> {
    let flow = u32::from_be_bytes(p.get(20..24)?.try_into().ok()?);
    let seq = u64::from_be_bytes(p.get(24..32)?.try_into().ok()?);
    Some((flow, seq))
}

impl Sim {
    /// A gateway and clients built from `clients`, all with `config`.
    pub fn new(config: Config, clients: Vec<ClientSpec>) -> Self {
        let start = Instant::now();
        let (gw_secret, gw_public) = keypair(200);
        let peers = clients
            .iter()
            .enumerate()
            .filter(|(_, c)| c.known)
            .map(|(i, c)| PeerConfig {
                public: c.public,
                psk: c.gateway_psk.clone(),
                tunnel_addrs: tunnel_prefixes(i)
                    .into_iter()
                    .chain(c.gateway_only_routes.iter().copied())
                    .collect(),
            })
            .collect();
        let gateway_setup = (config.clone(), gw_secret, peers);
        let gateway = new_gateway(&gateway_setup);
        let sim_clients = clients
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut engine = Client::new(
                    config.clone(),
                    spec.secret.clone(),
                    gw_public,
                    spec.psk.clone(),
                    tunnel_prefixes(i),
                    start,
                    UNIX_START_NS,
                );
                let links = spec
                    .links
                    .iter()
                    .enumerate()
                    .map(|(l, &link_spec)| {
                        let id = LinkId(l as u8);
                        engine.link_add(start, id);
                        SimLink {
                            id,
                            spec: link_spec,
                            blackholed: false,
                            addr: SocketAddr::new(
                                Ipv4Addr::new(198, 18, 1 + i as u8, 2 + l as u8).into(),
                                40000,
                            ),
                            rng: 0x1234_5678 ^ ((i as u64) << 32) ^ (l as u64),
                            dropped: 0,
                            dropped_queue: 0,
                            carried: [0; 2],
                            busy_until: [None; 2],
                        }
                    })
                    .collect();
                SimClient {
                    engine,
                    public: spec.public,
                    secret: spec.secret,
                    psk: spec.psk,
                    config: config.clone(),
                    links,
                    tunnel_addr: tunnel_addr(i),
                    inits_sent: 0,
                    delivered: Vec::new(),
                }
            })
            .collect();
        Self {
            start,
            now: start,
            gateway,
            gateway_public: gw_public,
            gateway_down: false,
            gateway_setup,
            clients: sim_clients,
            gateway_delivered: Vec::new(),
            unroutable: 0,
            transitions: Vec::new(),
            flights: BinaryHeap::new(),
            flight_order: 0,
            flows: Vec::new(),
            buf: vec![0; 65536],
        }
    }

    /// Replaces client `i`'s engine with a new one (same keys and links), as
    /// if its process restarted: its session state is gone.
    pub fn restart_client(&mut self, i: usize) {
        let unix = UNIX_START_NS + (self.now - self.start).as_nanos() as u64;
        let c = &mut self.clients[i];
        c.engine = Client::new(
            c.config.clone(),
            c.secret.clone(),
            self.gateway_public,
            c.psk.clone(),
            tunnel_prefixes(i),
            self.now,
            unix,
        );
        for l in &c.links {
            c.engine.link_add(self.now, l.id);
        }
    }

    /// Replaces the gateway with a new one (same keys and peers), as if its
    /// process restarted: every session is gone.
    pub fn restart_gateway(&mut self) {
        self.gateway = new_gateway(&self.gateway_setup);
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Adds a flow of `rate_pps` packets of `size` bytes from `from` to `until`
    /// (times since start). Upstream flows go client -> gateway. Returns the
    /// flow id.
    pub fn add_flow(
        &mut self,
        client: usize,
        upstream: bool,
        rate_pps: u32,
        size: usize,
        from: Duration,
        until: Duration,
    ) -> u32 {
        let id = self.flows.len() as u32;
        self.flows.push(Flow {
            id,
            client,
            upstream,
            interval: Duration::from_secs(1) / rate_pps,
            size,
            next_at: self.start + from,
            stop_at: self.start + until,
            next_seq: 0,
            sent: Vec::new(),
        });
        id
    }

    /// Runs until virtual time `t` after the start.
    pub fn run_until(&mut self, t: Duration) {
        let end = self.start + t;
        let mut spins_at_same_time = 0u32;
        loop {
            self.pump();
            let next = self.next_event();
            match next {
                Some(n) if n <= end => {
                    if n <= self.now {
                        spins_at_same_time += 1;
                        assert!(
                            spins_at_same_time < 100_000,
                            "engines keep asking to run at {:?} without progress",
                            self.elapsed()
                        );
                    } else {
                        spins_at_same_time = 0;
                        self.now = n;
                    }
                    self.process_due();
                }
                _ => {
                    self.now = end;
                    self.process_due();
                    self.pump();
                    return;
                }
            }
        }
    }

    /// Runs for `d` more virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.elapsed() + d;
        self.run_until(t);
    }

    fn next_event(&mut self) -> Option<Instant> {
        let flights = self.flights.peek().map(|f| f.0.at);
        let clients: Vec<Instant> = self
            .clients
            .iter_mut()
            .filter_map(|c| c.engine.poll_timeout())
            .collect();
        let flows = self
            .flows
            .iter()
            .filter(|f| f.next_at < f.stop_at)
            .map(|f| f.next_at);
        flights
            .into_iter()
            .chain(clients)
            .chain(self.gateway.poll_timeout())
            .chain(flows)
            .min()
    }

    fn process_due(&mut self) {
        let now = self.now;
        while self.flights.peek().is_some_and(|f| f.0.at <= now) {
            let Some(Reverse(f)) = self.flights.pop() else {
                break;
            };
            if f.upstream {
                if !self.gateway_down {
                    self.gateway.handle_datagram(now, f.from, &f.bytes);
                }
            } else {
                self.clients[f.client]
                    .engine
                    .handle_datagram(now, f.link, &f.bytes);
            }
        }
        for c in &mut self.clients {
            if c.engine.poll_timeout().is_some_and(|t| t <= now) {
                c.engine.handle_timeout(now);
            }
        }
        if self.gateway.poll_timeout().is_some_and(|t| t <= now) {
            self.gateway.handle_timeout(now);
        }
        for flow in &mut self.flows {
            while flow.next_at <= now && flow.next_at < flow.stop_at {
                let client = &mut self.clients[flow.client];
                let (src, dst) = if flow.upstream {
                    (client.tunnel_addr, SERVER_ADDR)
                } else {
                    (SERVER_ADDR, client.tunnel_addr)
                };
                let p = test_packet(src, dst, flow.id, flow.next_seq, flow.size);
                if flow.upstream {
                    client.engine.handle_tun_packet(now, &p);
                } else {
                    self.gateway.handle_tun_packet(now, &p);
                }
                flow.sent.push(now);
                flow.next_seq += 1;
                flow.next_at += flow.interval;
            }
        }
    }

    /// Drains everything the engines want to send or deliver right now.
    fn pump(&mut self) {
        let now = self.now;
        loop {
            let mut moved = false;
            for ci in 0..self.clients.len() {
                while let Some(t) = self.clients[ci].engine.poll_transmit(now, &mut self.buf) {
                    moved = true;
                    let bytes = self.buf[..t.len].to_vec();
                    if matches!(Packet::parse(&bytes), Ok(Packet::HandshakeInit(_))) {
                        self.clients[ci].inits_sent += 1;
                    }
                    let link = self.clients[ci].link(t.link);
                    if let Some(at) = link.transmit(now, true, t.len) {
                        let from = link.addr;
                        self.send(Flight {
                            at,
                            order: 0,
                            client: ci,
                            link: t.link,
                            upstream: true,
                            from,
                            bytes,
                        });
                    }
                }
                while let Some(len) = self.clients[ci].engine.poll_deliver(&mut self.buf) {
                    moved = true;
                    self.clients[ci]
                        .delivered
                        .push((now, self.buf[..len].to_vec()));
                }
            }
            while let Some(t) = self.gateway.poll_transmit(now, &mut self.buf) {
                moved = true;
                let bytes = self.buf[..t.len].to_vec();
                let target = self.clients.iter().enumerate().find_map(|(ci, c)| {
                    c.links
                        .iter()
                        .position(|l| l.addr == t.to)
                        .map(|li| (ci, li))
                });
                let Some((ci, li)) = target else {
                    self.unroutable += 1;
                    continue;
                };
                let link = &mut self.clients[ci].links[li];
                if let Some(at) = link.transmit(now, false, t.len) {
                    let id = link.id;
                    self.send(Flight {
                        at,
                        order: 0,
                        client: ci,
                        link: id,
                        upstream: false,
                        from: GATEWAY_ADDR,
                        bytes,
                    });
                }
            }
            while let Some(len) = self.gateway.poll_deliver(&mut self.buf) {
                moved = true;
                self.gateway_delivered.push((now, self.buf[..len].to_vec()));
            }
            if !moved {
                break;
            }
        }
        for (ci, c) in self.clients.iter().enumerate() {
            for l in &c.links {
                let state = c.engine.link_state(l.id);
                let last = self
                    .transitions
                    .iter()
                    .rev()
                    .find(|(_, tc, tl, _)| *tc == ci && *tl == l.id)
                    .map(|t| t.3);
                if last != Some(state) {
                    self.transitions.push((now, ci, l.id, state));
                }
            }
        }
    }

    fn send(&mut self, mut f: Flight) {
        f.order = self.flight_order;
        self.flight_order += 1;
        self.flights.push(Reverse(f));
    }

    /// State of a client link at virtual time `t` according to the recorded
    /// transitions.
    pub fn state_at(&self, client: usize, link: LinkId, t: Duration) -> Option<PathState> {
        let at = self.start + t;
        self.transitions
            .iter()
            .rfind(|(when, c, l, _)| *c == client && *l == link && *when <= at)
            .and_then(|x| x.3)
    }

    /// First time at or after `from` when the client link entered `state`.
    pub fn first_time_in(
        &self,
        client: usize,
        link: LinkId,
        state: PathState,
        from: Duration,
    ) -> Option<Duration> {
        let from = self.start + from;
        self.transitions
            .iter()
            .find(|(when, c, l, s)| {
                *c == client && *l == link && *when >= from && *s == Some(state)
            })
            .map(|x| x.0 - self.start)
    }

    /// Loss, order, duplicates and gaps of flow `id`, counting packets sent in
    /// `[from, until)` and gaps between deliveries in the same window.
    pub fn report(&self, id: u32, from: Duration, until: Duration) -> FlowReport {
        let flow = &self.flows[id as usize];
        let log = if flow.upstream {
            &self.gateway_delivered
        } else {
            &self.clients[flow.client].delivered
        };
        let (from_i, until_i) = (self.start + from, self.start + until);
        let mut seen = vec![0u32; flow.sent.len()];
        let mut report = FlowReport {
            sent: 0,
            delivered: 0,
            lost: Vec::new(),
            duplicates: 0,
            out_of_order: 0,
            max_gap: Duration::ZERO,
            max_gap_end: None,
            latencies: Vec::new(),
        };
        let mut first_at: Vec<Option<Instant>> = vec![None; flow.sent.len()];
        let mut highest: Option<u64> = None;
        let mut last_at: Option<Instant> = None;
        for (at, p) in log {
            let Some((fid, seq)) = parse_test_packet(p) else {
                continue;
            };
            if fid != id {
                continue;
            }
            let Some(count) = seen.get_mut(seq as usize) else {
                continue;
            };
            *count += 1;
            first_at[seq as usize].get_or_insert(*at);
            if *count > 1 {
                report.duplicates += 1;
            }
            if highest.is_some_and(|h| seq < h) {
                report.out_of_order += 1;
            }
            highest = highest.max(Some(seq));
            if *at >= from_i && *at < until_i {
                if let Some(prev) = last_at
                    && *at - prev > report.max_gap
                {
                    report.max_gap = *at - prev;
                    report.max_gap_end = Some(*at);
                }
                last_at = Some(*at);
            }
        }
        for (seq, sent_at) in flow.sent.iter().enumerate() {
            if *sent_at >= from_i && *sent_at < until_i {
                report.sent += 1;
                if let Some(at) = first_at[seq] {
                    report.latencies.push(at - *sent_at);
                }
                if seen[seq] > 0 {
                    report.delivered += 1;
                } else {
                    report.lost.push(seq as u64);
                }
            }
        }
        report.latencies.sort();
        report
    }
}

/// A connected client and gateway joined directly by one zero-delay link,
/// with preallocated datagram slots: for measuring the per-packet cost of
/// the engines themselves (benchmarks, allocation checks), where the
/// [`Sim`]'s bookkeeping would dominate. Virtual time advances by one
/// microsecond per packet.
pub struct Pair {
    pub client: Client,
    pub gateway: Gateway,
    pub now: Instant,
    link: LinkId,
    client_addr: SocketAddr,
    slots: Vec<Vec<u8>>,
    lens: Vec<usize>,
    queued: usize,
    deliver: Vec<u8>,
}

/// Datagram slots of a [`Pair`]: more than one batch of sends produces.
const PAIR_SLOTS: usize = 1024;

impl Pair {
    /// Connects a client and gateway with `config` over one 10 ms link in a
    /// [`Sim`], then takes them out for direct use.
    pub fn connected(config: Config) -> Self {
        let mut sim = Sim::new(config, vec![ClientSpec::new(1, &[LinkSpec::rtt_ms(10)])]);
        sim.run_until(Duration::from_secs(2));
        assert!(sim.clients[0].engine.is_connected(), "pair connects");
        let Sim {
            gateway,
            mut clients,
            now,
            ..
        } = sim;
        let client = clients.remove(0);
        Self {
            link: client.links[0].id,
            client_addr: client.links[0].addr,
            client: client.engine,
            gateway,
            now,
            slots: vec![vec![0; 2048]; PAIR_SLOTS],
            lens: vec![0; PAIR_SLOTS],
            queued: 0,
            deliver: vec![0; 2048],
        }
    }

    /// A packet of `size` bytes the gateway routes to the client.
    pub fn downstream_packet(size: usize) -> Vec<u8> {
        test_packet(SERVER_ADDR, tunnel_addr(0), 0, 0, size)
    }

    /// A packet of `size` bytes from the client to the Internet.
    pub fn upstream_packet(size: usize) -> Vec<u8> {
        test_packet(tunnel_addr(0), SERVER_ADDR, 0, 0, size)
    }

    fn tick(&mut self) {
        self.now += Duration::from_micros(1);
    }

    /// Client: queue `packet` from the TUN side and write out everything it
    /// wants to send into the slots (the encrypt + schedule + encode path).
    pub fn client_send(&mut self, packet: &[u8]) {
        self.tick();
        self.client.handle_tun_packet(self.now, packet);
        while self.queued < PAIR_SLOTS {
            let Some(t) = self
                .client
                .poll_transmit(self.now, &mut self.slots[self.queued])
            else {
                break;
            };
            self.lens[self.queued] = t.len;
            self.queued += 1;
        }
    }

    /// Gateway: queue `packet` and write out what it wants to send.
    pub fn gateway_send(&mut self, packet: &[u8]) {
        self.tick();
        self.gateway.handle_tun_packet(self.now, packet);
        self.drain_gateway();
    }

    fn drain_gateway(&mut self) {
        while self.queued < PAIR_SLOTS {
            let Some(t) = self
                .gateway
                .poll_transmit(self.now, &mut self.slots[self.queued])
            else {
                break;
            };
            self.lens[self.queued] = t.len;
            self.queued += 1;
        }
    }

    /// Gateway: take every queued client datagram and deliver what it can
    /// (the decode + decrypt + reorder path). Returns packets delivered.
    pub fn gateway_receive(&mut self) -> usize {
        for i in 0..self.queued {
            self.gateway.handle_datagram(
                self.now,
                self.client_addr,
                &self.slots[i][..self.lens[i]],
            );
        }
        self.queued = 0;
        let mut delivered = 0;
        while self.gateway.poll_deliver(&mut self.deliver).is_some() {
            delivered += 1;
        }
        delivered
    }

    /// Client: take every queued gateway datagram and deliver what it can.
    pub fn client_receive(&mut self) -> usize {
        for i in 0..self.queued {
            self.client
                .handle_datagram(self.now, self.link, &self.slots[i][..self.lens[i]]);
        }
        self.queued = 0;
        let mut delivered = 0;
        while self.client.poll_deliver(&mut self.deliver).is_some() {
            delivered += 1;
        }
        delivered
    }

    /// Runs due timers and carries acks and probes both ways, so windows
    /// open and paths stay up between batches.
    pub fn exchange_control(&mut self) {
        for _ in 0..2 {
            if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
                self.client.handle_timeout(self.now);
            }
            if self.gateway.poll_timeout().is_some_and(|t| t <= self.now) {
                self.gateway.handle_timeout(self.now);
            }
            self.drain_gateway();
            self.client_receive();
            while self.queued < PAIR_SLOTS {
                let Some(t) = self
                    .client
                    .poll_transmit(self.now, &mut self.slots[self.queued])
                else {
                    break;
                };
                self.lens[self.queued] = t.len;
                self.queued += 1;
            }
            self.gateway_receive();
        }
    }
}
