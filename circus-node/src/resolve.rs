//! Gateway host names: resolved when the config is read, and again, off
//! the packet path, when the gateway has been lost for a while (its address
//! may have changed) or a link cannot use the address family it was given.
//!
//! Lookups use the system resolver (`getaddrinfo`, so /etc/hosts, DNS and
//! nsswitch as every other program sees them). A lookup blocks, so the
//! daemon runs it on tokio's blocking pool and hears the answer as one more
//! event; [`ReResolve`] decides when to ask, with the time passed in.

use crate::config::LinkConfig;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How long every link must have been without the gateway before its name
/// is looked up again: long enough that a short outage of all links (a
/// tunnel through a train station) does not query DNS, short enough that a
/// gateway that moved is found again within seconds.
pub const LOST_FOR: Duration = Duration::from_secs(5);

/// Longest wait between lookups that keep failing or keep giving the same
/// address: a resolver that is down is not asked many times a minute.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How often the daemon looks at whether a lookup is due: the trigger's
/// resolution, far finer than [`LOST_FOR`].
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// `host:port` of a gateway given by name, if `text` has that shape: a
/// port from 1 to 65535 and a host made of letters, digits, `-` and `.`
/// (what DNS and /etc/hosts names use; anything else is a typo, not a
/// name to look up).
pub fn split_host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let valid = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['-', '.'])
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then_some((host, port))
}

/// The addresses `host` resolves to, with `port`, in the resolver's order
/// of preference; never empty. Blocks for as long as the resolver takes.
pub fn lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in (host, port).to_socket_addrs()? {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the name has no IPv4 or IPv6 address",
        ));
    }
    Ok(addrs)
}

/// Which of `addrs` a link should send to: the one it uses now if still
/// among them and usable (several A records must not make it hop), else the
/// first it can use (a link with only IPv6 takes the AAAA record), else the
/// first.
pub fn prefer(
    addrs: &[SocketAddr],
    current: SocketAddr,
    usable: impl Fn(SocketAddr) -> bool,
) -> Option<SocketAddr> {
    if addrs.contains(&current) && usable(current) {
        return Some(current);
    }
    addrs
        .iter()
        .copied()
        .find(|a| usable(*a))
        .or_else(|| addrs.first().copied())
}

/// When to look the gateway's name up again. Pure: the caller says what
/// time it is and what it sees.
#[derive(Debug)]
pub struct ReResolve {
    /// Since when no link has had the gateway.
    lost_since: Option<Instant>,
    /// No lookup before this (backoff after one that changed nothing).
    not_before: Option<Instant>,
    /// Wait after the next lookup that changes nothing.
    backoff: Duration,
    in_flight: bool,
}

impl Default for ReResolve {
    fn default() -> Self {
        ReResolve {
            lost_since: None,
            not_before: None,
            backoff: LOST_FOR,
            in_flight: false,
        }
    }
}

impl ReResolve {
    /// Whether to start a lookup now. `lost`: no link has the gateway;
    /// `wrong_family`: some link could send, but not to the address family
    /// it was given. A `true` must be followed by [`finished`](Self::finished).
    pub fn should_start(&mut self, now: Instant, lost: bool, wrong_family: bool) -> bool {
        if lost {
            self.lost_since.get_or_insert(now);
        } else {
            self.lost_since = None;
            if !wrong_family {
                // All well: the next outage starts from a clean slate.
                self.not_before = None;
                self.backoff = LOST_FOR;
                return false;
            }
        }
        if self.in_flight || self.not_before.is_some_and(|t| now < t) {
            return false;
        }
        let lost_long = self
            .lost_since
            .is_some_and(|since| now.saturating_duration_since(since) >= LOST_FOR);
        self.in_flight = wrong_family || lost_long;
        self.in_flight
    }

    /// The lookup started by [`should_start`](Self::should_start) ended;
    /// `changed`: some link now sends to a new address. A new address gets
    /// [`LOST_FOR`] to prove itself; a failure or the same answer waits
    /// twice as long as the last time, up to [`MAX_BACKOFF`].
    pub fn finished(&mut self, now: Instant, changed: bool) {
        self.in_flight = false;
        if changed {
            self.lost_since = None;
            self.backoff = LOST_FOR;
            self.not_before = Some(now + LOST_FOR);
        } else {
            self.not_before = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Each link's lookup result, by link index: `None` for links given by
/// address.
pub type Lookups = Vec<Option<io::Result<Vec<SocketAddr>>>>;

/// What the daemon's loop hears from the [`Resolver`].
pub enum ResolverEvent {
    /// Time to see whether a lookup is due ([`Resolver::check`]).
    Check,
    /// A lookup ended.
    Done(Lookups),
}

/// The client's gateway names: the trigger, and the lookup running on the
/// blocking pool, if any.
pub struct Resolver {
    /// `(host, port)` by link index.
    names: Vec<Option<(String, u16)>>,
    trigger: ReResolve,
    tick: tokio::time::Interval,
    job: Option<JoinHandle<Lookups>>,
}

impl Resolver {
    pub fn new(links: &[LinkConfig]) -> Self {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Resolver {
            names: links
                .iter()
                .map(|l| l.gateway_host.clone().map(|h| (h, l.gateway.port())))
                .collect(),
            trigger: ReResolve::default(),
            tick,
            job: None,
        }
    }

    /// The next event; never, if no link names its gateway. Cancel-safe.
    pub async fn next(&mut self) -> ResolverEvent {
        if self.names.iter().all(Option::is_none) {
            return std::future::pending().await;
        }
        let Some(job) = &mut self.job else {
            self.tick.tick().await;
            return ResolverEvent::Check;
        };
        tokio::select! {
            done = job => {
                self.job = None;
                // A panicked lookup counts as a failed one.
                ResolverEvent::Done(done.unwrap_or_default())
            }
            _ = self.tick.tick() => ResolverEvent::Check,
        }
    }

    /// Starts a lookup on the blocking pool if [`ReResolve`] says so.
    pub fn check(&mut self, now: Instant, lost: bool, wrong_family: bool) {
        if !self.trigger.should_start(now, lost, wrong_family) {
            return;
        }
        tracing::info!(
            lost,
            wrong_family,
            "looking up the gateway's host name again"
        );
        let names = self.names.clone();
        self.job = Some(tokio::task::spawn_blocking(move || {
            names
                .iter()
                .map(|n| n.as_ref().map(|(host, port)| lookup(host, *port)))
                .collect()
        }));
    }

    /// Reports how the lookup's results were used (see [`ReResolve::finished`]).
    pub fn finished(&mut self, now: Instant, changed: bool) {
        self.trigger.finished(now, changed);
    }

    /// The host name of link `i`, for logs.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i)?.as_ref().map(|(h, _)| h.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn host_and_port_shapes() {
        assert_eq!(
            split_host_port("gw.example.net:51820"),
            Some(("gw.example.net", 51820))
        );
        assert_eq!(split_host_port("localhost:1"), Some(("localhost", 1)));
        for bad in [
            "gw.example.net",
            "gw.example.net:0",
            "gw.example.net:70000",
            ":51820",
            "gw example:1",
            "[fd00::1]:x",
            "fd00::1",
            "-gw:1",
            "gw/x:1",
        ] {
            assert_eq!(split_host_port(bad), None, "{bad}");
        }
    }

    #[test]
    fn lookup_reads_the_hosts_file_and_refuses_unknown_names() {
        let addrs = lookup("localhost", 9).unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
        // `.invalid` never resolves (RFC 6761).
        assert!(lookup("circus-test.invalid", 9).is_err());
    }

    #[test]
    fn prefer_keeps_the_current_address_and_matches_the_family() {
        let v4: SocketAddr = "198.18.0.1:1".parse().unwrap();
        let v4b: SocketAddr = "198.18.0.2:1".parse().unwrap();
        let v6: SocketAddr = "[fd00::1]:1".parse().unwrap();
        let any = |_| true;
        assert_eq!(prefer(&[v4, v4b], v4b, any), Some(v4b), "no hopping");
        assert_eq!(prefer(&[v4, v6], v4b, any), Some(v4), "moved: first");
        let v6_only = |a: SocketAddr| a.is_ipv6();
        assert_eq!(prefer(&[v4, v6], v4, v6_only), Some(v6), "AAAA for v6");
        assert_eq!(
            prefer(&[v4], v4b, v6_only),
            Some(v4),
            "nothing usable: first"
        );
        assert_eq!(prefer(&[], v4, any), None);
    }

    #[test]
    fn re_resolves_after_the_gateway_was_lost_for_a_while_with_backoff() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut r = ReResolve::default();
        assert!(!r.should_start(at(0), false, false), "all well");
        assert!(!r.should_start(at(1), true, false), "lost just now");
        assert!(!r.should_start(at(5), true, false), "lost for 4 s");
        assert!(r.should_start(at(6), true, false), "lost for 5 s");
        assert!(!r.should_start(at(7), true, false), "one at a time");
        r.finished(at(7), false);
        assert!(!r.should_start(at(11), true, false), "backoff 5 s");
        assert!(r.should_start(at(12), true, false));
        r.finished(at(12), false);
        assert!(!r.should_start(at(21), true, false), "backoff 10 s");
        assert!(r.should_start(at(22), true, false));
        for _ in 0..10 {
            r.finished(at(22), false);
            assert!(r.should_start(at(10_000), true, false));
        }
        r.finished(at(100), false);
        assert!(!r.should_start(at(159), true, false), "at most 60 s");
        assert!(r.should_start(at(160), true, false));
        // A new address gets its own 5 s.
        r.finished(at(160), true);
        assert!(!r.should_start(at(164), true, false));
        assert!(!r.should_start(at(168), true, false), "lost again at 164");
        assert!(r.should_start(at(169), true, false));
        r.finished(at(169), false);
        // Back: the next outage starts from scratch.
        assert!(!r.should_start(at(170), false, false));
        assert!(!r.should_start(at(171), true, false));
        assert!(r.should_start(at(176), true, false), "5 s, not the backoff");
    }

    #[test]
    fn a_link_that_cannot_use_the_family_asks_at_once() {
        let t0 = Instant::now();
        let mut r = ReResolve::default();
        assert!(r.should_start(t0, false, true));
        r.finished(t0, false);
        let later = t0 + LOST_FOR;
        assert!(!r.should_start(later - Duration::from_millis(1), false, true));
        assert!(r.should_start(later, false, true), "then with backoff");
    }

    proptest! {
        #[test]
        fn split_never_panics(s in "\\PC{0,60}") {
            if let Some((host, port)) = split_host_port(&s) {
                prop_assert!(s.starts_with(host) && port > 0);
            }
        }
    }
}
