//! The simulator's TCP model over one bottleneck built from the lab's link
//! model: it fills a link, shares it fairly, survives random loss and a
//! blackhole, reads any bytes without panicking and is deterministic.
//!
//! Everything runs on virtual time, so the figures do not depend on the
//! host's speed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use circus_lab::emulator::model::{
    Direction, LinkCondition, LinkModel, LinkParams, Reorder, Verdict,
};
use circus_lab::scenario::Scenario;
use circus_lab::sim;
use circus_lab::sim::tcp::segment::{self, Segment};
use circus_lab::sim::tcp::{FlowConfig, Receiver, Sender};
use proptest::prelude::*;

/// Ethernet header the link model counts on every frame, as the lab's
/// forwarder does.
const ETHERNET: usize = 14;
const MTU: usize = 1500;

fn link(rate_mbit: u64, one_way_ms: u64, loss: f64) -> LinkParams {
    LinkParams {
        delay: Duration::from_millis(one_way_ms),
        loss,
        rate_bps: Some(rate_mbit * 1_000_000),
        ..LinkParams::default()
    }
}

fn flow(index: u16, stop: Duration) -> FlowConfig {
    FlowConfig::new(
        SocketAddrV4::new(Ipv4Addr::new(100, 64, 0, 2), 50_000 + index),
        SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 2), 9001),
        MTU,
        Duration::ZERO,
        stop,
    )
}

/// What a run produced.
struct Outcome {
    /// Bytes each flow delivered in order by the end of the run.
    delivered: Vec<u64>,
    /// A digest of every packet put on the link and when.
    digest: u64,
}

/// Packets in flight: (arrival, send order, flow, towards the receiver, bytes).
type InFlight = BinaryHeap<Reverse<(Duration, u64, usize, bool, Vec<u8>)>>;

/// `flows` bulk flows over one link (data on its up direction, ACKs on its
/// down direction) for `duration`; `conditions` change both directions'
/// condition at the given times.
fn run(
    flows: u16,
    params: LinkParams,
    seed: u64,
    duration: Duration,
    conditions: &[(Duration, LinkCondition)],
) -> Outcome {
    let mut up = LinkModel::new(params.clone(), Direction::Up, seed);
    let mut down = LinkModel::new(params, Direction::Down, seed + 1);
    let mut ends: Vec<(Sender, Receiver)> = (0..flows).map(|i| flow(i, duration).ends()).collect();
    let mut wire = InFlight::new();
    let mut sent = 0u64;
    let mut hasher = DefaultHasher::new();
    let mut buf = vec![0; 2048];
    let mut conditions = conditions.iter().peekable();
    let mut now = Duration::ZERO;
    loop {
        for (index, (sender, receiver)) in ends.iter_mut().enumerate() {
            while let Some(len) = sender.poll_transmit(now, &mut buf) {
                carry(
                    &mut up,
                    now,
                    &buf[..len],
                    index,
                    true,
                    &mut wire,
                    &mut sent,
                    &mut hasher,
                );
            }
            while let Some(len) = receiver.poll_transmit(now, &mut buf) {
                carry(
                    &mut down,
                    now,
                    &buf[..len],
                    index,
                    false,
                    &mut wire,
                    &mut sent,
                    &mut hasher,
                );
            }
        }
        let timers = ends
            .iter()
            .flat_map(|(sender, receiver)| [sender.poll_timeout(), receiver.poll_timeout()]);
        let next = timers
            .chain([
                wire.peek().map(|Reverse((at, ..))| *at),
                conditions.peek().map(|(at, _)| *at),
            ])
            .flatten()
            .filter(|&at| at > now)
            .min();
        let Some(next) = next.filter(|&next| next <= duration) else {
            break;
        };
        now = next;
        while let Some((_, condition)) = conditions.next_if(|(at, _)| *at <= now) {
            up.set_condition(*condition);
            down.set_condition(*condition);
        }
        while wire.peek().is_some_and(|Reverse((at, ..))| *at <= now) {
            let Some(Reverse((_, _, index, to_receiver, packet))) = wire.pop() else {
                break;
            };
            let (sender, receiver) = &mut ends[index];
            if to_receiver {
                receiver.handle_packet(now, &packet);
            } else {
                sender.handle_packet(now, &packet);
            }
        }
        for (sender, receiver) in &mut ends {
            if sender.poll_timeout().is_some_and(|at| at <= now) {
                sender.handle_timeout(now);
            }
            if receiver.poll_timeout().is_some_and(|at| at <= now) {
                receiver.handle_timeout(now);
            }
        }
    }
    Outcome {
        delivered: ends
            .iter()
            .map(|(_, receiver)| receiver.delivered())
            .collect(),
        digest: hasher.finish(),
    }
}

#[allow(clippy::too_many_arguments)]
fn carry(
    model: &mut LinkModel,
    now: Duration,
    packet: &[u8],
    flow: usize,
    to_receiver: bool,
    wire: &mut InFlight,
    sent: &mut u64,
    hasher: &mut DefaultHasher,
) {
    (now, packet).hash(hasher);
    if let Verdict::Deliver { at, duplicate_at } = model.on_frame(now, packet.len() + ETHERNET) {
        for at in std::iter::once(at).chain(duplicate_at) {
            wire.push(Reverse((at, *sent, flow, to_receiver, packet.to_vec())));
            *sent += 1;
        }
    }
}

fn mbit_per_s(bytes: u64, over: Duration) -> f64 {
    bytes as f64 * 8.0 / over.as_secs_f64() / 1e6
}

#[test]
fn one_flow_fills_a_clean_link() {
    let duration = Duration::from_secs(20);
    let outcome = run(1, link(20, 10, 0.0), 1, duration, &[]);
    let goodput = mbit_per_s(outcome.delivered[0], duration);
    // Headers take 4.4 % of each 1514-byte frame: 19.1 Mbit/s is the most.
    assert!(
        goodput > 18.0 && goodput < 19.2,
        "goodput {goodput:.2} Mbit/s"
    );
}

#[test]
fn two_flows_share_fairly() {
    let duration = Duration::from_secs(30);
    let outcome = run(2, link(20, 10, 0.0), 2, duration, &[]);
    let [a, b] = [outcome.delivered[0], outcome.delivered[1]].map(|d| mbit_per_s(d, duration));
    assert!(a + b > 18.0, "total {:.2} Mbit/s", a + b);
    let ratio = a.min(b) / a.max(b);
    assert!(ratio > 0.7, "shares {a:.2} and {b:.2} Mbit/s");
}

#[test]
fn random_loss_costs_goodput_but_the_flow_keeps_going() {
    let duration = Duration::from_secs(20);
    let clean = run(1, link(20, 10, 0.0), 3, duration, &[]);
    let lossy = run(1, link(20, 10, 0.01), 3, duration, &[]);
    let clean = mbit_per_s(clean.delivered[0], duration);
    let lossy = mbit_per_s(lossy.delivered[0], duration);
    // Mathis et al.: 1.22 MSS / (RTT sqrt(p)) is about 14 Mbit/s for Reno
    // here; CUBIC does somewhat better at this RTT.
    assert!(
        lossy < clean * 0.97,
        "clean {clean:.2}, 1 % loss {lossy:.2}"
    );
    assert!(lossy > 5.0, "1 % loss: {lossy:.2} Mbit/s");
}

#[test]
fn reordering_is_not_taken_for_loss_for_long() {
    let duration = Duration::from_secs(20);
    let mut reordering = link(20, 10, 0.0);
    // One segment in five arrives 8 ms late, overtaken by the next ones:
    // more than RACK's first reordering window (a quarter of the RTT), so
    // the flow has to learn from its needless retransmissions to wait.
    reordering.reorder = Some(Reorder {
        fraction: 0.2,
        extra_delay: Duration::from_millis(8),
    });
    let outcome = run(1, reordering, 7, duration, &[]);
    let goodput = mbit_per_s(outcome.delivered[0], duration);
    assert!(goodput > 17.0, "goodput {goodput:.2} Mbit/s");
}

#[test]
fn a_two_second_blackhole_is_recovered_by_timeout_backoff() {
    let duration = Duration::from_secs(10);
    let blackhole = [
        (Duration::from_secs(3), LinkCondition::Blackhole),
        (Duration::from_secs(5), LinkCondition::Up),
    ];
    let outcome = run(1, link(20, 10, 0.0), 4, duration, &blackhole);
    let goodput = mbit_per_s(outcome.delivered[0], duration);
    // 2 s of nothing plus the wait for the backed-off timer (at most 1.6 s
    // after the link returns) and a new slow start.
    assert!(
        goodput > 9.0 && goodput < 16.0,
        "goodput {goodput:.2} Mbit/s"
    );
    // And the flow is back at full speed afterwards.
    let longer = run(1, link(20, 10, 0.0), 4, Duration::from_secs(20), &blackhole);
    let after = mbit_per_s(
        longer.delivered[0] - outcome.delivered[0],
        Duration::from_secs(10),
    );
    assert!(after > 17.0, "after the blackhole {after:.2} Mbit/s");
}

#[test]
fn the_same_seed_gives_the_same_packets() {
    let duration = Duration::from_secs(5);
    let first = run(2, link(20, 10, 0.02), 5, duration, &[]);
    let second = run(2, link(20, 10, 0.02), 5, duration, &[]);
    assert_eq!(first.digest, second.digest);
    assert_eq!(first.delivered, second.delivered);
    let other = run(2, link(20, 10, 0.02), 6, duration, &[]);
    assert_ne!(other.digest, first.digest);
}

/// Through `circus-lab sim`, TCP over one clean 20 Mbit/s link gets what
/// the link leaves after headers: 1448 of every 1514 bytes without a
/// tunnel (19.1 Mbit/s), 1334 through circus (17.6 Mbit/s); uploads and
/// downloads alike.
#[test]
fn sim_goodput_over_a_clean_link_is_close_to_its_rate() {
    for direction in ["up", "down"] {
        let toml = format!(
            r#"
name = "clean"
duration = "20s"
seed = 3
systems = ["circus", "single-link"]

[[link]]
name = "only"
delay = "10ms"
rate = "20mbit"

[traffic]
probe = {{ rate = "100pps", size = 200, direction = "{direction}" }}
tcp = {{ flows = 2, direction = "{direction}" }}
"#
        );
        let scenario = Scenario::from_toml(&toml, std::path::Path::new("clean.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let report = sim::run(&scenario, "test").unwrap_or_else(|e| panic!("{e}"));
        for (system, band) in [("single-link", 18.0..19.3), ("circus", 16.0..17.8)] {
            let figures = &report.outcome.summary.systems[system];
            let goodput = match direction {
                "up" => figures.tcp_goodput_mbps,
                _ => figures.tcp_goodput_down_mbps,
            };
            assert!(
                goodput.is_some_and(|g| band.contains(&g)),
                "{system} {direction}: {goodput:?} Mbit/s, expected {band:?}"
            );
        }
    }
}

proptest! {
    /// Any bytes, and any segment of the flow with any numbers in it, are
    /// read without panicking by both ends, mid-transfer.
    #[test]
    fn any_input_is_read_without_panic(
        raw in prop::collection::vec(any::<u8>(), 0..200),
        numbers in prop::collection::vec((any::<u32>(), any::<u32>(), 0usize..=3, any::<[u32; 6]>(), 0usize..1500), 1..20),
    ) {
        let config = flow(0, Duration::from_secs(1));
        let (mut sender, mut receiver) = config.ends();
        let mut buf = vec![0; 2048];
        let now = Duration::from_millis(1);
        while sender.poll_transmit(now, &mut buf).is_some() {}
        sender.handle_packet(now, &raw);
        receiver.handle_packet(now, &raw);
        for (i, (seq, ack, sack_len, edges, payload_len)) in numbers.into_iter().enumerate() {
            let mut forged = Segment { seq, ack, window: ack, sack_len, payload_len, ..Segment::default() };
            for (block, pair) in forged.sack.iter_mut().zip(edges.chunks_exact(2)) {
                *block = (pair[0], pair[1]);
            }
            let now = now + Duration::from_millis(i as u64);
            if let Some(len) = segment::emit(config.endpoints.reversed(), &forged, &mut buf) {
                sender.handle_packet(now, &buf[..len]);
            }
            if let Some(len) = segment::emit(config.endpoints, &forged, &mut buf) {
                receiver.handle_packet(now, &buf[..len]);
            }
            sender.handle_timeout(now + Duration::from_secs(1));
            while sender.poll_transmit(now, &mut buf).is_some() {}
            while receiver.poll_transmit(now, &mut buf).is_some() {}
        }
    }
}
