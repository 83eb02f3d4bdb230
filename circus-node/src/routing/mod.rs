//! The client's routes into its TUN device, set up the way wg-quick does
//! (policy routing: a table and two rules of the daemon's own, see
//! [`plan`]), kept while the daemon runs, and removed at exit.
//!
//! The link sockets carry the table number as their firewall mark
//! (`SO_MARK`), so the rule that sends everything else to the table lets
//! their own datagrams through to the main table and out on the links.
//! Their `SO_BINDTODEVICE` would already keep them on the links (a
//! device-bound lookup skips routes through other devices and, when
//! nothing is left, takes the destination as on the link: tried here for
//! both families, with and without the kill switch's unreachable routes),
//! but that is a detail of each family's lookup; the mark keeps them out
//! by the rule itself, which is what wg-quick relies on.
//!
//! The kernel drops the device routes whenever the TUN device goes down or
//! away; [`Routes::follow`] puts them back when it is up again. After a
//! SIGKILL nothing runs at exit, so [`Routes::install`] first clears what
//! an earlier run left (recognised by the daemon's protocol number).
//!
//! With `kill_switch = true`, the table also holds an unreachable route
//! behind each device route, and the rules and those routes stay after the
//! daemon exits: traffic to the routed prefixes then fails at once instead
//! of leaving on the uplinks, until the daemon is back or the user lifts it
//! with `circus-node client -c FILE --down` (as Mullvad's "lockdown mode"
//! holds until it is turned off, not merely until the app quits; a kill
//! switch that opened whenever the daemon crashed would not be one).

pub mod kernel;
pub mod plan;

pub use kernel::{Kernel, RoutingError};
pub use plan::Plan;

use crate::config::RoutingConfig;
use crate::hotplug::InterfaceWatcher;

/// The daemon's routes for one TUN device.
#[derive(Clone)]
pub struct Routes {
    kernel: Kernel,
    plan: Plan,
    tun: String,
}

impl Routes {
    /// Installs `config`'s routes into the TUN device `tun`, after clearing
    /// what an earlier run left; `None` when there are none to install.
    pub async fn install(
        config: &RoutingConfig,
        tun: &str,
    ) -> Result<Option<Routes>, RoutingError> {
        let plan = Plan::new(config);
        if plan.rules.is_empty() {
            return Ok(None);
        }
        let routes = Routes {
            kernel: Kernel::connect()?,
            plan,
            tun: tun.to_owned(),
        };
        let index = routes.kernel.running_index(tun).await;
        routes.kernel.sync(&routes.plan, index).await?;
        tracing::info!(
            table = routes.plan.table,
            routes = routes.plan.routes.len(),
            kill_switch = routes.plan.kill_switch,
            "routes installed"
        );
        Ok(Some(routes))
    }

    /// Runs until cancelled: when the TUN device comes back up (or under a
    /// new index) after the kernel dropped its routes, installs them again.
    pub async fn follow(self) {
        let mut watcher = InterfaceWatcher::new();
        let mut seen = self.kernel.running_index(&self.tun).await;
        loop {
            watcher.changed().await;
            let now = self.kernel.running_index(&self.tun).await;
            if now == seen {
                continue;
            }
            if now.is_none() {
                // Down or gone: the kernel took the device routes with it.
                seen = now;
                continue;
            }
            match self.kernel.sync(&self.plan, now).await {
                Ok(()) => {
                    seen = now;
                    tracing::info!(tun = %self.tun, "TUN device back: routes reinstalled");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reinstall the routes; retrying at the next interface change")
                }
            }
        }
    }

    /// Removes what the daemon added, except what the kill switch leaves.
    pub async fn remove(&self) -> Result<(), RoutingError> {
        let left = self.plan.left_on_exit();
        self.kernel.sync(&left, None).await?;
        if left.rules.is_empty() {
            tracing::info!("routes removed");
        } else {
            tracing::warn!(
                "kill switch on: traffic to the routed prefixes is dropped until the daemon runs again or `circus-node client -c FILE --down`"
            );
        }
        Ok(())
    }

    /// The firewall mark for the link sockets, if there are routes.
    pub fn link_mark(config: &RoutingConfig) -> Option<u32> {
        Plan::new(config).link_mark()
    }
}

/// Removes every rule and route a daemon with `config` may have left,
/// kill switch included (`circus-node client --down`).
pub async fn down(config: &RoutingConfig) -> Result<(), RoutingError> {
    let nothing = Plan::new(&RoutingConfig {
        routes: Vec::new(),
        ..config.clone()
    });
    Kernel::connect()?.sync(&nothing, None).await
}
