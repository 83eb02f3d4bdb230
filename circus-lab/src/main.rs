//! `circus-lab`: run scenarios against circus and the baselines.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use circus_lab::bench::baseline::Baseline;
use circus_lab::bench::{suite, throughput};
use circus_lab::report::{Outcome, summary_table, write_report};
use circus_lab::runner::{self, output};
use circus_lab::scenario::units::parse_duration;
use circus_lab::scenario::{Scenario, System};
use circus_lab::shell::ShellConfig;
use circus_lab::sim;
use circus_lab::soak::{self, SoakConfig};
use circus_lab::systems::{external, registry};
use circus_lab::topology::require_netns;
use indicatif::ProgressBar;

/// The circus laboratory: bad links in network namespaces, circus against the
/// alternatives on the same scenario, reports as JSON, Markdown and plots.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about = None,
    after_help = "Logs go to stderr (warnings by default); set RUST_LOG, e.g. \
                  RUST_LOG=circus_node=info, to see the daemons' link state changes."
)]
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
    /// report.md and plots to reports/<scenario>/<timestamp>/ or --out. The
    /// scenario's own commands ([[traffic.command]]) run in each system's
    /// run; their output goes to commands/<system>/ in that folder.
    Run {
        /// Scenario file (TOML; schema in scenarios/README.md).
        scenario: PathBuf,
        /// Output directory instead of reports/<scenario>/<timestamp>/.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run only these systems (comma-separated), overriding the scenario.
        #[arg(long, value_delimiter = ',', long_help = systems_help())]
        systems: Option<Vec<String>>,
        /// Capture every link's frames, both directions, to
        /// pcap/<run>/<link>-up.pcapng and -down.pcapng in the output
        /// directory: what entered the emulator and what left it, dropped
        /// frames commented (userspace backend only; see the README).
        #[arg(long)]
        pcap: bool,
    },
    /// Run a scenario on virtual time in one process: no root, deterministic.
    Sim {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Output directory instead of reports/<scenario>/sim-<timestamp>/.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the regression suite and compare it with the baseline.
    ///
    /// Simulates every scenario in --scenarios (deterministic), runs the
    /// --real scenarios in namespaces (root), prints a table, writes
    /// reports/bench/<timestamp>/bench.md, and exits non-zero naming each
    /// figure that regressed beyond the tolerance stated in the baseline.
    Bench {
        /// Baseline file with figures and tolerances.
        #[arg(long, default_value = "reports/baseline.json")]
        baseline: PathBuf,
        /// Directory whose scenarios are simulated.
        #[arg(long, default_value = "scenarios")]
        scenarios: PathBuf,
        /// Scenarios also run in real namespaces (short ones; needs root),
        /// comma-separated or repeated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "scenarios/ci-blackhole.toml,scenarios/ci-uneven.toml"
        )]
        real: Vec<PathBuf>,
        /// Skip the real-namespace runs (no root needed).
        #[arg(long)]
        sim_only: bool,
        /// Rewrite the baseline with this run's figures instead of comparing.
        #[arg(long)]
        update: bool,
        /// Instead of the suite, measure UDP and TCP goodput of one link
        /// against circus over two (unimpaired, then TCP over two equal
        /// 20 Mbit/s links), and circus's UDP goodput offered 0.25x to 4x
        /// its peak; prints a table and writes
        /// reports/throughput/<timestamp>/throughput.json.
        #[arg(long, conflicts_with = "update")]
        throughput: bool,
        /// Also soak the daemons through scenarios/flappy.toml for 10
        /// minutes (see `soak`); too long for CI.
        #[arg(long, conflicts_with_all = ["update", "throughput"])]
        long: bool,
    },
    /// Run the real daemons through a flapping scenario for a long time and
    /// fail if their memory, descriptors or threads keep growing.
    ///
    /// Starts `circus-node client` and `circus-node gateway` as processes in
    /// the client and gateway namespaces (the lab's circus configs), plays
    /// the scenario's traffic and link events again and again for --for
    /// (whole passes), and every --every reads each daemon's VmRSS and
    /// Threads (/proc/PID/status), its open descriptors (/proc/PID/fd) and
    /// its status (handshakes, tunnel packets). Writes samples.csv,
    /// soak.json, the configs and the daemons' logs to
    /// reports/<scenario>/<timestamp>-soak/ or --out. A figure grows when,
    /// after the first fifth of the samples (warm-up), both the median of
    /// the last third exceeds that of the first third and the least-squares
    /// slope projected over the run exceed its tolerance: RSS 2 MiB or 10 %,
    /// descriptors 3, threads 2. Exits non-zero naming each such figure.
    Soak {
        /// Scenario file (TOML); one with link events (flaps) makes sense.
        scenario: PathBuf,
        /// How long to soak, e.g. 30m, 90s, 2h.
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_soak_duration)]
        duration: Duration,
        /// Time between samples.
        #[arg(long, default_value = "5s", value_parser = parse_soak_duration)]
        every: Duration,
        /// The circus-node binary [default: circus-node next to circus-lab].
        #[arg(long)]
        node: Option<PathBuf>,
        /// Output directory instead of reports/<scenario>/<timestamp>-soak/.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Your own programs on the scenario's links: a shell (or one command)
    /// in the client namespace while the timeline plays (needs root).
    ///
    /// Builds the topology, starts --system on it and plays the scenario's
    /// timeline (again from its start every scenario duration, or once with
    /// --once, after which the links stay as it left them), saying on stderr
    /// which event is in effect as it changes. Meanwhile it runs $SHELL (or
    /// sh), or COMMAND, in the client namespace, with the terminal: Ctrl-C
    /// goes to the shell, not to the lab. The lab's own traffic does not
    /// run. The server's address is printed first and is in $CIRCUS_SERVER;
    /// run a server there with `ip netns exec <server namespace> ...`.
    /// Leaving the shell (or COMMAND ending) takes everything down, and
    /// circus-lab exits with its status (128 + N if signal N ended it).
    ///
    /// Example: circus-lab shell scenarios/flappy.toml -- ping 198.19.0.2
    Shell {
        /// Scenario file (TOML): its links and timeline; its traffic and
        /// systems are not used.
        scenario: PathBuf,
        /// The system the client's traffic goes through, named as in a
        /// scenario's `systems`: a built-in one or a system file.
        #[arg(long, value_name = "NAME", default_value = "circus")]
        system: String,
        /// Play the timeline once instead of looping it.
        #[arg(long)]
        once: bool,
        /// Run this command instead of an interactive shell.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
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
    // Warnings (a TCP flow that failed, a daemon's complaint) go to stderr;
    // RUST_LOG=circus_node=info also shows the daemons' link state changes.
    circus_node::logs::init_stderr_logs("warn");
    match cli.command {
        Command::Validate { scenarios } => validate(&scenarios),
        Command::Run {
            scenario,
            out,
            systems,
            pcap,
        } => run(&scenario, out, systems, pcap),
        Command::Sim { scenario, out } => simulate(&scenario, out),
        Command::Shell {
            scenario,
            system,
            once,
            command,
        } => shell(&scenario, &system, once, command),
        Command::Bench {
            throughput: true, ..
        } => throughput(),
        Command::Bench {
            baseline,
            scenarios,
            real,
            sim_only,
            update,
            throughput: false,
            long,
        } => {
            let suite = bench(
                &baseline,
                &scenarios,
                if sim_only { &[] } else { &real },
                update,
            );
            if !long {
                return suite;
            }
            let soaked = soak(
                &scenarios.join("flappy.toml"),
                Duration::from_secs(10 * 60),
                Duration::from_secs(5),
                None,
                None,
            );
            if suite == ExitCode::SUCCESS {
                soaked
            } else {
                suite
            }
        }
        Command::Soak {
            scenario,
            duration,
            every,
            node,
            out,
        } => soak(&scenario, duration, every, node, out),
    }
}

fn run(file: &Path, out: Option<PathBuf>, only: Option<Vec<String>>, pcap: bool) -> ExitCode {
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
            .map(
                |name| match scenario.systems.iter().find(|s| s.name() == name) {
                    Some(listed) => Ok(listed.clone()),
                    None => external::resolve(name, &scenario.file, scenario.links.len()),
                },
            )
            .collect::<Result<Vec<System>, _>>()
        {
            Ok(systems) => systems,
            Err(e) => return fail(format!("--systems: {e}")),
        },
    };
    eprintln!(
        "circus-lab: {} ({} links, {:?} per system) with {}",
        scenario.name,
        scenario.links.len(),
        scenario.duration,
        systems
            .iter()
            .map(System::name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let dir = out.unwrap_or_else(|| output::default_report_dir(&scenario.name, ""));
    let captures = pcap.then(|| dir.join("pcap"));
    let progress = ProgressBar::new(0);
    let outcome =
        match runner::run_systems(&scenario, &systems, &dir, &progress, captures.as_deref()) {
            Ok(results) => results.outcome(&scenario, &output::commit_id()),
            Err(e) => return fail(e),
        };
    if let Some(captures) = &captures {
        println!("captures: {}", captures.display());
    }
    write_outputs(&outcome, dir)
}

fn shell(file: &Path, system: &str, once: bool, command: Vec<String>) -> ExitCode {
    let scenario = match Scenario::load(file) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Err(e) = require_netns() {
        return fail(e);
    }
    let system = match external::resolve(system, file, scenario.links.len()) {
        Ok(system) => system,
        Err(e) => return fail(format!("--system: {e}")),
    };
    let config = ShellConfig {
        system,
        once,
        command,
    };
    match circus_lab::shell::run(&scenario, &config) {
        // Statuses are 0 to 255; anything else is no success either.
        Ok(status) => ExitCode::from(u8::try_from(status).unwrap_or(1)),
        Err(e) => fail(e),
    }
}

/// `--systems`' help: the built-in systems from the registry, and files.
fn systems_help() -> String {
    format!(
        "Run only these systems (comma-separated), overriding the scenario. Built-in:\n{}\n\
         or a system file: a name looked up as <scenario folder>/../systems/NAME.toml, then \
         ./systems/NAME.toml, or a path (with a `/` or ending in .toml) relative to the \
         scenario's folder (format in scenarios/README.md).",
        registry::help()
    )
}

fn simulate(file: &Path, out: Option<PathBuf>) -> ExitCode {
    let scenario = match Scenario::load(file) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let started = std::time::Instant::now();
    let report = match sim::run(&scenario, &output::commit_id()) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    eprintln!(
        "circus-lab: simulated {:?} of {} in {:.3} s",
        scenario.duration,
        scenario.name,
        started.elapsed().as_secs_f64()
    );
    for system in &report.skipped {
        let why = match system {
            System::BuiltIn(_) => "needs a real kernel",
            System::External(_) => "is an external system (its own processes)",
        };
        eprintln!("circus-lab: `{system}` {why}; not simulated, left out of the report");
    }
    if !report.outcome.summary.commands_not_run.is_empty() {
        eprintln!(
            "circus-lab: the scenario's commands run only in `circus-lab run`; not simulated"
        );
    }
    let dir = out.unwrap_or_else(|| output::default_report_dir(&scenario.name, "-sim"));
    write_outputs(&report.outcome, dir)
}

fn throughput() -> ExitCode {
    if let Err(e) = require_netns() {
        return fail(e);
    }
    let t = match throughput::measure(&ProgressBar::new(0)) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    print!("{}", throughput::render(&t));
    let dir = output::default_report_dir("throughput", "");
    let json = dir.join("throughput.json");
    let written = serde_json::to_string_pretty(&t)
        .map_err(std::io::Error::other)
        .and_then(|text| std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&json, text)));
    match written {
        Ok(()) => {
            println!("figures: {}", json.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{}: {e}", json.display())),
    }
}

fn soak(
    file: &Path,
    duration: Duration,
    every: Duration,
    node: Option<PathBuf>,
    out: Option<PathBuf>,
) -> ExitCode {
    let scenario = match Scenario::load(file) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Err(e) = require_netns() {
        return fail(e);
    }
    let node = match node.map_or_else(soak::default_node, Ok) {
        Ok(node) => node,
        Err(e) => return fail(e),
    };
    let config = SoakConfig {
        duration,
        every,
        node,
        out: out.unwrap_or_else(|| output::default_report_dir(&scenario.name, "-soak")),
    };
    eprintln!(
        "circus-lab: soaking {} for {duration:?} ({:?} per pass), a sample every {every:?}, into {}",
        scenario.name,
        scenario.duration,
        config.out.display()
    );
    let report = match soak::run(&scenario, &config, &ProgressBar::new(0)) {
        Ok(report) => report,
        Err(e) => return fail(e),
    };
    print!("{}", report.render());
    println!("samples: {}", config.out.join("samples.csv").display());
    let grown = report.grown();
    if grown.is_empty() {
        return ExitCode::SUCCESS;
    }
    for figure in grown {
        eprintln!(
            "circus-lab: {} grows: {:.0} -> {:.0} (medians of the first and last thirds), {:.0} per hour",
            figure.name,
            figure.growth.as_ref().map_or(0.0, |g| g.first_third_median),
            figure.growth.as_ref().map_or(0.0, |g| g.last_third_median),
            figure.growth.as_ref().map_or(0.0, |g| g.slope_per_hour),
        );
    }
    ExitCode::FAILURE
}

/// Parses a soak duration: the scenario units ("90s", "2min") plus "30m"
/// and "2h", as people write them on a command line.
fn parse_soak_duration(text: &str) -> Result<Duration, String> {
    let minutes = |n: &str, per: u64| parse_duration(&format!("{n}min")).map(|d| d * per as u32);
    match (text.strip_suffix('m'), text.strip_suffix('h')) {
        (Some(n), _) => minutes(n, 1),
        (_, Some(n)) => minutes(n, 60),
        _ => parse_duration(text),
    }
}

fn bench(baseline_file: &Path, scenarios: &Path, real: &[PathBuf], update: bool) -> ExitCode {
    let commit = output::commit_id();
    let mut entries = match suite::scenario_files(scenarios)
        .and_then(|files| suite::sim_entries(&files, &commit))
    {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    if !real.is_empty() {
        if let Err(e) = require_netns() {
            return fail(format!("{e} (or pass --sim-only)"));
        }
        match suite::real_entries(real, &ProgressBar::new(0)) {
            Ok(e) => entries.extend(e),
            Err(e) => return fail(e),
        }
    }
    if update {
        // Writing defaults over a baseline that exists but cannot be read
        // would lose its tolerances, so that stops the update.
        let mut baseline = if baseline_file.exists() {
            match Baseline::load(baseline_file) {
                Ok(b) => b,
                Err(e) => return fail(e),
            }
        } else {
            Baseline::default()
        };
        let modes: &[&str] = if real.is_empty() {
            &["sim"]
        } else {
            &["sim", "real"]
        };
        baseline.replace_modes(modes, entries);
        return match baseline.save(baseline_file) {
            Ok(()) => {
                println!("baseline updated: {}", baseline_file.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    }
    let baseline = match Baseline::load(baseline_file) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let mut comparisons = suite::compare_all(&baseline, &entries);
    // One stall of a shared host moves the p99 of a six-second run by
    // tens of milliseconds, which sim entries and the single-link
    // reference of the same run do not show: a real regression must
    // show again in a second run to count. Both tables are printed.
    let real_regressed = comparisons
        .iter()
        .any(|c| c.key.starts_with("real/") && !c.regressions.is_empty());
    if real_regressed {
        print!("{}", suite::render_table(&comparisons));
        eprintln!(
            "circus-lab: a real entry regressed; running the real scenarios again, the second run decides"
        );
        match suite::real_entries(real, &ProgressBar::new(0)) {
            Ok(again) => {
                entries.retain(|(key, _)| !key.starts_with("real/"));
                entries.extend(again);
            }
            Err(e) => return fail(e),
        }
        comparisons = suite::compare_all(&baseline, &entries);
    }
    print!("{}", suite::render_table(&comparisons));
    let dir = output::default_report_dir("bench", "");
    let md = dir.join("bench.md");
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&md, suite::render_markdown(&comparisons, &commit)))
    {
        return fail(format!("{}: {e}", md.display()));
    }
    println!("report: {}", md.display());
    let regressions: usize = comparisons.iter().map(|c| c.regressions.len()).sum();
    if regressions > 0 {
        eprintln!("circus-lab: {regressions} figure(s) regressed beyond tolerance");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Writes the report directory and prints the summary table and its path.
fn write_outputs(outcome: &Outcome, dir: PathBuf) -> ExitCode {
    match write_report(&dir, &outcome.summary, &outcome.series, &outcome.events) {
        Ok(files) => {
            println!("{}", summary_table(&outcome.summary));
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
                    .map(System::name)
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
