//! From the raw file to a checked [`Scenario`]: required keys, names, the
//! rules that tie keys together (events on defined links, within the run, in
//! order, not overlapping), and loading traces.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::command;
use super::error::{KeyPath, SourceMap};
use super::raw::{RawAction, RawEvent, RawLink, RawScenario, RawTrace, RawTraffic};
use super::{
    Action, Event, LinkParamsPatch, LinkSpec, MAX_LINKS, ProbeSpec, Scenario, ScenarioError,
    System, TcpSpec, Traffic,
};
use crate::emulator::model::{GilbertElliott, LinkParams, LinkTraces, Reorder, TraceFile};
use crate::emulator::trace::Trace;
use crate::systems::external::{ResolveError, resolve};

/// Policy names circus-core's scheduler accepts; checked here so a typo
/// fails when the scenario loads rather than when circus starts.
const POLICIES: [&str; 4] = ["balanced", "redundant", "adaptive", "round-robin"];

/// Most occurrences one event may expand to with `every`.
const MAX_REPETITIONS: u128 = 10_000;

pub(super) const NAME_FORM: &str = "a name of 1 to 32 letters, digits, '-' or '_'";

/// Whether `name` has [`NAME_FORM`]: safe as a file name and in reports.
pub(super) fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(super) fn scenario_from_toml(text: &str, file: &Path) -> Result<Scenario, ScenarioError> {
    let source = SourceMap::parse(file, text)?;
    let raw: RawScenario = toml::from_str(text).map_err(|e| source.serde_error(file, &e))?;
    Checker { file, source }.scenario(raw)
}

/// One start of an event (an event with `every` has several), with the
/// index of the `[[event]]` table it came from, for error messages.
struct Occurrence {
    source: usize,
    event: Event,
}

/// Validation state: where errors point to.
struct Checker<'a> {
    file: &'a Path,
    source: SourceMap<'a>,
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
        value.ok_or_else(|| {
            self.error(
                path,
                format!("expected {form}, found nothing (the key is required)"),
            )
        })
    }

    fn name(&self, name: Option<String>, path: &KeyPath) -> Result<String, ScenarioError> {
        let name = self.required(name, path, NAME_FORM)?;
        if !valid_name(&name) {
            return Err(self.error(path, format!("expected {NAME_FORM}, found {name:?}")));
        }
        Ok(name)
    }

    fn scenario(&self, mut raw: RawScenario) -> Result<Scenario, ScenarioError> {
        let name = self.name(raw.name, &KeyPath::of("name"))?;
        let duration_key = KeyPath::of("duration");
        let duration = self
            .required(
                raw.duration,
                &duration_key,
                "the run's duration such as \"60s\"",
            )?
            .0;
        if duration.is_zero() {
            return Err(self.error(
                &duration_key,
                "expected a duration above zero, found \"0s\"",
            ));
        }
        let seed = self.required(
            raw.seed,
            &KeyPath::of("seed"),
            "a whole number seed for the random decisions",
        )?;
        if let Some(policy) = &raw.policy
            && !POLICIES.contains(&policy.as_str())
        {
            return Err(self.error(
                &KeyPath::of("policy"),
                format!("expected one of {}, found {policy:?}", POLICIES.join(", ")),
            ));
        }
        let links = self.links(raw.link)?;
        let systems = self.systems(raw.systems, links.len())?;
        let events = self.events(raw.event, &links, duration)?;
        let commands = raw.traffic.as_mut().map_or(Ok(Vec::new()), |t| {
            let raw = std::mem::take(&mut t.command);
            command::check_commands(raw, duration, |path, problem| self.error(path, problem))
        })?;
        Ok(Scenario {
            name,
            file: self.file.to_owned(),
            duration,
            seed,
            backend: raw.backend.unwrap_or_default(),
            emulator_realtime: raw.emulator_realtime.unwrap_or(true),
            systems,
            policy: raw.policy,
            links,
            events,
            traffic: self.traffic(raw.traffic)?,
            commands,
        })
    }

    /// The `systems` list: built-in names, or system files checked for a
    /// scenario of `links` links (see [`resolve`]).
    fn systems(
        &self,
        systems: Option<Vec<String>>,
        links: usize,
    ) -> Result<Vec<System>, ScenarioError> {
        let key = KeyPath::of("systems");
        let form = "a list of systems to compare, such as [\"circus\", \"single-link\"]";
        let entries = self.required(systems, &key, form)?;
        if entries.is_empty() {
            return Err(self.error(&key, format!("expected {form}, found an empty list")));
        }
        let mut systems: Vec<System> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let system = self.system(entry, links, &key.index(index))?;
            if systems.iter().any(|known| known.name() == system.name()) {
                return Err(self.error(
                    &key.index(index),
                    format!(
                        "expected each system once, found \"{}\" again",
                        system.name()
                    ),
                ));
            }
            systems.push(system);
        }
        Ok(systems)
    }

    fn system(&self, entry: &str, links: usize, path: &KeyPath) -> Result<System, ScenarioError> {
        resolve(entry, self.file, links).map_err(|e| match e {
            ResolveError::Invalid(in_the_file) => in_the_file,
            other => self.error(path, other.to_string()),
        })
    }

    fn links(&self, raw_links: Vec<RawLink>) -> Result<Vec<LinkSpec>, ScenarioError> {
        let key = KeyPath::of("link");
        if raw_links.is_empty() {
            return Err(self.error(&key, "expected at least one [[link]] table, found none"));
        }
        if raw_links.len() > MAX_LINKS {
            return Err(self.error(
                &key.index(MAX_LINKS),
                format!(
                    "expected at most {MAX_LINKS} links, found {}",
                    raw_links.len()
                ),
            ));
        }
        let mut links: Vec<LinkSpec> = Vec::with_capacity(raw_links.len());
        for (index, mut raw) in raw_links.into_iter().enumerate() {
            let path = key.index(index);
            let name = self.name(raw.name.take(), &path.key("name"))?;
            if let Some(first) = links.iter().position(|link| link.name == name) {
                return Err(self.error(
                    &path.key("name"),
                    format!(
                        "expected a name no other link has, found {name:?} (also link[{first}])"
                    ),
                ));
            }
            let traces = match raw.trace.take() {
                Some(trace) => Some(self.traces(trace, &path.key("trace"))?),
                None => None,
            };
            let patch = self.patch(raw, &path)?;
            let mut params = patch.apply(&LinkParams::default());
            params.trace = traces;
            self.check_bottleneck(&params, &patch, &path)?;
            links.push(LinkSpec { name, params });
        }
        Ok(links)
    }

    /// The rules between rate, trace and queue, for a link or a `set` event.
    fn check_bottleneck(
        &self,
        params: &LinkParams,
        patch: &LinkParamsPatch,
        path: &KeyPath,
    ) -> Result<(), ScenarioError> {
        if params.trace.is_some() && patch.rate_bps.is_some() {
            return Err(self.error(
                &path.key("rate"),
                "expected no rate on a link driven by a trace (the trace sets its capacity)",
            ));
        }
        if patch.queue.is_some() && params.trace.is_none() && params.rate_bps.is_none() {
            return Err(self.error(
                &path.key("queue"),
                "expected a rate or a trace on a link with a queue (an unlimited link queues nothing)",
            ));
        }
        Ok(())
    }

    fn traces(&self, trace: RawTrace, path: &KeyPath) -> Result<LinkTraces, ScenarioError> {
        match trace {
            RawTrace::Both(file) => {
                let both = self.trace_file(&file, path)?;
                Ok(LinkTraces {
                    up: both.clone(),
                    down: both,
                })
            }
            RawTrace::Split { up, down } => Ok(LinkTraces {
                up: self.trace_file(&up, &path.key("up"))?,
                down: self.trace_file(&down, &path.key("down"))?,
            }),
        }
    }

    fn trace_file(&self, relative: &Path, path: &KeyPath) -> Result<TraceFile, ScenarioError> {
        let folder = self.file.parent().unwrap_or(Path::new(""));
        let resolved = folder.join(relative);
        let trace = Trace::load(&resolved).map_err(|e| {
            self.error(
                path,
                format!(
                    "expected a Mahimahi trace file, but {}: {e}",
                    resolved.display()
                ),
            )
        })?;
        Ok(TraceFile {
            path: resolved,
            trace: Arc::new(trace),
        })
    }

    /// The link parameters of a `[[link]]` or `set` table; `name` and `trace`
    /// must have been taken out.
    fn patch(&self, raw: RawLink, path: &KeyPath) -> Result<LinkParamsPatch, ScenarioError> {
        let burst_loss = match raw.burst_loss {
            Some(chain) => {
                if chain.to_good.0 == 0.0 {
                    return Err(self.error(
                        &path.key("burst_loss").key("to_good"),
                        "expected a chance above 0% (or bursts would never end), found \"0%\"",
                    ));
                }
                Some(GilbertElliott {
                    to_bad: chain.to_bad.0,
                    to_good: chain.to_good.0,
                    loss_in_good: chain.loss_in_good.map_or(0.0, |p| p.0),
                    loss_in_bad: chain.loss_in_bad.map_or(1.0, |p| p.0),
                })
            }
            None => None,
        };
        Ok(LinkParamsPatch {
            delay: raw.delay.map(|d| d.0),
            jitter: raw.jitter.map(|d| d.0),
            loss: raw.loss.map(|p| p.0),
            rate_bps: raw.rate.map(|r| r.0),
            queue: raw.queue.map(|q| q.0),
            burst_loss,
            duplicate: raw.duplicate.map(|p| p.0),
            reorder: raw.reorder.map(|r| Reorder {
                fraction: r.fraction.0,
                extra_delay: r.extra_delay.0,
            }),
        })
    }

    fn events(
        &self,
        raw_events: Vec<RawEvent>,
        links: &[LinkSpec],
        duration: Duration,
    ) -> Result<Vec<Event>, ScenarioError> {
        let mut occurrences: Vec<Occurrence> = Vec::with_capacity(raw_events.len());
        let mut previous_at = None;
        for (index, raw) in raw_events.into_iter().enumerate() {
            let path = KeyPath::of("event").index(index);
            let at_key = path.key("at");
            let form = "the event's time since the start such as \"10s\"";
            let at = self.required(raw.at, &at_key, form)?.0;
            if at >= duration {
                return Err(self.error(
                    &at_key,
                    format!(
                        "expected a time before the end of the run ({duration:?}), found {at:?}"
                    ),
                ));
            }
            if let Some(previous) = previous_at
                && at < previous
            {
                return Err(self.error(
                    &at_key,
                    format!(
                        "expected events in time order, found {at:?} after event[{}] at {previous:?}",
                        index - 1
                    ),
                ));
            }
            previous_at = Some(at);
            let link_key = path.key("link");
            let link = self.required(raw.link, &link_key, "the name of a link")?;
            let Some(link_index) = links.iter().position(|l| l.name == link) else {
                let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
                return Err(self.error(
                    &link_key,
                    format!(
                        "expected one of the links {}, found {link:?}",
                        names.join(", ")
                    ),
                ));
            };
            let action_form = "one of blackhole, down, up, set, address";
            let raw_action = self.required(raw.action, &path.key("action"), action_form)?;
            let action = self.action(raw_action, raw.set, &path)?;
            let lasting = raw.lasting.map(|d| d.0);
            if let Some(lasting) = lasting {
                self.check_window(&action, lasting, at, duration, &path.key("for"))?;
            }
            let every = raw.every.map(|d| d.0);
            let until = raw.until.map(|d| d.0);
            for start in self.repetitions(at, lasting, every, until, duration, &path)? {
                occurrences.push(Occurrence {
                    source: index,
                    event: Event {
                        at: start,
                        link: link.clone(),
                        link_index,
                        action: action.clone(),
                        duration: lasting,
                    },
                });
            }
        }
        // Stable: at equal times, file order stays.
        occurrences.sort_by_key(|occurrence| occurrence.event.at);
        self.check_links_over_time(&occurrences, links)?;
        Ok(occurrences
            .into_iter()
            .map(|occurrence| occurrence.event)
            .collect())
    }

    /// Start times of an event and its repetitions (`every`, until `until`
    /// or the end of the run). Repetitions that would not end by the end of
    /// the run are left out.
    fn repetitions(
        &self,
        at: Duration,
        lasting: Option<Duration>,
        every: Option<Duration>,
        until: Option<Duration>,
        duration: Duration,
        path: &KeyPath,
    ) -> Result<Vec<Duration>, ScenarioError> {
        let Some(every) = every else {
            if until.is_some() {
                return Err(self.error(
                    &path.key("until"),
                    "expected `until` only together with `every`",
                ));
            }
            return Ok(vec![at]);
        };
        let lasting = lasting.unwrap_or_default();
        if every <= lasting {
            return Err(self.error(
                &path.key("every"),
                format!(
                    "expected more than `for` ({lasting:?}) so repetitions do not overlap, found {every:?}"
                ),
            ));
        }
        let until = until.unwrap_or(duration);
        if until <= at || until > duration {
            return Err(self.error(
                &path.key("until"),
                format!(
                    "expected a time after `at` ({at:?}) and at most the end of the run ({duration:?}), found {until:?}"
                ),
            ));
        }
        let count = (until - at).as_nanos().div_ceil(every.as_nanos());
        if count > MAX_REPETITIONS {
            return Err(self.error(
                &path.key("every"),
                format!(
                    "expected at most {MAX_REPETITIONS} repetitions, found {count} ({every:?} from {at:?} until {until:?})"
                ),
            ));
        }
        let mut starts = Vec::with_capacity(count as usize);
        let mut start = at;
        while start < until && start + lasting <= duration {
            starts.push(start);
            start += every;
        }
        Ok(starts)
    }

    /// Walks the events in time order per link: none may start while an
    /// earlier one with `for` is still in effect, and each `set` must make
    /// sense for the parameters the link has at that moment.
    fn check_links_over_time(
        &self,
        occurrences: &[Occurrence],
        links: &[LinkSpec],
    ) -> Result<(), ScenarioError> {
        struct LinkState {
            params: LinkParams,
            /// The event in effect: its table index, start and end.
            window: Option<(usize, Duration, Duration)>,
            /// Parameters to restore when a `set` with `for` ends.
            restore: Option<LinkParams>,
        }
        let mut states: Vec<LinkState> = links
            .iter()
            .map(|link| LinkState {
                params: link.params.clone(),
                window: None,
                restore: None,
            })
            .collect();
        for Occurrence { source, event } in occurrences {
            let path = KeyPath::of("event").index(*source);
            let state = &mut states[event.link_index];
            if let Some((window_source, start, end)) = state.window
                && event.at < end
            {
                return Err(self.error(
                    &path.key("at"),
                    format!(
                        "expected no event on {} before {end:?}, when event[{window_source}] (from {start:?}) ends, found one at {:?}",
                        event.link, event.at
                    ),
                ));
            }
            if let Some(before) = state.restore.take() {
                state.params = before;
            }
            if let Action::Set(patch) = &event.action {
                let changed = patch.apply(&state.params);
                self.check_bottleneck(&changed, patch, &path.key("set"))?;
                let before = std::mem::replace(&mut state.params, changed);
                if event.duration.is_some() {
                    state.restore = Some(before);
                }
            }
            state.window = event
                .duration
                .map(|lasting| (*source, event.at, event.at + lasting));
        }
        Ok(())
    }

    /// Builds the action of an event from its `action` and `set` keys.
    fn action(
        &self,
        raw_action: RawAction,
        set: Option<RawLink>,
        path: &KeyPath,
    ) -> Result<Action, ScenarioError> {
        let set_key = path.key("set");
        let Some(mut set) = set else {
            return match raw_action {
                RawAction::Blackhole => Ok(Action::Blackhole),
                RawAction::Down => Ok(Action::Down),
                RawAction::Up => Ok(Action::Up),
                RawAction::Address => Ok(Action::ChangeAddress),
                RawAction::Set => Err(self.error(
                    &set_key,
                    "expected a table of parameters to change, such as set = { delay = \"200ms\" }, found nothing",
                )),
            };
        };
        if raw_action != RawAction::Set {
            return Err(self.error(&set_key, "expected no `set` table unless action = \"set\""));
        }
        if set.name.take().is_some() {
            return Err(self.error(
                &set_key.key("name"),
                "expected link parameters only: a link keeps its name",
            ));
        }
        if set.trace.take().is_some() {
            return Err(self.error(
                &set_key.key("trace"),
                "expected link parameters only: an event cannot change a trace",
            ));
        }
        let patch = self.patch(set, &set_key)?;
        if patch.is_empty() {
            return Err(self.error(
                &set_key,
                "expected at least one parameter to change, found an empty table",
            ));
        }
        Ok(Action::Set(patch))
    }

    fn check_window(
        &self,
        action: &Action,
        lasting: Duration,
        at: Duration,
        duration: Duration,
        key: &KeyPath,
    ) -> Result<(), ScenarioError> {
        if matches!(action, Action::Up | Action::ChangeAddress) {
            return Err(self.error(
                key,
                format!(
                    "expected no `for` with action = \"{}\" (only blackhole, down and set last)",
                    action.name()
                ),
            ));
        }
        if lasting.is_zero() {
            return Err(self.error(key, "expected a duration above zero, found \"0s\""));
        }
        if at + lasting > duration {
            return Err(self.error(
                key,
                format!(
                    "expected at most {:?} so the event ends by the end of the run ({duration:?}), found {lasting:?}",
                    duration - at
                ),
            ));
        }
        Ok(())
    }

    fn traffic(&self, traffic: Option<RawTraffic>) -> Result<Traffic, ScenarioError> {
        let Some(traffic) = traffic else {
            return Ok(Traffic {
                probe: ProbeSpec::DEFAULT,
                tcp: TcpSpec::default(),
            });
        };
        let probe_key = KeyPath::of("traffic").key("probe");
        let probe = traffic.probe.map_or(Ok(ProbeSpec::DEFAULT), |raw| {
            let size = raw.size.unwrap_or(ProbeSpec::DEFAULT.size);
            if !(ProbeSpec::MIN_SIZE..=ProbeSpec::MAX_SIZE).contains(&size) {
                return Err(self.error(
                    &probe_key.key("size"),
                    format!(
                        "expected a UDP payload size from {} to {} bytes, found {size}",
                        ProbeSpec::MIN_SIZE,
                        ProbeSpec::MAX_SIZE
                    ),
                ));
            }
            Ok(ProbeSpec {
                rate_pps: raw.rate.map_or(ProbeSpec::DEFAULT.rate_pps, |r| r.0),
                size,
                direction: raw.direction.unwrap_or_default(),
            })
        })?;
        let tcp = traffic.tcp.map_or(TcpSpec::default(), |raw| TcpSpec {
            flows: raw.flows,
            direction: raw.direction.unwrap_or_default(),
        });
        if tcp.flows > TcpSpec::MAX_FLOWS {
            return Err(self.error(
                &KeyPath::of("traffic").key("tcp").key("flows"),
                format!(
                    "expected at most {} flows, found {}",
                    TcpSpec::MAX_FLOWS,
                    tcp.flows
                ),
            ));
        }
        Ok(Traffic { probe, tcp })
    }
}
