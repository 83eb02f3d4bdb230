//! Gateway `nat = true`: the kernel forwards between the TUN device and the
//! uplink, and masquerades the tunnel prefixes behind the uplink's address,
//! so clients reach the Internet without the network routing the tunnel
//! subnet to this host.
//!
//! Masquerading is an nftables table of the daemon's own, `inet
//! circus-<tun>`, replaced in one `nft -f` transaction (create, delete,
//! create: atomic, and clears a table a killed run left) and deleted at
//! exit. `nft` is the tool every Debian system with nftables has; the
//! netlink protocol of nftables has no well-kept Rust crate that builds
//! NAT rules, and one short script read by `nft` is easy to audit.
//!
//! Forwarding is switched on through /proc/sys (per network namespace) and
//! switched back off at exit only if this daemon switched it on.

use crate::config::GatewayConfig;
use circus_core::engine::IpPrefix;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const FORWARD_V4: &str = "/proc/sys/net/ipv4/ip_forward";
const FORWARD_V6: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

#[derive(Debug, thiserror::Error)]
pub enum NatError {
    #[error("cannot turn on forwarding in {path}: {source}")]
    Forwarding {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run `nft` for nat = true: {0} (install the nftables package)")]
    Spawn(#[source] std::io::Error),
    #[error("`nft` refused the masquerade table: {0}")]
    Nft(String),
    #[error("nat = true needs a TUN name nftables can quote (no '\"' or '\\'), not {0:?}")]
    Name(String),
}

/// Forwarding and masquerading set up by [`Nat::start`]; undone by
/// [`Nat::stop`].
pub struct Nat {
    table: String,
    /// Forwarding switches this daemon turned on.
    switched_on: Vec<&'static str>,
}

impl Nat {
    /// Turns on forwarding and installs the masquerade table.
    pub fn start(config: &GatewayConfig) -> Result<Nat, NatError> {
        let tun = &config.tun.name;
        if tun.contains(['"', '\\']) {
            return Err(NatError::Name(tun.clone()));
        }
        let prefixes = tunnel_prefixes(config);
        let mut switched_on = Vec::new();
        let v6 = prefixes.iter().any(|p| p.addr().is_ipv6());
        for path in std::iter::once(FORWARD_V4).chain(v6.then_some(FORWARD_V6)) {
            if enable(path).map_err(|source| NatError::Forwarding { path, source })? {
                switched_on.push(path);
            }
        }
        let nat = Nat {
            table: table_name(tun),
            switched_on,
        };
        nft(&ruleset(&nat.table, tun, &prefixes))?;
        tracing::info!(table = %nat.table, prefixes = prefixes.len(), "forwarding and masquerading the tunnel prefixes");
        Ok(nat)
    }

    /// Deletes the table and turns off what [`Nat::start`] turned on.
    pub fn stop(self) {
        if let Err(e) = nft(&deletion(&self.table)) {
            tracing::warn!(error = %e, table = %self.table, "cannot delete the masquerade table");
        }
        for path in self.switched_on {
            if let Err(e) = std::fs::write(path, "0") {
                tracing::warn!(error = %e, path, "cannot turn forwarding off again");
            }
        }
    }
}

/// Writes 1 to a forwarding switch; whether it was off before.
fn enable(path: &'static str) -> std::io::Result<bool> {
    let was_on = std::fs::read_to_string(Path::new(path))?.trim() == "1";
    if !was_on {
        std::fs::write(path, "1")?;
    }
    Ok(!was_on)
}

/// `circus-<tun>`, with anything nftables would not take as a name part
/// replaced by `_`.
pub fn table_name(tun: &str) -> String {
    let safe: String = tun
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("circus-{safe}")
}

/// The prefixes clients send from: the tunnel subnet and every client's
/// tunnel addresses (site subnets included), without those another
/// already covers: one rule per distinct range, as `nft list` then shows.
pub fn tunnel_prefixes(config: &GatewayConfig) -> Vec<IpPrefix> {
    // Errors only for a hand-built prefix longer than its family allows.
    let subnets =
        (config.tun.address.subnets()).filter_map(|(addr, len)| IpPrefix::new(addr, len).ok());
    let all: Vec<IpPrefix> = subnets
        .chain(
            config
                .clients
                .iter()
                .flat_map(|c| c.tunnel_addresses.iter().copied()),
        )
        .collect();
    let mut kept: Vec<IpPrefix> = Vec::new();
    for (i, p) in all.iter().enumerate() {
        let covered = all.iter().enumerate().any(|(j, q)| {
            j != i && q.len() <= p.len() && q.contains(p.addr()) && (q.len() < p.len() || j < i)
        });
        if !covered {
            kept.push(*p);
        }
    }
    kept
}

/// The nft script that replaces the table atomically: masquerade what
/// comes from the tunnel prefixes and leaves by any interface but the TUN.
pub fn ruleset(table: &str, tun: &str, prefixes: &[IpPrefix]) -> String {
    let mut script = deletion(table);
    script += &format!(
        "table inet {table} {{\n\tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
    );
    for prefix in prefixes {
        let family = if prefix.addr().is_ipv4() { "ip" } else { "ip6" };
        script += &format!("\t\toifname != \"{tun}\" {family} saddr {prefix} masquerade\n");
    }
    script + "\t}\n}\n"
}

/// Deletes the table whether or not it exists (declaring it first makes
/// the delete valid).
fn deletion(table: &str) -> String {
    format!("table inet {table}\ndelete table inet {table}\n")
}

/// Runs `nft -f -` on `script`.
fn nft(script: &str) -> Result<(), NatError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NatError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(NatError::Spawn)?;
    }
    let output = child.wait_with_output().map_err(NatError::Spawn)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NatError::Nft(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;
    use std::path::Path;

    fn gateway(clients: &str) -> GatewayConfig {
        let key = circus_core::crypto::generate_keypair().unwrap().0;
        let text = format!(
            "private_key = \"{key}\"\nlisten = \"0.0.0.0:1\"\nnat = true\n[tun]\naddress = \"100.64.0.1/10\"\n{clients}"
        );
        GatewayConfig::parse(Path::new("gateway.toml"), &text).unwrap()
    }

    fn client(n: u8, addresses: &str) -> String {
        let public = circus_core::crypto::generate_keypair().unwrap().1;
        format!(
            "[[client]]\nname = \"c{n}\"\npublic_key = \"{public}\"\ntunnel_addresses = [{addresses}]\n"
        )
    }

    #[test]
    fn the_subnet_covers_clients_addresses_but_not_their_sites() {
        let config = gateway(
            &(client(1, "\"100.64.0.2/32\", \"10.20.0.0/16\"")
                + &client(2, "\"100.64.0.3\", \"fd00:64::3/128\"")),
        );
        assert!(config.nat);
        let prefixes: Vec<String> = tunnel_prefixes(&config)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            prefixes,
            ["100.64.0.0/10", "10.20.0.0/16", "fd00:64::3/128"]
        );
    }

    #[test]
    fn the_script_replaces_the_table_in_one_transaction() {
        let prefixes = [
            "100.64.0.0/10".parse().unwrap(),
            "fd00::/64".parse().unwrap(),
        ];
        let script = ruleset("circus-gw0", "gw0", &prefixes);
        assert_eq!(
            script,
            "table inet circus-gw0\ndelete table inet circus-gw0\n\
             table inet circus-gw0 {\n\tchain postrouting {\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\toifname != \"gw0\" ip saddr 100.64.0.0/10 masquerade\n\
             \t\toifname != \"gw0\" ip6 saddr fd00::/64 masquerade\n\t}\n}\n"
        );
    }

    #[test]
    fn table_names_keep_to_what_nft_parses() {
        assert_eq!(table_name("circus-gw"), "circus-circus-gw");
        assert_eq!(table_name("tun.0@x"), "circus-tun_0_x");
    }
}
