//! Cryptokey routing on virtual time: a client may send only from its own
//! tunnel addresses, and accepts from the gateway only packets for them
//! (WireGuard's allowed IPs, both ways).

mod harness;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use circus_core::engine::Config;
use harness::{ClientSpec, LinkSpec, SERVER_ADDR, Sim, test_packet, tunnel_addr};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn links() -> [LinkSpec; 2] {
    [LinkSpec::rtt_ms(20), LinkSpec::rtt_ms(40)]
}

/// A minimal IPv6 packet from `src` to `dst`.
fn v6_packet(src: &str, dst: &str) -> Vec<u8> {
    let mut p = vec![0u8; 60];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&20u16.to_be_bytes());
    p[6] = 17;
    p[8..24].copy_from_slice(&src.parse::<Ipv6Addr>().expect("v6").octets());
    p[24..40].copy_from_slice(&dst.parse::<Ipv6Addr>().expect("v6").octets());
    p
}

#[test]
fn gateway_drops_packets_from_another_clients_address() {
    let mut sim = Sim::new(
        Config::default(),
        vec![ClientSpec::new(1, &links()), ClientSpec::new(2, &links())],
    );
    let honest = sim.add_flow(0, true, 100, 300, secs(1.0), secs(3.0));
    sim.run_until(secs(1.0));
    assert_eq!(sim.gateway.session_count(), 2);

    // Client 1 poses as client 0 (v4 and v6), and sends a runt no header
    // fits in; one packet from its own address is the control.
    let server = "fd00::99";
    let spoofed = [
        test_packet(tunnel_addr(0), SERVER_ADDR, 77, 0, 200),
        test_packet(Ipv4Addr::new(100, 64, 99, 1), SERVER_ADDR, 77, 1, 200),
        v6_packet("fd00::2", server),
        vec![0x45; 12],
    ];
    let own = test_packet(tunnel_addr(1), SERVER_ADDR, 78, 0, 200);
    let now = sim.now;
    for p in spoofed.iter().chain([&own]) {
        sim.clients[1].engine.handle_tun_packet(now, p);
    }
    sim.run_until(secs(3.5));

    let delivered = |p: &Vec<u8>| sim.gateway_delivered.iter().any(|(_, d)| d == p);
    for p in &spoofed {
        assert!(!delivered(p), "spoofed packet delivered: {p:?}");
    }
    assert!(delivered(&own), "client 1's own packet is delivered");
    let stats = sim.gateway.stats();
    let totals = |c: usize| {
        let key = sim.clients[c].public;
        stats
            .sessions
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, s)| s.totals)
            .expect("session")
    };
    assert_eq!(totals(1).dropped_not_allowed, spoofed.len() as u64);
    assert_eq!(totals(0).dropped_not_allowed, 0);
    let r = sim.report(honest, secs(1.0), secs(3.0));
    assert_eq!(
        (r.sent, r.delivered),
        (200, 200),
        "client 0 unaffected: {r:?}"
    );
}

#[test]
fn client_drops_packets_for_destinations_it_does_not_own() {
    // The gateway routes 10.20.0.0/16 to client 0; the client does not
    // claim it, so packets for it never reach its TUN.
    let mut spec = ClientSpec::new(1, &links());
    spec.gateway_only_routes = vec!["10.20.0.0/16".parse().expect("prefix")];
    let mut sim = Sim::new(Config::default(), vec![spec]);
    let flow = sim.add_flow(0, false, 100, 300, secs(1.0), secs(2.0));
    sim.run_until(secs(1.0));
    let foreign = [
        test_packet(SERVER_ADDR, Ipv4Addr::new(10, 20, 0, 5), 90, 0, 200),
        test_packet(SERVER_ADDR, Ipv4Addr::new(10, 20, 7, 1), 90, 1, 200),
    ];
    let now = sim.now;
    for p in &foreign {
        sim.gateway.handle_tun_packet(now, p);
    }
    sim.run_until(secs(2.5));

    let client = &sim.clients[0];
    for p in &foreign {
        assert!(!client.delivered.iter().any(|(_, d)| d == p));
    }
    assert_eq!(
        client.engine.stats().totals.dropped_not_allowed,
        foreign.len() as u64
    );
    let r = sim.report(flow, secs(1.0), secs(2.0));
    assert_eq!((r.sent, r.delivered), (100, 100), "own traffic: {r:?}");
}
