//! The forwarder on real frames in real namespaces: it forwards, obeys
//! timeline commands, and counts what it does.

mod common;

use std::net::SocketAddrV4;
use std::time::Duration;

use circus_lab::emulator::forwarder::capacity::UdpEcho;
use circus_lab::emulator::model::{Direction, DropReason, LinkCondition, LinkParams};
use circus_lab::topology::{Role, SERVER_ADDRESS, netns_available_for_test};
use common::{Lab, median};

const MS: Duration = Duration::from_millis(1);

#[test]
fn unimpaired_link_forwards_both_ways_and_counts() {
    if !netns_available_for_test("unimpaired_link_forwards_both_ways_and_counts") {
        return;
    }
    let lab = Lab::start(LinkParams::default());
    let (echo, client) = lab.echo_pair();
    let rtts = lab.probe(&echo, &client, 20, MS, Duration::from_secs(2));
    assert_eq!(rtts.len(), 20, "every probe came back");
    for direction in [Direction::Up, Direction::Down] {
        let counters = lab.forwarder.counters(0, direction).unwrap();
        // 20 probes, plus ARP frames.
        assert!(counters.forwarded >= 20, "{direction:?}: {counters:?}");
        assert_eq!(
            counters.forwarded, counters.received,
            "{direction:?}: nothing dropped"
        );
        assert_eq!(counters.in_flight, 0);
    }
}

#[test]
fn blackhole_drops_silently_and_up_restores() {
    if !netns_available_for_test("blackhole_drops_silently_and_up_restores") {
        return;
    }
    let lab = Lab::start(LinkParams::default());
    let (echo, client) = lab.echo_pair();
    assert_eq!(
        lab.probe(&echo, &client, 5, MS, Duration::from_secs(2))
            .len(),
        5
    );

    lab.forwarder
        .set_condition(0, LinkCondition::Blackhole)
        .unwrap();
    let lost = lab.probe(&echo, &client, 5, MS, 100 * MS);
    assert!(lost.is_empty(), "nothing crosses a blackhole: {lost:?}");
    let up = lab.forwarder.counters(0, Direction::Up).unwrap();
    assert!(up.dropped(DropReason::Blackhole) >= 5, "{up:?}");

    lab.forwarder.set_condition(0, LinkCondition::Up).unwrap();
    assert_eq!(
        lab.probe(&echo, &client, 5, MS, Duration::from_secs(2))
            .len(),
        5
    );
}

#[test]
fn carrier_down_drops_and_the_link_recovers_after_up() {
    if !netns_available_for_test("carrier_down_drops_and_the_link_recovers_after_up") {
        return;
    }
    let lab = Lab::start(LinkParams::default());
    let (echo, client) = lab.echo_pair();
    assert_eq!(
        lab.probe(&echo, &client, 3, MS, Duration::from_secs(2))
            .len(),
        3
    );

    lab.forwarder.set_condition(0, LinkCondition::Down).unwrap();
    lab.topology.set_carrier(0, false).unwrap();
    assert!(!lab.topology.client_has_carrier(0).unwrap());
    let lost = lab.probe(&echo, &client, 3, MS, 100 * MS);
    assert!(lost.is_empty(), "{lost:?}");

    lab.topology.set_carrier(0, true).unwrap();
    lab.forwarder.set_condition(0, LinkCondition::Up).unwrap();
    // The emu socket on the interface that went down must still receive.
    let back = lab.probe(&echo, &client, 10, 10 * MS, Duration::from_secs(2));
    assert!(
        back.len() >= 8,
        "link works again after up: {} of 10",
        back.len()
    );
}

#[test]
fn parameter_changes_apply_while_running() {
    if !netns_available_for_test("parameter_changes_apply_while_running") {
        return;
    }
    let lab = Lab::start(LinkParams::default());
    let (echo, client) = lab.echo_pair();
    // The first exchange may wait for ARP (up to a second when the first
    // request is lost while the forwarder starts): keep it out of the baseline.
    lab.probe(&echo, &client, 1, MS, Duration::from_secs(3));
    let mut before = lab.probe(&echo, &client, 5, MS, Duration::from_secs(2));
    assert_eq!(before.len(), 5);

    let slower = LinkParams {
        delay: 30 * MS,
        ..LinkParams::default()
    };
    lab.forwarder.set_params(0, &slower).unwrap();
    let mut after = lab.probe(&echo, &client, 5, MS, Duration::from_secs(2));
    assert_eq!(after.len(), 5);
    // 30 ms each way: the round trip grows by 60 ms.
    assert!(
        median(&mut after) >= median(&mut before) + 59 * MS,
        "{after:?} vs {before:?}"
    );
    assert!(lab.forwarder.set_params(1, &slower).is_err(), "no link 1");
}

#[test]
fn loss_drops_about_the_configured_share() {
    if !netns_available_for_test("loss_drops_about_the_configured_share") {
        return;
    }
    let lab = Lab::start(LinkParams {
        loss: 0.3,
        ..LinkParams::default()
    });
    let (echo, client) = lab.echo_pair();
    lab.probe(&echo, &client, 400, Duration::from_micros(200), 200 * MS);
    let up = lab.forwarder.counters(0, Direction::Up).unwrap();
    let lost = up.dropped(DropReason::Loss);
    assert_eq!(up.received, up.forwarded + lost, "{up:?}");
    let share = lost as f64 / up.received as f64;
    assert!((0.2..0.4).contains(&share), "lost share {share}: {up:?}");
}

#[test]
fn client_reaches_the_server_through_the_link_and_the_gateway() {
    if !netns_available_for_test("client_reaches_the_server_through_the_link_and_the_gateway") {
        return;
    }
    let lab = Lab::start(LinkParams::default());
    let link = lab.topology.links()[0].clone();
    lab.topology
        .route_client_via(SERVER_ADDRESS, 32, 0, 0)
        .unwrap();
    let echo =
        UdpEcho::start(lab.socket(Role::Server, SocketAddrV4::new(SERVER_ADDRESS, 0))).unwrap();
    let client = lab.socket(Role::Client, SocketAddrV4::new(link.client_address, 0));
    let rtts = lab.probe(&echo, &client, 5, MS, Duration::from_secs(2));
    assert_eq!(rtts.len(), 5, "routed via the gateway, which forwards");
    assert!(lab.forwarder.counters(0, Direction::Up).unwrap().forwarded >= 5);
}
