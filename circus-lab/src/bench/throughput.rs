//! `circus-lab bench --throughput`: what the tunnel costs and what bonding
//! gains, measured in the same run so the shared machine's load cancels out.
//!
//! - Packet rate: one UDP sender of fixed-size datagrams, over one
//!   unimpaired link without a tunnel, against circus over two unimpaired
//!   links. Each system's figure is its peak, found per system
//!   ([`udp_peak`]) and the best of two alternating rounds: any fixed
//!   offered load either caps the faster path (it delivers all that is
//!   offered and its limit goes unseen) or overloads the slower one (a
//!   sender that takes the CPU the daemons need lowers the tunnel's
//!   goodput below its peak). Both handle every packet on its own, so the
//!   ratio is the tunnel's cost per packet (encryption, scheduling,
//!   reordering, the daemons' IO): the reference issue 4 asks for.
//! - TCP over the same links. Kernel TCP over veth moves 64 kB GSO/TSO
//!   super-packets while the tunnel carries MTU-sized packets, so this ratio
//!   is far lower and says more about offloads than about circus.
//! - Bonding: two equal rate-limited links; one link without a tunnel
//!   against circus over both.
//! - Overload: circus offered 0.25x to 4x its UDP peak ([`LOAD_FACTORS`]).
//!   Goodput should climb to the peak and stay there: a tunnel that reads
//!   more than it can send and drops it after spending work on it carries
//!   less the more it is offered (issue 19: 950 Mbit/s at 5 Gbit/s offered
//!   against a 1.5 Gbit/s peak, before the client read its TUN device
//!   only while its send queue had room).
//!
//! The bench's scenarios run the link emulator at normal priority
//! (`emulator_realtime = false`): at real-time priority it preempts the
//! tunnel's daemons at every frame, which the raw path's single sender
//! hardly notices, so the comparison would measure the emulator's
//! scheduling more than circus.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::runner::{self, RunError};
use crate::scenario::{Scenario, ScenarioError, SystemKind};
use crate::topology::addressing::SERVER_ADDRESS;
use crate::traffic::udp::UdpLoad;

/// UDP payload per datagram: a typical full-size tunnelled packet that
/// fits circus's TUN MTU.
pub const UDP_SIZE: usize = 1200;
/// The first offered UDP load of a peak search, and the factor each step
/// up multiplies it by.
const UDP_FIRST_BPS: u64 = 1_000_000_000;
const UDP_STEP: f64 = 1.5;
/// The highest offered load a search tries: no veth path on a small
/// machine keeps up with it, so a search that gets there is finished.
const UDP_MAX_BPS: u64 = 20_000_000_000;
/// Halvings of the interval between the last load a system kept up with
/// and the first it did not: two leave the peak within about 6 % of the
/// offered load.
const UDP_BISECTIONS: usize = 2;
/// A system keeps up with a load when it delivers this share of it.
const KEPT_UP: f64 = 0.95;
/// How long the UDP load runs, and the start left out of the goodput.
const UDP_DURATION: Duration = Duration::from_secs(3);
const UDP_RAMP: Duration = Duration::from_secs(1);
/// UDP rounds, each single-link then circus; each system's best round
/// counts. On a shared machine other work only ever lowers a figure, and
/// alternating puts both systems under whatever load passes by.
const UDP_ROUNDS: usize = 2;

/// Offered loads of the overload curve, as multiples of circus's peak.
pub const LOAD_FACTORS: [f64; 8] = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0];

/// Why the throughput comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum ThroughputError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Run(#[from] Box<RunError>),
    #[error("{system} measured no {what} goodput on {scenario}")]
    NoGoodput {
        what: &'static str,
        system: &'static str,
        scenario: String,
    },
}

/// Goodput of the two systems on one scenario.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub single_link_mbps: f64,
    pub circus_mbps: f64,
}

impl Comparison {
    /// circus goodput relative to the single link.
    pub fn ratio(&self) -> f64 {
        self.circus_mbps / self.single_link_mbps
    }
}

/// circus's UDP goodput at one offered load.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LoadPoint {
    /// Offered load as a multiple of the peak.
    pub factor: f64,
    pub offered_mbps: f64,
    pub goodput_mbps: f64,
}

/// All comparisons.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Throughput {
    /// UDP goodput, unimpaired links.
    pub udp: Comparison,
    /// circus's UDP goodput against offered load, unimpaired links, from
    /// below its peak to far above it.
    pub overload: Vec<LoadPoint>,
    /// TCP goodput, unimpaired links.
    pub unimpaired: Comparison,
    /// TCP goodput, two equal rate-limited links.
    pub equal_links: Comparison,
}

fn scenario(name: &str, rate: Option<&str>) -> Result<Scenario, ScenarioError> {
    let rate = rate
        .map(|r| format!("rate = \"{r}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "name = \"{name}\"\nduration = \"5s\"\nseed = 1\nsystems = [\"single-link\", \"circus\"]\n\
         emulator_realtime = false\n\
         [[link]]\nname = \"a\"\ndelay = \"5ms\"\n{rate}\
         [[link]]\nname = \"b\"\ndelay = \"5ms\"\n{rate}\
         [traffic]\nprobe = {{ rate = \"10pps\", size = 64, direction = \"up\" }}\n\
         tcp = {{ flows = 4, direction = \"up\" }}\n"
    );
    Scenario::from_toml(&text, Path::new("<throughput bench>"))
}

fn compare(scenario: &Scenario, progress: &ProgressBar) -> Result<Comparison, ThroughputError> {
    let results =
        runner::run_systems(scenario, &scenario.systems, None, progress).map_err(Box::new)?;
    let summary = results.outcome(scenario, "throughput").summary;
    let goodput = |system: SystemKind| {
        summary
            .systems
            .get(system.as_str())
            .and_then(|m| m.tcp_goodput_mbps)
            .filter(|g| *g > 0.0)
            .ok_or(ThroughputError::NoGoodput {
                what: "TCP",
                system: system.as_str(),
                scenario: scenario.name.clone(),
            })
    };
    Ok(Comparison {
        single_link_mbps: goodput(SystemKind::SingleLink)?,
        circus_mbps: goodput(SystemKind::Circus)?,
    })
}

/// The UDP load of the packet-rate comparison at `rate_bps` offered.
pub fn udp_load(rate_bps: u64) -> UdpLoad {
    UdpLoad {
        target: SocketAddr::new(IpAddr::V4(SERVER_ADDRESS), runner::UDP_LOAD_PORT),
        size: UDP_SIZE,
        rate_bps,
        duration: UDP_DURATION,
        device: None,
    }
}

/// Goodput of `system` on `scenario` with a UDP load of `rate_bps` offered.
fn udp_goodput(
    scenario: &Scenario,
    system: SystemKind,
    rate_bps: u64,
    progress: &ProgressBar,
) -> Result<f64, ThroughputError> {
    let load = udp_load(rate_bps);
    let log = runner::udp_goodput(scenario, system, &load, UDP_RAMP, progress).map_err(Box::new)?;
    tracing::debug!(system = system.as_str(), ?log, "UDP load");
    Some(log.received.goodput_mbps())
        .filter(|g| *g > 0.0)
        .ok_or(ThroughputError::NoGoodput {
            what: "UDP",
            system: system.as_str(),
            scenario: scenario.name.clone(),
        })
}

fn compare_udp(scenario: &Scenario, progress: &ProgressBar) -> Result<Comparison, ThroughputError> {
    let mut best = Comparison {
        single_link_mbps: 0.0,
        circus_mbps: 0.0,
    };
    for _ in 0..UDP_ROUNDS {
        let single_link =
            udp_peak(|rate| udp_goodput(scenario, SystemKind::SingleLink, rate, progress))?;
        best.single_link_mbps = best.single_link_mbps.max(single_link);
        let circus = udp_peak(|rate| udp_goodput(scenario, SystemKind::Circus, rate, progress))?;
        best.circus_mbps = best.circus_mbps.max(circus);
    }
    Ok(best)
}

/// circus's goodput at each of [`LOAD_FACTORS`] times `peak_mbps` offered.
fn overload_curve(
    scenario: &Scenario,
    peak_mbps: f64,
    progress: &ProgressBar,
) -> Result<Vec<LoadPoint>, ThroughputError> {
    LOAD_FACTORS
        .iter()
        .map(|&factor| {
            let offered_mbps = factor * peak_mbps;
            let rate_bps = (offered_mbps * 1e6) as u64;
            Ok(LoadPoint {
                factor,
                offered_mbps,
                goodput_mbps: udp_goodput(scenario, SystemKind::Circus, rate_bps, progress)?,
            })
        })
        .collect()
}

/// A system's peak UDP goodput in Mbit/s, from `goodput` at offered loads
/// (bit/s): the load climbs by [`UDP_STEP`] until the system no longer
/// keeps up, bisection then narrows the knee between the last load it kept
/// up with and the first it did not, and the best goodput seen counts.
/// Past the knee goodput only stays level or falls (the sender competes
/// for the CPU), so the peak is at the knee.
fn udp_peak<E>(mut goodput: impl FnMut(u64) -> Result<f64, E>) -> Result<f64, E> {
    let mut best = 0.0_f64;
    let mut keeps_up = |rate: u64, best: &mut f64| -> Result<bool, E> {
        let mbps = goodput(rate)?;
        *best = best.max(mbps);
        Ok(mbps >= KEPT_UP * rate as f64 / 1e6)
    };
    let (mut kept, mut missed) = (0, UDP_FIRST_BPS);
    while keeps_up(missed, &mut best)? {
        if missed >= UDP_MAX_BPS {
            return Ok(best);
        }
        kept = missed;
        missed = ((missed as f64 * UDP_STEP) as u64).min(UDP_MAX_BPS);
    }
    for _ in 0..UDP_BISECTIONS {
        let middle = kept + (missed - kept) / 2;
        if keeps_up(middle, &mut best)? {
            kept = middle;
        } else {
            missed = middle;
        }
    }
    Ok(best)
}

/// Runs all comparisons in real namespaces (about three and a half minutes).
pub fn measure(progress: &ProgressBar) -> Result<Throughput, ThroughputError> {
    let unimpaired = scenario("throughput-unimpaired", None)?;
    let udp = compare_udp(&unimpaired, progress)?;
    Ok(Throughput {
        udp,
        overload: overload_curve(&unimpaired, udp.circus_mbps, progress)?,
        unimpaired: compare(&unimpaired, progress)?,
        equal_links: compare(
            &scenario("throughput-equal-links", Some("20mbit"))?,
            progress,
        )?,
    })
}

/// The table printed by the command.
pub fn render(t: &Throughput) -> String {
    let row = |what: &str, c: &Comparison| {
        format!(
            "{what:<34} {:>10.1} {:>10.1} {:>7.0} %\n",
            c.single_link_mbps,
            c.circus_mbps,
            c.ratio() * 100.0
        )
    };
    let header = |what: &str| {
        format!(
            "{what:<34} {:>10} {:>10} {:>9}\n",
            "one link", "circus", "ratio"
        )
    };
    let mut out = format!(
        "{}{}{}{}{}{}",
        header("UDP goodput, Mbit/s"),
        row("unimpaired links (tunnel cost)", &t.udp),
        format_args!(
            "  (one sender, {UDP_SIZE}-byte payloads; each system's peak over the offered load)\n"
        ),
        header("TCP goodput, Mbit/s"),
        row("unimpaired links (tunnel cost)", &t.unimpaired),
        row("two equal 20 Mbit/s links (bonding)", &t.equal_links),
    );
    out += &format!(
        "\ncircus under load (UDP, unimpaired links; peak {:.1} Mbit/s)\n{:>12} {:>16} {:>16} {:>9}\n",
        t.udp.circus_mbps, "offered", "offered Mbit/s", "goodput Mbit/s", "of peak"
    );
    for p in &t.overload {
        out += &format!(
            "{:>11.2}x {:>16.1} {:>16.1} {:>7.0} %\n",
            p.factor,
            p.offered_mbps,
            p.goodput_mbps,
            p.goodput_mbps / t.udp.circus_mbps * 100.0
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_scenarios_are_valid_and_differ_only_in_rate() {
        let free = scenario("x", None).unwrap();
        let limited = scenario("x", Some("20mbit")).unwrap();
        assert_eq!(free.links.len(), 2);
        assert!(free.links.iter().all(|l| l.params.rate_bps.is_none()));
        assert!(
            limited
                .links
                .iter()
                .all(|l| l.params.rate_bps == Some(20_000_000))
        );
        assert_eq!(free.traffic, limited.traffic);
        assert!(!free.emulator_realtime && !limited.emulator_realtime);
    }

    /// Goodput of a path that delivers what is offered up to `knee`
    /// Mbit/s and less and less beyond it.
    fn path(knee: f64) -> impl FnMut(u64) -> Result<f64, ()> {
        move |rate| {
            let offered = rate as f64 / 1e6;
            Ok(if offered <= knee {
                offered
            } else {
                knee * (knee / offered).sqrt()
            })
        }
    }

    #[test]
    fn the_udp_peak_is_found_near_the_knee() {
        for knee in [700.0, 1_000.0, 1_600.0, 2_400.0, 3_900.0, 9_000.0] {
            let mut offered = Vec::new();
            let mut goodput = path(knee);
            let peak = udp_peak(|rate| {
                offered.push(rate);
                goodput(rate)
            })
            .unwrap();
            assert!(peak <= knee, "{peak} above the knee {knee}");
            assert!(
                peak >= 0.9 * knee,
                "{peak} for the knee {knee}, tried {offered:?}"
            );
            assert!(
                offered.len() <= 10,
                "{} loads for the knee {knee}",
                offered.len()
            );
        }
        // A path faster than any load tried: the search stops at the top.
        let peak = udp_peak(path(1e9)).unwrap();
        assert_eq!(peak, UDP_MAX_BPS as f64 / 1e6);
    }

    #[test]
    fn a_failed_load_ends_the_search() {
        let mut calls = 0;
        let result = udp_peak(|_| {
            calls += 1;
            if calls == 2 {
                Err("no goodput")
            } else {
                Ok(1e9)
            }
        });
        assert_eq!(result, Err("no goodput"));
        assert_eq!(calls, 2);
    }

    #[test]
    fn table_shows_the_ratio() {
        let c = Comparison {
            single_link_mbps: 100.0,
            circus_mbps: 85.0,
        };
        let text = render(&Throughput {
            udp: c,
            overload: vec![LoadPoint {
                factor: 3.0,
                offered_mbps: 255.0,
                goodput_mbps: 80.75,
            }],
            unimpaired: c,
            equal_links: c,
        });
        assert!(text.contains("85 %"), "{text}");
        // 3x the peak offered, 95 % of the peak carried.
        assert!(
            text.contains("3.00x            255.0             80.8      95 %"),
            "{text}"
        );
    }
}
