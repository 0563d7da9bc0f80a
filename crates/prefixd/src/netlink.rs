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
///
/// Of the route notifications only default routes of the main table pass
/// (the kernel drops the rest before they are queued): prefixd reads no
/// other (`announce.rs`, `learned.rs`), and a node's host routes, its own
/// clients' and babel's for the whole mesh's, would be tens of thousands of
/// notifications to parse and throw away.
pub fn watch() -> std::io::Result<KernelWatch> {
    use rtnetlink::sys::AsyncSocket;
    use std::os::fd::AsFd;
    let (mut connection, _handle, messages) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Ipv6Route, MulticastGroup::Link])?;
    let wanted = l3roamd_net::bpf::RouteNotifications {
        destination_len: 0,
        table: u8::try_from(MAIN_TABLE).ok(),
        except_protocols: Vec::new(),
    };
    let socket = connection.socket_mut().socket_ref();
    l3roamd_net::bpf::attach(
        socket.as_fd(),
        &l3roamd_net::bpf::route_notifications(&wanted),
    )?;
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

#[cfg(test)]
mod tests {
    use netlink_packet_route::route::{RouteCacheInfo, RouteNextHop, RoutePreference, RouteScope};
    use rtnetlink::packet_core::{NetlinkHeader, NLMSG_OVERRUN};

    use super::*;
    use l3roamd_types::damage::{damaged, xorshift};

    const R1: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const R2: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
    const RTM_NEWROUTE: u16 = 24;
    const RTM_DELROUTE: u16 = 25;

    fn p(s: &str) -> Ipv6Prefix {
        s.parse().unwrap()
    }

    fn gateway_route(via: Option<Ipv6Addr>) -> GatewayRoute {
        GatewayRoute {
            source: p("2001:db8:1::/64"),
            via,
            ifindex: 3,
            protocol: 163,
        }
    }

    fn bytes(mut message: NetlinkMessage<RouteNetlinkMessage>) -> Vec<u8> {
        message.finalize();
        let mut buf = vec![0; message.buffer_len()];
        message.serialize(&mut buf);
        buf
    }

    fn route_of(message: &NetlinkMessage<RouteNetlinkMessage>) -> RouteMessage {
        match &message.payload {
            NetlinkPayload::InnerMessage(
                RouteNetlinkMessage::NewRoute(m) | RouteNetlinkMessage::DelRoute(m),
            ) => m.clone(),
            other => panic!("not a route message: {other:?}"),
        }
    }

    // ===== requests =====

    #[test]
    fn the_replace_request_for_a_gateway_route() {
        let wire = bytes(replace_request(&gateway_route(Some(R1))));
        // nlmsghdr: length, type, flags.
        assert_eq!(
            u32::from_ne_bytes(wire[0..4].try_into().unwrap()) as usize,
            wire.len()
        );
        assert_eq!(u16::from_ne_bytes([wire[4], wire[5]]), RTM_NEWROUTE);
        let flags = u16::from_ne_bytes([wire[6], wire[7]]);
        assert_eq!(
            flags,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        );
        assert_eq!(flags & rtnetlink::packet_core::NLM_F_EXCL, 0);
        // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type.
        assert_eq!(&wire[16..24], &[10, 0, 64, 0, 254, 163, 0, 1]);

        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&wire).unwrap();
        let m = route_of(&parsed);
        assert_eq!(m.header.source_prefix_length, 64);
        assert_eq!(m.header.destination_prefix_length, 0);
        assert_eq!(m.header.table, RouteHeader::RT_TABLE_MAIN);
        assert_eq!(u8::from(m.header.protocol), 163);
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert_eq!(m.header.kind, RouteType::Unicast);
        let attrs = &m.attributes;
        assert!(attrs.contains(&RouteAttribute::Source(RouteAddress::Inet6(
            "2001:db8:1::".parse().unwrap()
        ))));
        assert!(attrs.contains(&RouteAttribute::Gateway(RouteAddress::Inet6(R1))));
        assert!(attrs.contains(&RouteAttribute::Oif(3)));
        assert!(attrs.contains(&RouteAttribute::Priority(GATEWAY_ROUTE_PRIORITY)));
        // What we send reads back as the route we asked for.
        assert_eq!(
            routes_from(&m),
            vec![KernelRoute {
                dst: p("::/0"),
                src: Some(p("2001:db8:1::/64")),
                via: Some(R1),
                ifindex: Some(3),
                protocol: 163,
                priority: GATEWAY_ROUTE_PRIORITY,
                table: MAIN_TABLE,
            }]
        );
        assert!(gateway_route(Some(R1)).is(&routes_from(&m)[0]));
    }

    #[test]
    fn a_point_to_point_route_has_no_gateway() {
        let m = route_of(&replace_request(&gateway_route(None)));
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Gateway(_))));
        assert!(m.attributes.contains(&RouteAttribute::Oif(3)));
        assert_eq!(routes_from(&m)[0].via, None);
    }

    #[test]
    fn the_delete_request_names_the_whole_route() {
        let wire = bytes(delete_request(&gateway_route(Some(R1))));
        assert_eq!(u16::from_ne_bytes([wire[4], wire[5]]), RTM_DELROUTE);
        assert_eq!(
            u16::from_ne_bytes([wire[6], wire[7]]),
            NLM_F_REQUEST | NLM_F_ACK
        );
        assert_eq!(&wire[16..24], &[10, 0, 64, 0, 254, 163, 0, 1]);
        let m = route_of(&NetlinkMessage::deserialize(&wire).unwrap());
        assert!(m
            .attributes
            .contains(&RouteAttribute::Gateway(RouteAddress::Inet6(R1))));
        assert!(m
            .attributes
            .contains(&RouteAttribute::Priority(GATEWAY_ROUTE_PRIORITY)));
    }

    // ===== reading what the kernel sends =====

    /// A route notification as the kernel formats it: babel's
    /// `default from 2001:db8:5::/64 via fe80::2 dev 7 proto babel metric 0`,
    /// with the attributes the kernel adds.
    fn babel_route() -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet6;
        m.header.destination_prefix_length = 0;
        m.header.source_prefix_length = 64;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Babel;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.attributes = vec![
            RouteAttribute::Table(254),
            RouteAttribute::Source(RouteAddress::Inet6("2001:db8:5::".parse().unwrap())),
            RouteAttribute::Priority(0),
            RouteAttribute::Gateway(RouteAddress::Inet6(R2)),
            RouteAttribute::Oif(7),
            RouteAttribute::CacheInfo(RouteCacheInfo::parse(&[0; 32]).unwrap()),
            RouteAttribute::Preference(RoutePreference::Medium),
        ];
        m
    }

    fn babel_kernel_route() -> KernelRoute {
        KernelRoute {
            dst: p("::/0"),
            src: Some(p("2001:db8:5::/64")),
            via: Some(R2),
            ifindex: Some(7),
            protocol: 42,
            priority: 0,
            table: MAIN_TABLE,
        }
    }

    fn wire(inner: RouteNetlinkMessage) -> Vec<u8> {
        bytes(NetlinkMessage::from(inner))
    }

    #[test]
    fn route_notifications_parse() {
        let added = wire(RouteNetlinkMessage::NewRoute(babel_route()));
        assert_eq!(
            parse_events(&added).unwrap(),
            vec![KernelEvent::RouteAdded(babel_kernel_route())]
        );
        let removed = wire(RouteNetlinkMessage::DelRoute(babel_route()));
        assert_eq!(
            parse_events(&removed).unwrap(),
            vec![KernelEvent::RouteRemoved(babel_kernel_route())]
        );
    }

    #[test]
    fn a_plain_default_route_and_a_big_table() {
        let mut m = babel_route();
        m.header.source_prefix_length = 0;
        m.header.table = 252; // RT_TABLE_COMPAT: the real one is in RTA_TABLE
        m.attributes
            .retain(|a| !matches!(a, RouteAttribute::Source(_)));
        m.attributes
            .retain(|a| !matches!(a, RouteAttribute::Table(_)));
        m.attributes.push(RouteAttribute::Table(1000));
        let r = routes_from(&m);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].src, None);
        assert_eq!(r[0].table, 1000);
    }

    #[test]
    fn unknown_attributes_are_ignored() {
        let mut raw = wire(RouteNetlinkMessage::NewRoute(babel_route()));
        // An attribute of a type nobody knows (yet), 4 bytes of payload.
        raw.extend_from_slice(&[8, 0, 0x7f, 0x00, 1, 2, 3, 4]);
        let len = raw.len() as u32;
        raw[0..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(
            parse_events(&raw).unwrap(),
            vec![KernelEvent::RouteAdded(babel_kernel_route())]
        );
    }

    #[test]
    fn other_routes_are_skipped() {
        let mut v4 = babel_route();
        v4.header.address_family = AddressFamily::Inet;
        v4.header.source_prefix_length = 0;
        v4.attributes = vec![RouteAttribute::Oif(7)];
        let mut unreachable = babel_route();
        unreachable.header.kind = RouteType::Unreachable;
        let mut cloned = babel_route();
        cloned.header.flags = RouteFlags::Cloned;
        let mut host_bits = babel_route();
        host_bits.attributes[1] =
            RouteAttribute::Source(RouteAddress::Inet6("2001:db8:5::1".parse().unwrap()));
        for m in [v4, unreachable, cloned, host_bits] {
            assert_eq!(
                parse_events(&wire(RouteNetlinkMessage::NewRoute(m.clone()))).unwrap(),
                vec![],
                "{m:?}"
            );
        }
    }

    fn next_hop(ifindex: u32, via: Ipv6Addr) -> RouteNextHop {
        let mut hop = RouteNextHop::default();
        hop.interface_index = ifindex;
        hop.attributes = vec![RouteAttribute::Gateway(RouteAddress::Inet6(via))];
        hop
    }

    #[test]
    fn a_multipath_route_is_its_next_hops() {
        let mut m = babel_route();
        m.header.source_prefix_length = 0;
        m.header.protocol = RouteProtocol::Ra;
        m.attributes = vec![
            RouteAttribute::Priority(1024),
            RouteAttribute::MultiPath(vec![next_hop(3, R1), next_hop(4, R2)]),
        ];
        let events = parse_events(&wire(RouteNetlinkMessage::NewRoute(m))).unwrap();
        let hops: Vec<(Option<Ipv6Addr>, Option<u32>, u32)> = events
            .iter()
            .map(|e| match e {
                KernelEvent::RouteAdded(r) => (r.via, r.ifindex, r.priority),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            hops,
            vec![(Some(R1), Some(3), 1024), (Some(R2), Some(4), 1024)]
        );
    }

    fn link(flags: LinkFlags, attributes: Vec<LinkAttribute>) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = 3;
        m.header.flags = flags;
        m.attributes = attributes;
        m.attributes.insert(0, LinkAttribute::IfName("wan".into()));
        m
    }

    fn link_up(m: LinkMessage) -> bool {
        match parse_events(&wire(RouteNetlinkMessage::NewLink(m)))
            .unwrap()
            .as_slice()
        {
            [KernelEvent::Link(LinkState {
                ifindex: 3,
                name,
                up,
            })] if name == "wan" => *up,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn link_states() {
        let running = LinkFlags::Up | LinkFlags::Running | LinkFlags::LowerUp;
        assert!(link_up(link(
            running,
            vec![LinkAttribute::OperState(State::Up)]
        )));
        // Up with carrier, no operational state from the driver (tun, ppp).
        assert!(link_up(link(
            LinkFlags::Up | LinkFlags::LowerUp,
            vec![
                LinkAttribute::OperState(State::Unknown),
                LinkAttribute::Carrier(1)
            ]
        )));
        assert!(link_up(link(LinkFlags::Up | LinkFlags::LowerUp, vec![])));
        // Carrier lost.
        assert!(!link_up(link(
            LinkFlags::Up,
            vec![
                LinkAttribute::OperState(State::LowerLayerDown),
                LinkAttribute::Carrier(0)
            ]
        )));
        assert!(!link_up(link(
            LinkFlags::Up,
            vec![
                LinkAttribute::OperState(State::Unknown),
                LinkAttribute::Carrier(0)
            ]
        )));
        assert!(!link_up(link(
            running,
            vec![LinkAttribute::OperState(State::Dormant)]
        )));
        // Administratively down.
        assert!(!link_up(link(
            LinkFlags::LowerUp,
            vec![LinkAttribute::OperState(State::Up)]
        )));
    }

    #[test]
    fn link_gone_and_nameless_links() {
        let gone = wire(RouteNetlinkMessage::DelLink(link(LinkFlags::Up, vec![])));
        assert_eq!(
            parse_events(&gone).unwrap(),
            vec![KernelEvent::LinkGone {
                ifindex: 3,
                name: "wan".into()
            }]
        );
        let mut nameless = LinkMessage::default();
        nameless.header.index = 5;
        assert_eq!(
            parse_events(&wire(RouteNetlinkMessage::NewLink(nameless))).unwrap(),
            vec![]
        );
    }

    #[test]
    fn overrun_asks_for_a_resync() {
        // What netlink-proto hands over after ENOBUFS.
        let mut header = NetlinkHeader::default();
        header.message_type = NLMSG_OVERRUN;
        let message = NetlinkMessage::new(
            header,
            NetlinkPayload::<RouteNetlinkMessage>::Overrun(Vec::new()),
        );
        assert_eq!(events_from(&message), vec![KernelEvent::Overrun]);
    }

    #[test]
    fn other_messages_are_no_events() {
        let message = NetlinkMessage::from(RouteNetlinkMessage::GetRoute(babel_route()));
        assert_eq!(events_from(&message), vec![]);
    }

    #[test]
    fn broken_bytes_are_errors_not_panics() {
        assert!(parse_events(&[]).is_err());
        assert!(parse_events(&[0xff; 3]).is_err());
        let good = wire(RouteNetlinkMessage::NewRoute(babel_route()));
        for len in 0..good.len() {
            let _ = parse_events(&good[..len]);
        }
        // A header claiming more than there is.
        let mut long = good.clone();
        long[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_events(&long).is_err());
        // Attribute lengths gone wrong.
        for i in 28..good.len() {
            let mut bad = good.clone();
            bad[i] = bad[i].wrapping_add(0x41);
            let _ = parse_events(&bad);
        }
    }

    // ===== property: random and damaged input =====

    #[test]
    fn random_and_damaged_messages_never_panic() {
        let mut next = xorshift(0x5eed_0dd0_0000_0003);
        let seeds = [
            wire(RouteNetlinkMessage::NewRoute(babel_route())),
            wire(RouteNetlinkMessage::DelRoute(babel_route())),
        ];
        for round in 0..5000 {
            let _ = parse_events(&damaged(&seeds[round % seeds.len()], &mut next));
        }
    }
}
