//! MTU that just works: the client's TUN MTU follows its links'
//! interfaces, and TCP handshakes are clamped to the tunnel so a download
//! completes where "fragmentation needed" never reaches the sender.

mod common;

use circus_node::hotplug::interface_mtu;
use circus_node::tun_device::TUNNEL_OVERHEAD;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The client's TUN device in [`client_config`].
const CLIENT_TUN: &str = "cnd-tun";

/// What a link of `mtu` carries over IPv4 (outer IP + UDP header).
fn carries(mtu: u16) -> u16 {
    mtu - 28 - TUNNEL_OVERHEAD
}

fn tun_mtu(ns: &Netns) -> u32 {
    ns.run(|| interface_mtu(CLIENT_TUN).expect("client TUN device"))
}

/// Polls `tun_mtu` until it is `want`, for at most a few rescans.
fn wait_tun_mtu(ns: &Netns, want: u16) {
    let start = Instant::now();
    while tun_mtu(ns) != u32::from(want) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "TUN MTU {} is not {want}",
            tun_mtu(ns)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Long enough for an interface event and the periodic rescan after it.
fn hotplug_settle() -> Duration {
    circus_node::hotplug::RESCAN_INTERVAL + Duration::from_millis(300)
}

#[test]
fn tun_mtu_is_lowered_when_a_link_shrinks_or_a_smaller_one_appears() {
    if !require_netns() {
        return;
    }
    let client_ns = Netns::new("mtuc");
    let gateway_ns = Netns::new("mtug");
    veth(&client_ns, "cl0", &gateway_ns, "gl0", 0);
    let (_, gateway_public) = circus_core::crypto::generate_keypair().unwrap();
    let id = ClientIdentity::new(2);
    // No gateway runs: the MTU follows the interfaces, not the session.
    let _client = start_client(
        &client_ns,
        client_config(&id, gateway_public, &[("cl0", 0), ("cl1", 1)]),
    );
    assert_eq!(tun_mtu(&client_ns), u32::from(carries(1500)));

    client_ns.ip(&["link", "set", "cl0", "mtu", "1400"]);
    wait_tun_mtu(&client_ns, carries(1400));

    // The second link's interface appears, with a smaller MTU.
    veth(&client_ns, "cl1", &gateway_ns, "gl1", 1);
    client_ns.ip(&["link", "set", "cl1", "mtu", "1300"]);
    wait_tun_mtu(&client_ns, carries(1300));

    // Lowered only: a larger MTU later leaves it where it is.
    client_ns.ip(&["link", "set", "cl1", "mtu", "1500"]);
    std::thread::sleep(hotplug_settle());
    assert_eq!(tun_mtu(&client_ns), u32::from(carries(1300)));
}

/// The download's size: a few thousand full-size segments.
const BODY_LEN: usize = 4 << 20;
/// The web server behind the gateway.
const SERVER: &str = "198.18.9.2:8080";

/// The body's bytes: a fixed pseudo-random sequence (xorshift64).
fn body_byte_stream() -> impl Iterator<Item = u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    std::iter::from_fn(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Some(state as u8)
    })
}

/// Answers one HTTP GET in `ns` with [`BODY_LEN`] bytes of
/// [`body_byte_stream`].
fn http_server(ns: &Netns) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    ns.spawn(move || {
        let listener = TcpListener::bind(SERVER).expect("bind web server");
        ready_tx.send(()).unwrap();
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let header =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY_LEN}\r\nConnection: close\r\n\r\n");
        let body: Vec<u8> = body_byte_stream().take(BODY_LEN).collect();
        let _ = stream
            .write_all(header.as_bytes())
            .and_then(|()| stream.write_all(&body));
    });
    ready_rx.recv().expect("web server started");
}

/// GETs the body from [`SERVER`] inside `ns`; `Err` says where it stopped.
fn http_get(ns: &Netns) -> Result<Vec<u8>, String> {
    ns.run(|| {
        let server: SocketAddr = SERVER.parse().unwrap();
        let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        // A stalled transfer shows as a read that times out.
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        stream
            .write_all(b"GET /file HTTP/1.1\r\nHost: server\r\nConnection: close\r\n\r\n")
            .map_err(|e| format!("request: {e}"))?;
        let mut response = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("stalled after {} bytes: {e}", response.len())),
            }
        }
        let end = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no response header")?;
        let header = String::from_utf8_lossy(&response[..end]).into_owned();
        if !header.starts_with("HTTP/1.1 200") {
            return Err(format!("response {header:?}"));
        }
        Ok(response.split_off(end + 4))
    })
}

/// A web server behind the gateway on an MTU-1500 network; the client's
/// link is smaller than the config says (1400, found at run time), and the
/// client host announces an MSS for 1500-byte packets, as a host on a LAN
/// behind it does (`advmss 1460` on its route). The gateway's TUN takes at
/// most `carries(1500)` bytes, so unclamped full-size segments from the
/// server could only pass after a "fragmentation needed" reached it; the
/// gateway's ICMP towards the server is dropped, as firewalls do. With the
/// clamp the client's SYN announces what the tunnel carries and the
/// download completes, byte for byte.
#[test]
fn download_completes_through_a_smaller_mtu_with_icmp_blocked() {
    if !require_netns() {
        return;
    }
    let client_ns = Netns::new("mtdc");
    let gateway_ns = Netns::new("mtdg");
    let server_ns = Netns::new("mtds");
    veth(&client_ns, "cl0", &gateway_ns, "gl0", 0);
    client_ns.ip(&["link", "set", "cl0", "mtu", "1400"]);
    gateway_ns.ip(&["link", "set", "gl0", "mtu", "1400"]);
    veth(&server_ns, "sv0", &gateway_ns, "gs0", 9);
    gateway_ns.sysctl("net.ipv4.ip_forward=1");
    server_ns.ip(&["route", "add", "100.64.0.0/24", "via", "198.18.9.1"]);
    // Every ICMP message the gateway sends to the server's network is
    // routed into a black hole.
    gateway_ns.ip(&[
        "rule",
        "add",
        "to",
        "198.18.9.0/24",
        "ipproto",
        "icmp",
        "blackhole",
    ]);
    http_server(&server_ns);

    let (gateway_secret, gateway_public) = circus_core::crypto::generate_keypair().unwrap();
    let id = ClientIdentity::new(2);
    let gateway = start_gateway(&gateway_ns, gateway_config(&gateway_secret, &[&id]));
    let client = start_client(
        &client_ns,
        client_config(&id, gateway_public, &[("cl0", 0)]),
    );
    client.wait_connected();
    gateway.wait_connected();
    wait_tun_mtu(&client_ns, carries(1400));
    client_ns.ip(&[
        "route",
        "add",
        "198.18.9.0/24",
        "dev",
        CLIENT_TUN,
        "advmss",
        "1460",
    ]);

    let start = Instant::now();
    let body = http_get(&client_ns).unwrap_or_else(|e| panic!("download: {e}"));
    assert_eq!(body.len(), BODY_LEN);
    assert!(
        body.iter().copied().eq(body_byte_stream().take(BODY_LEN)),
        "the body arrived altered"
    );
    eprintln!(
        "{} MB in {:?} through a TUN MTU of {}",
        BODY_LEN >> 20,
        start.elapsed(),
        tun_mtu(&client_ns)
    );
}
