//! The few rtnetlink requests the topology needs, run in the calling thread's
//! namespace (inside [`super::Netns::block_on`]).

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkFlags};
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage};
use rtnetlink::packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

/// `TCA_OPTIONS`: a qdisc's own options, opaque here.
const TCA_OPTIONS: u16 = 2;

/// A failed netlink request.
#[derive(Debug, thiserror::Error)]
#[error("netlink: {request}: {source}")]
pub struct NetlinkError {
    /// The request in words, e.g. "add address 198.18.0.2/24 to link0".
    pub request: String,
    /// What the kernel (or the netlink library) said.
    pub source: rtnetlink::Error,
}

impl NetlinkError {
    /// The errno the kernel answered with, if it refused the request.
    pub fn errno(&self) -> Option<i32> {
        match &self.source {
            rtnetlink::Error::NetlinkError(message) => message.code.map(|code| -code.get()),
            _ => None,
        }
    }
}

/// Where a route sends packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// Via a router's address on a connected subnet.
    Gateway(Ipv4Addr),
    /// Straight out of an interface (a TUN device has no next hop).
    Device(String),
}

impl std::fmt::Display for NextHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NextHop::Gateway(gateway) => write!(f, "via {gateway}"),
            NextHop::Device(name) => write!(f, "dev {name}"),
        }
    }
}

/// A netlink connection of the calling thread's namespace.
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens a connection; must be called inside a tokio runtime on the
    /// namespace's thread (the socket belongs to the namespace it is made in).
    pub fn connect() -> std::io::Result<Netlink> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// The index of the interface `name`.
    pub async fn index(&self, name: &str) -> Result<u32, NetlinkError> {
        let found = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute()
            .try_next()
            .await;
        match found {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(NetlinkError {
                request: format!("find interface {name}"),
                source: rtnetlink::Error::RequestFailed,
            }),
            Err(source) => Err(NetlinkError {
                request: format!("find interface {name}"),
                source,
            }),
        }
    }

    /// Creates a veth pair: `local` here, `peer` directly inside the
    /// namespace `peer_netns` (so nothing ever exists in the wrong place),
    /// with the MAC address `peer_mac` if given (else a random one).
    pub async fn add_veth(
        &self,
        local: &str,
        peer: &str,
        peer_netns: BorrowedFd<'_>,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<(), NetlinkError> {
        let peer_builder = LinkUnspec::new_with_name(peer).setns_by_fd(peer_netns.as_raw_fd());
        let peer_message = match peer_mac {
            Some(mac) => peer_builder.address(mac.to_vec()),
            None => peer_builder,
        }
        .build();
        let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(local.to_owned())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|source| NetlinkError {
                request: format!("add veth pair {local} / {peer}"),
                source,
            })
    }

    /// Sets the interface administratively up or down.
    pub async fn set_up(&self, name: &str, up: bool) -> Result<(), NetlinkError> {
        let index = self.index(name).await?;
        let builder = LinkUnspec::new_with_index(index);
        let message = if up { builder.up() } else { builder.down() }.build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|source| NetlinkError {
                request: format!("set {name} {}", if up { "up" } else { "down" }),
                source,
            })
    }

    /// Whether the interface has carrier (`LOWER_UP`): for a veth, whether
    /// both ends are up.
    pub async fn has_carrier(&self, name: &str) -> Result<bool, NetlinkError> {
        let found = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute()
            .try_next()
            .await
            .map_err(|source| NetlinkError {
                request: format!("read flags of {name}"),
                source,
            })?;
        Ok(found.is_some_and(|link| link.header.flags.contains(LinkFlags::LowerUp)))
    }

    /// Adds `address/prefix_len` to the interface.
    pub async fn add_address(
        &self,
        name: &str,
        address: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        let index = self.index(name).await?;
        self.handle
            .address()
            .add(index, IpAddr::V4(address), prefix_len)
            .execute()
            .await
            .map_err(|source| NetlinkError {
                request: format!("add address {address}/{prefix_len} to {name}"),
                source,
            })
    }

    /// Removes `address/prefix_len` from the interface.
    pub async fn remove_address(
        &self,
        name: &str,
        address: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        let request = || format!("remove address {address}/{prefix_len} from {name}");
        let index = self.index(name).await?;
        let mut addresses = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(IpAddr::V4(address))
            .set_prefix_length_filter(prefix_len)
            .execute();
        while let Some(message) = addresses.try_next().await.map_err(|source| NetlinkError {
            request: request(),
            source,
        })? {
            self.handle
                .address()
                .del(message)
                .execute()
                .await
                .map_err(|source| NetlinkError {
                    request: request(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Adds (or replaces) a permanent neighbour entry: `address` on the
    /// interface `name` is at `mac`, without ever asking (ARP).
    pub async fn add_permanent_neighbour(
        &self,
        name: &str,
        address: Ipv4Addr,
        mac: [u8; 6],
    ) -> Result<(), NetlinkError> {
        let index = self.index(name).await?;
        self.handle
            .neighbours()
            .add(index, IpAddr::V4(address))
            .link_layer_address(&mac)
            .replace()
            .execute()
            .await
            .map_err(|source| NetlinkError {
                request: format!("add permanent neighbour {address} on {name}"),
                source,
            })
    }

    /// Adds (or replaces) the route `destination/prefix_len` with `metric`
    /// via `next_hop`. Routes to one destination with different metrics
    /// coexist: the lowest wins for ordinary sockets, while a socket bound to
    /// a device uses the route through that device.
    pub async fn replace_route(
        &self,
        destination: Ipv4Addr,
        prefix_len: u8,
        next_hop: &NextHop,
        metric: u32,
    ) -> Result<(), NetlinkError> {
        let builder = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(destination, prefix_len)
            .priority(metric);
        let builder = match next_hop {
            NextHop::Gateway(gateway) => builder.gateway(*gateway),
            NextHop::Device(name) => builder.output_interface(self.index(name).await?),
        };
        self.handle
            .route()
            .add(builder.build())
            .replace()
            .execute()
            .await
            .map_err(|source| NetlinkError {
                request: format!("route {destination}/{prefix_len} {next_hop} metric {metric}"),
                source,
            })
    }

    /// Creates the bridge `name`.
    pub async fn add_bridge(&self, name: &str) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .add(LinkBridge::new(name).build())
            .execute()
            .await
            .map_err(|source| NetlinkError {
                request: format!("add bridge {name}"),
                source,
            })
    }

    /// Makes `port` a port of the bridge `bridge`.
    pub async fn set_master(&self, port: &str, bridge: &str) -> Result<(), NetlinkError> {
        let bridge_index = self.index(bridge).await?;
        let port_index = self.index(port).await?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(port_index)
                    .controller(bridge_index)
                    .build(),
            )
            .execute()
            .await
            .map_err(|source| NetlinkError {
                request: format!("add {port} to bridge {bridge}"),
                source,
            })
    }

    /// Creates or replaces the root qdisc of `name` with one of `kind`
    /// whose `TCA_OPTIONS` payload is `options` (already encoded).
    pub async fn replace_root_qdisc(
        &self,
        name: &str,
        kind: &str,
        options: Vec<u8>,
    ) -> Result<(), NetlinkError> {
        let request = || format!("set the root qdisc of {name} to {kind}");
        let index = self.index(name).await?;
        let mut message = TcMessage::with_index(index as i32);
        message.header.parent = TcHandle::ROOT;
        message.attributes.push(TcAttribute::Kind(kind.to_owned()));
        message
            .attributes
            .push(TcAttribute::Other(DefaultNla::new(TCA_OPTIONS, options)));
        let mut packet = NetlinkMessage::from(RouteNetlinkMessage::NewQueueDiscipline(message));
        packet.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        let mut responses = self
            .handle
            .clone()
            .request(packet)
            .map_err(|source| NetlinkError {
                request: request(),
                source,
            })?;
        while let Some(response) = responses.next().await {
            if let NetlinkPayload::Error(error) = response.payload
                && error.code.is_some()
            {
                return Err(NetlinkError {
                    request: request(),
                    source: rtnetlink::Error::NetlinkError(error),
                });
            }
        }
        Ok(())
    }
}
