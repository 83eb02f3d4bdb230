//! The regression suite: every scenario on virtual time, a short subset in
//! real namespaces, each system's watched figures compared with the baseline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

use super::baseline::{Baseline, Comparison, Figures};
use crate::metrics::StreamMetrics;
use crate::report::Summary;
use crate::runner::{self, RunError};
use crate::scenario::{Scenario, ScenarioError};
use crate::sim::{self, SimError};

/// Why the suite could not run.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("{file}: simulation failed: {source}")]
    Sim { file: String, source: SimError },
    #[error("{file}: run failed: {source}")]
    Run { file: String, source: Box<RunError> },
    #[error("cannot list scenarios in {dir}: {source}")]
    List { dir: String, source: std::io::Error },
}

/// The watched figures of one direction: its probe stream, its TCP
/// goodput and that goodput's share of the best link's (absent goodput
/// counts as 0).
pub fn figures_of(
    stream: &StreamMetrics,
    tcp_mbps: Option<f64>,
    to_best_link: Option<f64>,
) -> Figures {
    Figures {
        delivery_ratio: stream.delivery_ratio,
        max_outage_ms: stream.max_outage_ms,
        max_flow_outage_ms: stream.max_flow_outage_ms,
        latency_p99_ms: stream.latency_ms.p99.unwrap_or(0.0),
        tcp_goodput_mbps: tcp_mbps.unwrap_or(0.0),
        tcp_to_best_link: to_best_link.map_or(0.0, |r| (r * 1e4).round() / 1e4),
    }
}

/// Every `*.toml` in `dir`, sorted, so the suite's order is stable.
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>, SuiteError> {
    let list = |source| SuiteError::List {
        dir: dir.display().to_string(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(list)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(list)?;
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    Ok(files)
}

/// Entries `<mode>/<scenario>/<system>` (upload) and
/// `<mode>/<scenario>/<system>/down` with their figures, from a summary.
fn entries(mode: &str, summary: &Summary) -> Vec<(String, Figures)> {
    let mut entries = Vec::new();
    for (system, m) in &summary.systems {
        let key = format!("{mode}/{}/{system}", summary.scenario);
        let (up_ratio, down_ratio) = summary.tcp_ratio_to_best_link(system);
        entries.push((key.clone(), figures_of(&m.up, m.tcp_goodput_mbps, up_ratio)));
        if let Some(down) = &m.down {
            entries.push((
                format!("{key}/down"),
                figures_of(down, m.tcp_goodput_down_mbps, down_ratio),
            ));
        }
    }
    entries
}

/// Simulates each scenario file.
pub fn sim_entries(files: &[PathBuf], commit: &str) -> Result<Vec<(String, Figures)>, SuiteError> {
    let mut all = Vec::new();
    for file in files {
        let scenario = Scenario::load(file)?;
        let report = sim::run(&scenario, commit).map_err(|source| SuiteError::Sim {
            file: file.display().to_string(),
            source,
        })?;
        all.extend(entries("sim", &report.outcome.summary));
    }
    Ok(all)
}

/// Runs each scenario file in real namespaces (all of its systems).
pub fn real_entries(
    files: &[PathBuf],
    progress: &ProgressBar,
) -> Result<Vec<(String, Figures)>, SuiteError> {
    let mut all = Vec::new();
    for file in files {
        let scenario = Scenario::load(file)?;
        let results = runner::run_systems(&scenario, &scenario.systems, None, progress).map_err(
            |source| SuiteError::Run {
                file: file.display().to_string(),
                source: Box::new(source),
            },
        )?;
        let outcome = results.outcome(&scenario, "bench");
        all.extend(entries("real", &outcome.summary));
    }
    Ok(all)
}

/// The terminal table: one line per entry, regressions spelled out below.
pub fn render_table(comparisons: &[Comparison]) -> String {
    let mut out = String::new();
    let width = comparisons
        .iter()
        .map(|c| c.key.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        out,
        "{:width$}  {:>9}  {:>10}  {:>10}  {:>9}  {:>9}  {:>9}  status",
        "entry", "delivery", "outage ms", "flow ms", "p99 ms", "TCP Mbps", "TCP/best"
    );
    for c in comparisons {
        let f = &c.current;
        let status = match (&c.baseline, c.regressions.len()) {
            (None, _) => "new".to_string(),
            (Some(_), 0) => "ok".to_string(),
            (Some(_), n) => format!("REGRESSED ({n})"),
        };
        let _ = writeln!(
            out,
            "{:width$}  {:>8.3}%  {:>10.1}  {:>10.1}  {:>9.1}  {:>9.2}  {:>8.0}%  {status}",
            c.key,
            f.delivery_ratio * 100.0,
            f.max_outage_ms,
            f.max_flow_outage_ms,
            f.latency_p99_ms,
            f.tcp_goodput_mbps,
            f.tcp_to_best_link * 100.0
        );
    }
    for c in comparisons {
        for r in &c.regressions {
            let _ = writeln!(out, "regression: {} {r}", c.key);
        }
    }
    out
}

/// The Markdown report: each figure as baseline -> current with the change,
/// so the trend is visible at a glance.
pub fn render_markdown(comparisons: &[Comparison], commit: &str) -> String {
    let mut out = format!(
        "# circus-lab bench\n\ncommit `{commit}`; each cell is baseline -> current (change).\n\n\
         | entry | delivery | max outage ms | max flow outage ms | p99 latency ms | TCP Mbit/s | TCP / best link | status |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    for c in comparisons {
        let cell = |now: f64, was: Option<f64>, scale: f64| match was {
            Some(was) => format!(
                "{:.3} -> {:.3} ({:+.3})",
                was * scale,
                now * scale,
                (now - was) * scale
            ),
            None => format!("{:.3}", now * scale),
        };
        let b = c.baseline.as_ref();
        let status = match (b, c.regressions.is_empty()) {
            (None, _) => "new".to_string(),
            (Some(_), true) => "ok".to_string(),
            (Some(_), false) => format!(
                "**regressed**: {}",
                c.regressions
                    .iter()
                    .map(|r| r.figure)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {status} |",
            c.key,
            cell(c.current.delivery_ratio, b.map(|b| b.delivery_ratio), 100.0),
            cell(c.current.max_outage_ms, b.map(|b| b.max_outage_ms), 1.0),
            cell(
                c.current.max_flow_outage_ms,
                b.map(|b| b.max_flow_outage_ms),
                1.0
            ),
            cell(c.current.latency_p99_ms, b.map(|b| b.latency_p99_ms), 1.0),
            cell(
                c.current.tcp_goodput_mbps,
                b.map(|b| b.tcp_goodput_mbps),
                1.0
            ),
            cell(
                c.current.tcp_to_best_link,
                b.map(|b| b.tcp_to_best_link),
                100.0
            ),
        );
    }
    out
}

/// Compares every entry with `baseline`, in entry order.
pub fn compare_all(baseline: &Baseline, entries: &[(String, Figures)]) -> Vec<Comparison> {
    entries
        .iter()
        .map(|(key, f)| baseline.compare(key, f))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(delivery: f64) -> Figures {
        Figures {
            delivery_ratio: delivery,
            max_outage_ms: 10.0,
            max_flow_outage_ms: 20.0,
            latency_p99_ms: 30.0,
            tcp_goodput_mbps: 0.0,
            tcp_to_best_link: 0.0,
        }
    }

    #[test]
    fn table_and_markdown_name_regressions_and_new_entries() {
        let mut baseline = Baseline::default();
        baseline.entries.insert("sim/a/circus".into(), f(1.0));
        baseline.entries.insert("sim/b/circus".into(), f(1.0));
        let entries = vec![
            ("sim/a/circus".to_string(), f(1.0)),
            ("sim/b/circus".to_string(), f(0.9)),
            ("sim/c/circus".to_string(), f(0.5)),
        ];
        let comparisons = compare_all(&baseline, &entries);
        let table = render_table(&comparisons);
        assert!(table.contains("REGRESSED (1)"), "{table}");
        assert!(
            table.contains("regression: sim/b/circus delivery_ratio"),
            "{table}"
        );
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("sim/c/circus") && l.ends_with("new"))
        );
        let md = render_markdown(&comparisons, "abc");
        assert!(md.contains("100.000 -> 90.000 (-10.000)"), "{md}");
        assert!(md.contains("**regressed**: delivery_ratio"), "{md}");
    }

    #[test]
    fn shipped_scenarios_simulate_into_entries() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let files = scenario_files(&dir).unwrap();
        assert!(files.len() >= 8, "{files:?}");
        let flappy: Vec<_> = files
            .iter()
            .filter(|p| p.ends_with("flappy.toml"))
            .cloned()
            .collect();
        let entries = sim_entries(&flappy, "test").unwrap();
        let keys: Vec<_> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sim/flappy/circus",
                "sim/flappy/circus/down",
                "sim/flappy/multiwan",
                "sim/flappy/multiwan/down",
                "sim/flappy/single-link",
                "sim/flappy/single-link/down"
            ]
        );
    }
}
