//! Invariants of the metrics on random loss and latency patterns.

#[path = "metrics_support/synthetic.rs"]
mod synthetic;

use std::time::Duration;

use circus_lab::metrics::{MetricsConfig, RunLogs, system_metrics, system_series};
use proptest::prelude::*;
use synthetic::{ORIGIN, event, stream};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn figures_stay_consistent(
        loss_percent in 0u64..60,
        seed in any::<u64>(),
        event_ms in proptest::collection::vec(0u64..3_000, 0..4),
    ) {
        // A cheap deterministic hash gives each probe its fate and latency.
        let fate = |seq: u64| (seq ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        let log = stream(1000, Duration::from_secs(3), 3, |seq| {
            (fate(seq) % 100 >= loss_percent).then(|| Duration::from_micros(5_000 + fate(seq) % 20_000))
        });
        let events: Vec<_> = event_ms.iter().map(|&at| event(at, "wifi0", "blackhole")).collect();
        let config = MetricsConfig::default();
        let run = RunLogs { origin: ORIGIN, probes: &log, tcp: None, events: &events, links: &[], host_pauses: None };
        let metrics = system_metrics(&run, None, &config);

        prop_assert_eq!(metrics.up.sent, 3_000);
        prop_assert_eq!(metrics.up.lost + metrics.up.delivered, metrics.up.sent);
        prop_assert!((0.0..=1.0).contains(&metrics.up.delivery_ratio));
        prop_assert!((0.0..=1.0).contains(&metrics.up.reordered_ratio));
        prop_assert!(metrics.up.max_outage_ms >= 1.0 || metrics.up.delivered == 0);
        let attributed: u64 = metrics.up.events.iter().map(|e| e.lost).sum();
        // Simultaneous events share one burst; distinct ones never overlap.
        let distinct: std::collections::BTreeSet<_> = event_ms.iter().collect();
        if distinct.len() == event_ms.len() {
            prop_assert!(attributed <= metrics.up.lost);
        }
        for event in &metrics.up.events {
            prop_assert!(event.recovery_ms <= config.attribution_max.as_secs_f64() * 1e3);
            prop_assert!(event.outage_ms <= metrics.up.max_outage_ms);
            prop_assert!(event.recovery_ms <= metrics.up.max_recovery_ms);
        }

        let series = system_series(&run, &config);
        prop_assert_eq!(series.bins.iter().map(|b| b.sent).sum::<u64>(), metrics.up.sent);
        prop_assert_eq!(series.bins.iter().map(|b| b.delivered).sum::<u64>(), metrics.up.delivered);
        prop_assert!(series.latency_cdf.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }
}

#[test]
fn series_show_the_hole_in_its_bin() {
    let log = stream(1000, Duration::from_secs(2), 1, |seq| {
        (!(1_000..1_050).contains(&seq))
            .then(|| Duration::from_millis(if seq < 1_000 { 10 } else { 40 }))
    });
    let run = RunLogs {
        origin: ORIGIN,
        probes: &log,
        tcp: None,
        events: &[],
        links: &[],
        host_pauses: None,
    };
    let series = system_series(&run, &MetricsConfig::default());
    assert_eq!(series.bins.len(), 20);
    assert_eq!(series.bins[10].start_s, 1.0);
    assert_eq!(series.bins[10].delivery_ratio(), Some(0.5));
    assert_eq!(series.bins[9].delivery_ratio(), Some(1.0));
    assert_eq!(series.bins[9].latency_p50_ms, Some(10.0));
    assert_eq!(series.bins[11].latency_p99_ms, Some(40.0));
    let (last_latency, last_share) = *series.latency_cdf.last().unwrap();
    assert_eq!((last_latency, last_share), (40.0, 1.0));
}
