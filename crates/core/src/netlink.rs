//! The kernel's routing state, through rtnetlink: the real implementation
//! of [`crate::kernel::Kernel`] and [`crate::kernel::RouteEvents`].

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
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::{AddressMessageBuilder, Handle, MulticastGroup, RouteMessageBuilder};

use crate::kernel::{
    Address, Kernel, KernelError, KernelOp, Neighbour, Route, RouteChange, RouteEvents,
};

/// Requests of a batch in flight at once on the rtnetlink socket. The
/// kernel answers each request while it is sent and queues the answer on
/// the socket: were more in flight than the receive buffer holds (about
/// 270 acknowledgements in the default 208 KiB), the excess answers would
/// be dropped and their requests never complete. 128 keeps well below,
/// and already pipelines: measured 30,000 host routes with 1, 16, 128 in
/// flight in docs/design-notes.md, "Many clients on one node".
pub const IN_FLIGHT: usize = 128;

fn failed(what: &'static str) -> impl FnOnce(rtnetlink::Error) -> KernelError {
    move |source| KernelError {
        what,
        source: Box::new(source),
    }
}

/// Reads the fields core cares about; `None` for non-IPv6 routes.
pub fn route_from(msg: &RouteMessage) -> Option<Route> {
    if msg.header.address_family != AddressFamily::Inet6 {
        return None;
    }
    let mut table = u32::from(msg.header.table);
    let mut destination = Ipv6Addr::UNSPECIFIED;
    let mut oif = None;
    let mut gateway = None;
    let mut metric = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => destination = *a,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet6(a)) => gateway = Some(*a),
            _ => {}
        }
    }
    Some(Route {
        destination,
        prefix_len: msg.header.destination_prefix_length,
        table,
        protocol: msg.header.protocol.into(),
        oif,
        gateway,
        metric,
        kind: msg.header.kind,
    })
}

/// The request for `route`: the fields given, and no others (an absent
/// interface or metric matches any on delete).
fn route_message(route: &Route) -> RouteMessage {
    let mut builder = RouteMessageBuilder::<Ipv6Addr>::new()
        .destination_prefix(route.destination, route.prefix_len)
        .table_id(route.table)
        .protocol(RouteProtocol::from(route.protocol))
        .kind(route.kind);
    if let Some(oif) = route.oif {
        builder = builder.output_interface(oif);
    }
    if let Some(gateway) = route.gateway {
        // On-link: the TUN device has no prefix the gateway could be in.
        builder = builder.gateway(gateway).onlink();
    }
    if let Some(metric) = route.metric {
        builder = builder.priority(metric);
    }
    builder.build()
}

/// Reads a neighbour entry; `None` without an IPv6 destination.
pub fn neighbour_from(msg: &NeighbourMessage) -> Option<Neighbour> {
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

/// The route notifications core reads ([`crate::engine`]'s
/// `route_change`): host routes of the export table, not its own host
/// routes nor its seek routes, which it knows of from its own requests
/// (`Engine::settle`). Everything else it would only parse and throw away:
/// with 10,000 clients, 30,000 notifications of its own routes alone, and
/// the node-client addresses' local routes (table 255).
pub fn route_filter(config: &crate::config::CoreConfig) -> l3roamd_net::bpf::RouteNotifications {
    l3roamd_net::bpf::RouteNotifications {
        destination_len: 128,
        table: u8::try_from(config.export_table).ok(),
        except_protocols: vec![config.route_protocol, config.seek_protocol],
    }
}

/// Subscribes to IPv6 route changes, those `wanted` only (filtered in the
/// kernel). Subscribe before dumping, so that no change falls between the
/// dump and the first event.
pub fn watch_routes(wanted: &l3roamd_net::bpf::RouteNotifications) -> std::io::Result<RouteWatch> {
    use rtnetlink::sys::AsyncSocket;
    use std::os::fd::AsFd;
    let (mut connection, _handle, messages) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Ipv6Route])?;
    let socket = connection.socket_mut().socket_ref();
    l3roamd_net::bpf::attach(
        socket.as_fd(),
        &l3roamd_net::bpf::route_notifications(wanted),
    )?;
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

impl RouteEvents for RouteWatch {
    /// The next IPv6 route change; `None` when the netlink socket is gone.
    async fn next(&mut self) -> Option<RouteChange> {
        loop {
            let (message, _) = self.messages.next().await?;
            let NetlinkPayload::InnerMessage(inner) = message.payload else {
                continue;
            };
            let change = match &inner {
                RouteNetlinkMessage::NewRoute(m) => route_from(m).map(RouteChange::Added),
                RouteNetlinkMessage::DelRoute(m) => route_from(m).map(RouteChange::Removed),
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
pub struct Netlink {
    handle: Handle,
    /// Requests of a batch in flight at once (`core.route_batch`).
    in_flight: usize,
}

impl Netlink {
    /// Opens the rtnetlink socket; its connection task runs on the current
    /// runtime. `in_flight`: requests of a batch sent before their answers
    /// are awaited (1: one round trip each).
    pub fn connect(in_flight: usize) -> std::io::Result<Netlink> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Netlink {
            handle,
            in_flight: in_flight.clamp(1, IN_FLIGHT),
        })
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
            .map_err(failed("link dump"))?;
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

/// The flags of the node-client addresses core adds to `lo`: no duplicate
/// address detection, no prefix route (see [`Netlink::add_address`]).
const CORE_ADDRESS_FLAGS: AddressFlags = AddressFlags::Nodad.union(AddressFlags::Noprefixroute);

impl Kernel for Netlink {
    /// Pipelined on the one socket: up to [`IN_FLIGHT`] requests sent
    /// before the first acknowledgement is read; netlink-proto matches each
    /// answer to its request by sequence number, so every request gets its
    /// own result. `buffered` starts the requests in order and yields the
    /// results in order.
    async fn apply(&self, ops: &[KernelOp]) -> Vec<Result<(), KernelError>> {
        futures::stream::iter(ops)
            .map(|op| async move {
                match op {
                    KernelOp::ReplaceRoute(r) => self.replace_route(r).await,
                    KernelOp::DeleteRoute(r) => self.delete_route(r).await,
                    KernelOp::AddAddress(a, i) => self.add_address(*a, *i).await,
                    KernelOp::DelAddress(a, i) => self.del_address(*a, *i).await,
                    KernelOp::DeleteNeighbour(a, i) => self.delete_neighbour(*a, *i).await,
                }
            })
            .buffered(self.in_flight)
            .collect()
            .await
    }

    async fn routes(&self, table: u32, protocol: u8) -> Result<Vec<Route>, KernelError> {
        let request = RouteMessageBuilder::<Ipv6Addr>::new().build();
        let messages: Vec<RouteMessage> = self
            .handle
            .route()
            .get(request)
            .execute()
            .try_collect()
            .await
            .map_err(failed("route dump"))?;
        Ok(messages
            .iter()
            .filter_map(route_from)
            .filter(|r| r.table == table && r.protocol == protocol)
            .collect())
    }

    async fn replace_route(&self, route: &Route) -> Result<(), KernelError> {
        self.handle
            .route()
            .add(route_message(route))
            .replace()
            .execute()
            .await
            .map_err(failed("route add"))
    }

    async fn delete_route(&self, route: &Route) -> Result<(), KernelError> {
        self.handle
            .route()
            .del(route_message(route))
            .execute()
            .await
            .map_err(failed("route delete"))
    }

    async fn neighbours(&self) -> Result<Vec<Neighbour>, KernelError> {
        let messages: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet6)
            .execute()
            .try_collect()
            .await
            .map_err(failed("neighbour dump"))?;
        Ok(messages.iter().filter_map(neighbour_from).collect())
    }

    async fn delete_neighbour(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), KernelError> {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Inet6;
        message.header.ifindex = ifindex;
        message
            .attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet6(
                addr,
            )));
        self.handle
            .neighbours()
            .del(message)
            .execute()
            .await
            .map_err(failed("neighbour delete"))
    }

    async fn addresses(&self, ifindex: u32) -> Result<Vec<Address>, KernelError> {
        let messages: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ifindex)
            .execute()
            .try_collect()
            .await
            .map_err(failed("address dump"))?;
        Ok(messages
            .iter()
            .filter(|m| m.header.index == ifindex)
            .flat_map(|m| {
                let as_core_adds = m.attributes.iter().any(
                    |a| matches!(a, AddressAttribute::Flags(f) if f.contains(CORE_ADDRESS_FLAGS)),
                );
                m.attributes.iter().filter_map(move |a| match a {
                    AddressAttribute::Address(std::net::IpAddr::V6(addr)) => Some(Address {
                        addr: *addr,
                        as_core_adds,
                    }),
                    _ => None,
                })
            })
            .collect())
    }

    async fn add_address(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), KernelError> {
        let mut request = self
            .handle
            .address()
            .add(ifindex, std::net::IpAddr::V6(addr), 128)
            .replace();
        // No DAD (the address is ours by the client database's claim, and
        // lo has no neighbours), and no prefix route: core installs the
        // address's host route itself (of its own protocol, in the export
        // table, `HoldRoute`), so the kernel's `addr/128 dev lo proto
        // kernel` would be a second route for one prefix, and adding it
        // was a third of the kernel's cost of the address at 10,000
        // clients (design notes, "Many clients on one node"). An address
        // left with its prefix route by an older core loses the route
        // when this replaces it.
        request
            .message_mut()
            .attributes
            .push(AddressAttribute::Flags(CORE_ADDRESS_FLAGS));
        request.execute().await.map_err(failed("address add"))
    }

    async fn del_address(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), KernelError> {
        let message = AddressMessageBuilder::<Ipv6Addr>::new()
            .index(ifindex)
            .address(addr, 128)
            .build();
        self.handle
            .address()
            .del(message)
            .execute()
            .await
            .map_err(failed("address delete"))
    }

    fn interface_index(&self, name: &str) -> Option<u32> {
        l3roamd_net::interface_index(name)
    }

    fn interface_name(&self, index: u32) -> Option<String> {
        l3roamd_net::interface_name(index)
    }

    fn bridge_of(&self, name: &str) -> Option<String> {
        std::fs::read_link(format!("/sys/class/net/{name}/master"))
            .ok()
            .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l3roamd_types::damage::xorshift;
    use netlink_packet_route::route::{RouteFlags, RouteType};

    fn wire(inner: RouteNetlinkMessage) -> Vec<u8> {
        let mut message = NetlinkMessage::from(inner);
        message.finalize();
        let mut buf = vec![0; message.buffer_len()];
        message.serialize(&mut buf);
        buf
    }

    fn host_route() -> Route {
        Route {
            destination: "fddd:1::100".parse().unwrap(),
            prefix_len: 128,
            table: 254,
            protocol: 158,
            oif: Some(5),
            gateway: None,
            metric: Some(1024),
            kind: RouteType::Unicast,
        }
    }

    #[test]
    fn a_route_reads_back_as_it_was_asked_for() {
        let bytes = wire(RouteNetlinkMessage::NewRoute(route_message(&host_route())));
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)) = msg.payload else {
            panic!("{:?}", msg.payload);
        };
        assert_eq!(route_from(&m), Some(host_route()));
    }

    #[test]
    fn a_catch_all_is_asked_for_with_an_on_link_gateway_and_reads_back() {
        let catch_all = Route {
            destination: "fddd:1::".parse().unwrap(),
            prefix_len: 64,
            gateway: Some("fe80::1".parse().unwrap()),
            ..host_route()
        };
        let message = route_message(&catch_all);
        assert!(message.header.flags.contains(RouteFlags::Onlink));
        assert!(route_message(&host_route()).header.flags.is_empty());
        let bytes = wire(RouteNetlinkMessage::NewRoute(message));
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)) = msg.payload else {
            panic!("{:?}", msg.payload);
        };
        assert_eq!(route_from(&m), Some(catch_all));
    }

    #[test]
    fn the_kernel_filter_passes_other_nodes_host_routes_only() {
        let filter = l3roamd_net::bpf::route_notifications(&route_filter(
            &crate::config::CoreConfig::default(),
        ));
        let passes = |route: Route, added: bool| {
            let m = route_message(&route);
            let bytes = wire(if added {
                RouteNetlinkMessage::NewRoute(m)
            } else {
                RouteNetlinkMessage::DelRoute(m)
            });
            l3roamd_net::bpf::interpret(&filter, &bytes, 0).unwrap() != 0
        };
        let babel = Route {
            protocol: 42,
            ..host_route()
        };
        assert!(passes(babel.clone(), true));
        assert!(passes(babel.clone(), false));
        let handover = Route {
            protocol: 159,
            ..host_route()
        };
        assert!(passes(handover, true));
        // Core's own host routes (158) and seek routes (157), a prefix, the
        // local table: dropped in the kernel.
        assert!(!passes(host_route(), true));
        assert!(!passes(host_route(), false));
        assert!(!passes(
            Route {
                protocol: 157,
                ..babel.clone()
            },
            true
        ));
        assert!(!passes(
            Route {
                prefix_len: 64,
                ..babel.clone()
            },
            true
        ));
        assert!(!passes(
            Route {
                table: 255,
                ..babel
            },
            true
        ));
    }

    #[test]
    fn random_and_damaged_messages_never_panic() {
        let mut next = xorshift(0x5eed_0dd0_0000_0009);
        let good = wire(RouteNetlinkMessage::NewRoute(route_message(&host_route())));
        for _ in 0..5000 {
            let mut bytes = good.clone();
            match next() % 3 {
                0 => bytes.truncate((next() as usize) % (good.len() + 1)),
                1 => {
                    for _ in 0..=(next() % 4) {
                        let at = (next() as usize) % bytes.len();
                        bytes[at] = next() as u8;
                    }
                }
                // The same bytes as a neighbour message (type 28, RTM_NEWNEIGH).
                _ => bytes[4] = 28,
            }
            let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes) else {
                continue;
            };
            match &msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)) => {
                    let _ = route_from(m);
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m)) => {
                    let _ = neighbour_from(m);
                }
                _ => {}
            }
        }
    }
}
