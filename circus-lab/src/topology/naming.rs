//! Names of the namespaces a run creates: `cl<tag>-<pid>-<instance>-<role>`
//! (`cl` is replaced by `$CIRCUS_NETNS_PREFIX` if set), and of its run
//! directory for files (status sockets): `cl<tag>-<pid>-<instance>-files`.
//!
//! The pid is in the name so that a later run can tell leftovers of a killed
//! process (pid dead: sweep them) from namespaces of a run still going (pid
//! alive: leave them). The instance number separates several topologies of one
//! process (parallel tests). The tag separates users of the scheme: the lab's
//! runs use [`RUN_TAG`], tests use their own, so a sweep only ever touches
//! names of its own tag.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// Every name starts with this, so all lab namespaces sort together in `ip netns`.
const DEFAULT_NAME_START: &str = "cl";
/// Replaces [`DEFAULT_NAME_START`] when set (lowercase letters, 1 to 8), so
/// checkouts sharing a machine keep their namespaces apart.
pub const NAME_START_ENV: &str = "CIRCUS_NETNS_PREFIX";

/// The start of every namespace name of this process.
pub fn name_start() -> &'static str {
    static START: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    START.get_or_init(|| match std::env::var(NAME_START_ENV) {
        Ok(start) if validate_tag(&start).is_ok() => start,
        _ => DEFAULT_NAME_START.to_owned(),
    })
}

/// Last word of a run directory's name, where a namespace name has its role.
const FILES: &str = "files";

/// Tag of the lab's real runs (`circus-lab run`).
pub const RUN_TAG: &str = "r";

/// The role of a namespace in the topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The site with the bad links: runs the client side of each system.
    Client,
    /// The link emulator: forwards frames between the two halves of each link.
    Emu,
    /// The well-connected host at the far end of the links.
    Gateway,
    /// "The Internet" behind the gateway.
    Server,
}

impl Role {
    /// All roles, in the order they are created.
    pub const ALL: [Role; 4] = [Role::Client, Role::Emu, Role::Gateway, Role::Server];

    /// The role's word in namespace names.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Emu => "emu",
            Role::Gateway => "gateway",
            Role::Server => "server",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tag that is not usable in namespace names.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("namespace tag {tag:?}: expected 1 to 8 ASCII lowercase letters or digits")]
pub struct InvalidTag {
    /// The tag as given.
    pub tag: String,
}

/// The prefix shared by the namespaces of one topology: `cl<tag>-<pid>-<instance>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunPrefix {
    tag: String,
    pid: u32,
    instance: u32,
}

/// Topologies built so far by this process; makes each prefix unique.
static NEXT_INSTANCE: AtomicU32 = AtomicU32::new(0);

impl RunPrefix {
    /// A fresh prefix for this process with the given tag.
    pub fn new(tag: &str) -> Result<RunPrefix, InvalidTag> {
        validate_tag(tag)?;
        Ok(RunPrefix {
            tag: tag.to_owned(),
            pid: std::process::id(),
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The namespace name of `role` under this prefix.
    pub fn namespace(&self, role: Role) -> String {
        format!("{self}-{role}")
    }

    /// The name of the run directory under this prefix.
    pub fn files(&self) -> String {
        format!("{self}-{FILES}")
    }

    /// The tag this prefix was made with.
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

impl fmt::Display for RunPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}-{}-{}",
            name_start(),
            self.tag,
            self.pid,
            self.instance
        )
    }
}

/// The process id in a namespace name of the scheme with tag `tag`, or
/// `None` if the name belongs to another tag or is not of the scheme.
pub fn owner_pid(name: &str, tag: &str) -> Option<u32> {
    let (pid, role) = split(name, tag)?;
    Role::ALL.iter().any(|r| r.as_str() == role).then_some(pid)
}

/// The process id in a run directory name of the scheme with tag `tag`
/// (see [`RunPrefix::files`]), or `None`.
pub fn files_owner_pid(name: &str, tag: &str) -> Option<u32> {
    let (pid, last) = split(name, tag)?;
    (last == FILES).then_some(pid)
}

/// The pid and the last word of a name of the scheme with tag `tag`.
fn split<'a>(name: &'a str, tag: &str) -> Option<(u32, &'a str)> {
    let rest = name.strip_prefix(name_start())?.strip_prefix(tag)?;
    let mut parts = rest.strip_prefix('-')?.split('-');
    let pid = parts.next()?.parse::<u32>().ok()?;
    let instance = parts.next()?;
    let last = parts.next()?;
    let well_formed = parts.next().is_none()
        && !instance.is_empty()
        && instance.bytes().all(|b| b.is_ascii_digit());
    well_formed.then_some((pid, last))
}

fn validate_tag(tag: &str) -> Result<(), InvalidTag> {
    let ok = (1..=8).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(InvalidTag {
            tag: tag.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_to_their_pid() {
        let prefix = RunPrefix::new("t").unwrap();
        for role in Role::ALL {
            let name = prefix.namespace(role);
            assert!(name.starts_with(&format!("{}t-", name_start())), "{name}");
            assert_eq!(owner_pid(&name, "t"), Some(std::process::id()));
        }
        assert_eq!(owner_pid(&prefix.files(), "t"), None);
        assert_eq!(
            files_owner_pid(&prefix.files(), "t"),
            Some(std::process::id())
        );
        assert_eq!(files_owner_pid(&prefix.namespace(Role::Emu), "t"), None);
    }

    #[test]
    fn each_prefix_of_a_process_is_unique() {
        let a = RunPrefix::new("t").unwrap();
        let b = RunPrefix::new("t").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn names_of_other_tags_or_shapes_are_not_ours() {
        let name = |rest: &str| format!("{}{rest}", name_start());
        assert_eq!(owner_pid(&name("t-12-0-emu"), "t"), Some(12));
        assert_eq!(owner_pid(&name("t-12-0-emu"), "r"), None);
        assert_eq!(owner_pid(&name("tx-12-0-emu"), "t"), None);
        assert_eq!(owner_pid(&name("t-12-0-router"), "t"), None);
        assert_eq!(owner_pid(&name("t-12-emu"), "t"), None);
        assert_eq!(owner_pid(&name("t-12-0-emu-x"), "t"), None);
        assert_eq!(owner_pid(&name("t-x-0-emu"), "t"), None);
        assert_eq!(owner_pid("other", "t"), None);
    }

    #[test]
    fn tags_must_be_short_lowercase_words() {
        assert!(RunPrefix::new("").is_err());
        assert!(RunPrefix::new("a-b").is_err());
        assert!(RunPrefix::new("Tag").is_err());
        assert!(RunPrefix::new("abcdefghi").is_err());
        assert!(RunPrefix::new("lab1").is_ok());
    }
}
