//! `circus-lab bench --throughput`: what the tunnel costs and what bonding
//! gains, measured in the same run so the shared machine's load cancels out.
//!
//! - Overhead: bulk TCP over one unimpaired link without a tunnel, against
//!   circus over two unimpaired links. Both are CPU-bound here, so the ratio
//!   is the tunnel's efficiency (encryption, scheduling, reordering).
//! - Bonding: two equal rate-limited links; one link without a tunnel
//!   against circus over both.

use std::path::Path;

use indicatif::ProgressBar;

use crate::runner::{self, RunError};
use crate::scenario::{Scenario, ScenarioError, SystemKind};

/// Why the throughput comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum ThroughputError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Run(#[from] Box<RunError>),
    #[error("{system} measured no TCP goodput on {scenario}")]
    NoGoodput {
        system: &'static str,
        scenario: String,
    },
}

/// Goodput of the two systems on one scenario.
#[derive(Clone, Copy, Debug, PartialEq)]
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

/// Both comparisons.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Throughput {
    pub unimpaired: Comparison,
    pub equal_links: Comparison,
}

fn scenario(name: &str, rate: Option<&str>) -> Result<Scenario, ScenarioError> {
    let rate = rate
        .map(|r| format!("rate = \"{r}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "name = \"{name}\"\nduration = \"6s\"\nseed = 1\nsystems = [\"single-link\", \"circus\"]\n\
         [[link]]\nname = \"a\"\ndelay = \"5ms\"\n{rate}\
         [[link]]\nname = \"b\"\ndelay = \"5ms\"\n{rate}\
         [traffic]\nprobe = {{ rate = \"10pps\", size = 64 }}\ntcp = {{ flows = 4 }}\n"
    );
    Scenario::from_toml(&text, Path::new("<throughput bench>"))
}

fn compare(scenario: &Scenario, progress: &ProgressBar) -> Result<Comparison, ThroughputError> {
    let runs = runner::run_systems(scenario, &scenario.systems, progress).map_err(Box::new)?;
    let goodput = |system: SystemKind| {
        runs.get(system.as_str())
            .and_then(|r| r.metrics.tcp_goodput_mbps)
            .filter(|g| *g > 0.0)
            .ok_or(ThroughputError::NoGoodput {
                system: system.as_str(),
                scenario: scenario.name.clone(),
            })
    };
    Ok(Comparison {
        single_link_mbps: goodput(SystemKind::SingleLink)?,
        circus_mbps: goodput(SystemKind::Circus)?,
    })
}

/// Runs both comparisons in real namespaces (about 40 s).
pub fn measure(progress: &ProgressBar) -> Result<Throughput, ThroughputError> {
    Ok(Throughput {
        unimpaired: compare(&scenario("throughput-unimpaired", None)?, progress)?,
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
    format!(
        "{:<34} {:>10} {:>10} {:>9}\n{}{}",
        "TCP goodput, Mbit/s",
        "one link",
        "circus",
        "ratio",
        row("unimpaired links (tunnel cost)", &t.unimpaired),
        row("two equal 20 Mbit/s links (bonding)", &t.equal_links),
    )
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
    }

    #[test]
    fn table_shows_the_ratio() {
        let c = Comparison {
            single_link_mbps: 100.0,
            circus_mbps: 85.0,
        };
        let text = render(&Throughput {
            unimpaired: c,
            equal_links: c,
        });
        assert!(text.contains("85 %"), "{text}");
    }
}
