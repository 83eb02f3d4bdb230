//! Two clients share one gateway: each reaches the gateway, and each other
//! through it, by tunnel address.

mod common;

use common::*;
use std::net::SocketAddr;

#[test]
fn two_clients_share_one_gateway() {
    if !require_netns() {
        return;
    }
    let first_ns = Netns::new("2c1");
    let second_ns = Netns::new("2c2");
    let gateway_ns = Netns::new("2cg");
    veth(&first_ns, "cl0", &gateway_ns, "ga0", 0);
    veth(&first_ns, "cl1", &gateway_ns, "ga1", 1);
    veth(&second_ns, "cl0", &gateway_ns, "gb0", 2);
    veth(&second_ns, "cl1", &gateway_ns, "gb1", 3);
    // Client-to-client packets leave the gateway's TUN and come back in.
    gateway_ns.sysctl("net.ipv4.ip_forward=1");

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

    let to_gateway = SocketAddr::from((GATEWAY_TUNNEL, 7));
    udp_echo(&gateway_ns, to_gateway);
    let to_second = SocketAddr::from((second.tunnel, 7));
    udp_echo(&second_ns, to_second);

    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| echo_stream(&first_ns, to_gateway, 300, 300, 200));
        let b = s.spawn(|| echo_stream(&second_ns, to_gateway, 300, 300, 200));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a.received, a.sent, "first client: {a:?}");
    assert_eq!(b.received, b.sent, "second client: {b:?}");

    let across = echo_stream(&first_ns, to_second, 200, 200, 200);
    assert_eq!(across.received, across.sent, "client to client: {across:?}");

    let report = gateway.status().unwrap();
    for session in &report.sessions {
        assert!(session.connected, "{session:?}");
        assert_eq!(session.links.len(), 2, "{session:?}");
        assert!(session.tunnel.packets_received >= 300, "{session:?}");
    }
    drop((first_daemon, second_daemon, gateway));
}
