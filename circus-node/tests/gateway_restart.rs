//! The gateway's process dies and comes back with no memory of its
//! sessions: clients must find their way back by themselves within 2 s, and
//! what was captured of the old sessions must be worthless against it.

mod common;

use common::capture::{capture, counting_echo};
use common::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the gateway stays away: long enough for the client's retries
/// to have slowed to their steady pace (one per second).
const AWAY: Duration = Duration::from_secs(2);

/// How soon after the gateway's start (counted from the call that starts
/// it, so its own start-up is included) tunnel traffic must flow again.
const BACK_WITHIN: Duration = Duration::from_secs(2);

const TCP_PORT: u16 = 5001;
const PROBE_PORT: u16 = 5002;

/// Client and gateway namespaces joined by `cl0`<->`gl0` and `cl1`<->`gl1`.
fn namespaces(tag: &str) -> (Netns, Netns) {
    let client_ns = Netns::new(&format!("{tag}c"));
    let gateway_ns = Netns::new(&format!("{tag}g"));
    veth(&client_ns, "cl0", &gateway_ns, "gl0", 0);
    veth(&client_ns, "cl1", &gateway_ns, "gl1", 1);
    (client_ns, gateway_ns)
}

/// A UDP sink in `ns` that notes when each datagram arrived.
fn arrival_log(ns: &Netns, port: u16, stop: Arc<AtomicBool>) -> Arc<Mutex<Vec<Instant>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let arrivals = log.clone();
    ns.spawn(move || {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if socket.recv(&mut buf).is_ok() {
                arrivals.lock().unwrap().push(Instant::now());
            }
        }
    });
    ready_rx.recv().unwrap();
    log
}

#[test]
fn gateway_restart_during_a_tcp_transfer() {
    if !require_netns() {
        return;
    }
    let (client_ns, gateway_ns) = namespaces("rst");
    let (gateway_secret, gateway_public) = circus_core::crypto::generate_keypair().unwrap();
    let id = ClientIdentity::new(2);
    let gateway_cfg = gateway_config(&gateway_secret, &[&id]);
    let gateway = start_gateway(&gateway_ns, gateway_cfg.clone());
    let client = start_client(
        &client_ns,
        client_config(&id, gateway_public, &[("cl0", 0), ("cl1", 1)]),
    );
    client.wait_connected();

    // Behind the gateway: a TCP sink that counts what it read, and a UDP
    // sink timing a 100-per-second probe stream, which shows when the
    // tunnel carries traffic again (TCP's retransmission backs off, so its
    // first segment after the outage says more about TCP than the tunnel).
    let stop = Arc::new(AtomicBool::new(false));
    let arrivals = arrival_log(&gateway_ns, PROBE_PORT, stop.clone());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sink = gateway_ns.spawn(move || {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, TCP_PORT)).unwrap();
        ready_tx.send(()).unwrap();
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 65536];
        let mut total = 0usize;
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    ready_rx.recv().unwrap();
    let probe_stop = stop.clone();
    let prober = client_ns.spawn(move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        let to = SocketAddr::from((GATEWAY_TUNNEL, PROBE_PORT));
        while !probe_stop.load(Ordering::Relaxed) {
            let _ = socket.send_to(b"probe", to);
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    // 4 MB at about 20 Mbit/s: the transfer spans the whole outage.
    const TOTAL: usize = 4 << 20;
    let sender = client_ns.spawn(move || {
        let mut stream = TcpStream::connect((GATEWAY_TUNNEL, TCP_PORT)).unwrap();
        let chunk = vec![0x5au8; 50_000];
        let mut sent = 0;
        while sent < TOTAL {
            stream.write_all(&chunk).unwrap();
            sent += chunk.len();
            std::thread::sleep(Duration::from_millis(20));
        }
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        sent
    });

    std::thread::sleep(Duration::from_millis(700));
    gateway.stop().expect("gateway ran cleanly");
    std::thread::sleep(AWAY);
    let restarted = Instant::now();
    let gateway = start_gateway(&gateway_ns, gateway_cfg);
    let sent = sender.join().expect("the transfer completed");
    let received = sink.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    prober.join().unwrap();

    assert_eq!(received, sent, "every byte of the transfer arrived");
    let first = arrivals
        .lock()
        .unwrap()
        .iter()
        .find(|&&t| t >= restarted)
        .map(|&t| t - restarted)
        .expect("traffic resumed");
    eprintln!("traffic resumed {first:?} after the gateway's restart");
    assert!(first < BACK_WITHIN, "traffic resumed only after {first:?}");
    let report = gateway.status().unwrap();
    assert!(report.sessions.iter().any(|s| s.connected), "{report:?}");
}

#[test]
fn a_replayed_session_gets_nothing_from_a_restarted_gateway() {
    if !require_netns() {
        return;
    }
    let (client_ns, gateway_ns) = namespaces("rpl");
    let (gateway_secret, gateway_public) = circus_core::crypto::generate_keypair().unwrap();
    let id = ClientIdentity::new(2);
    let gateway_cfg = gateway_config(&gateway_secret, &[&id]);
    let gateway = start_gateway(&gateway_ns, gateway_cfg.clone());
    let echo_addr = SocketAddr::from((GATEWAY_TUNNEL, 7));
    let echoed = counting_echo(&gateway_ns, echo_addr);

    // Everything the client sends on link 0, from its first init on, as
    // the gateway receives it.
    let stop = Arc::new(AtomicBool::new(false));
    let stop_capture = stop.clone();
    let capturing = gateway_ns.spawn(move || capture("gl0", stop_capture));
    std::thread::sleep(Duration::from_millis(100));
    let client = start_client(
        &client_ns,
        client_config(&id, gateway_public, &[("cl0", 0)]),
    );
    client.wait_connected();
    let traffic = echo_stream(&client_ns, echo_addr, 100, 500, 300);
    assert_eq!(traffic.received, traffic.sent);
    stop.store(true, Ordering::Relaxed);
    let session = capturing.join().unwrap();
    let of_type = |t: u8| session.iter().filter(|p| p.get(1) == Some(&t)).count();
    assert!(of_type(1) > 0, "captured the init");
    let transport = of_type(3) as u64;
    assert!(transport >= 100, "captured the data");
    client.stop().expect("client ran cleanly");
    gateway.stop().expect("gateway ran cleanly");
    let gateway = start_gateway(&gateway_ns, gateway_cfg);
    let echoed_before = echoed.load(Ordering::Relaxed);

    // The replayer sends from the client's own address, one datagram at a
    // time, and pairs every reply with the datagram that drew it.
    let (replies, largest_ratio) = client_ns.run(move || {
        let socket = UdpSocket::bind((Ipv4Addr::new(198, 18, 0, 2), 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let target = SocketAddr::from((Ipv4Addr::new(198, 18, 0, 1), GATEWAY_PORT));
        let mut reply = [0u8; 65536];
        let (mut replies, mut largest_ratio) = (0, 0.0f64);
        for datagram in &session {
            socket.send_to(datagram, target).unwrap();
            while let Ok(n) = socket.recv(&mut reply) {
                replies += 1;
                assert!(
                    n < datagram.len(),
                    "a {n}-byte reply to a {}-byte datagram",
                    datagram.len()
                );
                largest_ratio = largest_ratio.max(n as f64 / datagram.len() as f64);
            }
        }
        (replies, largest_ratio)
    });
    eprintln!("replayed session: {replies} replies, largest {largest_ratio:.2}x its trigger");

    assert_eq!(
        echoed.load(Ordering::Relaxed),
        echoed_before,
        "no replayed packet came out of the tunnel"
    );
    let report = gateway.status().unwrap();
    assert!(
        report.sessions.iter().all(|s| !s.connected),
        "no session for the replayer: {report:?}"
    );
    // A restarted gateway numbers its sessions from the start again, so
    // an old packet may name the replayed init's pending keys: it then
    // fails to authenticate rather than finding no session.
    let refused: u64 = ["unknown_index", "unauthentic", "replayed"]
        .iter()
        .filter_map(|reason| report.refused.get(*reason))
        .sum();
    assert!(
        refused >= transport,
        "every replayed data packet was refused: {:?}",
        report.refused
    );
}
