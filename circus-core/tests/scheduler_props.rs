//! Properties of every scheduling policy over arbitrary link snapshots.

use std::collections::HashSet;
use std::time::Duration;

use circus_core::LinkId;
use circus_core::paths::PathState;
use circus_core::scheduler::{Copies, LOSSY_THRESHOLD, MAX_LINKS, PathView, Policy, Scheduler};
use proptest::prelude::*;

fn state() -> impl Strategy<Value = PathState> {
    prop_oneof![
        Just(PathState::Probing),
        Just(PathState::Up),
        Just(PathState::Suspect),
        Just(PathState::Down),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop::sample::select(Policy::ALL.to_vec())
}

fn view() -> impl Strategy<Value = PathView> {
    (
        any::<u8>(),
        state(),
        (0u64..2_000, 0u64..2_000, 0u64..500),
        0.0f32..1.0,
        (0u64..100_000_000, 0u64..10_000_000, 0u64..10_000_000),
        any::<bool>(),
    )
        .prop_map(
            |(
                link,
                state,
                (srtt, min_rtt, rttvar),
                loss_rate,
                (rate, in_flight, window),
                can_send,
            )| {
                PathView {
                    link: LinkId(link),
                    state,
                    srtt: Duration::from_millis(srtt),
                    min_rtt: Duration::from_millis(min_rtt),
                    rttvar: Duration::from_millis(rttvar),
                    loss_rate,
                    delivery_rate: rate,
                    bytes_in_flight: in_flight,
                    window,
                    can_send,
                }
            },
        )
}

/// Views with distinct link ids, as the engine builds them (one per link).
fn views() -> impl Strategy<Value = Vec<PathView>> {
    prop::collection::vec(view(), 0..=MAX_LINKS).prop_map(|mut views| {
        let mut seen = HashSet::new();
        views.retain(|v| seen.insert(v.link));
        views
    })
}

fn candidates(views: &[PathView]) -> HashSet<LinkId> {
    views
        .iter()
        .filter(|v| matches!(v.state, PathState::Up | PathState::Suspect) && v.can_send)
        .map(|v| v.link)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_picks_an_unusable_link_nor_twice(
        policy in policy(), views in views(), len in 1usize..2000,
    ) {
        let picked = Scheduler::new(policy).pick(&views, len, 0);
        let allowed = candidates(&views);
        let mut seen = HashSet::new();
        for link in picked.iter() {
            prop_assert!(allowed.contains(&link), "{policy} picked {link} from {views:?}");
            prop_assert!(seen.insert(link), "{policy} picked {link} twice");
        }
    }

    #[test]
    fn empty_exactly_when_no_link_is_usable(policy in policy(), views in views()) {
        prop_assume!(policy != Policy::Balanced);
        let picked = Scheduler::new(policy).pick(&views, 1200, 0);
        prop_assert_eq!(picked.is_empty(), candidates(&views).is_empty());
    }

    /// Balanced may hold a packet back only to wait for a usable link that
    /// has no room, and never when the backlog is endless (any link then
    /// delivers before the waiting one would), unless only unhealthy links
    /// have room while a healthy one is waited for.
    #[test]
    fn balanced_waits_only_for_a_full_link(views in views(), backlog in any::<u64>()) {
        let allowed = candidates(&views);
        let healthy = |v: &PathView| v.state == PathState::Up && v.loss_rate <= LOSSY_THRESHOLD;
        let waiting = Scheduler::new(Policy::Balanced).pick(&views, 1200, backlog).is_empty();
        if waiting && !allowed.is_empty() {
            prop_assert!(views.iter().any(|v| v.state.is_usable() && !v.can_send));
        }
        let endless = Scheduler::new(Policy::Balanced).pick(&views, 1200, u64::MAX).is_empty();
        let healthy_can_send = views.iter().any(|v| allowed.contains(&v.link) && healthy(v));
        let healthy_usable = views.iter().any(|v| v.state.is_usable() && healthy(v));
        if healthy_can_send || (!allowed.is_empty() && !healthy_usable) {
            prop_assert!(!endless, "{views:?}");
        }
    }

    #[test]
    fn redundant_picks_every_usable_link(views in views()) {
        let picked: HashSet<LinkId> = Scheduler::new(Policy::Redundant).pick(&views, 1200, 0).iter().collect();
        prop_assert_eq!(picked, candidates(&views));
    }

    #[test]
    fn balanced_picks_one_and_a_healthy_one_when_there_is_one(views in views()) {
        let picked = Scheduler::new(Policy::Balanced).pick(&views, 1200, 0);
        let allowed = candidates(&views);
        prop_assert!(picked.len() <= usize::from(!allowed.is_empty()));
        let healthy = |l: LinkId| views.iter().any(|v| {
            v.link == l && v.state == PathState::Up && v.loss_rate <= LOSSY_THRESHOLD
        });
        if allowed.iter().any(|&l| healthy(l)) && !picked.is_empty() {
            prop_assert!(healthy(picked.as_slice()[0]));
        }
    }

    #[test]
    fn adaptive_adds_at_most_one_copy(views in views()) {
        let picked = Scheduler::new(Policy::Adaptive).pick(&views, 1200, 0);
        prop_assert!(picked.len() <= 2.min(candidates(&views).len()));
    }

    #[test]
    fn round_robin_visits_every_usable_link_in_turn(views in views()) {
        let allowed = candidates(&views);
        let mut scheduler = Scheduler::new(Policy::RoundRobin);
        let visited: HashSet<LinkId> = (0..allowed.len())
            .flat_map(|_| scheduler.pick(&views, 1200, 0).as_slice().to_vec())
            .collect();
        prop_assert_eq!(visited, allowed);
    }

    #[test]
    fn copies_are_spread_first_and_bounded_per_link(
        views in views(), total in 1usize..=6, per_link in 1usize..=3,
        bulk_waits in any::<bool>(),
    ) {
        let copies = Copies { total, per_link };
        let picked = Scheduler::new(Policy::Balanced)
            .pick_soonest(&views, 1200, copies, bulk_waits);
        let allowed = candidates(&views);
        // A link alone gets one copy while bulk waits: a second would only
        // guard against its own random loss, at the bulk flows' expense.
        let per_link_here = if bulk_waits && allowed.len() < 2 { 1 } else { per_link };
        let wanted = total.min(allowed.len() * per_link_here);
        prop_assert_eq!(picked.len(), wanted, "{:?} from {:?}", picked, views);
        let mut count = std::collections::HashMap::<LinkId, usize>::new();
        for link in picked.iter() {
            prop_assert!(allowed.contains(&link), "picked {link} from {views:?}");
            *count.entry(link).or_default() += 1;
        }
        // No link gets a second copy while a candidate has none.
        let distinct = total.min(allowed.len());
        prop_assert_eq!(count.len(), distinct);
        prop_assert!(count.values().all(|&n| n <= per_link));
        let mut seen = HashSet::new();
        prop_assert!(picked.as_slice()[..distinct].iter().all(|l| seen.insert(*l)));
    }
}
