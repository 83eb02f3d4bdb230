//! The plan as rtnetlink messages, and the kernel brought in line with it.
//!
//! [`Kernel::sync`] reads the rules and routes, deletes those the daemon
//! owns ([`Plan::owns_rule`], [`Plan::owns_route`]) that the plan does not
//! want, and adds what is missing: the same call installs at start
//! (clearing what a killed run left), reinstalls when the TUN device comes
//! back, and removes at exit. Only the translation to and from messages is
//! here besides the requests, and the translation is tested unprivileged.

use super::plan::{Family, OWN_PROTOCOL, Plan, Route, Rule, RuleAction, Target};
use circus_core::engine::IpPrefix;
use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::LinkFlags;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction as NlAction, RuleAttribute, RuleFlags, RuleMessage};
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("cannot open a netlink socket for the routes: {0}")]
    Connect(#[source] std::io::Error),
    #[error("cannot {request}: {source} (the routes need root or CAP_NET_ADMIN)")]
    Request {
        request: String,
        #[source]
        source: rtnetlink::Error,
    },
}

fn failed(request: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> RoutingError {
    let request = request.into();
    move |source| RoutingError::Request { request, source }
}

/// A netlink connection in the calling thread's namespace.
#[derive(Clone)]
pub struct Kernel {
    handle: Handle,
}

impl Kernel {
    /// Must be called inside a tokio runtime (the connection is a task).
    pub fn connect() -> Result<Kernel, RoutingError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(RoutingError::Connect)?;
        tokio::spawn(connection);
        Ok(Kernel { handle })
    }

    /// The index of the interface `name` while it is up and running (its
    /// routes can exist), else `None`. Asked of netlink directly:
    /// `getifaddrs` leaves out a TUN device's link entry (it has no
    /// hardware address).
    pub async fn running_index(&self, name: &str) -> Option<u32> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        let link = links.try_next().await.ok().flatten()?;
        let running = LinkFlags::Up | LinkFlags::Running;
        link.header
            .flags
            .contains(running)
            .then_some(link.header.index)
    }

    /// Makes the daemon's rules and routes exactly `plan`'s; device routes
    /// go to the TUN device `tun` (skipped when it is `None`, i.e. gone).
    pub async fn sync(&self, plan: &Plan, tun: Option<u32>) -> Result<(), RoutingError> {
        let wanted: Vec<Route> = plan
            .routes
            .iter()
            .filter(|r| r.target != Target::Tun || tun.is_some())
            .copied()
            .collect();
        let mut present_rules = Vec::new();
        for version in [IpVersion::V4, IpVersion::V6] {
            let mut dump = self.handle.rule().get(version).execute();
            while let Some(message) = dump.try_next().await.map_err(failed("list rules"))? {
                let Some(rule) = rule_of(&message) else {
                    continue;
                };
                if plan.rules.contains(&rule) {
                    present_rules.push(rule);
                } else if plan.owns_rule(&rule) {
                    self.handle
                        .rule()
                        .del(message)
                        .execute()
                        .await
                        .map_err(failed(format!("delete rule {rule:?}")))?;
                }
            }
        }
        let mut present_routes = Vec::new();
        for version in [IpVersion::V4, IpVersion::V6] {
            let mut dump = self.handle.route().get(query(version)).execute();
            while let Some(message) = dump.try_next().await.map_err(failed("list routes"))? {
                let (table, protocol) = table_and_protocol(&message);
                if !plan.owns_route(table, protocol) {
                    continue;
                }
                match route_of(&message, tun) {
                    Some(route) if wanted.contains(&route) => present_routes.push(route),
                    _ => self
                        .handle
                        .route()
                        .del(message)
                        .execute()
                        .await
                        .map_err(failed(format!("delete a route of table {table}")))?,
                }
            }
        }
        for rule in plan.rules.iter().filter(|r| !present_rules.contains(r)) {
            let mut request = self.handle.rule().add();
            *request.message_mut() = rule_message(rule);
            request
                .execute()
                .await
                .map_err(failed(format!("add rule {rule:?}")))?;
        }
        for route in wanted.iter().filter(|r| !present_routes.contains(r)) {
            self.handle
                .route()
                .add(route_message(route, tun))
                .replace()
                .execute()
                .await
                .map_err(failed(format!(
                    "add route {} to table {}",
                    route.prefix, route.table
                )))?;
        }
        Ok(())
    }
}

/// A dump request of one family's routes (all tables).
fn query(version: IpVersion) -> RouteMessage {
    match version {
        IpVersion::V4 => RouteMessageBuilder::<Ipv4Addr>::new().build(),
        IpVersion::V6 => RouteMessageBuilder::<Ipv6Addr>::new().build(),
    }
}

fn address_family(family: Family) -> AddressFamily {
    match family {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    }
}

/// The `ip rule add` message of `rule`, marked with [`OWN_PROTOCOL`].
pub fn rule_message(rule: &Rule) -> RuleMessage {
    let mut message = RuleMessage::default();
    message.header.family = address_family(rule.family);
    message.header.action = NlAction::ToTable;
    message
        .attributes
        .push(RuleAttribute::Priority(rule.priority));
    message
        .attributes
        .push(RuleAttribute::Protocol(RouteProtocol::from(OWN_PROTOCOL)));
    let table = match rule.action {
        RuleAction::MainWithoutDefault => {
            message.attributes.push(RuleAttribute::SuppressPrefixLen(0));
            u32::from(RouteHeader::RT_TABLE_MAIN)
        }
        RuleAction::UnmarkedToTable { mark, table } => {
            message.header.flags.insert(RuleFlags::Invert);
            message.attributes.push(RuleAttribute::FwMark(mark));
            message.attributes.push(RuleAttribute::FwMask(u32::MAX));
            table
        }
    };
    // Tables above 255 only fit the attribute; the header says "see it".
    message.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    message.attributes.push(RuleAttribute::Table(table));
    message
}

/// The rule a kernel message describes, if it carries [`OWN_PROTOCOL`] and
/// is of a kind the daemon adds.
pub fn rule_of(message: &RuleMessage) -> Option<Rule> {
    let family = match message.header.family {
        AddressFamily::Inet => Family::V4,
        AddressFamily::Inet6 => Family::V6,
        _ => return None,
    };
    let (mut priority, mut protocol, mut mark, mut suppress) = (0, None, None, None);
    let mut table = u32::from(message.header.table);
    for attribute in &message.attributes {
        match attribute {
            RuleAttribute::Priority(p) => priority = *p,
            RuleAttribute::Protocol(p) => protocol = Some(u8::from(*p)),
            RuleAttribute::FwMark(m) => mark = Some(*m),
            RuleAttribute::SuppressPrefixLen(s) => suppress = Some(*s),
            RuleAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    if protocol != Some(OWN_PROTOCOL) || message.header.action != NlAction::ToTable {
        return None;
    }
    let inverted = message.header.flags.contains(RuleFlags::Invert);
    let action = match (mark, suppress, inverted) {
        (None, Some(0), false) if table == u32::from(RouteHeader::RT_TABLE_MAIN) => {
            RuleAction::MainWithoutDefault
        }
        (Some(mark), _, true) => RuleAction::UnmarkedToTable { mark, table },
        _ => return None,
    };
    Some(Rule {
        family,
        priority,
        action,
    })
}

/// The `ip route replace` message of `route`; `tun` is the device's index.
pub fn route_message(route: &Route, tun: Option<u32>) -> RouteMessage {
    let builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(route.prefix.addr(), route.prefix.len())
        .expect("an IpPrefix has a valid length for its family")
        .table_id(route.table)
        .protocol(RouteProtocol::from(OWN_PROTOCOL))
        .priority(route.metric);
    match (route.target, tun) {
        (Target::Tun, Some(index)) => builder
            .output_interface(index)
            // As `ip route add ... dev`: on the link, no gateway.
            .scope(RouteScope::Link)
            .build(),
        _ => builder.kind(RouteType::Unreachable).build(),
    }
}

/// Table and protocol of a kernel route (the table attribute wins over
/// the header's 8 bits).
fn table_and_protocol(message: &RouteMessage) -> (u32, u8) {
    let table = message
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(message.header.table));
    (table, u8::from(message.header.protocol))
}

/// The route a kernel message describes, as the plan would write it; a
/// device route into anything but `tun` (a TUN device of an earlier run) or
/// any other kind of route is `None`: not wanted.
pub fn route_of(message: &RouteMessage, tun: Option<u32>) -> Option<Route> {
    let (table, _) = table_and_protocol(message);
    let len = message.header.destination_prefix_length;
    let mut destination = match message.header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let (mut metric, mut oif) = (0, None);
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => destination = IpAddr::V4(*a),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => destination = IpAddr::V6(*a),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    let target = match message.header.kind {
        RouteType::Unicast if oif.is_some() && oif == tun => Target::Tun,
        RouteType::Unreachable => Target::Unreachable,
        _ => return None,
    };
    Some(Route {
        prefix: IpPrefix::new(destination, len).ok()?,
        table,
        target,
        metric,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RoutingConfig;

    fn plan(kill_switch: bool) -> Plan {
        Plan::new(&RoutingConfig {
            routes: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
            kill_switch,
            ..RoutingConfig::default()
        })
    }

    #[test]
    fn rules_read_back_as_themselves() {
        for rule in plan(false).rules {
            assert_eq!(rule_of(&rule_message(&rule)), Some(rule), "{rule:?}");
        }
    }

    #[test]
    fn the_table_rule_says_not_fwmark_and_a_wide_table() {
        let message = rule_message(&plan(false).rules[1]);
        assert!(message.header.flags.contains(RuleFlags::Invert));
        assert_eq!(message.header.table, RouteHeader::RT_TABLE_UNSPEC);
        assert!(message.attributes.contains(&RuleAttribute::Table(51820)));
        assert!(message.attributes.contains(&RuleAttribute::FwMark(51820)));
    }

    #[test]
    fn foreign_rules_are_not_read_as_ours() {
        let mut message = rule_message(&plan(false).rules[0]);
        message
            .attributes
            .retain(|a| !matches!(a, RuleAttribute::Protocol(_)));
        assert_eq!(rule_of(&message), None, "no protocol: the user's rule");
        message
            .attributes
            .push(RuleAttribute::Protocol(RouteProtocol::Boot));
        assert_eq!(rule_of(&message), None);
    }

    #[test]
    fn routes_read_back_as_themselves_on_the_same_device() {
        for route in plan(true).routes {
            let message = route_message(&route, Some(7));
            assert_eq!(table_and_protocol(&message), (51820, OWN_PROTOCOL));
            assert_eq!(route_of(&message, Some(7)), Some(route), "{route:?}");
            if route.target == Target::Tun {
                assert_eq!(route_of(&message, Some(8)), None, "an old device's");
                assert_eq!(route_of(&message, None), None);
            }
        }
    }
}
