//! The kernel's routing state, through rtnetlink: the real implementation
//! of [`crate::kernel::Kernel`] and [`crate::kernel::KernelEvents`].
//!
//! Messages are built and read here only; the rest of prefixd speaks in
//! [`GatewayRoute`], [`KernelRoute`] and [`KernelEvent`]. Reading is
//! lenient: attributes we do not know are ignored, non-IPv6 and non-unicast
//! routes and the kernel's cached clones are skipped, and nothing coming
//! from the kernel can panic.

use std::net::Ipv6Addr;

use futures::channel::mpsc::UnboundedReceiver;
use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST,
};
use rtnetlink::{Handle, MulticastGroup, RouteMessageBuilder};

use l3roamd_types::Ipv6Prefix;

use crate::kernel::{
    GatewayRoute, Kernel, KernelError, KernelEvent, KernelEvents, KernelRoute, LinkState,
    GATEWAY_ROUTE_PRIORITY, MAIN_TABLE,
};

// ===== building requests =====

/// The route message for `route`: `::/0 from <source>`, main table,
/// [`GATEWAY_ROUTE_PRIORITY`], its protocol, gateway (if any) and device.
/// The same message serves to add and to delete, so a delete removes only
/// the route we installed (the kernel matches the protocol, gateway, device
/// and priority given).
pub fn gateway_route_message(route: &GatewayRoute) -> RouteMessage {
    let mut builder = RouteMessageBuilder::<Ipv6Addr>::new()
        .destination_prefix(Ipv6Addr::UNSPECIFIED, 0)
        .source_prefix(route.source.addr(), route.source.prefix_len())
        .table_id(MAIN_TABLE)
        .protocol(RouteProtocol::from(route.protocol))
        .kind(RouteType::Unicast)
        .output_interface(route.ifindex)
        .priority(GATEWAY_ROUTE_PRIORITY);
    if let Some(via) = route.via {
        builder = builder.gateway(via);
    }
    builder.build()
}

/// The RTM_NEWROUTE request installing `route`: `NLM_F_CREATE |
/// NLM_F_REPLACE`, so a new router, uplink or protocol for a prefix is
/// one message and one route, never two (babeld keys its exported routes by
/// prefix only and drops the announcement when either of two is removed).
pub fn replace_request(route: &GatewayRoute) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut request =
        NetlinkMessage::from(RouteNetlinkMessage::NewRoute(gateway_route_message(route)));
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    request
}

/// The RTM_DELROUTE request removing `route`.
pub fn delete_request(route: &GatewayRoute) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut request =
        NetlinkMessage::from(RouteNetlinkMessage::DelRoute(gateway_route_message(route)));
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    request
}

// ===== reading messages =====

/// Why bytes from the kernel were not a route netlink message.
#[derive(Debug, thiserror::Error)]
#[error("undecodable netlink message: {0}")]
pub struct DecodeError(String);

fn ipv6(address: &RouteAddress) -> Option<Ipv6Addr> {
    match address {
        RouteAddress::Inet6(a) => Some(*a),
        _ => None,
    }
}

/// The IPv6 unicast routes `msg` describes: one per next hop, so a
/// multipath route (two uplink routers at one metric) reads as the routes
/// it stands for. Empty for other families, other types, cached clones and
/// prefixes with host bits set.
pub fn routes_from(msg: &RouteMessage) -> Vec<KernelRoute> {
    let header = &msg.header;
    if header.address_family != AddressFamily::Inet6
        || header.kind != RouteType::Unicast
        || header.flags.contains(RouteFlags::Cloned)
    {
        return Vec::new();
    }
    let mut dst = Ipv6Addr::UNSPECIFIED;
    let mut src = Ipv6Addr::UNSPECIFIED;
    let mut via = None;
    let mut ifindex = None;
    let mut priority = 0;
    let mut table = u32::from(header.table);
    let mut hops = Vec::new();
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = ipv6(a).unwrap_or(dst),
            RouteAttribute::Source(a) => src = ipv6(a).unwrap_or(src),
            RouteAttribute::Gateway(a) => via = ipv6(a),
            RouteAttribute::Oif(i) => ifindex = Some(*i),
            RouteAttribute::Priority(p) => priority = *p,
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::MultiPath(next_hops) => hops = next_hops.as_slice().iter().collect(),
            _ => {}
        }
    }
    let Ok(dst) = Ipv6Prefix::new(dst, header.destination_prefix_length) else {
        return Vec::new();
    };
    let src = match header.source_prefix_length {
        0 => None,
        len => match Ipv6Prefix::new(src, len) {
            Ok(p) => Some(p),
            Err(_) => return Vec::new(),
        },
    };
    let route = KernelRoute {
        dst,
        src,
        via,
        ifindex,
        protocol: header.protocol.into(),
        priority,
        table,
    };
    if hops.is_empty() {
        return vec![route];
    }
    hops.into_iter()
        .map(|hop| KernelRoute {
            via: hop.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(a) => ipv6(a),
                _ => None,
            }),
            ifindex: Some(hop.interface_index),
            ..route
        })
        .collect()
}

/// The link `msg` describes; `None` without a name.
pub fn link_from(msg: &LinkMessage) -> Option<LinkState> {
    let mut name = None;
    let mut oper = State::Unknown;
    let mut carrier = msg.header.flags.contains(LinkFlags::LowerUp);
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::OperState(s) => oper = *s,
            LinkAttribute::Carrier(c) => carrier = *c != 0,
            _ => {}
        }
    }
    let admin_up = msg.header.flags.contains(LinkFlags::Up);
    let up = admin_up && (oper == State::Up || (oper == State::Unknown && carrier));
    Some(LinkState {
        ifindex: msg.header.index,
        name: name?,
        up,
    })
}

/// The events one message from the route and link groups stands for.
pub fn events_from(message: &NetlinkMessage<RouteNetlinkMessage>) -> Vec<KernelEvent> {
    match &message.payload {
        NetlinkPayload::Overrun(_) => vec![KernelEvent::Overrun],
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)) => routes_from(m)
            .into_iter()
            .map(KernelEvent::RouteAdded)
            .collect(),
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(m)) => routes_from(m)
            .into_iter()
            .map(KernelEvent::RouteRemoved)
            .collect(),
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
            link_from(m).map(KernelEvent::Link).into_iter().collect()
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
            let name = link_from(m).map(|l| l.name).unwrap_or_default();
            vec![KernelEvent::LinkGone {
                ifindex: m.header.index,
                name,
            }]
        }
        _ => Vec::new(),
    }
}

/// Reads one netlink message from `bytes` (as the kernel sends it) into
/// events.
pub fn parse_events(bytes: &[u8]) -> Result<Vec<KernelEvent>, DecodeError> {
    let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
        .map_err(|e| DecodeError(e.to_string()))?;
    Ok(events_from(&message))
}

// ===== the connection =====

fn failed(what: &'static str) -> impl FnOnce(rtnetlink::Error) -> KernelError {
    move |source| KernelError {
        what,
        source: Box::new(source),
    }
}

/// Sends `request` and waits for its acknowledgement; `ignore` is an errno
/// that counts as success (a route already gone, for a delete).
async fn acknowledged(
    handle: &Handle,
    request: NetlinkMessage<RouteNetlinkMessage>,
    ignore: Option<i32>,
    what: &'static str,
) -> Result<(), KernelError> {
    let mut handle = handle.clone();
    let mut responses = handle.request(request).map_err(failed(what))?;
    while let Some(message) = responses.next().await {
        if let NetlinkPayload::Error(e) = message.payload {
            let errno = -e.raw_code();
            if errno == 0 || Some(errno) == ignore {
                continue;
            }
            return Err(failed(what)(rtnetlink::Error::NetlinkError(e)));
        }
    }
    Ok(())
}

/// The rtnetlink connection for requests.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the rtnetlink socket; its connection task runs on the current runtime.
    pub fn connect() -> std::io::Result<Netlink> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }
}

impl Kernel for Netlink {
    async fn replace_gateway_route(&self, route: &GatewayRoute) -> Result<(), KernelError> {
        acknowledged(&self.handle, replace_request(route), None, "route replace").await
    }

    async fn delete_gateway_route(&self, route: &GatewayRoute) -> Result<(), KernelError> {
        acknowledged(
            &self.handle,
            delete_request(route),
            Some(libc::ESRCH),
            "route delete",
        )
        .await
    }

    async fn dump_routes(&self) -> Result<Vec<KernelRoute>, KernelError> {
        let mut request = RouteMessageBuilder::<Ipv6Addr>::new().build();
        request.header.table = RouteHeader::RT_TABLE_MAIN;
        let messages: Vec<RouteMessage> = self
            .handle
            .route()
            .get(request)
            .execute()
            .try_collect()
            .await
            .map_err(failed("route dump"))?;
        // Without NETLINK_GET_STRICT_CHK the kernel dumps every table:
        // filter here.
        Ok(messages
            .iter()
            .flat_map(routes_from)
            .filter(|r| r.table == MAIN_TABLE)
            .collect())
    }

    async fn dump_links(&self) -> Result<Vec<LinkState>, KernelError> {
        let messages: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(failed("link dump"))?;
        Ok(messages.iter().filter_map(link_from).collect())
    }
}

/// Subscribes to IPv6 route and link changes. Subscribe before dumping, so
/// that no change falls between the dump and the first event.
pub fn watch() -> std::io::Result<KernelWatch> {
    let (connection, _handle, messages) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Ipv6Route, MulticastGroup::Link])?;
    tokio::spawn(connection);
    Ok(KernelWatch {
        messages,
        pending: std::collections::VecDeque::new(),
    })
}

/// The stream of link and route changes.
#[derive(Debug)]
pub struct KernelWatch {
    messages: UnboundedReceiver<(
        NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
    pending: std::collections::VecDeque<KernelEvent>,
}

impl KernelEvents for KernelWatch {
    /// The next change; `None` when the netlink socket is gone.
    async fn next(&mut self) -> Option<KernelEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let (message, _) = self.messages.next().await?;
            self.pending.extend(events_from(&message));
        }
    }
}
