//! What a soak samples of each daemon: from `/proc/PID` what the kernel
//! charges the process (resident memory, open descriptors, threads), and
//! from its status socket what it says about itself (handshakes, packets).
//! The daemon's status does not count timers; threads and descriptors are
//! what a leaked task or socket shows up in.

use std::path::Path;

use serde::Serialize;

use circus_node::status::{self, StatusReport};

/// One daemon at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct DaemonSample {
    /// `VmRSS` of /proc/PID/status.
    pub rss_kib: u64,
    /// Entries of /proc/PID/fd.
    pub fds: u64,
    /// `Threads` of /proc/PID/status.
    pub threads: u64,
    /// Handshakes completed over all sessions (rises with every rekey).
    pub handshakes: u64,
    /// Inner packets through the tunnel, both ways, over all sessions.
    pub tunnel_packets: u64,
}

/// Why a daemon could not be sampled.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("pid {pid} is gone or a zombie (no VmRSS in /proc/{pid}/status): the daemon exited")]
    Exited { pid: u32 },
    #[error("/proc/{pid}: {source}")]
    Proc { pid: u32, source: std::io::Error },
    #[error("status socket: {0}")]
    Status(#[from] status::StatusError),
}

/// Samples the daemon with process id `pid` and status socket `socket`.
pub fn sample(pid: u32, socket: &Path) -> Result<DaemonSample, SampleError> {
    let proc_error = |source| SampleError::Proc { pid, source };
    let text = match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SampleError::Exited { pid });
        }
        Err(e) => return Err(proc_error(e)),
    };
    let (rss_kib, threads) = parse_proc_status(&text).ok_or(SampleError::Exited { pid })?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(proc_error)?
        .count() as u64;
    let report = status::query(socket)?;
    Ok(DaemonSample {
        rss_kib,
        fds,
        threads,
        ..totals(&report)
    })
}

/// `VmRSS` (KiB) and `Threads` of a /proc/PID/status text; `None` when
/// `VmRSS` is missing, as it is for a zombie.
fn parse_proc_status(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("Threads:").unwrap_or(0)))
}

/// The status report's totals over all sessions.
fn totals(report: &StatusReport) -> DaemonSample {
    DaemonSample {
        handshakes: report.sessions.iter().map(|s| s.handshakes).sum(),
        tunnel_packets: report
            .sessions
            .iter()
            .map(|s| s.tunnel.packets_sent + s.tunnel.packets_received)
            .sum(),
        ..DaemonSample::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_threads_of_a_live_process() {
        let text = "Name:\tcircus-node\nState:\tS (sleeping)\nVmPeak:\t  30000 kB\n\
                    VmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_proc_status(text), Some((12345, 3)));
    }

    #[test]
    fn a_zombie_has_no_rss() {
        let text = "Name:\tcircus-node\nState:\tZ (zombie)\nThreads:\t1\n";
        assert_eq!(parse_proc_status(text), None);
    }

    #[test]
    fn samples_this_very_process_from_proc() {
        let text = std::fs::read_to_string("/proc/self/status").unwrap();
        let (rss, threads) = parse_proc_status(&text).unwrap();
        assert!(rss > 0 && threads >= 1);
    }
}
