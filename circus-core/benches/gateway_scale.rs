//! Whether the gateway's work per packet and per timer depends on how many
//! clients it is configured for: the same traffic from one connected
//! client through a gateway configured for 1, 1,000 and 10,000, and from
//! 100 connected clients through one configured for 100, 1,000 and 10,000.
//! Only like columns compare: 100 sessions take turns in the caches where
//! one stays in them.
//!
//! - `inbound`: client datagrams to TUN packets: find the session by
//!   receiver index, decrypt, reorder, deliver (and the driver's
//!   `poll_timeout` after each batch).
//! - `outbound`: TUN packets to client datagrams: route by destination,
//!   queue, schedule, encrypt, transmit (and `poll_timeout`).
//! - `timeout`: one timer event: `poll_timeout`, then `handle_timeout` at
//!   that deadline, as the driver does.
//!
//! Per-packet (per-event) cost in the measuring thread's CPU time, as in
//! `hot_path`. Between batches, untimed, the clients answer with their acks
//! so the sessions stay in their steady state. Run with
//! `cargo bench -p circus-core --bench gateway_scale`.

mod fleet;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fleet::{Fleet, SERVER_ADDR, config, packet, tunnel_addr};

const PACKET: usize = 1400;
/// (connected, configured) clients of each case.
const CASES: [(usize, usize); 6] = [
    (1, 1),
    (1, 1_000),
    (1, 10_000),
    (100, 100),
    (100, 1_000),
    (100, 10_000),
];
/// Packets per timed batch, as a batch of datagrams read at once: one per
/// connected client with 100 of them.
const BATCH: usize = 100;

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

/// Client datagrams in, TUN packets out: returns the time spent in the
/// gateway for `iters` packets.
fn inbound(fleet: &mut Fleet, packets: &[Vec<u8>], iters: u64) -> Duration {
    let mut timed = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let n = left.min(BATCH);
        left -= n;
        fleet.advance(Duration::from_micros(10));
        for k in 0..n {
            let client = k % packets.len();
            fleet.client_send(client, &packets[client]);
        }
        let start = thread_cpu_time();
        let delivered = fleet.gateway_receive();
        black_box(fleet.gateway.poll_timeout());
        timed += thread_cpu_time() - start;
        assert_eq!(delivered, n, "every packet is delivered");
        fleet.run_timers();
        fleet.exchange();
    }
    timed
}

/// TUN packets in, client datagrams out.
fn outbound(fleet: &mut Fleet, packets: &[Vec<u8>], iters: u64) -> Duration {
    let mut timed = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let n = left.min(BATCH);
        left -= n;
        fleet.advance(Duration::from_micros(10));
        let start = thread_cpu_time();
        for k in 0..n {
            fleet.gateway_send(&packets[k % packets.len()]);
        }
        black_box(fleet.gateway.poll_timeout());
        timed += thread_cpu_time() - start;
        assert_eq!(fleet.clients_receive(), n, "every packet is delivered");
        fleet.run_timers();
        fleet.exchange();
    }
    timed
}

/// One timer event per iteration: jump to the gateway's next deadline and
/// run it; the clients then answer whatever it sent.
fn timeout(fleet: &mut Fleet, iters: u64) -> Duration {
    let mut timed = Duration::ZERO;
    for _ in 0..iters {
        let start = thread_cpu_time();
        let next = fleet.gateway.poll_timeout();
        if let Some(t) = next.filter(|&t| t > fleet.now) {
            fleet.now = t;
        }
        fleet.gateway.handle_timeout(fleet.now);
        timed += thread_cpu_time() - start;
        fleet.run_client_timers();
        fleet.exchange();
    }
    timed
}

fn gateway_scale(c: &mut Criterion) {
    let mut group = c.benchmark_group("gateway_scale");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    for (active, configured) in CASES {
        let case = format!("{active}_of_{configured}");
        let mut fleet = Fleet::new(config(), configured, active);
        let upstream: Vec<Vec<u8>> = (0..active)
            .map(|i| packet(tunnel_addr(i), SERVER_ADDR, PACKET))
            .collect();
        let downstream: Vec<Vec<u8>> = (0..active)
            .map(|i| packet(SERVER_ADDR, tunnel_addr(i), PACKET))
            .collect();
        group.bench_function(BenchmarkId::new("inbound", &case), |b| {
            b.iter_custom(|iters| inbound(&mut fleet, &upstream, iters));
        });
        group.bench_function(BenchmarkId::new("outbound", &case), |b| {
            b.iter_custom(|iters| outbound(&mut fleet, &downstream, iters));
        });
        group.bench_function(BenchmarkId::new("timeout", &case), |b| {
            b.iter_custom(|iters| timeout(&mut fleet, iters));
        });
    }
    group.finish();
}

criterion_group!(benches, gateway_scale);
criterion_main!(benches);
