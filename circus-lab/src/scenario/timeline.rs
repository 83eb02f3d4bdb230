//! Events expanded into the changes a link emulator applies, in time order.
//!
//! An event with `for` becomes two steps: the change, and the restore at its
//! end (back up, or back to the parameters from before a `set`). The real
//! forwarder and the simulator both replay this list, so they agree on what
//! each event means.

use std::time::Duration;

use serde::Serialize;

use super::{Action, Scenario};
use crate::emulator::model::{LinkCondition, LinkParams};

/// One change to one link at one time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimelineStep {
    pub at: Duration,
    pub link_index: usize,
    pub change: LinkChange,
    /// The event (index in [`Scenario::events`]) this step starts or ends.
    pub event_index: usize,
}

/// What a step does; parameters are the link's complete new parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum LinkChange {
    /// `LinkModel::set_condition`. `Down` also takes the interface's carrier
    /// down, and the next `Up` brings it back.
    Condition(LinkCondition),
    /// `LinkModel::set_params`, on both directions.
    Params(Box<LinkParams>),
    /// Give the client a new address on the link (roaming).
    ChangeAddress,
}

impl Scenario {
    /// Every link change of the run, ordered by time; steps at the same time
    /// keep the order of their events, and an ending comes before a start.
    pub fn timeline(&self) -> Vec<TimelineStep> {
        let mut params: Vec<LinkParams> = self.links.iter().map(|l| l.params.clone()).collect();
        let mut steps = Vec::with_capacity(self.events.len() * 2);
        for (event_index, event) in self.events.iter().enumerate() {
            let link_index = event.link_index;
            let step = |at, change| TimelineStep {
                at,
                link_index,
                change,
                event_index,
            };
            let before = params[link_index].clone();
            let change = match &event.action {
                Action::Blackhole => LinkChange::Condition(LinkCondition::Blackhole),
                Action::Down => LinkChange::Condition(LinkCondition::Down),
                Action::Up => LinkChange::Condition(LinkCondition::Up),
                Action::ChangeAddress => LinkChange::ChangeAddress,
                Action::Set(patch) => {
                    params[link_index] = patch.apply(&before);
                    LinkChange::Params(Box::new(params[link_index].clone()))
                }
            };
            steps.push(step(event.at, change));
            // Validation allows `for` only on blackhole, down and set, and no
            // other event on this link before it ends.
            if let Some(lasting) = event.duration {
                let restore = if matches!(event.action, Action::Set(_)) {
                    params[link_index] = before.clone();
                    LinkChange::Params(Box::new(before))
                } else {
                    LinkChange::Condition(LinkCondition::Up)
                };
                steps.push(step(event.at + lasting, restore));
            }
        }
        // Stable: events come in time order, so an ending is listed before any
        // event starting at the same moment.
        steps.sort_by_key(|step| step.at);
        steps
    }
}
