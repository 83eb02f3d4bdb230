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
    /// The peer's public key (base64): the gateway's on a client, the
    /// client's on a gateway.
    pub public_key: String,
    pub connected: bool,
    /// Seconds since the keys in use were agreed; `None` before the first
    /// handshake. Over two minutes means rekeying fails.
    pub last_handshake_s: Option<f64>,
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
    /// Where this link's packets go: the gateway's address for this link
    /// (client) or the client's current address on it (gateway); "-" when
    /// not known yet.
    pub peer: String,
    /// The local interface: "absent", "down" or "up" (gateway: "up").
    pub interface: String,
    /// Path state as judged by the engine: "probing", "up", "suspect", "down".
    pub state: String,
    pub rtt_ms: Option<f64>,
    pub rttvar_ms: Option<f64>,
    /// Fraction of packets lost recently (0..=1).
    pub loss: f64,
    /// Estimated delivery rate, bytes per second.
    pub rate_bytes_per_s: u64,
    /// Lowest round trip seen since the link last came back: the link's
    /// delay without queueing.
    #[serde(default)]
    pub min_rtt_ms: Option<f64>,
    /// How much later than their fastest the peer's acks arrive: queueing
    /// on the way back, which the in-flight cap allows for.
    #[serde(default)]
    pub return_delay_ms: Option<f64>,
    /// Bytes sent on the link and not yet acknowledged or declared lost,
    /// and the most that bulk packets may keep in flight: a link at its cap
    /// with packets waiting is the tunnel's bottleneck.
    #[serde(default)]
    pub in_flight_bytes: u64,
    #[serde(default)]
    pub in_flight_cap_bytes: u64,
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

/// The report as a table for people: what `wg show` shows (peer key,
/// endpoints, last handshake, transfer) and per link what circus adds.
pub fn render(report: &StatusReport) -> String {
    let gateway = report.role == "gateway";
    let mut out = String::new();
    let _ = writeln!(
        out,
        "circus {} up {}",
        report.role,
        human_duration(report.uptime_s)
    );
    if let Some(reasons) = nonzero(&report.refused) {
        let _ = writeln!(out, "refused datagrams: {reasons}");
    }
    for session in &report.sessions {
        render_session(&mut out, session, gateway);
    }
    out
}

fn render_session(out: &mut String, session: &SessionStatus, gateway: bool) {
    let handshake = match session.last_handshake_s {
        Some(s) => format!("last handshake {} ago", human_duration(s)),
        None => "no handshake yet".to_owned(),
    };
    // On the gateway, "not_allowed" counts packets from a source address
    // that is not the client's: worth seeing even when zero.
    let spoofed = if gateway {
        let n = session.dropped.get("not_allowed").copied().unwrap_or(0);
        format!(", spoofed sources {n}")
    } else {
        String::new()
    };
    // A client has one session, to its gateway; a gateway one per client.
    let peer = if gateway {
        format!("client {}", session.name)
    } else {
        "gateway".to_owned()
    };
    let _ = writeln!(
        out,
        "\n{peer} {}: {}, {handshake} ({} handshakes){spoofed}",
        short_key(&session.public_key),
        if session.connected {
            "connected"
        } else {
            "not connected"
        },
        session.handshakes,
    );
    let t = &session.tunnel;
    let _ = writeln!(
        out,
        "  tunnel sent {} ({} pkts) received {} ({} pkts)",
        human_bytes(t.bytes_sent),
        t.packets_sent,
        human_bytes(t.bytes_received),
        t.packets_received,
    );
    if let Some(reasons) = nonzero(&session.dropped) {
        let _ = writeln!(out, "  dropped tunnel packets: {reasons}");
    }
    // The gateway has no interface per link: the client's links all reach
    // its one socket.
    let columns: Vec<(&str, usize)> = LINK_COLUMNS
        .into_iter()
        .filter(|(name, _)| !(gateway && *name == "IFACE"))
        .collect();
    let header: Vec<String> = columns.iter().map(|(name, _)| (*name).to_owned()).collect();
    write_row(out, &columns, &header);
    for l in &session.links {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        let mut cells = vec![l.id.to_string(), l.name.clone()];
        if !gateway {
            cells.push(format!("{} {}", l.endpoint, l.interface));
        }
        cells.extend([
            l.peer.clone(),
            l.state.clone(),
            ms(l.rtt_ms),
            ms(l.rttvar_ms),
            ms(l.min_rtt_ms),
            format!("{:.2}%", l.loss * 100.0),
            human_rate(l.rate_bytes_per_s),
            format!(
                "{:.1}k/{:.1}k",
                l.in_flight_bytes as f64 / 1e3,
                l.in_flight_cap_bytes as f64 / 1e3
            ),
            human_bytes(l.traffic.bytes_sent),
            human_bytes(l.traffic.bytes_received),
        ]);
        write_row(out, &columns, &cells);
    }
}

fn write_row(out: &mut String, columns: &[(&str, usize)], cells: &[String]) {
    let mut row = String::from(" ");
    for (cell, (_, width)) in cells.iter().zip(columns) {
        let _ = write!(row, " {cell:<width$}");
    }
    let _ = writeln!(out, "{}", row.trim_end());
}

/// The link table's columns and widths; IFACE is the client's only.
const LINK_COLUMNS: [(&str, usize); 13] = [
    ("ID", 3),
    ("LINK", 10),
    ("IFACE", 14),
    ("PEER", 22),
    ("STATE", 8),
    ("RTT ms", 7),
    ("RTTVAR", 7),
    ("MIN", 7),
    ("LOSS", 7),
    ("RATE", 12),
    ("FLIGHT/CAP", 14),
    ("SENT", 10),
    ("RECEIVED", 10),
];

/// "reason n, reason n" for the non-zero counters, `None` if all are zero.
fn nonzero(counters: &BTreeMap<String, u64>) -> Option<String> {
    let reasons: Vec<String> = counters
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    (!reasons.is_empty()).then(|| reasons.join(", "))
}

/// The first characters of a base64 key, enough to tell keys apart (as
/// `wg show` users compare them by eye).
fn short_key(key: &str) -> String {
    match key.get(..10) {
        Some(start) if key.len() > 10 => format!("{start}…"),
        _ => key.to_owned(),
    }
}

fn human_rate(bytes_per_s: u64) -> String {
    const UNITS: [&str; 4] = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s"];
    let mut value = bytes_per_s as f64 * 8.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[0])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
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
                public_key: "x4OYU8MsVbbZ+zvDG5Umk0Uh28yInaYSHxxaqodsvkE=".into(),
                connected: true,
                last_handshake_s: Some(45.5),
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
                    peer: "203.0.113.10:51820".into(),
                    interface: "up".into(),
                    state: "up".into(),
                    rtt_ms: Some(31.25),
                    rttvar_ms: Some(4.0),
                    loss: 0.001,
                    rate_bytes_per_s: 150_000,
                    min_rtt_ms: Some(28.0),
                    return_delay_ms: Some(1.5),
                    in_flight_bytes: 12_000,
                    in_flight_cap_bytes: 9_000,
                    traffic: Counters {
                        bytes_sent: 2_000_000,
                        bytes_received: 300,
                        packets_sent: 2000,
                        packets_received: 3,
                    },
                }],
            }],
        }
    }

    fn gateway_sample() -> StatusReport {
        let mut report = sample();
        report.role = "gateway".into();
        report.refused = BTreeMap::new();
        let session = &mut report.sessions[0];
        session.name = "home".into();
        session.public_key = "GGH5wBxvOW1G7/pUTYYK+rj+4CFmBCsHWZ/kKN8sEGI=".into();
        session.dropped = BTreeMap::from([("not_allowed".to_owned(), 7)]);
        let link = &mut session.links[0];
        link.name = "0".into();
        link.endpoint = "198.51.100.7:40001".into();
        link.peer = link.endpoint.clone();
        let mut never = session.clone();
        never.name = "office".into();
        never.connected = false;
        never.last_handshake_s = None;
        never.links.clear();
        never.dropped.clear();
        report.sessions.push(never);
        report
    }

    #[test]
    fn client_table_shows_what_wg_show_shows_and_each_link() {
        let text = render(&sample());
        assert!(
            text.starts_with("circus client up 2m05s\nrefused datagrams: replayed 3\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "gateway x4OYU8MsVb…: connected, last handshake 45s ago (1 handshakes)\n  \
                 tunnel sent 1.5 MB (1000 pkts) received 20 B (1 pkts)\n"
            ),
            "{text}"
        );
        let header = text.lines().find(|l| l.contains("STATE")).unwrap();
        let row = text.lines().find(|l| l.contains("wifi")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "0",
                "wifi",
                "wlan0",
                "up",
                "203.0.113.10:51820",
                "up",
                "31.2",
                "4.0",
                "28.0",
                "0.10%",
                "1.2",
                "Mbit/s",
                "12.0k/9.0k",
                "2.0",
                "MB",
                "300",
                "B"
            ],
            "{row}"
        );
        for (column, value) in [
            ("PEER", "203.0.113.10"),
            ("RATE", "1.2 Mbit/s"),
            ("FLIGHT/CAP", "12.0k/9.0k"),
            ("SENT", "2.0 MB"),
        ] {
            assert_eq!(
                header.find(column),
                row.find(value),
                "{column} lines up\n{header}\n{row}"
            );
        }
    }

    #[test]
    fn gateway_table_shows_each_client_with_its_spoofed_count() {
        let text = render(&gateway_sample());
        assert!(
            text.contains(
                "client home GGH5wBxvOW…: connected, last handshake 45s ago (1 handshakes), \
                 spoofed sources 7\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "client office GGH5wBxvOW…: not connected, no handshake yet (1 handshakes), \
                 spoofed sources 0\n"
            ),
            "{text}"
        );
        assert!(
            !text.contains("IFACE"),
            "no interfaces on the gateway: {text}"
        );
        let row = text.lines().find(|l| l.contains("198.51.100.7")).unwrap();
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>()[..4],
            ["0", "0", "198.51.100.7:40001", "up"],
            "{row}"
        );
    }

    #[test]
    fn rates_and_keys_are_short() {
        assert_eq!(human_rate(0), "0 bit/s");
        assert_eq!(human_rate(100), "800 bit/s");
        assert_eq!(human_rate(1_250_000), "10.0 Mbit/s");
        assert_eq!(human_rate(u64::MAX), "147573952589.7 Gbit/s");
        assert_eq!(short_key("abc"), "abc");
        assert_eq!(short_key("0123456789"), "0123456789");
        assert_eq!(short_key("0123456789A"), "0123456789…");
        assert_eq!(
            short_key("aéééééé"),
            "aéééééé",
            "no panic inside a character"
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
