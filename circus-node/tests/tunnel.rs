//! One client and one gateway in namespaces, joined by two veth links:
//! traffic through the tunnel while links fail, recover and change address.

mod common;

use common::ping::Pinger;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Client and gateway namespaces with links `cl0`<->`gl0` (198.18.0.0/24)
/// and `cl1`<->`gl1` (198.18.1.0/24), both daemons connected.
struct Pair {
    // Field order is drop order: daemons stop before their namespaces go.
    client: Daemon,
    gateway: Daemon,
    client_ns: Netns,
    gateway_ns: Netns,
}

fn pair(tag: &str) -> Pair {
    let client_ns = Netns::new(&format!("{tag}c"));
    let gateway_ns = Netns::new(&format!("{tag}g"));
    veth(&client_ns, "cl0", &gateway_ns, "gl0", 0);
    veth(&client_ns, "cl1", &gateway_ns, "gl1", 1);
    let (gateway_secret, gateway_public) = circus_core::crypto::generate_keypair().unwrap();
    let id = ClientIdentity::new(2);
    let gateway = start_gateway(&gateway_ns, gateway_config(&gateway_secret, &[&id]));
    let mut config = client_config(&id, gateway_public, &[("cl0", 0), ("cl1", 1)]);
    config.observe.metrics_listen = Some(METRICS.parse().unwrap());
    let client = start_client(&client_ns, config);
    client.wait_connected();
    gateway.wait_connected();
    Pair {
        client,
        gateway,
        client_ns,
        gateway_ns,
    }
}

/// The client's metrics endpoint, inside its namespace.
const METRICS: &str = "127.0.0.1:9317";

fn echo_addr() -> SocketAddr {
    SocketAddr::from((GATEWAY_TUNNEL, 7))
}

fn links_up(report: &circus_node::status::StatusReport) -> usize {
    report.sessions[0]
        .links
        .iter()
        .filter(|l| l.state == "up")
        .count()
}

#[test]
fn echo_through_the_tunnel_then_clean_shutdown() {
    if !require_netns() {
        return;
    }
    let p = pair("echo");
    udp_echo(&p.gateway_ns, echo_addr());
    let result = echo_stream(&p.client_ns, echo_addr(), 500, 500, 200);
    assert_eq!(
        result.received, result.sent,
        "every echo returns: {result:?}"
    );

    // Both links carry probes and are judged up with a measured RTT.
    let report = p.client.wait("both links up", Duration::from_secs(5), |r| {
        links_up(r) == 2
    });
    for (i, link) in report.sessions[0].links.iter().enumerate() {
        assert_eq!(link.interface, "up");
        assert_eq!(
            link.peer,
            format!("198.18.{i}.1:{GATEWAY_PORT}"),
            "{link:?}"
        );
        assert!(link.rtt_ms.is_some_and(|rtt| rtt < 100.0), "{link:?}");
        assert!(link.traffic.packets_received > 0, "{link:?}");
    }
    let session = &report.sessions[0];
    assert!(session.tunnel.packets_sent >= 500, "{session:?}");
    assert!(session.tunnel.packets_received >= 500, "{session:?}");
    assert!(
        session.last_handshake_s.is_some_and(|s| s < 10.0),
        "{session:?}"
    );

    // The Prometheus endpoint shows the same links.
    let metrics = p.client_ns.run(|| {
        let mut stream = TcpStream::connect(METRICS).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    });
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    for link in ["cl0", "cl1"] {
        let rtt = format!("circus_link_rtt_seconds{{session=\"gateway\",link=\"{link}\"");
        assert!(metrics.contains(&rtt), "{rtt} in\n{metrics}");
    }
    assert!(
        metrics.contains("circus_session_connected{session=\"gateway\"} 1"),
        "{metrics}"
    );

    let gateway_report = p.gateway.status().unwrap();
    assert_eq!(gateway_report.role, "gateway");
    let client_session = &gateway_report.sessions[0];
    assert!(client_session.connected);
    assert!(
        client_session.last_handshake_s.is_some_and(|s| s < 10.0),
        "{client_session:?}"
    );
    assert!(
        client_session
            .links
            .iter()
            .all(|l| l.peer.starts_with("198.18.")),
        "the client's address per link: {client_session:?}"
    );

    // Stopping removes the TUN device and the status socket, and its Close
    // frees the gateway's session at once (idle, it would be kept for the
    // gateway's idle timeout, minutes).
    let socket = p.client.status_socket().to_path_buf();
    let Pair {
        client,
        client_ns,
        gateway,
        ..
    } = p;
    client.stop().expect("client ran cleanly");
    assert!(!socket.exists(), "status socket removed");
    gateway.wait(
        "the Close to end the session",
        Duration::from_secs(1),
        |r| !r.sessions[0].connected,
    );
    let out = std::process::Command::new("ip")
        .args(["-n", &client_ns.name, "link", "show", "cnd-tun"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "TUN device removed");
}

/// Deterministic incompressible test data: xorshift64.
fn fill(buf: &mut [u8], state: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

/// Payload `seq` of the burst test: its number, then data derived from it.
fn burst_payload(seq: u32) -> Vec<u8> {
    let mut d = vec![0u8; 1200];
    d[..4].copy_from_slice(&seq.to_be_bytes());
    fill(&mut d[4..], &mut (u64::from(seq) + 1));
    d
}

/// Packets the kernel has taken from the gateway's TUN writes: one per
/// write, so a super-packet counts once however many packets it carries.
fn gateway_tun_writes(gateway_ns: &Netns) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["-n", &gateway_ns.name, "-j", "-s", "link", "show", "cnd-gw"])
        .output()
        .unwrap();
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    links[0]["stats64"]["rx"]["packets"].as_u64().unwrap()
}

const BURST_SOURCE: [u8; 4] = [100, 64, 0, 2];
const BURST_SINK: [u8; 4] = [198, 19, 9, 2];

/// The transport checksum over `segment` (header and data) from
/// `BURST_SOURCE` to `BURST_SINK`: zero when the segment's own is right.
fn transport_checksum(protocol: u8, segment: &[u8]) -> [u8; 2] {
    let mut sum = internet_checksum::Checksum::new();
    sum.add_bytes(&BURST_SOURCE);
    sum.add_bytes(&BURST_SINK);
    sum.add_bytes(&[0, protocol]);
    sum.add_bytes(&(segment.len() as u16).to_be_bytes());
    sum.add_bytes(segment);
    sum.checksum()
}

/// TCP segment `seq` of the burst test (no connection: the gateway only
/// forwards it), with PSH on every `BURST`-th, as a sender's kernel would
/// build it: header with a timestamp option, and a valid checksum.
fn burst_tcp_segment(seq: u32) -> Vec<u8> {
    let payload = burst_payload(seq);
    let flags = if seq % BURST == BURST - 1 { 0x18 } else { 0x10 };
    let mut tcp = [
        &40000u16.to_be_bytes()[..],
        &9u16.to_be_bytes(),
        &(seq * 1200).to_be_bytes(),
        &1u32.to_be_bytes(),
    ]
    .concat();
    tcp.extend([8 << 4, flags, 1, 245, 0, 0, 0, 0, 1, 1, 8, 10]);
    tcp.extend((seq / BURST).to_be_bytes());
    tcp.extend(7u32.to_be_bytes());
    tcp.extend(payload);
    // A computed zero goes out as 0xffff (RFC 1624), as the kernel sends it.
    let checksum = match transport_checksum(6, &tcp) {
        [0, 0] => [0xff, 0xff],
        c => c,
    };
    tcp[16..18].copy_from_slice(&checksum);
    tcp
}

/// The same TCP segment inside its IPv4 header, for a raw socket.
fn burst_tcp_packet(seq: u32) -> Vec<u8> {
    let tcp = burst_tcp_segment(seq);
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
    ip.extend(BURST_SOURCE);
    ip.extend(BURST_SINK);
    ip[2..4].copy_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
    [ip, tcp].concat()
}

/// Packets sent in a burst before the burst tests pause.
const BURST: u32 = 64;

/// Bursts of UDP datagrams, then of TCP segments, of one flow each: the
/// gateway writes them to its TUN device as super-packets
/// (`circus_node::vnet`), and what the kernel forwards is the very
/// datagrams and segments the client sent, in order, with valid checksums.
/// The gateway forwards them to a second TUN device the test reads: that
/// device has no offloads, so the kernel splits each super-packet and
/// computes every checksum in software, as it does before a real uplink
/// without segmentation offload.
#[test]
fn udp_and_tcp_bursts_arrive_intact_and_in_order() {
    if !require_netns() {
        return;
    }
    const COUNT: u32 = 2000;
    let p = pair("burst");
    p.gateway_ns.sysctl("net.ipv4.ip_forward=1");
    p.client_ns
        .ip(&["route", "add", "198.19.9.0/24", "dev", "cnd-tun"]);
    let sink = SocketAddr::from((BURST_SINK, 9));
    for protocol in [17u8, 6] {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let receiver = p.gateway_ns.spawn(move || {
            let mut config = tun::Configuration::default();
            config
                .tun_name("cnd-sink")
                .address((198, 19, 9, 1))
                .netmask((255, 255, 255, 0))
                .up();
            let device = tun::create(&config).expect("sink TUN device");
            ready_tx.send(()).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            while let Ok(n) = device.recv_timeout(&mut buf, Duration::from_secs(1)) {
                got.push(buf[..n].to_vec());
            }
            got
        });
        ready_rx.recv().unwrap();
        let writes_before = gateway_tun_writes(&p.gateway_ns);
        p.client_ns.run(move || {
            let udp = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            let raw = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
            )
            .unwrap();
            for seq in 0..COUNT {
                // A full TUN queue drops; that is not what this tests.
                let _ = if protocol == 17 {
                    udp.send_to(&burst_payload(seq), sink)
                } else {
                    raw.send_to(&burst_tcp_packet(seq), &sink.into())
                };
                if seq % BURST == BURST - 1 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        let got = receiver.join().unwrap();
        let writes = gateway_tun_writes(&p.gateway_ns) - writes_before;

        let mut last = None;
        let mut arrived = 0u64;
        for packet in got.iter().filter(|p| p.len() > 40 && p[9] == protocol) {
            let transport = &packet[20..];
            assert_eq!(
                internet_checksum::checksum(&packet[..20]),
                [0, 0],
                "IPv4 header checksum"
            );
            assert_eq!(
                transport_checksum(protocol, transport),
                [0, 0],
                "protocol {protocol} checksum: {packet:02x?}"
            );
            let (seq, expected) = if protocol == 17 {
                let seq = u32::from_be_bytes(transport[8..12].try_into().unwrap());
                (seq, burst_payload(seq))
            } else {
                let seq = u32::from_be_bytes(transport[4..8].try_into().unwrap()) / 1200;
                (seq, burst_tcp_segment(seq))
            };
            let body = if protocol == 17 {
                &transport[8..]
            } else {
                transport
            };
            assert!(
                seq < COUNT,
                "protocol {protocol}: packet {seq} was never sent"
            );
            assert!(
                *body == expected,
                "protocol {protocol}: packet {seq} altered"
            );
            assert!(
                last < Some(seq),
                "protocol {protocol}: packet {seq} after {last:?}"
            );
            last = Some(seq);
            arrived += 1;
        }
        println!(
            "protocol {protocol}: {arrived} of {COUNT} packets arrived in {writes} TUN writes"
        );
        assert!(
            arrived >= u64::from(COUNT) * 9 / 10,
            "protocol {protocol}: {arrived} of {COUNT} arrived"
        );
        assert!(
            writes < arrived / 2,
            "protocol {protocol}: {writes} TUN writes for {arrived} packets: not written as super-packets"
        );
    }
}

/// FNV-1a over a stream: enough to tell a corrupted, truncated or
/// reordered transfer from an intact one.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// A TCP transfer and a ping (an ICMP echo every 10 ms) run through the
/// tunnel while link 0 is silently blackholed and restored and link 1
/// loses carrier: the data arrives intact and in order, and the echoes come
/// back unaltered and (all but 1 %) complete.
/// Packets the kernel dropped at the client's TUN device because the
/// daemon did not read them in time.
fn client_tun_drops(client_ns: &Netns) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["-n", &client_ns.name, "-j", "-s", "link", "show", "cnd-tun"])
        .output()
        .unwrap();
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    links[0]["stats64"]["tx"]["dropped"].as_u64().unwrap()
}

/// Offered far more than the tunnel carries, the client reads its TUN
/// device only while its send queue has room: the kernel drops the excess
/// at the device, and the engine's queue never overflows (no packet is read
/// and copied only to be dropped), while the tunnel keeps carrying.
#[test]
fn overload_is_shed_at_the_tun_device_not_in_the_send_queue() {
    if !require_netns() {
        return;
    }
    let p = pair("flood");
    let drops_before = client_tun_drops(&p.client_ns);
    let sent = p.client_ns.run(|| {
        let udp = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let to = SocketAddr::from((GATEWAY_TUNNEL, 9));
        let payload = [0u8; 1200];
        let end = Instant::now() + Duration::from_secs(1);
        let mut sent = 0u64;
        while Instant::now() < end {
            for _ in 0..64 {
                sent += u64::from(udp.send_to(&payload, to).is_ok());
            }
        }
        sent
    });
    let shed = client_tun_drops(&p.client_ns) - drops_before;
    let report = p.client.status().unwrap();
    let session = &report.sessions[0];
    let overflowed = session.dropped.get("queue_full").copied().unwrap_or(0);
    assert!(
        shed > 0,
        "{sent} packets offered in 1 s did not overload the tunnel ({} carried)",
        session.tunnel.packets_sent
    );
    assert_eq!(
        overflowed, 0,
        "the send queue overflowed {overflowed} times: packets were read and dropped"
    );
    assert!(
        session.tunnel.packets_sent > 10_000,
        "the tunnel carried only {} of {sent} packets",
        session.tunnel.packets_sent
    );
}

#[test]
fn tcp_transfer_survives_link_failures() {
    if !require_netns() {
        return;
    }
    // 50 MB as CI runs it (release). Unoptimised builds encrypt ~20x more
    // slowly, so the development loop moves 10 MB to stay within seconds.
    const TOTAL: usize = if cfg!(debug_assertions) {
        10 << 20
    } else {
        50 << 20
    };
    let p = pair("tcp");
    let pinger = Pinger::start(&p.client_ns, GATEWAY_TUNNEL);
    let server_addr = SocketAddr::from((GATEWAY_TUNNEL, 5001));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = p.gateway_ns.spawn(move || {
        let listener = TcpListener::bind(server_addr).unwrap();
        ready_tx.send(()).unwrap();
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut hash = Fnv::new();
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hash.update(&buf[..n]);
                    total += n;
                }
                Err(e) => panic!("server read after {total} bytes: {e}"),
            }
        }
        (total, hash.0)
    });
    ready_rx.recv().unwrap();

    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent_so_far = progress.clone();
    let sender = p.client_ns.spawn(move || {
        let mut stream = TcpStream::connect_timeout(&server_addr, Duration::from_secs(5)).unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut hash = Fnv::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = vec![0u8; 1 << 16];
        let start = Instant::now();
        let mut sent = 0;
        while sent < TOTAL {
            let n = buf.len().min(TOTAL - sent);
            fill(&mut buf[..n], &mut state);
            stream.write_all(&buf[..n]).unwrap();
            hash.update(&buf[..n]);
            sent += n;
            sent_so_far.store(sent, std::sync::atomic::Ordering::Relaxed);
        }
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        (hash.0, start.elapsed())
    });

    let wait_for = |bytes: usize| {
        let start = Instant::now();
        while progress.load(std::sync::atomic::Ordering::Relaxed) < bytes {
            assert!(
                start.elapsed() < Duration::from_secs(25),
                "transfer stalled"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // Silent blackhole of link 0: the gateway's address on it disappears,
    // so datagrams vanish both ways while the client's interface stays up.
    wait_for(TOTAL / 5);
    p.gateway_ns
        .ip(&["addr", "del", "198.18.0.1/24", "dev", "gl0"]);
    let report = p
        .client
        .wait("link 0 judged down", Duration::from_secs(5), |r| {
            r.sessions[0].links[0].state != "up"
        });
    assert_eq!(
        report.sessions[0].links[0].interface, "up",
        "the blackhole is silent"
    );
    std::thread::sleep(Duration::from_millis(300));
    p.gateway_ns
        .ip(&["addr", "add", "198.18.0.1/24", "dev", "gl0"]);
    // Carrier loss on link 1. The kernel tells the client within a second
    // (linkwatch batches carrier changes of a device whose ifindex equals
    // its peer's, as here and on physical NICs); the link's silence
    // usually gives it away first. Link 0 may still be probing after its
    // restore, so for a moment no link is up: what both swallowed is resent
    // when the first returns.
    wait_for(TOTAL / 2);
    p.gateway_ns.ip(&["link", "set", "gl1", "down"]);
    p.client
        .wait("link 1 interface down", Duration::from_secs(5), |r| {
            r.sessions[0].links[1].interface == "down"
        });
    std::thread::sleep(Duration::from_millis(300));
    p.gateway_ns.ip(&["link", "set", "gl1", "up"]);

    let (sent_hash, elapsed) = sender.join().expect("sender");
    let (received, received_hash) = server.join().expect("server");
    let ping = pinger.stop();
    assert_eq!(received, TOTAL);
    assert_eq!(received_hash, sent_hash, "data arrived intact and in order");
    eprintln!(
        "{} MB through the tunnel in {:.2} s ({:.1} Mbit/s) with two link failures",
        TOTAL >> 20,
        elapsed.as_secs_f64(),
        TOTAL as f64 * 8.0 / elapsed.as_secs_f64() / 1e6
    );
    eprintln!(
        "ping: {} sent, {} replied, {} lost, max RTT {:.1} ms",
        ping.sent,
        ping.replied,
        ping.lost(),
        ping.max_rtt.as_secs_f64() * 1e3
    );
    assert_eq!(ping.corrupted, 0, "no reply corrupted: {ping:?}");
    assert!(ping.replied > 0, "the gateway answers: {ping:?}");
    // Circus resends what a dying link swallows, and while no link is up
    // the client reads its TUN device on, so its fair queue keeps the echo
    // requests (dropping bulk packets for room) where the kernel would drop
    // them at the full device (before: up to 11 of 183 lost in 3 runs of 6;
    // after: none in 14). 1 % leaves room for a stall of the host.
    assert!(ping.lost() * 100 <= ping.sent, "ping loss: {ping:?}");
    let report = p
        .client
        .wait("both links back up", Duration::from_secs(10), |r| {
            links_up(r) == 2
        });
    assert_eq!(report.sessions[0].handshakes, 1, "one session throughout");
}

#[test]
fn address_change_keeps_the_session() {
    if !require_netns() {
        return;
    }
    let p = pair("addr");
    udp_echo(&p.gateway_ns, echo_addr());
    let before = echo_stream(&p.client_ns, echo_addr(), 100, 500, 100);
    assert_eq!(before.received, before.sent);

    // Only link 0 remains, and its address changes (a DHCP renewal with a
    // new lease, a roaming wifi client).
    p.client_ns.ip(&["link", "set", "cl1", "down"]);
    p.client_ns
        .ip(&["addr", "del", "198.18.0.2/24", "dev", "cl0"]);
    p.client_ns
        .ip(&["addr", "add", "198.18.0.3/24", "dev", "cl0"]);
    let after = echo_stream(&p.client_ns, echo_addr(), 300, 500, 100);
    // The first packets after the change may be lost while the new
    // address is noticed; most of the stream must come back.
    assert!(after.received >= 250, "{after:?}");

    let gateway = p.gateway.wait(
        "the gateway follows the new address",
        Duration::from_secs(5),
        |r| {
            r.sessions[0]
                .links
                .iter()
                .any(|l| l.endpoint.starts_with("198.18.0.3:"))
        },
    );
    assert_eq!(
        gateway.sessions[0].handshakes, 1,
        "no new handshake: {gateway:?}"
    );
    let client = p.client.status().unwrap();
    assert_eq!(client.sessions[0].handshakes, 1);
    let late = echo_stream(&p.client_ns, echo_addr(), 100, 500, 100);
    assert_eq!(
        late.received, late.sent,
        "steady after the change: {late:?}"
    );
}

#[test]
fn interface_removed_and_recreated() {
    if !require_netns() {
        return;
    }
    let p = pair("hotp");
    udp_echo(&p.gateway_ns, echo_addr());
    // A USB modem unplugged: the interface (and its peer) disappear.
    p.client_ns.ip(&["link", "del", "cl1"]);
    p.client.wait("link 1 gone", Duration::from_secs(5), |r| {
        r.sessions[0].links[1].interface == "absent"
    });
    // The gateway learns it only from silence, as for a dead link.
    p.gateway.wait(
        "the gateway stops using link 1",
        Duration::from_secs(5),
        |r| {
            r.sessions[0]
                .links
                .iter()
                .all(|l| l.id != 1 || l.state != "up")
        },
    );
    let alone = echo_stream(&p.client_ns, echo_addr(), 200, 500, 100);
    assert_eq!(
        alone.received, alone.sent,
        "link 0 carries everything: {alone:?}"
    );

    // Plugged in again: a new interface under the old name.
    veth(&p.client_ns, "cl1", &p.gateway_ns, "gl1", 1);
    p.client
        .wait("link 1 back up", Duration::from_secs(10), |r| {
            r.sessions[0].links[1].state == "up"
        });
    let both = echo_stream(&p.client_ns, echo_addr(), 200, 500, 100);
    assert_eq!(both.received, both.sent, "{both:?}");
    let report = p.client.status().unwrap();
    assert_eq!(
        report.sessions[0].handshakes, 1,
        "the session lived through it"
    );
    assert!(report.sessions[0].links[1].traffic.packets_received > 0);
}

/// A daemon that cannot start says why, instead of the wait timing out.
#[test]
fn a_daemon_that_fails_to_start_says_why() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("nostart");
    let id = ClientIdentity::new(2);
    let mut config = client_config(&id, id.public, &[]);
    // Under a file, so the status socket cannot be made.
    config.observe.status_socket = Some("/dev/null/circus.sock".into());
    let daemon = Daemon::client(config, in_netns(&ns)).unwrap();
    let error = daemon
        .wait_until("status", Duration::from_secs(10), |_| true)
        .unwrap_err();
    assert!(
        matches!(&error, EmbedError::Exited { outcome, .. } if outcome.contains("status socket")),
        "{error}"
    );
}
