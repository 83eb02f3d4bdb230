//! The user's own commands in the report: one row per system and command
//! saying whether it completed and how long it took, for the terminal and
//! `report.md`. A failed or hung command reads "FAILED" in its row.

use std::fmt::Write;

use super::Summary;
use super::table::aligned;
use crate::metrics::CommandReport;

/// Column titles of the commands table.
pub const COMMAND_COLUMNS: [&str; 7] = [
    "system", "command", "in", "start s", "result", "wall s", "output",
];

/// Each system's commands (systems in name order, commands in the
/// scenario's), the output column written by `output`; empty when no
/// system ran any.
pub fn command_rows(
    summary: &Summary,
    output: impl Fn(&CommandReport) -> String,
) -> Vec<[String; COMMAND_COLUMNS.len()]> {
    let mut rows = Vec::new();
    for (system, metrics) in &summary.systems {
        for command in &metrics.commands {
            rows.push([
                system.clone(),
                command.name.clone(),
                command.role.as_str().to_owned(),
                format!("{:.3}", command.at_s),
                command.result(),
                format!("{:.3}", command.wall_s),
                output(command),
            ]);
        }
    }
    rows
}

/// The commands table for the terminal, or `None` when no command ran.
pub fn commands_table(summary: &Summary) -> Option<String> {
    let rows = command_rows(summary, |command| command.stdout.clone());
    (!rows.is_empty()).then(|| format!("commands\n{}", aligned(&COMMAND_COLUMNS, &rows)))
}

/// The `## Commands` section of `report.md`: the table, or why there is
/// none (the simulator runs no commands); nothing for a scenario without.
pub fn write_markdown(md: &mut String, summary: &Summary) -> std::fmt::Result {
    let rows = command_rows(summary, |command| {
        format!("[stdout]({}), [stderr]({})", command.stdout, command.stderr)
    });
    if rows.is_empty() && summary.commands_not_run.is_empty() {
        return Ok(());
    }
    writeln!(md, "## Commands\n")?;
    if !summary.commands_not_run.is_empty() {
        writeln!(
            md,
            "Not simulated: the scenario's commands ({}) run real programs, which only \
             `circus-lab run` does.\n",
            summary.commands_not_run.join(", ")
        )?;
    }
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(md, "| {} |", COMMAND_COLUMNS.join(" | "))?;
    writeln!(md, "|---|---|---|---:|---|---:|---|")?;
    for row in rows {
        writeln!(md, "| {} |", row.join(" | "))?;
    }
    writeln!(
        md,
        "\nStart: scenario time (a service starts before zero). Wall: from start to exit, or \
         to the lab stopping it at the end of the drain. A job must exit 0 by itself; a \
         service runs until the end.\n"
    )
}
