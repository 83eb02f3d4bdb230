//! The per-packet path allocates nothing in steady state, in either
//! direction: every buffer (transmit queue, resend store, reorder slab, ack
//! ranges, scratch) is allocated when a session or link is created.

mod harness;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use circus_core::engine::Config;
use harness::Pair;

/// Counts every allocation made by this test binary.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Sends `n` packets each way in batches, with acks in between.
fn traffic(pair: &mut Pair, up: &[u8], down: &[u8], n: usize) -> (usize, usize) {
    let (mut delivered_up, mut delivered_down) = (0, 0);
    for _ in 0..n / 16 {
        for _ in 0..16 {
            pair.client_send(up);
        }
        delivered_up += pair.gateway_receive();
        for _ in 0..16 {
            pair.gateway_send(down);
        }
        delivered_down += pair.client_receive();
        pair.exchange_control();
    }
    (delivered_up, delivered_down)
}

#[test]
fn steady_traffic_allocates_nothing_per_packet() {
    let mut pair = Pair::connected(Config::default());
    // Small packets: the size changes nothing here but the (debug-build)
    // time spent encrypting.
    let (up, down) = (Pair::upstream_packet(100), Pair::downstream_packet(100));
    // Warm up: paths grow their bounded records to their working size.
    let warm = traffic(&mut pair, &up, &down, 4000);
    assert_eq!(
        warm,
        (4000, 4000),
        "every packet delivered while warming up"
    );

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let measured = traffic(&mut pair, &up, &down, 4000);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(measured, (4000, 4000));
    assert_eq!(allocations, 0, "allocations while forwarding 8000 packets");
}
