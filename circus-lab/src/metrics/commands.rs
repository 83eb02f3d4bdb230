//! What each of the user's own commands (`[[traffic.command]]`) did in one
//! system's run: how it ended and how long it took, as `summary.json` and
//! the report tables give it. A command that failed or hung past the run is
//! reported as such, never left out.

use serde::{Deserialize, Serialize};

use crate::scenario::CommandRole;

/// One command's end in one system's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandReport {
    pub name: String,
    #[serde(rename = "in")]
    pub role: CommandRole,
    /// A service (started before time zero, stopped at the end) rather
    /// than a job that must finish.
    pub service: bool,
    /// When it started, in scenario time (a service's is below zero).
    pub at_s: f64,
    /// Its exit code; `null` when a signal ended it.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did (the lab's SIGTERM or SIGKILL
    /// for one still running at the end).
    pub signal: Option<i32>,
    /// From its start to its exit, or to the lab stopping it.
    pub wall_s: f64,
    /// It exited with status 0 by itself.
    pub completed: bool,
    /// It was still running at the end of the drain, and the lab stopped it:
    /// a hang for a job, the normal end of a service.
    pub still_running_at_end: bool,
    /// Its output, relative to the report folder.
    pub stdout: String,
    pub stderr: String,
}

impl CommandReport {
    /// Whether it did what it should: a job completed; a service ran to
    /// the end (or exited 0 by itself).
    pub fn ok(&self) -> bool {
        self.completed || (self.service && self.still_running_at_end)
    }

    /// "completed", "FAILED: exit 1", "FAILED: still running at the end",
    /// "ran to the end (service)", for tables.
    pub fn result(&self) -> String {
        let ended = match (self.exit_code, self.signal) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "unknown end".to_owned(),
        };
        match (self.service, self.completed, self.still_running_at_end) {
            (_, true, _) => "completed".to_owned(),
            (true, _, true) => "ran to the end (service)".to_owned(),
            (false, _, true) => "FAILED: still running at the end".to_owned(),
            (_, false, false) => format!("FAILED: {ended}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(service: bool, exit_code: Option<i32>, still_running: bool) -> CommandReport {
        CommandReport {
            name: "fetch".into(),
            role: CommandRole::Client,
            service,
            at_s: 1.0,
            exit_code,
            signal: exit_code.is_none().then_some(15),
            wall_s: 2.5,
            completed: exit_code == Some(0) && !still_running,
            still_running_at_end: still_running,
            stdout: "commands/circus/fetch.stdout".into(),
            stderr: "commands/circus/fetch.stderr".into(),
        }
    }

    #[test]
    fn failures_and_hangs_read_as_failed_and_a_stopped_service_as_fine() {
        let cases = [
            (report(false, Some(0), false), true, "completed"),
            (report(false, Some(1), false), false, "FAILED: exit 1"),
            (report(false, None, false), false, "FAILED: signal 15"),
            (
                report(false, None, true),
                false,
                "FAILED: still running at the end",
            ),
            (report(true, None, true), true, "ran to the end (service)"),
            (report(true, Some(2), false), false, "FAILED: exit 2"),
            (report(true, Some(0), false), true, "completed"),
        ];
        for (report, ok, result) in cases {
            assert_eq!(report.ok(), ok, "{report:?}");
            assert_eq!(report.result(), result, "{report:?}");
        }
    }
}
