//! IPv6 inside and outside the tunnel, and gateways given by host name:
//! a dual-stack tunnel carries both families both ways, a link with only
//! IPv6 reaches a `[::]` gateway beside an IPv4 one, and a client finds its
//! gateway by name, and finds it again when the name moves.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

const GATEWAY_TUNNEL6: &str = "fd00:64::1";
const CLIENT_TUNNEL6: &str = "fd00:64::2";

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// Sends `len` bytes over TCP from `client` to a server in `server` at
/// `to`, which answers with the count it read: the whole stream crossed.
fn tcp_transfer(server: &Netns, client: &Netns, to: SocketAddr, len: usize) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let counter = server.spawn(move || {
        let listener = TcpListener::bind(to).expect("bind TCP server");
        ready_tx.send(()).unwrap();
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 65536];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf).unwrap() {
                0 => break,
                n => total += n as u64,
            }
        }
        stream.write_all(&total.to_be_bytes()).unwrap();
    });
    ready_rx.recv().unwrap();
    let got = client.run(move || {
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let chunk = vec![0x5a; 65536];
        let mut sent = 0;
        while sent < len {
            let n = chunk.len().min(len - sent);
            stream.write_all(&chunk[..n]).unwrap();
            sent += n;
        }
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut count = [0u8; 8];
        stream.read_exact(&mut count).unwrap();
        u64::from_be_bytes(count)
    });
    counter.join().unwrap();
    assert_eq!(got, len as u64, "TCP to {to}");
}

fn echo_all(from: &Netns, to: SocketAddr) {
    let result = echo_stream(from, to, 200, 500, 300);
    assert_eq!(result.received, result.sent, "echo to {to}: {result:?}");
}

#[test]
fn dual_stack_tunnel_carries_both_families_both_ways() {
    if !require_netns() {
        return;
    }
    let client_ns = Netns::new("dsc");
    let gateway_ns = Netns::new("dsg");
    veth(&client_ns, "cl0", &gateway_ns, "gl0", 0);
    let (gateway_secret, gateway_public) = circus_core::crypto::generate_keypair().unwrap();
    let id = ClientIdentity::new(2);
    let mut gateway_config = gateway_config(&gateway_secret, &[&id]);
    gateway_config.listen = addr("::", GATEWAY_PORT);
    gateway_config.tun.address.v6 = Some(format!("{GATEWAY_TUNNEL6}/64").parse().unwrap());
    gateway_config.clients[0]
        .tunnel_addresses
        .push(CLIENT_TUNNEL6.parse().unwrap());
    let mut client_config = client_config(&id, gateway_public, &[("cl0", 0)]);
    client_config.tun.address.v6 = Some(format!("{CLIENT_TUNNEL6}/64").parse().unwrap());
    let gateway = start_gateway(&gateway_ns, gateway_config);
    let client = start_client(&client_ns, client_config);
    client.wait_connected();
    let report = gateway.wait_connected();

    // An IPv4 client of a `[::]` gateway is shown, and answered, at its
    // IPv4 address, not the v4-mapped one.
    let endpoint = &report.sessions[0].links[0].endpoint;
    assert!(endpoint.starts_with("198.18.0.2:"), "{endpoint}");

    for ip in [GATEWAY_TUNNEL.to_string(), GATEWAY_TUNNEL6.to_owned()] {
        udp_echo(&gateway_ns, addr(&ip, 7));
        echo_all(&client_ns, addr(&ip, 7));
        tcp_transfer(&gateway_ns, &client_ns, addr(&ip, 8080), 2 << 20);
    }
    // And from the gateway's side to the client's IPv6 tunnel address.
    udp_echo(&client_ns, addr(CLIENT_TUNNEL6, 7));
    echo_all(&gateway_ns, addr(CLIENT_TUNNEL6, 7));
    tcp_transfer(&client_ns, &gateway_ns, addr(CLIENT_TUNNEL6, 8080), 1 << 20);
}

/// A veth pair `a` (in `client`) <-> `b` (in `gateway`) with only IPv6
/// addresses fd00:18:`subnet`::2 and ::1; returns the gateway side's.
fn veth6(client: &Netns, a: &str, gateway: &Netns, b: &str, subnet: u8) -> IpAddr {
    let net = format!("fd00:18:{subnet}::");
    veth_addressed(
        client,
        a,
        gateway,
        b,
        [&format!("{net}2/64"), &format!("{net}1/64")],
    );
    format!("{net}1").parse().unwrap()
}

/// A link with only IPv6 addresses, whose gateway is a name with an A and
/// an AAAA record, given the A record (as the config's lookup may): the
/// daemon looks the name up again and takes the AAAA record.
#[test]
fn a_link_with_only_ipv6_works_beside_an_ipv4_one() {
    if !require_netns() {
        return;
    }
    let client_ns = Netns::new("v6c");
    let gateway_ns = Netns::new("v6g");
    veth(&client_ns, "cl0", &gateway_ns, "gl0", 0);
    let gateway_v6 = veth6(&client_ns, "cl1", &gateway_ns, "gl1", 1);
    let hosts = hosts_file(
        "v6",
        &format!("198.18.1.1 circus-gw.test\n{gateway_v6} circus-gw.test\n"),
    );
    let (gateway_secret, gateway_public) = circus_core::crypto::generate_keypair().unwrap();
    let id = ClientIdentity::new(2);
    let mut gateway_config = gateway_config(&gateway_secret, &[&id]);
    gateway_config.listen = addr("::", GATEWAY_PORT);
    let mut client_config = client_config(&id, gateway_public, &[("cl0", 0), ("cl1", 1)]);
    client_config.links[1].gateway_host = Some("circus-gw.test".into());
    assert_eq!(
        client_config.links[1].gateway,
        addr("198.18.1.1", GATEWAY_PORT),
        "starts with the A record"
    );
    // Every packet on both links both ways, so each link must carry all
    // of them (balanced would favour whichever link answered faster).
    gateway_config.policy = "redundant".parse().unwrap();
    client_config.policy = gateway_config.policy;
    let gateway = start_gateway(&gateway_ns, gateway_config);
    let client = start_client_with_hosts(&client_ns, client_config, &hosts);
    client.wait_connected();
    client.wait("both links up", Duration::from_secs(5), |r| {
        r.sessions[0]
            .links
            .iter()
            .filter(|l| l.state == "up")
            .count()
            == 2
    });

    // The IPv6 link's larger outer header counts in the tunnel MTU, and
    // full-size packets cross on both links.
    let mtu = 1500 - 48 - circus_node::tun_device::TUNNEL_OVERHEAD;
    let out = std::process::Command::new("ip")
        .args(["-n", &client_ns.name, "link", "show", "cnd-tun"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains(&format!(" mtu {mtu} ")), "{shown}");
    let echo = SocketAddr::from((GATEWAY_TUNNEL, 7));
    udp_echo(&gateway_ns, echo);
    let result = echo_stream(&client_ns, echo, 1000, 1000, usize::from(mtu) - 28);
    assert_eq!(result.received, result.sent, "{result:?}");

    let report = client.status().unwrap();
    for link in &report.sessions[0].links {
        assert!(link.traffic.packets_received >= 1000, "{link:?}");
    }
    let report = gateway.status().unwrap();
    let mut endpoints: Vec<&str> = report.sessions[0]
        .links
        .iter()
        .map(|l| l.endpoint.as_str())
        .collect();
    endpoints.sort();
    assert!(
        endpoints[0].starts_with("198.18.0.2:") && endpoints[1].starts_with("[fd00:18:1::2]:"),
        "{endpoints:?}"
    );
    drop(client);
    std::fs::remove_file(&hosts).unwrap();
}

/// A hosts file for one test, in the temporary directory.
fn hosts_file(tag: &str, content: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("cnd-hosts-{}-{tag}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

/// Starts a client in `ns` that resolves names through `hosts`, and waits
/// until its status socket answers.
fn start_client_with_hosts(
    ns: &Netns,
    config: circus_node::config::ClientConfig,
    hosts: &Path,
) -> Daemon {
    let hosts = hosts.to_owned();
    let client = Daemon::client(config, |job| {
        ns.spawn(move || {
            use_hosts_file(&hosts);
            job()
        });
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap();
    client.wait("status socket answers", Duration::from_secs(10), |_| true);
    client
}

/// Puts the calling thread in a mount namespace of its own in which
/// `hosts` is /etc/hosts: what the thread (and threads it starts) resolve
/// comes from there, and the real file is untouched.
fn use_hosts_file(hosts: &Path) {
    use nix::mount::{MsFlags, mount};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare mount namespace");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make mounts private");
    mount(
        Some(hosts),
        "/etc/hosts",
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind the hosts file");
}

#[test]
fn gateway_by_host_name_is_reached_and_followed_when_it_moves() {
    if !require_netns() {
        return;
    }
    let client_ns = Netns::new("hnc");
    let gateway_ns = Netns::new("hng");
    veth(&client_ns, "cl0", &gateway_ns, "gl0", 0);
    // Deleting the first address must not delete the second.
    gateway_ns.sysctl("net.ipv4.conf.all.promote_secondaries=1");
    let hosts = hosts_file("move", "198.18.0.1 circus-gw.test\n");
    let (gateway_secret, gateway_public) = circus_core::crypto::generate_keypair().unwrap();
    let id = ClientIdentity::new(2);
    let gateway = start_gateway(&gateway_ns, gateway_config(&gateway_secret, &[&id]));

    let status = status_path("client");
    let text = format!(
        "private_key = \"{}\"\ngateway_public_key = \"{gateway_public}\"\n\
         gateway = \"circus-gw.test:{GATEWAY_PORT}\"\n\
         [tun]\nname = \"cnd-tun\"\naddress = \"{}/24\"\n\
         [observe]\nstatus_socket = \"{}\"\n[[link]]\ninterface = \"cl0\"\n",
        id.secret,
        id.tunnel,
        status.display()
    );
    let parse = |text: String| {
        let hosts = hosts.clone();
        client_ns.run(move || {
            use_hosts_file(&hosts);
            circus_node::config::ClientConfig::parse(Path::new("client.toml"), &text)
        })
    };
    let err = parse(text.replace("circus-gw.test", "circus-gw-unknown.test"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key `gateway`: cannot resolve host name \"circus-gw-unknown.test\""),
        "{err}"
    );
    let config = parse(text).unwrap();
    assert_eq!(config.links[0].gateway, addr("198.18.0.1", GATEWAY_PORT));

    let client = start_client_with_hosts(&client_ns, config, &hosts);
    client.wait_connected();
    gateway.wait_connected();

    // The gateway moves to another address and the name follows it: once
    // every link has been without the gateway for a while, the client looks
    // the name up again and sends to the new address.
    let moved = std::time::Instant::now();
    gateway_ns.ip(&["addr", "add", "198.18.0.9/24", "dev", "gl0"]);
    std::fs::write(&hosts, "198.18.0.9 circus-gw.test\n").unwrap();
    gateway_ns.ip(&["addr", "del", "198.18.0.1/24", "dev", "gl0"]);
    // The old address is gone, so once the link was lost, only the new
    // one can bring it back.
    client.wait(
        "the link to lose the gateway",
        Duration::from_secs(5),
        |r| r.sessions[0].links[0].state == "down",
    );
    client.wait(
        "the link to follow the name to 198.18.0.9",
        Duration::from_secs(15),
        |r| r.sessions[0].connected && r.sessions[0].links[0].state == "up",
    );
    eprintln!(
        "followed the name {:.1} s after the move",
        moved.elapsed().as_secs_f64()
    );
    let echo = SocketAddr::from((GATEWAY_TUNNEL, 7));
    udp_echo(&gateway_ns, echo);
    echo_all(&client_ns, echo);
    drop(client);
    std::fs::remove_file(&hosts).unwrap();
}
