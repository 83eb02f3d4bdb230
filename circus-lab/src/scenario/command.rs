//! `[[traffic.command]]`: the user's own applications on the emulated links
//! (a download, `iperf3`, an ssh session), run in the client or server
//! namespace during every system's run and reported beside the lab's own
//! traffic. Checked here when the scenario loads; run by
//! [`crate::runner::commands`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ScenarioError;
use super::error::KeyPath;
use super::raw::RawCommand;
use super::template::Template;
use super::validate::{NAME_FORM, valid_name};

/// The values a command's `run` line may name, in this order in
/// [`CommandSpec::render`]'s argument: the server's address, the client's
/// address as the server sees it, and a scratch folder both share.
pub const TEMPLATE_VALUES: [&str; 3] = ["server", "client", "dir"];

/// The environment variables carrying the same values, in the same order.
pub const TEMPLATE_ENV: [&str; 3] = ["CIRCUS_LAB_SERVER", "CIRCUS_LAB_CLIENT", "CIRCUS_LAB_DIR"];

/// Most commands one scenario may run (each has two output files per run).
pub const MAX_COMMANDS: usize = 32;

/// The namespace a command runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandRole {
    Client,
    Server,
}

impl CommandRole {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandRole::Client => "client",
            CommandRole::Server => "server",
        }
    }
}

/// When a command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CommandStart {
    /// A job: started at this scenario time, expected to finish by itself
    /// before the end of the drain.
    At(Duration),
    /// A service (e.g. an HTTP server): started before time zero, so it is
    /// ready when the jobs start, and stopped at the end. Being stopped is
    /// its normal end, not a failure.
    Service,
}

/// One checked `[[traffic.command]]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CommandSpec {
    /// Unique among the commands; names its output files.
    pub name: String,
    #[serde(rename = "in")]
    pub role: CommandRole,
    pub start: CommandStart,
    /// The shell line, with placeholders among [`TEMPLATE_VALUES`].
    pub run: Template,
}

impl CommandSpec {
    /// The shell line with `values` (in [`TEMPLATE_VALUES`] order) filled in.
    pub fn render(&self, values: &[&str; TEMPLATE_VALUES.len()]) -> String {
        self.run.render(values)
    }

    pub fn is_service(&self) -> bool {
        self.start == CommandStart::Service
    }
}

/// Checks the `[[traffic.command]]` tables of a run lasting `duration`;
/// `error` builds an error about a key.
pub(super) fn check_commands(
    raw: Vec<RawCommand>,
    duration: Duration,
    error: impl Fn(&KeyPath, String) -> ScenarioError,
) -> Result<Vec<CommandSpec>, ScenarioError> {
    let key = KeyPath::of("traffic").key("command");
    if raw.len() > MAX_COMMANDS {
        return Err(error(
            &key.index(MAX_COMMANDS),
            format!(
                "expected at most {MAX_COMMANDS} commands, found {}",
                raw.len()
            ),
        ));
    }
    let mut commands: Vec<CommandSpec> = Vec::with_capacity(raw.len());
    for (index, raw) in raw.into_iter().enumerate() {
        let path = key.index(index);
        let missing = |key: &str, form: &str| {
            error(
                &path.key(key),
                format!("expected {form}, found nothing (the key is required)"),
            )
        };
        let Some(name) = raw.name else {
            return Err(missing("name", NAME_FORM));
        };
        if !valid_name(&name) {
            return Err(error(
                &path.key("name"),
                format!("expected {NAME_FORM}, found {name:?}"),
            ));
        }
        if let Some(first) = commands.iter().position(|c| c.name == name) {
            return Err(error(
                &path.key("name"),
                format!(
                    "expected a name no other command has, found {name:?} (also traffic.command[{first}])"
                ),
            ));
        }
        let run_form = "a shell line such as \"curl -o /dev/null http://{server}:8000/file\"";
        let Some(text) = raw.run else {
            return Err(missing("run", run_form));
        };
        if text.trim().is_empty() {
            return Err(error(
                &path.key("run"),
                format!("expected {run_form}, found {text:?}"),
            ));
        }
        let run = Template::parse(&text, &TEMPLATE_VALUES)
            .map_err(|e| error(&path.key("run"), e.to_string()))?;
        let start = match (raw.service.unwrap_or(false), raw.at) {
            (true, None) => CommandStart::Service,
            (true, Some(_)) => {
                return Err(error(
                    &path.key("at"),
                    "expected no `at` on a service (services start before time zero)".into(),
                ));
            }
            (false, None) => {
                return Err(missing(
                    "at",
                    "the job's start time such as \"2s\" (or service = true)",
                ));
            }
            (false, Some(at)) if at.0 >= duration => {
                return Err(error(
                    &path.key("at"),
                    format!(
                        "expected a time before the end of the run ({duration:?}), found {:?}",
                        at.0
                    ),
                ));
            }
            (false, Some(at)) => CommandStart::At(at.0),
        };
        commands.push(CommandSpec {
            name,
            role: raw.role.unwrap_or(CommandRole::Client),
            start,
            run,
        });
    }
    Ok(commands)
}
