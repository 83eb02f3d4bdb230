//! `circus-lab`: run scenarios against circus and the baselines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use circus_lab::metrics::{SystemSeries, TimelineEvent};
use circus_lab::report::{Summary, summary_table, write_report};
use circus_lab::runner::{self, output};
use circus_lab::scenario::{Scenario, SystemKind};
use circus_lab::systems;
use circus_lab::topology::require_netns;
use indicatif::ProgressBar;

/// The circus laboratory: bad links in network namespaces, circus against the
/// alternatives on the same scenario, reports as JSON, Markdown and plots.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario in real network namespaces (needs root or CAP_NET_ADMIN).
    ///
    /// Builds the topology (client, emu, gateway, server namespaces), emulates
    /// the links in userspace (or netem where the kernel has it), runs each
    /// system of the scenario in turn on the same seed and writes summary.json,
    /// report.md and plots to reports/<scenario>/<timestamp>/ or --out.
    Run {
        /// Scenario file (TOML; schema in scenarios/README.md).
        scenario: PathBuf,
        /// Output directory instead of reports/<scenario>/<timestamp>/.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run only these systems (comma-separated), overriding the scenario.
        #[arg(long, value_delimiter = ',')]
        systems: Option<Vec<String>>,
    },
    /// Run a scenario on virtual time in one process: no root, deterministic.
    Sim {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Output directory instead of reports/<scenario>/sim-<timestamp>/.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check scenario files and print what they describe; runs nothing.
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { scenarios } => validate(&scenarios),
        Command::Run {
            scenario,
            out,
            systems,
        } => run(&scenario, out, systems),
        Command::Sim { .. } => {
            eprintln!("circus-lab: this command is not wired yet");
            ExitCode::from(2)
        }
    }
}

fn run(file: &Path, out: Option<PathBuf>, only: Option<Vec<String>>) -> ExitCode {
    let scenario = match Scenario::load(file) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Err(e) = require_netns() {
        return fail(e);
    }
    let systems = match only {
        None => scenario.systems.clone(),
        Some(names) => match names
            .iter()
            .map(|n| n.parse())
            .collect::<Result<Vec<SystemKind>, _>>()
        {
            Ok(kinds) => kinds,
            Err(e) => return fail(format!("--systems: {e}")),
        },
    };
    let (runnable, skipped): (Vec<_>, Vec<_>) = systems
        .into_iter()
        .partition(|k| systems::adapter(*k).is_some());
    for kind in &skipped {
        eprintln!(
            "circus-lab: skipping `{}`: not available in this build",
            kind.as_str()
        );
    }
    eprintln!(
        "circus-lab: {} ({} links, {:?} per system) with {}",
        scenario.name,
        scenario.links.len(),
        scenario.duration,
        runnable
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let progress = ProgressBar::new(0);
    let runs = match runner::run_systems(&scenario, &runnable, &progress) {
        Ok(runs) => runs,
        Err(e) => return fail(e),
    };
    let backend = runs.values().next().map_or("userspace", |r| r.backend);
    let mut summary = Summary::for_scenario(&scenario, backend, &output::commit_id());
    let mut series = BTreeMap::new();
    for (name, run) in runs {
        summary.systems.insert(name.clone(), run.metrics);
        series.insert(name, run.series);
    }
    write_outputs(
        &scenario,
        &summary,
        &series,
        out.unwrap_or_else(|| output::default_report_dir(&scenario.name, "")),
    )
}

/// Writes the report directory and prints the summary table and its path.
fn write_outputs(
    scenario: &Scenario,
    summary: &Summary,
    series: &BTreeMap<String, SystemSeries>,
    dir: PathBuf,
) -> ExitCode {
    let events: Vec<TimelineEvent> = scenario.events.iter().map(TimelineEvent::from).collect();
    match write_report(&dir, summary, series, &events) {
        Ok(files) => {
            println!("{}", summary_table(summary));
            println!("report: {}", files.report_md.display());
            println!("summary: {}", files.summary_json.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("circus-lab: {error}");
    ExitCode::FAILURE
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for file in files {
        match Scenario::load(file) {
            Ok(s) => println!(
                "{}: ok: \"{}\", {} links, {} events, {:?}, systems {}",
                file.display(),
                s.name,
                s.links.len(),
                s.events.len(),
                s.duration,
                s.systems
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
