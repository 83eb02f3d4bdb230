//! Memory of the gateway per configured client and per connected client,
//! counted by a global allocator that tracks live heap bytes.
//!
//! Builds a gateway for 10,000 clients (compared with one for none), then
//! connects 1,000 of them, 100 at a time (each batch's client engines are
//! dropped before the next, so only the gateway's sessions remain), and
//! prints the heap bytes each step added, and the resident memory (RSS):
//! buffers allocated zeroed stay untouched, and unresident, until the
//! traffic that needs them comes. Run with
//! `cargo bench -p circus-core --bench gateway_memory`.

mod fleet;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use fleet::{Fleet, config};

const CONFIGURED: usize = 10_000;
const ACTIVE: usize = 1_000;
const BATCH: usize = 100;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator with the same
// arguments; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as for `dealloc`, and `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Resident set size of this process in bytes (`VmRSS`), 0 if unknown.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

const MIB: f64 = (1 << 20) as f64;

fn main() {
    // `cargo bench` passes `--bench`; a filter that excludes us is honoured.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"gateway_memory".contains(&a))
    {
        return;
    }
    let empty_start = live();
    let empty = Fleet::new(config(), 0, 0);
    let empty_bytes = live() - empty_start;
    drop(empty);

    let start = live();
    let mut fleet = Fleet::new(config(), CONFIGURED, 0);
    let configured_bytes = (live() - start).saturating_sub(empty_bytes);
    println!(
        "gateway for {CONFIGURED} configured clients: heap {:.1} MiB, {} bytes per configured client",
        configured_bytes as f64 / MIB,
        configured_bytes / CONFIGURED
    );

    let (before, rss_before) = (live(), rss());
    for first in (0..ACTIVE).step_by(BATCH) {
        fleet.connect(first, BATCH);
        // The batch's own engines go before the next batch is measured.
        fleet.clients.clear();
    }
    assert_eq!(fleet.gateway.session_count(), ACTIVE);
    let (heap, resident) = (live() - before, rss().saturating_sub(rss_before));
    println!(
        "{ACTIVE} connected clients: heap {:.1} MiB ({:.2} MiB each), resident {:.1} MiB ({:.2} MiB each)",
        heap as f64 / MIB,
        heap as f64 / ACTIVE as f64 / MIB,
        resident as f64 / MIB,
        resident as f64 / ACTIVE as f64 / MIB,
    );
}
