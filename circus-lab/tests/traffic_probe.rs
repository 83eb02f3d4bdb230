//! Probe stream over loopback (no root needed).

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use circus_lab::scenario::{ProbeSpec, TrafficDirection};
use circus_lab::traffic::MonoNanos;
use circus_lab::traffic::probe::{
    ProbeHeader, ProbeLog, ProbeReceiver, ProbeSenderConfig, send_probes,
};

const LOOPBACK_ANY_PORT: &str = "127.0.0.1:0";

/// Runs one stream through loopback and returns both logs.
fn run_stream(config_for: impl FnOnce(SocketAddr) -> ProbeSenderConfig) -> ProbeLog {
    let receiver = ProbeReceiver::bind(LOOPBACK_ANY_PORT.parse().unwrap(), 77, 10_000).unwrap();
    let config = config_for(receiver.local_addr());
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let receiving = scope.spawn(|| receiver.run(&stop));
        let sent = send_probes(&config, MonoNanos::now(), &AtomicBool::new(false)).unwrap();
        // Let the last probes arrive before stopping the receiver.
        thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        let received = receiving.join().unwrap().unwrap();
        ProbeLog { sent, received }
    })
}

#[test]
fn thousand_pps_for_two_seconds_arrive_with_sane_latency() {
    let log = run_stream(|target| {
        ProbeSenderConfig::new(target, ProbeSpec::DEFAULT, Duration::from_secs(2), 77)
    });

    assert_eq!(
        log.sent.sent_at.len(),
        2000,
        "rate x duration probes are sent"
    );
    assert_eq!(log.sent.send_errors, 0);
    // Absolute deadlines: probe i is never sent before start + i ms.
    for (seq, sent) in log.sent.sent_at.iter().enumerate() {
        assert!(
            sent.0 >= log.sent.start.0 + seq as u64 * 1_000_000,
            "probe {seq} early"
        );
    }

    let seqs: HashSet<u64> = log.received.records.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs.len(),
        log.received.records.len(),
        "no duplicates on loopback"
    );
    assert!(
        seqs.len() >= 1990,
        "only {} of 2000 probes arrived",
        seqs.len()
    );
    assert_eq!(log.received.foreign, 0);

    let mut latencies: Vec<u64> = log
        .received
        .records
        .iter()
        .map(|r| {
            assert_eq!(
                r.sent, log.sent.sent_at[r.seq as usize],
                "payload carries the send time"
            );
            r.received.0 - r.sent.0
        })
        .collect();
    latencies.sort_unstable();
    let median = Duration::from_nanos(latencies[latencies.len() / 2]);
    assert!(
        median < Duration::from_millis(50),
        "median loopback latency {median:?}"
    );
}

#[test]
fn flows_use_distinct_source_ports_round_robin() {
    let log = run_stream(|target| ProbeSenderConfig {
        flows: 4,
        rate_pps: 500,
        size: 64,
        ..ProbeSenderConfig::new(target, ProbeSpec::DEFAULT, Duration::from_millis(200), 77)
    });

    let ports: HashSet<u16> = log.sent.source_ports.iter().copied().collect();
    assert_eq!(ports.len(), 4, "ports {:?}", log.sent.source_ports);
    assert!(!ports.contains(&0));
    assert_eq!(log.sent.sent_at.len(), 100);
    assert!(!log.received.records.is_empty());
    for record in &log.received.records {
        assert_eq!(u64::from(record.flow), record.seq % 4);
    }
}

#[test]
fn receiver_ignores_other_streams_and_garbage() {
    let receiver = ProbeReceiver::bind(LOOPBACK_ANY_PORT.parse().unwrap(), 5, 16).unwrap();
    let target = receiver.local_addr();
    let stop = AtomicBool::new(false);
    let log = thread::scope(|scope| {
        let receiving = scope.spawn(|| receiver.run(&stop));
        let socket = UdpSocket::bind(LOOPBACK_ANY_PORT).unwrap();
        let probe = |stream_id, seq| {
            ProbeHeader {
                stream_id,
                seq,
                sent: MonoNanos::now(),
                flow: 0,
            }
            .encode()
        };
        socket.send_to(&probe(5, 1), target).unwrap();
        socket.send_to(&probe(6, 2), target).unwrap();
        socket.send_to(b"hello", target).unwrap();
        socket.send_to(&probe(5, 3), target).unwrap();
        thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        receiving.join().unwrap().unwrap()
    });
    let seqs: Vec<u64> = log.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![1, 3]);
    assert_eq!(log.foreign, 2);
}

#[test]
fn receiver_keeps_at_most_its_capacity() {
    let receiver = ProbeReceiver::bind(LOOPBACK_ANY_PORT.parse().unwrap(), 9, 2).unwrap();
    let target = receiver.local_addr();
    let stop = AtomicBool::new(false);
    let log = thread::scope(|scope| {
        let receiving = scope.spawn(|| receiver.run(&stop));
        let socket = UdpSocket::bind(LOOPBACK_ANY_PORT).unwrap();
        for seq in 0..5 {
            let header = ProbeHeader {
                stream_id: 9,
                seq,
                sent: MonoNanos::now(),
                flow: 0,
            };
            socket.send_to(&header.encode(), target).unwrap();
        }
        thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        receiving.join().unwrap().unwrap()
    });
    assert_eq!(log.records.len(), 2);
    assert_eq!(log.not_recorded, 3);
}

#[test]
fn invalid_sender_settings_are_refused_with_the_key() {
    let target = "127.0.0.1:9".parse().unwrap();
    let stop = AtomicBool::new(false);
    for (config, key) in [
        (
            ProbeSenderConfig {
                flows: 0,
                ..ProbeSenderConfig::new(target, ProbeSpec::DEFAULT, Duration::from_secs(1), 1)
            },
            "flows",
        ),
        (
            ProbeSenderConfig {
                rate_pps: 0,
                ..ProbeSenderConfig::new(target, ProbeSpec::DEFAULT, Duration::from_secs(1), 1)
            },
            "rate_pps",
        ),
        (
            ProbeSenderConfig {
                size: 10,
                ..ProbeSenderConfig::new(target, ProbeSpec::DEFAULT, Duration::from_secs(1), 1)
            },
            "size",
        ),
    ] {
        let error = send_probes(&config, MonoNanos::now(), &stop).unwrap_err();
        assert!(error.to_string().contains(key), "{error}");
    }
}

#[test]
fn flows_pinned_to_an_interface_leave_on_it() {
    // Pinned to loopback: the stream arrives as unpinned would.
    let log = run_stream(|target| {
        let mut config = ProbeSenderConfig::new(
            target,
            ProbeSpec {
                rate_pps: 1000,
                size: 64,
                direction: TrafficDirection::Up,
            },
            Duration::from_millis(100),
            77,
        );
        config.flows = 2;
        config.flow_devices = vec!["lo".into()];
        config
    });
    assert_eq!(
        log.received.records.len() as u64,
        log.sent.sent_at.len() as u64
    );
}

#[test]
fn pinning_to_a_missing_interface_is_an_error_naming_the_address() {
    let mut config = ProbeSenderConfig::new(
        "127.0.0.1:9".parse().unwrap(),
        ProbeSpec {
            rate_pps: 1000,
            size: 64,
            direction: TrafficDirection::Up,
        },
        Duration::from_millis(10),
        1,
    );
    config.flow_devices = vec!["nosuchlink0".into()];
    let error = send_probes(&config, MonoNanos::now(), &AtomicBool::new(false)).unwrap_err();
    assert!(error.to_string().contains("0.0.0.0:0"), "{error}");
}
