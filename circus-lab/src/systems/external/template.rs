//! Template values in a system file's commands: `{{name}}` is replaced by
//! what the lab knows of the run (addresses, interfaces, a directory for
//! keys). Double braces leave the shell's own `${VAR}` and `{a,b}` alone.
//!
//! The names a file may use are exactly the keys [`Values::new`] fills, so
//! the load-time check (against the addresses a topology of that many links
//! will have, [`LinkAddressing::for_link`]) and the run agree by
//! construction.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::topology::addressing::{
    GATEWAY_SERVER_SIDE, LinkAddressing, SERVER_ADDRESS, SERVER_SUBNET, SUBNET_PREFIX_LEN,
    TUNNEL_RANGE,
};

/// The client's and the gateway's tunnel addresses, inside [`TUNNEL_RANGE`]
/// (routed back to the gateway by the server), as the built-in circus uses.
pub const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
pub const GATEWAY_TUNNEL: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);

/// What one link offers: `link<N>.<field>` and `best.<field>`.
pub const LINK_FIELDS: [&str; 5] = [
    "name",
    "client_interface",
    "client_address",
    "gateway_interface",
    "gateway_address",
];

/// What the lab knows of one run of an external system.
pub struct Context<'a> {
    /// The topology's links, in scenario order.
    pub links: &'a [LinkAddressing],
    /// The scenario's names of those links.
    pub link_names: &'a [String],
    /// The link the single-link runs found best.
    pub best_link: usize,
    /// A private directory for keys and configs, removed after the run.
    pub dir: &'a Path,
    /// A short id unique to the run (for names shared across namespaces,
    /// such as sockets in /var/run).
    pub id: &'a str,
    /// The `circus-node` binary built with the lab.
    pub circus_node: &'a Path,
}

/// Every template value of one run, by name.
#[derive(Clone, Debug)]
pub struct Values(BTreeMap<String, String>);

/// A template that cannot be filled in.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("expected a template value ({known}), found {{{{{name}}}}}")]
    Unknown { name: String, known: String },
    #[error("expected `}}}}` closing the `{{{{` at byte {at}")]
    Unclosed { at: usize },
}

impl Values {
    pub fn new(context: &Context<'_>) -> Values {
        let mut values = BTreeMap::new();
        let mut set = |name: String, value: String| {
            values.insert(name, value);
        };
        let (tunnel_net, tunnel_len) = TUNNEL_RANGE;
        set("dir".into(), context.dir.display().to_string());
        set("id".into(), context.id.into());
        set(
            "circus_node".into(),
            context.circus_node.display().to_string(),
        );
        set("server_address".into(), SERVER_ADDRESS.to_string());
        set(
            "server_subnet".into(),
            format!("{SERVER_SUBNET}/{SUBNET_PREFIX_LEN}"),
        );
        set(
            "gateway_server_address".into(),
            GATEWAY_SERVER_SIDE.to_string(),
        );
        set("tunnel_subnet".into(), format!("{tunnel_net}/{tunnel_len}"));
        set("tunnel_prefix_len".into(), tunnel_len.to_string());
        set("client_tunnel".into(), CLIENT_TUNNEL.to_string());
        set("gateway_tunnel".into(), GATEWAY_TUNNEL.to_string());
        set("links".into(), context.links.len().to_string());
        set("best_index".into(), context.best_link.to_string());
        let mut table = Vec::new();
        for (index, link) in context.links.iter().enumerate() {
            let fields = link_fields(link, context.link_names.get(index));
            table.push(fields.join(" "));
            for (field, value) in LINK_FIELDS.iter().zip(&fields) {
                set(format!("link{index}.{field}"), value.clone());
                if index == context.best_link {
                    set(format!("best.{field}"), value.clone());
                }
            }
        }
        set("link_table".into(), table.join("\n"));
        let gateways: Vec<String> = context
            .links
            .iter()
            .map(|link| link.gateway_address.to_string())
            .collect();
        set("gateway_addresses".into(), gateways.join(" "));
        Values(values)
    }

    /// The values a topology of `links` links will have, for checking a
    /// file's templates when it loads.
    pub fn for_checking(links: usize) -> Values {
        let addressing: Vec<LinkAddressing> = (0..links).map(LinkAddressing::for_link).collect();
        let names: Vec<String> = (0..links).map(|index| format!("link{index}")).collect();
        Values::new(&Context {
            links: &addressing,
            link_names: &names,
            best_link: 0,
            dir: Path::new("/tmp/check"),
            id: "check",
            circus_node: Path::new("circus-node"),
        })
    }

    /// `text` with every `{{name}}` replaced by its value.
    pub fn expand(&self, text: &str) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(text.len());
        for piece in pieces(text) {
            match piece? {
                Piece::Text(text) => out.push_str(text),
                Piece::Name(name) => {
                    let value = self.0.get(name).ok_or_else(|| TemplateError::Unknown {
                        name: name.to_owned(),
                        known: self.known(),
                    })?;
                    out.push_str(value);
                }
            }
        }
        Ok(out)
    }

    /// The names, with per-link ones folded into `link<N>.FIELD`.
    fn known(&self) -> String {
        let links = self.0.get("links").map_or("0", String::as_str);
        let plain: Vec<&str> = self
            .0
            .keys()
            .map(String::as_str)
            .filter(|name| !name.contains('.'))
            .collect();
        format!(
            "one of {}, link<N>.FIELD with N below {links}, best.FIELD; FIELD one of {}",
            plain.join(", "),
            LINK_FIELDS.join(", ")
        )
    }
}

/// The template names `text` uses (unclosed ones left out).
pub fn names_in(text: &str) -> impl Iterator<Item = &str> {
    pieces(text).filter_map(|piece| match piece {
        Ok(Piece::Name(name)) => Some(name),
        _ => None,
    })
}

/// A stretch of template text.
enum Piece<'a> {
    Text(&'a str),
    Name(&'a str),
}

/// `text` cut into plain stretches and `{{name}}`s (trimmed); an unclosed
/// `{{` ends it with an error.
fn pieces(text: &str) -> impl Iterator<Item = Result<Piece<'_>, TemplateError>> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest.take()?;
        if current.is_empty() {
            return None;
        }
        let Some(open) = current.find("{{") else {
            return Some(Ok(Piece::Text(current)));
        };
        if open > 0 {
            rest = Some(&current[open..]);
            return Some(Ok(Piece::Text(&current[..open])));
        }
        let after = &current[2..];
        let Some(close) = after.find("}}") else {
            let at = text.len() - current.len();
            return Some(Err(TemplateError::Unclosed { at }));
        };
        rest = Some(&after[close + 2..]);
        Some(Ok(Piece::Name(after[..close].trim())))
    })
}

/// One link's values in [`LINK_FIELDS`] order.
fn link_fields(link: &LinkAddressing, name: Option<&String>) -> [String; 5] {
    [
        name.cloned()
            .unwrap_or_else(|| format!("link{}", link.index)),
        link.client_interface.clone(),
        link.client_address.to_string(),
        link.gateway_interface.clone(),
        link.gateway_address.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_fill_in_and_shell_braces_stay() {
        let values = Values::for_checking(2);
        let text = "wg set x endpoint {{ best.gateway_address }}:51820 ${HOME} {a,b} {{link1.client_interface}}";
        assert_eq!(
            values.expand(text).unwrap(),
            "wg set x endpoint 198.18.0.1:51820 ${HOME} {a,b} link1"
        );
        assert_eq!(
            values.expand("{{link_table}}").unwrap(),
            "link0 link0 198.18.0.2 link0 198.18.0.1\nlink1 link1 198.18.1.2 link1 198.18.1.1"
        );
    }

    #[test]
    fn unknown_and_unclosed_templates_are_errors() {
        let values = Values::for_checking(2);
        let Err(TemplateError::Unknown { name, known }) = values.expand("a {{link2.name}}") else {
            panic!("link2 of two links expanded");
        };
        assert_eq!(name, "link2.name");
        assert!(
            known.contains("N below 2") && known.contains("dir"),
            "{known}"
        );
        assert_eq!(
            values.expand("ab {{dir"),
            Err(TemplateError::Unclosed { at: 3 })
        );
    }

    #[test]
    fn names_are_found_in_order() {
        let names: Vec<&str> = names_in("a {{dir}} b {{ best.name }}{{id}} {{open").collect();
        assert_eq!(names, ["dir", "best.name", "id"]);
    }

    proptest! {
        /// Any text: expanded or refused, never a panic, and text without
        /// `{{` comes back unchanged.
        #[test]
        fn expansion_never_panics(text in ".{0,80}") {
            let values = Values::for_checking(3);
            let expanded = values.expand(&text);
            if !text.contains("{{") {
                prop_assert_eq!(expanded, Ok(text));
            }
        }
    }
}
