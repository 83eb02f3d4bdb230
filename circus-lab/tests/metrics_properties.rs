//! Invariants of the metrics on random loss and latency patterns.

#[path = "metrics_support/synthetic.rs"]
mod synthetic;

use std::time::Duration;

use circus_lab::metrics::{MetricsConfig, RunLogs, TimelineEvent, system_metrics, system_series};
use proptest::prelude::*;
use synthetic::{ORIGIN, event, lasting, stream};

/// A random timeline event on one of two links: (at, link, action, for).
fn any_event() -> impl Strategy<Value = TimelineEvent> {
    (
        0u64..3_000,
        prop::sample::select(vec!["wifi0", "lte0"]),
        prop::sample::select(vec!["blackhole", "down", "up", "set", "address"]),
        prop::option::of(1u64..2_000),
    )
        .prop_map(|(at, link, action, for_ms)| match for_ms {
            Some(for_ms) if action != "up" && action != "address" => {
                lasting(at, link, action, for_ms)
            }
            _ => event(at, link, action),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn figures_stay_consistent(
        loss_percent in 0u64..60,
        seed in any::<u64>(),
        events in prop::collection::vec(any_event(), 0..6),
        pinned in prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["wifi0", "lte0"]), 1..4)),
    ) {
        // A cheap deterministic hash gives each probe its fate and latency.
        let fate = |seq: u64| (seq ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        let log = stream(1000, Duration::from_secs(3), 3, |seq| {
            (fate(seq) % 100 >= loss_percent).then(|| Duration::from_micros(5_000 + fate(seq) % 20_000))
        });
        let flow_links: Option<Vec<String>> =
            pinned.map(|links| links.iter().map(|l| l.to_string()).collect());
        let config = MetricsConfig::default();
        let run = RunLogs {
            origin: ORIGIN,
            probes: &log,
            tcp: None,
            events: &events,
            links: &[],
            host_pauses: None,
            flow_links: flow_links.as_deref(),
        };
        let metrics = system_metrics(&run, None, &config);

        prop_assert_eq!(metrics.up.sent, 3_000);
        prop_assert_eq!(metrics.up.lost + metrics.up.delivered, metrics.up.sent);
        prop_assert!((0.0..=1.0).contains(&metrics.up.delivery_ratio));
        prop_assert!((0.0..=1.0).contains(&metrics.up.reordered_ratio));
        prop_assert!(metrics.up.max_outage_ms >= 1.0 || metrics.up.delivered == 0);
        // Every loss is counted once: by one event, or as unattributed.
        let attributed: u64 = metrics.up.events.iter().map(|e| e.lost).sum();
        prop_assert_eq!(attributed + metrics.up.unattributed_lost, metrics.up.lost);
        for (figures, event) in metrics.up.events.iter().zip(&events) {
            let longest_span = event.duration.unwrap_or(config.attribution_max)
                + config.recovery_allowance;
            prop_assert!(figures.recovery_ms <= longest_span.as_secs_f64() * 1e3);
            prop_assert!(figures.outage_ms <= metrics.up.max_outage_ms);
            prop_assert!(figures.recovery_ms <= metrics.up.max_recovery_ms);
            // A pinned system's losses never go to a link it did not use.
            if let Some(links) = &flow_links
                && !links.contains(&event.link)
            {
                prop_assert_eq!((figures.lost, figures.outage_ms), (0, 0.0));
            }
        }

        let series = system_series(&run, &config);
        prop_assert_eq!(series.bins.iter().map(|b| b.sent).sum::<u64>(), metrics.up.sent);
        prop_assert_eq!(series.bins.iter().map(|b| b.delivered).sum::<u64>(), metrics.up.delivered);
        prop_assert!(series.latency_cdf.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        // Lost probes never arrive: the CDF ends at the delivered share.
        let end = series.latency_cdf.last().map_or(0.0, |&(_, share)| share);
        prop_assert!((end - metrics.up.delivered as f64 / 3_000.0).abs() < 1e-9);
        // One window per event: 10 ms bins from 1 s before it to 1 s after,
        // holding exactly the probes sent then (one every ms).
        prop_assert_eq!(series.windows.len(), events.len());
        for (window, event) in series.windows.iter().zip(&events) {
            prop_assert_eq!(window.bins.len(), 200);
            prop_assert_eq!(window.at_s, event.at.as_secs_f64());
            let from_ms = event.at.as_millis() as i64 - 1_000;
            prop_assert!((window.bins[0].start_s - from_ms as f64 / 1e3).abs() < 1e-9);
            let sent: u64 = window.bins.iter().map(|b| b.sent).sum();
            let expected = (from_ms.max(0)..(from_ms + 2_000).min(3_000)).count() as u64;
            prop_assert_eq!(sent, expected);
            prop_assert!(window.bins.iter().all(|b| b.delivered <= b.sent));
        }
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
        flow_links: None,
    };
    let series = system_series(&run, &MetricsConfig::default());
    assert_eq!(series.bins.len(), 20);
    assert_eq!(series.bins[10].start_s, 1.0);
    assert_eq!(series.bins[10].delivery_ratio(), Some(0.5));
    assert_eq!(series.bins[9].delivery_ratio(), Some(1.0));
    assert_eq!(series.bins[9].latency_p50_ms, Some(10.0));
    assert_eq!(series.bins[11].latency_p99_ms, Some(40.0));
    // 50 of 2000 probes never arrived: the CDF stops at 97.5 %.
    let (last_latency, last_share) = *series.latency_cdf.last().unwrap();
    assert_eq!((last_latency, last_share), (40.0, 0.975));
}
