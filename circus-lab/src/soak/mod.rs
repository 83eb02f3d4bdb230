//! `circus-lab soak`: the real daemons through a flapping scenario for a
//! long time, watching that what they hold stays flat.
//!
//! The client and the gateway run as `circus-node` processes
//! ([`daemons`]), with the configs of the lab's circus system, on one
//! topology that lives for the whole soak. The scenario runs again and
//! again (its traffic and its timeline of link events, each pass as
//! `circus-lab run` would), while a sampler reads each daemon's memory,
//! descriptors, threads and status every few seconds ([`sampler`]). At the
//! end each figure's series is judged ([`growth`]): one that keeps rising
//! fails the soak.
//!
//! - [`daemons`]: `circus-node` processes in the namespaces.
//! - [`sampler`]: one sample of one daemon.
//! - [`growth`]: whether a series grows without bound.
//! - [`record`]: the samples as CSV and the verdict as JSON.

pub mod daemons;
pub mod growth;
pub mod record;
pub mod sampler;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::runner::{self, RunError};
use crate::scenario::Scenario;
use daemons::{NodeProcesses, Watched};
use record::{Pass, Row, SoakReport};
use sampler::SampleError;

/// What a soak runs and how often it looks.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// How long to soak; the last pass of the scenario runs to its end.
    pub duration: Duration,
    /// Time between samples.
    pub every: Duration,
    /// The `circus-node` binary.
    pub node: PathBuf,
    /// Where configs, daemon logs, samples.csv and soak.json go.
    pub out: PathBuf,
}

/// Why a soak could not run to its end. A figure that grows is not an
/// error: it is in the report's verdict.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the sampler thread panicked")]
    SamplerPanicked,
    #[error("sampling the {role} daemon at {at_s:.0} s: {source}")]
    Sample {
        role: &'static str,
        at_s: f64,
        source: SampleError,
    },
}

/// Runs `scenario` over and over for `config.duration` with both daemons
/// as processes, samples them, writes samples.csv and soak.json to
/// `config.out` and returns the report (whose verdict says whether any
/// figure grew). `progress` shows the time soaked and the latest sample.
pub fn run(
    scenario: &Scenario,
    config: &SoakConfig,
    progress: &ProgressBar,
) -> Result<SoakReport, SoakError> {
    let io = |path: &PathBuf| {
        let path = path.clone();
        move |source| SoakError::Io { path, source }
    };
    std::fs::create_dir_all(&config.out).map_err(io(&config.out))?;
    let watched = Arc::new(OnceLock::new());
    let system = NodeProcesses::new(config.node.clone(), config.out.clone(), watched.clone());
    progress.set_length(config.duration.as_millis() as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "soak [{bar:40}] {elapsed_precise} of {duration_precise} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    progress.set_message("starting the daemons");
    // Each pass reports its own progress through the runner; the soak's bar
    // is driven by the sampler instead.
    let passes = runner::with_system(
        scenario,
        Box::new(system),
        &ProgressBar::hidden(),
        None,
        |topology, emulation, plan| {
            let watched = watched.get().cloned().ok_or_else(|| {
                RunError::System(crate::systems::SystemError::Failed {
                    system: "circus",
                    message: "the daemons started but their processes are unknown".into(),
                })
            })?;
            let started = Instant::now();
            // Set by the passes when they are over, and by the sampler when
            // a daemon cannot be sampled (it died: no point going on).
            let stop = Arc::new(AtomicBool::new(false));
            let sampling = {
                let (stop, progress, every) = (stop.clone(), progress.clone(), config.every);
                std::thread::spawn(move || sample_until(&watched, started, every, &stop, &progress))
            };
            let mut passes = Vec::new();
            let mut failed = None;
            while started.elapsed() < config.duration && !stop.load(Ordering::Relaxed) {
                let number = passes.len() as u32 + 1;
                // The soak watches the daemons; the scenario's own
                // commands are not run.
                match runner::measure(
                    scenario,
                    topology,
                    emulation,
                    plan,
                    number,
                    None,
                    &ProgressBar::hidden(),
                ) {
                    Ok(measured) => passes.push(Pass::of(
                        number,
                        started,
                        [Some(&measured.up), measured.down.as_ref()],
                    )),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            let rows = sampling.join().unwrap_or(Err(SoakError::SamplerPanicked));
            Ok((passes, rows, failed, started.elapsed()))
        },
    )?;
    let (passes, rows, failed, soaked) = passes;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let rows = rows?;
    progress.finish_and_clear();
    let report = SoakReport::judge(scenario, config, soaked, passes, rows);
    report.write(&config.out)?;
    Ok(report)
}

/// Samples both daemons every `every` from `started` until `stop`; shows
/// the latest sample on `progress`. Stops at the first daemon that cannot
/// be sampled, and sets `stop` so the passes end too.
fn sample_until(
    watched: &[Watched; 2],
    started: Instant,
    every: Duration,
    stop: &AtomicBool,
    progress: &ProgressBar,
) -> Result<Vec<Row>, SoakError> {
    let mut rows = Vec::new();
    let mut next = started;
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(100)));
            continue;
        }
        next += every;
        let at_s = started.elapsed().as_secs_f64();
        let sample = |w: &Watched| {
            sampler::sample(w.pid, &w.status_socket).map_err(|source| SoakError::Sample {
                role: w.role,
                at_s,
                source,
            })
        };
        let row = match (sample(&watched[0]), sample(&watched[1])) {
            (Ok(client), Ok(gateway)) => Row {
                t_s: at_s,
                client,
                gateway,
            },
            (Err(e), _) | (_, Err(e)) => {
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        };
        progress.set_position(started.elapsed().as_millis() as u64);
        progress.set_message(row.describe());
        rows.push(row);
    }
    Ok(rows)
}

/// The `circus-node` binary built with this one: in the same directory
/// (target/release/), or one up for a test binary (target/release/deps/).
pub fn default_node() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("where is this executable? {e}"))?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("circus-node"))
        .find(|node| node.is_file())
        .ok_or_else(|| {
            format!(
                "no circus-node binary next to {} (cargo build --release -p circus-node, or pass --node)",
                exe.display()
            )
        })
}
