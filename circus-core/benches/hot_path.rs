//! The per-packet cost of the engines, both ways, for 1400-byte packets.
//!
//! - `send`: a packet from the TUN side to a sealed datagram: queue, schedule
//!   over the links, encode frames (with a piggybacked ack when due), encrypt.
//! - `receive`: a datagram to an in-order TUN packet: parse, replay check,
//!   decrypt, decode frames, per-link ack bookkeeping, reorder, deliver.
//!
//! Each is measured upstream (client -> gateway) and downstream (gateway ->
//! client). `upstream_send_tcp` and `upstream_send_tcp_mss_clamped` send a
//! TCP data segment instead, without and with the node's MSS clamp in front
//! of the engine (as `circus-node` runs it on every TUN read), so their
//! difference is what the clamp costs a packet that is not a handshake;
//! `mss_clamp` times the clamp alone. Throughput is reported in packets (elements) per second of the
//! measuring thread's CPU time, i.e. per core: the machines this runs on are
//! shared, and wall time would mostly measure the neighbours. Between
//! batches, untimed, the peer consumes the datagrams and returns its acks, so
//! the sender's paths stay in their steady state. Run with
//! `cargo bench -p circus-core --bench hot_path`.

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::hint::black_box;
use std::time::Duration;

use circus_core::engine::Config;
use circus_core::mss::MssClamp;
use circus_core::paths::PathConfig;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use harness::Pair;

/// Packets per batch between ack exchanges: well inside the path's
/// in-flight window (see [`config`]), as in steady forwarding.
const BATCH: u64 = 64;
const PACKET: usize = 1400;

#[derive(Clone, Copy)]
enum Direction {
    Upstream,
    Downstream,
}

#[derive(Clone, Copy)]
enum Stage {
    Send,
    Receive,
}

/// Default settings, but an in-flight window that fits a whole batch: the
/// zero-delay bench link would otherwise measure a tiny window, not the
/// per-packet cost.
fn config() -> Config {
    Config {
        path: PathConfig {
            min_window: 1 << 20,
            ..PathConfig::default()
        },
        ..Config::default()
    }
}

/// CPU time consumed by the calling thread so far.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant
    // every Linux kernel supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID is readable");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The bench packet as a TCP segment carrying data (ACK set), as most of a
/// download is: the case the clamp must pass fastest, after looking at the
/// TCP flags. The harness's flow and sequence fields stay where they were
/// (they are the ports, sequence and ack numbers).
fn tcp_data(mut packet: Vec<u8>) -> Vec<u8> {
    packet[9] = 6;
    packet[32] = 5 << 4;
    packet[33] = 0x10;
    packet
}

/// Forwards `iters` packets in batches and returns the time spent in `stage`;
/// with `clamp`, each packet is passed through it before the engine.
fn measure(
    pair: &mut Pair,
    packet: &mut [u8],
    clamp: Option<MssClamp>,
    direction: Direction,
    stage: Stage,
    iters: u64,
) -> Duration {
    let mut timed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(BATCH);
        left -= n;
        let start = thread_cpu_time();
        for _ in 0..n {
            if let Some(clamp) = clamp {
                clamp.apply(black_box(&mut *packet));
            }
            match direction {
                Direction::Upstream => pair.client_send(black_box(packet)),
                Direction::Downstream => pair.gateway_send(black_box(packet)),
            }
        }
        let sent = thread_cpu_time() - start;
        let start = thread_cpu_time();
        let delivered = match direction {
            Direction::Upstream => pair.gateway_receive(),
            Direction::Downstream => pair.client_receive(),
        };
        let received = thread_cpu_time() - start;
        assert_eq!(delivered as u64, n, "every packet is delivered");
        timed += match stage {
            Stage::Send => sent,
            Stage::Receive => received,
        };
        pair.exchange_control();
    }
    timed
}

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_path_1400B");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    let clamp = Some(MssClamp::new(1420));
    for (name, direction, stage, tcp, clamp) in [
        (
            "upstream_send",
            Direction::Upstream,
            Stage::Send,
            false,
            None,
        ),
        (
            "upstream_receive",
            Direction::Upstream,
            Stage::Receive,
            false,
            None,
        ),
        (
            "downstream_send",
            Direction::Downstream,
            Stage::Send,
            false,
            None,
        ),
        (
            "downstream_receive",
            Direction::Downstream,
            Stage::Receive,
            false,
            None,
        ),
        (
            "upstream_send_tcp",
            Direction::Upstream,
            Stage::Send,
            true,
            None,
        ),
        (
            "upstream_send_tcp_mss_clamped",
            Direction::Upstream,
            Stage::Send,
            true,
            clamp,
        ),
    ] {
        let mut pair = Pair::connected(config());
        let mut packet = match direction {
            Direction::Upstream => Pair::upstream_packet(PACKET),
            Direction::Downstream => Pair::downstream_packet(PACKET),
        };
        if tcp {
            packet = tcp_data(packet);
        }
        group.bench_function(name, |b| {
            b.iter_custom(|iters| measure(&mut pair, &mut packet, clamp, direction, stage, iters));
        });
    }
    group.finish();
}

/// The clamp alone: a data segment (looked at, passed) and a SYN (options
/// walked; rewritten once, then found already low enough).
fn mss_clamp(c: &mut Criterion) {
    let mut group = c.benchmark_group("mss_clamp");
    group.throughput(Throughput::Elements(1));
    let clamp = MssClamp::new(1280);
    let mut data = tcp_data(Pair::upstream_packet(PACKET));
    // A Linux SYN: MSS 1460, SACK permitted, timestamps, NOP, window scale.
    let mut syn = tcp_data(Pair::upstream_packet(60));
    syn[32] = 10 << 4;
    syn[33] = 0x02;
    syn[40..60].copy_from_slice(&[
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ]);
    for (name, packet) in [("tcp_data_1400B", &mut data), ("syn", &mut syn)] {
        group.bench_function(name, |b| b.iter(|| clamp.apply(black_box(&mut packet[..]))));
    }
    group.finish();
}

criterion_group!(benches, hot_path, mss_clamp);
criterion_main!(benches);
