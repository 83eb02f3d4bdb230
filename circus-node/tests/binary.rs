//! The binary as systemd runs it: started from a config file, stopped with
//! SIGTERM, leaving nothing behind.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn gateway_binary_stops_cleanly_on_sigterm() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("bin");
    let (secret, _) = circus_core::crypto::generate_keypair().unwrap();
    let (_, client_public) = circus_core::crypto::generate_keypair().unwrap();
    let dir = std::env::temp_dir().join(format!("cnd-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("gateway.sock");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "private_key = \"{secret}\"\nlisten = \"0.0.0.0:{GATEWAY_PORT}\"\n\
             [tun]\nname = \"cnd-gw\"\naddress = \"100.64.0.1/24\"\n\
             [observe]\nstatus_socket = \"{}\"\n\
             [[client]]\nname = \"home\"\npublic_key = \"{client_public}\"\n\
             tunnel_addresses = [\"100.64.0.2/32\"]\n",
            socket.display()
        ),
    )
    .unwrap();
    let mut daemon = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            env!("CARGO_BIN_EXE_circus-node"),
            "gateway",
            "-c",
        ])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while circus_node::status::query(&socket).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the gateway did not start"
        );
        assert!(daemon.try_wait().unwrap().is_none(), "the gateway exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = circus_node::status::query(&socket).unwrap();
    assert_eq!(report.role, "gateway");
    assert_eq!(report.sessions[0].name, "home");
    assert!(!report.sessions[0].connected);
    ns.ip(&["link", "show", "cnd-gw"]);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let output = daemon.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit status {:?}; log:\n{log}",
        output.status
    );
    assert!(
        log.contains("gateway running") && log.contains("SIGTERM"),
        "{log}"
    );
    assert!(!socket.exists(), "status socket removed");
    let tun = Command::new("ip")
        .args(["-n", &ns.name, "link", "show", "cnd-gw"])
        .output()
        .unwrap();
    assert!(!tun.status.success(), "TUN device removed");
    std::fs::remove_dir_all(&dir).unwrap();
}
