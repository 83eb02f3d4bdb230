//! Forwarding capacity of the userspace emulator and the latency it adds over
//! a direct veth pair, measured in real namespaces (needs root).
//!
//! `cargo bench -p circus-lab --bench forwarder`
//! (`CIRCUS_LAB_NETNS_TAG` picks the namespace tag; default that of lab runs.
//! `CIRCUS_LAB_PCAP=DIR` captures the link into DIR meanwhile, as `--pcap`
//! does, to measure what captures cost.)

use circus_lab::emulator::forwarder::capacity::{CapacityOptions, measure};
use circus_lab::topology::require_netns;

fn main() {
    // `cargo test --benches` runs bench targets too; a bench needs `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if let Err(reason) = require_netns() {
        eprintln!("forwarder bench skipped: {reason}");
        return;
    }
    let mut options = CapacityOptions::default();
    if let Ok(tag) = std::env::var("CIRCUS_LAB_NETNS_TAG") {
        options.tag = tag;
    }
    options.captures = std::env::var_os("CIRCUS_LAB_PCAP").map(Into::into);
    match measure(&options) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("forwarder bench: {e}");
            std::process::exit(1);
        }
    }
}
