//! System files: the shipped ones load, a scenario finds them by name or
//! path, and every mistake in one names the file, line, key and the
//! expected value, as scenario errors do.

use std::path::{Path, PathBuf};

use circus_lab::scenario::{Scenario, ScenarioError, System};

/// A scenario of two links listing `systems` (TOML array items).
fn scenario(systems: &str) -> String {
    format!(
        "name = \"s\"\nduration = \"2s\"\nseed = 1\nsystems = [{systems}]\n\
         [[link]]\nname = \"a\"\n[[link]]\nname = \"b\"\n"
    )
}

/// A private folder with `lab/scenario.toml` and `systems/`.
struct Folder(PathBuf);

impl Folder {
    fn new(test: &str) -> Folder {
        let root =
            std::env::temp_dir().join(format!("circus-sysfile-{}-{test}", std::process::id()));
        std::fs::create_dir_all(root.join("lab")).unwrap();
        std::fs::create_dir_all(root.join("systems")).unwrap();
        Folder(root)
    }

    fn system(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join("systems").join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(&self, systems: &str) -> Result<Scenario, ScenarioError> {
        Scenario::from_toml(&scenario(systems), &self.0.join("lab/scenario.toml"))
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const VALID: &str = r#"description = "demo"
[client]
start = ["sleep 100"]
[gateway]
start = ["sleep 100"]
[ready]
command = "true"
[route]
via_device = "tun0"
"#;

/// Loads a scenario listing `demo`, whose file is `text`; expects an error
/// in that file at `key` on `line` whose problem contains `problem`.
#[track_caller]
fn assert_error(test: &str, text: &str, key: &str, line: usize, problem: &str) {
    let folder = Folder::new(test);
    let file = folder.system("demo", text);
    let error = match folder.load("\"circus\", \"demo\"") {
        Ok(_) => panic!("expected an error at {key}, the system loaded"),
        Err(error) => error,
    };
    let message = error.to_string();
    let ScenarioError::Invalid {
        file: found_file,
        line: found_line,
        key: found_key,
        problem: found_problem,
    } = error
    else {
        panic!("expected an Invalid error, got {message}");
    };
    // The error is in the system file, found by name from the scenario.
    assert_eq!(
        found_file.canonicalize().unwrap(),
        file.canonicalize().unwrap(),
        "{message}"
    );
    assert_eq!(found_key, key, "{message}");
    assert_eq!(found_line, Some(line), "{message}");
    assert!(
        found_problem.contains(problem),
        "expected the problem to contain {problem:?}: {message}"
    );
}

#[test]
fn a_bare_name_finds_the_file_in_the_systems_folder_and_a_path_is_relative() {
    let folder = Folder::new("lookup");
    folder.system("demo", VALID);
    let by_name = folder.load("\"circus\", \"demo\"").unwrap();
    let names: Vec<&str> = by_name.systems.iter().map(System::name).collect();
    assert_eq!(names, ["circus", "demo"]);
    let by_path = folder.load("\"../systems/demo.toml\"").unwrap();
    assert_eq!(by_path.systems, by_name.systems[1..]);
    // The definition is part of the scenario's content.
    folder.system("demo", &VALID.replace("tun0", "tun1"));
    let changed = folder.load("\"circus\", \"demo\"").unwrap();
    assert_ne!(changed.content_hash(), by_name.content_hash());
}

#[test]
fn a_missing_file_says_where_it_was_looked_for() {
    let folder = Folder::new("missing");
    let message = folder
        .load("\"circus\", \"nowhere\"")
        .unwrap_err()
        .to_string();
    assert!(message.contains("scenario.toml:4: systems[1]: expected one of circus, single-link, multiwan, mptcp or a system file"), "{message}");
    assert!(
        message.contains("systems/nowhere.toml not found"),
        "{message}"
    );
}

#[test]
fn a_file_named_like_a_built_in_is_refused() {
    let folder = Folder::new("built-in-name");
    folder.system("circus", VALID);
    let message = folder
        .load("\"../systems/circus.toml\"")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("expected a system file named unlike the built-in systems"),
        "{message}"
    );
}

#[test]
fn unknown_key() {
    let text = VALID.replace("[ready]\n", "[ready]\nretries = 3\n");
    assert_error(
        "unknown-key",
        &text,
        "ready.retries",
        7,
        "unknown field `retries`, expected one of",
    );
}

#[test]
fn missing_start_command() {
    let text = VALID.replace(
        "[gateway]\nstart = [\"sleep 100\"]\n",
        "[gateway]\nstop = [\"true\"]\n",
    );
    assert_error(
        "no-start",
        &text,
        "gateway.start",
        4,
        "expected a list of shell commands, such as [\"wireguard-go -f wg0\"], found nothing",
    );
    let empty = VALID.replace(
        "[gateway]\nstart = [\"sleep 100\"]",
        "[gateway]\nstart = []",
    );
    assert_error(
        "empty-start",
        &empty,
        "gateway.start",
        5,
        "expected a list of shell commands",
    );
}

#[test]
fn wrong_type() {
    let text = VALID.replace("command = \"true\"", "command = \"true\"\ntimeout = 10");
    assert_error(
        "wrong-type",
        &text,
        "ready.timeout",
        8,
        "invalid type: integer `10`, expected a string",
    );
    let text = VALID.replace(
        "start = [\"sleep 100\"]\n[gateway]",
        "start = \"sleep 100\"\n[gateway]",
    );
    assert_error(
        "not-a-list",
        &text,
        "client.start",
        3,
        "invalid type: string \"sleep 100\", expected a sequence",
    );
}

#[test]
fn unknown_template_name() {
    let text = VALID.replace("command = \"true\"", "command = \"ping {{server_adress}}\"");
    assert_error(
        "template",
        &text,
        "ready.command",
        7,
        "expected a template value (one of",
    );
    // A link the scenario does not have.
    let text = VALID.replace("tun0", "{{link2.client_interface}}");
    assert_error(
        "template-link",
        &text,
        "route.via_device",
        9,
        "found {{link2.client_interface}}",
    );
}

#[test]
fn the_shipped_system_files_load() {
    let systems = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systems");
    for name in ["wireguard-go", "circus-node"] {
        let scenarios =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/ci-blackhole.toml");
        let text = std::fs::read_to_string(&scenarios).unwrap();
        let text = text.replace(
            "systems = [\"circus\", \"single-link\"]",
            &format!("systems = [\"circus\", \"{name}\"]"),
        );
        let loaded = Scenario::from_toml(&text, &scenarios).unwrap_or_else(|e| panic!("{e}"));
        let System::External(system) = &loaded.systems[1] else {
            panic!("{name} is no external system");
        };
        assert_eq!(
            system.file,
            scenarios
                .parent()
                .unwrap()
                .join("../systems")
                .join(format!("{name}.toml"))
        );
        assert!(systems.join(format!("{name}.toml")).is_file());
    }
}

#[test]
fn the_readme_shows_the_shipped_wireguard_go_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("scenarios/README.md")).unwrap();
    let shipped = std::fs::read_to_string(root.join("systems/wireguard-go.toml")).unwrap();
    assert!(
        readme.contains(&format!("```toml\n{shipped}```")),
        "scenarios/README.md's system file example is systems/wireguard-go.toml"
    );
}
