//! Routed traffic (the baselines without a tunnel) is judged on the link,
//! not on the kernel's neighbour resolution across it.
//!
//! With ARP across the emulated link, the first packets over a 300 ms link
//! waited ~600 ms for a reply in a small queue and the rest were dropped
//! (single-link lost 435 of 10,000 probes on a clean link, multiwan 174),
//! and a request lost in a blackhole left traffic waiting for the kernel's
//! next retry, a second later, long after the link had returned. The
//! topology gives both ends of each link each other's MAC address up front;
//! these tests fail if resolution crosses the link again.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use circus_lab::emulator::model::{LinkCondition, LinkParams};
use circus_lab::topology::addressing::{SERVER_SUBNET, SUBNET_PREFIX_LEN};
use circus_lab::topology::{Role, SERVER_ADDRESS, netns_available_for_test};
use common::Lab;

/// Namespace tag of these tests.
const TAG: &str = "evn";

/// A lab whose client routes the server over its one link, as the
/// single-link baseline does, with a receiving socket on the server and a
/// sending one on the client.
fn routed_lab(params: LinkParams) -> (Lab, UdpSocket, UdpSocket) {
    let lab = Lab::start_tagged(TAG, params);
    lab.topology
        .route_client_via(SERVER_SUBNET, SUBNET_PREFIX_LEN, 0, 10)
        .unwrap();
    let server = lab.socket(Role::Server, SocketAddrV4::new(SERVER_ADDRESS, 0));
    server
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let client = lab.socket(Role::Client, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    (lab, server, client)
}

/// Sends `count` datagrams carrying their index, one per millisecond.
fn send_paced(client: &UdpSocket, to: std::net::SocketAddr, count: u32) {
    let start = Instant::now();
    for index in 0..count {
        client.send_to(&index.to_be_bytes(), to).unwrap();
        let next = start + Duration::from_millis(u64::from(index) + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

#[test]
fn routed_traffic_resumes_as_soon_as_a_blackhole_ends() {
    if !netns_available_for_test("routed_traffic_resumes_as_soon_as_a_blackhole_ends") {
        return;
    }
    let (lab, server, client) = routed_lab(LinkParams {
        delay: Duration::from_millis(20),
        ..LinkParams::default()
    });
    let to = server.local_addr().unwrap();
    // The traffic starts into a blackhole, so the client's first packet
    // would start a neighbour resolution whose requests vanish.
    lab.forwarder
        .set_condition(0, LinkCondition::Blackhole)
        .unwrap();
    let (restored, first_arrival) = std::thread::scope(|scope| {
        scope.spawn(|| send_paced(&client, to, 1_000));
        std::thread::sleep(Duration::from_millis(300));
        lab.forwarder.set_condition(0, LinkCondition::Up).unwrap();
        let restored = Instant::now();
        let mut buf = [0u8; 64];
        let received = server.recv_from(&mut buf);
        (restored, received.map(|_| Instant::now()))
    });
    let first_arrival = first_arrival.expect("nothing arrived within 2 s of the restore");
    let resumed = first_arrival.saturating_duration_since(restored);
    // One 20 ms crossing, plus room for a busy host; the kernel's next
    // neighbour request would have come up to a second after the first.
    assert!(
        resumed < Duration::from_millis(150),
        "delivery resumed {resumed:?} after the link returned"
    );
}

#[test]
fn a_long_link_delivers_its_first_packets() {
    if !netns_available_for_test("a_long_link_delivers_its_first_packets") {
        return;
    }
    let (_lab, server, client) = routed_lab(LinkParams {
        delay: Duration::from_millis(300),
        ..LinkParams::default()
    });
    let to = server.local_addr().unwrap();
    const SENT: u32 = 1_000;
    let mut seen = vec![false; SENT as usize];
    // Received while sent, so the server's socket buffer never overflows.
    std::thread::scope(|scope| {
        scope.spawn(|| send_paced(&client, to, SENT));
        let mut buf = [0u8; 64];
        while let Ok((len, _)) = server.recv_from(&mut buf) {
            let index = <[u8; 4]>::try_from(&buf[..len.min(4)]).map(u32::from_be_bytes);
            if let Some(slot) = index.ok().and_then(|i| seen.get_mut(i as usize)) {
                *slot = true;
            }
            if seen.iter().all(|&s| s) {
                break;
            }
        }
    });
    let lost = seen.iter().filter(|&&s| !s).count();
    // A lossless link: every datagram arrives, the first ones too (they
    // were dropped while an ARP reply took 600 ms to come back).
    assert_eq!(lost, 0, "{lost} of {SENT} datagrams lost");
}
