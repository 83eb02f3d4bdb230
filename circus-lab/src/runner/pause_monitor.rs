//! Finds the host's pauses (see [`crate::metrics::pauses`]) while a system
//! runs.
//!
//! One watcher thread per CPU, pinned to it at a real-time priority above
//! every other lab thread, wakes every millisecond and records each wake-up
//! that came more than [`PAUSE_THRESHOLD`] late. At that priority only the
//! host can hold it back that long: the lab's own load, however heavy, waits
//! for it. A watcher at normal priority would record the load instead, so
//! where real-time scheduling is refused nothing is monitored and gaps are
//! measured whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use crate::metrics::HostPauses;
use crate::metrics::pauses::PAUSE_THRESHOLD;
use crate::traffic::{FifoPriority, MonoNanos, TimerSlack};

const TICK: Duration = Duration::from_millis(1);
/// Above every other lab thread: the emulator's forwarder (10) and the
/// probe sender and receiver ([`crate::traffic::probe::PROBE_PRIORITY`]).
const PRIORITY: i32 = 50;

type Span = (MonoNanos, MonoNanos);

/// Watches every CPU this process may run on until [`stop`](Self::stop),
/// or until dropped (a run that fails or panics leaves no watcher behind).
pub struct PauseMonitor {
    stop: Arc<AtomicBool>,
    watchers: Vec<JoinHandle<Vec<Span>>>,
}

impl PauseMonitor {
    /// Starts a watcher on each CPU. `None` (with a warning) when a watcher
    /// cannot be pinned or given real-time priority.
    pub fn start() -> Option<Self> {
        let cpus = match allowed_cpus() {
            Ok(cpus) => cpus,
            Err(e) => {
                tracing::warn!("host pauses not watched for: cannot read the CPU set: {e}");
                return None;
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut monitor = Self {
            stop: stop.clone(),
            watchers: Vec::with_capacity(cpus.len()),
        };
        for &cpu in &cpus {
            let (stop, ready) = (stop.clone(), ready_tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("pause-watch-{cpu}"))
                .spawn(move || watch(cpu, &stop, &ready));
            match spawned {
                Ok(handle) => monitor.watchers.push(handle),
                Err(e) => {
                    tracing::warn!("host pauses not watched for: cannot start a watcher: {e}");
                    return None;
                }
            }
        }
        drop(ready_tx);
        let all_ready = (0..cpus.len()).all(|_| ready_rx.recv() == Ok(true));
        if !all_ready {
            tracing::warn!(
                "host pauses not watched for: real-time priority or CPU pinning refused \
                 (needs root or CAP_SYS_NICE); outages include any pause of the host"
            );
            return None;
        }
        Some(monitor)
    }

    /// Stops the watchers and returns every pause they saw, merged.
    pub fn stop(mut self) -> HostPauses {
        HostPauses::from_spans(self.join_watchers().into_iter().flatten())
    }

    fn join_watchers(&mut self) -> Vec<Vec<Span>> {
        self.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.watchers)
            .into_iter()
            .filter_map(|watcher| watcher.join().ok())
            .collect()
    }
}

impl Drop for PauseMonitor {
    fn drop(&mut self) {
        self.join_watchers();
    }
}

fn allowed_cpus() -> nix::Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0))?;
    Ok((0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect())
}

/// One watcher: says on `ready` whether it is pinned at real-time priority,
/// then records late wake-ups until `stop`.
fn watch(cpu: usize, stop: &AtomicBool, ready: &mpsc::Sender<bool>) -> Vec<Span> {
    let mut set = CpuSet::new();
    let pinned = set.set(cpu).is_ok() && sched_setaffinity(Pid::from_raw(0), &set).is_ok();
    let _slack = TimerSlack::tighten();
    let realtime = if pinned {
        FifoPriority::enter(PRIORITY)
    } else {
        None
    };
    let armed = realtime.is_some();
    // Where start() gives up, it has set `stop` by the time it joins us, so
    // an armed watcher leaves the loop at once.
    if ready.send(armed).is_err() || !armed {
        return Vec::new();
    }
    let mut pauses = Vec::new();
    let mut deadline = MonoNanos::now() + TICK;
    while !stop.load(Ordering::Relaxed) {
        deadline.sleep_until();
        let woke = MonoNanos::now();
        if woke.saturating_since(deadline) > PAUSE_THRESHOLD {
            // The pause may have begun during the sleep; counting from the
            // deadline never credits more than it lasted.
            pauses.push((deadline, woke));
        }
        deadline = (deadline + TICK).max(woke);
    }
    pauses
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::netns_available_for_test;

    fn threads_of_this_process() -> usize {
        std::fs::read_dir("/proc/self/task")
            .expect("procfs lists this process's threads")
            .count()
    }

    #[test]
    fn dropping_the_monitor_ends_its_watchers() {
        if !netns_available_for_test("dropping_the_monitor_ends_its_watchers") {
            return;
        }
        let before = threads_of_this_process();
        let monitor = PauseMonitor::start().expect("root may use real-time priority");
        let cpus = allowed_cpus().expect("the CPU set is readable").len();
        assert_eq!(threads_of_this_process(), before + cpus);
        drop(monitor);
        assert_eq!(threads_of_this_process(), before);
    }

    /// A thread above the watchers' priority takes a CPU for 40 ms, as the
    /// host takes a virtual CPU: the watcher pinned there sees it.
    #[test]
    fn a_cpu_taken_away_for_40_ms_is_a_pause_of_about_that_long() {
        // Real-time priority needs the same root the namespace tests do.
        if !netns_available_for_test("a_cpu_taken_away_for_40_ms_is_a_pause_of_about_that_long") {
            return;
        }
        let cpu = allowed_cpus().expect("the CPU set is readable")[0];
        let monitor = PauseMonitor::start().expect("root may use real-time priority");
        std::thread::sleep(Duration::from_millis(20));
        let (taken_from, taken_until) = std::thread::spawn(move || {
            let mut set = CpuSet::new();
            set.set(cpu).expect("an allowed CPU fits a CpuSet");
            sched_setaffinity(Pid::from_raw(0), &set).expect("pin to an allowed CPU");
            let _realtime =
                FifoPriority::enter(PRIORITY + 1).expect("root may use real-time priority");
            let from = MonoNanos::now();
            let until = from + Duration::from_millis(40);
            while MonoNanos::now() < until {
                std::hint::spin_loop();
            }
            (from, MonoNanos::now())
        })
        .join()
        .expect("the spinner does not panic");
        std::thread::sleep(Duration::from_millis(20));
        let pauses = monitor.stop();

        let seen = pauses.overlap(taken_from, taken_until);
        assert!(
            seen >= Duration::from_millis(30),
            "saw {seen:?} of the 40 ms: {pauses:?}"
        );
        let longest = Duration::from_secs_f64(pauses.summary().longest_ms / 1e3);
        assert!(longest >= Duration::from_millis(30), "{pauses:?}");
    }
}
