//! Accuracy of the emulator on real frames: the configured delay and rate are
//! what traffic through the namespaces measures.
//!
//! Timing is measured end to end with one clock (round trips in one process),
//! so the figures include the kernel, the endpoints and a noisy, shared
//! machine; the tolerances are those of issue 3 and the medians absorb noise.

mod common;

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use circus_lab::emulator::model::{Direction, LinkParams, QueueLimit};
use circus_lab::topology::{Role, netns_available_for_test};
use common::{Lab, median, round_trips};

const MS: Duration = Duration::from_millis(1);

#[test]
fn fifty_ms_one_way_delay_measures_fifty_ms_at_the_median() {
    if !netns_available_for_test("fifty_ms_one_way_delay_measures_fifty_ms_at_the_median") {
        return;
    }
    let lab = Lab::start(LinkParams {
        delay: 50 * MS,
        ..LinkParams::default()
    });
    let (echo, client) = lab.echo_pair();
    // The first probe waits for ARP across the link; warm up with it.
    round_trips(&client, echo.address, 1, MS, Duration::from_secs(2));
    let mut rtts = round_trips(&client, echo.address, 100, 10 * MS, Duration::from_secs(1));
    assert!(rtts.len() >= 95, "{} of 100 probes came back", rtts.len());
    let one_way = median(&mut rtts) / 2;
    let error = one_way.abs_diff(50 * MS);
    eprintln!("configured 50 ms one way: median measured {one_way:?}");
    assert!(
        error <= 2 * MS,
        "median one-way {one_way:?} is not within 2 ms of 50 ms"
    );
}

/// Ethernet + IPv4 + UDP headers: what a frame adds to a UDP payload.
const FRAME_OVERHEAD: usize = 14 + 20 + 8;

#[test]
fn ten_mbit_link_carries_ten_mbit() {
    if !netns_available_for_test("ten_mbit_link_carries_ten_mbit") {
        return;
    }
    let rate_bps = 10_000_000u64;
    let lab = Lab::start(LinkParams {
        delay: 5 * MS,
        rate_bps: Some(rate_bps),
        queue: Some(QueueLimit::Delay(50 * MS)),
        ..LinkParams::default()
    });
    let link = lab.topology.links()[0].clone();
    let receiver = lab.socket(Role::Gateway, SocketAddrV4::new(link.gateway_address, 0));
    let destination = receiver.local_addr().unwrap();
    let sender = lab.socket(Role::Client, SocketAddrV4::new(link.client_address, 0));
    receiver
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();

    // Offer ~14 Mbit/s of 1400-byte datagrams for 2.5 s: the link stays saturated.
    let payload = 1400usize;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_sender = Arc::clone(&stop);
    let sending = std::thread::spawn(move || {
        let datagram = vec![0u8; payload];
        let interval = Duration::from_nanos(
            ((payload + FRAME_OVERHEAD) * 8) as u64 * 1_000_000_000 / 14_000_000,
        );
        let start = Instant::now();
        let mut sent = 0u32;
        while !stop_sender.load(Ordering::Relaxed) && start.elapsed() < Duration::from_millis(2500)
        {
            let _ = sender.send_to(&datagram, destination);
            sent += 1;
            if let Some(ahead) = (interval * sent).checked_sub(start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    });

    let mut arrivals = Vec::with_capacity(4096);
    let mut buf = vec![0u8; 2048];
    while let Ok(len) = receiver.recv(&mut buf) {
        arrivals.push((Instant::now(), len));
    }
    stop.store(true, Ordering::Relaxed);
    sending.join().unwrap();

    // Skip the first 0.5 s (queue filling, ARP), measure over the rest.
    let first = arrivals[0].0;
    let window: Vec<_> = arrivals
        .iter()
        .filter(|(at, _)| *at >= first + Duration::from_millis(500))
        .collect();
    assert!(
        window.len() > 500,
        "only {} datagrams arrived",
        window.len()
    );
    let (start, _) = window[0];
    let (end, _) = window[window.len() - 1];
    let bits: usize = window[1..]
        .iter()
        .map(|(_, len)| (len + FRAME_OVERHEAD) * 8)
        .sum();
    let measured_bps = bits as f64 / (*end - *start).as_secs_f64();
    let up = lab.forwarder.counters(0, Direction::Up).unwrap();
    eprintln!(
        "configured 10 Mbit/s: measured {:.3} Mbit/s; {up:?}",
        measured_bps / 1e6
    );
    let error = (measured_bps - rate_bps as f64).abs() / rate_bps as f64;
    assert!(
        error <= 0.05,
        "measured {measured_bps:.0} bit/s, not within 5% of {rate_bps}"
    );
}
