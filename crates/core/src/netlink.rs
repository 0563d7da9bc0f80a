//! The kernel's routing state, through rtnetlink.
//!
//! Everything core reads from or writes to the kernel's IPv6 routing tables
//! goes through [`Kernel`]; the rest of the daemon speaks in [`Route`]s.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use futures::channel::mpsc::UnboundedReceiver;
use futures::{StreamExt, TryStreamExt};
use l3roamd_types::MacAddr;
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::{AddressMessageBuilder, Handle, MulticastGroup, RouteMessageBuilder};

/// An IPv6 route as core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination address.
    pub destination: Ipv6Addr,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// Routing table.
    pub table: u32,
    /// Route protocol (who installed it).
    pub protocol: u8,
    /// Output interface index, if any.
    pub oif: Option<u32>,
    /// Unicast, unreachable, local, ...
    pub kind: RouteType,
}

impl Route {
    /// Reads the fields core cares about; `None` for non-IPv6 routes.
    pub fn from_message(msg: &RouteMessage) -> Option<Route> {
        if msg.header.address_family != AddressFamily::Inet6 {
            return None;
        }
        let mut table = u32::from(msg.header.table);
        let mut destination = Ipv6Addr::UNSPECIFIED;
        let mut oif = None;
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(RouteAddress::Inet6(a)) => destination = *a,
                RouteAttribute::Oif(i) => oif = Some(*i),
                _ => {}
            }
        }
        Some(Route {
            destination,
            prefix_len: msg.header.destination_prefix_length,
            table,
            protocol: msg.header.protocol.into(),
            oif,
            kind: msg.header.kind,
        })
    }
}

/// A failed kernel request.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct KernelError {
    what: &'static str,
    #[source]
    source: rtnetlink::Error,
}

/// A change of the kernel's IPv6 routing tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChange {
    /// A route was added or replaced.
    Added(Route),
    /// A route was removed.
    Removed(Route),
}

/// A kernel neighbour (NDP) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// Its IPv6 address.
    pub address: Ipv6Addr,
    /// Interface index.
    pub ifindex: u32,
    /// Link-layer address, when known.
    pub mac: Option<MacAddr>,
    /// Whether the entry says the neighbour is (or recently was) there.
    pub usable: bool,
}

impl Neighbour {
    fn from_message(msg: &NeighbourMessage) -> Option<Neighbour> {
        let mut address = None;
        let mut mac = None;
        for attr in &msg.attributes {
            match attr {
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => address = Some(*a),
                NeighbourAttribute::LinkLayerAddress(l) => mac = MacAddr::from_slice(l).ok(),
                _ => {}
            }
        }
        let usable = matches!(
            msg.header.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
        );
        Some(Neighbour {
            address: address?,
            ifindex: msg.header.ifindex,
            mac,
            usable,
        })
    }
}

/// Subscribes to IPv6 route changes. Subscribe before dumping, so that no
/// change falls between the dump and the first event.
pub fn watch_routes() -> std::io::Result<RouteWatch> {
    let (connection, _handle, messages) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Ipv6Route])?;
    tokio::spawn(connection);
    Ok(RouteWatch { messages })
}

/// The stream of route changes.
#[derive(Debug)]
pub struct RouteWatch {
    messages: UnboundedReceiver<(
        NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
}

impl RouteWatch {
    /// The next IPv6 route change; `None` when the netlink socket is gone.
    pub async fn next(&mut self) -> Option<RouteChange> {
        loop {
            let (message, _) = self.messages.next().await?;
            let NetlinkPayload::InnerMessage(inner) = message.payload else {
                continue;
            };
            let change = match &inner {
                RouteNetlinkMessage::NewRoute(m) => Route::from_message(m).map(RouteChange::Added),
                RouteNetlinkMessage::DelRoute(m) => {
                    Route::from_message(m).map(RouteChange::Removed)
                }
                _ => None,
            };
            if change.is_some() {
                return change;
            }
        }
    }
}

/// The rtnetlink connection.
#[derive(Debug, Clone)]
pub struct Kernel {
    handle: Handle,
}

impl Kernel {
    /// Opens the rtnetlink socket; its connection task runs on the current runtime.
    pub fn connect() -> std::io::Result<Kernel> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Kernel { handle })
    }

    /// All IPv6 routes in `table` installed with `protocol`.
    pub async fn routes(&self, table: u32, protocol: u8) -> Result<Vec<Route>, KernelError> {
        let request = RouteMessageBuilder::<Ipv6Addr>::new().build();
        let messages: Vec<RouteMessage> = self
            .handle
            .route()
            .get(request)
            .execute()
            .try_collect()
            .await
            .map_err(|source| KernelError {
                what: "route dump",
                source,
            })?;
        Ok(messages
            .iter()
            .filter_map(Route::from_message)
            .filter(|r| r.table == table && r.protocol == protocol)
            .collect())
    }

    /// Installs (or replaces) the host route `dst/128 dev ifindex` in `table`
    /// with route protocol `protocol` and route metric `metric`.
    pub async fn add_host_route(
        &self,
        dst: Ipv6Addr,
        ifindex: u32,
        table: u32,
        protocol: u8,
        metric: u32,
    ) -> Result<(), KernelError> {
        self.add_route(dst, 128, ifindex, table, protocol, Some(metric))
            .await
    }

    /// Installs (or replaces) `dst/len dev ifindex` in `table` with
    /// `protocol` and, if given, `metric` (else the kernel's default, 1024).
    pub async fn add_route(
        &self,
        dst: Ipv6Addr,
        len: u8,
        ifindex: u32,
        table: u32,
        protocol: u8,
        metric: Option<u32>,
    ) -> Result<(), KernelError> {
        let mut builder = RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(dst, len)
            .output_interface(ifindex)
            .table_id(table)
            .protocol(RouteProtocol::from(protocol));
        if let Some(metric) = metric {
            builder = builder.priority(metric);
        }
        let message = builder.build();
        self.handle
            .route()
            .add(message)
            .replace()
            .execute()
            .await
            .map_err(|source| KernelError {
                what: "route add",
                source,
            })
    }

    /// Removes a route as it was dumped or announced.
    pub async fn del_route(&self, route: &Route) -> Result<(), KernelError> {
        let mut builder = RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(route.destination, route.prefix_len)
            .table_id(route.table)
            .protocol(RouteProtocol::from(route.protocol))
            .kind(route.kind);
        if let Some(oif) = route.oif {
            builder = builder.output_interface(oif);
        }
        let message = builder.build();
        self.handle
            .route()
            .del(message)
            .execute()
            .await
            .map_err(|source| KernelError {
                what: "route delete",
                source,
            })
    }

    /// Adds `addr/128` to interface `ifindex` without duplicate address
    /// detection (a node-client address: exactly one node holds it).
    pub async fn add_address(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), KernelError> {
        let mut request = self
            .handle
            .address()
            .add(ifindex, std::net::IpAddr::V6(addr), 128)
            .replace();
        request
            .message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        request.execute().await.map_err(|source| KernelError {
            what: "address add",
            source,
        })
    }

    /// Removes `addr/128` from interface `ifindex`.
    pub async fn del_address(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), KernelError> {
        let message = AddressMessageBuilder::<Ipv6Addr>::new()
            .index(ifindex)
            .address(addr, 128)
            .build();
        self.handle
            .address()
            .del(message)
            .execute()
            .await
            .map_err(|source| KernelError {
                what: "address delete",
                source,
            })
    }

    /// The kernel's IPv6 neighbour entries.
    pub async fn neighbours(&self) -> Result<Vec<Neighbour>, KernelError> {
        let messages: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet6)
            .execute()
            .try_collect()
            .await
            .map_err(|source| KernelError {
                what: "neighbour dump",
                source,
            })?;
        Ok(messages
            .iter()
            .filter_map(Neighbour::from_message)
            .collect())
    }

    /// Interface names by index.
    pub async fn interface_names(&self) -> Result<HashMap<u32, String>, KernelError> {
        let links: Vec<_> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| KernelError {
                what: "link dump",
                source,
            })?;
        Ok(links
            .iter()
            .filter_map(|link| {
                link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(name) => Some((link.header.index, name.clone())),
                    _ => None,
                })
            })
            .collect())
    }
}
