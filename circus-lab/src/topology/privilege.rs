//! Whether this process may build namespaces, said in one line.

/// `CAP_NET_ADMIN`: interfaces, addresses, routes, packet sockets.
const CAP_NET_ADMIN: u32 = 12;
/// `CAP_SYS_ADMIN`: `unshare`, `setns` and the bind mounts of `/run/netns`.
const CAP_SYS_ADMIN: u32 = 21;

/// Env variable that turns a skipped namespace test into a failure (CI).
pub const REQUIRE_NETNS_ENV: &str = "CIRCUS_REQUIRE_NETNS";

/// Why namespaces cannot be built here. Its `Display` is the one line to show.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "circus-lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to build network namespaces; missing: {missing} (try sudo)"
)]
pub struct NotPrivileged {
    /// The missing capabilities, e.g. "CAP_NET_ADMIN".
    pub missing: String,
}

/// Checks that this process holds the capabilities to build a topology.
pub fn require_netns() -> Result<(), NotPrivileged> {
    let effective = effective_capabilities();
    let missing: Vec<&str> = [
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    ]
    .into_iter()
    .filter(|(bit, _)| effective & (1u64 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(NotPrivileged {
            missing: missing.join(", "),
        })
    }
}

/// For tests that need namespaces: `true` if they can run. Otherwise prints
/// why `test` is skipped and returns `false`, or panics with that reason when
/// `CIRCUS_REQUIRE_NETNS=1` (CI must not skip silently).
pub fn netns_available_for_test(test: &str) -> bool {
    match require_netns() {
        Ok(()) => true,
        Err(reason) if std::env::var(REQUIRE_NETNS_ENV).is_ok_and(|v| v == "1") => {
            panic!("{test}: {reason} ({REQUIRE_NETNS_ENV}=1 forbids skipping)")
        }
        Err(reason) => {
            eprintln!("skipping {test}: {reason}");
            false
        }
    }
}

/// The effective capability set from `/proc/self/status` (`CapEff`, hex);
/// empty if it cannot be read.
fn effective_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}
