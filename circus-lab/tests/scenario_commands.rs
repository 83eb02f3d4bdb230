//! `[[traffic.command]]`: every key loads into its value, templates parse
//! any text without panicking, and the simulator says it ran none. (Its
//! mistakes are in `scenario_errors`.)

use std::path::Path;
use std::time::Duration;

use circus_lab::scenario::command::TEMPLATE_VALUES;
use circus_lab::scenario::template::Template;
use circus_lab::scenario::{CommandRole, CommandStart, Scenario, ScenarioError};
use proptest::prelude::*;

const FILE: &str = "lab/commands.toml";

/// A valid scenario with one service and one job; tests break one thing.
const BASE: &str = include_str!("scenario_fixtures/commands.toml");

fn load(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::from_toml(text, Path::new(FILE))
}

#[test]
fn every_key_loads_into_its_value() {
    let scenario = load(BASE).unwrap_or_else(|e| panic!("{e}"));
    let [http, fetch] = scenario.commands.as_slice() else {
        panic!("two commands expected: {:?}", scenario.commands);
    };
    assert_eq!(http.name, "http");
    assert_eq!(http.role, CommandRole::Server);
    assert_eq!(http.start, CommandStart::Service);
    assert!(http.is_service());
    assert_eq!(fetch.name, "fetch");
    assert_eq!(fetch.role, CommandRole::Client, "the client by default");
    assert_eq!(fetch.start, CommandStart::At(Duration::from_secs(2)));
    assert_eq!(
        fetch.render(&["198.19.0.2", "100.64.0.2", "/tmp/d"]),
        "curl -w '%{http_code}' http://198.19.0.2:8000/ -o /tmp/d/f && echo 100.64.0.2"
    );
    assert_eq!(TEMPLATE_VALUES, ["server", "client", "dir"]);
}

#[test]
fn commands_change_the_content_hash_and_their_absence_does_not() {
    let with = load(BASE).unwrap();
    let without_text = &BASE[..BASE.find("[[traffic.command]]").unwrap()];
    let without = load(without_text).unwrap();
    assert!(without.commands.is_empty());
    assert_ne!(with.content_hash(), without.content_hash());
    let changed = load(&BASE.replace("at = \"2s\"", "at = \"3s\"")).unwrap();
    assert_ne!(with.content_hash(), changed.content_hash());
    // An empty `[traffic]` hashes as no `[traffic]`: old scenarios keep their hash.
    let empty_traffic = load(&format!("{without_text}[traffic]\n")).unwrap();
    assert_eq!(without.content_hash(), empty_traffic.content_hash());
}

/// Text without braces, with the braces the template syntax escapes.
fn plain_text() -> impl Strategy<Value = String> {
    "[a-z0-9 $'\"/|;&.{}-]{0,20}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any text either parses or says where it is wrong; never a panic.
    #[test]
    fn any_text_parses_or_is_rejected_with_a_position(text in "\\PC{0,40}") {
        match Template::parse(&text, &TEMPLATE_VALUES) {
            Ok(template) => prop_assert_eq!(template.as_str(), text.as_str()),
            Err(error) => prop_assert!(error.at < text.len()),
        }
    }

    /// Escaped literal text and placeholders render to the text with the
    /// values in place.
    #[test]
    fn escaped_text_and_placeholders_render_as_written(
        parts in proptest::collection::vec((plain_text(), 0..TEMPLATE_VALUES.len()), 0..5),
        tail in plain_text(),
    ) {
        let values = ["198.19.0.2", "100.64.0.2", "/tmp/run dir"];
        let escape = |text: &str| text.replace('{', "{{").replace('}', "}}");
        let mut template = String::new();
        let mut expected = String::new();
        for (text, value) in &parts {
            template.push_str(&escape(text));
            template.push_str(&format!("{{{}}}", TEMPLATE_VALUES[*value]));
            expected.push_str(text);
            expected.push_str(values[*value]);
        }
        template.push_str(&escape(&tail));
        expected.push_str(&tail);
        let parsed = Template::parse(&template, &TEMPLATE_VALUES).unwrap();
        prop_assert_eq!(parsed.render(&values), expected);
    }
}

#[test]
fn the_simulator_runs_no_commands_and_the_report_says_so() {
    let text = BASE
        .replace("duration = \"10s\"", "duration = \"3s\"")
        .replace("systems = [\"circus\"]", "systems = [\"single-link\"]");
    let scenario = load(&text).unwrap();
    let report = circus_lab::sim::run(&scenario, "test").unwrap();
    let summary = &report.outcome.summary;
    assert_eq!(summary.commands_not_run, ["http", "fetch"]);
    assert!(summary.systems.values().all(|m| m.commands.is_empty()));
    let markdown = circus_lab::report::markdown::render(summary, &[]);
    assert!(
        markdown.contains(
            "## Commands\n\nNot simulated: the scenario's commands (http, fetch) run real programs"
        ),
        "{markdown}"
    );
    // No commands, no section and no key.
    let without = load(&text[..text.find("[[traffic.command]]").unwrap()]).unwrap();
    let summary = circus_lab::sim::run(&without, "test")
        .unwrap()
        .outcome
        .summary;
    assert!(!circus_lab::report::markdown::render(&summary, &[]).contains("## Commands"));
    let json = summary.to_json();
    assert!(!json.contains("\"commands_not_run\"") && !json.contains("\"commands\": ["));
}
