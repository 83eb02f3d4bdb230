//! Hostile input against the gateway's UDP port, while a real client uses
//! the tunnel: garbage, truncated, oversize, replayed and forged datagrams
//! at a high rate. Nothing may be accepted, nothing answered with more
//! bytes than it sent, and the real client must not lose a packet.

mod common;

use common::capture::{capture, counting_echo};
use common::junk::Junk;
use common::*;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Attack {
    /// The attacker's own address, which the gateway must never adopt as a
    /// link's endpoint.
    source: SocketAddr,
    sent: u64,
    replies: u64,
    largest_reply: usize,
}

/// Sends hostile datagrams to `target` for `duration` at about `rate_pps`,
/// built from `real` (captured packets), and records every reply.
fn attack(target: SocketAddr, real: &[Vec<u8>], duration: Duration, rate_pps: u64) -> Attack {
    let socket = UdpSocket::bind((Ipv4Addr::new(198, 18, 0, 2), 0)).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut junk = Junk(0x5eed_1234_abcd_ef01);
    let mut result = Attack {
        source: socket.local_addr().unwrap(),
        sent: 0,
        replies: 0,
        largest_reply: 0,
    };
    let mut datagram = vec![0u8; 65507];
    let mut reply = vec![0u8; 65536];
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate_pps as f64);
    while start.elapsed() < duration {
        // Bursts once a millisecond at the average rate, rather than a
        // busy loop that would starve the daemons of CPU.
        let due = start + interval * u32::try_from(result.sent).unwrap_or(u32::MAX);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait.max(Duration::from_millis(1)));
        }
        let source = &real[junk.below(real.len())];
        let len = match result.sent % 6 {
            // Garbage of any length, including empty.
            0 => {
                let len = junk.below(1500);
                junk.fill(&mut datagram[..len]);
                len
            }
            // Truncated real packets.
            1 => {
                let len = junk.below(source.len().max(1));
                datagram[..len].copy_from_slice(&source[..len]);
                len
            }
            // Oversize: the largest UDP datagram, with a real header.
            2 if result.sent % 60 == 2 => {
                let head = source.len().min(64);
                datagram[..head].copy_from_slice(&source[..head]);
                junk.fill(&mut datagram[head..]);
                datagram.len()
            }
            // Replayed real packets, byte for byte (handshake init included).
            2 | 3 => {
                datagram[..source.len()].copy_from_slice(source);
                source.len()
            }
            // Forged: a real packet with one bit flipped anywhere.
            4 => {
                datagram[..source.len()].copy_from_slice(source);
                let bit = junk.below(source.len() * 8);
                datagram[bit / 8] ^= 1 << (bit % 8);
                source.len()
            }
            // Forged: a real header (type, receiver index, a fresh counter)
            // with a random body, as an attacker who watched the link would.
            _ => {
                let len = source.len();
                datagram[..len].copy_from_slice(source);
                if len > 14 {
                    datagram[6..14].copy_from_slice(&(junk.next() >> 8).to_be_bytes());
                    junk.fill(&mut datagram[14..len]);
                }
                len
            }
        };
        let _ = socket.send_to(&datagram[..len], target);
        result.sent += 1;
        while let Ok((n, _)) = socket.recv_from(&mut reply) {
            result.replies += 1;
            result.largest_reply = result.largest_reply.max(n);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    while let Ok((n, _)) = socket.recv_from(&mut reply) {
        result.replies += 1;
        result.largest_reply = result.largest_reply.max(n);
    }
    result
}

/// Hostile datagrams per second: 20k as CI runs it (release). An
/// unoptimised gateway spends ~20x longer authenticating each forged
/// packet, so the development loop attacks more gently.
const ATTACK_PPS: u64 = if cfg!(debug_assertions) {
    1_000
} else {
    20_000
};

#[test]
fn hostile_input_is_refused_and_the_client_keeps_working() {
    if !require_netns() {
        return;
    }
    let client_ns = Netns::new("hostc");
    let gateway_ns = Netns::new("hostg");
    veth(&client_ns, "cl0", &gateway_ns, "gl0", 0);
    veth(&client_ns, "cl1", &gateway_ns, "gl1", 1);
    let (gateway_secret, gateway_public) = circus_core::crypto::generate_keypair().unwrap();
    let id = ClientIdentity::new(2);
    let gateway = start_gateway(&gateway_ns, gateway_config(&gateway_secret, &[&id]));
    let echo_addr = SocketAddr::from((GATEWAY_TUNNEL, 7));
    let echoed = counting_echo(&gateway_ns, echo_addr);

    // Capture link 0 from before the client starts, so the handshake init
    // is among the packets to replay.
    let stop = Arc::new(AtomicBool::new(false));
    let stop_capture = stop.clone();
    let capturing = client_ns.spawn(move || capture("cl0", stop_capture));
    std::thread::sleep(Duration::from_millis(100));
    let client = start_client(
        &client_ns,
        client_config(&id, gateway_public, &[("cl0", 0), ("cl1", 1)]),
    );
    client.wait_connected();
    let warmup = echo_stream(&client_ns, echo_addr, 200, 400, 300);
    assert_eq!(warmup.received, warmup.sent);
    stop.store(true, Ordering::Relaxed);
    let real = capturing.join().unwrap();
    assert!(
        real.iter().any(|p| p.get(1) == Some(&1)),
        "captured the handshake init"
    );
    assert!(
        real.iter().filter(|p| p.get(1) == Some(&3)).count() > 10,
        "captured transport packets"
    );
    let echoed_before = echoed.load(Ordering::Relaxed);
    assert_eq!(echoed_before, 200);

    let target = SocketAddr::from((Ipv4Addr::new(198, 18, 0, 1), GATEWAY_PORT));
    let (attack_result, during) = std::thread::scope(|s| {
        let attacker = s.spawn(|| {
            client_ns.run({
                let real = real.clone();
                move || attack(target, &real, Duration::from_secs(4), ATTACK_PPS)
            })
        });
        std::thread::sleep(Duration::from_millis(200));
        let during = echo_stream(&client_ns, echo_addr, 1000, 400, 300);
        (attacker.join().unwrap(), during)
    });
    eprintln!("attack: {attack_result:?}; real client during it: {during:?}");
    for report in [gateway.status(), client.status()].into_iter().flatten() {
        eprintln!("{}", circus_node::status::render(&report));
    }
    assert!(
        attack_result.sent > 3 * ATTACK_PPS,
        "the attack ran at a high rate: {attack_result:?}"
    );
    assert_eq!(
        attack_result.replies, 0,
        "no reply to hostile input: {attack_result:?}"
    );
    assert_eq!(
        during.received, during.sent,
        "the real client lost nothing: {during:?}"
    );
    assert_eq!(
        echoed.load(Ordering::Relaxed) - echoed_before,
        1000,
        "only the real client's packets came out of the tunnel (no replay accepted)"
    );

    let report = gateway.status().unwrap();
    let refused = |reason: &str| report.refused.get(reason).copied().unwrap_or(0);
    eprintln!("gateway refused: {:?}", report.refused);
    assert!(refused("malformed") > 0, "{:?}", report.refused);
    assert!(refused("replayed") > 0, "{:?}", report.refused);
    assert!(refused("unauthentic") > 0, "{:?}", report.refused);
    assert!(refused("handshake_refused") > 0, "{:?}", report.refused);
    let session = &report.sessions[0];
    assert_eq!(
        session.handshakes, 1,
        "the replayed init started nothing: {session:?}"
    );
    for link in &session.links {
        assert_ne!(
            link.endpoint,
            attack_result.source.to_string(),
            "no hijacked link: {link:?}"
        );
    }
}
