//! The regression baseline (`reports/baseline.json`): the figures a suite run
//! is compared with, and how far each may move before it counts as a
//! regression.
//!
//! Tolerances live in the file beside the figures, so whoever updates the
//! baseline sees (and can argue about) the margin in the same diff. Each
//! figure has a direction: delivery and goodput must not fall, outage and
//! latency must not rise. A tolerance is absolute plus relative, because a
//! 2 ms outage that becomes 4 ms is noise while 40 ms becoming 80 ms is not.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The figures of one system on one scenario that the bench watches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub delivery_ratio: f64,
    pub max_outage_ms: f64,
    /// What one connection sees (see `SystemMetrics::max_flow_outage_ms`):
    /// the stream-wide outage hides a stall of a few flows.
    pub max_flow_outage_ms: f64,
    pub latency_p99_ms: f64,
    pub tcp_goodput_mbps: f64,
    /// TCP goodput as a share of the best link alone in the same run
    /// (`best_link_tcp_mbps`): bonding that falls below it has failed,
    /// whatever its absolute goodput. 0 where not measured.
    #[serde(default)]
    pub tcp_to_best_link: f64,
}

/// Which way a figure is allowed to move freely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// How far one figure may move in its bad direction: `absolute + relative x
/// baseline`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    pub absolute: f64,
    pub relative: f64,
}

impl Tolerance {
    fn allowed(&self, baseline: f64) -> f64 {
        self.absolute + self.relative * baseline.abs()
    }
}

/// Tolerances per figure.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tolerances {
    pub delivery_ratio: Tolerance,
    pub max_outage_ms: Tolerance,
    pub max_flow_outage_ms: Tolerance,
    pub latency_p99_ms: Tolerance,
    pub tcp_goodput_mbps: Tolerance,
    #[serde(default = "Tolerances::ratio_default")]
    pub tcp_to_best_link: Tolerance,
}

impl Tolerances {
    /// A ratio to the best link measured in the same run cancels most of the
    /// host's noise (both saw the same machine), so it may move less than
    /// goodput itself: a tenth of the link plus a fifth of the ratio.
    fn ratio_default() -> Tolerance {
        Tolerance {
            absolute: 0.1,
            relative: 0.2,
        }
    }

    /// For simulated entries: the simulator is deterministic, so any change
    /// is a change of circus itself; the margins only absorb float noise.
    pub fn exact() -> Self {
        let tight = Tolerance {
            absolute: 1e-6,
            relative: 0.0,
        };
        Tolerances {
            delivery_ratio: tight,
            max_outage_ms: tight,
            max_flow_outage_ms: tight,
            latency_p99_ms: tight,
            tcp_goodput_mbps: tight,
            tcp_to_best_link: tight,
        }
    }

    /// For real-namespace entries on a shared 2-core machine, where a
    /// scheduling hiccup moves p99 latency by tens of ms, an outage by tens
    /// of ms and goodput by a third, and a blackhole may cost a few more
    /// probes: wide enough not to fail CI on noise, narrow enough to catch
    /// a broken failover (an outage that doubles, a link that stops carrying).
    pub fn noisy() -> Self {
        let outage = Tolerance {
            absolute: 50.0,
            relative: 1.0,
        };
        Tolerances {
            delivery_ratio: Tolerance {
                absolute: 0.01,
                relative: 0.0,
            },
            max_outage_ms: outage,
            max_flow_outage_ms: outage,
            latency_p99_ms: Tolerance {
                absolute: 20.0,
                relative: 0.5,
            },
            tcp_goodput_mbps: Tolerance {
                absolute: 2.0,
                relative: 0.4,
            },
            tcp_to_best_link: Tolerances::ratio_default(),
        }
    }
}

/// The baseline file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// What the tolerances are for, for the person reading the file.
    #[serde(default)]
    pub note: String,
    /// Tolerances by mode: the first part of an entry key ("sim", "real").
    pub tolerances: BTreeMap<String, Tolerances>,
    /// Figures by entry key `<mode>/<scenario>/<system>` (the upload
    /// direction) and `<mode>/<scenario>/<system>/down` (the download).
    pub entries: BTreeMap<String, Figures>,
}

/// Why the baseline could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error(
        "{file}: {source} (expected the baseline shape: {{\"tolerances\": ..., \"entries\": {{...}}}}; `circus-lab bench --update` writes one)"
    )]
    Parse {
        file: String,
        source: serde_json::Error,
    },
    #[error("{file}: cannot write: {source}")]
    Write {
        file: String,
        source: std::io::Error,
    },
}

impl Default for Baseline {
    fn default() -> Self {
        Baseline {
            note: "Figures of `circus-lab bench`, rewritten by `circus-lab bench --update`. \
                   A figure regresses when it moves the bad way by more than \
                   absolute + relative x baseline of its mode's tolerance."
                .to_string(),
            tolerances: [
                ("real".to_string(), Tolerances::noisy()),
                ("sim".to_string(), Tolerances::exact()),
            ]
            .into_iter()
            .collect(),
            entries: BTreeMap::new(),
        }
    }
}

impl Baseline {
    /// Reads a baseline file.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            file: file.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| BaselineError::Parse { file, source })
    }

    /// Writes the baseline as pretty JSON with sorted keys, so updates diff well.
    pub fn save(&self, path: &Path) -> Result<(), BaselineError> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| BaselineError::Parse {
                file: path.display().to_string(),
                source,
            })?;
        text.push('\n');
        std::fs::write(path, text).map_err(|source| BaselineError::Write {
            file: path.display().to_string(),
            source,
        })
    }

    /// Puts this run's figures in place of the entries of the modes it ran
    /// (key prefix "sim", "real"), keeping the other modes' entries: an update
    /// with `--sim-only` must not throw away the real-namespace figures.
    pub fn replace_modes(&mut self, modes: &[&str], entries: Vec<(String, Figures)>) {
        self.entries.retain(|key, _| !modes.contains(&mode_of(key)));
        self.entries.extend(entries);
    }

    /// Compares one entry's current figures with the baseline.
    pub fn compare(&self, key: &str, current: &Figures) -> Comparison {
        let Some(base) = self.entries.get(key) else {
            return Comparison {
                key: key.to_string(),
                current: *current,
                baseline: None,
                regressions: Vec::new(),
            };
        };
        let t = self
            .tolerances
            .get(mode_of(key))
            .copied()
            .unwrap_or_else(Tolerances::noisy);
        let checks = [
            (
                "delivery_ratio",
                Better::Higher,
                base.delivery_ratio,
                current.delivery_ratio,
                t.delivery_ratio,
            ),
            (
                "max_outage_ms",
                Better::Lower,
                base.max_outage_ms,
                current.max_outage_ms,
                t.max_outage_ms,
            ),
            (
                "max_flow_outage_ms",
                Better::Lower,
                base.max_flow_outage_ms,
                current.max_flow_outage_ms,
                t.max_flow_outage_ms,
            ),
            (
                "latency_p99_ms",
                Better::Lower,
                base.latency_p99_ms,
                current.latency_p99_ms,
                t.latency_p99_ms,
            ),
            (
                "tcp_goodput_mbps",
                Better::Higher,
                base.tcp_goodput_mbps,
                current.tcp_goodput_mbps,
                t.tcp_goodput_mbps,
            ),
            (
                "tcp_to_best_link",
                Better::Higher,
                base.tcp_to_best_link,
                current.tcp_to_best_link,
                t.tcp_to_best_link,
            ),
        ];
        let regressions = checks
            .into_iter()
            .filter_map(|(figure, better, was, now, tolerance)| {
                let worse_by = match better {
                    Better::Higher => was - now,
                    Better::Lower => now - was,
                };
                (worse_by > tolerance.allowed(was)).then_some(Regression {
                    figure,
                    baseline: was,
                    current: now,
                    allowed: tolerance.allowed(was),
                })
            })
            .collect();
        Comparison {
            key: key.to_string(),
            current: *current,
            baseline: Some(*base),
            regressions,
        }
    }
}

/// The mode of an entry key `<mode>/<scenario>/<system>[/down]`: "sim" or
/// "real".
fn mode_of(key: &str) -> &str {
    key.split('/').next().unwrap_or_default()
}

/// One figure that moved beyond its tolerance.
#[derive(Clone, Debug, PartialEq)]
pub struct Regression {
    pub figure: &'static str,
    pub baseline: f64,
    pub current: f64,
    pub allowed: f64,
}

impl fmt::Display for Regression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:.4} -> {:.4} (allowed change {:.4})",
            self.figure, self.baseline, self.current, self.allowed
        )
    }
}

/// The result of comparing one entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub key: String,
    pub current: Figures,
    /// `None` when the baseline has no such entry (new scenario or system).
    pub baseline: Option<Figures>,
    pub regressions: Vec<Regression>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(delivery: f64, outage: f64, p99: f64, goodput: f64) -> Figures {
        Figures {
            delivery_ratio: delivery,
            max_outage_ms: outage,
            max_flow_outage_ms: outage + 10.0,
            latency_p99_ms: p99,
            tcp_goodput_mbps: goodput,
            tcp_to_best_link: goodput / 20.0,
        }
    }

    #[test]
    fn an_update_replaces_only_the_modes_that_ran() {
        let mut b = baseline_with("real/flappy/circus", figures(0.99, 30.0, 60.0, 20.0));
        b.entries
            .insert("sim/gone/circus".into(), figures(1.0, 1.0, 1.0, 0.0));
        b.entries
            .insert("sim/flappy/circus".into(), figures(1.0, 1.0, 1.0, 0.0));
        let fresh = figures(0.98, 2.0, 3.0, 0.0);
        b.replace_modes(&["sim"], vec![("sim/flappy/circus".into(), fresh)]);
        assert_eq!(
            b.entries.keys().collect::<Vec<_>>(),
            ["real/flappy/circus", "sim/flappy/circus"]
        );
        assert_eq!(b.entries["sim/flappy/circus"], fresh);
        assert_eq!(
            b.entries["real/flappy/circus"],
            figures(0.99, 30.0, 60.0, 20.0)
        );
    }

    #[test]
    fn sim_entries_are_held_exactly() {
        let mut b = baseline_with("sim/k", figures(0.999, 40.0, 60.0, 0.0));
        b.tolerances.insert("sim".into(), Tolerances::exact());
        let moved = figures(0.999, 41.0, 60.0, 0.0);
        assert_eq!(
            regressed(&b, "sim/k", &moved),
            ["max_outage_ms", "max_flow_outage_ms"]
        );
        let one_flow_stalls = Figures {
            max_flow_outage_ms: 81.0,
            ..figures(0.999, 40.0, 60.0, 0.0)
        };
        assert_eq!(
            regressed(&b, "sim/k", &one_flow_stalls),
            ["max_flow_outage_ms"]
        );
    }

    /// The figures of `current` that `b` flags for `key`, in check order.
    fn regressed(b: &Baseline, key: &str, current: &Figures) -> Vec<&'static str> {
        b.compare(key, current)
            .regressions
            .iter()
            .map(|r| r.figure)
            .collect()
    }

    fn baseline_with(key: &str, f: Figures) -> Baseline {
        Baseline {
            entries: [(key.to_string(), f)].into_iter().collect(),
            ..Baseline::default()
        }
    }

    #[test]
    fn equal_figures_do_not_regress() {
        let f = figures(0.999, 40.0, 60.0, 17.0);
        let b = baseline_with("sim/flappy/circus", f);
        assert!(b.compare("sim/flappy/circus", &f).regressions.is_empty());
    }

    #[test]
    fn improvements_never_count_as_regressions() {
        let b = baseline_with("k", figures(0.99, 400.0, 600.0, 10.0));
        let better = figures(1.0, 1.0, 1.0, 100.0);
        assert!(b.compare("k", &better).regressions.is_empty());
    }

    #[test]
    fn each_figure_is_named_when_it_gets_worse_beyond_tolerance() {
        let b = baseline_with("k", figures(0.999, 40.0, 60.0, 17.0));
        let worse = figures(0.98, 200.0, 200.0, 5.0);
        assert_eq!(
            regressed(&b, "k", &worse),
            [
                "delivery_ratio",
                "max_outage_ms",
                "max_flow_outage_ms",
                "latency_p99_ms",
                "tcp_goodput_mbps",
                "tcp_to_best_link"
            ]
        );
    }

    #[test]
    fn small_moves_within_tolerance_pass() {
        let b = baseline_with("k", figures(0.999, 40.0, 60.0, 17.0));
        // outage may grow by 50 + 1.0 x 40 = 90 ms; 120 ms is within (and
        // the flow outage, 50 -> 130 ms, by 50 + 50 = 100 ms).
        let noisy = figures(0.995, 120.0, 80.0, 12.0);
        assert!(b.compare("k", &noisy).regressions.is_empty());
    }

    #[test]
    fn unknown_entry_is_reported_without_baseline() {
        let b = Baseline::default();
        let c = b.compare("sim/new/circus", &Figures::default());
        assert_eq!(c.baseline, None);
        assert!(c.regressions.is_empty());
    }

    #[test]
    fn saved_baseline_loads_back_identically() {
        let dir = std::env::temp_dir().join(format!("circus-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("baseline.json");
        let b = baseline_with("sim/flappy/circus", figures(0.9996, 41.0, 70.5, 17.3));
        b.save(&path).unwrap();
        assert_eq!(Baseline::load(&path).unwrap(), b);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_baseline_error_names_the_file() {
        let dir = std::env::temp_dir().join(format!("circus-baseline-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("baseline.json");
        std::fs::write(&path, "{\"entries\": 3}").unwrap();
        let err = Baseline::load(&path).unwrap_err().to_string();
        assert!(err.contains("baseline.json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
