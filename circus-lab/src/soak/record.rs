//! A soak's record: every sample (samples.csv), each pass of the scenario,
//! and each judged figure with its verdict (soak.json).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::growth::{self, Growth, Tolerance};
use super::sampler::DaemonSample;
use super::{SoakConfig, SoakError};
use crate::metrics::StreamLogs;
use crate::scenario::Scenario;

/// Resident memory may rise 2 MiB or 10 % (the allocator keeps what a
/// burst of queued packets took); more, and steadily, is a leak.
const RSS: Tolerance = Tolerance {
    absolute: 2048.0,
    relative: 0.10,
};
/// Descriptors come and go as links flap (a link's socket is reopened when
/// its interface returns); three more than at the start, steadily, is not
/// a flap.
const FDS: Tolerance = Tolerance {
    absolute: 3.0,
    relative: 0.0,
};
/// The daemon runs on one thread; tokio may add a blocking-pool thread or
/// two for a while.
const THREADS: Tolerance = Tolerance {
    absolute: 2.0,
    relative: 0.0,
};

/// Both daemons at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Seconds since the first pass started.
    pub t_s: f64,
    pub client: DaemonSample,
    pub gateway: DaemonSample,
}

impl Row {
    /// One line for the progress bar.
    pub fn describe(&self) -> String {
        let one = |name: &str, s: &DaemonSample| {
            format!(
                "{name} {:.1} MiB {} fds {} thr",
                s.rss_kib as f64 / 1024.0,
                s.fds,
                s.threads
            )
        };
        format!(
            "{} | {}",
            one("client", &self.client),
            one("gateway", &self.gateway)
        )
    }
}

/// One pass of the scenario: did the tunnel carry its traffic?
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pass {
    pub number: u32,
    /// Seconds since the first pass started, at this one's end.
    pub ended_s: f64,
    /// Probes sent and received in both directions (received counts
    /// duplicates, which circus removes, so it is at most sent).
    pub probes_sent: u64,
    pub probes_received: u64,
}

impl Pass {
    /// The pass `number`, just ended, with the logs of its directions.
    pub fn of(number: u32, started: Instant, directions: [Option<&StreamLogs>; 2]) -> Pass {
        let logs = directions.into_iter().flatten();
        let (mut sent, mut received) = (0, 0);
        for log in logs {
            sent += log.probes.sent.sent_at.len() as u64;
            received += log.probes.received.records.len() as u64;
        }
        Pass {
            number,
            ended_s: started.elapsed().as_secs_f64(),
            probes_sent: sent,
            probes_received: received,
        }
    }
}

/// One judged figure of one daemon.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figure {
    /// E.g. "client rss_kib".
    pub name: String,
    pub tolerance: Tolerance,
    pub first: f64,
    pub last: f64,
    pub min: f64,
    pub max: f64,
    /// `None` when the soak was too short to judge.
    pub growth: Option<Growth>,
}

/// What a soak found.
#[derive(Clone, Debug, Serialize)]
pub struct SoakReport {
    pub scenario: String,
    pub commit: String,
    /// How long the passes ran (whole passes: at least the asked duration).
    pub soaked_s: f64,
    pub every_s: f64,
    pub passes: Vec<Pass>,
    pub figures: Vec<Figure>,
    pub samples: Vec<Row>,
}

/// Reads one figure from a daemon's sample.
type ReadFigure = fn(&DaemonSample) -> u64;
/// Picks one daemon's sample from a row.
type PickDaemon = fn(&Row) -> &DaemonSample;

/// The judged figures: name, tolerance, and how to read it from a sample.
const FIGURES: [(&str, Tolerance, ReadFigure); 3] = [
    ("rss_kib", RSS, |s| s.rss_kib),
    ("fds", FDS, |s| s.fds),
    ("threads", THREADS, |s| s.threads),
];

impl SoakReport {
    /// Judges every figure of both daemons over `samples`.
    pub fn judge(
        scenario: &Scenario,
        config: &SoakConfig,
        soaked: Duration,
        passes: Vec<Pass>,
        samples: Vec<Row>,
    ) -> SoakReport {
        let mut figures = Vec::new();
        let roles: [(&str, PickDaemon); 2] =
            [("client", |r| &r.client), ("gateway", |r| &r.gateway)];
        for (role, daemon) in roles {
            for (figure, tolerance, read) in FIGURES {
                let series: Vec<(f64, f64)> = samples
                    .iter()
                    .map(|row| (row.t_s, read(daemon(row)) as f64))
                    .collect();
                figures.push(Figure::of(format!("{role} {figure}"), tolerance, &series));
            }
        }
        SoakReport {
            scenario: scenario.name.clone(),
            commit: crate::runner::output::commit_id(),
            soaked_s: soaked.as_secs_f64(),
            every_s: config.every.as_secs_f64(),
            passes,
            figures,
            samples,
        }
    }

    /// The figures that grew.
    pub fn grown(&self) -> Vec<&Figure> {
        self.figures
            .iter()
            .filter(|f| f.growth.as_ref().is_some_and(|g| g.grows))
            .collect()
    }

    /// A table of the figures and the verdict.
    pub fn render(&self) -> String {
        let mut out = format!(
            "soak of {}: {:.0} s, {} passes, {} samples every {:.0} s\n",
            self.scenario,
            self.soaked_s,
            self.passes.len(),
            self.samples.len(),
            self.every_s
        );
        let _ = writeln!(
            out,
            "{:<16} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11} {:>10} {:>9}  verdict",
            "figure",
            "first",
            "last",
            "min",
            "max",
            "1st third",
            "last third",
            "slope/h",
            "allowed"
        );
        for f in &self.figures {
            let _ = write!(
                out,
                "{:<16} {:>9.0} {:>9.0} {:>9.0} {:>9.0}",
                f.name, f.first, f.last, f.min, f.max
            );
            let _ = match &f.growth {
                Some(g) => writeln!(
                    out,
                    " {:>11.1} {:>11.1} {:>10.1} {:>9.1}  {}",
                    g.first_third_median,
                    g.last_third_median,
                    g.slope_per_hour,
                    g.allowed,
                    if g.grows { "GROWS" } else { "flat" }
                ),
                None => writeln!(out, "  (too few samples to judge)"),
            };
        }
        let (sent, received) = self.passes.iter().fold((0, 0), |(s, r), p| {
            (s + p.probes_sent, r + p.probes_received.min(p.probes_sent))
        });
        if sent > 0 {
            let _ = writeln!(
                out,
                "probes: {received} of {sent} arrived ({:.2} %)",
                100.0 * received as f64 / sent as f64
            );
        }
        out
    }

    /// Writes samples.csv and soak.json into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), SoakError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SoakError::Io { path, source }
        };
        let csv = dir.join("samples.csv");
        std::fs::write(&csv, self.csv()).map_err(io(&csv))?;
        let json = dir.join("soak.json");
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other);
        text.and_then(|t| std::fs::write(&json, t))
            .map_err(io(&json))
    }

    /// One line per sample, both daemons' figures side by side.
    pub fn csv(&self) -> String {
        let fields = ["rss_kib", "fds", "threads", "handshakes", "tunnel_packets"];
        let mut out = String::from("t_s");
        for role in ["client", "gateway"] {
            for field in fields {
                let _ = write!(out, ",{role}_{field}");
            }
        }
        out.push('\n');
        for row in &self.samples {
            let _ = write!(out, "{:.3}", row.t_s);
            for s in [&row.client, &row.gateway] {
                let _ = write!(
                    out,
                    ",{},{},{},{},{}",
                    s.rss_kib, s.fds, s.threads, s.handshakes, s.tunnel_packets
                );
            }
            out.push('\n');
        }
        out
    }
}

impl Figure {
    fn of(name: String, tolerance: Tolerance, series: &[(f64, f64)]) -> Figure {
        let values = series.iter().map(|&(_, v)| v);
        Figure {
            name,
            tolerance,
            first: series.first().map_or(0.0, |&(_, v)| v),
            last: series.last().map_or(0.0, |&(_, v)| v),
            min: values.clone().reduce(f64::min).unwrap_or(0.0),
            max: values.reduce(f64::max).unwrap_or(0.0),
            growth: growth::judge(series, tolerance),
        }
    }
}
