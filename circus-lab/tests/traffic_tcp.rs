//! Bulk TCP and MPTCP flows over loopback (no root needed).

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use circus_lab::traffic::MonoNanos;
use circus_lab::traffic::tcp::{
    TcpBulkReceiver, TcpFlavor, TcpLog, TcpReceiverConfig, TcpSenderConfig, send_bulk,
};

fn transfer(
    flavor: TcpFlavor,
    flows: u16,
) -> (Vec<circus_lab::traffic::tcp::TcpFlowReport>, TcpLog) {
    let config = TcpReceiverConfig {
        flavor,
        origin: MonoNanos::now(),
        bin: Duration::from_millis(100),
        duration: Duration::from_millis(500),
        until_flows_closed: Some(flows),
    };
    let receiver = TcpBulkReceiver::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let sender = TcpSenderConfig {
        target: receiver.local_addr(),
        flows,
        duration: Duration::from_millis(500),
        flavor,
        connect_timeout: Duration::from_secs(2),
        flow_devices: Vec::new(),
    };
    // The receiver returns once the senders closed every flow, so a loaded
    // machine that drains the sockets late still counts every byte; `stop`
    // only ends a run whose flows never all arrived (the counts then fail).
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let receiving = scope.spawn(|| receiver.run(&stop));
        let sent = send_bulk(&sender, &AtomicBool::new(false)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !receiving.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        (sent, receiving.join().unwrap().unwrap())
    })
}

fn assert_counts_every_byte(
    flows: u16,
    sent: &[circus_lab::traffic::tcp::TcpFlowReport],
    log: &TcpLog,
) {
    assert_eq!(sent.len(), usize::from(flows));
    for flow in sent {
        assert_eq!(flow.error, None);
        assert!(flow.bytes_written > 0);
    }
    assert_eq!(log.flows.len(), usize::from(flows));
    let written: u64 = sent.iter().map(|f| f.bytes_written).sum();
    let per_flow: u64 = log.flows.iter().map(|f| f.bytes).sum();
    assert_eq!(per_flow, written, "the receiver read every byte written");
    assert_eq!(
        log.total_bytes(),
        written,
        "the bins add up to the bytes received"
    );
    assert_eq!(
        log.bytes_per_bin.len(),
        6,
        "5 bins of 100 ms plus one for late bytes"
    );
}

#[test]
fn tcp_flows_are_counted_per_bin() {
    let (sent, log) = transfer(TcpFlavor::Tcp, 3);
    assert_counts_every_byte(3, &sent, &log);
}

#[test]
fn mptcp_flows_are_counted_when_the_kernel_has_mptcp() {
    let enabled = std::fs::read_to_string("/proc/sys/net/mptcp/enabled").unwrap_or_default();
    if enabled.trim() != "1" {
        eprintln!("skipping: MPTCP is not enabled in this kernel (net.mptcp.enabled)");
        return;
    }
    let (sent, log) = transfer(TcpFlavor::Mptcp, 2);
    assert_counts_every_byte(2, &sent, &log);
}

#[test]
fn a_refused_connection_is_reported_per_flow() {
    // Bind and drop a listener to get a loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let sender = TcpSenderConfig {
        target: port,
        flows: 2,
        duration: Duration::from_millis(100),
        flavor: TcpFlavor::Tcp,
        connect_timeout: Duration::from_secs(1),
        flow_devices: Vec::new(),
    };
    let reports = send_bulk(&sender, &AtomicBool::new(false)).unwrap();
    assert_eq!(reports.len(), 2);
    for report in reports {
        assert_eq!(report.bytes_written, 0);
        assert!(report.error.unwrap().contains(&port.to_string()));
    }
}
