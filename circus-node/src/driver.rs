//! The event loops: tokio around the sans-IO engine.
//!
//! One task owns the engine and all its IO, in the shape quinn's driver has:
//! wait for whichever comes first (a TUN packet, a datagram, the engine's
//! timer, an interface change, the end of a lookup of the gateway's host
//! name, which runs on the blocking pool, a status request), feed it to the engine
//! with the current time, then drain everything the engine wants sent or
//! delivered, and re-arm the single timer only if its deadline moved.
//!
//! Hot path: buffers allocated once ([`Buffers`]); datagrams and TUN
//! packets are read into them, the engine writes into them, and nothing is
//! allocated per packet. When a source is readable, up to [`BATCH`] packets
//! are taken from it without going back through the select, which saves
//! the wake-up cost under load (datagrams [`RECV_BATCH`] per `recvmmsg`); the engine's output is drained once after
//! the batch and sent [`SEND_BATCH`] datagrams per `sendmmsg`, so the peer
//! (in the lab, the emulator's real-time threads) is woken once per batch,
//! not once per packet; what it delivers goes to the TUN device one
//! super-packet per run of a flow's packets ([`vnet`]). The client reads
//! its TUN device only while the engine's send queue has room
//! ([`may_read_tun`]): overload is left to the kernel to drop.
//!
//! A receive call's datagrams are one instant for the engine, read when the
//! call returned ([`RecvBatch::received_at`]): they had all arrived by then,
//! so a loop delayed by a busy CPU does not make the engine think the later
//! ones came late (the reorder buffer would give up on holes they fill),
//! and none gets a time from before it arrived (its RTT sample would be too
//! short). The TUN packets of a batch share the time of the first read.

use crate::config::MAX_LINKS;
use crate::hotplug::{self, InterfaceWatcher};
use crate::link_set::{LinkChange, LinkSet};
use crate::link_socket::{self, RECV_BATCH, RecvBatch, SEND_BATCH, recv_many, send_many};
use crate::report;
use crate::resolve::{Resolver, ResolverEvent};
use crate::status::ReportRequest;
use crate::tun_device;
use crate::tun_mtu::TunMtu;
use crate::vnet::{self, TunWriter};
use circus_core::LinkId;
use circus_core::engine::{Client, Gateway, QueueDepth};
use circus_core::mss::MssClamp;
use circus_core::paths::PathState;
use socket2::SockAddr;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Instant;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Sleep;

/// Packets taken from one ready source before looking at the others again:
/// enough to amortise the wake-up, few enough that a flood on one link
/// cannot delay the engine's timers or the other links noticeably.
///
/// 128: under a flood a batch takes about half a millisecond here, below
/// the engine's 1 ms timer granularity. Against 64 it gave about 7% more
/// UDP goodput through the tunnel (`bench --throughput`: fewer select
/// rounds and flushes, so fuller `sendmmsg` batches and fewer wake-ups of
/// the peer); 256 gave 3% more again but holds timers for a millisecond.
pub const BATCH: usize = 128;

/// Large enough for any UDP datagram and any TUN packet.
const BUFFER_LEN: usize = 65_536;

/// The loop's reusable packet buffers (boringtun's per-thread buffers).
pub(crate) struct Buffers {
    tun_in: Box<[u8]>,
    /// Datagrams taken from a socket in one `recvmmsg`.
    received: RecvBatch,
    out: Box<[u8]>,
    /// Datagrams the engine wrote, gathered to be sent in one `sendmmsg`.
    outgoing: OutBatch,
    /// What the engine delivered, gathered into super-packets.
    tun_out: TunWriter,
    /// TUN writes the kernel refused so far.
    tun_writes_refused: u64,
}

impl Buffers {
    /// `udp_super_packets`: whether the TUN device takes UDP ones
    /// ([`tun_device::takes_udp_super_packets`]).
    pub(crate) fn new(udp_super_packets: bool) -> Self {
        let buf = || vec![0u8; BUFFER_LEN].into_boxed_slice();
        Buffers {
            tun_in: buf(),
            received: RecvBatch::default(),
            out: buf(),
            outgoing: OutBatch::new(),
            tun_out: TunWriter::new(udp_super_packets),
            tun_writes_refused: 0,
        }
    }
}

/// Up to [`SEND_BATCH`] datagrams, each in its own [`BUFFER_LEN`] slot
/// (virtual memory: only the bytes written are touched), with where each
/// goes.
pub(crate) struct OutBatch {
    slots: Box<[u8]>,
    lens: [usize; SEND_BATCH],
    count: usize,
}

impl OutBatch {
    fn new() -> Self {
        OutBatch {
            slots: vec![0u8; BUFFER_LEN * SEND_BATCH].into_boxed_slice(),
            lens: [0; SEND_BATCH],
            count: 0,
        }
    }

    /// The next free slot, if any.
    fn next_slot(&mut self) -> Option<&mut [u8]> {
        let start = self.count.checked_mul(BUFFER_LEN)?;
        self.slots.get_mut(start..start + BUFFER_LEN)
    }

    fn push(&mut self, len: usize) {
        self.lens[self.count] = len;
        self.count += 1;
    }

    fn datagram(&self, k: usize) -> &[u8] {
        &self.slots[k * BUFFER_LEN..k * BUFFER_LEN + self.lens[k]]
    }
}

/// The engine's one timer, re-armed only when its deadline changes
/// (quinn's `drive_timer`): resetting a tokio timer costs a trip through
/// the timer wheel, and most events leave the deadline where it was.
pub(crate) struct EngineTimer {
    sleep: Pin<Box<Sleep>>,
    deadline: Option<Instant>,
}

impl EngineTimer {
    pub(crate) fn new() -> Self {
        EngineTimer {
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            deadline: None,
        }
    }

    pub(crate) fn set(&mut self, deadline: Option<Instant>) {
        if deadline != self.deadline {
            self.deadline = deadline;
            if let Some(at) = deadline {
                self.sleep.as_mut().reset(at.into());
            }
        }
    }

    /// Resolves at the deadline; never, while there is none. Cancel-safe.
    pub(crate) async fn expired(&mut self) {
        if self.deadline.is_none() {
            return std::future::pending().await;
        }
        self.sleep.as_mut().await;
        // Fired: the same deadline set again must re-arm.
        self.deadline = None;
    }
}

/// Writes all the engine delivers (`poll_deliver`) to the TUN device, a
/// flow's consecutive packets as one super-packet.
///
/// Writes do not wait: the kernel takes a TUN write at once (a full
/// backlog drops inside the kernel, as a full queue does). It refuses one
/// only for a frame it cannot take (a header it does not know, a detached
/// device), which is worth a warning the first time.
fn write_delivered(
    tun: &tun::AsyncDevice,
    buffers: &mut Buffers,
    mut poll_deliver: impl FnMut(&mut [u8]) -> Option<usize>,
) {
    let device: &tun::Device = tun;
    let refused = &mut buffers.tun_writes_refused;
    let write = &mut |frame: &[u8]| {
        if let Err(e) = device.send(frame) {
            *refused += 1;
            if *refused == 1 {
                tracing::warn!(error = %e, len = frame.len(), "TUN write refused (later ones are logged at trace level)");
            } else {
                tracing::trace!(error = %e, len = frame.len(), "TUN write refused");
            }
        }
    };
    while let Some(n) = poll_deliver(&mut buffers.out) {
        buffers.tun_out.push(&buffers.out[..n], write);
    }
    buffers.tun_out.flush(write);
}

/// Backpressure on the TUN device: whether the client reads it, given how
/// full the engine's send queue is. A batch stops reading when the queue
/// is full, and reading resumes once it is down to half: offered more than
/// the links or the CPU carry, the excess stays in the kernel, which drops
/// it at the device's queue, instead of being read, copied and then
/// dropped from the engine's queue (a read and a copy for nothing, about
/// half the client's work at 3x overload). Half, not "one free slot", so
/// that reads come in whole batches between sends rather than one packet
/// per turn of the loop; half of the queue still holds several
/// milliseconds of sending at full speed, so the links never wait.
///
/// While no link can send (every link down or probing), the queue does not
/// drain and the TUN device is read on regardless: the fair queue then
/// makes room by dropping bulk flows' packets and keeps light ones (an echo
/// request, a call's audio) until a link returns, where the kernel would
/// drop whatever arrived at its full device queue, light or not.
fn may_read_tun(queue: QueueDepth) -> bool {
    !queue.draining || queue.queued <= queue.limit / 2
}

/// Whether a batch of TUN reads goes on after a packet was queued.
fn reads_on(queue: QueueDepth) -> bool {
    !queue.draining || !queue.is_full()
}

/// A packet already waiting on the TUN device, without blocking.
fn try_read_tun(tun: &tun::AsyncDevice, buf: &mut [u8]) -> Option<usize> {
    let device: &tun::Device = tun;
    device.recv(buf).ok()
}

/// Hands `handle` the packet whose read completed with `first` and up to
/// [`BATCH`]` - 1` more already waiting on the device, all at one instant
/// (see the module doc), while `handle` returns true (the engine has room
/// for more). TCP handshakes get their MSS lowered to `clamp` first; other
/// packets pass that check with a few byte comparisons.
/// `buf` is the buffer `first` was read into.
fn read_tun_batch(
    tun: &tun::AsyncDevice,
    buf: &mut [u8],
    first: io::Result<usize>,
    clamp: MssClamp,
    mut handle: impl FnMut(Instant, &[u8]) -> bool,
) -> Result<(), DriverError> {
    let n = first.map_err(DriverError::Tun)?;
    let now = Instant::now();
    let mut take = |frame: &mut [u8]| match vnet::packet_read(frame) {
        Some(packet) => {
            clamp.apply(packet);
            handle(now, packet)
        }
        None => {
            tracing::debug!(len = frame.len(), "TUN read with an offload header dropped");
            true
        }
    };
    if !take(&mut buf[..n]) {
        return Ok(());
    }
    for _ in 1..BATCH {
        let Some(n) = try_read_tun(tun, buf) else {
            break;
        };
        if !take(&mut buf[..n]) {
            break;
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("reading the TUN device failed: {0}")]
    Tun(#[source] io::Error),
    #[error("cannot read the interface table: {0}")]
    Interfaces(#[source] io::Error),
}

/// The client's loop: until `shutdown` resolves. `mtu` is the one `tun`
/// was created with; it follows the links' interfaces from then on.
pub(crate) async fn run_client(
    mut engine: Client,
    mut tun: tun::AsyncDevice,
    mut mtu: TunMtu,
    mut links: LinkSet,
    mut requests: mpsc::Receiver<ReportRequest>,
    started: Instant,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let mut buffers = Buffers::new(tun_device::takes_udp_super_packets(&tun));
    let mut timer = EngineTimer::new();
    let mut watcher = InterfaceWatcher::new();
    let reconcile = |engine: &mut Client,
                     links: &mut LinkSet,
                     mtu: &mut TunMtu,
                     tun: &mut tun::AsyncDevice|
     -> Result<(), DriverError> {
        let table = hotplug::scan().map_err(DriverError::Interfaces)?;
        let now = Instant::now();
        links.reconcile(&table, |link, change| match change {
            LinkChange::Add => engine.link_add(now, link),
            LinkChange::Up => engine.link_up(now, link),
            LinkChange::Down => engine.link_down(now, link),
            LinkChange::Remove => engine.link_remove(now, link),
        });
        let configs = (0..links.len()).filter_map(|i| links.config(LinkId(i as u8)));
        mtu.follow_links(configs, &table, tun);
        Ok(())
    };
    reconcile(&mut engine, &mut links, &mut mtu, &mut tun)?;
    let mut resolver = Resolver::new(&links.configs());
    let mut log = ClientLog::default();
    tokio::pin!(shutdown);
    loop {
        let now = Instant::now();
        flush_client(&mut engine, &mut links, &tun, &mut buffers, now);
        timer.set(engine.poll_timeout());
        log.observe(&engine, &links);
        tokio::select! {
            () = &mut shutdown => {
                // Tell the gateway, so it frees the session now rather than
                // when it times out.
                engine.close();
                flush_client(&mut engine, &mut links, &tun, &mut buffers, Instant::now());
                break;
            }
            () = timer.expired() => engine.handle_timeout(Instant::now()),
            read = tun.recv(&mut buffers.tun_in), if may_read_tun(engine.send_queue()) => {
                read_tun_batch(&tun, &mut buffers.tun_in, read, mtu.clamp(), |now, packet| {
                    engine.handle_tun_packet(now, packet);
                    reads_on(engine.send_queue())
                })?;
            }
            link = std::future::poll_fn(|cx| links.poll_recv_batch(cx, &mut buffers.received)) => {
                let batch = &mut buffers.received;
                let mut link = Some(link);
                let mut taken = 0;
                while let Some(from) = link {
                    let now = batch.received_at();
                    for k in 0..batch.len() {
                        engine.handle_datagram(now, from, batch.datagram(k));
                    }
                    taken += batch.len();
                    if taken >= BATCH {
                        break;
                    }
                    link = links.try_recv_batch(batch);
                }
            }
            () = watcher.changed() => reconcile(&mut engine, &mut links, &mut mtu, &mut tun)?,
            event = resolver.next() => match event {
                ResolverEvent::Check => {
                    resolver.check(Instant::now(), gateway_lost(&engine, &links), links.wrong_family());
                }
                ResolverEvent::Done(lookups) => {
                    let now = Instant::now();
                    let mut changed = false;
                    for (i, lookup) in lookups.into_iter().enumerate() {
                        let link = LinkId(i as u8);
                        match lookup {
                            Some(Ok(addrs)) => {
                                changed |= links.regateway(link, &addrs, |link, _| engine.link_remove(now, link));
                            }
                            Some(Err(e)) => tracing::warn!(host = resolver.name(i).unwrap_or("?"), error = %e,
                                "cannot resolve the gateway's host name; trying again later"),
                            None => {}
                        }
                    }
                    resolver.finished(now, changed);
                    if changed {
                        reconcile(&mut engine, &mut links, &mut mtu, &mut tun)?;
                    }
                }
            },
            Some(reply) = requests.recv() => {
                let _ = reply.send(report::client(&engine, &links, started));
            }
        }
    }
    Ok(())
}

/// Whether no link has the gateway: none is up, or merely suspect (a link
/// still probing has not found it yet, one that is down has lost it).
fn gateway_lost(engine: &Client, links: &LinkSet) -> bool {
    !(0..links.len()).any(|i| {
        matches!(
            engine.link_state(LinkId(i as u8)),
            Some(PathState::Up | PathState::Suspect)
        )
    })
}

/// Sends what the engine wants sent, [`SEND_BATCH`] datagrams per system
/// call and link, then writes what it delivers to the TUN device.
fn flush_client(
    engine: &mut Client,
    links: &mut LinkSet,
    tun: &tun::AsyncDevice,
    buffers: &mut Buffers,
    now: Instant,
) {
    let batch = &mut buffers.outgoing;
    let mut to = [LinkId(0); SEND_BATCH];
    loop {
        batch.count = 0;
        while let Some(slot) = batch.next_slot() {
            let Some(t) = engine.poll_transmit(now, slot) else {
                break;
            };
            to[batch.count] = t.link;
            batch.push(t.len);
        }
        if batch.count == 0 {
            break;
        }
        // One call per link, each link's datagrams in the engine's order.
        let mut done = [false; SEND_BATCH];
        for first in 0..batch.count {
            if done[first] {
                continue;
            }
            let link = to[first];
            let mut datagrams: [&[u8]; SEND_BATCH] = [&[]; SEND_BATCH];
            let mut n = 0;
            for k in first..batch.count {
                if to[k] == link {
                    done[k] = true;
                    datagrams[n] = batch.datagram(k);
                    n += 1;
                }
            }
            links.send_batch(link, &datagrams[..n]);
        }
        if batch.count < SEND_BATCH {
            break;
        }
    }
    write_delivered(tun, buffers, |out| engine.poll_deliver(out));
}

/// Logs the client's state changes. The engine emits no events, so the loop
/// compares its state after each step: a flag and one state per link.
#[derive(Default)]
struct ClientLog {
    connected: bool,
    paths: [Option<PathState>; MAX_LINKS],
}

impl ClientLog {
    fn observe(&mut self, engine: &Client, links: &LinkSet) {
        if engine.is_connected() != self.connected {
            self.connected = !self.connected;
            if self.connected {
                tracing::info!("session with the gateway established");
            } else {
                tracing::warn!("session with the gateway lost; reconnecting");
            }
        }
        for (i, seen) in self.paths.iter_mut().enumerate().take(links.len()) {
            let link = LinkId(i as u8);
            let state = engine.link_state(link);
            if state != *seen {
                *seen = state;
                let name = links.config(link).map_or("?", |c| c.name.as_str());
                tracing::info!(link = name, state = ?state, "link state");
            }
        }
    }
}

/// Logs clients connecting and going away; checks each peer only when the
/// session count moved.
struct GatewayLog {
    sessions: usize,
    connected: Vec<bool>,
}

impl GatewayLog {
    fn new(peers: usize) -> Self {
        GatewayLog {
            sessions: 0,
            connected: vec![false; peers],
        }
    }

    fn observe(&mut self, engine: &Gateway, names: &report::PeerNames) {
        if engine.session_count() == self.sessions {
            return;
        }
        self.sessions = engine.session_count();
        for ((key, name), connected) in names.iter().zip(&mut self.connected) {
            if engine.has_session(key) != *connected {
                *connected = !*connected;
                if *connected {
                    tracing::info!(client = %name, "client connected");
                } else {
                    tracing::info!(client = %name, "client session ended");
                }
            }
        }
    }
}

/// The gateway's loop: until `shutdown` resolves. TCP handshakes read from
/// `tun` are clamped to `clamp`, made from its MTU.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_gateway(
    mut engine: Gateway,
    tun: tun::AsyncDevice,
    clamp: MssClamp,
    socket: UdpSocket,
    mut requests: mpsc::Receiver<ReportRequest>,
    names: report::PeerNames,
    started: Instant,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
    let mut buffers = Buffers::new(tun_device::takes_udp_super_packets(&tun));
    let mut timer = EngineTimer::new();
    let mut log = GatewayLog::new(names.len());
    // A `[::]` listener also serves IPv4 clients (see `link_socket`).
    let socket_v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
    tokio::pin!(shutdown);
    loop {
        flush_gateway(
            &mut engine,
            &socket,
            socket_v6,
            &tun,
            &mut buffers,
            Instant::now(),
        );
        timer.set(engine.poll_timeout());
        log.observe(&engine, &names);
        tokio::select! {
            () = &mut shutdown => break,
            () = timer.expired() => engine.handle_timeout(Instant::now()),
            read = tun.recv(&mut buffers.tun_in) => {
                read_tun_batch(&tun, &mut buffers.tun_in, read, clamp, |now, packet| {
                    engine.handle_tun_packet(now, packet);
                    true
                })?;
            }
            ready = socket.readable() => {
                if let Err(e) = ready {
                    tracing::trace!(error = %e, "socket readiness");
                }
                let batch = &mut buffers.received;
                let mut taken = 0;
                // Errors here are ICMP reports about earlier sends: the
                // engine's loss detection handles their cause. `WouldBlock`
                // clears the readiness, so the select waits again.
                while taken < BATCH {
                    let Ok(n) = socket.try_io(Interest::READABLE, || recv_many(&socket, batch)) else {
                        break;
                    };
                    let now = batch.received_at();
                    for k in 0..n {
                        if let Some(from) = batch.source(k) {
                            engine.handle_datagram(now, link_socket::canonical(from), batch.datagram(k));
                        }
                    }
                    taken += n;
                    if n < RECV_BATCH {
                        break;
                    }
                }
            }
            Some(reply) = requests.recv() => {
                let _ = reply.send(report::gateway(&engine, &names, started));
            }
        }
    }
    Ok(())
}

/// Sends what the engine wants sent, [`SEND_BATCH`] datagrams per system
/// call, then writes what it delivers to the TUN device.
fn flush_gateway(
    engine: &mut Gateway,
    socket: &UdpSocket,
    socket_v6: bool,
    tun: &tun::AsyncDevice,
    buffers: &mut Buffers,
    now: Instant,
) {
    let batch = &mut buffers.outgoing;
    let mut to: [Option<SockAddr>; SEND_BATCH] = std::array::from_fn(|_| None);
    let unspecified = SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0)));
    loop {
        batch.count = 0;
        while let Some(slot) = batch.next_slot() {
            let Some(t) = engine.poll_transmit(now, slot) else {
                break;
            };
            to[batch.count] = Some(link_socket::destination(t.to, socket_v6).into());
            batch.push(t.len);
        }
        if batch.count == 0 {
            break;
        }
        let datagrams: [(&[u8], &SockAddr); SEND_BATCH] = std::array::from_fn(|k| {
            if k < batch.count {
                (batch.datagram(k), to[k].as_ref().unwrap_or(&unspecified))
            } else {
                (&[][..], &unspecified)
            }
        });
        // Non-blocking; a full buffer drops, as on the client's links.
        let sent = send_many(socket, &datagrams[..batch.count]);
        if sent < batch.count {
            tracing::trace!(dropped = batch.count - sent, "sends dropped");
        }
        if batch.count < SEND_BATCH {
            break;
        }
    }
    write_delivered(tun, buffers, |out| engine.poll_deliver(out));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tun_is_read_until_the_queue_is_full_and_again_from_half() {
        let depth = |queued| QueueDepth {
            queued,
            limit: 512,
            draining: true,
        };
        assert!(may_read_tun(depth(0)));
        assert!(may_read_tun(depth(256)));
        assert!(!may_read_tun(depth(257)));
        assert!(!may_read_tun(depth(512)));
        assert!(reads_on(depth(511)));
        assert!(!reads_on(depth(512)));
        // A queue of one packet is read whenever it is empty.
        let one = |queued| QueueDepth {
            queued,
            limit: 1,
            draining: true,
        };
        assert!(may_read_tun(one(0)));
        assert!(!may_read_tun(one(1)));
    }

    #[test]
    fn the_tun_is_read_on_while_no_link_drains_the_queue() {
        let full = QueueDepth {
            queued: 512,
            limit: 512,
            draining: false,
        };
        assert!(may_read_tun(full));
        assert!(reads_on(full));
    }
}
