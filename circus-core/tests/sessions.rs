//! Session life cycle on virtual time: handshake success and refusal,
//! unauthenticated input, several clients on one gateway, a client link's
//! address changing, rekeying, and a client restart.

mod harness;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use circus_core::LinkId;
use circus_core::crypto::{Psk, PublicKey, StaticSecret};
use circus_core::engine::{Config, Gateway, PeerConfig};
use circus_core::wire::HANDSHAKE_INIT_LEN;
use harness::{ClientSpec, LinkSpec, SERVER_ADDR, Sim, keypair, test_packet};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn links() -> [LinkSpec; 2] {
    [LinkSpec::rtt_ms(20), LinkSpec::rtt_ms(40)]
}

#[test]
fn handshake_connects_and_carries_traffic_both_ways() {
    let mut sim = Sim::new(Config::default(), vec![ClientSpec::new(1, &links())]);
    let up = sim.add_flow(0, true, 100, 300, secs(1.0), secs(3.0));
    let down = sim.add_flow(0, false, 100, 300, secs(1.0), secs(3.0));
    sim.run_until(secs(4.0));
    assert!(sim.clients[0].engine.is_connected());
    assert!(sim.gateway.has_session(&sim.clients[0].public));
    for flow in [up, down] {
        let r = sim.report(flow, secs(1.0), secs(3.0));
        assert_eq!(
            (r.sent, r.delivered, r.duplicates, r.out_of_order),
            (200, 200, 0, 0),
            "{r:?}"
        );
    }
    assert_eq!(sim.clients[0].engine.stats().totals.handshakes, 1);
}

#[test]
fn wrong_psk_makes_no_session() {
    let mut spec = ClientSpec::new(1, &links());
    spec.psk = Psk::from_bytes([0xee; 32]);
    let mut sim = Sim::new(Config::default(), vec![spec]);
    let flow = sim.add_flow(0, true, 100, 300, secs(0.5), secs(3.0));
    sim.run_until(secs(4.0));
    assert!(!sim.clients[0].engine.is_connected());
    assert_eq!(sim.gateway.session_count(), 0);
    assert!(sim.gateway.stats().sessions.is_empty());
    assert_eq!(sim.report(flow, secs(0.0), secs(4.0)).delivered, 0);
    // The gateway cannot tell a wrong psk from message 1, so it answered, but
    // the client refused every answer and nothing was confirmed.
    assert!(sim.gateway.stats().counters.handshakes_answered >= 3);
}

#[test]
fn unknown_key_gets_no_reply_and_no_session() {
    let mut spec = ClientSpec::new(1, &links());
    spec.known = false;
    let mut sim = Sim::new(Config::default(), vec![spec]);
    sim.run_until(secs(3.0));
    assert!(!sim.clients[0].engine.is_connected());
    assert_eq!(sim.gateway.session_count(), 0);
    let counters = sim.gateway.stats().counters;
    assert_eq!(counters.handshakes_answered, 0);
    assert!(counters.handshakes_refused >= 3, "{counters:?}");
    // Nothing came back to the client at all.
    assert_eq!(sim.clients[0].engine.stats().totals.rejected, 0);
    assert_eq!(
        sim.clients[0]
            .engine
            .stats()
            .links
            .iter()
            .map(|l| l.counters.packets_received)
            .sum::<u64>(),
        0
    );
}

/// A gateway that knows one client (keys 1 and 200, tunnel address
/// 100.64.0.2), for tests that speak to it packet by packet.
struct OneClientGateway {
    client_secret: StaticSecret,
    gw_public: PublicKey,
    psk: Psk,
    now: Instant,
    gateway: Gateway,
}

fn one_client_gateway() -> OneClientGateway {
    let (client_secret, client_public) = keypair(1);
    let (gw_secret, gw_public) = keypair(200);
    let psk = Psk::from_bytes([7; 32]);
    let peers = vec![PeerConfig {
        public: client_public,
        psk: psk.clone(),
        tunnel_addrs: vec!["100.64.0.2".parse().expect("prefix")],
    }];
    OneClientGateway {
        client_secret,
        gw_public,
        psk,
        now: Instant::now(),
        gateway: Gateway::new(Config::default(), gw_secret, peers).expect("config"),
    }
}

/// The client that [`one_client_gateway`] knows, created at `now`.
fn its_client(
    client_secret: StaticSecret,
    gw_public: PublicKey,
    psk: Psk,
    now: Instant,
) -> circus_core::engine::Client {
    circus_core::engine::Client::new(
        Config::default(),
        client_secret,
        gw_public,
        psk,
        vec!["100.64.0.2/32".parse().expect("prefix")],
        now,
        1_000_000_000,
    )
}

/// Garbage, truncated and replayed handshakes get no reply and leave no
/// state; a valid init gets a reply smaller than itself.
#[test]
fn unauthenticated_input_gets_no_reply_larger_than_itself() {
    let OneClientGateway {
        client_secret,
        gw_public,
        psk,
        now,
        mut gateway,
    } = one_client_gateway();
    let from: SocketAddr = "198.18.1.2:40000".parse().expect("addr");
    let mut out = vec![0u8; 2048];

    let mut inputs: Vec<Vec<u8>> = vec![vec![], vec![1], vec![1, 3], vec![1, 1], vec![9; 200]];
    let mut x = 0x1234_5678_u64;
    for len in [14usize, 30, 114, 500, 1400] {
        let v = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<_>>();
        inputs.push(v.clone());
        let mut transport = v;
        transport[0] = 1;
        if transport.len() > 1 {
            transport[1] = 3;
        }
        inputs.push(transport);
        let mut init = vec![0u8; HANDSHAKE_INIT_LEN];
        init[0] = 1;
        init[1] = 1;
        inputs.push(init);
    }
    for input in &inputs {
        gateway.handle_datagram(now, from, input);
        assert_eq!(
            gateway.poll_transmit(now, &mut out),
            None,
            "no reply to {input:?}"
        );
    }
    assert_eq!(gateway.session_count(), 0);

    // A genuine init from the client gets one reply, smaller than the init.
    let mut client = its_client(client_secret, gw_public, psk, now);
    client.link_add(now, LinkId(0));
    let t = client
        .poll_transmit(now, &mut out)
        .expect("client sends an init");
    let init = out[..t.len].to_vec();
    gateway.handle_datagram(now, from, &init);
    let reply = gateway
        .poll_transmit(now, &mut out)
        .expect("a reply to a valid init");
    assert!(
        reply.len < init.len(),
        "reply {} < init {}",
        reply.len,
        init.len()
    );
    assert_eq!(reply.to, from);
    assert_eq!(gateway.poll_transmit(now, &mut out), None);
    // The same init again is a replay: no reply.
    gateway.handle_datagram(now, from, &init);
    assert_eq!(gateway.poll_transmit(now, &mut out), None);
    // Still no session until the client uses the keys.
    assert_eq!(gateway.session_count(), 0);
}

/// A flood of inits with a valid mac1 from spoofed sources puts the gateway
/// under load: the flood gets no reply until then and cookie replies (smaller
/// than the init) after; a real client answers its cookie reply at once and
/// connects without waiting for a retry.
#[test]
fn under_a_flood_a_client_connects_with_one_cookie_round_trip() {
    use circus_core::crypto::MacKeys;
    use circus_core::wire::{COOKIE_REPLY_LEN, HandshakeInit, MAC_LEN, NOISE_INIT_LEN, Packet};

    let OneClientGateway {
        client_secret,
        gw_public,
        psk,
        now,
        mut gateway,
    } = one_client_gateway();
    let mut out = vec![0u8; 2048];

    // The attacker knows the gateway's public key, so its inits pass mac1.
    let noise = [0x42u8; NOISE_INIT_LEN];
    let mut flood = HandshakeInit {
        sender_index: 1,
        noise: &noise,
        mac1: [0; MAC_LEN],
        mac2: [0; MAC_LEN],
    };
    flood.mac1 = MacKeys::for_receiver(&gw_public).init_mac1(&flood);
    let mut flood_bytes = [0u8; HANDSHAKE_INIT_LEN];
    flood.emit(&mut flood_bytes).expect("emit");
    let mut replies = 0;
    for i in 0..1000u32 {
        let spoofed = SocketAddr::from((i.to_be_bytes(), 1234));
        gateway.handle_datagram(now, spoofed, &flood_bytes);
        while let Some(t) = gateway.poll_transmit(now, &mut out) {
            assert_eq!(t.len, COOKIE_REPLY_LEN, "only cookie replies");
            assert!(t.len < HANDSHAKE_INIT_LEN);
            assert_eq!(t.to, spoofed);
            replies += 1;
        }
        if i < 400 {
            assert_eq!(replies, 0, "no reply before the gateway is under load");
        }
    }
    assert_eq!(replies, 600);
    let counters = gateway.stats().counters;
    assert_eq!(counters.cookie_replies, 600);
    assert_eq!(counters.handshakes_answered, 0);

    // The real client, 10 ms into the flood.
    let now = now + Duration::from_millis(10);
    let from: SocketAddr = "198.18.1.2:40000".parse().expect("addr");
    let mut client = its_client(client_secret, gw_public, psk, now);
    client.link_add(now, LinkId(0));
    let mut exchange = |client: &mut circus_core::engine::Client, gateway: &mut Gateway| {
        let t = client
            .poll_transmit(now, &mut out)
            .expect("client sends an init");
        assert_eq!(t.len, HANDSHAKE_INIT_LEN);
        let init = out[..t.len].to_vec();
        gateway.handle_datagram(now, from, &init);
        let reply = gateway.poll_transmit(now, &mut out).expect("a reply");
        assert_eq!(reply.to, from);
        assert!(reply.len < init.len());
        client.handle_datagram(now, LinkId(0), &out[..reply.len]);
        Packet::parse(&out[..reply.len]).map(|p| matches!(p, Packet::CookieReply(_)))
    };
    assert_eq!(
        exchange(&mut client, &mut gateway),
        Ok(true),
        "a cookie first"
    );
    assert!(!client.is_connected());
    // No time passes: the init goes out again at once, with mac2.
    assert_eq!(
        exchange(&mut client, &mut gateway),
        Ok(false),
        "then the response"
    );
    assert!(client.is_connected());
    assert_eq!(gateway.stats().counters.handshakes_answered, 1);
}

#[test]
fn gateway_serves_two_clients_and_routes_v4_and_v6() {
    let mut sim = Sim::new(
        Config::default(),
        vec![ClientSpec::new(1, &links()), ClientSpec::new(2, &links())],
    );
    let a = sim.add_flow(0, false, 100, 300, secs(1.0), secs(3.0));
    let b = sim.add_flow(1, false, 100, 300, secs(1.0), secs(3.0));
    let a_up = sim.add_flow(0, true, 100, 300, secs(1.0), secs(3.0));
    sim.run_until(secs(3.5));
    assert_eq!(sim.gateway.session_count(), 2);
    for (flow, name) in [
        (a, "to client 0"),
        (b, "to client 1"),
        (a_up, "from client 0"),
    ] {
        let r = sim.report(flow, secs(1.0), secs(3.0));
        assert_eq!((r.sent, r.delivered), (200, 200), "{name}: {r:?}");
    }
    // Each client got only its own flow.
    let flows_at = |c: usize| {
        sim.clients[c]
            .delivered
            .iter()
            .filter_map(|(_, p)| harness::parse_test_packet(p).map(|x| x.0))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(flows_at(0), [a].into());
    assert_eq!(flows_at(1), [b].into());

    // IPv6: a packet to client 1's fd00::3 reaches client 1 only.
    let mut v6 = vec![0u8; 60];
    v6[0] = 0x60;
    v6[4..6].copy_from_slice(&20u16.to_be_bytes());
    v6[24..40].copy_from_slice(
        &"fd00::3"
            .parse::<std::net::Ipv6Addr>()
            .expect("v6")
            .octets(),
    );
    v6[59] = 0xab;
    let now = sim.now;
    sim.gateway.handle_tun_packet(now, &v6);
    // And one to nobody is dropped and counted.
    let stray = test_packet(SERVER_ADDR, "100.64.9.9".parse().expect("v4"), 9, 0, 100);
    sim.gateway.handle_tun_packet(now, &stray);
    sim.run_for(secs(0.5));
    assert_eq!(
        sim.clients[1].delivered.last().map(|(_, p)| p.clone()),
        Some(v6.clone())
    );
    assert!(!sim.clients[0].delivered.iter().any(|(_, p)| *p == v6));
    assert_eq!(sim.gateway.stats().counters.unroutable, 1);
}

#[test]
fn link_address_change_keeps_the_session() {
    let mut sim = Sim::new(
        Config::default(),
        vec![ClientSpec::new(1, &[LinkSpec::rtt_ms(20)])],
    );
    let down = sim.add_flow(0, false, 200, 300, secs(1.0), secs(6.0));
    sim.run_until(secs(3.0));
    let old = sim.clients[0].links[0].addr;
    let new: SocketAddr = SocketAddr::new(IpAddr::from([198, 18, 77, 9]), 41000);
    sim.clients[0].links[0].addr = new;
    sim.run_until(secs(7.0));
    let stats = sim.gateway.stats();
    let (_, session) = &stats.sessions[0];
    assert_eq!(
        session.link(LinkId(0)).and_then(|l| l.remote),
        Some(new),
        "gateway follows the new address"
    );
    assert_ne!(old, new);
    assert_eq!(session.totals.handshakes, 1, "no new handshake was needed");
    assert_eq!(sim.clients[0].engine.stats().totals.handshakes, 1);
    // Replies resumed at the new address: everything sent after the client's
    // next packet (within a probe interval) arrives.
    let r = sim.report(down, secs(3.5), secs(6.0));
    assert_eq!(r.delivered, r.sent, "{r:?}");
    assert!(
        sim.unroutable > 0,
        "some replies went to the old address first"
    );
}

#[test]
fn rekey_keeps_traffic_flowing() {
    let config = Config {
        rekey_after: secs(2.0),
        previous_keys_for: secs(1.0),
        ..Config::default()
    };
    let mut sim = Sim::new(config, vec![ClientSpec::new(1, &links())]);
    let up = sim.add_flow(0, true, 500, 300, secs(1.0), secs(9.0));
    let down = sim.add_flow(0, false, 500, 300, secs(1.0), secs(9.0));
    sim.run_until(secs(10.0));
    let handshakes = sim.clients[0].engine.stats().totals.handshakes;
    assert!(
        handshakes >= 4,
        "rekeyed every 2 s: {handshakes} handshakes"
    );
    let gw = sim.gateway.stats();
    assert_eq!(
        gw.sessions[0].1.totals.handshakes, handshakes,
        "gateway confirmed every rekey"
    );
    for flow in [up, down] {
        let r = sim.report(flow, secs(2.0), secs(9.0));
        assert_eq!(r.lost, Vec::<u64>::new(), "{r:?}");
        assert_eq!((r.duplicates, r.out_of_order), (0, 0));
    }
}

#[test]
fn restarted_client_gets_a_fresh_session() {
    let mut sim = Sim::new(Config::default(), vec![ClientSpec::new(1, &links())]);
    let first = sim.add_flow(0, true, 200, 300, secs(1.0), secs(3.0));
    sim.run_until(secs(3.5));
    assert_eq!(sim.report(first, secs(1.0), secs(3.0)).lost.len(), 0);
    // Same keys, new process: sequence numbers start over.
    sim.restart_client(0);
    let second = sim.add_flow(0, true, 200, 300, secs(4.0), secs(6.0));
    sim.run_until(secs(6.5));
    let r = sim.report(second, secs(4.5), secs(6.0));
    assert_eq!(r.lost, Vec::<u64>::new(), "{r:?}");
    assert_eq!(sim.gateway.session_count(), 1);
}

#[test]
fn a_closing_client_frees_its_gateway_session_at_once() {
    let mut sim = Sim::new(Config::default(), vec![ClientSpec::new(1, &links())]);
    sim.add_flow(0, true, 200, 300, secs(1.0), secs(3.0));
    sim.run_until(secs(2.0));
    assert_eq!(sim.gateway.session_count(), 1);
    sim.clients[0].engine.close();
    // One Close per link; the 20 ms link delivers it within 10 ms.
    sim.run_until(secs(2.015));
    assert_eq!(
        sim.gateway.session_count(),
        0,
        "the Close freed the session"
    );
    // The closed client sends nothing more and wants no timer, though its
    // flow keeps offering packets.
    sim.run_until(secs(2.5));
    assert_eq!(sim.gateway.session_count(), 0);
    let mut buf = vec![0u8; 2048];
    let now = sim.now;
    assert!(sim.clients[0].engine.poll_transmit(now, &mut buf).is_none());
    assert_eq!(sim.clients[0].engine.poll_timeout(), None);
}

/// Time from `from` to the first packet delivered after it, in `log`.
fn first_delivery_after(log: &[(Instant, Vec<u8>)], from: Instant) -> Option<Duration> {
    log.iter().find(|(t, _)| *t >= from).map(|(t, _)| *t - from)
}

#[test]
fn a_restarted_gateway_is_back_in_service_within_a_second() {
    let mut sim = Sim::new(Config::default(), vec![ClientSpec::new(1, &links())]);
    let up = sim.add_flow(0, true, 100, 300, secs(0.5), secs(9.0));
    let down = sim.add_flow(0, false, 100, 300, secs(0.5), secs(9.0));
    sim.run_until(secs(2.0));
    // The process dies (its sessions with it) and is back 3 s later.
    sim.restart_gateway();
    sim.gateway_down = true;
    let inits_before = sim.clients[0].inits_sent;
    sim.run_until(secs(5.0));
    assert!(
        !sim.clients[0].engine.is_connected(),
        "the silence of every link was noticed"
    );
    // Short backoff, then one init per link per second: 4 + 3 rounds.
    let inits = sim.clients[0].inits_sent - inits_before;
    assert!((8..=2 * 8).contains(&inits), "{inits} inits while away");
    sim.gateway_down = false;
    let back = sim.now;
    sim.run_until(secs(9.0));

    assert!(sim.clients[0].engine.is_connected());
    assert!(sim.gateway.has_session(&sim.clients[0].public));
    let up_after = first_delivery_after(&sim.gateway_delivered, back).expect("upstream resumed");
    let down_after =
        first_delivery_after(&sim.clients[0].delivered, back).expect("downstream resumed");
    eprintln!("traffic resumed {up_after:?} (up) {down_after:?} (down) after the return");
    assert!(
        up_after.max(down_after) < secs(1.2),
        "{up_after:?} {down_after:?}"
    );
    for flow in [up, down] {
        let r = sim.report(flow, secs(6.5), secs(9.0));
        assert_eq!(r.lost, Vec::<u64>::new(), "{r:?}");
    }
}

#[test]
fn silence_with_the_gateway_alive_keeps_the_session() {
    let mut sim = Sim::new(Config::default(), vec![ClientSpec::new(1, &links())]);
    let up = sim.add_flow(0, true, 100, 300, secs(0.5), secs(7.0));
    sim.run_until(secs(2.0));
    let inits_before = sim.clients[0].inits_sent;
    for link in &mut sim.clients[0].links {
        link.blackholed = true;
    }
    sim.run_until(secs(4.0));
    assert!(sim.clients[0].inits_sent > inits_before, "recovery tried");
    for link in &mut sim.clients[0].links {
        link.blackholed = false;
    }
    sim.run_until(secs(7.0));
    // The gateway's probes of the old session came through before any
    // answer to an init: the client dropped its fresh handshake, and the
    // data plane (sequence numbers, what waits to be resent) went on.
    assert!(sim.clients[0].engine.is_connected());
    assert_eq!(sim.clients[0].engine.stats().totals.handshakes, 1);
    assert_eq!(sim.gateway.stats().sessions[0].1.totals.handshakes, 1);
    let r = sim.report(up, secs(4.5), secs(7.0));
    assert_eq!(r.lost, Vec::<u64>::new(), "{r:?}");
}

/// A session whose client falls silent is forgotten `idle_timeout` after
/// its last packet, not before, by the gateway's timers alone.
#[test]
fn silent_client_is_forgotten_after_idle_timeout() {
    let config = Config {
        idle_timeout: secs(5.0),
        ..Config::default()
    };
    let mut sim = Sim::new(config, vec![ClientSpec::new(1, &links())]);
    sim.run_until(secs(1.0));
    assert_eq!(sim.gateway.session_count(), 1);
    for link in &mut sim.clients[0].links {
        link.blackholed = true;
    }
    sim.run_until(secs(5.5));
    assert_eq!(sim.gateway.session_count(), 1, "still within idle_timeout");
    sim.run_until(secs(6.5));
    assert_eq!(sim.gateway.session_count(), 0);
    assert!(!sim.gateway.has_session(&sim.clients[0].public));
    assert!(sim.gateway.stats().sessions.is_empty());
}

/// A connecting client whose inits are lost (a gateway not yet up, or one
/// whose socket overflows under a flood) retries after 100 ms, doubling up
/// to `handshake_retry`: a lost init costs a tenth of a second, not one.
#[test]
fn unanswered_inits_are_retried_after_100_ms_doubling_to_handshake_retry() {
    let OneClientGateway {
        client_secret,
        gw_public,
        psk,
        now: start,
        ..
    } = one_client_gateway();
    let cap = Config::default().handshake_retry;
    let mut client = its_client(client_secret, gw_public, psk, start);
    client.link_add(start, LinkId(0));
    let mut out = vec![0u8; 2048];
    let mut sent_at = Vec::new();
    let mut now = start;
    while now < start + secs(4.0) {
        client.handle_timeout(now);
        while let Some(t) = client.poll_transmit(now, &mut out) {
            if t.len == HANDSHAKE_INIT_LEN {
                sent_at.push(now - start);
            }
        }
        now = client
            .poll_timeout()
            .map_or(now + secs(0.01), |t| t.max(now + secs(0.001)));
    }
    let gaps: Vec<Duration> = sent_at.windows(2).map(|w| w[1] - w[0]).collect();
    let expected: Vec<Duration> = [0.1, 0.2, 0.4, 0.8]
        .into_iter()
        .map(secs)
        .chain(std::iter::repeat(cap))
        .take(gaps.len())
        .collect();
    assert!(gaps.len() >= 5, "{sent_at:?}");
    for (gap, want) in gaps.iter().zip(&expected) {
        assert!(
            gap.abs_diff(*want) <= secs(0.002),
            "gaps {gaps:?}, want {expected:?}"
        );
    }
}
