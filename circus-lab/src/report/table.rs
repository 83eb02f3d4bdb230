//! One comparison row per system: printed as an aligned table at the end of
//! a run, and as the summary table of `report.md`.

use super::Summary;
use crate::metrics::{StreamMetrics, SystemMetrics};

/// Column titles of the comparison table.
pub const COLUMNS: [&str; 13] = [
    "system",
    "dir",
    "delivered",
    "lost",
    "dups",
    "max outage ms",
    "flow outage ms",
    "max recovery ms",
    "latency p50/p90/p99 ms",
    "reordered",
    "TCP Mbit/s",
    "TCP / best link",
    "host paused ms",
];

/// The cells of each system's rows, systems in the scenario's order: its
/// upload row, then its download row if the scenario sent probes that way.
pub fn summary_rows(summary: &Summary) -> Vec<[String; COLUMNS.len()]> {
    let mut rows = Vec::new();
    for (name, m) in summary.systems_in_order() {
        let (up_ratio, down_ratio) = summary.tcp_ratio_to_best_link(name);
        rows.push(row(name, "up", &m.up, m.tcp_goodput_mbps, up_ratio, m));
        if let Some(down) = &m.down {
            rows.push(row(
                name,
                "down",
                down,
                m.tcp_goodput_down_mbps,
                down_ratio,
                m,
            ));
        }
    }
    rows
}

fn row(
    name: &str,
    direction: &str,
    stream: &StreamMetrics,
    tcp_mbps: Option<f64>,
    tcp_ratio: Option<f64>,
    m: &SystemMetrics,
) -> [String; COLUMNS.len()] {
    [
        name.to_string(),
        direction.to_string(),
        format!("{:.3} %", stream.delivery_ratio * 100.0),
        stream.lost.to_string(),
        stream.duplicates.to_string(),
        format!("{:.1}", stream.max_outage_ms),
        format!("{:.1}", stream.max_flow_outage_ms),
        format!("{:.1}", stream.max_recovery_ms),
        format!(
            "{} / {} / {}",
            optional(stream.latency_ms.p50, 1),
            optional(stream.latency_ms.p90, 1),
            optional(stream.latency_ms.p99, 1)
        ),
        format!("{:.3} %", stream.reordered_ratio * 100.0),
        optional(tcp_mbps, 2),
        tcp_ratio.map_or_else(|| "-".to_string(), |r| format!("{:.0} %", r * 100.0)),
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
    let mut out = format!(
        "{} ({} s, {} backend, seed {})\n",
        summary.scenario, summary.duration_s, summary.backend, summary.seed
    );
    if let Some(best) = best_link_text(summary) {
        out.push_str(&format!("best link alone (no tunnel): {best}\n"));
    }
    out.push_str(&aligned(&COLUMNS, &summary_rows(summary)));
    if let Some(commands) = super::commands::commands_table(summary) {
        out.push('\n');
        out.push_str(&commands);
    }
    out
}

/// `rows` under `columns` with aligned columns: the first left, the others
/// right.
pub(super) fn aligned<const N: usize>(columns: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = columns.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
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
    line(&mut out, &columns.map(String::from));
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    line(&mut out, &rule);
    for row in rows {
        line(&mut out, row);
    }
    out
}

/// "wifi0, TCP up 17.2 / down 17.9 Mbit/s", or `None` when the run
/// measured no best-link reference.
pub fn best_link_text(summary: &Summary) -> Option<String> {
    let link = summary.best_link.as_deref()?;
    Some(format!(
        "{link}, TCP up {} / down {} Mbit/s",
        optional(summary.best_link_tcp_mbps, 2),
        optional(summary.best_link_tcp_down_mbps, 2)
    ))
}
