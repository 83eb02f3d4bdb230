//! The command line: help, keygen output, config errors, status without a
//! daemon. Runs the built binary; needs no privileges.

use std::process::{Command, Output};

fn circus_node(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_circus-node"))
        .args(args)
        .output()
        .expect("run circus-node")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_lists_every_command() {
    let out = circus_node(&["--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for command in ["keygen", "client", "gateway", "status"] {
        assert!(text.contains(command), "{command} in\n{text}");
    }
    let client = stdout(&circus_node(&["client", "--help"]));
    assert!(
        client.contains("--config <FILE>") && client.contains("--check"),
        "{client}"
    );
}

#[test]
fn keygen_output_parses_as_config_lines() {
    let out = circus_node(&["keygen"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table: toml::Table = toml::from_str(&stdout(&out)).expect("keygen prints TOML");
    let secret: circus_core::crypto::StaticSecret =
        table["private_key"].as_str().unwrap().parse().unwrap();
    let public: circus_core::crypto::PublicKey =
        table["public_key"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        secret.public_key(),
        public,
        "the printed public key belongs to the secret"
    );

    let again = circus_node(&["keygen"]);
    assert_ne!(stdout(&again), stdout(&out), "every key is new");

    let psk = circus_node(&["keygen", "--psk"]);
    let table: toml::Table = toml::from_str(&stdout(&psk)).unwrap();
    let _: circus_core::crypto::Psk = table["preshared_key"].as_str().unwrap().parse().unwrap();
}

#[test]
fn keygen_out_writes_a_private_file_in_a_new_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("cnd-cli-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("etc-circus/client.key");
    let out = circus_node(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let table: toml::Table = toml::from_str(&stdout(&out)).unwrap();
    assert!(
        table.get("private_key").is_none(),
        "the secret is not printed"
    );
    let public: circus_core::crypto::PublicKey =
        table["public_key"].as_str().unwrap().parse().unwrap();
    let secret: circus_core::crypto::StaticSecret =
        std::fs::read_to_string(&path).unwrap().parse().unwrap();
    assert_eq!(secret.public_key(), public);

    let refused = circus_node(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(!refused.status.success(), "never overwrites a key");
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{secret}\n"),
        "the key is kept"
    );

    let replaced = circus_node(&["keygen", "--out", path.to_str().unwrap(), "--force"]);
    assert!(replaced.status.success(), "{}", stderr(&replaced));
    let new: circus_core::crypto::StaticSecret =
        std::fs::read_to_string(&path).unwrap().parse().unwrap();
    assert_ne!(new.public_key(), public, "--force writes a new key");
    assert_eq!(mode(&path), 0o600);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_errors_name_file_line_and_key() {
    let path = std::env::temp_dir().join(format!("cnd-cli-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "private_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n\
         listen = \"0.0.0.0:51820\"\n[tun]\naddress = \"100.64.0.1/10\"\nmtu = 99999\n",
    )
    .unwrap();
    let out = circus_node(&["gateway", "-c", path.to_str().unwrap(), "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:5:7: key `tun.mtu`: expected an MTU from 576 to 65535",
            path.display()
        )),
        "{err}"
    );
    std::fs::write(&path, "").unwrap();
    let err = stderr(&circus_node(&["client", "-c", path.to_str().unwrap()]));
    assert!(err.contains("missing field"), "{err}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn check_describes_a_valid_config() {
    let path = std::env::temp_dir().join(format!("cnd-cli-ok-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "private_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n\
         listen = \"0.0.0.0:51820\"\n[tun]\naddress = \"100.64.0.1/10\"\n",
    )
    .unwrap();
    let out = circus_node(&["gateway", "-c", path.to_str().unwrap(), "--check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("listen 0.0.0.0:51820"), "{text}");
    assert!(text.contains("tun circus-gw 100.64.0.1/10 mtu "), "{text}");
    assert!(
        text.contains("status socket /run/circus-node/gateway.sock"),
        "{text}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn status_without_a_daemon_says_so() {
    let out = circus_node(&["status", "--socket", "/nonexistent/cnd.sock"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot reach a daemon at /nonexistent/cnd.sock"),
        "{}",
        stderr(&out)
    );
}

/// A gateway host name that does not resolve stops `--check` (and so the
/// daemon's start) with the key and the name; one that does is shown
/// with its address.
#[test]
fn check_resolves_gateway_host_names() {
    let path = std::env::temp_dir().join(format!("cnd-cli-name-{}.toml", std::process::id()));
    let text = |gateway: &str| {
        format!(
            "private_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n\
             gateway_public_key = \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"\n\
             gateway = \"{gateway}\"\n[tun]\naddress = [\"100.64.0.2/10\", \"fd00:64::2/64\"]\n\
             [[link]]\ninterface = \"eth0\"\n"
        )
    };
    std::fs::write(&path, text("circus-test.invalid:51820")).unwrap();
    let out = circus_node(&["client", "-c", path.to_str().unwrap(), "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:3:11: key `gateway`: cannot resolve host name \"circus-test.invalid\"",
            path.display()
        )),
        "{err}"
    );
    std::fs::write(&path, text("localhost:51820")).unwrap();
    let out = circus_node(&["client", "-c", path.to_str().unwrap(), "--check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains("tun circus0 100.64.0.2/10, fd00:64::2/64 mtu "),
        "{shown}"
    );
    assert!(shown.contains(":51820 (localhost) (mtu 1500)"), "{shown}");
    std::fs::remove_file(&path).unwrap();
}
