//! `report.md`: the run for people. The links and the timeline, a
//! comparison table, the user's commands, then per system its figures and
//! events, then the plots.

use std::fmt::Write;

use super::Summary;
use super::plots::{Plot, cdf, zoom};
use super::table::{COLUMNS, best_link_text, optional, summary_rows};
use crate::metrics::StreamMetrics;

/// Renders the report; `plots` are plot names (file stems) written beside it
/// as `<name>.png` and `<name>.svg`.
pub fn render(summary: &Summary, plots: &[&str]) -> String {
    let mut md = String::new();
    // Writing into a String cannot fail.
    let _ = write_report(&mut md, summary, plots);
    md
}

fn write_report(md: &mut String, summary: &Summary, plots: &[&str]) -> std::fmt::Result {
    writeln!(md, "# circus-lab report: {}\n", summary.scenario)?;
    writeln!(md, "| | |\n|---|---|")?;
    writeln!(md, "| scenario | `{}` |", summary.scenario)?;
    writeln!(md, "| scenario hash | `{}` |", summary.scenario_hash)?;
    writeln!(md, "| commit | `{}` |", summary.commit)?;
    writeln!(md, "| duration | {} s |", summary.duration_s)?;
    writeln!(md, "| backend | {} |", summary.backend)?;
    writeln!(md, "| seed | {} |", summary.seed)?;
    writeln!(
        md,
        "| best link alone, no tunnel | {} |\n",
        best_link_text(summary).unwrap_or_else(|| "not measured".to_string())
    )?;

    write_setup(md, summary)?;

    writeln!(md, "## Comparison\n")?;
    table_row(md, &COLUMNS.map(String::from))?;
    table_row(md, &COLUMNS.map(|_| "---".to_string()))?;
    for row in summary_rows(summary) {
        table_row(md, &row)?;
    }
    writeln!(
        md,
        "\nOutage: longest gap between deliveries around an event. Recovery: from the \
         event to the send time of the last probe lost because of it.\n"
    )?;
    super::commands::write_markdown(md, summary)?;

    for (name, m) in summary.systems_in_order() {
        writeln!(md, "## {name}\n")?;
        writeln!(md, "| figure | value |\n|---|---|")?;
        let pauses = &m.host_pauses;
        if pauses.monitored {
            writeln!(
                md,
                "| host pauses, left out of the outages | {} pauses, {:.1} ms in all, longest {:.1} ms |",
                pauses.count, pauses.total_ms, pauses.longest_ms
            )?;
        } else if summary.backend == super::SIM_BACKEND {
            writeln!(md, "| host pauses | none: virtual time |")?;
        } else {
            writeln!(
                md,
                "| host pauses | not watched for; outages include them |"
            )?;
        }
        let (up_ratio, down_ratio) = summary.tcp_ratio_to_best_link(name);
        let percent =
            |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{:.0} %", r * 100.0));
        writeln!(
            md,
            "| TCP goodput up / down | {} / {} Mbit/s |",
            optional(m.tcp_goodput_mbps, 2),
            optional(m.tcp_goodput_down_mbps, 2),
        )?;
        writeln!(
            md,
            "| TCP as a share of the best link, up / down | {} / {} |",
            percent(up_ratio),
            percent(down_ratio),
        )?;
        let shares: Vec<String> = m
            .link_share
            .iter()
            .map(|(link, share)| format!("{link} {:.1} %", share * 100.0))
            .collect();
        let shares = if shares.is_empty() {
            "-".to_string()
        } else {
            shares.join(", ")
        };
        writeln!(md, "| link share (bytes) | {shares} |\n")?;
        write_stream(md, "Upload (client to server)", &m.up)?;
        if let Some(down) = &m.down {
            write_stream(md, "Download (server to client)", down)?;
        }
    }

    writeln!(md, "## Plots\n")?;
    for name in plots {
        writeln!(md, "![{name}]({name}.png)\n\n[{name}.svg]({name}.svg)\n")?;
        if *name == zoom::EventZoom::NAME {
            writeln!(
                md,
                "Each event from 1 s before to 1 s after, in 10 ms bins: an outage \
                 of a few tens of milliseconds shows here, not in the timeline's \
                 100 ms bins.\n"
            )?;
            write_unzoomed(md, summary)?;
        } else if *name == cdf::LatencyCdf::NAME {
            writeln!(
                md,
                "Shares of all probes sent: a lost probe never arrives, so each \
                 curve ends at its delivered share.\n"
            )?;
        }
    }
    Ok(())
}

/// The links and the timeline, so the figures below can be read against
/// what the systems faced.
fn write_setup(md: &mut String, summary: &Summary) -> std::fmt::Result {
    if !summary.links.is_empty() {
        writeln!(md, "## Links\n")?;
        writeln!(md, "| link | at the start |\n|---|---|")?;
        for link in &summary.links {
            writeln!(md, "| {} | {} |", link.name, link.params)?;
        }
        writeln!(md)?;
    }
    writeln!(md, "## Timeline\n")?;
    if summary.timeline.is_empty() {
        return writeln!(md, "No events.\n");
    }
    writeln!(
        md,
        "| at (s) | link | action | for (then restored) | what it does |"
    )?;
    writeln!(md, "|---:|---|---|---|---|")?;
    for event in &summary.timeline {
        let lasts = event
            .for_s
            .map_or_else(|| "-".to_string(), |s| format!("{s} s"));
        writeln!(
            md,
            "| {:.3} | {} | {} | {lasts} | {} |",
            event.at_s, event.link, event.action, event.effect
        )?;
    }
    writeln!(md)
}

/// The events the zoom plot leaves out for want of room.
fn write_unzoomed(md: &mut String, summary: &Summary) -> std::fmt::Result {
    let rest = summary.timeline.get(zoom::MAX_EVENTS..).unwrap_or_default();
    if rest.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = rest
        .iter()
        .map(|e| format!("{:.3} s {} {}", e.at_s, e.link, e.action))
        .collect();
    writeln!(
        md,
        "The zoom shows the first {} events; not shown: {}.\n",
        zoom::MAX_EVENTS,
        listed.join(", ")
    )
}

/// One direction's probe figures and its events.
fn write_stream(md: &mut String, title: &str, m: &StreamMetrics) -> std::fmt::Result {
    writeln!(md, "### {title}\n")?;
    writeln!(md, "| figure | value |\n|---|---|")?;
    writeln!(
        md,
        "| probes sent / delivered | {} / {} |",
        m.sent, m.delivered
    )?;
    writeln!(md, "| delivery ratio | {:.4} % |", m.delivery_ratio * 100.0)?;
    writeln!(md, "| lost / duplicates | {} / {} |", m.lost, m.duplicates)?;
    writeln!(md, "| max outage | {:.1} ms |", m.max_outage_ms)?;
    writeln!(
        md,
        "| max outage of one flow | {:.1} ms |",
        m.max_flow_outage_ms
    )?;
    writeln!(md, "| max recovery | {:.1} ms |", m.max_recovery_ms)?;
    let latency = &m.latency_ms;
    writeln!(
        md,
        "| latency p50 / p90 / p99 / max | {} / {} / {} / {} ms |",
        optional(latency.p50, 2),
        optional(latency.p90, 2),
        optional(latency.p99, 2),
        optional(latency.max, 2)
    )?;
    writeln!(md, "| reordered | {:.3} % |\n", m.reordered_ratio * 100.0)?;
    if m.events.is_empty() {
        return Ok(());
    }
    writeln!(
        md,
        "| at (s) | link | action | outage (ms) | recovery (ms) | lost |"
    )?;
    writeln!(md, "|---:|---|---|---:|---:|---:|")?;
    for e in &m.events {
        writeln!(
            md,
            "| {:.3} | {} | {} | {:.1} | {:.1} | {} |",
            e.at_s, e.link, e.action, e.outage_ms, e.recovery_ms, e.lost
        )?;
    }
    writeln!(
        md,
        "\nLost while no event was in effect: {}\n",
        m.unattributed_lost
    )
}

fn table_row(md: &mut String, cells: &[String]) -> std::fmt::Result {
    writeln!(md, "| {} |", cells.join(" | "))
}
