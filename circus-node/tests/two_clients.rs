//! Two clients share one gateway: each reaches the gateway, and each other
//! through it, by tunnel address; and neither can pose as the other.

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Two connected clients, two links each, and their gateway.
struct TwoClients {
    // Daemons first: they stop before their namespaces go. The clients are
    // only held, to keep running.
    _first_daemon: Daemon,
    _second_daemon: Daemon,
    gateway: Daemon,
    first: ClientIdentity,
    second: ClientIdentity,
    first_ns: Netns,
    second_ns: Netns,
    gateway_ns: Netns,
}

impl TwoClients {
    fn start() -> TwoClients {
        let first_ns = Netns::new("2c1");
        let second_ns = Netns::new("2c2");
        let gateway_ns = Netns::new("2cg");
        veth(&first_ns, "cl0", &gateway_ns, "ga0", 0);
        veth(&first_ns, "cl1", &gateway_ns, "ga1", 1);
        veth(&second_ns, "cl0", &gateway_ns, "gb0", 2);
        veth(&second_ns, "cl1", &gateway_ns, "gb1", 3);
        // Client-to-client packets leave the gateway's TUN and come back in.
        gateway_ns.sysctl("net.ipv4.ip_forward=1");
        // No IPv6 on the clients' TUN devices: the kernel's router
        // solicitations from link-local addresses would be dropped by the
        // gateway as not the client's, and blur the counts.
        for ns in [&first_ns, &second_ns] {
            ns.sysctl("net.ipv6.conf.default.disable_ipv6=1");
        }

        let (gateway_secret, gateway_public) = circus_core::crypto::generate_keypair().unwrap();
        let first = ClientIdentity::new(2);
        let second = ClientIdentity::new(3);
        let gateway = start_gateway(
            &gateway_ns,
            gateway_config(&gateway_secret, &[&first, &second]),
        );
        let first_daemon = start_client(
            &first_ns,
            client_config(&first, gateway_public, &[("cl0", 0), ("cl1", 1)]),
        );
        let second_daemon = start_client(
            &second_ns,
            client_config(&second, gateway_public, &[("cl0", 2), ("cl1", 3)]),
        );
        first_daemon.wait_connected();
        second_daemon.wait_connected();
        let report = gateway.wait_connected();
        assert_eq!(report.sessions.len(), 2);
        TwoClients {
            _first_daemon: first_daemon,
            _second_daemon: second_daemon,
            gateway,
            first,
            second,
            first_ns,
            second_ns,
            gateway_ns,
        }
    }
}

#[test]
fn two_clients_share_one_gateway() {
    if !require_netns() {
        return;
    }
    let net = TwoClients::start();
    let to_gateway = SocketAddr::from((GATEWAY_TUNNEL, 7));
    udp_echo(&net.gateway_ns, to_gateway);
    let to_second = SocketAddr::from((net.second.tunnel, 7));
    udp_echo(&net.second_ns, to_second);

    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| echo_stream(&net.first_ns, to_gateway, 300, 300, 200));
        let b = s.spawn(|| echo_stream(&net.second_ns, to_gateway, 300, 300, 200));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a.received, a.sent, "first client: {a:?}");
    assert_eq!(b.received, b.sent, "second client: {b:?}");

    let across = echo_stream(&net.first_ns, to_second, 200, 200, 200);
    assert_eq!(across.received, across.sent, "client to client: {across:?}");

    let report = net.gateway.status().unwrap();
    for session in &report.sessions {
        assert!(session.connected, "{session:?}");
        assert_eq!(session.links.len(), 2, "{session:?}");
        assert!(session.tunnel.packets_received >= 300, "{session:?}");
    }
}

/// Datagrams a server on `addr` in `ns` receives within `listen`, and from
/// which sources.
fn count_received(
    ns: &Netns,
    addr: SocketAddr,
    listen: Duration,
) -> impl FnOnce() -> Vec<Ipv4Addr> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = ns.spawn(move || {
        let socket = UdpSocket::bind(addr).expect("bind server");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut sources = Vec::new();
        let mut buf = [0u8; 2048];
        let start = Instant::now();
        while start.elapsed() < listen {
            if let Ok((_, SocketAddr::V4(from))) = socket.recv_from(&mut buf) {
                sources.push(*from.ip());
            }
        }
        sources
    });
    ready_rx.recv().expect("server started");
    move || server.join().expect("server thread")
}

/// Cryptokey routing on the real daemons: the second client adds the first
/// client's tunnel address to its own TUN device and sends from it. The
/// gateway delivers none of it, counts it, and the first client's traffic
/// is unaffected.
#[test]
fn a_client_cannot_send_from_another_clients_address() {
    if !require_netns() {
        return;
    }
    let net = TwoClients::start();
    let stolen = net.first.tunnel;
    net.second_ns
        .ip(&["addr", "add", &format!("{stolen}/32"), "dev", "cnd-tun"]);
    const SPOOFED: u32 = 50;
    let server = SocketAddr::from((GATEWAY_TUNNEL, 9));
    let received = count_received(&net.gateway_ns, server, Duration::from_secs(2));
    let sent = net.second_ns.run(move || {
        let socket = UdpSocket::bind((stolen, 0)).expect("bind the stolen address");
        (0..SPOOFED)
            .filter(|_| {
                std::thread::sleep(Duration::from_millis(10));
                socket.send_to(b"not from me", server).is_ok()
            })
            .count() as u32
    });
    assert_eq!(sent, SPOOFED, "the kernel sent every spoofed datagram");
    let to_gateway = SocketAddr::from((GATEWAY_TUNNEL, 7));
    udp_echo(&net.gateway_ns, to_gateway);
    let honest = echo_stream(&net.first_ns, to_gateway, 200, 200, 200);
    let sources = received();
    assert!(
        sources.is_empty(),
        "spoofed datagrams reached the server from {sources:?}"
    );
    assert_eq!(honest.received, honest.sent, "first client: {honest:?}");

    let report = net.gateway.status().unwrap();
    assert_eq!(
        report.refused["spoofed_source"],
        u64::from(SPOOFED),
        "{report:?}"
    );
    let dropped = |name: &str| {
        let session = report
            .sessions
            .iter()
            .find(|s| s.name == name)
            .expect("session");
        session.dropped["not_allowed"]
    };
    assert_eq!(dropped("client0"), 0);
    assert_eq!(dropped("client1"), u64::from(SPOOFED));
    let metrics = circus_node::prometheus::render(&report);
    let line = format!(
        "circus_refused_datagrams_total{{role=\"gateway\",reason=\"spoofed_source\"}} {SPOOFED}"
    );
    assert!(metrics.contains(&line), "{metrics}");
}
