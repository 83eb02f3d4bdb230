//! Mahimahi packet-delivery traces: parsing, writing, timing, and a seeded
//! synthetic cellular trace generator.
//!
//! A Mahimahi trace lists delivery opportunities, one per line, as a
//! millisecond timestamp since the start. Each opportunity can carry one
//! MTU-sized packet ([`TRACE_MTU`] bytes); several lines with the same
//! timestamp are several opportunities in that millisecond, which is how a
//! trace expresses rates above 12 Mbit/s. The trace repeats when it ends, with
//! the last timestamp as its period (as Mahimahi's `mm-link` does), so a short
//! recording can drive a long scenario.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Bytes one delivery opportunity carries (Mahimahi's fixed packet size).
pub const TRACE_MTU: u32 = 1500;

const NANOS_PER_MS: u64 = 1_000_000;

/// Why a trace could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read trace {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: expected a millisecond timestamp (a whole number), found {found:?}")]
    NotATimestamp { line: usize, found: String },
    #[error("line {line}: expected timestamps that never decrease, found {found} after {previous}")]
    Decreasing {
        line: usize,
        previous: u64,
        found: u64,
    },
    #[error("expected at least one delivery opportunity, found none")]
    Empty,
    #[error("expected the last timestamp (the period the trace repeats with) above 0 ms, found 0")]
    ZeroPeriod,
}

/// A parsed trace: sorted opportunity timestamps and the period they repeat with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Trace {
    /// Opportunity timestamps in ms, non-decreasing; the last one is the period.
    opportunities_ms: Vec<u64>,
}

impl Trace {
    /// Builds a trace from timestamps (ms), checking the same rules as
    /// [`Trace::parse`]; errors count entries from 1 as lines.
    pub fn from_timestamps(opportunities_ms: Vec<u64>) -> Result<Trace, TraceError> {
        Trace::checked(opportunities_ms, |index| index + 1)
    }

    /// Parses Mahimahi text: one whole-number ms timestamp per line; blank
    /// lines and surrounding whitespace are ignored.
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        let mut opportunities_ms = Vec::new();
        let mut lines = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let field = raw.trim();
            if field.is_empty() {
                continue;
            }
            let found = field.parse().map_err(|_| TraceError::NotATimestamp {
                line: index + 1,
                found: field.to_owned(),
            })?;
            opportunities_ms.push(found);
            lines.push(index + 1);
        }
        Trace::checked(opportunities_ms, |index| lines[index])
    }

    /// Checks order and period; `line_of` maps an entry to its line.
    fn checked(
        opportunities_ms: Vec<u64>,
        line_of: impl Fn(usize) -> usize,
    ) -> Result<Trace, TraceError> {
        for (index, pair) in opportunities_ms.windows(2).enumerate() {
            if pair[1] < pair[0] {
                return Err(TraceError::Decreasing {
                    line: line_of(index + 1),
                    previous: pair[0],
                    found: pair[1],
                });
            }
        }
        match opportunities_ms.last() {
            None => Err(TraceError::Empty),
            Some(0) => Err(TraceError::ZeroPeriod),
            Some(_) => Ok(Trace { opportunities_ms }),
        }
    }

    /// Reads and parses a trace file.
    pub fn load(path: &Path) -> Result<Trace, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Read {
            path: path.to_owned(),
            source,
        })?;
        Trace::parse(&text)
    }

    /// The trace in Mahimahi's text format, one timestamp per line.
    pub fn to_mahimahi(&self) -> String {
        let mut text = String::with_capacity(self.opportunities_ms.len() * 6);
        for ms in &self.opportunities_ms {
            // Writing into a String cannot fail.
            let _ = writeln!(text, "{ms}");
        }
        text
    }

    /// Opportunity timestamps (ms) of one period.
    pub fn opportunities_ms(&self) -> &[u64] {
        &self.opportunities_ms
    }

    /// The time after which the trace repeats: its last timestamp.
    pub fn period(&self) -> Duration {
        Duration::from_millis(self.period_ms())
    }

    fn period_ms(&self) -> u64 {
        // `from_timestamps` guarantees at least one entry.
        self.opportunities_ms.last().copied().unwrap_or(1)
    }

    /// Average capacity over one period, in bits per second.
    pub fn mean_rate_bps(&self) -> u64 {
        let bits = self.opportunities_ms.len() as u128 * u128::from(TRACE_MTU) * 8;
        (bits * 1000 / u128::from(self.period_ms())) as u64
    }

    /// Time of opportunity number `index`, counting across repetitions from 0.
    pub fn opportunity_time(&self, index: u64) -> Duration {
        let per_period = self.opportunities_ms.len() as u64;
        let cycle = index / per_period;
        let within = self.opportunities_ms[(index % per_period) as usize];
        Duration::from_millis(
            cycle
                .saturating_mul(self.period_ms())
                .saturating_add(within),
        )
    }

    /// How many opportunities (across repetitions) lie strictly before `t`,
    /// which is also the index of the first opportunity at or after `t`.
    pub fn count_before(&self, t: Duration) -> u64 {
        let per_period = self.opportunities_ms.len() as u64;
        let period_ns = u128::from(self.period_ms() * NANOS_PER_MS);
        let t_ns = t.as_nanos();
        let cycle = (t_ns / period_ns) as u64;
        let rem_ns = (t_ns % period_ns) as u64;
        let in_cycle = self
            .opportunities_ms
            .partition_point(|&ms| ms * NANOS_PER_MS < rem_ns) as u64;
        // Entries equal to the period belong to the previous cycle but fall
        // exactly on `t` when `t` is a whole number of periods: not before it.
        let at_cycle_start = if rem_ns == 0 && cycle > 0 {
            let period_ms = self.period_ms();
            self.opportunities_ms
                .iter()
                .rev()
                .take_while(|&&ms| ms == period_ms)
                .count() as u64
        } else {
            0
        };
        (cycle.saturating_mul(per_period) + in_cycle).saturating_sub(at_cycle_start)
    }
}

/// Parameters of the synthetic cellular trace generator.
///
/// Cellular capacity wanders between a few levels as the radio moves between
/// good coverage and fades; the generator models that as a random walk over
/// four levels (100%, 50%, 20% and 3% of `peak_bps`) taking a step every
/// `dwell`, with opportunities scattered randomly around each level's mean
/// within every millisecond.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CellularProfile {
    /// Length of one trace period.
    pub length: Duration,
    /// Capacity at the best level, in bits per second.
    pub peak_bps: u64,
    /// How long a level holds before the walk may move.
    pub dwell: Duration,
    /// Chance that the walk moves one level (up or down) at each step.
    pub move_chance: f64,
}

impl CellularProfile {
    /// An LTE-like downlink: 20 Mbit/s peak, levels lasting 250 ms.
    pub const fn lte_downlink(length: Duration) -> CellularProfile {
        CellularProfile {
            length,
            peak_bps: 20_000_000,
            dwell: Duration::from_millis(250),
            move_chance: 0.3,
        }
    }

    /// An LTE-like uplink: 6 Mbit/s peak, levels lasting 250 ms.
    pub const fn lte_uplink(length: Duration) -> CellularProfile {
        CellularProfile {
            peak_bps: 6_000_000,
            ..CellularProfile::lte_downlink(length)
        }
    }
}

/// Fractions of the peak rate the random walk moves between.
const CELLULAR_LEVELS: [f64; 4] = [1.0, 0.5, 0.2, 0.03];

/// Generates a synthetic cellular trace; the same profile and seed always
/// give the same trace. The period is `profile.length` rounded to whole
/// milliseconds (at least 1 ms).
pub fn synthesize_cellular(profile: &CellularProfile, seed: u64) -> Trace {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let length_ms = (profile.length.as_millis() as u64).max(1);
    let dwell_ms = (profile.dwell.as_millis() as u64).max(1);
    let bits_per_opportunity = f64::from(TRACE_MTU * 8);
    let move_chance = profile.move_chance.clamp(0.0, 1.0);
    let mut level = 0usize;
    let mut credit = 0.0f64;
    let mut opportunities_ms = Vec::new();
    for ms in 1..=length_ms {
        if ms % dwell_ms == 0 && rng.random_bool(move_chance) {
            let down = level + 1 < CELLULAR_LEVELS.len() && (level == 0 || rng.random_bool(0.5));
            level = if down { level + 1 } else { level - 1 };
        }
        let per_ms =
            profile.peak_bps as f64 * CELLULAR_LEVELS[level] / bits_per_opportunity / 1000.0;
        // Scatter around the mean: each millisecond gets 0.5x..1.5x its share.
        credit += per_ms * rng.random_range(0.5..1.5);
        let mut count = credit.floor() as u64;
        credit -= count as f64;
        if ms == length_ms {
            // The last timestamp is the period, so the period's end carries one.
            count = count.max(1);
        }
        opportunities_ms.extend(std::iter::repeat_n(ms, count as usize));
    }
    Trace { opportunities_ms }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_mahimahi_text_and_round_trips() {
        let trace = Trace::parse("1\n1\n 3 \n\n7\n").unwrap();
        assert_eq!(trace.opportunities_ms(), &[1, 1, 3, 7]);
        assert_eq!(trace.period(), Duration::from_millis(7));
        assert_eq!(Trace::parse(&trace.to_mahimahi()).unwrap(), trace);
    }

    #[test]
    fn parse_errors_name_the_line_and_the_expectation() {
        let not_number = Trace::parse("1\n2\nthree\n").unwrap_err().to_string();
        assert_eq!(
            not_number,
            "line 3: expected a millisecond timestamp (a whole number), found \"three\""
        );
        let decreasing = Trace::parse("5\n\n4\n").unwrap_err().to_string();
        assert_eq!(
            decreasing,
            "line 3: expected timestamps that never decrease, found 4 after 5"
        );
        assert!(matches!(Trace::parse("\n\n"), Err(TraceError::Empty)));
        assert!(matches!(
            Trace::parse("0\n0\n"),
            Err(TraceError::ZeroPeriod)
        ));
        assert!(matches!(
            Trace::parse("-1\n"),
            Err(TraceError::NotATimestamp { line: 1, .. })
        ));
    }

    #[test]
    fn opportunities_repeat_with_the_last_timestamp_as_period() {
        let trace = Trace::parse("0\n2\n5\n").unwrap();
        let times: Vec<u64> = (0..7)
            .map(|i| trace.opportunity_time(i).as_millis() as u64)
            .collect();
        assert_eq!(times, vec![0, 2, 5, 5, 7, 10, 10]);
    }

    #[test]
    fn count_before_matches_a_scan_of_opportunity_times() {
        for text in ["0\n2\n5\n", "1\n1\n4\n4\n", "3\n"] {
            let trace = Trace::parse(text).unwrap();
            for t_us in (0..40_000u64).step_by(250) {
                let t = Duration::from_micros(t_us);
                let scanned = (0..100u64)
                    .take_while(|&i| trace.opportunity_time(i) < t)
                    .count() as u64;
                assert_eq!(trace.count_before(t), scanned, "trace {text:?} at {t:?}");
            }
        }
    }

    #[test]
    fn mean_rate_counts_mtu_bits_per_period() {
        // 10 opportunities per 10 ms = 1 per ms = 12 Mbit/s.
        let trace = Trace::from_timestamps((1..=10).collect()).unwrap();
        assert_eq!(trace.mean_rate_bps(), 12_000_000);
    }

    #[test]
    fn synthetic_cellular_is_seeded_and_near_its_levels() {
        let profile = CellularProfile::lte_downlink(Duration::from_secs(20));
        let trace = synthesize_cellular(&profile, 3);
        assert_eq!(trace, synthesize_cellular(&profile, 3));
        assert_ne!(trace, synthesize_cellular(&profile, 4));
        assert_eq!(trace.period(), Duration::from_secs(20));
        let mean = trace.mean_rate_bps();
        let lowest = (profile.peak_bps as f64 * CELLULAR_LEVELS[3]) as u64;
        assert!(
            mean > lowest && mean <= profile.peak_bps * 3 / 2,
            "mean {mean}"
        );
        assert!(Trace::from_timestamps(trace.opportunities_ms().to_vec()).is_ok());
    }
}
