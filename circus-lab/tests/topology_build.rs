//! The topology in real namespaces: what `Topology::build` makes and removes.

use std::net::{SocketAddrV4, UdpSocket};
use std::time::Duration;

use circus_lab::topology::offload::enabled_offloads;
use circus_lab::topology::{
    Netns, Role, SERVER_ADDRESS, Topology, TopologyConfig, naming, netns_available_for_test, sysctl,
};

fn config(links: usize) -> TopologyConfig {
    TopologyConfig {
        tag: "t".into(),
        links,
    }
}

fn exists(netns: &Netns) -> bool {
    netns.path().exists()
}

#[test]
fn builds_four_namespaces_and_removes_them_on_drop() {
    if !netns_available_for_test("builds_four_namespaces_and_removes_them_on_drop") {
        return;
    }
    let topology = Topology::build(&config(2)).unwrap();
    let namespaces: Vec<Netns> = Role::ALL
        .iter()
        .map(|r| topology.netns(*r).clone())
        .collect();
    for netns in &namespaces {
        assert!(
            netns
                .name()
                .starts_with(&format!("{}t-", naming::name_start())),
            "{}",
            netns.name()
        );
        assert!(exists(netns), "{} missing", netns.name());
    }
    drop(topology);
    for netns in &namespaces {
        assert!(!exists(netns), "{} left behind", netns.name());
    }
}

#[test]
fn interfaces_have_offloads_off_and_forwarding_is_per_namespace() {
    if !netns_available_for_test("interfaces_have_offloads_off_and_forwarding_is_per_namespace") {
        return;
    }
    let host_forwarding = sysctl::read("net/ipv4/ip_forward").unwrap();
    let topology = Topology::build(&config(2)).unwrap();
    let loopback = topology
        .netns(Role::Client)
        .run(|| enabled_offloads("lo"))
        .unwrap()
        .unwrap();
    assert!(
        !loopback.is_empty(),
        "reading offloads works: lo keeps its own"
    );
    for link in topology.links() {
        let checks = [
            (Role::Client, &link.client_interface),
            (Role::Emu, &link.emu_client_side),
            (Role::Emu, &link.emu_gateway_side),
            (Role::Gateway, &link.gateway_interface),
        ];
        for (role, interface) in checks {
            let still_on = topology
                .netns(role)
                .run(|| enabled_offloads(interface))
                .unwrap()
                .unwrap();
            assert!(
                still_on.is_empty(),
                "{role} {interface}: {still_on:?} still on"
            );
        }
    }
    let forwarding = |role| {
        topology
            .netns(role)
            .run(|| sysctl::read("net/ipv4/ip_forward"))
            .unwrap()
            .unwrap()
    };
    assert_eq!(forwarding(Role::Gateway), "1");
    assert_eq!(forwarding(Role::Client), "0");
    assert_eq!(
        sysctl::read("net/ipv4/ip_forward").unwrap(),
        host_forwarding
    );
}

#[test]
fn server_reaches_the_gateways_link_addresses_through_its_routes() {
    if !netns_available_for_test("server_reaches_the_gateways_link_addresses_through_its_routes") {
        return;
    }
    let topology = Topology::build(&config(2)).unwrap();
    let target = topology.links()[1].gateway_address;
    let listener = topology
        .netns(Role::Gateway)
        .run(|| UdpSocket::bind(SocketAddrV4::new(target, 0)))
        .unwrap()
        .unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let destination = listener.local_addr().unwrap();
    topology
        .netns(Role::Server)
        .run(|| {
            let socket = UdpSocket::bind(SocketAddrV4::new(SERVER_ADDRESS, 0))?;
            socket.send_to(b"hello", destination)
        })
        .unwrap()
        .unwrap();
    let mut buf = [0u8; 16];
    let (len, from) = listener.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"hello");
    assert_eq!(from.ip(), std::net::IpAddr::V4(SERVER_ADDRESS));
}

#[test]
fn carrier_follows_the_emulator_side_of_the_link() {
    if !netns_available_for_test("carrier_follows_the_emulator_side_of_the_link") {
        return;
    }
    let topology = Topology::build(&config(2)).unwrap();
    assert!(topology.client_has_carrier(0).unwrap());
    topology.set_carrier(0, false).unwrap();
    assert!(!topology.client_has_carrier(0).unwrap());
    assert!(
        topology.client_has_carrier(1).unwrap(),
        "other links keep carrier"
    );
    topology.set_carrier(0, true).unwrap();
    assert!(topology.client_has_carrier(0).unwrap());
    assert!(topology.set_carrier(2, false).is_err(), "no link 2");
}

#[test]
fn link_counts_outside_the_supported_range_are_refused() {
    if !netns_available_for_test("link_counts_outside_the_supported_range_are_refused") {
        return;
    }
    let error = Topology::build(&config(0)).unwrap_err();
    assert!(error.to_string().contains("expected 1 to 16"), "{error}");
    assert!(Topology::build(&config(17)).is_err());
}

#[test]
fn client_address_changes_on_request() {
    if !netns_available_for_test("client_address_changes_on_request") {
        return;
    }
    let topology = Topology::build(&config(1)).unwrap();
    let link = topology.links()[0].clone();
    let new = link.alternative_client_address(1);
    let can_bind = |address| {
        topology
            .netns(Role::Client)
            .run(|| UdpSocket::bind(SocketAddrV4::new(address, 0)).is_ok())
            .unwrap()
    };
    assert!(can_bind(link.client_address) && !can_bind(new));
    topology
        .change_client_address(0, link.client_address, new)
        .unwrap();
    assert!(can_bind(new), "the new address is in place");
    assert!(!can_bind(link.client_address), "the old one is gone");
}
