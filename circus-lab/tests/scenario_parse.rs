//! A scenario using every key loads into the values it says; the timeline,
//! content hash and model seeds derived from it behave.

use std::path::{Path, PathBuf};
use std::time::Duration;

use circus_lab::emulator::model::{
    Direction, GilbertElliott, LinkCondition, QueueLimit, Reorder, Verdict,
};
use circus_lab::scenario::{
    Action, Backend, LinkChange, LinkParamsPatch, ProbeSpec, Scenario, SystemKind, TcpSpec,
    TrafficDirection,
};

const MS: Duration = Duration::from_millis(1);

const FULL: &str = r#"
# Every key of the schema.
name = "full-2"
duration = "1min"
seed = 42
backend = "userspace"
policy = "adaptive"
systems = ["mptcp", "circus"]

[[link]]
name = "dsl"
delay = "10ms"
jitter = "2ms"
loss = "0.5%"
rate = "16mbit"
queue = "64KiB"
burst_loss = { to_bad = "1%", to_good = "25%" }
duplicate = "0.1%"
reorder = { fraction = "2%", extra_delay = "15ms" }

[[link]]
name = "lte_1"
delay = "30ms"
trace = { up = "traces/up.trace", down = "traces/down.trace" }
queue = "300ms"

[[event]]
at = "5s"
link = "dsl"
action = "blackhole"
for = "500ms"
every = "2s"
until = "10s"

[[event]]
at = "7.5s"
link = "lte_1"
action = "set"
set = { delay = "200ms", loss = "5%", burst_loss = { to_bad = "2%", to_good = "10%", loss_in_good = "1%", loss_in_bad = "50%" } }
for = "1.5s"

[[event]]
at = "20s"
link = "lte_1"
action = "down"

[[event]]
at = "25s"
link = "lte_1"
action = "up"

[[event]]
at = "30s"
link = "dsl"
action = "address"

[traffic]
probe = { rate = "500pps", size = 1200 }
tcp = { flows = 2, direction = "down" }
"#;

/// A scratch folder with the traces FULL names, removed on drop.
struct Folder(PathBuf);

impl Folder {
    fn new(tag: &str) -> Folder {
        let path =
            std::env::temp_dir().join(format!("circus-lab-model-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(path.join("traces")).unwrap();
        std::fs::write(path.join("traces/up.trace"), "1\n3\n").unwrap();
        std::fs::write(path.join("traces/down.trace"), "1\n1\n2\n").unwrap();
        Folder(path)
    }

    fn load(&self, text: &str) -> Scenario {
        Scenario::from_toml(text, &self.0.join("s.toml")).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_key_loads_into_its_value() {
    let folder = Folder::new("full");
    let s = folder.load(FULL);
    assert_eq!(s.name, "full-2");
    assert_eq!(s.duration, Duration::from_secs(60));
    assert_eq!(s.seed, 42);
    assert_eq!(s.backend, Backend::Userspace);
    assert_eq!(s.policy.as_deref(), Some("adaptive"));
    assert_eq!(s.systems, vec![SystemKind::Mptcp, SystemKind::Circus]);
    assert_eq!(
        s.traffic.probe,
        ProbeSpec {
            rate_pps: 500,
            size: 1200,
            direction: TrafficDirection::Both,
        }
    );
    assert_eq!(
        s.traffic.tcp,
        TcpSpec {
            flows: 2,
            direction: TrafficDirection::Down
        }
    );
    assert_eq!(
        (s.traffic.tcp.up_flows(), s.traffic.tcp.down_flows()),
        (0, 2)
    );

    let dsl = &s.links[0].params;
    assert_eq!(s.links[0].name, "dsl");
    assert_eq!((dsl.delay, dsl.jitter), (10 * MS, 2 * MS));
    assert_eq!((dsl.loss, dsl.duplicate), (0.005, 0.001));
    assert_eq!(dsl.rate_bps, Some(16_000_000));
    assert_eq!(dsl.queue, Some(QueueLimit::Bytes(65_536)));
    assert_eq!(
        dsl.burst_loss,
        Some(GilbertElliott {
            to_bad: 0.01,
            to_good: 0.25,
            loss_in_good: 0.0,
            loss_in_bad: 1.0
        })
    );
    assert_eq!(
        dsl.reorder,
        Some(Reorder {
            fraction: 0.02,
            extra_delay: 15 * MS
        })
    );
    assert!(dsl.trace.is_none());

    let lte = &s.links[1].params;
    let traces = lte.trace.as_ref().unwrap();
    assert_eq!(traces.up.path, folder.0.join("traces/up.trace"));
    assert_eq!(
        traces.for_direction(Direction::Up).opportunities_ms(),
        &[1, 3]
    );
    assert_eq!(
        traces.for_direction(Direction::Down).opportunities_ms(),
        &[1, 1, 2]
    );
    assert_eq!(lte.queue, Some(QueueLimit::Delay(300 * MS)));
    assert_eq!(lte.rate_bps, None);
}

#[test]
fn events_expand_repetitions_in_time_order() {
    let folder = Folder::new("events");
    let s = folder.load(FULL);
    let summary: Vec<(u64, &str, &str)> = s
        .events
        .iter()
        .map(|e| (e.at.as_millis() as u64, e.link.as_str(), e.action.name()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (5_000, "dsl", "blackhole"),
            (7_000, "dsl", "blackhole"),
            (7_500, "lte_1", "set"),
            (9_000, "dsl", "blackhole"),
            (20_000, "lte_1", "down"),
            (25_000, "lte_1", "up"),
            (30_000, "dsl", "address"),
        ]
    );
    assert!(
        s.events
            .iter()
            .all(|e| e.link_index == s.link_index(&e.link).unwrap())
    );
    let Action::Set(patch) = &s.events[2].action else {
        panic!("expected a set");
    };
    assert_eq!(
        *patch,
        LinkParamsPatch {
            delay: Some(200 * MS),
            loss: Some(0.05),
            burst_loss: Some(GilbertElliott {
                to_bad: 0.02,
                to_good: 0.1,
                loss_in_good: 0.01,
                loss_in_bad: 0.5
            }),
            ..LinkParamsPatch::default()
        }
    );
    assert_eq!(s.events[2].duration, Some(1500 * MS));
}

#[test]
fn timeline_restores_after_for() {
    let folder = Folder::new("timeline");
    let s = folder.load(FULL);
    let timeline = s.timeline();
    let conditions: Vec<(u64, usize, LinkCondition)> = timeline
        .iter()
        .filter_map(|step| match step.change {
            LinkChange::Condition(c) => Some((step.at.as_millis() as u64, step.link_index, c)),
            _ => None,
        })
        .collect();
    assert_eq!(
        conditions,
        vec![
            (5_000, 0, LinkCondition::Blackhole),
            (5_500, 0, LinkCondition::Up),
            (7_000, 0, LinkCondition::Blackhole),
            (7_500, 0, LinkCondition::Up),
            (9_000, 0, LinkCondition::Blackhole),
            (9_500, 0, LinkCondition::Up),
            (20_000, 1, LinkCondition::Down),
            (25_000, 1, LinkCondition::Up),
        ]
    );
    let params: Vec<(u64, Duration, f64)> = timeline
        .iter()
        .filter_map(|step| match &step.change {
            LinkChange::Params(p) => Some((step.at.as_millis() as u64, p.delay, p.loss)),
            _ => None,
        })
        .collect();
    assert_eq!(params, vec![(7_500, 200 * MS, 0.05), (9_000, 30 * MS, 0.0)]);
    // The restore of the blackhole at 7 s ends at 7.5 s, listed before the set.
    let at_7_5: Vec<&LinkChange> = timeline
        .iter()
        .filter(|step| step.at == 7_500 * MS)
        .map(|step| &step.change)
        .collect();
    assert!(matches!(
        at_7_5[..],
        [
            LinkChange::Condition(LinkCondition::Up),
            LinkChange::Params(_)
        ]
    ));
    assert!(timeline.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(
        timeline
            .iter()
            .any(|step| step.change == LinkChange::ChangeAddress && step.at == 30_000 * MS)
    );
}

#[test]
fn defaults_apply_when_keys_are_left_out() {
    let text = "name = \"d\"\nduration = \"10s\"\nseed = 0\nsystems = [\"circus\"]\n\
                [[link]]\nname = \"a\"\n";
    let s = Scenario::from_toml(text, Path::new("d.toml")).unwrap();
    assert_eq!(s.backend, Backend::Auto);
    assert!(s.emulator_realtime);
    assert_eq!(s.policy, None);
    assert_eq!(s.traffic.probe, ProbeSpec::DEFAULT);
    assert_eq!(s.traffic.tcp.flows, 0);
    assert!(s.events.is_empty());
    assert_eq!(s.links[0].params, Default::default());
}

#[test]
fn content_hash_follows_content_not_spelling() {
    let folder = Folder::new("hash");
    let hash = folder.load(FULL).content_hash();
    assert_eq!(hash.to_string().len(), 64);
    // Same values spelled differently, comments gone: same hash.
    let respelled = FULL
        .replace("duration = \"1min\"", "duration = \"60s\"")
        .replace("delay = \"10ms\"", "delay = \"10.0ms\"")
        .replace("# Every key of the schema.", "");
    assert_eq!(folder.load(&respelled).content_hash(), hash);
    // Any effective change: a different hash.
    let changed = FULL.replace("seed = 42", "seed = 43");
    assert_ne!(folder.load(&changed).content_hash(), hash);
    // The emulator's priority: its default spelled out changes nothing
    // (hashes from before the key existed stay valid), turning it off does.
    let spelled = FULL.replace("seed = 42", "seed = 42\nemulator_realtime = true");
    assert_eq!(folder.load(&spelled).content_hash(), hash);
    let off = FULL.replace("seed = 42", "seed = 42\nemulator_realtime = false");
    let off = folder.load(&off);
    assert!(!off.emulator_realtime);
    assert_ne!(off.content_hash(), hash);
    let changed = FULL.replace("loss = \"0.5%\"", "loss = \"0.6%\"");
    assert_ne!(folder.load(&changed).content_hash(), hash);
    std::fs::write(folder.0.join("traces/up.trace"), "1\n4\n").unwrap();
    assert_ne!(folder.load(FULL).content_hash(), hash);
}

#[test]
fn content_hash_ignores_where_the_files_are() {
    let here = Folder::new("hash-here");
    let there = Folder::new("hash-there");
    assert_eq!(
        here.load(FULL).content_hash(),
        there.load(FULL).content_hash()
    );
}

#[test]
fn model_seeds_differ_per_link_and_direction() {
    let folder = Folder::new("seeds");
    let s = folder.load(FULL);
    let seeds = [
        s.model_seed(0, Direction::Up),
        s.model_seed(0, Direction::Down),
        s.model_seed(1, Direction::Up),
        s.model_seed(1, Direction::Down),
    ];
    for (i, a) in seeds.iter().enumerate() {
        assert!(seeds[i + 1..].iter().all(|b| a != b), "{seeds:?}");
    }
    let other = folder.load(&FULL.replace("seed = 42", "seed = 43"));
    assert_ne!(other.model_seed(0, Direction::Up), seeds[0]);

    // link_model starts from the link's parameters with that seed.
    let mut model = s.link_model(1, Direction::Down).unwrap();
    assert_eq!(model.params(), &s.links[1].params);
    assert_eq!(
        model.on_frame(Duration::ZERO, 1500),
        Verdict::Deliver {
            at: 31 * MS,
            duplicate_at: None
        }
    );
    assert!(s.link_model(2, Direction::Up).is_none());
}
