//! What a run leaves behind: `summary.json` (the machine-readable result that
//! other tools parse), `report.md` for people, PNG and SVG plots, and the
//! summary table printed at the end of a run.
//!
//! - [`assemble`]: the one path from logs (real or simulated) to results.
//! - [`summary`]: the `summary.json` types, in the exact shape of DESIGN.md.
//! - [`table`]: one comparison row per system, for the terminal and Markdown.
//! - [`setup`]: the links and the timeline in words.
//! - [`commands`]: how each of the user's commands ended, per system.
//! - [`markdown`]: renders `report.md`.
//! - [`plots`]: delivery/latency over time and zoomed around each event,
//!   latency CDF, per-link share.

pub mod assemble;
pub mod commands;
pub mod markdown;
pub mod plots;
pub mod setup;
pub mod summary;
pub mod table;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::metrics::TimelineEvent;

pub use assemble::{DirectionSeries, Outcome, assemble};
pub use summary::{BestLink, SIM_BACKEND, Summary};
pub use table::summary_table;

/// Why a report could not be written. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot draw {path}: {message}")]
    Plot { path: PathBuf, message: String },
    #[error("{path} is not a summary.json of the expected shape: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the embedded plot font circus-lab/assets/DejaVuSans.ttf is not a usable font")]
    Font,
}

/// Everything one report directory holds, for the caller to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub summary_json: PathBuf,
    pub report_md: PathBuf,
    /// Every plot, PNG and SVG.
    pub plots: Vec<PathBuf>,
}

/// Writes `summary.json`, the plots and `report.md` into `dir` (created if
/// missing). `series` holds the time series of each system named in
/// `summary.systems`; `events` is the scenario's timeline, marked on plots.
pub fn write_report(
    dir: &Path,
    summary: &Summary,
    series: &BTreeMap<String, DirectionSeries>,
    events: &[TimelineEvent],
) -> Result<ReportFiles, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let summary_json = dir.join("summary.json");
    write_file(&summary_json, summary.to_json())?;
    let plots = plots::write_plots(dir, summary, series, events)?;
    let report_md = dir.join("report.md");
    write_file(&report_md, markdown::render(summary, &plots.names()))?;
    Ok(ReportFiles {
        summary_json,
        report_md,
        plots: plots.paths(dir),
    })
}

fn write_file(path: &Path, contents: String) -> Result<(), ReportError> {
    std::fs::write(path, contents).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}
