//! The client's links: one socket per configured link, kept in step with
//! the interfaces the kernel reports.
//!
//! [`LinkSet::reconcile`] compares the configured links with an interface
//! table from [`crate::hotplug::scan`] and says what the engine must hear:
//! a link is added when its interface first can reach the gateway, goes
//! down when it loses carrier or its address, comes up again when it
//! recovers, and is removed when its interface disappears (a re-created
//! interface is a new path). A socket is rebound whenever the interface
//! index or addresses change, since a socket bound to a deleted interface
//! never works again.

use crate::config::LinkConfig;
use crate::hotplug::InterfaceState;
use crate::link_socket::{self, RecvBatch};
use crate::resolve;
use circus_core::LinkId;
use socket2::{SockAddr, SockRef};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// What the engine must be told about one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    Add,
    Up,
    Down,
    Remove,
}

/// How the local side of a link looks now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalState {
    /// No interface of that name.
    Absent,
    /// The interface exists but cannot carry packets (no carrier, down, or
    /// no address of the gateway's family).
    Down,
    Up,
}

impl LocalState {
    pub fn name(self) -> &'static str {
        match self {
            LocalState::Absent => "absent",
            LocalState::Down => "down",
            LocalState::Up => "up",
        }
    }
}

struct Slot {
    config: LinkConfig,
    /// `config.gateway` in the form the send call takes.
    gateway: SockAddr,
    socket: Option<UdpSocket>,
    /// The interface as of the last reconcile.
    seen: Option<InterfaceState>,
    /// Whether the engine currently knows this link (added, not removed).
    registered: bool,
    /// Whether the engine was last told the link is up.
    engine_up: bool,
    /// Datagrams dropped because the socket was missing or full.
    send_failures: u64,
}

pub struct LinkSet {
    slots: Vec<Slot>,
    /// Where the next receive poll starts, so a busy link cannot starve the
    /// others.
    next_poll: usize,
    /// Firewall mark of every link socket ([`crate::routing`]).
    mark: Option<u32>,
}

impl LinkSet {
    /// Links in config order; link `i` is `LinkId(i)`. No sockets yet: the
    /// first [`LinkSet::reconcile`] opens them, each with `mark` if given.
    pub fn new(links: &[LinkConfig], mark: Option<u32>) -> Self {
        LinkSet {
            slots: links
                .iter()
                .map(|config| Slot {
                    config: config.clone(),
                    gateway: config.gateway.into(),
                    socket: None,
                    seen: None,
                    registered: false,
                    engine_up: false,
                    send_failures: 0,
                })
                .collect(),
            next_poll: 0,
            mark,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every link's config, in link order (gateway addresses as they are
    /// now, after any new lookup of a host name).
    pub fn configs(&self) -> Vec<LinkConfig> {
        self.slots.iter().map(|s| s.config.clone()).collect()
    }

    pub fn config(&self, link: LinkId) -> Option<&LinkConfig> {
        self.slots.get(usize::from(link.0)).map(|s| &s.config)
    }

    pub fn local_state(&self, link: LinkId) -> LocalState {
        match self.slots.get(usize::from(link.0)) {
            Some(Slot { seen: None, .. }) | None => LocalState::Absent,
            Some(Slot { socket: None, .. }) => LocalState::Down,
            Some(_) => LocalState::Up,
        }
    }

    /// Whether some link whose gateway has a host name could send, but not
    /// to the address family it has (a link with only IPv6 given an IPv4
    /// address): a fresh lookup may offer the other family.
    pub fn wrong_family(&self) -> bool {
        self.slots.iter().any(|s| {
            s.config.gateway_host.is_some()
                && s.seen.as_ref().is_some_and(|i| {
                    i.running && !i.addresses.is_empty() && !i.can_reach(s.config.gateway)
                })
        })
    }

    /// Points `link` at one of `addrs`, the gateway's name looked up again
    /// ([`resolve::prefer`]); returns whether its address changed. A new
    /// address is a new path to the engine: the link is removed here, and
    /// the next [`reconcile`](Self::reconcile) opens a socket of the new
    /// family and adds it again.
    pub fn regateway(
        &mut self,
        link: LinkId,
        addrs: &[SocketAddr],
        mut tell_engine: impl FnMut(LinkId, LinkChange),
    ) -> bool {
        let Some(slot) = self.slots.get_mut(usize::from(link.0)) else {
            return false;
        };
        let seen = slot.seen.as_ref();
        let usable = |a: SocketAddr| seen.is_some_and(|i| i.can_reach(a));
        let Some(addr) = resolve::prefer(addrs, slot.config.gateway, usable) else {
            return false;
        };
        if addr == slot.config.gateway {
            return false;
        }
        tracing::info!(link = %slot.config.name, from = %slot.config.gateway, to = %addr,
            "the gateway's host name gives a new address");
        slot.config.gateway = addr;
        slot.gateway = addr.into();
        slot.socket = None;
        // Forces the next reconcile to look at the link afresh.
        slot.seen = None;
        if slot.registered {
            slot.registered = false;
            slot.engine_up = false;
            tell_engine(link, LinkChange::Remove);
        }
        true
    }

    /// Brings sockets in line with `interfaces` and reports, in order, what
    /// the engine must be told.
    pub fn reconcile(
        &mut self,
        interfaces: &BTreeMap<String, InterfaceState>,
        mut tell_engine: impl FnMut(LinkId, LinkChange),
    ) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let link = LinkId(i as u8);
            let now = interfaces.get(&slot.config.interface);
            let replaced =
                matches!((&slot.seen, now), (Some(old), Some(new)) if old.index != new.index);
            let changed = slot.seen.as_ref() != now;
            if slot.registered && (now.is_none() || replaced) {
                tracing::info!(link = %slot.config.name, interface = %slot.config.interface,
                    "interface {}", if replaced { "re-created" } else { "gone" });
                slot.socket = None;
                slot.registered = false;
                slot.engine_up = false;
                tell_engine(link, LinkChange::Remove);
            }
            let can_reach = now.is_some_and(|s| s.can_reach(slot.config.gateway));
            if changed || !can_reach {
                // New index or addresses: the old socket may be bound to a
                // dead interface or hold a stale route.
                slot.socket = None;
            }
            if can_reach && slot.socket.is_none() {
                match link_socket::bind_to_interface(
                    &slot.config.interface,
                    slot.config.gateway,
                    self.mark,
                ) {
                    Ok(socket) => slot.socket = Some(socket),
                    Err(e) => {
                        tracing::warn!(link = %slot.config.name, interface = %slot.config.interface,
                        error = %e, "cannot bind the link's socket; retrying at the next interface change")
                    }
                }
            }
            slot.seen = now.cloned();
            let usable = slot.socket.is_some();
            if usable && !slot.registered {
                tracing::info!(link = %slot.config.name, interface = %slot.config.interface, "link added");
                slot.registered = true;
                slot.engine_up = true;
                tell_engine(link, LinkChange::Add);
            } else if slot.registered && usable != slot.engine_up {
                tracing::info!(link = %slot.config.name, interface = %slot.config.interface,
                    "link {}", if usable { "up" } else { "down" });
                slot.engine_up = usable;
                tell_engine(
                    link,
                    if usable {
                        LinkChange::Up
                    } else {
                        LinkChange::Down
                    },
                );
            }
        }
    }

    /// Waits until datagrams are waiting on some link and receives up to
    /// [`link_socket::RECV_BATCH`] of them into `batch` in one call;
    /// returns the link. Links take turns, so a flood on one cannot starve
    /// the others. Cancel-safe.
    pub fn poll_recv_batch(&mut self, cx: &mut Context<'_>, batch: &mut RecvBatch) -> Poll<LinkId> {
        let n = self.slots.len();
        for k in 0..n {
            let i = (self.next_poll + k) % n;
            let Some(socket) = &self.slots[i].socket else {
                continue;
            };
            // Until the socket is found idle (its readiness cleared and a
            // wake-up registered) or datagrams were taken.
            loop {
                match socket.poll_recv_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => {
                        tracing::trace!(link = %self.slots[i].config.name, error = %e, "receive error");
                        break;
                    }
                    Poll::Pending => break,
                }
                match socket.try_io(Interest::READABLE, || link_socket::recv_many(socket, batch)) {
                    Ok(_) => {
                        self.next_poll = (i + 1) % n;
                        return Poll::Ready(LinkId(i as u8));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // ICMP errors (port unreachable while the gateway
                    // restarts) surface here, once each; the path logic
                    // notices the loss itself. Datagrams may follow.
                    Err(e) => {
                        tracing::trace!(link = %self.slots[i].config.name, error = %e, "receive error");
                        cx.waker().wake_by_ref();
                        break;
                    }
                }
            }
        }
        Poll::Pending
    }

    /// Like [`poll_recv_batch`](Self::poll_recv_batch) for datagrams that
    /// are already waiting, without blocking.
    pub fn try_recv_batch(&mut self, batch: &mut RecvBatch) -> Option<LinkId> {
        let n = self.slots.len();
        for k in 0..n {
            let i = (self.next_poll + k) % n;
            let Some(socket) = &self.slots[i].socket else {
                continue;
            };
            if socket
                .try_io(Interest::READABLE, || link_socket::recv_many(socket, batch))
                .is_ok()
            {
                self.next_poll = (i + 1) % n;
                return Some(LinkId(i as u8));
            }
        }
        None
    }

    /// Sends one datagram to the gateway on `link`. A missing socket or a
    /// full send buffer drops it, as a congested link would: waiting would
    /// stall every other link behind this one.
    pub fn send(&mut self, link: LinkId, datagram: &[u8]) -> bool {
        let Some(slot) = self.slots.get_mut(usize::from(link.0)) else {
            return false;
        };
        // A direct non-blocking send: tokio's `try_send_to` refuses until
        // its reactor has seen the socket writable, which drops the first
        // packets on every new socket.
        let sent = slot
            .socket
            .as_ref()
            .map(|s| SockRef::from(s).send_to(datagram, &slot.gateway));
        match sent {
            Some(Ok(_)) => true,
            Some(Err(e)) if e.kind() != io::ErrorKind::WouldBlock => {
                tracing::trace!(link = %slot.config.name, error = %e, "send failed");
                slot.send_failures += 1;
                false
            }
            _ => {
                slot.send_failures += 1;
                false
            }
        }
    }

    /// Sends datagrams to the gateway on `link` in one system call (see
    /// [`link_socket::send_many`]); refused ones are dropped and counted as
    /// [`send`](LinkSet::send) does.
    pub fn send_batch(&mut self, link: LinkId, datagrams: &[&[u8]]) -> usize {
        let Some(slot) = self.slots.get_mut(usize::from(link.0)) else {
            return 0;
        };
        let Some(socket) = &slot.socket else {
            slot.send_failures += datagrams.len() as u64;
            return 0;
        };
        let mut batch = [(&[][..], &slot.gateway); link_socket::SEND_BATCH];
        let mut sent = 0;
        for chunk in datagrams.chunks(link_socket::SEND_BATCH) {
            for (entry, datagram) in batch.iter_mut().zip(chunk) {
                entry.0 = datagram;
            }
            sent += link_socket::send_many(socket, &batch[..chunk.len()]);
        }
        slot.send_failures += (datagrams.len() - sent) as u64;
        sent
    }

    /// Datagrams dropped at this end (no socket, full buffer, send error).
    pub fn send_failures(&self, link: LinkId) -> u64 {
        self.slots
            .get(usize::from(link.0))
            .map_or(0, |s| s.send_failures)
    }

    /// The local address the link's socket sends from, for tests and logs.
    pub fn local_addr(&self, link: LinkId) -> Option<SocketAddr> {
        self.slots
            .get(usize::from(link.0))?
            .socket
            .as_ref()?
            .local_addr()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn loopback_link(gateway: SocketAddr) -> LinkConfig {
        LinkConfig {
            name: "lo-link".into(),
            interface: "lo".into(),
            gateway,
            gateway_host: None,
            mtu: 1500,
        }
    }

    fn table(index: u32, running: bool, addr: Option<IpAddr>) -> BTreeMap<String, InterfaceState> {
        BTreeMap::from([(
            "lo".to_owned(),
            InterfaceState {
                index,
                running,
                addresses: addr.into_iter().collect(),
            },
        )])
    }

    /// A link whose gateway name gave an IPv4 address while its interface
    /// has only IPv6 asks for a new lookup, takes the IPv6 address from it,
    /// and is a new path to the engine.
    #[tokio::test]
    async fn a_new_lookup_moves_a_link_to_the_family_it_can_use() {
        let gateway = UdpSocket::bind("[::1]:0").await.unwrap();
        let port = gateway.local_addr().unwrap().port();
        let v4 = SocketAddr::from(([127, 0, 0, 1], port));
        let mut set = LinkSet::new(
            &[LinkConfig {
                gateway_host: Some("localhost".into()),
                ..loopback_link(v4)
            }],
            None,
        );
        let only_v6 = table(1, true, Some(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)));
        let mut changes = Vec::new();
        set.reconcile(&only_v6, |link, change| changes.push((link, change)));
        assert_eq!(changes, [], "cannot reach an IPv4 address");
        assert!(set.wrong_family());

        let v6 = gateway.local_addr().unwrap();
        assert!(!set.regateway(LinkId(0), &[v4], |_, _| {}), "same answer");
        assert!(set.regateway(LinkId(0), &[v4, v6], |_, _| {}));
        assert_eq!(set.config(LinkId(0)).unwrap().gateway, v6);
        assert!(!set.wrong_family());
        set.reconcile(&only_v6, |link, change| changes.push((link, change)));
        if set.local_state(LinkId(0)) == LocalState::Down
            && !nix::unistd::Uid::effective().is_root()
        {
            eprintln!("skipped: SO_BINDTODEVICE needs CAP_NET_RAW");
            return;
        }
        assert_eq!(changes, [(LinkId(0), LinkChange::Add)]);
        assert!(set.send(LinkId(0), b"v6"));
        let mut buf = [0u8; 8];
        let (n, _) = gateway.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"v6");

        // Registered now: moving again removes the old path first.
        let other = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port.wrapping_add(1)));
        changes.clear();
        assert!(set.regateway(LinkId(0), &[other], |link, change| {
            changes.push((link, change))
        }));
        assert_eq!(changes, [(LinkId(0), LinkChange::Remove)]);
    }

    #[tokio::test]
    async fn follows_interface_changes_and_carries_datagrams() {
        let gateway = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut set = LinkSet::new(&[loopback_link(gateway.local_addr().unwrap())], None);
        let lo = Some(IpAddr::from([127, 0, 0, 1]));
        let mut changes = Vec::new();
        let mut step = |set: &mut LinkSet, t: &BTreeMap<String, InterfaceState>| {
            changes.clear();
            set.reconcile(t, |link, change| changes.push((link, change)));
            changes.clone()
        };
        let link = LinkId(0);

        assert_eq!(step(&mut set, &BTreeMap::new()), []);
        assert_eq!(set.local_state(link), LocalState::Absent);
        assert_eq!(
            step(&mut set, &table(1, false, lo)),
            [],
            "no carrier: not added yet"
        );
        assert_eq!(set.local_state(link), LocalState::Down);
        let up = step(&mut set, &table(1, true, lo));
        if set.local_state(link) == LocalState::Down && !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: SO_BINDTODEVICE needs CAP_NET_RAW");
            return;
        }
        assert_eq!(up, [(link, LinkChange::Add)]);
        assert_eq!(set.local_state(link), LocalState::Up);

        assert!(set.send(link, b"hello"));
        let mut buf = [0u8; 64];
        let (n, from) = gateway.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(Some(from.port()), set.local_addr(link).map(|a| a.port()));
        gateway.send_to(b"back", from).await.unwrap();
        let mut batch = RecvBatch::default();
        let got = std::future::poll_fn(|cx| set.poll_recv_batch(cx, &mut batch)).await;
        assert_eq!(
            (got, batch.len(), batch.datagram(0)),
            (link, 1, &b"back"[..])
        );

        assert_eq!(
            step(&mut set, &table(1, true, lo)),
            [],
            "no change, no news"
        );
        assert_eq!(
            step(&mut set, &table(1, false, lo)),
            [(link, LinkChange::Down)]
        );
        assert!(!set.send(link, b"x"), "no socket while down");
        assert_eq!(set.send_failures(link), 1);
        assert_eq!(
            step(&mut set, &table(1, true, lo)),
            [(link, LinkChange::Up)]
        );
        assert_eq!(
            step(&mut set, &table(1, true, None)),
            [(link, LinkChange::Down)],
            "address lost"
        );
        assert_eq!(
            step(&mut set, &table(1, true, lo)),
            [(link, LinkChange::Up)]
        );
        assert_eq!(
            step(&mut set, &table(7, true, lo)),
            [(link, LinkChange::Remove), (link, LinkChange::Add)],
            "a re-created interface is a new path"
        );
        assert_eq!(
            step(&mut set, &BTreeMap::new()),
            [(link, LinkChange::Remove)]
        );
        assert_eq!(set.local_state(link), LocalState::Absent);
    }
}
