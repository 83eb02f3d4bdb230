//! `[[traffic.command]]`: every key loads into its value, every mistake is
//! reported with its file, line, key and the expected value, and templates
//! parse any text without panicking.

use std::path::Path;
use std::time::Duration;

use circus_lab::scenario::command::TEMPLATE_VALUES;
use circus_lab::scenario::template::Template;
use circus_lab::scenario::{CommandRole, CommandStart, Scenario, ScenarioError};
use proptest::prelude::*;

const FILE: &str = "lab/commands.toml";

/// A valid scenario with one service and one job; tests break one thing.
const BASE: &str = r#"name = "commands"
duration = "10s"
seed = 1
systems = ["circus"]

[[link]]
name = "wifi0"

[[traffic.command]]
name = "http"
in = "server"
service = true
run = "python3 -m http.server 8000 --bind {server}"

[[traffic.command]]
name = "fetch"
at = "2s"
run = "curl -w '%{{http_code}}' http://{server}:8000/ -o {dir}/f && echo {client}"
"#;

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

/// Loads `text`, expecting an error at `key` on `line` whose problem contains `problem`.
#[track_caller]
fn assert_error(text: &str, key: &str, line: Option<usize>, problem: &str) {
    let error = match load(text) {
        Ok(_) => panic!("expected an error at {key}, the scenario loaded"),
        Err(error) => error,
    };
    let message = error.to_string();
    let ScenarioError::Invalid {
        file,
        line: found_line,
        key: found_key,
        problem: found_problem,
    } = error
    else {
        panic!("expected an Invalid error, got {message}");
    };
    assert_eq!(file, Path::new(FILE), "{message}");
    assert_eq!(found_key, key, "{message}");
    assert_eq!(found_line, line, "{message}");
    assert!(
        found_problem.contains(problem),
        "expected the problem to contain {problem:?}: {message}"
    );
}

#[test]
fn each_mistake_names_its_file_line_key_and_expected_value() {
    let cases: [(&str, &str, &str, Option<usize>, &str); 11] = [
        (
            "{server}",
            "{srv}",
            "traffic.command[0].run",
            Some(13),
            "expected one of the values {server}, {client}, {dir}, found {srv}",
        ),
        (
            "'%{{http_code}}'",
            "'%{http_code}'",
            "traffic.command[1].run",
            Some(18),
            "found {http_code} (write {{ or }} for a literal brace)",
        ),
        (
            "-o {dir}/f",
            "-o {dir/f",
            "traffic.command[1].run",
            Some(18),
            "a '{' that opens no placeholder such as {server}: write {{ or }} for a literal brace",
        ),
        (
            "name = \"fetch\"",
            "name = \"http\"",
            "traffic.command[1].name",
            Some(16),
            "expected a name no other command has, found \"http\" (also traffic.command[0])",
        ),
        (
            "name = \"fetch\"",
            "name = \"fetch it\"",
            "traffic.command[1].name",
            Some(16),
            "expected a name of 1 to 32 letters",
        ),
        (
            "at = \"2s\"",
            "at = \"10s\"",
            "traffic.command[1].at",
            Some(17),
            "expected a time before the end of the run (10s), found 10s",
        ),
        (
            "at = \"2s\"",
            "at = \"2x\"",
            "traffic.command[1].at",
            Some(17),
            "expected a duration such as",
        ),
        (
            "service = true",
            "service = true\nat = \"1s\"",
            "traffic.command[0].at",
            Some(13),
            "expected no `at` on a service (services start before time zero)",
        ),
        (
            "in = \"server\"",
            "in = \"gateway\"",
            "traffic.command[0].in",
            Some(11),
            "unknown variant `gateway`, expected `client` or `server`",
        ),
        (
            "service = true",
            "service = \"yes\"",
            "traffic.command[0].service",
            Some(12),
            "invalid type: string \"yes\", expected a boolean",
        ),
        (
            "service = true",
            "servce = true",
            "traffic.command[0].servce",
            Some(12),
            "unknown field `servce`",
        ),
    ];
    for (old, new, key, line, problem) in cases {
        assert!(BASE.contains(old), "{old}");
        assert_error(&BASE.replacen(old, new, 1), key, line, problem);
    }
}

#[test]
fn required_keys_are_named_when_missing() {
    let cases = [
        (
            "name = \"fetch\"\n",
            "traffic.command[1].name",
            "expected a name of 1 to 32",
        ),
        (
            "at = \"2s\"\n",
            "traffic.command[1].at",
            "expected the job's start time such as \"2s\" (or service = true), found nothing",
        ),
    ];
    for (removed, key, problem) in cases {
        assert_error(&BASE.replacen(removed, "", 1), key, None, problem);
    }
    let no_run = BASE.replacen(
        "run = \"python3 -m http.server 8000 --bind {server}\"\n",
        "",
        1,
    );
    assert_error(
        &no_run,
        "traffic.command[0].run",
        None,
        "expected a shell line such as",
    );
    let blank = BASE.replacen("python3 -m http.server 8000 --bind {server}", "  ", 1);
    assert_error(&blank, "traffic.command[0].run", Some(13), "found \"  \"");
}

#[test]
fn at_most_32_commands() {
    let mut text = BASE.to_owned();
    for index in 0..31 {
        text.push_str(&format!(
            "\n[[traffic.command]]\nname = \"c{index}\"\nat = \"1s\"\nrun = \"true\"\n"
        ));
    }
    assert_error(
        &text,
        "traffic.command[32]",
        Some(170),
        "expected at most 32 commands, found 33",
    );
    let fewer = text[..text.rfind("[[traffic.command]]").unwrap()].to_owned();
    assert_eq!(load(&fewer).unwrap().commands.len(), 32);
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
