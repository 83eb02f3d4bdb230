//! The lab's network: namespaces `client`, `emu`, `gateway`, `server`, a pair
//! of veths per emulated link through `emu`, addresses and routes, all built
//! with rtnetlink and ioctls (no iproute2 or ethtool binaries).
//!
//! - [`naming`]: per-run namespace names `cl<tag>-<pid>-<n>-<role>`, and
//!   the run directory `cl<tag>-<pid>-<n>-files` for the run's files.
//! - [`addressing`]: interface names and the 198.18.0.0/15 address plan.
//! - [`netns`]: creating namespaces and running code inside them on
//!   dedicated threads.
//! - [`cleanup`]: removal of namespaces and run directory on drop, on
//!   signals, and sweeps after SIGKILL.
//! - [`process`]: shell commands run inside a namespace as the lab's
//!   children, killed on every way out.
//! - [`privilege`]: the one-line "needs root" check and the test skip helper.
//! - `netlink`, `offload`, `sysctl`: the requests the build is made of.

pub mod addressing;
pub mod cleanup;
pub mod naming;
pub mod netns;
pub mod offload;
pub mod privilege;
pub mod process;
pub mod sysctl;

mod netlink;

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

pub use addressing::{LinkAddressing, MAX_LINKS, SERVER_ADDRESS};
pub use cleanup::{CleanupGuard, sweep_stale};
pub use naming::{RUN_TAG, Role, RunPrefix};
pub use netlink::{NetlinkError, NextHop};
pub use netns::{Netns, NetnsError, NetnsThread};
pub use privilege::{NotPrivileged, netns_available_for_test, require_netns};

use addressing::{
    GATEWAY_SERVER_SIDE, GATEWAY_TO_SERVER, LINKS_RANGE, SERVER_TO_GATEWAY, SUBNET_PREFIX_LEN,
    TUNNEL_RANGE,
};
use netlink::Netlink;
use offload::OffloadError;
use sysctl::SysctlError;

/// What to build.
#[derive(Clone, Debug)]
pub struct TopologyConfig {
    /// Tag of the namespace names ([`RUN_TAG`] for lab runs; tests use their own).
    pub tag: String,
    /// Number of emulated links, 1 to [`MAX_LINKS`].
    pub links: usize,
}

/// Why the topology could not be built or changed.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// Not root: the one line to show the user.
    #[error(transparent)]
    NotPrivileged(#[from] NotPrivileged),
    /// The configured tag cannot be used in namespace names.
    #[error(transparent)]
    InvalidTag(#[from] naming::InvalidTag),
    /// Too few or too many links asked for.
    #[error("topology: {requested} links requested, expected 1 to {MAX_LINKS}")]
    LinkCount {
        /// The number asked for.
        requested: usize,
    },
    /// A link index that the topology does not have.
    #[error("topology: no link {link} (it has {links})")]
    UnknownLink {
        /// The index asked for.
        link: usize,
        /// How many links there are.
        links: usize,
    },
    /// Creating, entering or removing a namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The run directory could not be created.
    #[error("cannot create the run directory {name}: {source}")]
    RunDir {
        /// Its name in the temporary directory.
        name: String,
        source: std::io::Error,
    },
    /// A configuration step inside a namespace failed.
    #[error("namespace {namespace}: {source}")]
    Step {
        /// The namespace the step ran in.
        namespace: String,
        /// What failed.
        source: StepError,
    },
}

impl TopologyError {
    /// The errno of a request the kernel refused, if that is what failed.
    pub fn errno(&self) -> Option<i32> {
        match self {
            TopologyError::Step {
                source: StepError::Netlink(error),
                ..
            } => error.errno(),
            _ => None,
        }
    }
}

/// One failed configuration step inside a namespace.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A netlink request.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// Turning offloads off.
    #[error(transparent)]
    Offload(#[from] OffloadError),
    /// Writing a sysctl.
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    /// Opening the netlink socket.
    #[error("cannot open a netlink socket: {0}")]
    Socket(std::io::Error),
}

/// A built lab network. Dropping it removes every namespace (and with them
/// every interface) it created.
#[derive(Debug)]
pub struct Topology {
    prefix: RunPrefix,
    client: Netns,
    emu: Netns,
    gateway: Netns,
    server: Netns,
    /// Where the run's files go (the daemons' status sockets), removed with
    /// the namespaces.
    run_dir: PathBuf,
    links: Vec<LinkAddressing>,
    /// Last field: dropped after everything else that refers to the namespaces.
    _cleanup: CleanupGuard,
}

impl Topology {
    /// Checks privileges, sweeps stale namespaces and run directories of
    /// dead runs with the same tag, then builds the run directory, the
    /// namespaces, veths, addresses and routes. On error everything created
    /// so far is removed.
    ///
    /// The two ends of each link know each other's MAC address from the
    /// start (permanent neighbour entries): ARP never crosses the emulated
    /// link. Otherwise a system without a tunnel is judged on the kernel's
    /// neighbour resolution rather than on the link: across a 300 ms delay
    /// the packets of the first ~600 ms wait for the reply in a small queue
    /// (`unres_qlen_bytes`) and the rest are dropped, and on a link that
    /// blackholes, a lost request leaves traffic waiting for the kernel's
    /// next retry, up to a second after the link returned. The links the
    /// lab models (LTE, wifi behind a router, DSL) do not resolve their
    /// next hop across the impaired path either.
    pub fn build(config: &TopologyConfig) -> Result<Topology, TopologyError> {
        require_netns()?;
        if config.links == 0 || config.links > MAX_LINKS {
            return Err(TopologyError::LinkCount {
                requested: config.links,
            });
        }
        let prefix = RunPrefix::new(&config.tag)?;
        sweep_stale(prefix.tag())?;

        let mut cleanup = CleanupGuard::new();
        let run_dir =
            cleanup
                .create_run_dir(&prefix.files())
                .map_err(|source| TopologyError::RunDir {
                    name: prefix.files(),
                    source,
                })?;
        let mut create = |role| cleanup.create_netns(&prefix.namespace(role));
        let client = create(Role::Client)?;
        let emu = create(Role::Emu)?;
        let gateway = create(Role::Gateway)?;
        let server = create(Role::Server)?;
        let topology = Topology {
            links: (0..config.links).map(LinkAddressing::for_link).collect(),
            prefix,
            client,
            emu,
            gateway,
            server,
            run_dir,
            _cleanup: cleanup,
        };
        topology.wire_up()?;
        Ok(topology)
    }

    /// The namespace name prefix of this run.
    pub fn prefix(&self) -> &RunPrefix {
        &self.prefix
    }

    /// The directory for this run's files; it goes when the topology does.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The namespace of `role`.
    pub fn netns(&self, role: Role) -> &Netns {
        match role {
            Role::Client => &self.client,
            Role::Emu => &self.emu,
            Role::Gateway => &self.gateway,
            Role::Server => &self.server,
        }
    }

    /// Names and addresses of every link, in order.
    pub fn links(&self) -> &[LinkAddressing] {
        &self.links
    }

    /// The names and addresses of link `link`.
    pub fn link(&self, link: usize) -> Result<&LinkAddressing, TopologyError> {
        self.links.get(link).ok_or(TopologyError::UnknownLink {
            link,
            links: self.links.len(),
        })
    }

    /// Carrier control for "down"/"up" events: sets the emulator's
    /// client-facing end of the link down or up, so the client's interface
    /// loses or regains carrier as when a wifi or LTE modem drops.
    pub fn set_carrier(&self, link: usize, up: bool) -> Result<(), TopologyError> {
        let name = self.link(link)?.emu_client_side.clone();
        self.in_netns(&self.emu, |nl| async move {
            nl.set_up(&name, up).await?;
            Ok(())
        })
    }

    /// Whether the client's interface of `link` has carrier.
    pub fn client_has_carrier(&self, link: usize) -> Result<bool, TopologyError> {
        let name = self.link(link)?.client_interface.clone();
        self.in_netns(&self.client, |nl| async move {
            Ok(nl.has_carrier(&name).await?)
        })
    }

    /// Routes `destination/prefix_len` from the client via the gateway end
    /// of `link` with `metric` (replacing a route to it with the same
    /// metric). The single-link baseline routes the server over its one
    /// link; systems that bind sockets to links add one route per link with
    /// distinct metrics, so each bound socket finds the route out of its link.
    pub fn route_client_via(
        &self,
        destination: Ipv4Addr,
        prefix_len: u8,
        link: usize,
        metric: u32,
    ) -> Result<(), TopologyError> {
        let next_hop = NextHop::Gateway(self.link(link)?.gateway_address);
        self.route_client(destination, prefix_len, next_hop, metric)
    }

    /// Routes `destination/prefix_len` from the client to `next_hop`, e.g.
    /// into a tunnel's TUN device.
    pub fn route_client(
        &self,
        destination: Ipv4Addr,
        prefix_len: u8,
        next_hop: NextHop,
        metric: u32,
    ) -> Result<(), TopologyError> {
        self.in_netns(&self.client, |nl| async move {
            nl.replace_route(destination, prefix_len, &next_hop, metric)
                .await?;
            Ok(())
        })
    }

    /// Changes the client's address on `link` from `old` to `new` (an
    /// address change event); returns after both are applied. The gateway
    /// learns the new address's MAC at once, as it knows the first one.
    pub fn change_client_address(
        &self,
        link: usize,
        old: Ipv4Addr,
        new: Ipv4Addr,
    ) -> Result<(), TopologyError> {
        let plan = self.link(link)?.clone();
        self.in_netns(&self.gateway, |nl| async move {
            nl.add_permanent_neighbour(&plan.gateway_interface, new, plan.client_mac)
                .await?;
            Ok(())
        })?;
        let name = plan.client_interface;
        self.in_netns(&self.client, |nl| async move {
            // Otherwise removing the primary address of the subnet removes
            // the new, secondary one with it.
            sysctl::write(&format!("net/ipv4/conf/{name}/promote_secondaries"), "1")?;
            nl.add_address(&name, new, SUBNET_PREFIX_LEN).await?;
            nl.remove_address(&name, old, SUBNET_PREFIX_LEN).await?;
            Ok(())
        })
    }

    /// Joins the two emu ends of `link` in a kernel bridge (`br<i>`), so
    /// frames cross the emu namespace without the userspace forwarder: the
    /// netem backend's path.
    pub fn bridge_link(&self, link: usize) -> Result<(), TopologyError> {
        let plan = self.link(link)?.clone();
        self.in_netns(&self.emu, |nl| async move {
            let bridge = format!("br{}", plan.index);
            nl.add_bridge(&bridge).await?;
            disable_ipv6(&bridge)?;
            for port in [&plan.emu_client_side, &plan.emu_gateway_side] {
                nl.set_master(port, &bridge).await?;
            }
            nl.set_up(&bridge, true).await?;
            Ok(())
        })
    }

    /// Creates or replaces the root qdisc of `interface` in the namespace of
    /// `role` with one of `kind` and the encoded `TCA_OPTIONS` payload.
    pub fn replace_root_qdisc(
        &self,
        role: Role,
        interface: &str,
        kind: &str,
        options: Vec<u8>,
    ) -> Result<(), TopologyError> {
        self.in_netns(self.netns(role), |nl| async move {
            nl.replace_root_qdisc(interface, kind, options).await?;
            Ok(())
        })
    }

    /// Runs netlink requests made by `step` inside `netns`.
    fn in_netns<R, F, Fut>(&self, netns: &Netns, step: F) -> Result<R, TopologyError>
    where
        F: FnOnce(Netlink) -> Fut + Send,
        Fut: Future<Output = Result<R, StepError>>,
        R: Send,
    {
        netns
            .block_on(|| async move {
                let netlink = Netlink::connect().map_err(StepError::Socket)?;
                step(netlink).await
            })?
            .map_err(|source| TopologyError::Step {
                namespace: netns.name().to_owned(),
                source,
            })
    }

    /// Creates the veths and configures each namespace.
    fn wire_up(&self) -> Result<(), TopologyError> {
        let client_ns: File = self.client.open()?;
        let gateway_ns: File = self.gateway.open()?;
        let server_ns: File = self.server.open()?;
        let (client_fd, gateway_fd, server_fd) =
            (client_ns.as_fd(), gateway_ns.as_fd(), server_ns.as_fd());
        let links = &self.links;

        self.in_netns(&self.emu, |nl| async move {
            nl.set_up("lo", true).await?;
            for link in links {
                nl.add_veth(
                    &link.emu_client_side,
                    &link.client_interface,
                    client_fd,
                    Some(link.client_mac),
                )
                .await?;
                nl.add_veth(
                    &link.emu_gateway_side,
                    &link.gateway_interface,
                    gateway_fd,
                    Some(link.gateway_mac),
                )
                .await?;
                for name in [&link.emu_client_side, &link.emu_gateway_side] {
                    prepare_interface(name)?;
                    nl.set_up(name, true).await?;
                }
            }
            Ok(())
        })?;

        self.in_netns(&self.gateway, |nl| async move {
            nl.set_up("lo", true).await?;
            sysctl::write("net/ipv4/ip_forward", "1")?;
            nl.add_veth(GATEWAY_TO_SERVER, SERVER_TO_GATEWAY, server_fd, None)
                .await?;
            configure(&nl, GATEWAY_TO_SERVER, GATEWAY_SERVER_SIDE).await?;
            for link in links {
                configure(&nl, &link.gateway_interface, link.gateway_address).await?;
                nl.add_permanent_neighbour(
                    &link.gateway_interface,
                    link.client_address,
                    link.client_mac,
                )
                .await?;
            }
            Ok(())
        })?;

        self.in_netns(&self.client, |nl| async move {
            nl.set_up("lo", true).await?;
            for link in links {
                configure(&nl, &link.client_interface, link.client_address).await?;
                nl.add_permanent_neighbour(
                    &link.client_interface,
                    link.gateway_address,
                    link.gateway_mac,
                )
                .await?;
            }
            Ok(())
        })?;

        self.in_netns(&self.server, |nl| async move {
            nl.set_up("lo", true).await?;
            configure(&nl, SERVER_TO_GATEWAY, SERVER_ADDRESS).await?;
            for (range, prefix_len) in [LINKS_RANGE, TUNNEL_RANGE] {
                nl.replace_route(range, prefix_len, &NextHop::Gateway(GATEWAY_SERVER_SIDE), 0)
                    .await?;
            }
            Ok(())
        })
    }
}

/// Prepares an interface, gives it its /24 address and brings it up.
async fn configure(nl: &Netlink, name: &str, address: Ipv4Addr) -> Result<(), StepError> {
    prepare_interface(name)?;
    nl.add_address(name, address, SUBNET_PREFIX_LEN).await?;
    nl.set_up(name, true).await?;
    Ok(())
}

/// Before an interface goes up: offloads off (frames stay MTU-sized and
/// complete), and IPv6 off.
fn prepare_interface(name: &str) -> Result<(), StepError> {
    offload::disable_offloads(name)?;
    disable_ipv6(name)
}

/// No router solicitations or DAD probes cross the emulated links and blur
/// the counters: the lab is IPv4 on its links (tunnels may carry IPv6 inside).
fn disable_ipv6(name: &str) -> Result<(), StepError> {
    match sysctl::write(&format!("net/ipv6/conf/{name}/disable_ipv6"), "1") {
        Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => Ok(()), // kernel without IPv6
        other => Ok(other?),
    }
}
