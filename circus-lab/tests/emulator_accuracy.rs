//! Accuracy of the emulator on real frames: the configured delay and rate are
//! what traffic through the namespaces measures.
//!
//! Timing is measured end to end with one clock (round trips in one process),
//! so the figures include the kernel, the endpoints and a noisy, shared
//! machine; the tolerances are those of issue 3 and the medians absorb noise.

mod common;

use std::io::IoSliceMut;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;

use circus_lab::emulator::model::{Direction, LinkParams, QueueLimit};
use circus_lab::topology::{Role, netns_available_for_test};
use common::{Lab, median};

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
    lab.probe(&echo, &client, 1, MS, Duration::from_secs(2));
    let mut rtts = lab.probe(&echo, &client, 100, 10 * MS, Duration::from_secs(1));
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

/// Receives datagrams until `socket` times out; returns each one's length
/// and its kernel receive timestamp (taken when the frame reached the
/// gateway's interface, so the receiving thread's scheduling does not count).
fn receive_timestamped(socket: &UdpSocket) -> Vec<(Duration, usize)> {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).unwrap();
    let mut arrivals = Vec::with_capacity(8192);
    let mut buf = vec![0u8; 2048];
    let mut control = nix::cmsg_space!(TimeSpec);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let Ok(message) = recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::empty(),
        ) else {
            return arrivals;
        };
        let stamp = message.cmsgs().unwrap().find_map(|c| match c {
            ControlMessageOwned::ScmTimestampns(ts) => Some(Duration::from(ts)),
            _ => None,
        });
        arrivals.push((
            stamp.expect("the kernel timestamps every datagram"),
            message.bytes,
        ));
    }
}

#[test]
fn ten_mbit_link_carries_ten_mbit() {
    if !netns_available_for_test("ten_mbit_link_carries_ten_mbit") {
        return;
    }
    let rate_bps = 10_000_000u64;
    // A deep queue keeps the link busy through stalls of the sender (a
    // normal thread on a shared machine).
    let lab = Lab::start(LinkParams {
        delay: 5 * MS,
        rate_bps: Some(rate_bps),
        queue: Some(QueueLimit::Delay(300 * MS)),
        ..LinkParams::default()
    });
    let link = lab.topology.links()[0].clone();
    let receiver = lab.socket(Role::Gateway, SocketAddrV4::new(link.gateway_address, 0));
    let destination = receiver.local_addr().unwrap();
    let sender = lab.socket(Role::Client, SocketAddrV4::new(link.client_address, 0));
    receiver
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();

    // Offer 20 Mbit/s of 1400-byte datagrams for 2.5 s: twice the rate.
    let payload = 1400usize;
    let sending = std::thread::spawn(move || {
        let datagram = vec![0u8; payload];
        let interval = Duration::from_nanos(
            ((payload + FRAME_OVERHEAD) * 8) as u64 * 1_000_000_000 / 20_000_000,
        );
        let start = Instant::now();
        let mut sent = 0u32;
        while start.elapsed() < Duration::from_millis(2500) {
            let _ = sender.send_to(&datagram, destination);
            sent += 1;
            if let Some(ahead) = (interval * sent).checked_sub(start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    });
    let arrivals = receive_timestamped(&receiver);
    sending.join().unwrap();

    // Skip the first 0.5 s (ARP, queue filling); the queue stays full until
    // the sender stops, so measure up to 0.3 s before the last arrival.
    let (first, _) = arrivals[0];
    let (last, _) = arrivals[arrivals.len() - 1];
    let window: Vec<_> = arrivals
        .iter()
        .filter(|(at, _)| *at >= first + 500 * MS && *at + 300 * MS <= last)
        .collect();
    assert!(
        window.len() > 500,
        "only {} datagrams in the window",
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
