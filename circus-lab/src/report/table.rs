//! One comparison row per system: printed as an aligned table at the end of
//! a run, and as the summary table of `report.md`.

use super::Summary;
use crate::metrics::SystemMetrics;

/// Column titles of the comparison table.
pub const COLUMNS: [&str; 11] = [
    "system",
    "delivered",
    "lost",
    "dups",
    "max outage ms",
    "flow outage ms",
    "max recovery ms",
    "latency p50/p90/p99 ms",
    "reordered",
    "TCP Mbit/s",
    "host paused ms",
];

/// The cells of each system's row, systems in name order.
pub fn summary_rows(summary: &Summary) -> Vec<[String; COLUMNS.len()]> {
    summary
        .systems
        .iter()
        .map(|(name, m)| row(name, m))
        .collect()
}

fn row(name: &str, m: &SystemMetrics) -> [String; COLUMNS.len()] {
    [
        name.to_string(),
        format!("{:.3} %", m.delivery_ratio * 100.0),
        m.lost.to_string(),
        m.duplicates.to_string(),
        format!("{:.1}", m.max_outage_ms),
        format!("{:.1}", m.max_flow_outage_ms),
        format!("{:.1}", m.max_recovery_ms),
        format!(
            "{} / {} / {}",
            optional(m.latency_ms.p50, 1),
            optional(m.latency_ms.p90, 1),
            optional(m.latency_ms.p99, 1)
        ),
        format!("{:.3} %", m.reordered_ratio * 100.0),
        optional(m.tcp_goodput_mbps, 2),
        optional(m.host_pauses.monitored.then_some(m.host_pauses.total_ms), 1),
    ]
}

/// A number with `decimals` decimals, or "-" when it was not measured.
pub fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// The comparison table with aligned columns, for the terminal: names left,
/// numbers right.
pub fn summary_table(summary: &Summary) -> String {
    let rows = summary_rows(summary);
    let mut widths = COLUMNS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = format!(
        "{} ({} s, {} backend, seed {})\n",
        summary.scenario, summary.duration_s, summary.backend, summary.seed
    );
    let line = |out: &mut String, cells: &[String]| {
        for (column, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let separator = if column == 0 { "" } else { "  " };
            if column == 0 {
                out.push_str(&format!("{separator}{cell:<width$}"));
            } else {
                out.push_str(&format!("{separator}{cell:>width$}"));
            }
        }
        out.push('\n');
    };
    line(&mut out, &COLUMNS.map(String::from));
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    line(&mut out, &rule);
    for row in &rows {
        line(&mut out, row);
    }
    out
}
