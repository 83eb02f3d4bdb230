//! Properties of the link model that must hold for any parameters and any
//! arrival pattern.

use std::sync::Arc;
use std::time::Duration;

use circus_lab::emulator::model::{
    Direction, GilbertElliott, LinkModel, LinkParams, LinkTraces, QueueLimit, Reorder, TraceFile,
    Verdict,
};
use circus_lab::emulator::trace::{TRACE_MTU, Trace};
use proptest::prelude::*;

/// Frames as (gap since the previous frame in µs, length in bytes).
fn arb_frames(max: usize) -> impl Strategy<Value = Vec<(u64, usize)>> {
    prop::collection::vec((0u64..3_000, 40usize..=1500), 1..max)
}

/// Arrival times from gaps.
fn arrivals(frames: &[(u64, usize)]) -> Vec<(Duration, usize)> {
    let mut now = Duration::ZERO;
    frames
        .iter()
        .map(|&(gap_us, len)| {
            now += Duration::from_micros(gap_us);
            (now, len)
        })
        .collect()
}

fn arb_chain() -> impl Strategy<Value = GilbertElliott> {
    (0.0..0.2f64, 0.05..1.0f64, 0.0..0.1f64, 0.5..=1.0f64).prop_map(
        |(to_bad, to_good, loss_in_good, loss_in_bad)| GilbertElliott {
            to_bad,
            to_good,
            loss_in_good,
            loss_in_bad,
        },
    )
}

/// Any parameters without a trace.
fn arb_params() -> impl Strategy<Value = LinkParams> {
    (
        (0u64..200_000, 0u64..50_000, 0.0..0.3f64),
        prop::option::of(64_000u64..100_000_000),
        prop::option::of(1_500u64..1_000_000),
        prop::option::of(arb_chain()),
        0.0..0.1f64,
        prop::option::of((0.0..0.3f64, 1u64..100)),
    )
        .prop_map(
            |((delay_us, jitter_us, loss), rate_bps, queue, burst_loss, duplicate, reorder)| {
                LinkParams {
                    delay: Duration::from_micros(delay_us),
                    jitter: Duration::from_micros(jitter_us),
                    loss,
                    rate_bps,
                    queue: queue.map(QueueLimit::Bytes),
                    burst_loss,
                    duplicate,
                    reorder: reorder.map(|(fraction, ms)| Reorder {
                        fraction,
                        extra_delay: Duration::from_millis(ms),
                    }),
                    trace: None,
                }
            },
        )
}

/// A random trace of up to 50 ms, repeated.
fn arb_trace() -> impl Strategy<Value = Arc<Trace>> {
    prop::collection::vec(1u64..50, 1..60).prop_map(|mut ms| {
        ms.sort_unstable();
        Arc::new(Trace::from_timestamps(ms).expect("sorted, non-zero"))
    })
}

fn traced(trace: Arc<Trace>, queue_bytes: u64) -> LinkParams {
    let file = TraceFile {
        path: "random.trace".into(),
        trace,
    };
    LinkParams {
        trace: Some(LinkTraces {
            up: file.clone(),
            down: file,
        }),
        queue: Some(QueueLimit::Bytes(queue_bytes)),
        ..LinkParams::default()
    }
}

/// (arrival, length, delivery time) of every delivered frame.
fn run(model: &mut LinkModel, frames: &[(u64, usize)]) -> Vec<(Duration, usize, Duration)> {
    arrivals(frames)
        .into_iter()
        .filter_map(|(now, len)| match model.on_frame(now, len) {
            Verdict::Deliver { at, .. } => Some((now, len, at)),
            Verdict::Drop(_) => None,
        })
        .collect()
}

fn serialization(len: usize, rate_bps: u64) -> Duration {
    Duration::from_nanos((len as u128 * 8_000_000_000).div_ceil(u128::from(rate_bps)) as u64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Without a bottleneck, a frame takes its delay within the jitter, and
    /// exactly its delay without jitter (or later, behind an earlier frame).
    #[test]
    fn configured_delay_is_honored(
        delay_us in 0u64..500_000,
        jitter_us in 0u64..100_000,
        seed: u64,
        frames in arb_frames(300),
    ) {
        let delay = Duration::from_micros(delay_us);
        let jitter = Duration::from_micros(jitter_us);
        let params = LinkParams { delay, jitter, ..LinkParams::default() };
        let mut model = LinkModel::new(params, Direction::Up, seed);
        let mut previous = Duration::ZERO;
        for (now, _, at) in run(&mut model, &frames) {
            prop_assert!(at >= now + delay.saturating_sub(jitter), "{at:?} too early for {now:?}");
            prop_assert!(at <= (now + delay + jitter).max(previous), "{at:?} too late for {now:?}");
            if jitter.is_zero() {
                prop_assert_eq!(at, now + delay);
            }
            previous = at;
        }
    }

    /// The long-run loss share matches the configured random loss rate.
    #[test]
    fn random_loss_matches_the_rate(loss in 0.0..0.5f64, seed: u64) {
        let params = LinkParams { loss, ..LinkParams::default() };
        let mut model = LinkModel::new(params, Direction::Down, seed);
        let frames = 20_000u32;
        let lost = (0..frames)
            .filter(|&i| matches!(model.on_frame(Duration::from_millis(i.into()), 100), Verdict::Drop(_)))
            .count();
        let share = lost as f64 / f64::from(frames);
        let sigma = (loss * (1.0 - loss) / f64::from(frames)).sqrt();
        prop_assert!((share - loss).abs() <= 5.0 * sigma + 1e-9, "lost {share}, configured {loss}");
    }

    /// The long-run Gilbert-Elliott loss share matches the chain's stationary
    /// loss (looser bound: losses come in correlated bursts).
    #[test]
    fn burst_loss_matches_the_chain(chain in arb_chain(), seed: u64) {
        let params = LinkParams { burst_loss: Some(chain), ..LinkParams::default() };
        let mut model = LinkModel::new(params, Direction::Up, seed);
        let frames = 50_000u32;
        let lost = (0..frames)
            .filter(|&i| matches!(model.on_frame(Duration::from_millis(i.into()), 100), Verdict::Drop(_)))
            .count();
        let share = lost as f64 / f64::from(frames);
        let expected = chain.mean_loss();
        // Correlation stretches the variance by about 2 / (to_bad + to_good).
        let inflation = 2.0 / (chain.to_bad + chain.to_good);
        let sigma = (expected * (1.0 - expected) * inflation / f64::from(frames)).sqrt();
        prop_assert!((share - expected).abs() <= 6.0 * sigma + 0.002, "lost {share}, expected {expected}");
    }

    /// Between any two delivered frames, the bytes of the later ones fit in
    /// the time between them at the configured rate.
    #[test]
    fn rate_limit_holds(
        rate_bps in 64_000u64..50_000_000,
        delay_us in 0u64..100_000,
        loss in 0.0..0.2f64,
        queue in prop::option::of(1_500u64..500_000),
        seed: u64,
        frames in arb_frames(400),
    ) {
        let params = LinkParams {
            delay: Duration::from_micros(delay_us),
            loss,
            rate_bps: Some(rate_bps),
            queue: queue.map(QueueLimit::Bytes),
            ..LinkParams::default()
        };
        let mut model = LinkModel::new(params, Direction::Up, seed);
        let delivered = run(&mut model, &frames);
        for (i, &(_, _, first_at)) in delivered.iter().enumerate() {
            let mut bits = 0u128;
            for &(_, len, at) in &delivered[i + 1..] {
                bits += len as u128 * 8;
                let allowed = (at - first_at).as_nanos() * u128::from(rate_bps) / 1_000_000_000;
                prop_assert!(bits <= allowed + 8, "{bits} bits in {:?} at {rate_bps} bit/s", at - first_at);
            }
        }
    }

    /// A frame waits at most the queue bound plus its own sending time:
    /// the bottleneck queue is bounded in bytes.
    #[test]
    fn queue_bound_limits_waiting(
        rate_bps in 64_000u64..50_000_000,
        queue_bytes in 1_500u64..500_000,
        seed: u64,
        frames in arb_frames(400),
    ) {
        let params = LinkParams {
            rate_bps: Some(rate_bps),
            queue: Some(QueueLimit::Bytes(queue_bytes)),
            ..LinkParams::default()
        };
        let mut model = LinkModel::new(params, Direction::Up, seed);
        for (now, len, at) in run(&mut model, &frames) {
            let bound = serialization(queue_bytes as usize + len, rate_bps) + Duration::from_nanos(1);
            prop_assert!(at - now <= bound, "waited {:?}, bound {bound:?}", at - now);
        }
    }

    /// A trace link never carries more bytes between two deliveries than the
    /// opportunities between them allow, and delivers only at opportunities.
    #[test]
    fn trace_capacity_holds(
        trace in arb_trace(),
        queue_bytes in 1_500u64..200_000,
        seed: u64,
        frames in arb_frames(300),
    ) {
        let mut model = LinkModel::new(traced(Arc::clone(&trace), queue_bytes), Direction::Down, seed);
        let delivered = run(&mut model, &frames);
        let mtu = u64::from(TRACE_MTU);
        for (i, &(_, _, first_at)) in delivered.iter().enumerate() {
            let opportunity = trace.count_before(first_at);
            prop_assert_eq!(trace.opportunity_time(opportunity), first_at);
            let mut bytes = 0u64;
            for &(_, len, at) in &delivered[i + 1..] {
                bytes += len as u64;
                let opportunities = trace.count_before(at + Duration::from_nanos(1)) - opportunity;
                prop_assert!(bytes <= opportunities * mtu, "{bytes} bytes over {opportunities} opportunities");
            }
        }
    }

    /// The same seed gives the same decisions, whatever the parameters.
    #[test]
    fn same_seed_same_decisions(params in arb_params(), seed: u64, frames in arb_frames(300)) {
        let decide = |params: LinkParams| {
            let mut model = LinkModel::new(params, Direction::Up, seed);
            arrivals(&frames)
                .into_iter()
                .map(|(now, len)| model.on_frame(now, len))
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(decide(params.clone()), decide(params));
    }

    /// Without `reorder`, frames leave in the order they came, whatever else
    /// is configured (jitter included); duplicates leave with their original.
    #[test]
    fn no_reordering_without_reorder(params in arb_params(), seed: u64, frames in arb_frames(300)) {
        let params = LinkParams { reorder: None, ..params };
        let mut model = LinkModel::new(params, Direction::Up, seed);
        let mut previous = Duration::ZERO;
        for (now, len) in arrivals(&frames) {
            if let Verdict::Deliver { at, duplicate_at } = model.on_frame(now, len) {
                prop_assert!(at >= previous, "{at:?} before {previous:?}");
                prop_assert!(duplicate_at.is_none_or(|copy| copy >= at));
                previous = at;
            }
        }
    }
}
