//! `circus-lab`: run scenarios against circus and the baselines.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use circus_lab::scenario::Scenario;

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
        Command::Run { .. } | Command::Sim { .. } => {
            eprintln!("circus-lab: this command is not wired yet");
            ExitCode::from(2)
        }
    }
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
