//! A daemon embedded in another program: the lab and the namespace tests
//! run [`run_client`](crate::run_client) and [`run_gateway`](crate::run_gateway)
//! this way, so they test exactly the code the binary runs.
//!
//! The caller starts the thread, because only it knows how to put the
//! thread where the daemon belongs (into a network namespace, in both
//! callers); the helper supplies what runs on it: a current-thread tokio
//! runtime, as the binary uses, and a shutdown signal. Readiness is read
//! from the status socket, the same report an operator sees, rather than
//! from daemon internals, so the daemon needs no hooks for being embedded.

use crate::NodeError;
use crate::config::{ClientConfig, GatewayConfig, ObserveConfig};
use crate::status::{self, StatusError, StatusReport};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What the caller's spawner must run on the daemon's thread.
pub type DaemonJob = Box<dyn FnOnce() + Send + 'static>;

/// How often waiting asks the status socket: often enough that start-up is
/// not slowed, rarely enough not to compete with the daemon for the CPU.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("an embedded daemon needs observe.status_socket: waiting for it reads its status")]
    NoStatusSocket,
    #[error("cannot start the daemon's thread: {0}")]
    Spawn(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot build the daemon's tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("the daemon's thread panicked")]
    Panicked,
    #[error("the daemon exited while waiting for {what}: {outcome}")]
    Exited { what: String, outcome: String },
    #[error("timed out after {limit:?} waiting for {what}; {last}")]
    TimedOut {
        what: String,
        limit: Duration,
        last: String,
    },
}

/// A daemon running on a thread its caller started; stopped on drop.
pub struct Daemon {
    stop: Option<oneshot::Sender<()>>,
    /// Receives how the run ended, after the runtime (and with it every
    /// socket and the TUN device) is gone; closes unsent if the thread
    /// panicked. The thread itself is detached: this is its join.
    ended: mpsc::Receiver<Result<(), EmbedError>>,
    /// The run's end once seen while waiting, kept for `stop`.
    outcome: OnceLock<Result<(), EmbedError>>,
    status_socket: PathBuf,
}

impl Daemon {
    /// Starts a client: `spawn` must start a thread running the job it is
    /// given, where the daemon should live.
    pub fn client<E>(
        config: ClientConfig,
        spawn: impl FnOnce(DaemonJob) -> Result<(), E>,
    ) -> Result<Daemon, EmbedError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let socket = status_socket(&config.observe)?;
        Self::start(socket, spawn, move |stop| {
            crate::run_client(config, async move {
                let _ = stop.await;
            })
        })
    }

    /// Starts a gateway; see [`Daemon::client`].
    pub fn gateway<E>(
        config: GatewayConfig,
        spawn: impl FnOnce(DaemonJob) -> Result<(), E>,
    ) -> Result<Daemon, EmbedError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let socket = status_socket(&config.observe)?;
        Self::start(socket, spawn, move |stop| {
            crate::run_gateway(config, async move {
                let _ = stop.await;
            })
        })
    }

    fn start<E, R, Fut>(
        status_socket: PathBuf,
        spawn: impl FnOnce(DaemonJob) -> Result<(), E>,
        run: R,
    ) -> Result<Daemon, EmbedError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
        R: FnOnce(oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), NodeError>>,
    {
        let (stop, stopped) = oneshot::channel();
        let (end, ended) = mpsc::sync_channel(1);
        spawn(Box::new(move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(EmbedError::Runtime)
                .and_then(|runtime| Ok(runtime.block_on(run(stopped))?));
            let _ = end.send(outcome);
        }))
        .map_err(|e| EmbedError::Spawn(e.into()))?;
        Ok(Daemon {
            stop: Some(stop),
            ended,
            outcome: OnceLock::new(),
            status_socket,
        })
    }

    pub fn status_socket(&self) -> &Path {
        &self.status_socket
    }

    /// The daemon's current status report.
    pub fn status(&self) -> Result<StatusReport, StatusError> {
        status::query(&self.status_socket)
    }

    /// Polls the status until `ready` holds and returns that report. Fails
    /// if the daemon exits first (saying how it ended) or after `limit`
    /// (showing the last status seen); `what` names the wait in the error.
    pub fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        ready: impl Fn(&StatusReport) -> bool,
    ) -> Result<StatusReport, EmbedError> {
        let start = Instant::now();
        loop {
            let report = self.status();
            match report {
                Ok(report) if ready(&report) => return Ok(report),
                _ => {}
            }
            if let Some(outcome) = self.outcome() {
                let outcome = match outcome {
                    Ok(()) => "it stopped without an error".to_owned(),
                    Err(e) => e.to_string(),
                };
                return Err(EmbedError::Exited {
                    what: what.into(),
                    outcome,
                });
            }
            if start.elapsed() > limit {
                let last = match report {
                    Ok(report) => format!("last status:\n{}", status::render(&report)),
                    Err(e) => format!("no status: {e}"),
                };
                return Err(EmbedError::TimedOut {
                    what: what.into(),
                    limit,
                    last,
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Stops the daemon, waits for its thread's run to end, and returns how
    /// it ended.
    pub fn stop(mut self) -> Result<(), EmbedError> {
        self.halt()
    }

    /// How the run ended, if it has.
    fn outcome(&self) -> Option<&Result<(), EmbedError>> {
        if self.outcome.get().is_none() {
            let ended = match self.ended.try_recv() {
                Ok(outcome) => outcome,
                Err(mpsc::TryRecvError::Disconnected) => Err(EmbedError::Panicked),
                Err(mpsc::TryRecvError::Empty) => return None,
            };
            let _ = self.outcome.set(ended);
        }
        self.outcome.get()
    }

    fn halt(&mut self) -> Result<(), EmbedError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.outcome.take() {
            Some(outcome) => outcome,
            None => self.ended.recv().unwrap_or(Err(EmbedError::Panicked)),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

fn status_socket(observe: &ObserveConfig) -> Result<PathBuf, EmbedError> {
    observe
        .status_socket
        .clone()
        .ok_or(EmbedError::NoStatusSocket)
}
