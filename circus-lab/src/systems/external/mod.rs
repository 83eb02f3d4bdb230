//! External systems: any software the lab can start with shell commands,
//! described by a TOML file (format in `scenarios/README.md`), run exactly
//! as the built-in systems are (same topology, timeline, traffic, figures).
//!
//! - `load`: the file as written, checked into an [`ExternalSystem`] with
//!   errors naming file, line, key and the expected value (the scenario's
//!   own error machinery);
//! - [`template`]: the `{{name}}` values the lab fills in;
//! - `run`: the adapter that runs the commands as lab processes.

mod load;
mod run;
pub mod template;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{System, registry};
use crate::scenario::ScenarioError;

pub use run::External;

/// A checked system file. Commands are shell lines with `{{name}}`
/// templates, all known (checked at load time).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExternalSystem {
    /// The file's stem: its name in reports and `--systems`.
    pub name: String,
    /// Where it was loaded from (not part of the scenario's content hash).
    #[serde(skip)]
    pub file: PathBuf,
    pub description: Option<String>,
    /// Run to their end in the client namespace, in order, before the
    /// processes start (keys, configs).
    pub setup: Vec<String>,
    pub client: Side,
    pub gateway: Side,
    pub ready: ReadyCheck,
    pub route: RouteSpec,
    /// Whether a template names the best link (`best.*`, `best_index`), so
    /// the run must measure it first.
    pub needs_best_link: bool,
}

/// What runs in one namespace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Side {
    /// Long-running processes, started in order and kept until the end.
    pub start: Vec<String>,
    /// Run to their end before the lab ends the processes.
    pub stop: Vec<String>,
}

/// Where a command runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    #[default]
    Client,
    Gateway,
}

/// A command that succeeds once the system carries traffic.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReadyCheck {
    pub command: String,
    pub namespace: Namespace,
    /// How long it may keep failing.
    pub timeout: Duration,
}

/// How the client's traffic to the server enters the system.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum RouteSpec {
    /// The server's subnet routed into this device of the client.
    ViaDevice(String),
    /// A command run in the client namespace that sets the routes itself.
    Command(String),
}

/// How a scenario's `systems` entry names a system file, if it does.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A path: relative to the scenario's folder.
    Path(PathBuf),
    /// A bare name: these candidates, first existing one wins.
    Name(Vec<PathBuf>),
}

impl Lookup {
    /// An entry with a `/` or ending in `.toml` is a path relative to the
    /// scenario's folder; any other is a name looked up as
    /// `<scenario folder>/../systems/<name>.toml`, then `./systems/<name>.toml`.
    pub fn of(entry: &str, scenario: &Path) -> Lookup {
        let folder = scenario.parent().unwrap_or(Path::new(""));
        if entry.contains('/') || entry.ends_with(".toml") {
            return Lookup::Path(folder.join(entry));
        }
        let file = format!("{entry}.toml");
        Lookup::Name(vec![
            folder.join("..").join("systems").join(&file),
            Path::new("systems").join(&file),
        ])
    }

    /// The file to load, or the candidates tried.
    pub fn find(self) -> Result<PathBuf, Vec<PathBuf>> {
        let candidates = match self {
            Lookup::Path(path) => vec![path],
            Lookup::Name(candidates) => candidates,
        };
        candidates
            .iter()
            .find(|path| path.is_file())
            .cloned()
            .ok_or(candidates)
    }
}

/// Why a `systems` entry names no usable system.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "expected one of {names} or a system file ({tried} not found), found {entry:?}",
        names = registry::names(),
        tried = tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" nor ")
    )]
    NotFound { entry: String, tried: Vec<PathBuf> },
    #[error(
        "expected a system file named unlike the built-in systems ({names}), found {}",
        file.display(),
        names = registry::names()
    )]
    NamedLikeABuiltIn { file: PathBuf },
    /// The file itself is wrong: the error names it, its line and key.
    #[error(transparent)]
    Invalid(#[from] ScenarioError),
}

/// The system `entry` names in a scenario loaded from `scenario` with
/// `links` links: a built-in name, else a system file (see [`Lookup::of`]).
pub fn resolve(entry: &str, scenario: &Path, links: usize) -> Result<System, ResolveError> {
    if let Some(built_in) = registry::by_name(entry) {
        return Ok(System::BuiltIn(built_in.kind));
    }
    let file = Lookup::of(entry, scenario)
        .find()
        .map_err(|tried| ResolveError::NotFound {
            entry: entry.to_owned(),
            tried,
        })?;
    let system = ExternalSystem::load(&file, links)?;
    if registry::by_name(&system.name).is_some() {
        return Err(ResolveError::NamedLikeABuiltIn { file });
    }
    Ok(System::External(Arc::new(system)))
}

impl ExternalSystem {
    /// Reads and checks a system file for a scenario of `links` links.
    pub fn load(file: &Path, links: usize) -> Result<ExternalSystem, ScenarioError> {
        let text = std::fs::read_to_string(file).map_err(|source| ScenarioError::Read {
            file: file.to_owned(),
            source,
        })?;
        load::from_toml(&text, file, links)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_scenario_and_names_look_in_systems_folders() {
        let scenario = Path::new("lab/scenarios/flappy.toml");
        assert_eq!(
            Lookup::of("../mine/wg.toml", scenario),
            Lookup::Path("lab/scenarios/../mine/wg.toml".into())
        );
        assert_eq!(
            Lookup::of("wg.toml", scenario),
            Lookup::Path("lab/scenarios/wg.toml".into())
        );
        assert_eq!(
            Lookup::of("wg", scenario),
            Lookup::Name(vec![
                "lab/scenarios/../systems/wg.toml".into(),
                "systems/wg.toml".into()
            ])
        );
        assert_eq!(
            Lookup::of("nowhere-at-all", scenario).find(),
            Err(vec![
                "lab/scenarios/../systems/nowhere-at-all.toml".into(),
                "systems/nowhere-at-all.toml".into()
            ])
        );
    }
}
