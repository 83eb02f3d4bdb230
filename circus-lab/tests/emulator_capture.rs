//! Packet captures (`circus-lab run --pcap`) in real namespaces: each file
//! holds every frame that entered the emulator and every frame it sent on,
//! its drops commented, exactly as the forwarder's counters count them; and
//! a lab run writes one file per link and direction under its run's name.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use circus_lab::emulator::forwarder::CounterSnapshot;
use circus_lab::emulator::model::{Direction, DropReason, LinkParams};
use circus_lab::runner::{Emulation, EmulationError, run_systems};
use circus_lab::scenario::Scenario;
use circus_lab::topology::{Topology, TopologyConfig, netns_available_for_test};
use common::Lab;
use indicatif::ProgressBar;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::{Block, PcapNgReader};

const MS: Duration = Duration::from_millis(1);
const LOSS_COMMENT: &str = "dropped by the emulator: loss";

/// One frame of a capture file.
struct Frame {
    at: Duration,
    data: Vec<u8>,
    comment: Option<String>,
}

/// A capture file read back: frames per interface (0 arrived, 1 left).
struct Capture {
    arrived: Vec<Frame>,
    left: Vec<Frame>,
}

impl Capture {
    fn read(path: &Path) -> Capture {
        let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut reader = PcapNgReader::new(file).unwrap();
        let mut capture = Capture {
            arrived: Vec::new(),
            left: Vec::new(),
        };
        while let Some(block) = reader.next_block() {
            let Block::EnhancedPacket(packet) = block.unwrap() else {
                continue;
            };
            let comment = packet.options.iter().find_map(|o| match o {
                EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                _ => None,
            });
            let frame = Frame {
                at: packet.timestamp,
                data: packet.data.to_vec(),
                comment,
            };
            match packet.interface_id {
                0 => capture.arrived.push(frame),
                1 => capture.left.push(frame),
                other => panic!("{}: interface {other}", path.display()),
            }
        }
        assert_eq!(reader.interfaces().len(), 2, "{}", path.display());
        capture
    }

    fn dropped(&self) -> usize {
        self.arrived.iter().filter(|f| f.comment.is_some()).count()
    }

    /// Every frame that left arrived first, unmarked, no later (a duplicate
    /// leaves twice); returns the smallest time a frame spent inside.
    fn check_departures_arrived(&self, name: &str) -> Duration {
        let mut arrivals: HashMap<&[u8], Duration> = HashMap::new();
        for frame in self.arrived.iter().filter(|f| f.comment.is_none()) {
            arrivals.insert(frame.data.as_slice(), frame.at);
        }
        let mut least = Duration::MAX;
        for frame in &self.left {
            let arrived = arrivals
                .get(frame.data.as_slice())
                .unwrap_or_else(|| panic!("{name}: a frame left that never arrived"));
            assert!(frame.at >= *arrived, "{name}: left before it arrived");
            least = least.min(frame.at - *arrived);
        }
        least
    }
}

const UDP: u8 = 17;
const ICMP: u8 = 1;

/// The IP protocol of an Ethernet frame carrying IPv4.
fn ip_protocol(frame: &[u8]) -> Option<u8> {
    let ipv4 = frame.len() >= 34 && frame[12..14] == [0x08, 0x00] && frame[14] >> 4 == 4;
    ipv4.then(|| frame[23])
}

fn scratch_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("circus-{name}-{}", std::process::id()))
}

#[test]
fn captures_hold_what_the_forwarder_counted_with_drops_marked() {
    if !netns_available_for_test("captures_hold_what_the_forwarder_counted_with_drops_marked") {
        return;
    }
    let dir = scratch_dir("capture");
    let params = LinkParams {
        delay: 10 * MS,
        loss: 0.3,
        duplicate: 0.1,
        ..LinkParams::default()
    };
    let lab = Lab::start_capturing("cap", params, Some(&dir));
    let (echo, client) = lab.echo_pair();
    let back = lab.probe(&echo, &client, 200, MS, Duration::from_secs(1));
    assert!(!back.is_empty(), "some probes come back through 30 % loss");
    let counters: Vec<(Direction, CounterSnapshot)> = [Direction::Up, Direction::Down]
        .into_iter()
        .map(|d| (d, lab.forwarder.counters(0, d).unwrap()))
        .collect();
    let Lab {
        forwarder,
        topology,
    } = lab;
    forwarder.stop().unwrap();
    drop(topology);

    for (direction, counted) in counters {
        let name = format!("{direction:?}");
        let suffix = if direction == Direction::Up {
            "up"
        } else {
            "down"
        };
        let capture = Capture::read(&dir.join(format!("link-{suffix}.pcapng")));
        assert_eq!(counted.in_flight, 0, "{name}: all sent before the count");
        assert_eq!(capture.arrived.len() as u64, counted.received, "{name}");
        assert_eq!(capture.left.len() as u64, counted.forwarded, "{name}");
        let lost = counted.dropped(DropReason::Loss);
        assert!(lost > 0 && counted.duplicated > 0, "{name}: {counted:?}");
        assert_eq!(capture.dropped() as u64, lost, "{name}: one mark per drop");
        assert!(
            capture
                .arrived
                .iter()
                .filter_map(|f| f.comment.as_deref())
                .all(|c| c == LOSS_COMMENT),
            "{name}: only random loss here"
        );
        assert!(
            capture
                .arrived
                .iter()
                .chain(&capture.left)
                .all(|f| ip_protocol(&f.data) == Some(UDP)),
            "{name}: Ethernet/IPv4/UDP frames"
        );
        let least = capture.check_departures_arrived(&name);
        assert!(least >= 10 * MS, "{name}: held {least:?}, delay is 10 ms");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn netem_cannot_capture_and_says_so() {
    if !netns_available_for_test("netem_cannot_capture_and_says_so") {
        return;
    }
    let toml = SCENARIO.replace("seed = 5", "seed = 5\nbackend = \"netem\"");
    let scenario = Scenario::from_toml(&toml, Path::new("emulator_capture.rs")).unwrap();
    let topology = Topology::build(&TopologyConfig {
        tag: "capnetem".into(),
        links: 1,
    })
    .unwrap();
    let dir = scratch_dir("netem-pcap");
    let error = Emulation::start(&topology, &scenario, Some(&dir))
        .err()
        .expect("captures need the userspace emulator");
    assert!(
        matches!(error, EmulationError::CaptureNeedsUserspace),
        "{error}"
    );
    assert!(
        error.to_string().contains("backend = \"userspace\""),
        "{error}"
    );
    assert!(!dir.exists(), "nothing written");
}

/// One lossy link, probes only, 2 s.
const SCENARIO: &str = r#"
name = "pcap-test"
duration = "2s"
seed = 5
systems = ["single-link"]

[[link]]
name = "lossy0"
delay = "5ms"
loss = "30%"

[traffic]
probe = { rate = "100pps", size = 100 }
tcp = { flows = 0 }
"#;

#[test]
fn a_lab_run_captures_each_link_and_direction_under_the_run_name() {
    if !netns_available_for_test("a_lab_run_captures_each_link_and_direction_under_the_run_name") {
        return;
    }
    let dir = scratch_dir("lab-pcap");
    let scenario = Scenario::from_toml(SCENARIO, Path::new("emulator_capture.rs")).unwrap();
    let results = run_systems(
        &scenario,
        &scenario.systems,
        &dir,
        &ProgressBar::hidden(),
        Some(&dir),
    )
    .unwrap_or_else(|e| panic!("run failed: {e}"));

    let run_dir = dir.join("single-link-lossy0");
    let mut files: Vec<_> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["lossy0-down.pcapng", "lossy0-up.pcapng"]);
    let up = Capture::read(&run_dir.join("lossy0-up.pcapng"));
    let down = Capture::read(&run_dir.join("lossy0-down.pcapng"));

    let counted = &results.logs[0].links[0];
    assert_eq!(
        (up.left.len() + down.left.len()) as u64,
        counted.packets,
        "the frames the emulator counted as forwarded"
    );
    for (name, capture) in [("up", &up), ("down", &down)] {
        // 2 s at 100 probes/s, 30 % of them lost.
        let arrived = capture.arrived.len();
        assert!(arrived >= 190, "{name}: {arrived} arrived");
        let share = capture.dropped() as f64 / arrived as f64;
        assert!((0.15..0.45).contains(&share), "{name}: {share} dropped");
        assert_eq!(capture.left.len(), arrived - capture.dropped(), "{name}");
        // Probes, and the server's ICMP port-unreachable for a probe that
        // reaches it before its receiver is bound or after it closed.
        assert!(
            capture
                .left
                .iter()
                .all(|f| matches!(ip_protocol(&f.data), Some(UDP | ICMP))),
            "{name}: Ethernet/IPv4 frames of UDP or ICMP"
        );
        let least = capture.check_departures_arrived(name);
        assert!(least >= 5 * MS, "{name}: held {least:?}, delay is 5 ms");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
