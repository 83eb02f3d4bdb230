//! `circus-node status`: a snapshot of the daemon over a local unix socket.
//!
//! The daemon answers each connection with one JSON [`StatusReport`] and
//! closes it; the CLI renders the report as a table (or passes the JSON on
//! with `--json`, for scripts and the lab). The report is taken by the
//! event loop itself on request, so it is current and needs no locks.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

/// Asks the event loop for a fresh report.
pub type ReportRequest = oneshot::Sender<StatusReport>;

/// Everything `status` and the metrics endpoint show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// "client" or "gateway".
    pub role: String,
    pub uptime_s: f64,
    /// Datagrams refused, by reason ("malformed", "unknown_index",
    /// "unauthentic", "replayed", "handshake_refused", "handshake_bad_mac1",
    /// "handshake_cookie_reply" (answered with a cookie under load, not
    /// processed), "handshake_rate_limited", "handshake_queue_full", and on
    /// the gateway "spoofed_source": a client's packet from an address that
    /// is not its own): what hostile or broken input the daemon has been
    /// shrugging off.
    pub refused: BTreeMap<String, u64>,
    /// A client has one session (to its gateway); a gateway one per
    /// configured client, connected or not.
    pub sessions: Vec<SessionStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    pub name: String,
    pub connected: bool,
    /// Handshakes completed: the first, then one per rekey (every two
    /// minutes). More means the session was lost and re-established.
    pub handshakes: u64,
    /// Packets and bytes through the tunnel (inner IP packets).
    pub tunnel: Counters,
    /// Tunnel packets lost inside circus, by reason: "queue_full",
    /// "too_large", "expired" (no link took them in time), "gave_up" (the
    /// receiver released a hole as lost), "stale" (arrived after that),
    /// "not_allowed" (cryptokey routing: from the peer with a source, on
    /// the gateway, or for a destination, on the client, that is not the
    /// client's).
    pub dropped: BTreeMap<String, u64>,
    pub links: Vec<LinkStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkStatus {
    pub id: u8,
    pub name: String,
    /// Local view of the link: the interface (client) or the peer's current
    /// address (gateway).
    pub endpoint: String,
    /// The local interface: "absent", "down" or "up" (gateway: "up").
    pub interface: String,
    /// Path state as judged by the engine: "probing", "up", "suspect", "down".
    pub state: String,
    pub rtt_ms: Option<f64>,
    pub rttvar_ms: Option<f64>,
    /// Fraction of packets lost recently (0..=1).
    pub loss: f64,
    /// Outer UDP datagrams on this link.
    pub traffic: Counters,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
}

impl Counters {
    /// Field names, in the order of [`Counters::values`].
    pub const FIELDS: [&'static str; 4] = [
        "bytes_sent",
        "bytes_received",
        "packets_sent",
        "packets_received",
    ];

    pub fn values(&self) -> [u64; 4] {
        [
            self.bytes_sent,
            self.bytes_received,
            self.packets_sent,
            self.packets_received,
        ]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot listen on status socket {}: {source}", path.display())]
    Listen {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot reach a daemon at {}: {source} (is it running? see --socket)", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the daemon at {} sent an unreadable report: {detail}", path.display())]
    BadReport { path: PathBuf, detail: String },
}

/// The listening socket; removes its file when dropped.
pub struct StatusServer {
    listener: UnixListener,
    path: PathBuf,
}

impl StatusServer {
    /// Binds `path`, replacing a stale socket file a killed daemon left
    /// (but not a live daemon's: that is an error).
    pub fn bind(path: &Path) -> Result<Self, StatusError> {
        let err = |source| StatusError::Listen {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another daemon is answering there",
            )));
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(err(e)),
            _ => {}
        }
        let listener = UnixListener::bind(path).map_err(err)?;
        Ok(StatusServer {
            listener,
            path: path.to_owned(),
        })
    }

    /// Answers connections until the requests channel closes.
    pub async fn serve(self, requests: mpsc::Sender<ReportRequest>) {
        loop {
            let Ok((mut stream, _)) = self.listener.accept().await else {
                continue;
            };
            let (tx, rx) = oneshot::channel();
            if requests.send(tx).await.is_err() {
                return;
            }
            let Ok(report) = rx.await else { return };
            let mut json = serde_json::to_vec(&report).unwrap_or_default();
            json.push(b'\n');
            // A client that hangs up early only loses its own answer.
            let _ = stream.write_all(&json).await;
        }
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Fetches a report from the daemon at `path` (blocking; for the CLI).
pub fn query(path: &Path) -> Result<StatusReport, StatusError> {
    let connect = |source| StatusError::Connect {
        path: path.to_owned(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(connect)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(connect)?;
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(connect)?;
    serde_json::from_str(&text).map_err(|e| StatusError::BadReport {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// The report as a table for people.
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "circus {} up {}",
        report.role,
        human_duration(report.uptime_s)
    );
    if report.refused.values().any(|&n| n > 0) {
        let reasons: Vec<String> = report
            .refused
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        let _ = writeln!(out, "refused datagrams: {}", reasons.join(", "));
    }
    for session in &report.sessions {
        let t = &session.tunnel;
        let _ = writeln!(
            out,
            "\nsession {}: {} ({} handshakes)  tunnel sent {} ({} pkts) received {} ({} pkts)",
            session.name,
            if session.connected {
                "connected"
            } else {
                "not connected"
            },
            session.handshakes,
            human_bytes(t.bytes_sent),
            t.packets_sent,
            human_bytes(t.bytes_received),
            t.packets_received,
        );
        if session.dropped.values().any(|&n| n > 0) {
            let reasons: Vec<String> = session
                .dropped
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            let _ = writeln!(out, "  dropped tunnel packets: {}", reasons.join(", "));
        }
        let _ = writeln!(
            out,
            "  {:<3} {:<12} {:<22} {:<7} {:<8} {:>8} {:>8} {:>7} {:>10} {:>10}",
            "ID",
            "LINK",
            "ENDPOINT",
            "IFACE",
            "STATE",
            "RTT ms",
            "RTTVAR",
            "LOSS",
            "SENT",
            "RECEIVED"
        );
        for l in &session.links {
            let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
            let _ = writeln!(
                out,
                "  {:<3} {:<12} {:<22} {:<7} {:<8} {:>8} {:>8} {:>6.2}% {:>10} {:>10}",
                l.id,
                l.name,
                l.endpoint,
                l.interface,
                l.state,
                ms(l.rtt_ms),
                ms(l.rttvar_ms),
                l.loss * 100.0,
                human_bytes(l.traffic.bytes_sent),
                human_bytes(l.traffic.bytes_received),
            );
        }
    }
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> StatusReport {
        StatusReport {
            role: "client".into(),
            uptime_s: 125.0,
            refused: BTreeMap::from([("replayed".to_owned(), 3)]),
            sessions: vec![SessionStatus {
                name: "gateway".into(),
                connected: true,
                handshakes: 1,
                dropped: BTreeMap::new(),
                tunnel: Counters {
                    bytes_sent: 1_500_000,
                    bytes_received: 20,
                    packets_sent: 1000,
                    packets_received: 1,
                },
                links: vec![LinkStatus {
                    id: 0,
                    name: "wifi".into(),
                    endpoint: "wlan0".into(),
                    interface: "up".into(),
                    state: "up".into(),
                    rtt_ms: Some(31.25),
                    rttvar_ms: Some(4.0),
                    loss: 0.001,
                    traffic: Counters::default(),
                }],
            }],
        }
    }

    #[test]
    fn table_shows_links_and_totals() {
        let text = render(&sample());
        assert!(
            text.starts_with("circus client up 2m05s\nrefused datagrams: replayed 3\n"),
            "{text}"
        );
        assert!(text.contains("session gateway: connected"), "{text}");
        assert!(text.contains("1.5 MB (1000 pkts)"), "{text}");
        let row = text.lines().find(|l| l.contains("wifi")).unwrap();
        assert!(
            row.contains("wlan0") && row.contains("31.2") && row.contains("0.10%"),
            "{row}"
        );
    }

    #[tokio::test]
    async fn serves_reports_and_cleans_up() {
        let path = std::env::temp_dir().join(format!("cnd-status-{}.sock", std::process::id()));
        let server = StatusServer::bind(&path).unwrap();
        assert!(
            StatusServer::bind(&path).is_err(),
            "a live daemon's socket is not taken over"
        );
        let (tx, mut rx) = mpsc::channel::<ReportRequest>(1);
        let serving = tokio::spawn(server.serve(tx));
        let answering = tokio::spawn(async move {
            while let Some(reply) = rx.recv().await {
                let _ = reply.send(sample());
            }
        });
        let query_path = path.clone();
        let report = tokio::task::spawn_blocking(move || query(&query_path))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(report, sample());
        serving.abort();
        answering.abort();
        let _ = serving.await;
        assert!(!path.exists(), "socket file removed with the server");
        assert!(matches!(query(&path), Err(StatusError::Connect { .. })));
    }
}
