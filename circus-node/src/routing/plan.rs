//! Which rules and routes the client installs, and which of those found in
//! the kernel are its own: pure, so it is tested without privileges.
//!
//! The layout is wg-quick's for a full tunnel:
//!
//! ```text
//! 31820: from all lookup main suppress_prefixlength 0
//! 31821: not from all fwmark 0xca6c lookup 51820
//! table 51820: 0.0.0.0/0 dev circus0 metric 1024 (each configured prefix)
//!              unreachable 0.0.0.0/0 metric max (kill switch only)
//! ```
//!
//! The first rule keeps every route of the main table except its default
//! routes (the LAN, the tunnel subnet, routes the user added), as wg-quick
//! does; the second sends everything else not sent by the daemon's own link
//! sockets (which carry the mark, see [`crate::link_socket`]) to the
//! daemon's table. Fixed priorities just below the main table's (32766)
//! leave the user's own rules (usually numbered lower) in charge.

use crate::config::RoutingConfig;
use circus_core::engine::IpPrefix;

/// Priority of the rule that consults the main table without its default
/// routes; the rule to the daemon's table comes right after it.
pub const SUPPRESS_PRIORITY: u32 = 31820;
pub const TABLE_PRIORITY: u32 = SUPPRESS_PRIORITY + 1;

/// `rtm_protocol` (and `FRA_PROTOCOL`) of everything the daemon adds, so a
/// later run recognises what an earlier, killed one left behind. 109 is
/// named by neither the kernel's `rtnetlink.h` nor iproute2's `rt_protos`
/// (which routing daemons use: bird 12, openr 99, bgp 186, ...).
pub const OWN_PROTOCOL: u8 = 109;

/// Metric of the device routes: IPv6 turns 0 into this (its default for
/// routes added by users), so both families use it and read back as
/// planned.
pub const TUN_METRIC: u32 = 1024;

/// Metric of the kill switch's unreachable routes: the largest, so the
/// device routes of the same prefixes win while the TUN device exists.
pub const KILL_SWITCH_METRIC: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(prefix: &IpPrefix) -> Family {
        if prefix.addr().is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// `lookup main suppress_prefixlength 0`.
    MainWithoutDefault,
    /// `not fwmark <mark> lookup <table>`.
    UnmarkedToTable { mark: u32, table: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub family: Family,
    pub priority: u32,
    pub action: RuleAction,
}

/// Where a route sends its packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Into the TUN device.
    Tun,
    /// Nowhere: the sender gets "network unreachable" at once.
    Unreachable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpPrefix,
    pub table: u32,
    pub target: Target,
    pub metric: u32,
}

/// Everything the daemon installs for one [`RoutingConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub table: u32,
    pub kill_switch: bool,
    pub rules: Vec<Rule>,
    pub routes: Vec<Route>,
}

impl Plan {
    /// The rules for each family that has a route, the device route of each
    /// prefix and, with the kill switch, an unreachable route behind each.
    pub fn new(config: &RoutingConfig) -> Plan {
        let mut families: Vec<Family> = config.routes.iter().map(Family::of).collect();
        families.sort_by_key(|f| *f == Family::V6);
        families.dedup();
        let rules = families
            .iter()
            .flat_map(|&family| {
                [
                    Rule {
                        family,
                        priority: SUPPRESS_PRIORITY,
                        action: RuleAction::MainWithoutDefault,
                    },
                    Rule {
                        family,
                        priority: TABLE_PRIORITY,
                        action: RuleAction::UnmarkedToTable {
                            mark: config.table,
                            table: config.table,
                        },
                    },
                ]
            })
            .collect();
        let route = |prefix: IpPrefix, target, metric| Route {
            prefix,
            table: config.table,
            target,
            metric,
        };
        let mut routes: Vec<Route> = config
            .routes
            .iter()
            .map(|&p| route(p, Target::Tun, TUN_METRIC))
            .collect();
        if config.kill_switch {
            routes.extend(
                config
                    .routes
                    .iter()
                    .map(|&p| route(p, Target::Unreachable, KILL_SWITCH_METRIC)),
            );
        }
        Plan {
            table: config.table,
            kill_switch: config.kill_switch,
            rules,
            routes,
        }
    }

    /// The firewall mark the link sockets carry so the rules let them
    /// through to the main table; `None` when there are no routes.
    pub fn link_mark(&self) -> Option<u32> {
        (!self.rules.is_empty()).then_some(self.table)
    }

    /// What stays installed after a clean exit: with the kill switch, the
    /// rules and the unreachable routes (so traffic is dropped, not leaked,
    /// until the daemon is back or the user runs `--down`); else nothing.
    /// The device routes go with the TUN device in any case.
    pub fn left_on_exit(&self) -> Plan {
        if !self.kill_switch {
            return Plan {
                rules: Vec::new(),
                routes: Vec::new(),
                ..self.clone()
            };
        }
        Plan {
            routes: self
                .routes
                .iter()
                .filter(|r| r.target == Target::Unreachable)
                .copied()
                .collect(),
            ..self.clone()
        }
    }

    /// Whether a rule found in the kernel with [`OWN_PROTOCOL`] was put
    /// there by a daemon with this table: one of this plan's rules, or the
    /// same rules of a family this plan no longer routes.
    pub fn owns_rule(&self, rule: &Rule) -> bool {
        match rule.action {
            RuleAction::MainWithoutDefault => rule.priority == SUPPRESS_PRIORITY,
            RuleAction::UnmarkedToTable { table, .. } => table == self.table,
        }
    }

    /// Whether a route found in the kernel is this daemon's: in its table
    /// and added with [`OWN_PROTOCOL`] (the table is the daemon's to manage,
    /// but a route the user put there by hand is left alone).
    pub fn owns_route(&self, table: u32, protocol: u8) -> bool {
        table == self.table && protocol == OWN_PROTOCOL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(routes: &[&str], kill_switch: bool) -> RoutingConfig {
        RoutingConfig {
            routes: routes.iter().map(|r| r.parse().unwrap()).collect(),
            kill_switch,
            ..RoutingConfig::default()
        }
    }

    fn unmarked(family: Family) -> Rule {
        Rule {
            family,
            priority: TABLE_PRIORITY,
            action: RuleAction::UnmarkedToTable {
                mark: 51820,
                table: 51820,
            },
        }
    }

    fn suppress(family: Family) -> Rule {
        Rule {
            family,
            priority: SUPPRESS_PRIORITY,
            action: RuleAction::MainWithoutDefault,
        }
    }

    #[test]
    fn no_routes_touch_nothing() {
        let plan = Plan::new(&config(&[], false));
        assert!(plan.rules.is_empty() && plan.routes.is_empty());
        assert_eq!(plan.link_mark(), None);
    }

    #[test]
    fn a_full_tunnel_gets_wg_quicks_rules_per_family() {
        let plan = Plan::new(&config(&["::/0", "0.0.0.0/0"], false));
        assert_eq!(
            plan.rules,
            [
                suppress(Family::V4),
                unmarked(Family::V4),
                suppress(Family::V6),
                unmarked(Family::V6)
            ]
        );
        let routes: Vec<(String, Target, u32, u32)> = plan
            .routes
            .iter()
            .map(|r| (r.prefix.to_string(), r.target, r.table, r.metric))
            .collect();
        assert_eq!(
            routes,
            [
                ("::/0".to_owned(), Target::Tun, 51820, TUN_METRIC),
                ("0.0.0.0/0".to_owned(), Target::Tun, 51820, TUN_METRIC),
            ]
        );
        assert_eq!(plan.link_mark(), Some(51820));
        assert!(plan.left_on_exit().rules.is_empty());
        assert!(plan.left_on_exit().routes.is_empty());
    }

    #[test]
    fn one_family_gets_only_its_rules_in_the_configured_table() {
        let plan = Plan::new(&RoutingConfig {
            table: 7,
            ..config(&["10.0.0.0/8", "192.0.2.0/24"], false)
        });
        let families: Vec<Family> = plan.rules.iter().map(|r| r.family).collect();
        assert_eq!(families, [Family::V4, Family::V4]);
        assert_eq!(
            plan.rules[1].action,
            RuleAction::UnmarkedToTable { mark: 7, table: 7 }
        );
        assert!(plan.routes.iter().all(|r| r.table == 7));
        assert_eq!(plan.link_mark(), Some(7));
    }

    #[test]
    fn the_kill_switch_backs_each_prefix_and_stays_after_exit() {
        let plan = Plan::new(&config(&["0.0.0.0/0", "::/0"], true));
        assert_eq!(plan.routes.len(), 4);
        let unreachable: Vec<&Route> = plan
            .routes
            .iter()
            .filter(|r| r.target == Target::Unreachable)
            .collect();
        assert_eq!(unreachable.len(), 2);
        assert!(unreachable.iter().all(|r| r.metric == KILL_SWITCH_METRIC));
        let left = plan.left_on_exit();
        assert_eq!(left.rules, plan.rules, "the rules stay to catch traffic");
        assert_eq!(
            left.routes,
            unreachable.into_iter().copied().collect::<Vec<_>>()
        );
    }

    #[test]
    fn owns_only_its_table_and_its_protocol() {
        let plan = Plan::new(&config(&["0.0.0.0/0"], false));
        assert!(
            plan.owns_rule(&suppress(Family::V6)),
            "a family dropped since"
        );
        assert!(plan.owns_rule(&unmarked(Family::V4)));
        let other_table = Rule {
            action: RuleAction::UnmarkedToTable { mark: 9, table: 9 },
            ..unmarked(Family::V4)
        };
        assert!(!plan.owns_rule(&other_table));
        let elsewhere = Rule {
            priority: 100,
            ..suppress(Family::V4)
        };
        assert!(!plan.owns_rule(&elsewhere));
        assert!(plan.owns_route(51820, OWN_PROTOCOL));
        assert!(!plan.owns_route(51820, 4), "a route the user added by hand");
        assert!(!plan.owns_route(254, OWN_PROTOCOL));
    }
}
