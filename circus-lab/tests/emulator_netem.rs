//! The netem backend: detection agrees with the kernel's configuration, a
//! request for netem where it is missing fails with a clear error, and the
//! bridged path netem uses carries traffic.

use std::io::Read;
use std::net::SocketAddrV4;
use std::time::Duration;

use circus_lab::emulator::forwarder::capacity::{UdpEcho, round_trips};
use circus_lab::emulator::model::{LinkCondition, LinkParams};
use circus_lab::emulator::netem::{self, NetemError, ResolvedBackend};
use circus_lab::scenario::Backend;
use circus_lab::topology::{Role, Topology, TopologyConfig, netns_available_for_test};

fn topology() -> Topology {
    Topology::build(&TopologyConfig {
        tag: "t".into(),
        links: 1,
    })
    .unwrap()
}

/// What /proc/config.gz says about netem, if the kernel exposes its config.
fn configured_netem() -> Option<bool> {
    let file = std::fs::File::open("/proc/config.gz").ok()?;
    let mut config = String::new();
    flate_decode(file, &mut config)?;
    Some(
        config
            .lines()
            .any(|l| l == "CONFIG_NET_SCH_NETEM=y" || l == "CONFIG_NET_SCH_NETEM=m"),
    )
}

/// gunzip via the system's `gzip -dc` (test-only; the lab itself needs no binaries).
fn flate_decode(file: std::fs::File, out: &mut String) -> Option<()> {
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    child.stdout.take()?.read_to_string(out).ok()?;
    child.wait().ok()?.success().then_some(())
}

#[test]
fn detection_matches_the_kernel_configuration() {
    if !netns_available_for_test("detection_matches_the_kernel_configuration") {
        return;
    }
    let topology = topology();
    let detected = netem::kernel_has_netem(&topology).unwrap();
    match configured_netem() {
        Some(configured) => assert_eq!(detected, configured),
        None => eprintln!("no readable /proc/config.gz; netem detected: {detected}"),
    }
}

#[test]
fn backends_resolve_and_missing_netem_is_a_clear_error() {
    if !netns_available_for_test("backends_resolve_and_missing_netem_is_a_clear_error") {
        return;
    }
    let topology = topology();
    let has_netem = netem::kernel_has_netem(&topology).unwrap();
    assert_eq!(
        netem::resolve(Backend::Userspace, &topology).unwrap(),
        ResolvedBackend::Userspace
    );
    let auto = netem::resolve(Backend::Auto, &topology).unwrap();
    let requested = netem::resolve(Backend::Netem, &topology);
    if has_netem {
        assert_eq!(auto, ResolvedBackend::Netem);
        assert_eq!(requested.unwrap(), ResolvedBackend::Netem);
    } else {
        assert_eq!(auto, ResolvedBackend::Userspace);
        let error = requested.unwrap_err();
        assert!(matches!(error, NetemError::Unsupported), "{error:?}");
        assert!(error.to_string().contains("no netem qdisc"), "{error}");
    }
}

#[test]
fn bridged_link_carries_traffic_and_netem_delays_it_where_present() {
    if !netns_available_for_test("bridged_link_carries_traffic_and_netem_delays_it_where_present") {
        return;
    }
    let topology = topology();
    let link = topology.links()[0].clone();
    let bind = |role: Role, address| {
        topology
            .netns(role)
            .run(|| std::net::UdpSocket::bind(SocketAddrV4::new(address, 0)))
            .unwrap()
            .unwrap()
    };
    let echo = UdpEcho::start(bind(Role::Gateway, link.gateway_address)).unwrap();
    let client = bind(Role::Client, link.client_address);
    let ms = Duration::from_millis(1);

    if netem::kernel_has_netem(&topology).unwrap() {
        let params = LinkParams {
            delay: 20 * ms,
            ..LinkParams::default()
        };
        netem::install(&topology, &[params]).unwrap();
        let mut rtts =
            round_trips(&client, echo.address(), 10, 10 * ms, Duration::from_secs(1)).unwrap();
        assert!(rtts.len() >= 9);
        rtts.sort();
        assert!(rtts[rtts.len() / 2] >= 40 * ms, "{rtts:?}");
    } else {
        topology.bridge_link(0).unwrap();
        let rtts = round_trips(&client, echo.address(), 10, ms, Duration::from_secs(2)).unwrap();
        assert_eq!(
            rtts.len(),
            10,
            "the kernel bridge forwards between the emu ends"
        );
        let error =
            netem::apply(&topology, 0, &LinkParams::default(), LinkCondition::Up).unwrap_err();
        assert!(error.to_string().contains("netem"), "{error}");
    }
}
