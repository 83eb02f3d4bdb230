//! The per-packet cost of the engines, both ways, for 1400-byte packets.
//!
//! - `send`: a packet from the TUN side to a sealed datagram: queue, schedule
//!   over the links, encode frames (with a piggybacked ack when due), encrypt.
//! - `receive`: a datagram to an in-order TUN packet: parse, replay check,
//!   decrypt, decode frames, per-link ack bookkeeping, reorder, deliver.
//!
//! Each is measured upstream (client -> gateway) and downstream (gateway ->
//! client). Throughput is reported in packets (elements) per second of the
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

/// Forwards `iters` packets in batches and returns the time spent in `stage`.
fn measure(
    pair: &mut Pair,
    packet: &[u8],
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
    for (name, direction, stage) in [
        ("upstream_send", Direction::Upstream, Stage::Send),
        ("upstream_receive", Direction::Upstream, Stage::Receive),
        ("downstream_send", Direction::Downstream, Stage::Send),
        ("downstream_receive", Direction::Downstream, Stage::Receive),
    ] {
        let mut pair = Pair::connected(config());
        let packet = match direction {
            Direction::Upstream => Pair::upstream_packet(PACKET),
            Direction::Downstream => Pair::downstream_packet(PACKET),
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| measure(&mut pair, &packet, direction, stage, iters));
        });
    }
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
