//! Metrics of synthetic probe logs whose answers are known.

#[path = "metrics_support/synthetic.rs"]
mod synthetic;

use std::time::Duration;

use circus_lab::metrics::{
    HostPauses, LinkCounters, MetricsConfig, RunLogs, SystemMetrics, TimelineEvent, system_metrics,
};
use circus_lab::traffic::MonoNanos;
use circus_lab::traffic::probe::{ProbeLog, ProbeRecord};
use circus_lab::traffic::tcp::{TcpFlowLog, TcpLog};
use synthetic::{ORIGIN, constant, event, lasting, stream};

/// Figures of a run whose host pauses were not watched for, of a system
/// that chooses each packet's link itself (as circus does).
fn metrics_of(probes: &ProbeLog, events: &[TimelineEvent]) -> SystemMetrics {
    figures(probes, events, None, None)
}

fn metrics_with_pauses(
    probes: &ProbeLog,
    events: &[TimelineEvent],
    pauses: &HostPauses,
) -> SystemMetrics {
    figures(probes, events, Some(pauses), None)
}

/// Figures of a system that pinned probe flow `f` to `flow_links[f % len]`.
fn pinned_metrics(
    probes: &ProbeLog,
    events: &[TimelineEvent],
    flow_links: &[&str],
) -> SystemMetrics {
    let flow_links: Vec<String> = flow_links.iter().map(|l| l.to_string()).collect();
    figures(probes, events, None, Some(&flow_links))
}

fn figures(
    probes: &ProbeLog,
    events: &[TimelineEvent],
    host_pauses: Option<&HostPauses>,
    flow_links: Option<&[String]>,
) -> SystemMetrics {
    let run = RunLogs {
        origin: ORIGIN,
        probes,
        tcp: None,
        events,
        links: &[],
        host_pauses,
        flow_links,
    };
    system_metrics(&run, None, &MetricsConfig::default())
}

/// Attributed and unattributed losses add up to all losses.
fn assert_every_loss_counted_once(metrics: &SystemMetrics) {
    let attributed: u64 = metrics.up.events.iter().map(|e| e.lost).sum();
    assert_eq!(attributed + metrics.up.unattributed_lost, metrics.up.lost);
}

/// A host pause from `from_ms` to `to_ms` after [`ORIGIN`].
fn pause(from_ms: u64, to_ms: u64) -> HostPauses {
    let at = |ms: u64| MonoNanos(ORIGIN.0 + ms * 1_000_000);
    HostPauses::from_spans([(at(from_ms), at(to_ms))])
}

fn assert_close(actual: Option<f64>, expected: f64) {
    let actual = actual.expect("a value");
    // hdrhistogram keeps 3 significant figures.
    assert!(
        (actual - expected).abs() <= expected * 0.001 + 1e-9,
        "{actual} != {expected}"
    );
}

#[test]
fn a_clean_stream_has_full_delivery_and_one_interval_gaps() {
    let log = stream(1000, Duration::from_secs(10), 1, |_| constant(30));
    let metrics = metrics_of(&log, &[]);
    assert_eq!(metrics.up.sent, 10_000);
    assert_eq!(metrics.up.delivered, 10_000);
    assert_eq!(metrics.up.delivery_ratio, 1.0);
    assert_eq!((metrics.up.lost, metrics.up.duplicates), (0, 0));
    assert_eq!(metrics.up.max_outage_ms, 1.0);
    assert_eq!(metrics.up.max_recovery_ms, 0.0);
    assert_eq!(metrics.up.reordered_ratio, 0.0);
    assert_close(metrics.up.latency_ms.p50, 30.0);
    assert_close(metrics.up.latency_ms.p99, 30.0);
    assert_eq!(metrics.tcp_goodput_mbps, None);
}

#[test]
fn a_40_ms_hole_at_10_s_is_a_41_ms_outage() {
    // Probes sent at 10.000 s .. 10.039 s are lost.
    let log = stream(1000, Duration::from_secs(20), 1, |seq| {
        (!(10_000..10_040).contains(&seq)).then(|| Duration::from_millis(30))
    });
    let metrics = metrics_of(&log, &[event(10_000, "wifi0", "blackhole")]);
    assert_eq!(metrics.up.lost, 40);
    assert_eq!(metrics.up.delivery_ratio, 0.998);
    assert_eq!(metrics.up.max_outage_ms, 41.0);
    let event = &metrics.up.events[0];
    assert_eq!(
        (event.at_s, event.link.as_str(), event.action.as_str()),
        (10.0, "wifi0", "blackhole")
    );
    assert_eq!(event.outage_ms, 41.0);
    assert_eq!(
        event.recovery_ms, 39.0,
        "the last lost probe was sent at 10.039 s"
    );
    assert_eq!(event.lost, 40);
    assert_eq!(metrics.up.max_recovery_ms, 39.0);
}

#[test]
fn flows_of_a_dead_link_have_a_long_flow_outage_the_stream_hides() {
    // 16 flows; the 5 pinned to a dead link (as multiwan pins them) get
    // nothing from 10 s to 13 s, the others keep the stream going.
    let log = stream(1000, Duration::from_secs(20), 16, |seq| {
        let dead = (10_000..13_000).contains(&seq) && seq % 16 < 5;
        (!dead).then(|| Duration::from_millis(30))
    });
    let metrics = metrics_of(&log, &[]);
    assert_eq!(
        metrics.up.max_outage_ms, 6.0,
        "five flows in a row are dead"
    );
    // A dead flow's last probe before was sent at 9.984 s + its flow
    // index, its next at 13.008 s or later: 3.024 s apart, 16 ms of which
    // is its normal spacing.
    assert_eq!(metrics.up.max_flow_outage_ms, 3008.0);
}

#[test]
fn a_healthy_stream_has_no_flow_outage_and_one_flow_agrees_with_the_stream() {
    let spread = stream(1000, Duration::from_secs(10), 16, |_| constant(30));
    assert_eq!(metrics_of(&spread, &[]).up.max_flow_outage_ms, 0.0);
    // One flow: the stream's gap less one interval (its spacing).
    let holed = stream(1000, Duration::from_secs(20), 1, |seq| {
        (!(10_000..10_040).contains(&seq)).then(|| Duration::from_millis(30))
    });
    let metrics = metrics_of(&holed, &[]);
    assert_eq!(metrics.up.max_outage_ms, 41.0);
    assert_eq!(metrics.up.max_flow_outage_ms, 40.0);
}

#[test]
fn a_host_pause_is_left_out_of_the_gap_it_caused() {
    // The host stops the lab from 10.030 s to 10.090 s: the probes sent
    // from 10.000 s on, due at 10.030 s, all come out at 10.090 s.
    let paused_from = Duration::from_millis(10_030);
    let log = stream(1000, Duration::from_secs(20), 1, |seq| {
        let due = Duration::from_millis(seq + 30);
        let held = (paused_from..Duration::from_millis(10_090)).contains(&due);
        Some(if held {
            Duration::from_millis(10_090 - seq)
        } else {
            Duration::from_millis(30)
        })
    });
    let events = [event(10_000, "wifi0", "blackhole")];
    assert_eq!(
        metrics_of(&log, &events).up.max_outage_ms,
        61.0,
        "unmonitored"
    );

    let metrics = metrics_with_pauses(&log, &events, &pause(10_030, 10_090));
    assert_eq!(metrics.up.max_outage_ms, 1.0);
    assert_eq!(metrics.up.events[0].outage_ms, 1.0);
    assert_eq!(metrics.up.max_flow_outage_ms, 0.0);
    assert_eq!(metrics.up.delivery_ratio, 1.0);
    let pauses = metrics.host_pauses;
    assert_eq!(
        (pauses.count, pauses.total_ms, pauses.longest_ms),
        (1, 60.0, 60.0)
    );
    assert!(pauses.monitored);
    assert!(!metrics_of(&log, &events).host_pauses.monitored);
}

#[test]
fn a_stall_of_the_sender_alone_is_left_out_one_latency_later() {
    // The host pauses only the sender's CPU from 10.000 s to 10.015 s: the
    // probes due meanwhile go out together at 10.015 s, and the receiver
    // sees the hole 17 ms later, where no pause was seen.
    let mut log = stream(1000, Duration::from_secs(20), 1, |_| constant(17));
    let resumed = MonoNanos(ORIGIN.0 + 10_015_000_000);
    for seq in 10_000..10_015 {
        log.sent.sent_at[seq] = resumed;
    }
    for record in &mut log.received.records {
        if (10_000..10_015).contains(&record.seq) {
            record.sent = resumed;
            record.received = resumed + Duration::from_millis(17);
        }
    }
    log.received.records.sort_by_key(|r| r.received);
    let unmonitored = metrics_of(&log, &[]);
    assert_eq!(unmonitored.up.max_outage_ms, 16.0);

    log.sent.realtime = true;
    let metrics = metrics_with_pauses(&log, &[], &HostPauses::default());
    assert_eq!(metrics.up.max_outage_ms, 1.0);
    assert_eq!(metrics.up.max_flow_outage_ms, 0.0);
    // Paused both ways (the monitor saw the same pause at the receiver's
    // side too): forgiven once, not twice.
    let both = metrics_with_pauses(&log, &[], &pause(10_017, 10_032));
    assert_eq!(both.up.max_outage_ms, 1.0);
}

#[test]
fn a_pause_within_a_real_outage_shortens_it_by_the_pause_only() {
    // 200 probes lost from 10 s, and the host paused for 50 ms meanwhile.
    let log = stream(1000, Duration::from_secs(20), 1, |seq| {
        (!(10_000..10_200).contains(&seq)).then(|| Duration::from_millis(30))
    });
    assert_eq!(metrics_of(&log, &[]).up.max_outage_ms, 201.0);
    let metrics = metrics_with_pauses(&log, &[], &pause(10_100, 10_150));
    assert_eq!(metrics.up.max_outage_ms, 151.0);
    assert_eq!(metrics.up.max_flow_outage_ms, 150.0);
    // A pause elsewhere changes nothing.
    let elsewhere = metrics_with_pauses(&log, &[], &pause(5_000, 5_050));
    assert_eq!(elsewhere.up.max_outage_ms, 201.0);
}

#[test]
fn losing_every_other_probe_is_a_short_outage_but_a_long_recovery() {
    // The glorytun pattern: after a silent link death at 10 s, every probe
    // scheduled on the dead link (every other one) is lost for 450 ms.
    let log = stream(1000, Duration::from_secs(30), 1, |seq| {
        let dead = (10_000..10_450).contains(&seq) && seq % 2 == 0;
        (!dead).then(|| Duration::from_millis(20))
    });
    let metrics = metrics_of(&log, &[event(10_000, "wifi0", "blackhole")]);
    let event = &metrics.up.events[0];
    assert_eq!(event.lost, 225);
    assert_eq!(event.outage_ms, 2.0);
    assert_eq!(event.recovery_ms, 448.0);
    assert_eq!(metrics.up.max_outage_ms, 2.0);
    assert_eq!(metrics.up.max_recovery_ms, 448.0);
}

#[test]
fn losses_while_no_event_is_in_effect_are_unattributed() {
    // lte0 is down from 10 s to 11 s. Its span: in flight from 9.8 s, in
    // effect until 11 s, recovery until 12 s. Random losses at 9.700 and
    // 12.500 s lie outside it; the one at 10.300 s lies inside, and with
    // the link unknown it is the event's.
    let lost = |seq: u64| (10_000..10_020).contains(&seq) || [9_700, 10_300, 12_500].contains(&seq);
    let log = stream(1000, Duration::from_secs(20), 1, |seq| {
        (!lost(seq)).then(|| Duration::from_millis(30))
    });
    let metrics = metrics_of(&log, &[lasting(10_000, "lte0", "down", 1_000)]);
    assert_eq!(metrics.up.lost, 23);
    assert_eq!(metrics.up.events[0].lost, 21);
    assert_eq!(metrics.up.events[0].recovery_ms, 300.0);
    assert_eq!(metrics.up.unattributed_lost, 2);
    // Without any event, every loss is unattributed.
    assert_eq!(metrics_of(&log, &[]).up.unattributed_lost, 23);
}

#[test]
fn probes_in_flight_when_a_link_dies_belong_to_the_event() {
    // Queued on the link at 10 s: probes sent 9.990..9.999 s are lost too.
    let log = stream(1000, Duration::from_secs(20), 1, |seq| {
        (!(9_990..10_010).contains(&seq)).then(|| Duration::from_millis(30))
    });
    let metrics = metrics_of(&log, &[event(10_000, "lte0", "down")]);
    assert_eq!(metrics.up.events[0].lost, 20);
    assert_eq!(metrics.up.events[0].recovery_ms, 9.0);
    assert_eq!(metrics.up.events[0].outage_ms, 21.0);
}

#[test]
fn a_burst_spanning_two_events_is_split_between_them() {
    // Everything sent 10.0..10.5 s is lost; events at 10.0 and 10.2 s.
    let log = stream(1000, Duration::from_secs(20), 1, |seq| {
        (!(10_000..10_500).contains(&seq)).then(|| Duration::from_millis(30))
    });
    let events = [
        event(10_000, "wifi0", "blackhole"),
        event(10_200, "lte0", "down"),
    ];
    let metrics = metrics_of(&log, &events);
    assert_eq!(metrics.up.events[0].lost, 200);
    assert_eq!(metrics.up.events[0].recovery_ms, 199.0);
    assert_eq!(metrics.up.events[1].lost, 300);
    assert_eq!(metrics.up.events[1].recovery_ms, 299.0);
    // The gap began in the first event's window and belongs to it alone.
    assert_eq!(metrics.up.events[0].outage_ms, 501.0);
    assert_eq!(metrics.up.events[1].outage_ms, 1.0);
}

#[test]
fn a_link_dead_until_the_end_is_bounded_by_the_end_of_the_stream() {
    let log = stream(1000, Duration::from_secs(60), 1, |seq| {
        (seq < 50_000).then(|| Duration::from_millis(30))
    });
    let metrics = metrics_of(&log, &[event(50_000, "wifi0", "down")]);
    assert_eq!(metrics.up.lost, 10_000);
    assert_eq!(metrics.up.events[0].lost, 10_000);
    assert_eq!(metrics.up.events[0].recovery_ms, 9_999.0);
    // From the last delivered probe (sent 49.999 s) to one interval after the last sent.
    assert_eq!(metrics.up.events[0].outage_ms, 10_001.0);
    assert_eq!(metrics.up.max_outage_ms, 10_001.0);
}

#[test]
fn nothing_delivered_gives_zero_delivery_and_no_latency() {
    let log = stream(1000, Duration::from_secs(2), 1, |_| None);
    let metrics = metrics_of(&log, &[]);
    assert_eq!(metrics.up.delivery_ratio, 0.0);
    assert_eq!(metrics.up.lost, 2_000);
    assert_eq!(metrics.up.latency_ms.p50, None);
    assert_eq!(metrics.up.latency_ms.max, None);
    assert_eq!(metrics.up.max_outage_ms, 2_001.0);
    assert_eq!(metrics.up.reordered_ratio, 0.0);
}

#[test]
fn latency_percentiles_follow_the_distribution() {
    // 9 of 10 probes take 10 ms, 1 of 10 takes 100 ms.
    let log = stream(1000, Duration::from_secs(10), 1, |seq| {
        constant(if seq % 10 == 9 { 100 } else { 10 })
    });
    let latency = metrics_of(&log, &[]).up.latency_ms;
    assert_close(latency.p50, 10.0);
    assert_close(latency.p90, 10.0);
    assert_close(latency.p99, 100.0);
    assert_close(latency.max, 100.0);
}

#[test]
fn duplicates_are_counted_once_and_never_raise_delivery() {
    let mut log = stream(1000, Duration::from_secs(1), 1, |seq| {
        (seq != 5).then(|| Duration::from_millis(10))
    });
    let copies: Vec<ProbeRecord> = log.received.records[..3]
        .iter()
        .map(|r| ProbeRecord {
            received: r.received + Duration::from_millis(1),
            ..*r
        })
        .collect();
    log.received.records.extend(copies);
    let metrics = metrics_of(&log, &[]);
    assert_eq!(metrics.up.duplicates, 3);
    assert_eq!(metrics.up.delivered, 999);
    assert_eq!(metrics.up.lost, 1);
    assert_eq!(metrics.up.delivery_ratio, 0.999);
}

#[test]
fn reordering_counts_within_a_flow_only() {
    // Probe 100 is held 5 ms and arrives after 101..104 of its single flow.
    let one_flow = stream(1000, Duration::from_secs(1), 1, |seq| {
        constant(if seq == 100 { 15 } else { 10 })
    });
    assert_eq!(metrics_of(&one_flow, &[]).up.reordered_ratio, 0.001);

    // Two flows on links of different delay pass each other, but each flow
    // stays in order: nothing an application would see as reordering.
    let two_flows = stream(1000, Duration::from_secs(1), 2, |seq| {
        constant(if seq % 2 == 0 { 10 } else { 50 })
    });
    assert_eq!(metrics_of(&two_flows, &[]).up.reordered_ratio, 0.0);
}

#[test]
fn goodput_and_link_share_come_from_tcp_logs_and_counters() {
    let probes = stream(1000, Duration::from_secs(1), 1, |_| constant(10));
    let tcp = TcpLog {
        origin: ORIGIN,
        bin: Duration::from_secs(1),
        duration: Duration::from_secs(4),
        bytes_per_bin: vec![2_500_000, 2_500_000, 2_500_000, 2_500_000, 0],
        flows: vec![TcpFlowLog {
            peer: "198.18.0.1:5000".parse().unwrap(),
            bytes: 10_000_000,
            first_byte: None,
            last_byte: None,
        }],
    };
    let links = [
        LinkCounters {
            link: "wifi0".into(),
            bytes: 300,
            packets: 3,
        },
        LinkCounters {
            link: "lte0".into(),
            bytes: 100,
            packets: 1,
        },
    ];
    let run = RunLogs {
        origin: ORIGIN,
        probes: &probes,
        tcp: Some(&tcp),
        events: &[],
        links: &links,
        host_pauses: None,
        flow_links: None,
    };
    let metrics = system_metrics(&run, None, &MetricsConfig::default());
    assert_eq!(metrics.tcp_goodput_mbps, Some(20.0));
    assert_eq!(metrics.link_share["wifi0"], 0.75);
    assert_eq!(metrics.link_share["lte0"], 0.25);
}

#[test]
fn a_latency_step_is_an_outage_of_the_event_that_caused_it() {
    // Latency rises from 20 to 50 ms at 10 s: nothing is lost, but the
    // receiver waits 31 ms for the next probe.
    let log = stream(1000, Duration::from_secs(20), 1, |seq| {
        constant(if seq < 10_000 { 20 } else { 50 })
    });
    let events = [event(5_000, "wifi0", "set"), event(10_000, "wifi0", "set")];
    let metrics = metrics_of(&log, &events);
    assert_eq!(
        metrics.up.events[0].outage_ms, 1.0,
        "the step is not the earlier event's"
    );
    assert_eq!(metrics.up.events[1].outage_ms, 31.0);
    assert_eq!(
        (metrics.up.events[1].lost, metrics.up.events[1].recovery_ms),
        (0, 0.0)
    );
}

#[test]
fn a_system_that_collapses_after_a_link_died_loses_because_of_that_event() {
    // A three-link site: lte0 dies at 10 s (until its `up` at 20 s). The
    // system keeps delivering for 40 ms, then loses everything for 2 s; a
    // `set` on the trace-driven lte1 at 10.5 s and 11 s changes nothing.
    let log = stream(1000, Duration::from_secs(30), 1, |seq| {
        (!(10_040..12_040).contains(&seq)).then(|| Duration::from_millis(30))
    });
    let events = [
        event(10_000, "lte0", "down"),
        event(10_500, "lte1", "set"),
        event(11_000, "lte1", "set"),
        event(20_000, "lte0", "up"),
    ];
    let metrics = metrics_of(&log, &events);
    assert_eq!(metrics.up.lost, 2_000);
    let died = &metrics.up.events[0];
    assert_eq!(died.lost, 2_000);
    assert_eq!(
        died.recovery_ms, 2_039.0,
        "the last loss was sent at 12.039 s"
    );
    assert_eq!(died.outage_ms, 2_001.0);
    assert!(metrics.up.events[1..].iter().all(|e| e.lost == 0));
    assert_eq!(metrics.up.unattributed_lost, 0);
    assert_eq!(metrics.up.max_recovery_ms, 2_039.0);
}

#[test]
fn losses_belong_to_the_link_the_pinned_system_used() {
    // wifi0 is blackholed from 10 s to 12 s; lte0 gets a `set` at 10.5 s.
    // single-link carried everything on wifi0.
    let log = stream(1000, Duration::from_secs(20), 16, |seq| {
        (!(10_000..12_000).contains(&seq)).then(|| Duration::from_millis(30))
    });
    let events = [
        lasting(10_000, "wifi0", "blackhole", 2_000),
        event(10_500, "lte0", "set"),
    ];
    let metrics = pinned_metrics(&log, &events, &["wifi0"]);
    assert_eq!(
        (metrics.up.events[0].lost, metrics.up.events[1].lost),
        (2_000, 0)
    );
    assert_eq!(metrics.up.events[0].recovery_ms, 1_999.0);
    assert_eq!(metrics.up.events[0].outage_ms, 2_001.0);
    assert_eq!(
        metrics.up.events[1].outage_ms, 0.0,
        "no probe went over lte0"
    );
    assert_eq!(metrics.up.unattributed_lost, 0);
    // The same log from a system that spreads packets: the dead link's
    // blackhole outranks the `set`.
    let spread = metrics_of(&log, &events);
    assert_eq!(
        (spread.up.events[0].lost, spread.up.events[1].lost),
        (2_000, 0)
    );
}

#[test]
fn a_flow_pinned_to_a_healthy_link_books_its_losses_to_that_link() {
    // multiwan: flows 0 and 1 on wifi0, 2 and 3 on lte0. wifi0 is
    // blackholed from 10 s to 12 s; lte0 loses one probe at 9 s (no event)
    // and one at 11 s, while wifi0's event is in effect: neither is wifi0's.
    let wifi0_dead = |seq: u64| seq % 4 < 2 && (10_000..12_000).contains(&seq);
    let log = stream(1000, Duration::from_secs(20), 4, |seq| {
        (!(wifi0_dead(seq) || seq == 9_002 || seq == 11_002)).then(|| Duration::from_millis(30))
    });
    let events = [lasting(10_000, "wifi0", "blackhole", 2_000)];
    let metrics = pinned_metrics(&log, &events, &["wifi0", "wifi0", "lte0", "lte0"]);
    assert_eq!(metrics.up.events[0].lost, 1_000);
    assert_eq!(metrics.up.unattributed_lost, 2);
    assert_every_loss_counted_once(&metrics);
}

#[test]
fn losses_after_a_link_returns_belong_to_its_up() {
    // wifi0 is down from 10 s to its `up` at 13 s; the pinned system loses
    // 300 ms more after the link returned (re-resolving its neighbour).
    let log = stream(1000, Duration::from_secs(20), 1, |seq| {
        (!(10_000..13_300).contains(&seq)).then(|| Duration::from_millis(30))
    });
    let events = [event(10_000, "wifi0", "down"), event(13_000, "wifi0", "up")];
    let metrics = pinned_metrics(&log, &events, &["wifi0"]);
    assert_eq!(
        (metrics.up.events[0].lost, metrics.up.events[0].recovery_ms),
        (3_000, 2_999.0)
    );
    assert_eq!(
        (metrics.up.events[1].lost, metrics.up.events[1].recovery_ms),
        (300, 299.0)
    );
    assert_eq!(metrics.up.events[0].outage_ms, 3_301.0);
    assert_every_loss_counted_once(&metrics);
}
