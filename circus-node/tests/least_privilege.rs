//! The daemons with the privileges the systemd units give them: an
//! unprivileged user whose only capability is an ambient CAP_NET_ADMIN
//! (no CAP_NET_RAW: SO_BINDTODEVICE needs none since Linux 5.7), reading
//! configs and 0600 keys from a 0700 directory of its own, as
//! `circus-node keygen` and the Debian package lay them out. systemd is
//! not needed: `setpriv` sets the same user, capability sets and
//! no_new_privs the units ask systemd for.

mod common;

use common::*;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `nobody`: a user with no privileges and no files of its own.
const UID: u32 = 65534;

/// Runs `setpriv "$@"` (after the first argument, a scratch directory) in
/// the namespace's private mount namespace, where /dev/net/tun is made
/// usable by everyone as Debian's udev rule makes it (mode 0666) when the
/// host's node is not: hosts without udev leave it 0600.
const WITH_OPEN_TUN: &str = r#"dev="$1"; shift
if [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
    mount -t tmpfs tmpfs "$dev" && mknod -m 666 "$dev/tun" c 10 200 &&
        mount --bind "$dev/tun" /dev/net/tun || exit 1
fi
exec setpriv "$@""#;

/// A daemon run from the binary as [`UID`] with CAP_NET_ADMIN alone;
/// killed on drop.
struct Unprivileged {
    child: Child,
    socket: PathBuf,
}

impl Unprivileged {
    fn start(ns: &Netns, binary: &Path, role: &str, config: &Path, socket: &Path) -> Self {
        let caps = "-all,+net_admin";
        let dev = config.with_file_name(format!("dev-{role}"));
        std::fs::create_dir_all(&dev).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "sh", "-c", WITH_OPEN_TUN, "sh"])
            .arg(&dev)
            .args([
                format!("--reuid={UID}"),
                format!("--regid={UID}"),
                "--clear-groups".to_owned(),
                format!("--inh-caps={caps}"),
                format!("--ambient-caps={caps}"),
                format!("--bounding-set={caps}"),
                "--no-new-privs".to_owned(),
            ])
            .arg(binary)
            .args([role, "-c"])
            .arg(config)
            .stderr(Stdio::piped())
            .spawn()
            .expect("run setpriv");
        let mut daemon = Unprivileged {
            child,
            socket: socket.to_owned(),
        };
        let start = Instant::now();
        while circus_node::status::query(socket).is_err() {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                let mut log = String::new();
                use std::io::Read;
                let _ = daemon.child.stderr.take().unwrap().read_to_string(&mut log);
                panic!("the {role} exited ({status}) as uid {UID} with CAP_NET_ADMIN:\n{log}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the {role} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    fn wait_connected(&self) -> circus_node::status::StatusReport {
        let start = Instant::now();
        loop {
            let report = circus_node::status::query(&self.socket).unwrap();
            let up = report
                .sessions
                .iter()
                .all(|s| s.connected && s.links.iter().any(|l| l.state == "up"));
            if up {
                return report;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "not connected: {report:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Unprivileged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `text` to `dir/name` owned by [`UID`] with `mode`.
fn owned_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    chown(&path, Some(UID), Some(UID)).unwrap();
    path
}

#[test]
fn both_daemons_work_as_an_unprivileged_user_with_cap_net_admin_alone() {
    if !require_netns() {
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        let why = "setpriv (util-linux) is missing";
        assert_ne!(
            std::env::var("CIRCUS_REQUIRE_NETNS").as_deref(),
            Ok("1"),
            "CIRCUS_REQUIRE_NETNS=1 but {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let client_ns = Netns::new("lpc");
    let gateway_ns = Netns::new("lpg");
    veth(&client_ns, "cl0", &gateway_ns, "gl0", 0);
    veth(&client_ns, "cl1", &gateway_ns, "gl1", 1);

    // The layout of /etc/circus: a 0700 directory of the daemon's user,
    // 0600 keys. The binary is copied in, so the test works from a
    // checkout the user cannot enter.
    let dir = std::env::temp_dir().join(format!("cnd-lp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown(&dir, Some(UID), Some(UID)).unwrap();
    let binary = dir.join("circus-node");
    std::fs::copy(env!("CARGO_BIN_EXE_circus-node"), &binary).unwrap();

    let (gateway_secret, gateway_public) = circus_core::crypto::generate_keypair().unwrap();
    let id = ClientIdentity::new(2);
    owned_file(&dir, "gateway.key", &format!("{gateway_secret}\n"), 0o600);
    owned_file(&dir, "client.key", &format!("{}\n", id.secret), 0o600);
    let gateway_socket = dir.join("gateway.sock");
    let client_socket = dir.join("client.sock");
    let gateway_config = owned_file(
        &dir,
        "gateway.toml",
        &format!(
            "private_key_file = \"gateway.key\"\nlisten = \"0.0.0.0:{GATEWAY_PORT}\"\n\
             [tun]\nname = \"cnd-gw\"\naddress = \"{GATEWAY_TUNNEL}/24\"\n\
             [observe]\nstatus_socket = \"{}\"\n\
             [[client]]\nname = \"home\"\npublic_key = \"{}\"\n\
             tunnel_addresses = [\"{}/32\"]\n",
            gateway_socket.display(),
            id.public,
            id.tunnel
        ),
        0o600,
    );
    let client_config = owned_file(
        &dir,
        "client.toml",
        &format!(
            "private_key_file = \"client.key\"\ngateway_public_key = \"{gateway_public}\"\n\
             [tun]\nname = \"cnd-tun\"\naddress = \"{}/24\"\n\
             [observe]\nstatus_socket = \"{}\"\n\
             [[link]]\ninterface = \"cl0\"\ngateway = \"198.18.0.1:{GATEWAY_PORT}\"\n\
             [[link]]\ninterface = \"cl1\"\ngateway = \"198.18.1.1:{GATEWAY_PORT}\"\n",
            id.tunnel,
            client_socket.display()
        ),
        0o600,
    );

    let gateway = Unprivileged::start(
        &gateway_ns,
        &binary,
        "gateway",
        &gateway_config,
        &gateway_socket,
    );
    let client = Unprivileged::start(
        &client_ns,
        &binary,
        "client",
        &client_config,
        &client_socket,
    );
    // Both links bound to their interfaces and judged up: SO_BINDTODEVICE
    // worked without CAP_NET_RAW.
    let report = client.wait_connected();
    assert!(
        report.sessions[0].links.iter().all(|l| l.interface == "up"),
        "{report:?}"
    );
    gateway.wait_connected();

    // The TUN devices were made and addressed by the unprivileged daemons:
    // traffic crosses the tunnel.
    udp_echo(&gateway_ns, std::net::SocketAddr::from((GATEWAY_TUNNEL, 7)));
    let echo = echo_stream(
        &client_ns,
        std::net::SocketAddr::from((GATEWAY_TUNNEL, 7)),
        200,
        500,
        100,
    );
    assert_eq!(echo.received, echo.sent, "{echo:?}");

    drop(client);
    drop(gateway);
    std::fs::remove_dir_all(&dir).unwrap();
}
