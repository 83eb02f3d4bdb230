//! Where a run's report goes and what it names as its origin.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// `reports/<scenario>/<UTC timestamp><suffix>/`: sortable by name, one
/// directory per run, so no run overwrites another.
pub fn default_report_dir(scenario: &str, suffix: &str) -> PathBuf {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Path::new("reports")
        .join(scenario)
        .join(format!("{}{suffix}", utc_timestamp(seconds)))
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the Unix epoch (civil calendar
/// from days, H. Hinnant's algorithm), to avoid a date crate for one name.
pub fn utc_timestamp(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rem = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The commit the lab was run from (`git rev-parse --short HEAD`, with
/// `-dirty` for uncommitted changes), or "unknown" outside a checkout.
pub fn commit_id() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(id) if !id.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{id}-dirty") } else { id }
        }
        _ => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(utc_timestamp(0), "19700101T000000Z");
        // 2026-11-25 03:19:37 UTC
        assert_eq!(utc_timestamp(1_795_576_777), "20261125T031937Z");
        // leap day
        assert_eq!(utc_timestamp(951_782_400), "20000229T000000Z");
    }
}
