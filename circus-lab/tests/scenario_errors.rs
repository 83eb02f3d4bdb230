//! Every validation error names the file, the key and what was expected.

use std::path::Path;

use circus_lab::scenario::{Scenario, ScenarioError};

const FILE: &str = "lab/bad.toml";

/// A valid scenario; tests break one thing in it.
const BASE: &str = r#"name = "base"
duration = "60s"
seed = 1
systems = ["circus", "single-link"]

[[link]]
name = "wifi0"
delay = "10ms"
rate = "20mbit"

[[link]]
name = "lte0"
delay = "40ms"
"#;

fn load(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::from_toml(text, Path::new(FILE))
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

fn with_event(event: &str) -> String {
    format!("{BASE}\n[[event]]\n{event}\n")
}

#[test]
fn base_scenario_is_valid() {
    let scenario = load(BASE).unwrap();
    assert_eq!(scenario.links.len(), 2);
}

#[test]
fn message_reads_file_line_key_expected_found() {
    let text = BASE.replace("delay = \"40ms\"", "delay = \"10x\"");
    let message = load(&text).unwrap_err().to_string();
    assert_eq!(
        message,
        "lab/bad.toml:13: link[1].delay: expected a duration such as \"250ms\", \"10s\" or \
         \"1.5s\" (units: us, ms, s, min), found \"10x\""
    );
}

#[test]
fn bad_duration() {
    let text = BASE.replace("duration = \"60s\"", "duration = \"10x\"");
    assert_error(&text, "duration", Some(2), "expected a duration such as");
    let text = BASE.replace("duration = \"60s\"", "duration = \"0s\"");
    assert_error(&text, "duration", Some(2), "expected a duration above zero");
}

#[test]
fn unknown_keys() {
    let text = BASE.replace("delay = \"40ms\"", "delai = \"40ms\"");
    assert_error(
        &text,
        "link[1].delai",
        Some(13),
        "unknown field `delai`, expected one of",
    );
    let text = format!("colour = \"red\"\n{BASE}");
    assert_error(&text, "colour", Some(1), "unknown field `colour`");
    let text = format!("{BASE}\n[traffic]\nprobe = {{ rate = \"10pps\", sise = 100 }}\n");
    assert_error(
        &text,
        "traffic.probe.sise",
        Some(16),
        "unknown field `sise`",
    );
}

#[test]
fn wrong_value_types() {
    let text = BASE.replace("delay = \"40ms\"", "delay = 40");
    assert_error(
        &text,
        "link[1].delay",
        Some(13),
        "invalid type: integer `40`, expected a string",
    );
    let text = BASE.replace("seed = 1", "seed = -1");
    assert_error(&text, "seed", Some(3), "expected u64");
}

#[test]
fn invalid_toml() {
    let text = BASE.replace("seed = 1", "seed = ");
    assert_error(&text, "(document)", Some(3), "invalid TOML");
}

#[test]
fn missing_required_keys() {
    let text = BASE.replace("name = \"base\"\n", "");
    assert_error(&text, "name", None, "expected a name of 1 to 32 letters");
    let text = BASE.replace("seed = 1\n", "");
    assert_error(&text, "seed", None, "found nothing (the key is required)");
    let text = BASE.replace("name = \"lte0\"\n", "");
    assert_error(
        &text,
        "link[1].name",
        None,
        "found nothing (the key is required)",
    );
    let text = BASE.split("[[link]]").next().unwrap().to_owned();
    assert_error(&text, "link", None, "expected at least one [[link]] table");
}

#[test]
fn names() {
    let text = BASE.replace("name = \"base\"", "name = \"my run\"");
    assert_error(&text, "name", Some(1), "found \"my run\"");
    let text = BASE.replace("name = \"lte0\"", "name = \"wifi0\"");
    assert_error(
        &text,
        "link[1].name",
        Some(12),
        "expected a name no other link has, found \"wifi0\" (also link[0])",
    );
}

#[test]
fn systems() {
    let text = BASE.replace("\"single-link\"]", "\"pfsense\"]");
    assert_error(
        &text,
        "systems[1]",
        Some(4),
        "expected one of circus, single-link, multiwan, mptcp or a system file \
         (lab/../systems/pfsense.toml nor systems/pfsense.toml not found), found \"pfsense\"",
    );
    let text = BASE.replace("\"single-link\"]", "\"circus\"]");
    assert_error(
        &text,
        "systems[1]",
        Some(4),
        "expected each system once, found \"circus\" again",
    );
    let text = BASE.replace("[\"circus\", \"single-link\"]", "[]");
    assert_error(&text, "systems", Some(4), "found an empty list");
}

#[test]
fn policy_and_backend() {
    let text = format!("policy = \"fastest\"\n{BASE}");
    assert_error(
        &text,
        "policy",
        Some(1),
        "expected one of balanced, redundant, adaptive, round-robin, found \"fastest\"",
    );
    let text = format!("backend = \"tc\"\n{BASE}");
    assert_error(&text, "backend", Some(1), "unknown variant `tc`");
}

#[test]
fn rates() {
    let text = BASE.replace("rate = \"20mbit\"", "rate = \"0mbit\"");
    assert_error(&text, "link[0].rate", Some(9), "expected a rate above zero");
    let text = format!("{BASE}\n[traffic]\nprobe = {{ rate = \"0pps\" }}\n");
    assert_error(
        &text,
        "traffic.probe.rate",
        Some(16),
        "expected a packet rate above zero",
    );
}

#[test]
fn percentages() {
    let text = BASE.replace("delay = \"40ms\"", "loss = \"150%\"");
    assert_error(
        &text,
        "link[1].loss",
        Some(13),
        "expected a percentage from 0% to 100%",
    );
    let text = BASE.replace("delay = \"40ms\"", "loss = 0.01");
    assert_error(&text, "link[1].loss", Some(13), "expected a string");
}

#[test]
fn queue_needs_a_bottleneck() {
    let text = BASE.replace("delay = \"40ms\"", "queue = \"64kB\"");
    assert_error(
        &text,
        "link[1].queue",
        Some(13),
        "expected a rate or a trace",
    );
    let text = BASE.replace("delay = \"40ms\"", "queue = \"64k\"");
    assert_error(
        &text,
        "link[1].queue",
        Some(13),
        "expected a queue bound in bytes",
    );
}

#[test]
fn burst_loss() {
    let text = BASE.replace(
        "delay = \"40ms\"",
        "burst_loss = { to_bad = \"1%\", to_good = \"0%\" }",
    );
    assert_error(
        &text,
        "link[1].burst_loss.to_good",
        Some(13),
        "bursts would never end",
    );
    let text = BASE.replace("delay = \"40ms\"", "burst_loss = { to_bad = \"1%\" }");
    assert_error(
        &text,
        "link[1].burst_loss",
        Some(13),
        "missing field `to_good`",
    );
}

#[test]
fn traces() {
    let text = BASE.replace("delay = \"40ms\"", "trace = \"traces/none.trace\"");
    assert_error(
        &text,
        "link[1].trace",
        Some(13),
        "expected a Mahimahi trace file, but lab/traces/none.trace: cannot read trace",
    );
    let text = BASE.replace(
        "delay = \"40ms\"",
        "trace = { up = \"a.trace\", sideways = \"b.trace\" }",
    );
    assert_error(
        &text,
        "link[1].trace",
        Some(13),
        "expected a trace file path, or a table",
    );
}

#[test]
fn trace_with_rate_is_refused() {
    let folder = std::env::temp_dir().join(format!("circus-lab-model-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("t.trace"), "1\n2\n").unwrap();
    let text = BASE.replace("delay = \"10ms\"", "trace = \"t.trace\"");
    let result = Scenario::from_toml(&text, &folder.join("s.toml"));
    std::fs::remove_dir_all(&folder).unwrap();
    let message = result.unwrap_err().to_string();
    assert!(
        message.ends_with("s.toml:9: link[0].rate: expected no rate on a link driven by a trace (the trace sets its capacity)"),
        "{message}"
    );
}

#[test]
fn event_for_an_undefined_link() {
    let text = with_event("at = \"10s\"\nlink = \"wifi9\"\naction = \"down\"");
    assert_error(
        &text,
        "event[0].link",
        Some(17),
        "expected one of the links wifi0, lte0, found \"wifi9\"",
    );
}

#[test]
fn event_after_the_end() {
    let text = with_event("at = \"60s\"\nlink = \"wifi0\"\naction = \"down\"");
    assert_error(
        &text,
        "event[0].at",
        Some(16),
        "expected a time before the end of the run (60s), found 60s",
    );
    let text = with_event("at = \"50s\"\nlink = \"wifi0\"\naction = \"down\"\nfor = \"15s\"");
    assert_error(
        &text,
        "event[0].for",
        Some(19),
        "expected at most 10s so the event ends by the end of the run (60s), found 15s",
    );
}

#[test]
fn event_bad_time_and_action() {
    let text = with_event("at = \"10x\"\nlink = \"wifi0\"\naction = \"down\"");
    assert_error(
        &text,
        "event[0].at",
        Some(16),
        "expected a duration such as",
    );
    let text = with_event("at = \"10s\"\nlink = \"wifi0\"\naction = \"explode\"");
    assert_error(
        &text,
        "event[0].action",
        Some(18),
        "unknown variant `explode`",
    );
    let text = with_event("at = \"10s\"\nlink = \"wifi0\"");
    assert_error(
        &text,
        "event[0].action",
        None,
        "expected one of blackhole, down, up, set, address",
    );
}

#[test]
fn events_in_order_and_not_overlapping() {
    let text = format!(
        "{}\n[[event]]\nat = \"5s\"\nlink = \"lte0\"\naction = \"up\"\n",
        with_event("at = \"10s\"\nlink = \"wifi0\"\naction = \"down\"")
    );
    assert_error(
        &text,
        "event[1].at",
        Some(21),
        "expected events in time order, found 5s after event[0] at 10s",
    );
    let text = format!(
        "{}\n[[event]]\nat = \"12s\"\nlink = \"wifi0\"\naction = \"up\"\n",
        with_event("at = \"10s\"\nlink = \"wifi0\"\naction = \"blackhole\"\nfor = \"3s\"")
    );
    assert_error(
        &text,
        "event[1].at",
        Some(22),
        "expected no event on wifi0 before 13s, when event[0] (from 10s) ends, found one at 12s",
    );
    // Another link may change meanwhile, and this one right at the end.
    let text = format!(
        "{}\n[[event]]\nat = \"11s\"\nlink = \"lte0\"\naction = \"down\"\n\
         [[event]]\nat = \"13s\"\nlink = \"wifi0\"\naction = \"blackhole\"\n",
        with_event("at = \"10s\"\nlink = \"wifi0\"\naction = \"blackhole\"\nfor = \"3s\"")
    );
    assert_eq!(load(&text).unwrap().events.len(), 3);
}

#[test]
fn for_only_on_lasting_actions() {
    let text = with_event("at = \"10s\"\nlink = \"wifi0\"\naction = \"up\"\nfor = \"1s\"");
    assert_error(
        &text,
        "event[0].for",
        Some(19),
        "expected no `for` with action = \"up\"",
    );
    let text = with_event("at = \"10s\"\nlink = \"wifi0\"\naction = \"address\"\nfor = \"1s\"");
    assert_error(&text, "event[0].for", Some(19), "with action = \"address\"");
}

#[test]
fn set_events() {
    let text = with_event("at = \"10s\"\nlink = \"wifi0\"\naction = \"set\"");
    assert_error(
        &text,
        "event[0].set",
        None,
        "expected a table of parameters to change",
    );
    let text =
        with_event("at = \"10s\"\nlink = \"wifi0\"\naction = \"down\"\nset = { delay = \"1s\" }");
    assert_error(
        &text,
        "event[0].set",
        Some(19),
        "expected no `set` table unless action = \"set\"",
    );
    let text = with_event("at = \"10s\"\nlink = \"wifi0\"\naction = \"set\"\nset = {}");
    assert_error(
        &text,
        "event[0].set",
        Some(19),
        "expected at least one parameter to change",
    );
    let text =
        with_event("at = \"10s\"\nlink = \"wifi0\"\naction = \"set\"\nset = { name = \"x\" }");
    assert_error(
        &text,
        "event[0].set.name",
        Some(19),
        "a link keeps its name",
    );
    let text =
        with_event("at = \"10s\"\nlink = \"wifi0\"\naction = \"set\"\nset = { delay = \"1x\" }");
    assert_error(
        &text,
        "event[0].set.delay",
        Some(19),
        "expected a duration such as",
    );
    let text =
        with_event("at = \"10s\"\nlink = \"lte0\"\naction = \"set\"\nset = { queue = \"1s\" }");
    assert_error(
        &text,
        "event[0].set.queue",
        Some(19),
        "expected a rate or a trace",
    );
    // A rate set earlier in the timeline makes a later queue valid.
    let text = format!(
        "{}\n[[event]]\nat = \"20s\"\nlink = \"lte0\"\naction = \"set\"\nset = {{ queue = \"1s\" }}\n",
        with_event("at = \"10s\"\nlink = \"lte0\"\naction = \"set\"\nset = { rate = \"5mbit\" }")
    );
    assert!(load(&text).is_ok());
}

#[test]
fn probe_size_and_tcp_flows() {
    let text = format!("{BASE}\n[traffic]\nprobe = {{ size = 8 }}\n");
    assert_error(
        &text,
        "traffic.probe.size",
        Some(16),
        "expected a UDP payload size from 32 to 1472 bytes, found 8",
    );
    let text = format!("{BASE}\n[traffic]\ntcp = {{ flows = 1000 }}\n");
    assert_error(
        &text,
        "traffic.tcp.flows",
        Some(16),
        "expected at most 64 flows, found 1000",
    );
}

#[test]
fn unreadable_file_names_it() {
    let error = Scenario::load(Path::new("lab/missing.toml")).unwrap_err();
    assert!(matches!(error, ScenarioError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with("lab/missing.toml: cannot read the scenario:")
    );
}

#[test]
fn repeating_events() {
    let text = with_event(
        "at = \"10s\"\nlink = \"wifi0\"\naction = \"blackhole\"\nfor = \"1s\"\nevery = \"1s\"",
    );
    assert_error(
        &text,
        "event[0].every",
        Some(20),
        "expected more than `for` (1s) so repetitions do not overlap, found 1s",
    );
    let text = with_event("at = \"10s\"\nlink = \"wifi0\"\naction = \"down\"\nuntil = \"20s\"");
    assert_error(
        &text,
        "event[0].until",
        Some(19),
        "expected `until` only together with `every`",
    );
    let text = with_event(
        "at = \"10s\"\nlink = \"wifi0\"\naction = \"down\"\nevery = \"1s\"\nuntil = \"61s\"",
    );
    assert_error(
        &text,
        "event[0].until",
        Some(20),
        "expected a time after `at` (10s) and at most the end of the run (60s), found 61s",
    );
    let text = with_event("at = \"10s\"\nlink = \"wifi0\"\naction = \"up\"\nevery = \"1ms\"");
    assert_error(
        &text,
        "event[0].every",
        Some(19),
        "expected at most 10000 repetitions, found 50000",
    );
    // A later event may not land inside a repetition's window.
    let text = format!(
        "{}\n[[event]]\nat = \"20.2s\"\nlink = \"wifi0\"\naction = \"down\"\n",
        with_event(
            "at = \"10s\"\nlink = \"wifi0\"\naction = \"blackhole\"\nfor = \"500ms\"\nevery = \"2s\""
        )
    );
    assert_error(
        &text,
        "event[1].at",
        Some(23),
        "expected no event on wifi0 before 20.5s, when event[0] (from 20s) ends, found one at 20.2s",
    );
}

/// A valid scenario with a service and a job, for `[[traffic.command]]` mistakes.
const COMMANDS: &str = include_str!("scenario_fixtures/commands.toml");

#[test]
fn command_mistakes_name_their_key_and_expected_value() {
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
        assert!(COMMANDS.contains(old), "{old}");
        assert_error(&COMMANDS.replacen(old, new, 1), key, line, problem);
    }
}

#[test]
fn command_required_keys_are_named_when_missing() {
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
        assert_error(&COMMANDS.replacen(removed, "", 1), key, None, problem);
    }
    let no_run = COMMANDS.replacen(
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
    let blank = COMMANDS.replacen("python3 -m http.server 8000 --bind {server}", "  ", 1);
    assert_error(&blank, "traffic.command[0].run", Some(13), "found \"  \"");
}

#[test]
fn at_most_32_commands() {
    let mut text = COMMANDS.to_owned();
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
