//! The link model: what one direction of an emulated link does to each frame.
//!
//! Pure and seeded: no clock, no IO. The caller passes `now` as the time since
//! the scenario started and gets back a [`Verdict`] saying whether and when the
//! frame comes out at the far end. The real forwarder and the virtual-time
//! simulator both drive it, so a seed gives the same decisions in either.
//!
//! A frame goes through the stages of a real bad link, in this order:
//! 1. the link's condition: a blackholed or carrier-down link drops it;
//! 2. the bottleneck: a rate limit (serialization time) or a Mahimahi trace,
//!    behind a drop-tail queue bounded in bytes — a long queue is bufferbloat;
//! 3. loss on the medium: random loss, then Gilbert-Elliott burst loss. A lost
//!    frame has used its transmission time, as on a radio link;
//! 4. propagation: delay plus jitter (uniform within `delay ± jitter`, as
//!    netem). A frame never leaves before the one ahead of it, so jitter alone
//!    never reorders; only the `reorder` fraction overtakes;
//! 5. duplication: the copy leaves right behind the original.
//!
//! The verdict is final: later condition or parameter changes affect frames
//! that arrive after them, not frames already given a delivery time.

use std::sync::Arc;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Serialize, Serializer};

use crate::emulator::trace::{TRACE_MTU, Trace};

/// Queue bound used when a bottleneck has none configured: 100 ms of
/// traffic, a moderately buffered router. Bufferbloat scenarios set more.
pub const DEFAULT_QUEUE: QueueLimit = QueueLimit::Delay(Duration::from_millis(100));

/// Which way a frame travels on a link. Each direction has its own model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the client site towards the gateway (upload).
    Up,
    /// From the gateway towards the client site (download).
    Down,
}

/// Bound of the bottleneck queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum QueueLimit {
    /// At most this many bytes waiting (including the frame being sent).
    Bytes(u64),
    /// At most this much sending time waiting, converted to bytes at the
    /// current rate (so a `set` event that changes the rate rescales it).
    Delay(Duration),
}

/// Gilbert-Elliott burst loss: a two-state Markov chain stepped once per frame.
///
/// In the classic notation `to_bad` is p, `to_good` is r, `loss_in_bad` is
/// 1-h and `loss_in_good` is 1-k. Bursts last `1 / to_good` frames on average.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GilbertElliott {
    /// Chance per frame of moving from the good to the bad state.
    pub to_bad: f64,
    /// Chance per frame of moving from the bad to the good state.
    pub to_good: f64,
    /// Loss chance while in the good state.
    pub loss_in_good: f64,
    /// Loss chance while in the bad state.
    pub loss_in_bad: f64,
}

impl GilbertElliott {
    /// Long-run share of frames this chain loses.
    pub fn mean_loss(&self) -> f64 {
        let switching = self.to_bad + self.to_good;
        if switching == 0.0 {
            // The chain never leaves the good state it starts in.
            return self.loss_in_good;
        }
        (self.to_bad * self.loss_in_bad + self.to_good * self.loss_in_good) / switching
    }
}

/// Reordering: a share of frames is held back and overtaken by later ones.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Reorder {
    /// Chance that a frame is held back.
    pub fraction: f64,
    /// How much longer a held-back frame takes.
    pub extra_delay: Duration,
}

/// A trace file as the scenario named it, with its parsed content.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceFile {
    /// Where the trace was read from (resolved against the scenario's folder).
    pub path: std::path::PathBuf,
    pub trace: Arc<Trace>,
}

/// The content, not the location, identifies a trace (for scenario hashes).
impl Serialize for TraceFile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.trace.serialize(serializer)
    }
}

/// Delivery traces of a link, one per direction (often the same file).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkTraces {
    pub up: TraceFile,
    pub down: TraceFile,
}

impl LinkTraces {
    /// The trace that drives `direction`.
    pub fn for_direction(&self, direction: Direction) -> &Arc<Trace> {
        match direction {
            Direction::Up => &self.up.trace,
            Direction::Down => &self.down.trace,
        }
    }
}

/// Properties of a link, the same for both directions (except traces).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LinkParams {
    /// One-way propagation delay (the round trip is twice this).
    pub delay: Duration,
    /// Each frame's delay is uniform within `delay ± jitter` (never below 0).
    pub jitter: Duration,
    /// Random loss chance per frame, 0..=1.
    pub loss: f64,
    /// Rate limit in bits per second; `None` means no limit (or a trace).
    pub rate_bps: Option<u64>,
    /// Bound of the bottleneck queue; `None` means [`DEFAULT_QUEUE`].
    pub queue: Option<QueueLimit>,
    pub burst_loss: Option<GilbertElliott>,
    /// Duplication chance per delivered frame, 0..=1.
    pub duplicate: f64,
    pub reorder: Option<Reorder>,
    /// Mahimahi traces; when set they replace `rate_bps` as the bottleneck.
    pub trace: Option<LinkTraces>,
}

/// What the scenario timeline has done to the link as a whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkCondition {
    /// Working normally.
    #[default]
    Up,
    /// Frames vanish silently while the interface stays up (the common wifi
    /// failure, which only timeouts reveal).
    Blackhole,
    /// Carrier lost: the interface is down and frames are dropped.
    Down,
}

/// Why a frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    Blackhole,
    Down,
    /// The bottleneck queue was full (drop-tail).
    QueueFull,
    /// Random loss.
    Loss,
    /// Gilbert-Elliott burst loss.
    BurstLoss,
}

/// The fate of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Drop(DropReason),
    /// Deliver at `at` (time since start); and a copy at `duplicate_at`.
    Deliver {
        at: Duration,
        duplicate_at: Option<Duration>,
    },
}

/// The bottleneck's state between frames.
#[derive(Clone, Debug)]
enum Bottleneck {
    Unlimited,
    /// The transmitter is busy until `free_at`.
    Rate {
        bps: u64,
        free_at: Duration,
    },
    /// Byte-credit over trace opportunities, as Mahimahi's link queue: `next`
    /// is the opportunity being filled (counting across repetitions) and
    /// `used` the bytes already committed to it.
    Trace {
        trace: Arc<Trace>,
        next: u64,
        used: u32,
    },
}

impl Bottleneck {
    fn new(params: &LinkParams, direction: Direction) -> Bottleneck {
        match (&params.trace, params.rate_bps) {
            (Some(traces), _) => Bottleneck::Trace {
                trace: Arc::clone(traces.for_direction(direction)),
                next: 0,
                used: 0,
            },
            (None, Some(bps)) => Bottleneck::Rate {
                bps: bps.max(1),
                free_at: Duration::ZERO,
            },
            (None, None) => Bottleneck::Unlimited,
        }
    }

    /// Carries state over a parameter change where the kind of bottleneck
    /// stays: a new rate starts after what is already being sent.
    fn carry_over_from(&mut self, old: &Bottleneck) {
        match (self, old) {
            (Bottleneck::Rate { free_at, .. }, Bottleneck::Rate { free_at: old, .. }) => {
                *free_at = *old;
            }
            (
                Bottleneck::Trace { trace, next, used },
                Bottleneck::Trace {
                    trace: old_trace,
                    next: old_next,
                    used: old_used,
                },
            ) if Arc::ptr_eq(trace, old_trace) => {
                *next = *old_next;
                *used = *old_used;
            }
            _ => {}
        }
    }

    /// Average capacity in bits per second, if limited.
    fn rate_bps(&self) -> Option<u64> {
        match self {
            Bottleneck::Unlimited => None,
            Bottleneck::Rate { bps, .. } => Some(*bps),
            Bottleneck::Trace { trace, .. } => Some(trace.mean_rate_bps()),
        }
    }

    /// Queues `len` bytes arriving at `now` unless the queue would exceed
    /// `limit` bytes; returns when the last byte has been sent.
    fn admit(&mut self, now: Duration, len: u32, limit: u64) -> Option<Duration> {
        match self {
            Bottleneck::Unlimited => Some(now),
            Bottleneck::Rate { bps, free_at } => {
                let start = (*free_at).max(now);
                let backlog = (start - now).as_nanos() * u128::from(*bps) / 8_000_000_000;
                if backlog > 0 && backlog + u128::from(len) > u128::from(limit) {
                    return None;
                }
                // Round up so the configured rate is never exceeded.
                let bits = u128::from(len) * 8 * 1_000_000_000;
                let sending = bits.div_ceil(u128::from(*bps)) as u64;
                *free_at = start + Duration::from_nanos(sending);
                Some(*free_at)
            }
            Bottleneck::Trace { trace, next, used } => {
                let first = trace.count_before(now);
                if *next < first {
                    // The queue ran empty: unused opportunities are gone.
                    *next = first;
                    *used = 0;
                }
                let backlog = (*next - first) * u64::from(TRACE_MTU) + u64::from(*used);
                if backlog > 0 && backlog + u64::from(len) > limit {
                    return None;
                }
                // The frame's last byte lands `end` bytes into opportunity `next`.
                let mtu = u64::from(TRACE_MTU);
                let end = u64::from(*used) + u64::from(len.max(1));
                let extra = (end - 1) / mtu;
                *next += extra;
                *used = (end - extra * mtu) as u32;
                let done = trace.opportunity_time(*next);
                if *used == TRACE_MTU {
                    *next += 1;
                    *used = 0;
                }
                Some(done)
            }
        }
    }
}

/// One direction of one emulated link. See the module docs for the stages.
#[derive(Clone, Debug)]
pub struct LinkModel {
    params: LinkParams,
    direction: Direction,
    condition: LinkCondition,
    bottleneck: Bottleneck,
    /// Queue bound in bytes, derived from `params.queue` and the bottleneck rate.
    queue_bytes: u64,
    /// Gilbert-Elliott chain state.
    in_bad_state: bool,
    /// Departure time of the latest in-order frame: no later frame leaves before it.
    last_departure: Duration,
    rng: ChaCha8Rng,
}

impl LinkModel {
    pub fn new(params: LinkParams, direction: Direction, seed: u64) -> LinkModel {
        let bottleneck = Bottleneck::new(&params, direction);
        let queue_bytes = queue_bytes(&params, &bottleneck);
        LinkModel {
            params,
            direction,
            condition: LinkCondition::Up,
            bottleneck,
            queue_bytes,
            in_bad_state: false,
            last_departure: Duration::ZERO,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn params(&self) -> &LinkParams {
        &self.params
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    pub fn condition(&self) -> LinkCondition {
        self.condition
    }

    /// Bytes the bottleneck queue may hold (`u64::MAX` without a bottleneck).
    pub fn queue_bytes(&self) -> u64 {
        self.queue_bytes
    }

    /// Replaces the parameters (a `set` event). What is already queued at the
    /// bottleneck stays queued; the burst-loss state carries over.
    pub fn set_params(&mut self, params: LinkParams) {
        let mut bottleneck = Bottleneck::new(&params, self.direction);
        bottleneck.carry_over_from(&self.bottleneck);
        self.queue_bytes = queue_bytes(&params, &bottleneck);
        self.bottleneck = bottleneck;
        self.params = params;
    }

    /// Changes the link's condition (a timeline event). Frames that already
    /// have a verdict keep it: they were on the wire.
    pub fn set_condition(&mut self, condition: LinkCondition) {
        self.condition = condition;
    }

    /// Decides the fate of a frame of `len` bytes arriving at `now`.
    /// Allocates nothing.
    pub fn on_frame(&mut self, now: Duration, len: usize) -> Verdict {
        match self.condition {
            LinkCondition::Up => {}
            LinkCondition::Blackhole => return Verdict::Drop(DropReason::Blackhole),
            LinkCondition::Down => return Verdict::Drop(DropReason::Down),
        }
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let Some(sent) = self.bottleneck.admit(now, len, self.queue_bytes) else {
            return Verdict::Drop(DropReason::QueueFull);
        };
        if self.chance(self.params.loss) {
            return Verdict::Drop(DropReason::Loss);
        }
        if let Some(chain) = self.params.burst_loss
            && self.burst_lost(&chain)
        {
            return Verdict::Drop(DropReason::BurstLoss);
        }
        let at = sent + self.propagation();
        let held_back = self
            .params
            .reorder
            .and_then(|reorder| self.chance(reorder.fraction).then_some(reorder.extra_delay));
        let at = match held_back {
            // A held-back frame does not hold back the frames behind it.
            Some(extra) => at + extra,
            None => {
                let at = at.max(self.last_departure);
                self.last_departure = at;
                at
            }
        };
        let duplicate_at = self.chance(self.params.duplicate).then_some(at);
        Verdict::Deliver { at, duplicate_at }
    }

    /// Delay plus jitter for one frame.
    fn propagation(&mut self) -> Duration {
        let delay = self.params.delay;
        let jitter = self.params.jitter;
        if jitter.is_zero() {
            return delay;
        }
        let spread = jitter.as_nanos().min(u128::from(u64::MAX / 2)) as u64;
        let offset = self.rng.random_range(0..=2 * spread);
        (delay + Duration::from_nanos(offset)).saturating_sub(jitter)
    }

    /// Steps the Gilbert-Elliott chain; true if this frame is lost.
    fn burst_lost(&mut self, chain: &GilbertElliott) -> bool {
        let loss = if self.in_bad_state {
            chain.loss_in_bad
        } else {
            chain.loss_in_good
        };
        let lost = self.chance(loss);
        let switch = if self.in_bad_state {
            chain.to_good
        } else {
            chain.to_bad
        };
        if self.chance(switch) {
            self.in_bad_state = !self.in_bad_state;
        }
        lost
    }

    /// A random event of probability `p` (clamped to 0..=1); draws nothing for 0.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }
}

/// The queue bound in bytes for these parameters and this bottleneck. A
/// time bound converts at the bottleneck's (mean) rate; an unlimited link
/// queues nothing, so its bound does not matter.
fn queue_bytes(params: &LinkParams, bottleneck: &Bottleneck) -> u64 {
    let Some(rate_bps) = bottleneck.rate_bps() else {
        return u64::MAX;
    };
    match params.queue.unwrap_or(DEFAULT_QUEUE) {
        QueueLimit::Bytes(bytes) => bytes,
        QueueLimit::Delay(delay) => (delay.as_nanos() * u128::from(rate_bps) / 8_000_000_000)
            .min(u128::from(u64::MAX)) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn deliver_at(verdict: Verdict) -> Duration {
        match verdict {
            Verdict::Deliver { at, .. } => at,
            Verdict::Drop(reason) => panic!("expected delivery, got drop {reason:?}"),
        }
    }

    #[test]
    fn plain_delay_delivers_after_exactly_the_delay() {
        let params = LinkParams {
            delay: 25 * MS,
            ..LinkParams::default()
        };
        let mut link = LinkModel::new(params, Direction::Up, 1);
        assert_eq!(deliver_at(link.on_frame(10 * MS, 1500)), 35 * MS);
        assert_eq!(
            link.on_frame(11 * MS, 100),
            Verdict::Deliver {
                at: 36 * MS,
                duplicate_at: None
            }
        );
    }

    #[test]
    fn rate_limit_spaces_frames_by_serialization_time() {
        // 12 Mbit/s: a 1500-byte frame takes 1 ms.
        let params = LinkParams {
            rate_bps: Some(12_000_000),
            delay: 5 * MS,
            ..LinkParams::default()
        };
        let mut link = LinkModel::new(params, Direction::Up, 1);
        let times: Vec<Duration> = (0..3)
            .map(|_| deliver_at(link.on_frame(Duration::ZERO, 1500)))
            .collect();
        assert_eq!(times, vec![6 * MS, 7 * MS, 8 * MS]);
    }

    #[test]
    fn full_queue_drops_the_tail_and_drains_over_time() {
        let params = LinkParams {
            rate_bps: Some(12_000_000),
            queue: Some(QueueLimit::Bytes(3000)),
            ..LinkParams::default()
        };
        let mut link = LinkModel::new(params, Direction::Up, 1);
        assert_eq!(deliver_at(link.on_frame(Duration::ZERO, 1500)), MS);
        assert_eq!(deliver_at(link.on_frame(Duration::ZERO, 1500)), 2 * MS);
        assert_eq!(
            link.on_frame(Duration::ZERO, 1500),
            Verdict::Drop(DropReason::QueueFull)
        );
        // One frame time later one frame has left: room for one more.
        assert_eq!(deliver_at(link.on_frame(MS, 1500)), 3 * MS);
    }

    #[test]
    fn queue_given_as_time_converts_at_the_rate() {
        let params = LinkParams {
            rate_bps: Some(8_000_000),
            queue: Some(QueueLimit::Delay(Duration::from_secs(2))),
            ..LinkParams::default()
        };
        let link = LinkModel::new(params, Direction::Down, 1);
        assert_eq!(link.queue_bytes(), 2_000_000);
    }

    #[test]
    fn trace_delivers_at_opportunities_and_shares_them_by_bytes() {
        let trace = Arc::new(Trace::parse("2\n2\n5\n").unwrap());
        let file = TraceFile {
            path: "t".into(),
            trace,
        };
        let params = LinkParams {
            trace: Some(LinkTraces {
                up: file.clone(),
                down: file,
            }),
            queue: Some(QueueLimit::Bytes(1_000_000)),
            ..LinkParams::default()
        };
        let mut link = LinkModel::new(params, Direction::Up, 1);
        let times: Vec<Duration> = [1500, 700, 700, 200, 1500]
            .into_iter()
            .map(|len| deliver_at(link.on_frame(Duration::ZERO, len)))
            .collect();
        // 1500 fills the first opportunity at 2 ms; 700+700 share the second;
        // 200 ends in the one at 5 ms, and so does 1400 of the last 1500,
        // whose final 100 bytes go in the next period's first one at 7 ms.
        assert_eq!(times, vec![2 * MS, 2 * MS, 2 * MS, 5 * MS, 7 * MS]);
        // Arriving after a gap, unused opportunities are not saved up.
        assert_eq!(deliver_at(link.on_frame(20 * MS, 100)), 20 * MS);
        assert_eq!(deliver_at(link.on_frame(21 * MS, 100)), 22 * MS);
    }

    #[test]
    fn frame_larger_than_an_opportunity_spans_several() {
        let file = TraceFile {
            path: "t".into(),
            trace: Arc::new(Trace::parse("2\n2\n5\n").unwrap()),
        };
        let params = LinkParams {
            trace: Some(LinkTraces {
                up: file.clone(),
                down: file,
            }),
            ..LinkParams::default()
        };
        let mut link = LinkModel::new(params, Direction::Up, 1);
        // 4000 bytes: 1500 at 2 ms, 1500 more at 2 ms, the last 1000 at 5 ms.
        assert_eq!(deliver_at(link.on_frame(Duration::ZERO, 4000)), 5 * MS);
        assert_eq!(deliver_at(link.on_frame(Duration::ZERO, 500)), 5 * MS);
        assert_eq!(deliver_at(link.on_frame(Duration::ZERO, 1)), 7 * MS);
    }

    #[test]
    fn blackhole_and_down_drop_and_up_restores() {
        let mut link = LinkModel::new(LinkParams::default(), Direction::Up, 1);
        link.set_condition(LinkCondition::Blackhole);
        assert_eq!(link.on_frame(MS, 100), Verdict::Drop(DropReason::Blackhole));
        link.set_condition(LinkCondition::Down);
        assert_eq!(link.on_frame(MS, 100), Verdict::Drop(DropReason::Down));
        link.set_condition(LinkCondition::Up);
        assert_eq!(deliver_at(link.on_frame(MS, 100)), MS);
    }

    #[test]
    fn frames_accepted_before_an_outage_still_hold_the_link() {
        let params = LinkParams {
            rate_bps: Some(12_000_000),
            ..LinkParams::default()
        };
        let mut link = LinkModel::new(params, Direction::Up, 1);
        for _ in 0..10 {
            link.on_frame(Duration::ZERO, 1500);
        }
        link.set_condition(LinkCondition::Down);
        assert_eq!(link.on_frame(MS, 1500), Verdict::Drop(DropReason::Down));
        link.set_condition(LinkCondition::Up);
        // The ten frames accepted before keep the transmitter busy until 10 ms.
        assert_eq!(deliver_at(link.on_frame(2 * MS, 1500)), 11 * MS);
    }

    #[test]
    fn set_params_changes_delay_but_keeps_order() {
        let params = LinkParams {
            delay: 100 * MS,
            ..LinkParams::default()
        };
        let mut link = LinkModel::new(params.clone(), Direction::Up, 1);
        assert_eq!(deliver_at(link.on_frame(Duration::ZERO, 100)), 100 * MS);
        link.set_params(LinkParams {
            delay: 10 * MS,
            ..params
        });
        // Would be 11 ms, but must not overtake the frame due at 100 ms.
        assert_eq!(deliver_at(link.on_frame(MS, 100)), 100 * MS);
        assert_eq!(deliver_at(link.on_frame(200 * MS, 100)), 210 * MS);
    }

    #[test]
    fn reorder_lets_later_frames_overtake_held_back_ones() {
        let params = LinkParams {
            delay: 10 * MS,
            reorder: Some(Reorder {
                fraction: 1.0,
                extra_delay: 50 * MS,
            }),
            ..LinkParams::default()
        };
        let mut link = LinkModel::new(params.clone(), Direction::Up, 1);
        assert_eq!(deliver_at(link.on_frame(Duration::ZERO, 100)), 60 * MS);
        link.set_params(LinkParams {
            reorder: None,
            ..params
        });
        assert_eq!(deliver_at(link.on_frame(MS, 100)), 11 * MS);
    }

    #[test]
    fn duplicate_copy_leaves_with_the_original() {
        let params = LinkParams {
            delay: 10 * MS,
            duplicate: 1.0,
            ..LinkParams::default()
        };
        let mut link = LinkModel::new(params, Direction::Up, 1);
        assert_eq!(
            link.on_frame(Duration::ZERO, 100),
            Verdict::Deliver {
                at: 10 * MS,
                duplicate_at: Some(10 * MS)
            }
        );
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts() {
        let chain = GilbertElliott {
            to_bad: 0.01,
            to_good: 0.2,
            loss_in_good: 0.0,
            loss_in_bad: 1.0,
        };
        let params = LinkParams {
            burst_loss: Some(chain),
            ..LinkParams::default()
        };
        let mut link = LinkModel::new(params, Direction::Up, 9);
        let lost: Vec<bool> = (0..100_000)
            .map(|i| matches!(link.on_frame(i * MS, 100), Verdict::Drop(_)))
            .collect();
        let losses = lost.iter().filter(|&&l| l).count();
        let bursts = lost.windows(2).filter(|w| !w[0] && w[1]).count();
        let mean_burst = losses as f64 / bursts as f64;
        // Bursts average 1/to_good = 5 frames; random loss would give ~1.
        assert!((4.0..6.0).contains(&mean_burst), "mean burst {mean_burst}");
        let share = losses as f64 / lost.len() as f64;
        assert!(
            (share - chain.mean_loss()).abs() < 0.01,
            "loss share {share}"
        );
    }
}
