//! Prometheus text exposition (format 0.0.4) on a small HTTP listener.
//!
//! Hand-written rather than a metrics crate: the daemon already has every
//! figure in its [`StatusReport`], so rendering that report on request is
//! all an exporter needs to do, and it pulls in no HTTP stack.

use crate::status::{Counters, ReportRequest, StatusReport};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// A scraper that has not sent its request line by then is dropped, so a
/// stuck connection cannot pin a task forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("cannot listen for metrics on {addr}: {source}")]
pub struct MetricsError {
    pub addr: SocketAddr,
    #[source]
    pub source: io::Error,
}

pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    pub async fn bind(addr: SocketAddr) -> Result<Self, MetricsError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError { addr, source })?;
        Ok(MetricsServer { listener })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answers scrapes until the requests channel closes.
    pub async fn serve(self, requests: mpsc::Sender<ReportRequest>) {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                continue;
            };
            if requests.is_closed() {
                return;
            }
            tokio::spawn(answer(stream, requests.clone()));
        }
    }
}

async fn answer(mut stream: TcpStream, requests: mpsc::Sender<ReportRequest>) {
    let mut head = [0u8; 2048];
    let mut len = 0;
    let read_head = async {
        while !head[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < head.len() {
            match stream.read(&mut head[len..]).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => len += n,
            }
        }
        true
    };
    if !matches!(
        tokio::time::timeout(REQUEST_TIMEOUT, read_head).await,
        Ok(true)
    ) {
        return;
    }
    let wanted = head.starts_with(b"GET /metrics ") || head.starts_with(b"GET / ");
    let response = if wanted {
        let (tx, rx) = oneshot::channel();
        if requests.send(tx).await.is_err() {
            return;
        }
        let Ok(report) = rx.await else { return };
        let body = render(&report);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Path states, in the order the engine moves through them; each link has
/// one `circus_link_state` series per state, 1 for the current one.
const PATH_STATES: [&str; 4] = ["probing", "up", "suspect", "down"];

/// The report in Prometheus text format.
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    let role = escape(&report.role);
    metric(
        &mut out,
        "circus_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    let _ = writeln!(
        out,
        "circus_uptime_seconds{{role=\"{role}\"}} {}",
        report.uptime_s
    );

    metric(
        &mut out,
        "circus_refused_datagrams_total",
        "counter",
        "Datagrams refused (malformed, unauthentic, replayed, ...).",
    );
    for (reason, n) in &report.refused {
        let _ = writeln!(
            out,
            "circus_refused_datagrams_total{{role=\"{role}\",reason=\"{}\"}} {n}",
            escape(reason)
        );
    }
    metric(
        &mut out,
        "circus_session_connected",
        "gauge",
        "1 while the session's handshake is complete.",
    );
    for s in &report.sessions {
        let _ = writeln!(
            out,
            "circus_session_connected{{session=\"{}\"}} {}",
            escape(&s.name),
            u8::from(s.connected)
        );
    }
    metric(
        &mut out,
        "circus_session_handshakes_total",
        "counter",
        "Handshakes completed: the first and one per rekey.",
    );
    for s in &report.sessions {
        let _ = writeln!(
            out,
            "circus_session_handshakes_total{{session=\"{}\"}} {}",
            escape(&s.name),
            s.handshakes
        );
    }
    metric(
        &mut out,
        "circus_session_dropped_packets_total",
        "counter",
        "Tunnel packets lost inside circus, by reason.",
    );
    for s in &report.sessions {
        for (reason, n) in &s.dropped {
            let _ = writeln!(
                out,
                "circus_session_dropped_packets_total{{session=\"{}\",reason=\"{}\"}} {n}",
                escape(&s.name),
                escape(reason)
            );
        }
    }
    counters(
        &mut out,
        "circus_session_tunnel",
        "inner IP packets through the tunnel",
        report,
        |s| vec![(format!("session=\"{}\"", escape(&s.name)), s.tunnel)],
    );

    let link_labels = |session: &str, id: u8, name: &str| {
        format!(
            "session=\"{}\",link=\"{}\",id=\"{id}\"",
            escape(session),
            escape(name)
        )
    };
    metric(
        &mut out,
        "circus_link_rtt_seconds",
        "gauge",
        "Smoothed round-trip time of the link.",
    );
    metric_lines(&mut out, report, |s, l| {
        l.rtt_ms.map(|v| {
            format!(
                "circus_link_rtt_seconds{{{}}} {}",
                link_labels(&s.name, l.id, &l.name),
                v / 1e3
            )
        })
    });
    metric(
        &mut out,
        "circus_link_rttvar_seconds",
        "gauge",
        "Round-trip time variation of the link.",
    );
    metric_lines(&mut out, report, |s, l| {
        l.rttvar_ms.map(|v| {
            format!(
                "circus_link_rttvar_seconds{{{}}} {}",
                link_labels(&s.name, l.id, &l.name),
                v / 1e3
            )
        })
    });
    metric(
        &mut out,
        "circus_link_loss_ratio",
        "gauge",
        "Fraction of the link's packets recently lost.",
    );
    metric_lines(&mut out, report, |s, l| {
        Some(format!(
            "circus_link_loss_ratio{{{}}} {}",
            link_labels(&s.name, l.id, &l.name),
            l.loss
        ))
    });
    metric(
        &mut out,
        "circus_link_state",
        "gauge",
        "1 for the link's current path state.",
    );
    metric_lines(&mut out, report, |s, l| {
        let labels = link_labels(&s.name, l.id, &l.name);
        Some(
            PATH_STATES
                .iter()
                .map(|st| {
                    format!(
                        "circus_link_state{{{labels},state=\"{st}\"}} {}",
                        u8::from(l.state == *st)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        )
    });
    counters(
        &mut out,
        "circus_link",
        "outer UDP datagrams on the link",
        report,
        |s| {
            s.links
                .iter()
                .map(|l| (link_labels(&s.name, l.id, &l.name), l.traffic))
                .collect()
        },
    );
    out
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn metric_lines(
    out: &mut String,
    report: &StatusReport,
    line: impl Fn(&crate::status::SessionStatus, &crate::status::LinkStatus) -> Option<String>,
) {
    for s in &report.sessions {
        for l in &s.links {
            if let Some(text) = line(s, l) {
                let _ = writeln!(out, "{text}");
            }
        }
    }
}

/// The four byte/packet counters of each labelled series.
fn counters(
    out: &mut String,
    prefix: &str,
    what: &str,
    report: &StatusReport,
    series: impl Fn(&crate::status::SessionStatus) -> Vec<(String, Counters)>,
) {
    let all: Vec<(String, Counters)> = report.sessions.iter().flat_map(&series).collect();
    for (i, field) in Counters::FIELDS.iter().enumerate() {
        let name = format!("{prefix}_{field}_total");
        metric(
            out,
            &name,
            "counter",
            &format!("{} of {what}.", field.replace('_', " ")),
        );
        for (labels, c) in &all {
            let _ = writeln!(out, "{name}{{{labels}}} {}", c.values()[i]);
        }
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::tests::sample;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let text = render(&sample());
        for family in [
            "circus_uptime_seconds",
            "circus_refused_datagrams_total",
            "circus_session_connected",
            "circus_session_handshakes_total",
            "circus_session_dropped_packets_total",
            "circus_session_tunnel_bytes_sent_total",
            "circus_link_rtt_seconds",
            "circus_link_loss_ratio",
            "circus_link_state",
            "circus_link_packets_received_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family} in\n{text}"
            );
        }
        let labels = "session=\"gateway\",link=\"wifi\",id=\"0\"";
        assert!(
            text.contains(&format!("circus_link_rtt_seconds{{{labels}}} 0.03125\n")),
            "{text}"
        );
        assert!(text.contains(&format!("circus_link_state{{{labels},state=\"up\"}} 1\n")));
        assert!(text.contains(&format!("circus_link_state{{{labels},state=\"down\"}} 0\n")));
        assert!(
            text.contains("circus_session_tunnel_bytes_sent_total{session=\"gateway\"} 1500000\n")
        );
        // Every sample line is `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[tokio::test]
    async fn answers_http_scrapes() {
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel::<ReportRequest>(1);
        let serving = tokio::spawn(server.serve(tx));
        let answering = tokio::spawn(async move {
            while let Some(reply) = rx.recv().await {
                let _ = reply.send(sample());
            }
        });
        let get = |path: &'static str| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).await.unwrap();
            text
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with(&render(&sample())));
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
        serving.abort();
        answering.abort();
    }
}
