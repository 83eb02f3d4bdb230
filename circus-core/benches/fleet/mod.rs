//! A gateway with many configured clients, some of them connected: the
//! set-up shared by the scale benchmark and the memory measurement.
//!
//! Configured-but-idle clients are only keys and addresses in the
//! gateway's table. Active clients are real [`Client`] engines joined to the
//! gateway directly, one zero-delay link each, with virtual time; datagrams
//! go through preallocated slots, so the harness allocates nothing per
//! packet either.

#![allow(dead_code)] // Each bench binary uses a different part.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use circus_core::LinkId;
use circus_core::crypto::{Psk, PublicKey, StaticSecret};
use circus_core::engine::{Client, Config, Gateway, IpPrefix, PeerConfig};

/// Unix time handed to clients for handshake timestamps.
const UNIX_START_NS: u64 = 1_750_000_000_000_000_000;
const LINK: LinkId = LinkId(0);
/// Over how long the clients of one [`Fleet::connect`] start: about the
/// probe interval of an idle path, so their timers are spread over it.
const STAGGER: Duration = Duration::from_millis(250);
/// Datagram slots: more than one batch of sends produces.
const SLOTS: usize = 4096;
/// Address of the host behind the gateway the clients talk to.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

/// Engine settings for a fleet: defaults, but an in-flight window that fits
/// a whole batch on the zero-delay link.
pub fn config() -> Config {
    Config {
        path: circus_core::paths::PathConfig {
            min_window: 1 << 20,
            ..Default::default()
        },
        ..Config::default()
    }
}

/// Tunnel address of client `i`: 100.64.0.2 onwards.
pub fn tunnel_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 2)) + i as u32)
}

/// Outer address of client `i`'s one link.
fn client_addr(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + 2 + i as u32);
    SocketAddr::new(IpAddr::V4(ip), 40000)
}

fn secret(i: usize) -> StaticSecret {
    let mut bytes = [0x11; 32];
    // Not in byte 0: clamping clears its low bits.
    bytes[1..9].copy_from_slice(&(i as u64).to_le_bytes());
    StaticSecret::from_bytes(bytes)
}

fn psk(i: usize) -> Psk {
    let mut bytes = [0x5a; 32];
    bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Psk::from_bytes(bytes)
}

/// An IPv4/UDP-shaped packet of `size` bytes (the engines look at the IP
/// header only).
pub fn packet(src: Ipv4Addr, dst: Ipv4Addr, size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p
}

/// One datagram in flight: to the gateway from a client, or the reverse.
struct Slot {
    buf: Vec<u8>,
    len: usize,
    /// The client it comes from or goes to.
    client: usize,
}

/// A gateway with `configured` clients, the first `active` of them
/// connected.
pub struct Fleet {
    pub gateway: Gateway,
    gw_public: PublicKey,
    config: Config,
    /// The connected clients: `clients[j]` is configured client `first + j`.
    pub clients: Vec<Client>,
    first: usize,
    pub now: Instant,
    by_addr: HashMap<SocketAddr, usize>,
    to_gateway: Vec<Slot>,
    to_gateway_len: usize,
    to_clients: Vec<Slot>,
    to_clients_len: usize,
    deliver: Vec<u8>,
}

impl Fleet {
    /// Builds the gateway and connects the active clients (handshake and
    /// key confirmation) on virtual time.
    pub fn new(config: Config, configured: usize, active: usize) -> Self {
        let gw_secret = StaticSecret::from_bytes([0xc8; 32]);
        let gw_public = gw_secret.public_key();
        let peers = (0..configured)
            .map(|i| PeerConfig {
                public: secret(i).public_key(),
                psk: psk(i),
                tunnel_addrs: vec![IpPrefix::host(IpAddr::V4(tunnel_addr(i)))],
            })
            .collect();
        let gateway = Gateway::new(config.clone(), gw_secret, peers).expect("valid peers");
        let slots = || {
            (0..SLOTS)
                .map(|_| Slot {
                    buf: vec![0; 2048],
                    len: 0,
                    client: 0,
                })
                .collect()
        };
        let mut fleet = Self {
            gateway,
            gw_public,
            config,
            clients: Vec::new(),
            first: 0,
            now: Instant::now(),
            by_addr: HashMap::new(),
            to_gateway: slots(),
            to_gateway_len: 0,
            to_clients: slots(),
            to_clients_len: 0,
            deliver: vec![0; 2048],
        };
        fleet.connect(0, active);
        fleet
    }

    /// Replaces the connected clients by `count` new ones, configured
    /// clients `first..first + count`, and connects them. They start
    /// [`STAGGER`] apart in turn, so their timers are spread as real
    /// clients' are, not all due at once. The gateway keeps the sessions of
    /// the clients replaced until they time out.
    pub fn connect(&mut self, first: usize, count: usize) {
        self.first = first;
        self.clients.clear();
        self.by_addr = (0..count).map(|j| (client_addr(first + j), j)).collect();
        let step = STAGGER / count.max(1) as u32;
        for i in first..first + count {
            let mut c = Client::new(
                self.config.clone(),
                secret(i),
                self.gw_public,
                psk(i),
                vec![IpPrefix::host(IpAddr::V4(tunnel_addr(i)))],
                self.now,
                UNIX_START_NS,
            );
            c.link_add(self.now, LINK);
            self.clients.push(c);
            self.advance(step);
            self.run_timers();
            self.exchange();
        }
        let keys: Vec<PublicKey> = (first..first + count)
            .map(|i| secret(i).public_key())
            .collect();
        for _ in 0..2000 {
            self.advance(Duration::from_millis(1));
            self.run_timers();
            self.exchange();
            if self.clients.iter().all(Client::is_connected)
                && keys.iter().all(|k| self.gateway.has_session(k))
            {
                // A second of probes and acks, so every path is up.
                self.run_for(Duration::from_secs(1));
                return;
            }
        }
        panic!(
            "clients {first}..{} did not connect: {} of them did, the gateway has {} sessions",
            first + count,
            self.clients.iter().filter(|c| c.is_connected()).count(),
            self.gateway.session_count()
        );
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Client `i` queues `packet` from its TUN and writes out its datagrams.
    pub fn client_send(&mut self, i: usize, packet: &[u8]) {
        self.clients[i].handle_tun_packet(self.now, packet);
        self.drain_client(i);
    }

    fn drain_client(&mut self, i: usize) {
        while let Some(slot) = self.to_gateway.get_mut(self.to_gateway_len) {
            let Some(t) = self.clients[i].poll_transmit(self.now, &mut slot.buf) else {
                break;
            };
            slot.len = t.len;
            slot.client = i;
            self.to_gateway_len += 1;
        }
    }

    /// Gateway: takes every queued client datagram and delivers what it
    /// can. Returns packets delivered.
    pub fn gateway_receive(&mut self) -> usize {
        for slot in &self.to_gateway[..self.to_gateway_len] {
            let from = client_addr(self.first + slot.client);
            self.gateway
                .handle_datagram(self.now, from, &slot.buf[..slot.len]);
        }
        self.to_gateway_len = 0;
        let mut delivered = 0;
        while self.gateway.poll_deliver(&mut self.deliver).is_some() {
            delivered += 1;
        }
        delivered
    }

    /// Gateway: queues `packet` from its TUN and writes out its datagrams.
    pub fn gateway_send(&mut self, packet: &[u8]) {
        self.gateway.handle_tun_packet(self.now, packet);
        self.drain_gateway();
    }

    fn drain_gateway(&mut self) {
        while let Some(slot) = self.to_clients.get_mut(self.to_clients_len) {
            let Some(t) = self.gateway.poll_transmit(self.now, &mut slot.buf) else {
                break;
            };
            slot.len = t.len;
            // A datagram to an address no client has is dropped.
            let Some(&client) = self.by_addr.get(&t.to) else {
                continue;
            };
            slot.client = client;
            self.to_clients_len += 1;
        }
    }

    /// Clients take every queued gateway datagram. Returns packets the
    /// clients delivered.
    pub fn clients_receive(&mut self) -> usize {
        for slot in &self.to_clients[..self.to_clients_len] {
            self.clients[slot.client].handle_datagram(self.now, LINK, &slot.buf[..slot.len]);
        }
        self.to_clients_len = 0;
        let mut delivered = 0;
        for c in &mut self.clients {
            while c.poll_deliver(&mut self.deliver).is_some() {
                delivered += 1;
            }
        }
        delivered
    }

    /// Runs the clients' due timers (the gateway's are the caller's).
    pub fn run_client_timers(&mut self) {
        for c in &mut self.clients {
            if c.poll_timeout().is_some_and(|t| t <= self.now) {
                c.handle_timeout(self.now);
            }
        }
    }

    /// Runs every due timer.
    pub fn run_timers(&mut self) {
        self.run_client_timers();
        if self.gateway.poll_timeout().is_some_and(|t| t <= self.now) {
            self.gateway.handle_timeout(self.now);
        }
    }

    /// Runs for `d` of virtual time from timer to timer (not in fixed
    /// steps, which would bunch the clients' timers together).
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            let next = self
                .clients
                .iter_mut()
                .filter_map(Client::poll_timeout)
                .chain(self.gateway.poll_timeout())
                .min()
                .unwrap_or(end);
            self.now = next.clamp(self.now, end);
            self.run_timers();
            self.exchange();
        }
    }

    /// Carries acks, probes and handshakes both ways until quiet.
    pub fn exchange(&mut self) {
        for _ in 0..2 {
            self.drain_gateway();
            self.clients_receive();
            for i in 0..self.clients.len() {
                self.drain_client(i);
            }
            self.gateway_receive();
        }
    }
}
