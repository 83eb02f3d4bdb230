//! A system file as written (serde, unknown keys rejected) and its checks:
//! required keys, one kind of route, every template known. Errors come from
//! the scenario's [`SourceMap`], so they read like scenario errors: file,
//! line, key path and what was expected.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::template::{Values, names_in};
use super::{ExternalSystem, Namespace, ReadyCheck, RouteSpec, Side};
use crate::scenario::units::DurationText;
use crate::scenario::{KeyPath, ScenarioError, SourceMap};

/// A ready check may fail for this long by default: a tunnel's handshake.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

const COMMANDS: &str = "a list of shell commands, such as [\"wireguard-go -f wg0\"]";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystem {
    description: Option<String>,
    #[serde(default)]
    setup: Vec<String>,
    client: Option<RawSide>,
    gateway: Option<RawSide>,
    ready: Option<RawReady>,
    route: Option<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSide {
    start: Option<Vec<String>>,
    #[serde(default)]
    stop: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    command: Option<String>,
    #[serde(rename = "in")]
    namespace: Option<Namespace>,
    timeout: Option<DurationText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    via_device: Option<String>,
    command: Option<String>,
}

pub(super) fn from_toml(
    text: &str,
    file: &Path,
    links: usize,
) -> Result<ExternalSystem, ScenarioError> {
    let source = SourceMap::parse(file, text)?;
    let raw: RawSystem = toml::from_str(text).map_err(|e| source.serde_error(file, &e))?;
    let checker = Checker {
        file,
        source,
        values: Values::for_checking(links),
    };
    checker.system(raw)
}

struct Checker<'a> {
    file: &'a Path,
    source: SourceMap<'a>,
    values: Values,
}

impl Checker<'_> {
    fn error(&self, path: &KeyPath, problem: impl Into<String>) -> ScenarioError {
        self.source.error(self.file, path, problem)
    }

    fn required<T>(
        &self,
        value: Option<T>,
        path: &KeyPath,
        form: &str,
    ) -> Result<T, ScenarioError> {
        self.source.required(self.file, value, path, form)
    }

    /// `command` with its templates checked.
    fn command(&self, command: String, path: &KeyPath) -> Result<String, ScenarioError> {
        self.values
            .expand(&command)
            .map_err(|e| self.error(path, e.to_string()))?;
        Ok(command)
    }

    fn commands(
        &self,
        commands: Vec<String>,
        path: &KeyPath,
    ) -> Result<Vec<String>, ScenarioError> {
        commands
            .into_iter()
            .enumerate()
            .map(|(index, command)| self.command(command, &path.index(index)))
            .collect()
    }

    fn system(&self, raw: RawSystem) -> Result<ExternalSystem, ScenarioError> {
        let name = self
            .file
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        let setup = self.commands(raw.setup, &KeyPath::of("setup"))?;
        let client = self.side(raw.client, "client")?;
        let gateway = self.side(raw.gateway, "gateway")?;
        let ready = self.ready(raw.ready)?;
        let route = self.route(raw.route)?;
        let mut system = ExternalSystem {
            name,
            file: self.file.to_owned(),
            description: raw.description,
            setup,
            client,
            gateway,
            ready,
            route,
            needs_best_link: false,
        };
        system.needs_best_link = system.uses_best_link();
        Ok(system)
    }

    fn side(&self, raw: Option<RawSide>, key: &str) -> Result<Side, ScenarioError> {
        let path = KeyPath::of(key);
        let form = format!("a [{key}] table with the commands that run in the {key} namespace");
        let raw = self.required(raw, &path, &form)?;
        let start_path = path.key("start");
        let start = self.required(raw.start, &start_path, COMMANDS)?;
        if start.is_empty() {
            return Err(self.error(
                &start_path,
                format!("expected {COMMANDS}, found an empty list"),
            ));
        }
        Ok(Side {
            start: self.commands(start, &start_path)?,
            stop: self.commands(raw.stop, &path.key("stop"))?,
        })
    }

    fn ready(&self, raw: Option<RawReady>) -> Result<ReadyCheck, ScenarioError> {
        let path = KeyPath::of("ready");
        let form = "a [ready] table with the command that succeeds once the system carries traffic";
        let raw = self.required(raw, &path, form)?;
        let command_path = path.key("command");
        let command = self.required(raw.command, &command_path, "a shell command")?;
        Ok(ReadyCheck {
            command: self.command(command, &command_path)?,
            namespace: raw.namespace.unwrap_or_default(),
            timeout: raw.timeout.map_or(READY_TIMEOUT, |t| t.0),
        })
    }

    fn route(&self, raw: Option<RawRoute>) -> Result<RouteSpec, ScenarioError> {
        let path = KeyPath::of("route");
        let form = "route = { via_device = \"wg0\" } or route = { command = \"ip route add ...\" }";
        let raw = self.required(raw, &path, form)?;
        match (raw.via_device, raw.command) {
            (Some(device), None) => Ok(RouteSpec::ViaDevice(
                self.command(device, &path.key("via_device"))?,
            )),
            (None, Some(command)) => Ok(RouteSpec::Command(
                self.command(command, &path.key("command"))?,
            )),
            (Some(_), Some(_)) => Err(self.error(
                &path,
                format!("expected one of via_device and command, found both ({form})"),
            )),
            (None, None) => Err(self.error(&path, format!("expected {form}, found neither key"))),
        }
    }
}

impl ExternalSystem {
    /// Every command of the file, in the order they run.
    pub fn commands(&self) -> impl Iterator<Item = &String> {
        let route = match &self.route {
            RouteSpec::ViaDevice(text) | RouteSpec::Command(text) => text,
        };
        self.setup
            .iter()
            .chain(&self.gateway.start)
            .chain(&self.client.start)
            .chain(std::iter::once(&self.ready.command))
            .chain(std::iter::once(route))
            .chain(&self.client.stop)
            .chain(&self.gateway.stop)
    }

    fn uses_best_link(&self) -> bool {
        self.commands().any(|command| {
            names_in(command).any(|name| name.starts_with("best.") || name == "best_index")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FILE: &str = "systems/demo.toml";

    const VALID: &str = r#"
description = "demo"
setup = ["echo {{dir}}"]
[client]
start = ["sleep 100"]
[gateway]
start = ["sleep 100"]
stop = ["true"]
[ready]
command = "ping -c1 -W1 {{server_address}}"
timeout = "3s"
[route]
via_device = "tun{{id}}"
"#;

    #[test]
    fn a_valid_file_loads_with_its_defaults() {
        let system = from_toml(VALID, Path::new(FILE), 2).unwrap();
        assert_eq!(system.name, "demo");
        assert_eq!(system.ready.namespace, Namespace::Client);
        assert_eq!(system.ready.timeout, Duration::from_secs(3));
        assert_eq!(system.route, RouteSpec::ViaDevice("tun{{id}}".into()));
        assert!(!system.needs_best_link);
        let best = VALID.replace("tun{{id}}", "{{best.client_interface}}");
        assert!(
            from_toml(&best, Path::new(FILE), 2)
                .unwrap()
                .needs_best_link
        );
    }

    #[test]
    fn a_route_takes_exactly_one_kind() {
        let both = VALID.replace(
            "via_device = \"tun{{id}}\"",
            "via_device = \"a\"\ncommand = \"b\"",
        );
        let message = from_toml(&both, Path::new(FILE), 2)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("route: expected one of via_device and command"),
            "{message}"
        );
    }

    proptest! {
        /// Any text, or the valid file with any line replaced: loaded or
        /// refused with an error naming the file, never a panic.
        #[test]
        fn any_file_loads_or_names_itself(
            text in ".{0,200}",
            line in 0usize..12,
            replacement in "[a-z_=\\[\\]\"{} ,.0-9]{0,30}",
        ) {
            for candidate in [text.clone(), replace_line(VALID, line, &replacement)] {
                if let Err(error) = from_toml(&candidate, Path::new(FILE), 2) {
                    prop_assert!(error.to_string().starts_with(FILE), "{}", error);
                }
            }
        }
    }

    fn replace_line(text: &str, index: usize, with: &str) -> String {
        let lines: Vec<&str> = text
            .lines()
            .enumerate()
            .map(|(i, line)| if i == index { with } else { line })
            .collect();
        lines.join("\n")
    }
}
