//! Routes, kill switch and NAT set up by the daemons themselves (issue 18):
//! the real client binary (stopped with SIGTERM and SIGKILL as systemd and
//! a crash would) in front of an embedded gateway with `nat = true`.
//!
//! Topology: client `rtc0` 198.18.1.2 -- 198.18.1.1 `rtg0` gateway `rtg1`
//! 198.19.0.1 -- 198.19.0.2 server. The client's main table routes
//! everything via the gateway namespace, which forwards without NAT: a
//! packet that leaks past the tunnel reaches the server from 198.18.1.2,
//! one through the tunnel arrives masqueraded as 198.19.0.1. The tunnel is
//! dual stack and the server also has fd00:19::2 behind the gateway's
//! fd00:19::1: IPv6 crosses the tunnel and the gateway's NAT as well.

mod common;

use common::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 19, 0, 2)), 7000);
const GATEWAY_UPLINK: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1));
const SERVER_V6: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x19, 0, 0, 0, 0, 0, 2)),
    7000,
);
const GATEWAY_UPLINK_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x19, 0, 0, 0, 0, 0, 1));
const CLIENT_LINK: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2));
const TUN: &str = "rt-tun";

struct Site {
    client: Netns,
    gateway_ns: Netns,
    /// Held for its namespace's life.
    _server: Netns,
    gateway: Option<Daemon>,
    /// Source address of every datagram the server received.
    seen: Arc<Mutex<Vec<IpAddr>>>,
    stop: Arc<AtomicBool>,
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
}

impl Site {
    fn new(tag: &str, kill_switch: bool) -> Site {
        let client = Netns::new(&format!("{tag}c"));
        let gateway_ns = Netns::new(&format!("{tag}g"));
        let server = Netns::new(&format!("{tag}s"));
        veth(&client, "rtc0", &gateway_ns, "rtg0", 1);
        client.ip(&["route", "add", "default", "via", "198.18.1.1"]);
        gateway_ns.ip(&[
            "link",
            "add",
            "rtg1",
            "type",
            "veth",
            "peer",
            "name",
            "rts0",
            "netns",
            &server.name,
        ]);
        gateway_ns.ip(&["addr", "add", "198.19.0.1/24", "dev", "rtg1"]);
        gateway_ns.ip(&["link", "set", "rtg1", "up"]);
        server.ip(&["addr", "add", "198.19.0.2/24", "dev", "rts0"]);
        server.ip(&["link", "set", "rts0", "up"]);
        server.ip(&["route", "add", "default", "via", "198.19.0.1"]);
        gateway_ns.ip(&["-6", "addr", "add", "fd00:19::1/64", "dev", "rtg1", "nodad"]);
        server.ip(&["-6", "addr", "add", "fd00:19::2/64", "dev", "rts0", "nodad"]);
        server.ip(&["-6", "route", "add", "default", "via", "fd00:19::1"]);
        // The leak path: without the tunnel, the site's traffic is routed
        // to the server as it would be by an ISP.
        gateway_ns.sysctl("net.ipv4.ip_forward=1");

        let (seen, stop) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicBool::new(false)),
        );
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for at in [SERVER, SERVER_V6] {
            let (ready_tx, log, halt) = (ready_tx.clone(), seen.clone(), stop.clone());
            server.spawn(move || {
                let socket = UdpSocket::bind(at).expect("bind the server");
                socket
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                ready_tx.send(()).unwrap();
                let mut buf = [0u8; 2048];
                while !halt.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = socket.recv_from(&mut buf) {
                        log.lock().unwrap().push(from.ip());
                        let _ = socket.send_to(&buf[..n], from);
                    }
                }
            });
            ready_rx.recv().unwrap();
        }

        let (gateway_secret, gateway_public) = circus_core::crypto::generate_keypair().unwrap();
        let id = ClientIdentity::new(2);
        let mut gw = gateway_config(&gateway_secret, &[&id]);
        gw.nat = true;
        gw.tun.address.v6 = Some("fd00:64::1/64".parse().unwrap());
        gw.clients[0]
            .tunnel_addresses
            .push("fd00:64::2/128".parse().unwrap());
        let gateway = start_gateway(&gateway_ns, gw);

        let dir = std::env::temp_dir().join(format!("rt-routes-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("client.sock");
        let config = dir.join("client.toml");
        std::fs::write(
            &config,
            format!(
                "private_key = \"{}\"\ngateway_public_key = \"{gateway_public}\"\n\
                 routes = [\"0.0.0.0/0\", \"::/0\"]\nkill_switch = {kill_switch}\n\
                 [tun]\nname = \"{TUN}\"\naddress = [\"100.64.0.2/24\", \"fd00:64::2/64\"]\n\
                 [observe]\nstatus_socket = \"{}\"\n\
                 [[link]]\ninterface = \"rtc0\"\ngateway = \"198.18.1.1:{GATEWAY_PORT}\"\n",
                id.secret,
                socket.display()
            ),
        )
        .unwrap();
        Site {
            client,
            gateway_ns,
            _server: server,
            gateway: Some(gateway),
            seen,
            stop,
            dir,
            config,
            socket,
        }
    }

    /// `circus-node client` with `args` in the client namespace.
    fn client_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args([
                "netns",
                "exec",
                &self.client.name,
                env!("CARGO_BIN_EXE_circus-node"),
            ])
            .arg("client")
            .arg("-c")
            .arg(&self.config)
            .args(args);
        command
    }

    /// Starts the client and waits until its session is up.
    fn start_client(&self) -> Client {
        let mut client = Client(
            self.client_command(&[])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let start = Instant::now();
        loop {
            let up = circus_node::status::query(&self.socket).is_ok_and(|r| {
                r.sessions
                    .iter()
                    .all(|s| s.connected && s.links.iter().any(|l| l.state == "up"))
            });
            if up {
                return client;
            }
            assert!(client.0.try_wait().unwrap().is_none(), "the client exited");
            assert!(start.elapsed() < Duration::from_secs(10), "no session");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one datagram from the site to the server's IPv4 address and
    /// waits briefly for its echo; whether it came back.
    fn echo(&self) -> bool {
        self.echo_to(SERVER)
    }

    /// The same to `server`, of either family.
    fn echo_to(&self, server: SocketAddr) -> bool {
        self.client.run(move || {
            let any = SocketAddr::new(
                if server.is_ipv4() {
                    Ipv4Addr::UNSPECIFIED.into()
                } else {
                    Ipv6Addr::UNSPECIFIED.into()
                },
                0,
            );
            let socket = UdpSocket::bind(any).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut buf = [0u8; 64];
            (0..3).any(|_| {
                socket.send_to(b"ping", server).is_ok() && socket.recv_from(&mut buf).is_ok()
            })
        })
    }

    /// Sources the server has seen so far, cleared.
    fn take_seen(&self) -> Vec<IpAddr> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    /// The client namespace's rules and routes of both families, as text.
    fn routing_state(&self) -> String {
        let mut state = String::new();
        for args in [
            &["-4", "rule", "show"][..],
            &["-6", "rule", "show"],
            &["-4", "route", "show", "table", "all"],
            &["-6", "route", "show", "table", "all"],
        ] {
            let out = Command::new("ip")
                .args(["-n", &self.client.name])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success());
            // Link-local IPv6 addresses come and go with the links' own
            // address configuration, not with the daemon.
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if !line.contains("fe80:") {
                    state += line;
                    state.push('\n');
                }
            }
        }
        state
    }

    fn table(&self, family: &str) -> String {
        let out = Command::new("ip")
            .args([
                "-n",
                &self.client.name,
                family,
                "route",
                "show",
                "table",
                "51820",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The client process, killed if a failed assertion unwinds past it (a
/// leaked daemon would hold the test runner's output open).
struct Client(Child);

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

fn stop(mut client: Client) {
    signal(&client.0, nix::sys::signal::Signal::SIGTERM);
    assert!(client.0.wait().unwrap().success(), "clean exit on SIGTERM");
}

fn kill(client: Client) {
    signal(&client.0, nix::sys::signal::Signal::SIGKILL);
    drop(client);
}

fn nft_tables(ns: &Netns) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft", "list", "tables"])
        .output()
        .expect("run nft (Debian package nftables)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(5), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_full_tunnel_is_routed_by_the_client_and_masqueraded_by_the_gateway() {
    if !require_netns() {
        return;
    }
    let mut site = Site::new("rf", false);
    let before = site.routing_state();
    assert!(site.echo(), "the leak path works without the daemon");
    assert_eq!(site.take_seen(), [CLIENT_LINK], "straight, not tunnelled");

    let client = site.start_client();
    assert!(site.table("-4").contains(&format!("default dev {TUN}")));
    assert!(
        site.table("-6").contains(&format!("default dev {TUN}")),
        "::/0 too"
    );
    assert!(nft_tables(&site.gateway_ns).contains("table inet circus-cnd-gw"));
    // The link socket carries the table's mark, which the rule exempts.
    let sockets = Command::new("ip")
        .args(["netns", "exec", &site.client.name, "ss", "-uane"])
        .output()
        .unwrap();
    let sockets = String::from_utf8_lossy(&sockets.stdout);
    assert!(
        sockets
            .lines()
            .any(|l| l.contains("%rtc0:") && l.contains("fwmark:0xca6c")),
        "{sockets}"
    );
    // The session is up, so the link socket's own datagrams left on the
    // link (inside the tunnel they would go nowhere); the server sees the
    // gateway's uplink address: the echo went through the tunnel and out
    // through the gateway's NAT.
    assert!(site.echo());
    assert_eq!(site.take_seen(), [GATEWAY_UPLINK]);
    // IPv6 too: into the TUN device by `::/0`, through the tunnel, out
    // through the gateway's NAT for its IPv6 tunnel prefix.
    assert!(site.echo_to(SERVER_V6));
    assert_eq!(site.take_seen(), [GATEWAY_UPLINK_V6]);

    // The link flaps under a stream; the tunnel carries on afterwards.
    let flapper = {
        let name = site.client.name.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            ip(&["-n", &name, "link", "set", "rtc0", "down"]);
            std::thread::sleep(Duration::from_millis(400));
            ip(&["-n", &name, "link", "set", "rtc0", "up"]);
            // The kernel dropped the default route with the link; a DHCP
            // client would put it back (the tunnel does not need it).
            ip(&["-n", &name, "route", "add", "default", "via", "198.18.1.1"]);
        })
    };
    let stream = echo_stream(&site.client, SERVER, 200, 100, 100);
    flapper.join().unwrap();
    assert!(
        stream.received >= stream.sent / 2,
        "most of the stream crosses despite the flap: {stream:?}"
    );
    assert!(site.echo(), "traffic continues after the flap");
    assert!(site.echo_to(SERVER_V6), "IPv6 too");
    let seen = site.take_seen();
    assert!(
        !seen.is_empty()
            && seen
                .iter()
                .all(|s| [GATEWAY_UPLINK, GATEWAY_UPLINK_V6].contains(s)),
        "{seen:?}"
    );

    // The kernel drops the device routes when the TUN device goes down;
    // the daemon puts them back when it is up again.
    site.client.ip(&["link", "set", TUN, "down"]);
    assert!(!site.table("-4").contains(TUN));
    site.client.ip(&["link", "set", TUN, "up"]);
    wait_for("the routes are reinstalled", || {
        site.table("-4").contains(TUN) && site.table("-6").contains(TUN)
    });
    assert!(site.echo());
    assert_eq!(site.take_seen(), [GATEWAY_UPLINK]);

    stop(client);
    assert_eq!(site.routing_state(), before, "SIGTERM removes all it added");

    // A crash leaves rules behind; the next run clears them, adds its own
    // once, and removes them at exit.
    kill(site.start_client());
    assert!(
        site.routing_state().contains("proto 109"),
        "left by the crash"
    );
    let client = site.start_client();
    let state = site.routing_state();
    assert_eq!(
        state.matches("lookup 51820 proto 109").count(),
        2,
        "{state}"
    );
    stop(client);
    assert_eq!(
        site.routing_state(),
        before,
        "nothing left after SIGKILL + restart"
    );

    site.gateway.take().unwrap().stop().unwrap();
    assert!(
        !nft_tables(&site.gateway_ns).contains("circus"),
        "the masquerade table goes with the gateway"
    );
}

#[test]
fn the_kill_switch_drops_the_sites_traffic_while_the_client_is_down() {
    if !require_netns() {
        return;
    }
    let site = Site::new("rk", true);
    let before = site.routing_state();
    let client = site.start_client();
    assert!(site.echo());
    assert_eq!(site.take_seen(), [GATEWAY_UPLINK]);

    kill(client);
    wait_for("the TUN device goes with the process", || {
        !site.table("-4").contains("dev rt-tun")
    });
    assert!(!site.echo(), "nothing while the daemon is dead");
    stop(site.start_client());
    assert!(site.table("-4").contains("unreachable default"));
    assert!(!site.echo(), "nothing after a clean stop either");
    assert_eq!(
        site.take_seen(),
        Vec::<IpAddr>::new(),
        "the server got nothing from the site"
    );

    // Lifting it restores the state before the daemon, leak path included
    // (which shows the silence above was the kill switch's doing).
    assert!(site.client_command(&["--down"]).status().unwrap().success());
    assert_eq!(site.routing_state(), before);
    assert!(site.echo());
    assert_eq!(site.take_seen(), [CLIENT_LINK]);
}
