//! Client and gateway configuration: TOML files in, validated settings out.
//!
//! [`schema`] is the file format (serde); this module turns it into
//! [`ClientConfig`] / [`GatewayConfig`], whose fields are already parsed and
//! checked, so the daemon never meets a half-valid setting. The lab builds
//! these structs directly in code. Every error names the file, the key (as a
//! path such as `link[1].gateway`), the line and what was expected.

mod error;
mod prefix;
mod schema;

pub use error::{ConfigError, Location};
pub use prefix::{Family, IfPrefix, Ipv4Prefix, Ipv6Prefix, TunAddresses};

use crate::keys::{KeyError, Psk, PublicKey, StaticSecret};
use circus_core::engine::IpPrefix;
use circus_core::scheduler::Policy;
use prefix::TunAddressError;
use schema::{ClientFile, GatewayFile, LinkSection, ObserveSection, OneOrMany, TunSection};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use toml::Spanned;

/// Largest number of links a client may bond: the scheduler considers at
/// most this many per packet (a fixed-size set, no allocation).
pub use circus_core::scheduler::MAX_LINKS;

/// Link MTU assumed when a link does not say: Ethernet's, which is what
/// wifi, LTE and most DSL present to the host.
pub const DEFAULT_LINK_MTU: u16 = 1500;

/// Smallest TUN MTU accepted: IPv6 requires every link to carry 1280 bytes,
/// and IPv4 needs at least 576; below 576 nothing useful works.
pub const MIN_TUN_MTU: u16 = 576;

/// Settings of the client daemon (`circus-node client`).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub private_key: StaticSecret,
    pub gateway_public_key: PublicKey,
    /// All zero when the file sets none (Noise IKpsk2 then runs without the
    /// extra symmetric secret, as WireGuard does).
    pub preshared_key: Psk,
    /// How packets are spread over the links.
    pub policy: Policy,
    /// Prefixes behind this client that the gateway routes to it besides
    /// its tunnel address (a site's LAN). Packets from the gateway are
    /// delivered only for the tunnel address and these.
    pub site_subnets: Vec<IpPrefix>,
    /// What the daemon routes into the TUN device, and how.
    pub routing: RoutingConfig,
    pub tun: TunConfig,
    pub observe: ObserveConfig,
    /// In file order; a link's position is its `LinkId` on the wire.
    pub links: Vec<LinkConfig>,
}

/// Settings of the gateway daemon (`circus-node gateway`).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub private_key: StaticSecret,
    /// The one UDP address all clients' links send to.
    pub listen: SocketAddr,
    /// How packets to each client are spread over its links.
    pub policy: Policy,
    /// Whether the daemon turns on forwarding and masquerades the tunnel
    /// prefixes behind the uplink ([`crate::nat`]).
    pub nat: bool,
    pub tun: TunConfig,
    pub observe: ObserveConfig,
    pub clients: Vec<PeerEntry>,
}

/// Default routing table of the client's routes, and the firewall mark of
/// its link sockets: wg-quick's default (51820), so both read alike in
/// `ip rule`.
pub const DEFAULT_ROUTE_TABLE: u32 = 51820;

/// The client's own routes (see [`crate::routing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Destinations sent into the TUN device, e.g. `0.0.0.0/0` and `::/0`
    /// for everything. Empty: the daemon touches no route or rule.
    pub routes: Vec<IpPrefix>,
    /// The routing table holding them; also the firewall mark that keeps
    /// the link sockets' own traffic out of it.
    pub table: u32,
    /// Whether traffic to `routes` is dropped, rather than sent on the
    /// uplinks, while the daemon is down.
    pub kill_switch: bool,
    /// DNS servers set on the TUN link through systemd-resolved.
    pub dns: Vec<IpAddr>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            routes: Vec::new(),
            table: DEFAULT_ROUTE_TABLE,
            kill_switch: false,
            dns: Vec::new(),
        }
    }
}

/// The local TUN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name (at most 15 bytes, the kernel's IFNAMSIZ - 1).
    pub name: String,
    /// This node's tunnel addresses and the tunnel subnets (e.g.
    /// 100.64.0.2/10 and fd00:64::2/64): the kernel routes each whole
    /// subnet into the TUN.
    pub address: TunAddresses,
    /// `None`: derived from the smallest link MTU minus the tunnel overhead.
    pub mtu: Option<u16>,
}

/// Local observability endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObserveConfig {
    /// Unix socket answering `circus-node status`; `None` disables it. A
    /// file that does not set it gets [`default_status_socket`]; code that
    /// runs several daemons on one host (the lab) must give each its own.
    pub status_socket: Option<PathBuf>,
    /// TCP address of the Prometheus text endpoint; `None` disables it.
    pub metrics_listen: Option<SocketAddr>,
}

/// One uplink of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// Label in logs, status and metrics.
    pub name: String,
    /// The network interface whose UDP socket carries this link
    /// (`SO_BINDTODEVICE`); it may be absent at start and come later.
    pub interface: String,
    /// Where this link's packets go: the gateway's address as reached over
    /// this link (one gateway may have one address per provider).
    pub gateway: SocketAddr,
    /// The host name `gateway` was resolved from, if the config gave one:
    /// the daemon resolves it again when the gateway is lost (its address
    /// may have changed) or the link cannot use the address's family.
    pub gateway_host: Option<String>,
    pub mtu: u16,
}

/// One client the gateway accepts.
#[derive(Debug, Clone)]
pub struct PeerEntry {
    pub name: String,
    pub public_key: PublicKey,
    pub preshared_key: Psk,
    /// Destinations routed to this client from the gateway's TUN.
    pub tunnel_addresses: Vec<IpPrefix>,
}

/// Default status socket of each role, so `circus-node status` finds a
/// daemon without being told where.
pub fn default_status_socket(role: Role) -> PathBuf {
    PathBuf::from(match role {
        Role::Client => "/run/circus-node/client.sock",
        Role::Gateway => "/run/circus-node/gateway.sock",
    })
}

/// Which daemon a configuration belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Gateway,
}

impl ClientConfig {
    /// This client's own tunnel prefixes: its address and its
    /// [`site_subnets`](Self::site_subnets), the only destinations it accepts packets
    /// for from the gateway.
    pub fn tunnel_prefixes(&self) -> Vec<IpPrefix> {
        self.tun
            .address
            .hosts()
            .map(IpPrefix::host)
            .chain(self.site_subnets.iter().copied())
            .collect()
    }

    /// Reads and validates a client file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read(path)?;
        Self::parse(path, &text)
    }

    /// Validates a client file's text; `path` only names it in errors and
    /// anchors relative key-file paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let ctx = Ctx { path, text };
        let file: ClientFile = ctx.deserialize()?;
        let default_gateway = file
            .gateway
            .as_ref()
            .map(|g| ctx.endpoint("gateway", g))
            .transpose()?;
        if file.links.is_empty() {
            return Err(ctx.invalid_whole("link", "at least one [[link]] table", "none"));
        }
        if file.links.len() > MAX_LINKS {
            return Err(ctx.invalid_whole(
                "link",
                &format!("at most {MAX_LINKS} [[link]] tables"),
                &file.links.len().to_string(),
            ));
        }
        let links = file
            .links
            .iter()
            .enumerate()
            .map(|(i, link)| ctx.link(i, link, default_gateway.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, link) in links.iter().enumerate() {
            if let Some(j) = links[..i]
                .iter()
                .position(|l| l.interface == link.interface)
            {
                return Err(ctx.invalid(
                    &format!("link[{i}].interface"),
                    &file.links[i].interface,
                    &format!("an interface not already used by link[{j}]"),
                ));
            }
        }
        Ok(ClientConfig {
            private_key: ctx.secret(
                "private_key",
                file.private_key.as_ref(),
                file.private_key_file.as_ref(),
            )?,
            gateway_public_key: ctx.public_key("gateway_public_key", &file.gateway_public_key)?,
            preshared_key: ctx.psk(
                "preshared_key",
                file.preshared_key.as_ref(),
                file.preshared_key_file.as_ref(),
            )?,
            policy: ctx.policy(file.policy.as_ref())?,
            site_subnets: file
                .site_subnets
                .iter()
                .enumerate()
                .map(|(n, r)| ctx.parse(&format!("site_subnets[{n}]"), r, EXPECT_ROUTE))
                .collect::<Result<_, _>>()?,
            routing: ctx.routing(&file)?,
            tun: ctx.tun(&file.tun, "circus0")?,
            observe: ctx.observe(&file.observe, Role::Client)?,
            links,
        })
    }
}

impl GatewayConfig {
    /// Reads and validates a gateway file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read(path)?;
        Self::parse(path, &text)
    }

    /// Validates a gateway file's text.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let ctx = Ctx { path, text };
        let file: GatewayFile = ctx.deserialize()?;
        let mut clients = Vec::with_capacity(file.clients.len());
        for (i, c) in file.clients.iter().enumerate() {
            let key = |k: &str| format!("client[{i}].{k}");
            let public_key = ctx.public_key(&key("public_key"), &c.public_key)?;
            if let Some(j) = clients
                .iter()
                .position(|p: &PeerEntry| p.public_key == public_key)
            {
                return Err(ConfigError::Invalid {
                    at: ctx.at(Some(c.public_key.span())),
                    key: key("public_key"),
                    expected: format!("a key not already given to client[{j}]"),
                    found: format!("the key of client[{j}]"),
                });
            }
            if c.tunnel_addresses.is_empty() {
                return Err(ctx.invalid_whole(
                    &key("tunnel_addresses"),
                    "at least one address such as \"100.64.0.2/32\"",
                    "an empty list",
                ));
            }
            let tunnel_addresses = c
                .tunnel_addresses
                .iter()
                .enumerate()
                .map(|(n, a)| {
                    let prefix: IpPrefix =
                        ctx.parse(&key(&format!("tunnel_addresses[{n}]")), a, EXPECT_ROUTE)?;
                    let owner = clients
                        .iter()
                        .position(|p: &PeerEntry| p.tunnel_addresses.contains(&prefix));
                    match owner {
                        Some(j) => Err(ctx.invalid(
                            &key(&format!("tunnel_addresses[{n}]")),
                            a,
                            &format!("an address not already routed to client[{j}]"),
                        )),
                        None => Ok(prefix),
                    }
                })
                .collect::<Result<Vec<IpPrefix>, _>>()?;
            clients.push(PeerEntry {
                name: c.name.clone(),
                public_key,
                preshared_key: ctx.psk(
                    &key("preshared_key"),
                    c.preshared_key.as_ref(),
                    c.preshared_key_file.as_ref(),
                )?,
                tunnel_addresses,
            });
        }
        Ok(GatewayConfig {
            private_key: ctx.secret(
                "private_key",
                file.private_key.as_ref(),
                file.private_key_file.as_ref(),
            )?,
            listen: ctx.parse("listen", &file.listen, EXPECT_ENDPOINT)?,
            policy: ctx.policy(file.policy.as_ref())?,
            nat: file.nat,
            tun: ctx.tun(&file.tun, "circus-gw")?,
            observe: ctx.observe(&file.observe, Role::Gateway)?,
            clients,
        })
    }
}

const EXPECT_KEY: &str = "a base64 32-byte key as printed by `circus-node keygen`";
const EXPECT_ENDPOINT: &str = "an IP address and port such as \"198.18.0.1:51820\"";
const EXPECT_GATEWAY: &str =
    "an IP address or host name and port such as \"198.18.0.1:51820\" or \"gw.example.net:51820\"";
const EXPECT_PREFIX: &str =
    "an IPv4 or IPv6 address with prefix length such as \"100.64.0.2/10\" or \"fd00:64::2/64\"";
const EXPECT_TABLE: &str = "a routing table number from 1 to 4294967295, not 253, 254 or 255";
const EXPECT_IP: &str = "an IP address such as \"100.64.0.1\" or \"fd00::1\"";
const EXPECT_ROUTE: &str = "an IP address or prefix such as \"100.64.0.2/32\" or \"fd00::2/128\"";

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_owned(),
        source,
    })
}

/// The file being validated: turns spans into line numbers for errors.
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let de = toml::Deserializer::parse(self.text).map_err(|e| ConfigError::Syntax {
            at: self.at(e.span()),
            message: e.message().to_owned(),
        })?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = key_path(e.path());
            let inner = e.into_inner();
            ConfigError::Schema {
                at: self.at(inner.span()),
                key: if key.is_empty() {
                    "(top level)".into()
                } else {
                    key
                },
                message: inner.message().to_owned(),
            }
        })
    }

    fn at(&self, span: Option<std::ops::Range<usize>>) -> Location {
        Location::new(self.path, span.map(|s| line_column(self.text, s.start)))
    }

    fn invalid<T: std::fmt::Display>(
        &self,
        key: &str,
        value: &Spanned<T>,
        expected: &str,
    ) -> ConfigError {
        ConfigError::Invalid {
            at: self.at(Some(value.span())),
            key: key.to_owned(),
            expected: expected.to_owned(),
            found: format!("{:?}", value.get_ref().to_string()),
        }
    }

    fn invalid_whole(&self, key: &str, expected: &str, found: &str) -> ConfigError {
        ConfigError::Invalid {
            at: self.at(None),
            key: key.to_owned(),
            expected: expected.to_owned(),
            found: found.to_owned(),
        }
    }

    fn parse<T: FromStr>(
        &self,
        key: &str,
        value: &Spanned<String>,
        expected: &str,
    ) -> Result<T, ConfigError> {
        value
            .get_ref()
            .trim()
            .parse()
            .map_err(|_| self.invalid(key, value, expected))
    }

    fn mtu(&self, key: &str, value: &Spanned<i64>, min: u16) -> Result<u16, ConfigError> {
        u16::try_from(*value.get_ref())
            .ok()
            .filter(|m| *m >= min)
            .ok_or_else(|| self.invalid(key, value, &format!("an MTU from {min} to 65535")))
    }

    fn link(
        &self,
        i: usize,
        link: &LinkSection,
        default_gateway: Option<&(SocketAddr, Option<String>)>,
    ) -> Result<LinkConfig, ConfigError> {
        let key = |k: &str| format!("link[{i}].{k}");
        let interface = link.interface.get_ref().clone();
        if !valid_interface_name(&interface) {
            return Err(self.invalid(&key("interface"), &link.interface, EXPECT_IFNAME));
        }
        let (gateway, gateway_host) = match (&link.gateway, default_gateway) {
            (Some(g), _) => self.endpoint(&key("gateway"), g)?,
            (None, Some(g)) => g.clone(),
            (None, None) => {
                return Err(self.invalid_whole(
                    &key("gateway"),
                    "a gateway endpoint here or a top-level `gateway`",
                    "neither",
                ));
            }
        };
        let mtu = match &link.mtu {
            Some(m) => self.mtu(&key("mtu"), m, MIN_TUN_MTU)?,
            None => DEFAULT_LINK_MTU,
        };
        Ok(LinkConfig {
            name: link.name.clone().unwrap_or_else(|| interface.clone()),
            interface,
            gateway,
            gateway_host,
            mtu,
        })
    }

    fn routing(&self, file: &ClientFile) -> Result<RoutingConfig, ConfigError> {
        let routes: Vec<IpPrefix> = file
            .routes
            .iter()
            .enumerate()
            .map(|(n, r)| self.parse(&format!("routes[{n}]"), r, EXPECT_ROUTE))
            .collect::<Result<_, _>>()?;
        let table = match &file.table {
            // 0 is "unspecified" and 253..=255 are the kernel's default,
            // main and local tables: never ours to empty.
            Some(t) => u32::try_from(*t.get_ref())
                .ok()
                .filter(|t| !matches!(t, 0 | 253..=255))
                .ok_or_else(|| self.invalid("table", t, EXPECT_TABLE))?,
            None => DEFAULT_ROUTE_TABLE,
        };
        if file.kill_switch && routes.is_empty() {
            return Err(self.invalid_whole(
                "kill_switch",
                "`routes` to guard (the kill switch drops traffic to them)",
                "no routes",
            ));
        }
        Ok(RoutingConfig {
            routes,
            table,
            kill_switch: file.kill_switch,
            dns: file
                .dns
                .iter()
                .enumerate()
                .map(|(n, d)| self.parse(&format!("dns[{n}]"), d, EXPECT_IP))
                .collect::<Result<_, _>>()?,
        })
    }

    fn tun(&self, tun: &TunSection, default_name: &str) -> Result<TunConfig, ConfigError> {
        let name = tun.name.clone().unwrap_or_else(|| default_name.to_owned());
        if !valid_interface_name(&name) {
            return Err(self.invalid_whole("tun.name", EXPECT_IFNAME, &format!("{name:?}")));
        }
        Ok(TunConfig {
            name,
            address: self.tun_addresses(&tun.address)?,
            mtu: tun
                .mtu
                .as_ref()
                .map(|m| self.mtu("tun.mtu", m, MIN_TUN_MTU))
                .transpose()?,
        })
    }

    /// `tun.address`: one address or a list of at most one per family.
    fn tun_addresses(&self, value: &Spanned<OneOrMany>) -> Result<TunAddresses, ConfigError> {
        let entries = match value.get_ref() {
            OneOrMany::One(text) => vec![Spanned::new(value.span(), text.clone())],
            OneOrMany::Many(list) => list.clone(),
        };
        let key = |i: usize| match value.get_ref() {
            OneOrMany::One(_) => "tun.address".to_owned(),
            OneOrMany::Many(_) => format!("tun.address[{i}]"),
        };
        TunAddresses::parse(entries.iter().map(|e| e.get_ref().as_str())).map_err(|e| match e {
            TunAddressError::Malformed { index } => {
                self.invalid(&key(index), &entries[index], EXPECT_PREFIX)
            }
            TunAddressError::SecondOfFamily { index } => self.invalid(
                &key(index),
                &entries[index],
                "at most one IPv4 and one IPv6 address",
            ),
            TunAddressError::Empty => ConfigError::Invalid {
                at: self.at(Some(value.span())),
                key: "tun.address".to_owned(),
                expected: EXPECT_PREFIX.to_owned(),
                found: "an empty list".to_owned(),
            },
        })
    }

    /// A gateway endpoint: an IP literal, or a host name resolved now (so a
    /// name that does not resolve fails at start and in `--check`, naming
    /// the key). Returns the address and the name it came from.
    fn endpoint(
        &self,
        key: &str,
        value: &Spanned<String>,
    ) -> Result<(SocketAddr, Option<String>), ConfigError> {
        let text = value.get_ref().trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok((addr, None));
        }
        let (host, port) = crate::resolve::split_host_port(text)
            .ok_or_else(|| self.invalid(key, value, EXPECT_GATEWAY))?;
        let addrs = crate::resolve::lookup(host, port).map_err(|source| ConfigError::Resolve {
            at: self.at(Some(value.span())),
            key: key.to_owned(),
            host: host.to_owned(),
            source,
        })?;
        // `lookup` never returns an empty list; the family a link can use
        // is chosen once its interface is known (see `resolve`).
        let first = addrs
            .first()
            .copied()
            .ok_or_else(|| self.invalid(key, value, EXPECT_GATEWAY))?;
        Ok((first, Some(host.to_owned())))
    }

    fn observe(&self, observe: &ObserveSection, role: Role) -> Result<ObserveConfig, ConfigError> {
        Ok(ObserveConfig {
            status_socket: Some(
                observe
                    .status_socket
                    .clone()
                    .unwrap_or_else(|| default_status_socket(role)),
            ),
            metrics_listen: observe
                .metrics_listen
                .as_ref()
                .map(|m| self.parse("observe.metrics_listen", m, EXPECT_ENDPOINT))
                .transpose()?,
        })
    }

    fn policy(&self, policy: Option<&Spanned<String>>) -> Result<Policy, ConfigError> {
        let Some(policy) = policy else {
            return Ok(Policy::default());
        };
        let names: Vec<String> = Policy::ALL
            .iter()
            .map(|p| format!("{:?}", p.name()))
            .collect();
        self.parse("policy", policy, &format!("one of {}", names.join(", ")))
    }

    /// A key given inline or in a file of its own (so the config may be
    /// world-readable while the key is not); exactly one of the two.
    fn key_text(
        &self,
        key: &str,
        inline: Option<&Spanned<String>>,
        file: Option<&Spanned<PathBuf>>,
    ) -> Result<Option<KeyText>, ConfigError> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(self.invalid_whole(
                key,
                &format!("only one of `{key}` and `{key}_file`"),
                "both",
            )),
            (Some(k), None) => Ok(Some(KeyText {
                key: key.to_owned(),
                text: k.clone(),
                file: None,
            })),
            (None, Some(f)) => {
                let relative = f.get_ref();
                let path = match self.path.parent() {
                    Some(dir) if relative.is_relative() => dir.join(relative),
                    _ => relative.clone(),
                };
                let text = crate::keys::read_secret_file(&path).map_err(|source| {
                    ConfigError::KeyFile {
                        at: self.at(Some(f.span())),
                        key: format!("{key}_file"),
                        source,
                    }
                })?;
                Ok(Some(KeyText {
                    key: format!("{key}_file"),
                    text: Spanned::new(f.span(), text),
                    file: Some(path),
                }))
            }
            (None, None) => Ok(None),
        }
    }

    /// Parses a key, public or secret. The error says what is wrong with
    /// the text and where it is, never the text itself: it may be a secret
    /// (or a private key pasted into the wrong place), and errors end up
    /// in terminals and journals.
    fn key<T: FromStr<Err = KeyError>>(&self, text: &KeyText) -> Result<T, ConfigError> {
        let value = text.text.get_ref().trim();
        value.parse().map_err(|e: KeyError| {
            let what = match e {
                KeyError::WrongLength { actual, .. } => format!("base64 of {actual} bytes"),
                _ => format!("{} characters that are not base64", value.chars().count()),
            };
            ConfigError::Invalid {
                at: self.at(Some(text.text.span())),
                key: text.key.clone(),
                expected: EXPECT_KEY.to_owned(),
                found: match &text.file {
                    Some(path) => format!("{what} in {}", path.display()),
                    None => what,
                },
            }
        })
    }

    /// A public key given inline.
    fn public_key(&self, key: &str, value: &Spanned<String>) -> Result<PublicKey, ConfigError> {
        self.key(&KeyText {
            key: key.to_owned(),
            text: value.clone(),
            file: None,
        })
    }

    fn secret(
        &self,
        key: &str,
        inline: Option<&Spanned<String>>,
        file: Option<&Spanned<PathBuf>>,
    ) -> Result<StaticSecret, ConfigError> {
        match self.key_text(key, inline, file)? {
            Some(text) => self.key(&text),
            None => Err(self.invalid_whole(
                key,
                &format!("`{key}` or `{key}_file` (make one with `circus-node keygen`)"),
                "neither",
            )),
        }
    }

    fn psk(
        &self,
        key: &str,
        inline: Option<&Spanned<String>>,
        file: Option<&Spanned<PathBuf>>,
    ) -> Result<Psk, ConfigError> {
        match self.key_text(key, inline, file)? {
            Some(text) => self.key(&text),
            None => Ok(crate::keys::no_psk()),
        }
    }
}

/// A key's text and where it came from, for [`Ctx::key`]'s errors.
struct KeyText {
    /// The config key that gave it (`private_key` or `private_key_file`).
    key: String,
    /// Inline: the value; from a file: the file's text, spanned at the
    /// config's `_file` value.
    text: Spanned<String>,
    file: Option<PathBuf>,
}

const EXPECT_IFNAME: &str = "an interface name of 1 to 15 bytes without '/', ':' or whitespace";

/// The kernel's rules for interface names (`dev_valid_name`), so a bad
/// name fails at load time rather than at the first `SO_BINDTODEVICE`.
fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

/// `link[1].mtu` from serde's path, without the private segments that
/// `Spanned` adds.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: k } | Segment::Enum { variant: k } if !k.starts_with("$__") => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            _ => {}
        }
    }
    key
}

/// 1-based line and column of a byte offset, for people and editors.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
