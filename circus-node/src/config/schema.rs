//! The TOML files as written by people: the serde layer.
//!
//! Values that need parsing beyond TOML's own types (keys, addresses,
//! prefixes, policy names) are kept as `Spanned<String>` here and parsed in
//! [`super`], so each error can name its key and point at its line.
//! `deny_unknown_fields` everywhere: a misspelt key is an error, not a
//! silently ignored setting.

use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// `client.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientFile {
    pub private_key: Option<Spanned<String>>,
    pub private_key_file: Option<Spanned<PathBuf>>,
    pub gateway_public_key: Spanned<String>,
    pub preshared_key: Option<Spanned<String>>,
    pub preshared_key_file: Option<Spanned<PathBuf>>,
    /// Default gateway endpoint for links that do not name their own.
    pub gateway: Option<Spanned<String>>,
    pub policy: Option<Spanned<String>>,
    /// Prefixes behind this client besides its tunnel address.
    #[serde(default)]
    pub site_subnets: Vec<Spanned<String>>,
    /// Destinations the daemon routes into the TUN device.
    #[serde(default)]
    pub routes: Vec<Spanned<String>>,
    /// Routing table (and firewall mark) of those routes.
    pub table: Option<Spanned<i64>>,
    #[serde(default)]
    pub kill_switch: bool,
    /// DNS servers of the TUN link (systemd-resolved).
    #[serde(default)]
    pub dns: Vec<Spanned<String>>,
    pub tun: TunSection,
    #[serde(default)]
    pub observe: ObserveSection,
    #[serde(rename = "link")]
    pub links: Vec<LinkSection>,
}

/// `gateway.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GatewayFile {
    pub private_key: Option<Spanned<String>>,
    pub private_key_file: Option<Spanned<PathBuf>>,
    pub listen: Spanned<String>,
    pub policy: Option<Spanned<String>>,
    /// Forwarding and masquerading of the tunnel prefixes.
    #[serde(default)]
    pub nat: bool,
    pub tun: TunSection,
    #[serde(default)]
    pub observe: ObserveSection,
    #[serde(rename = "client", default)]
    pub clients: Vec<ClientSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TunSection {
    pub name: Option<String>,
    pub address: Spanned<OneOrMany>,
    pub mtu: Option<Spanned<i64>>,
}

/// A key that takes one string or a list of them (`address = "..."` or
/// `address = ["...", "..."]`). Written by hand rather than as an untagged
/// enum, which would buffer the value and lose the entries' spans.
#[derive(Debug)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }

            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<OneOrMany, S::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element()? {
                    entries.push(entry);
                }
                Ok(OneOrMany::Many(entries))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ObserveSection {
    pub status_socket: Option<PathBuf>,
    pub metrics_listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LinkSection {
    pub name: Option<String>,
    pub interface: Spanned<String>,
    pub gateway: Option<Spanned<String>>,
    pub mtu: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientSection {
    pub name: String,
    pub public_key: Spanned<String>,
    pub preshared_key: Option<Spanned<String>>,
    pub preshared_key_file: Option<Spanned<PathBuf>>,
    pub tunnel_addresses: Vec<Spanned<String>>,
}
