//! Which link(s) carry each packet.
//!
//! The engine builds a [`PathView`] per link (a copyable snapshot, no
//! allocation) and asks [`Scheduler::pick`] for a [`Selection`] of links, up
//! to [`MAX_LINKS`]. Only usable links (`Up` or `Suspect`) that can take the
//! packet without exceeding their in-flight cap are ever picked; when there
//! is none the selection is empty and the engine drops or briefly queues.
//!
//! Policies:
//! - `balanced` (default): the one link that delivers soonest, in the spirit
//!   of ECF ("earliest completion first") and BLEST: estimated one-way delay
//!   (srtt/2) plus the time to drain what is queued ahead of the packet at
//!   the link's measured rate, plus the expected cost of a loss. When that
//!   link has no room the packet waits for it, unless a slower link would
//!   deliver it no later than the soonest link delivers the whole backlog
//!   waiting in the engine, give or take one of that link's round trips
//!   (see [`Scheduler::pick`]). So a slow link adds its capacity only while
//!   the backlog is deep enough to hide its delay, and a 600 ms link never
//!   turns a 20 ms link's flows into 600 ms ones. Healthy links (`Up`, loss
//!   below [`LOSSY_THRESHOLD`]) come first; suspect or lossy ones only when
//!   no healthy link is usable.
//! - `adaptive`: the soonest link, healthy or not, plus a duplicate on the
//!   best other link while the first is suspect or lossy, so a link that dies
//!   silently loses nothing while it is being judged.
//! - `redundant`: every usable link (engarde-like; N times the bandwidth).
//! - `round-robin`: rotate over the usable links, for comparison.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::LinkId;
use crate::paths::{Path, PathState};

/// Most links one scheduling decision considers; views beyond are ignored.
pub const MAX_LINKS: usize = 16;

/// Loss rate above which a link counts as lossy: balanced avoids it while a
/// clean link can send, adaptive duplicates what goes on it.
///
/// 10%: far above the 1-2% of ordinary wifi, which should stay in use, and
/// below the loss at which TCP through the tunnel collapses.
pub const LOSSY_THRESHOLD: f32 = 0.10;

/// How many copies of a packet worth copies go out
/// ([`Scheduler::pick_soonest`]): one on each of the `total` soonest links,
/// and where fewer links can send, more on the soonest ones again, up to
/// `per_link` on one link; on a link alone, only while no bulk packet
/// waits for room.
///
/// With a single link able to send, a second copy on it guards only against
/// that link's random loss (a resend round trip), and while bulk packets
/// wait for the link it takes the light flow's bandwidth a second time from
/// them: on one 20 Mbit/s link the lab's 1000 pps probe stream doubled cost
/// TCP 16% of the link, a quarter of its goodput with the headers (the
/// tunnel must never do worse than the best link alone). With no bulk
/// waiting the copy costs nothing, and it still spares a light flow the
/// resend after a loss on the last link left (a satellite link's round
/// trip, in the asymmetric-latency scenario).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copies {
    pub total: usize,
    pub per_link: usize,
}

impl Copies {
    /// One copy: the policy alone decides where the packet goes.
    pub const ONE: Copies = Copies {
        total: 1,
        per_link: 1,
    };
}

/// Copies of a light flow's packet.
///
/// Three links: with two copies, a packet sent in the few tens of
/// milliseconds before a silent link death is noticed has one live copy
/// left, and losing that to ordinary wifi loss costs a resend, a round trip
/// on a surviving link (the worst single-connection outages in the flappy
/// lab runs, 55-68 ms). A third copy on the next link covers it, and the
/// rare loss of both copies on healthy links too. In 4 alternating runs
/// each of flappy in namespaces, the worst per-connection outage went from
/// 36-68 ms to 29-51 ms, for about 4% of the TCP goodput (the copies take
/// room on the slowest link).
///
/// Two on one link: while one of flappy's three links is down, the two left
/// carry one copy each, and losing both (0.5% loss each, a few times a run)
/// again costs a resend round trip, the remaining tail above 50 ms. A
/// second copy on the soonest link makes that a triple loss. It is not
/// back to back (the other link's copy goes between), but a loss burst on
/// that link can still take both; light flows are light, so the extra copy
/// costs little room. A link left alone gets no second copy (see [`Copies`]).
pub const LIGHT_FLOW_COPIES: Copies = Copies {
    total: 3,
    per_link: 2,
};

/// Copies of a resend, each on its own link: a resend that is lost again
/// costs another round trip, but resends come in bursts after a link death,
/// so more copies would crowd the surviving links just when they take over
/// the dead one's load.
pub const RESEND_COPIES: Copies = Copies {
    total: 2,
    per_link: 1,
};

/// How packets are spread over links; see the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Policy {
    /// One link, the one that delivers soonest ("balanced").
    #[default]
    Balanced,
    /// Every usable link ("redundant").
    Redundant,
    /// Balanced, plus a copy elsewhere while the first link is suspect or
    /// lossy ("adaptive").
    Adaptive,
    /// One link at a time in turn ("round-robin").
    RoundRobin,
}

impl Policy {
    /// All policies, in the order of their documentation.
    pub const ALL: [Policy; 4] = [
        Policy::Balanced,
        Policy::Redundant,
        Policy::Adaptive,
        Policy::RoundRobin,
    ];

    /// The name used in configuration files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Balanced => "balanced",
            Policy::Redundant => "redundant",
            Policy::Adaptive => "adaptive",
            Policy::RoundRobin => "round-robin",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A policy name that is not one of [`Policy::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scheduler policy {given:?}: expected one of balanced, redundant, adaptive, round-robin"
)]
pub struct UnknownPolicy {
    /// The name as given.
    pub given: String,
}

impl FromStr for Policy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownPolicy {
                given: s.to_owned(),
            })
    }
}

/// What the scheduler needs to know about one link for one packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathView {
    pub link: LinkId,
    pub state: PathState,
    /// Smoothed RTT: its half estimates the one-way delay.
    pub srtt: Duration,
    /// RTT without queueing: with `window`, gives the drain rate.
    pub min_rtt: Duration,
    pub rttvar: Duration,
    /// Fraction of recent data packets lost, 0.0 to 1.0.
    pub loss_rate: f32,
    /// Bytes per second.
    pub delivery_rate: u64,
    pub bytes_in_flight: u64,
    /// Bytes the link holds in flight without queueing ([`Path::window`]).
    pub window: u64,
    /// Whether the packet fits under the link's in-flight cap.
    pub can_send: bool,
}

impl PathView {
    /// Snapshot of `path` for scheduling a packet of `len` bytes, `urgent`
    /// if worth a copy (see [`Path::in_flight_cap`]).
    pub fn new(link: LinkId, path: &Path, len: usize, urgent: bool) -> Self {
        PathView {
            link,
            state: path.state(),
            srtt: path.srtt(),
            min_rtt: path.min_rtt(),
            rttvar: path.rttvar(),
            loss_rate: path.loss_rate(),
            delivery_rate: path.delivery_rate(),
            bytes_in_flight: path.bytes_in_flight(),
            window: path.window(),
            can_send: path.can_send(len, urgent),
        }
    }

    /// Usable and room for the packet: the only links ever picked.
    fn is_candidate(&self) -> bool {
        self.state.is_usable() && self.can_send
    }

    /// Up and not lossy.
    fn is_healthy(&self) -> bool {
        self.state == PathState::Up && self.loss_rate <= LOSSY_THRESHOLD
    }

    /// Estimated time until a packet of `len` bytes sent now arrives: half the
    /// smoothed RTT, plus the bytes in flight beyond the link's pipe size
    /// (they sit in a queue) drained at the rate that fills the pipe in one
    /// min RTT.
    fn estimated_delivery(&self, len: usize) -> Duration {
        let pipe = u128::from(self.window.max(1));
        let ahead = u128::from(self.bytes_in_flight) + len as u128;
        let queued = ahead.saturating_sub(pipe);
        // A link with no min RTT measured yet (zero) still takes time to
        // drain a queue; without the floor any backlog would drain at once.
        let drain_nanos = self.min_rtt.as_nanos().max(1_000) * queued / pipe;
        let drain = Duration::from_nanos(u64::try_from(drain_nanos).unwrap_or(u64::MAX));
        self.srtt / 2 + drain
    }

    /// [`estimated_delivery`](Self::estimated_delivery) plus the expected
    /// delay of a loss: a lost packet arrives a resend later, about one
    /// round trip of the link. A link losing 10 % at 500 ms round trip is
    /// 50 ms slower than its delay says.
    fn expected_delivery(&self, len: usize) -> Duration {
        self.estimated_delivery(len) + self.srtt.mul_f32(self.loss_rate.clamp(0.0, 1.0))
    }
}

/// The links chosen for one packet: a small copyable set, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    links: [LinkId; MAX_LINKS],
    len: u8,
}

impl Selection {
    const EMPTY: Selection = Selection {
        links: [LinkId(0); MAX_LINKS],
        len: 0,
    };

    /// Number of links chosen.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// No link can take the packet now.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The links, in the policy's order of preference.
    pub fn as_slice(&self) -> &[LinkId] {
        &self.links[..self.len()]
    }

    /// The links, in the policy's order of preference.
    pub fn iter(&self) -> impl Iterator<Item = LinkId> + '_ {
        self.as_slice().iter().copied()
    }

    /// Whether `link` was chosen.
    pub fn contains(&self, link: LinkId) -> bool {
        self.as_slice().contains(&link)
    }

    /// Adds `link` unless present or full.
    fn push(&mut self, link: LinkId) {
        if !self.contains(link) {
            self.push_copy(link);
        }
    }

    /// Adds `link` even if present (one more copy on it), unless full.
    fn push_copy(&mut self, link: LinkId) {
        if self.len() < MAX_LINKS {
            self.links[self.len()] = link;
            self.len += 1;
        }
    }
}

impl Default for Selection {
    fn default() -> Self {
        Selection::EMPTY
    }
}

/// Applies a [`Policy`] packet by packet; holds the round-robin position.
#[derive(Debug, Clone)]
pub struct Scheduler {
    policy: Policy,
    /// Round robin continues with the first candidate whose id is at least this.
    next_round_robin: u16,
}

impl Scheduler {
    /// A scheduler applying `policy`.
    pub fn new(policy: Policy) -> Self {
        Scheduler {
            policy,
            next_round_robin: 0,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Chooses the link(s) for a packet of `len` bytes, the first of
    /// `backlog` bytes waiting in the engine for a link. Only the first
    /// [`MAX_LINKS`] views are considered; never picks a link that is not
    /// usable or cannot send; empty when no link qualifies, or (balanced)
    /// when the packet is better off waiting for the soonest link.
    ///
    /// Balanced waits for the soonest link `best` while it has no room,
    /// unless another link delivers the packet by `best`'s delivery of the
    /// whole backlog plus one `best` min RTT. Without the backlog term a
    /// full fast link would spill every packet onto a slow one, and the
    /// receiver's reorder buffer would hold the fast link's packets for the
    /// slow one's: TCP through two clean 20 Mbit/s links of 10 and 300 ms
    /// got half of what the 10 ms link alone gave. With it, the slow link is
    /// used once the backlog would take longer to drain through the fast
    /// link than the slow one takes to deliver. The round trip of slack lets
    /// links of similar delay (25 and 35 ms) add up even though the engine's
    /// CoDel keeps the backlog short: it at most doubles the round trip TCP
    /// sees on the soonest link, for the second link's capacity.
    pub fn pick(&mut self, paths: &[PathView], len: usize, backlog: u64) -> Selection {
        let paths = &paths[..paths.len().min(MAX_LINKS)];
        let candidates = || paths.iter().filter(|v| v.is_candidate());
        let mut selection = Selection::EMPTY;
        match self.policy {
            Policy::Balanced => {
                if let Some(link) = worth_sending_now(paths, len, backlog) {
                    selection.push(link);
                }
            }
            Policy::Adaptive => {
                let Some(first) = candidates().min_by_key(|v| (v.estimated_delivery(len), v.link))
                else {
                    return selection;
                };
                selection.push(first.link);
                if !first.is_healthy()
                    && let Some(second) = candidates()
                        .filter(|v| v.link != first.link)
                        .min_by_key(|v| (!v.is_healthy(), v.estimated_delivery(len), v.link))
                {
                    selection.push(second.link);
                }
            }
            Policy::Redundant => candidates().for_each(|v| selection.push(v.link)),
            Policy::RoundRobin => {
                let cursor = self.next_round_robin;
                let next = candidates()
                    .filter(|v| u16::from(v.link.0) >= cursor)
                    .min_by_key(|v| v.link)
                    .or_else(|| candidates().min_by_key(|v| v.link));
                if let Some(next) = next {
                    selection.push(next.link);
                    self.next_round_robin = u16::from(next.link.0) + 1;
                }
            }
        }
        selection
    }

    /// On how many links the policy sends a light flow's packet
    /// ([`pick_soonest`](Self::pick_soonest)): the policies meant to fail
    /// over (balanced and adaptive) send it on the [`LIGHT_FLOW_COPIES`]
    /// soonest, so a voice call or a shell does not even notice a link dying
    /// under it. Redundant already sends everything everywhere; round-robin
    /// stays plain for comparison.
    pub fn light_flow_copies(&self) -> Copies {
        match self.policy {
            Policy::Balanced | Policy::Adaptive => LIGHT_FLOW_COPIES,
            Policy::Redundant | Policy::RoundRobin => Copies::ONE,
        }
    }

    /// Chooses the links for a packet worth copies, whatever the policy: the
    /// `copies.total` candidate links that deliver soonest (healthy ones
    /// first), or as many as can send, and then the soonest of those again
    /// while copies are missing, up to `copies.per_link` on each, but one
    /// on a link alone when `bulk_waits` (bulk packets wait for room, see
    /// [`Copies`]). Worth
    /// copies are resends (a resend fills a hole its flow waits behind;
    /// losing it again would cost the whole hold time and the packet) and
    /// packets of light flows (see
    /// [`light_flow_copies`](Self::light_flow_copies)). Both are a small
    /// share of the traffic, so the copies cost little.
    pub fn pick_soonest(
        &self,
        paths: &[PathView],
        len: usize,
        copies: Copies,
        bulk_waits: bool,
    ) -> Selection {
        let paths = &paths[..paths.len().min(MAX_LINKS)];
        let key = |v: &&PathView| (!v.is_healthy(), v.estimated_delivery(len), v.link);
        let mut distinct = Selection::EMPTY;
        while distinct.len() < copies.total {
            let Some(next) = paths
                .iter()
                .filter(|v| v.is_candidate() && !distinct.contains(v.link))
                .min_by_key(key)
            else {
                break;
            };
            distinct.push(next.link);
        }
        let mut selection = distinct;
        if bulk_waits && distinct.len() < 2 {
            return selection;
        }
        for _ in 1..copies.per_link {
            for link in distinct.iter() {
                if selection.len() >= copies.total {
                    return selection;
                }
                selection.push_copy(link);
            }
        }
        selection
    }
}

/// The link a bulk packet of `len` bytes, ahead of `backlog` more, goes on
/// now under the balanced policy, or `None` to wait (see [`Scheduler::pick`]).
fn worth_sending_now(paths: &[PathView], len: usize, backlog: u64) -> Option<LinkId> {
    let key = |v: &&PathView| (!v.is_healthy(), v.expected_delivery(len), v.link);
    let best = paths
        .iter()
        .filter(|v| v.state.is_usable())
        .min_by_key(key)?;
    if best.can_send {
        return Some(best.link);
    }
    let whole_backlog = usize::try_from(backlog)
        .unwrap_or(usize::MAX)
        .saturating_add(len);
    let deadline = best.expected_delivery(whole_backlog) + best.min_rtt;
    paths
        .iter()
        .filter(|v| v.is_candidate() && (v.is_healthy() || !best.is_healthy()))
        .filter(|v| v.expected_delivery(len) <= deadline)
        .min_by_key(key)
        .map(|v| v.link)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// An idle, healthy link of the given RTT with a 50 kB pipe.
    fn link(id: u8, rtt_ms: u32) -> PathView {
        PathView {
            link: LinkId(id),
            state: PathState::Up,
            srtt: rtt_ms * MS,
            min_rtt: rtt_ms * MS,
            rttvar: MS,
            loss_rate: 0.0,
            delivery_rate: 1_000_000,
            bytes_in_flight: 0,
            window: 50_000,
            can_send: true,
        }
    }

    fn pick(policy: Policy, paths: &[PathView]) -> Vec<u8> {
        Scheduler::new(policy)
            .pick(paths, 1200, 0)
            .iter()
            .map(|l| l.0)
            .collect()
    }

    /// The links `pick_soonest` chooses for a full-size packet with no bulk
    /// waiting, as ids.
    fn soonest(policy: Policy, paths: &[PathView], copies: Copies) -> Vec<u8> {
        Scheduler::new(policy)
            .pick_soonest(paths, 1200, copies, false)
            .iter()
            .map(|l| l.0)
            .collect()
    }

    #[test]
    fn copies_go_on_the_soonest_links_that_can_send() {
        let paths = [link(0, 60), link(1, 20), link(2, 30), link(3, 40)];
        for policy in Policy::ALL {
            assert_eq!(
                soonest(policy, &paths, RESEND_COPIES),
                vec![1, 2],
                "{policy}"
            );
        }
        let balanced = Policy::Balanced;
        let three = Copies {
            total: 3,
            per_link: 1,
        };
        assert_eq!(soonest(balanced, &paths, three), vec![1, 2, 3]);
        let mut full = link(1, 20);
        full.can_send = false;
        assert_eq!(soonest(balanced, &[full, link(0, 60)], three), vec![0]);
        assert!(soonest(balanced, &[full], RESEND_COPIES).is_empty());
    }

    #[test]
    fn light_flows_double_up_on_the_soonest_link_when_links_are_few() {
        let light = |paths: &[PathView]| soonest(Policy::Balanced, paths, LIGHT_FLOW_COPIES);
        let three = [link(0, 60), link(1, 20), link(2, 30)];
        assert_eq!(light(&three), vec![1, 2, 0]);
        // The other link's copy goes between the two on the soonest one.
        assert_eq!(light(&three[..2]), vec![1, 0, 1]);
        assert_eq!(light(&three[..1]), vec![0, 0]);
        // Alone, with bulk packets waiting for it, a link gets one copy: a
        // second would only take their room. Not so beside another link.
        let waiting = |paths: &[PathView]| {
            Scheduler::new(Policy::Balanced)
                .pick_soonest(paths, 1200, LIGHT_FLOW_COPIES, true)
                .iter()
                .map(|l| l.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(waiting(&three[..1]), vec![0]);
        assert_eq!(waiting(&three[..2]), vec![1, 0, 1]);
        // Resends never double up: a burst of them would crowd the link.
        assert_eq!(
            soonest(Policy::Balanced, &three[..1], RESEND_COPIES),
            vec![0]
        );
    }

    #[test]
    fn only_the_failover_policies_copy_light_flows() {
        for policy in Policy::ALL {
            let copies = Scheduler::new(policy).light_flow_copies();
            match policy {
                Policy::Balanced | Policy::Adaptive => assert_eq!(copies, LIGHT_FLOW_COPIES),
                Policy::Redundant | Policy::RoundRobin => assert_eq!(copies, Copies::ONE),
            }
        }
    }

    #[test]
    fn slow_link_does_not_hold_back_a_fast_one() {
        let mut fast = link(0, 20);
        let slow = link(1, 600);
        assert_eq!(pick(Policy::Balanced, &[slow, fast]), vec![0]);
        // Loaded up to its cap the fast link still delivers sooner...
        fast.bytes_in_flight = 2 * fast.window - 1200;
        assert_eq!(pick(Policy::Balanced, &[slow, fast]), vec![0]);
        // ...and once it is full, the packet waits for it rather than take
        // 300 ms on the slow one...
        fast.can_send = false;
        assert!(pick(Policy::Balanced, &[slow, fast]).is_empty());
        // ...until the backlog would take longer than that to drain through
        // the fast link (2.5 MB/s: 40 ms per 100 kB, plus its 20 ms round
        // trip of slack).
        let with_backlog = |backlog| {
            Scheduler::new(Policy::Balanced)
                .pick(&[slow, fast], 1200, backlog)
                .iter()
                .map(|l| l.0)
                .collect::<Vec<_>>()
        };
        assert!(with_backlog(500_000).is_empty());
        assert_eq!(with_backlog(700_000), vec![1]);
    }

    #[test]
    fn a_lossy_link_counts_its_resends() {
        let clean = link(0, 100);
        let mut lossy = link(1, 80);
        assert_eq!(pick(Policy::Balanced, &[clean, lossy]), vec![1]);
        // 8 % loss: 40 + 6.4 ms expected, against 50 ms.
        lossy.loss_rate = 0.08;
        assert_eq!(pick(Policy::Balanced, &[clean, lossy]), vec![1]);
        // At 90 ms it is 45 + 7.2 ms: sooner than 50 by its delay alone,
        // later with the resends.
        lossy.srtt = 90 * MS;
        assert_eq!(pick(Policy::Balanced, &[clean, lossy]), vec![0]);
    }

    #[test]
    fn balanced_spills_onto_a_similar_link_when_the_fast_one_queues() {
        let mut a = link(0, 20);
        let b = link(1, 40);
        a.bytes_in_flight = a.window;
        assert_eq!(
            pick(Policy::Balanced, &[a, b]),
            vec![0],
            "10 ms + 0.5 ms queue < 20 ms"
        );
        a.bytes_in_flight = 2 * a.window;
        assert_eq!(
            pick(Policy::Balanced, &[a, b]),
            vec![1],
            "10 ms + 20 ms queue > 20 ms"
        );
    }

    #[test]
    fn balanced_prefers_healthy_links() {
        let mut fast = link(0, 20);
        let slow = link(1, 80);
        fast.state = PathState::Suspect;
        assert_eq!(pick(Policy::Balanced, &[fast, slow]), vec![1]);
        fast.state = PathState::Up;
        fast.loss_rate = 0.3;
        assert_eq!(pick(Policy::Balanced, &[fast, slow]), vec![1]);
        // A healthy link with no room is waited for rather than a lossy one
        // used; with no healthy link usable, lossy beats nothing.
        let mut slow_full = slow;
        slow_full.can_send = false;
        assert!(pick(Policy::Balanced, &[fast, slow_full]).is_empty());
        slow_full.state = PathState::Probing;
        assert_eq!(pick(Policy::Balanced, &[fast, slow_full]), vec![0]);
    }

    #[test]
    fn adaptive_duplicates_only_while_the_first_link_is_suspect_or_lossy() {
        let mut fast = link(0, 20);
        let mid = link(1, 40);
        let slow = link(2, 80);
        assert_eq!(pick(Policy::Adaptive, &[fast, mid, slow]), vec![0]);
        fast.state = PathState::Suspect;
        assert_eq!(pick(Policy::Adaptive, &[fast, mid, slow]), vec![0, 1]);
        fast.state = PathState::Up;
        fast.loss_rate = 0.2;
        assert_eq!(pick(Policy::Adaptive, &[fast, mid, slow]), vec![0, 1]);
    }

    #[test]
    fn down_and_probing_links_are_never_picked() {
        let mut a = link(0, 20);
        let mut b = link(1, 40);
        a.state = PathState::Down;
        b.state = PathState::Probing;
        for policy in Policy::ALL {
            assert!(pick(policy, &[a, b]).is_empty(), "{policy}");
        }
    }

    #[test]
    fn redundant_uses_every_usable_link() {
        let mut c = link(2, 80);
        c.state = PathState::Down;
        assert_eq!(
            pick(Policy::Redundant, &[link(0, 20), link(1, 40), c]),
            vec![0, 1]
        );
    }

    #[test]
    fn round_robin_rotates() {
        let paths = [link(3, 20), link(1, 40), link(7, 80)];
        let mut scheduler = Scheduler::new(Policy::RoundRobin);
        let picks: Vec<u8> = (0..4)
            .map(|_| scheduler.pick(&paths, 100, 0).as_slice()[0].0)
            .collect();
        assert_eq!(picks, vec![1, 3, 7, 1]);
    }

    #[test]
    fn policy_names_round_trip() {
        for policy in Policy::ALL {
            assert_eq!(policy.to_string().parse::<Policy>(), Ok(policy));
        }
        assert_eq!(Policy::default(), Policy::Balanced);
        let err = "fastest".parse::<Policy>().unwrap_err();
        assert!(err.to_string().contains("\"fastest\""));
        assert!(err.to_string().contains("round-robin"));
    }
}
