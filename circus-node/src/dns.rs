//! Client `dns = [...]`: the TUN link's DNS servers, set through
//! systemd-resolved where it runs, as wg-quick does through `resolvconf`.
//!
//! `resolvectl` is resolved's own client (it speaks the D-Bus interface
//! `org.freedesktop.resolve1`, `SetLinkDNS` and `SetLinkDomains`), so the
//! daemon runs it rather than carrying a D-Bus library. Without resolved
//! the daemon warns and goes on: it never rewrites /etc/resolv.conf, which
//! on such systems belongs to the administrator or another tool.
//! Resolved forgets a link's settings when the link goes, so the TUN
//! device's removal at exit undoes them; `revert` at exit is for tidiness.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

/// Where resolved keeps its runtime state; present exactly while it runs
/// (the test `sd_booted`-style tools use).
const RESOLVED_RUNTIME: &str = "/run/systemd/resolve";

/// What to do about `dns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No servers configured: nothing.
    Nothing,
    /// Run these `resolvectl` argument lists.
    Resolvectl(Vec<Vec<String>>),
    /// Servers configured but no way to set them: warn with this reason.
    Unsupported(&'static str),
}

/// Decides from what the system has: whether resolved runs and whether
/// `resolvectl` exists. `full_tunnel`: the routes include a default route,
/// so every name is resolved through the tunnel (`domain ~.`), not only
/// when no other link claims it.
pub fn decide(
    tun: &str,
    servers: &[IpAddr],
    full_tunnel: bool,
    resolved_runs: bool,
    resolvectl: bool,
) -> Decision {
    if servers.is_empty() {
        return Decision::Nothing;
    }
    if !resolved_runs {
        return Decision::Unsupported("systemd-resolved is not running");
    }
    if !resolvectl {
        return Decision::Unsupported("resolvectl is not installed");
    }
    let mut dns = vec!["dns".to_owned(), tun.to_owned()];
    dns.extend(servers.iter().map(ToString::to_string));
    let mut commands = vec![dns];
    if full_tunnel {
        commands.push(vec!["domain".into(), tun.to_owned(), "~.".into()]);
        commands.push(vec!["default-route".into(), tun.to_owned(), "yes".into()]);
    }
    Decision::Resolvectl(commands)
}

/// Sets the servers on the TUN link `tun`, or warns why it cannot.
pub fn apply(tun: &str, servers: &[IpAddr], full_tunnel: bool) {
    if servers.is_empty() {
        return; // without even looking for resolvectl
    }
    let decision = decide(
        tun,
        servers,
        full_tunnel,
        Path::new(RESOLVED_RUNTIME).is_dir(),
        Command::new("resolvectl").arg("--version").output().is_ok(),
    );
    match decision {
        Decision::Nothing => {}
        Decision::Unsupported(why) => tracing::warn!(
            "dns is set but {why}: the tunnel's DNS servers are not configured (set them in your resolver yourself)"
        ),
        Decision::Resolvectl(commands) => {
            for args in commands {
                resolvectl(&args);
            }
            tracing::info!(servers = ?servers, "DNS servers set on {tun}");
        }
    }
}

/// Drops what [`apply`] set, if resolved runs.
pub fn revert(tun: &str, servers: &[IpAddr]) {
    if !servers.is_empty() && Path::new(RESOLVED_RUNTIME).is_dir() {
        resolvectl(&["revert".to_owned(), tun.to_owned()]);
    }
}

fn resolvectl(args: &[String]) {
    match Command::new("resolvectl").args(args).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            tracing::warn!(args = ?args, error = %String::from_utf8_lossy(&out.stderr).trim(), "resolvectl failed")
        }
        Err(e) => tracing::warn!(args = ?args, error = %e, "cannot run resolvectl"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> Vec<IpAddr> {
        vec!["100.64.0.1".parse().unwrap(), "fd00:64::1".parse().unwrap()]
    }

    #[test]
    fn nothing_configured_does_nothing_anywhere() {
        assert_eq!(decide("t", &[], true, true, true), Decision::Nothing);
        assert_eq!(decide("t", &[], true, false, false), Decision::Nothing);
    }

    #[test]
    fn without_resolved_it_only_warns() {
        assert!(matches!(
            decide("t", &servers(), true, false, true),
            Decision::Unsupported(why) if why.contains("not running")
        ));
        assert!(matches!(
            decide("t", &servers(), true, true, false),
            Decision::Unsupported(why) if why.contains("resolvectl")
        ));
    }

    #[test]
    fn a_full_tunnel_takes_every_name() {
        let Decision::Resolvectl(commands) = decide("circus0", &servers(), true, true, true) else {
            panic!("resolved runs");
        };
        assert_eq!(
            commands,
            [
                vec!["dns", "circus0", "100.64.0.1", "fd00:64::1"],
                vec!["domain", "circus0", "~."],
                vec!["default-route", "circus0", "yes"],
            ]
        );
        let Decision::Resolvectl(split) = decide("circus0", &servers(), false, true, true) else {
            panic!("resolved runs");
        };
        assert_eq!(split, [vec!["dns", "circus0", "100.64.0.1", "fd00:64::1"]]);
    }
}
