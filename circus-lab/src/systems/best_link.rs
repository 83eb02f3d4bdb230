//! Which link alone does best: the lab runs `single-link` over each link of
//! the scenario in turn, under the same impairments and timeline, and keeps
//! the best run. That run is the `single-link` row of the report (what the
//! best uplink alone gives a site) and its TCP goodput is the reference,
//! `best_link_tcp_mbps`, that bonding has to beat.
//!
//! "Best" is measured, never read from the links' `rate`: a trace-driven
//! link has no rate, and a fast link with heavy loss carries TCP worse than
//! a slower clean one. With TCP flows, best is the highest goodput (both
//! directions together: a site's TCP is both). Without TCP, it is the highest
//! share of probes delivered, then the lower median latency.

use crate::metrics::SystemMetrics;
use crate::report::BestLink;

/// The index of the best of the single-link runs, one per link in scenario
/// order; `None` when there are none. Ties go to the earlier link.
pub fn best_of(runs: &[SystemMetrics]) -> Option<usize> {
    let mut best: Option<(usize, Score)> = None;
    for (index, metrics) in runs.iter().enumerate() {
        let score = Score::of(metrics);
        if best.as_ref().is_none_or(|(_, top)| score.beats(top)) {
            best = Some((index, score));
        }
    }
    best.map(|(index, _)| index)
}

/// The reference figures of the chosen link.
pub fn reference(link: &str, metrics: &SystemMetrics) -> BestLink {
    BestLink {
        link: link.to_string(),
        tcp_mbps: metrics.tcp_goodput_mbps,
        tcp_down_mbps: metrics.tcp_goodput_down_mbps,
    }
}

/// How good one link's run was.
struct Score {
    /// Up plus down, Mbit/s; `None` without TCP.
    tcp_mbps: Option<f64>,
    /// Probes delivered, both directions together.
    delivered: f64,
    /// Median one-way latency of the upload probes (infinite if none).
    latency_ms: f64,
}

impl Score {
    fn of(metrics: &SystemMetrics) -> Score {
        let tcp = [metrics.tcp_goodput_mbps, metrics.tcp_goodput_down_mbps];
        let tcp_mbps = tcp
            .iter()
            .any(Option::is_some)
            .then(|| tcp.iter().flatten().sum());
        let streams = std::iter::once(&metrics.up).chain(metrics.down.as_ref());
        let (sent, delivered) = streams.fold((0, 0), |(s, d), m| (s + m.sent, d + m.delivered));
        Score {
            tcp_mbps,
            delivered: if sent == 0 {
                0.0
            } else {
                delivered as f64 / sent as f64
            },
            latency_ms: metrics.up.latency_ms.p50.unwrap_or(f64::INFINITY),
        }
    }

    fn beats(&self, other: &Score) -> bool {
        if let (Some(mine), Some(theirs)) = (self.tcp_mbps, other.tcp_mbps)
            && mine != theirs
        {
            return mine > theirs;
        }
        if self.delivered != other.delivered {
            return self.delivered > other.delivered;
        }
        self.latency_ms < other.latency_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{LatencyMs, StreamMetrics};

    fn run(tcp: Option<(f64, f64)>, delivered: u64, p50: f64) -> SystemMetrics {
        let stream = StreamMetrics {
            delivery_ratio: delivered as f64 / 1000.0,
            lost: 1000 - delivered,
            duplicates: 0,
            max_outage_ms: 0.0,
            max_flow_outage_ms: 0.0,
            max_recovery_ms: 0.0,
            latency_ms: LatencyMs {
                p50: Some(p50),
                p90: None,
                p99: None,
                max: None,
            },
            reordered_ratio: 0.0,
            events: Vec::new(),
            unattributed_lost: 0,
            sent: 1000,
            delivered,
        };
        SystemMetrics {
            up: stream.clone(),
            tcp_goodput_mbps: tcp.map(|t| t.0),
            tcp_goodput_down_mbps: tcp.map(|t| t.1),
            link_share: Default::default(),
            host_pauses: Default::default(),
            down: Some(stream),
            commands: Vec::new(),
        }
    }

    #[test]
    fn with_tcp_the_most_goodput_in_both_directions_wins() {
        // A near, lossy link delivers most probes but carries TCP worst.
        let runs = [
            run(Some((3.0, 4.0)), 600, 5.0),
            run(Some((15.0, 16.0)), 990, 30.0),
            run(Some((17.0, 9.0)), 995, 20.0),
        ];
        assert_eq!(best_of(&runs), Some(1));
        let best = reference("lte0", &runs[1]);
        assert_eq!(
            (best.tcp_mbps, best.tcp_down_mbps),
            (Some(15.0), Some(16.0))
        );
    }

    #[test]
    fn without_tcp_delivery_then_latency_decides() {
        let runs = [
            run(None, 600, 5.0),
            run(None, 999, 40.0),
            run(None, 999, 25.0),
        ];
        assert_eq!(best_of(&runs), Some(2));
    }

    #[test]
    fn ties_go_to_the_earlier_link_and_no_runs_choose_nothing() {
        let runs = [run(None, 999, 25.0), run(None, 999, 25.0)];
        assert_eq!(best_of(&runs), Some(0));
        assert_eq!(best_of(&[]), None);
    }
}
