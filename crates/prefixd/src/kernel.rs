//! The seam between prefixd's gateway logic and the kernel's routing state.
//!
//! prefixd touches the kernel for three things: installing and removing the
//! source-specific default routes a gateway announces through babel
//! (`default from <prefix> via <router> dev <uplink> proto <N>`), reading
//! the IPv6 main table (the uplink's default route, babel's source-specific
//! routes), and following links and route changes. It does so only through
//! [`Kernel`] and [`KernelEvents`], as babeld keeps its kernel behind
//! `kernel.h` and core behind `crate::kernel` of its own crate. The real
//! implementation is [`crate::netlink::Netlink`] /
//! [`crate::netlink::KernelWatch`]; the logic in `crate::uplink`,
//! `crate::announce` and `crate::learned` is pure (events in, actions out)
//! and tested without root, and [`memory::MemoryKernel`] (tests only) keys
//! routes as the kernel does, so replace-in-place is tested too.
//!
//! The traits are used with generics only (no `dyn`), so their `async fn`s
//! need no boxing.

use std::net::Ipv6Addr;

use l3roamd_types::Ipv6Prefix;

/// The main routing table (`RT_TABLE_MAIN`).
pub const MAIN_TABLE: u32 = 254;

/// babeld's route protocol (`RTPROT_BABEL`).
pub const BABEL_PROTOCOL: u8 = 42;

/// The priority (kernel metric) of every gateway route prefixd installs.
///
/// The kernel keys an IPv6 route by (table, destination, source, priority);
/// the protocol, gateway and device are not part of the key. Installing
/// every gateway route at one fixed priority with `NLM_F_REPLACE` therefore
/// changes router, uplink or protocol (metric class) of a prefix in one
/// step, and babeld never sees two routes for one prefix. 1024 is what the
/// kernel would pick anyway (`IP6_RT_PRIO_USER`), and it is below babeld's
/// `KERNEL_INFINITY` (0xFFFF): babeld ignores default routes at or above it.
pub const GATEWAY_ROUTE_PRIORITY: u32 = 1024;

/// A source-specific default route a gateway installs for babel to announce:
/// `default from <source> [via <via>] dev <ifindex> proto <protocol>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GatewayRoute {
    /// The client prefix the route is for (its source prefix).
    pub source: Ipv6Prefix,
    /// The uplink router; `None` on a point-to-point uplink whose default
    /// route has no gateway (the route is then `dev` only).
    pub via: Option<Ipv6Addr>,
    /// The uplink interface.
    pub ifindex: u32,
    /// Route protocol: the metric class babeld's redistribute rule gives it.
    pub protocol: u8,
}

impl GatewayRoute {
    /// Whether the kernel route `route` is this one, as the kernel holds it.
    pub fn is(&self, route: &KernelRoute) -> bool {
        route.dst.is_default()
            && route.src == Some(self.source)
            && route.via == self.via
            && route.ifindex == Some(self.ifindex)
            && route.protocol == self.protocol
            && route.priority == GATEWAY_ROUTE_PRIORITY
            && route.table == MAIN_TABLE
    }
}

/// An IPv6 unicast route read from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelRoute {
    /// Destination prefix.
    pub dst: Ipv6Prefix,
    /// Source prefix of a source-specific route (`rtm_src_len > 0`).
    pub src: Option<Ipv6Prefix>,
    /// Gateway, if any.
    pub via: Option<Ipv6Addr>,
    /// Output interface, if any.
    pub ifindex: Option<u32>,
    /// Route protocol (who installed it).
    pub protocol: u8,
    /// Priority (the kernel's route metric); 0 when the message had none.
    pub priority: u32,
    /// Routing table.
    pub table: u32,
}

impl KernelRoute {
    /// A default route in the main table: plain when `src` is `None`,
    /// source-specific otherwise.
    pub fn is_main_default(&self) -> bool {
        self.dst.is_default() && self.table == MAIN_TABLE
    }
}

/// An interface as the gateway logic needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub name: String,
    /// Whether it can carry packets: administratively up and operationally
    /// up, or up with carrier while the driver reports no operational state
    /// ("unknown", as tun and many point-to-point devices do).
    pub up: bool,
}

/// A change in the kernel that the gateway logic follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// An IPv6 route was added or replaced.
    RouteAdded(KernelRoute),
    /// An IPv6 route was removed.
    RouteRemoved(KernelRoute),
    /// A link appeared or changed.
    Link(LinkState),
    /// A link is gone.
    LinkGone {
        /// Its index.
        ifindex: u32,
        /// Its last name.
        name: String,
    },
    /// Events were lost (the socket's buffer overran): dump links and
    /// routes again and resynchronise.
    Overrun,
}

/// A failed kernel request.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct KernelError {
    /// What was asked.
    pub what: &'static str,
    /// Why it failed.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The kernel's routing state, as the gateway logic uses it.
#[allow(async_fn_in_trait)] // generic use only
pub trait Kernel {
    /// Installs `route` with `NLM_F_CREATE | NLM_F_REPLACE` at
    /// [`GATEWAY_ROUTE_PRIORITY`], replacing in place whatever route the
    /// prefix has there (another router, uplink or protocol).
    async fn replace_gateway_route(&self, route: &GatewayRoute) -> Result<(), KernelError>;
    /// Removes `route`; a route already gone is not an error.
    async fn delete_gateway_route(&self, route: &GatewayRoute) -> Result<(), KernelError>;
    /// The unicast routes of the IPv6 main table.
    async fn dump_routes(&self) -> Result<Vec<KernelRoute>, KernelError>;
    /// Every link.
    async fn dump_links(&self) -> Result<Vec<LinkState>, KernelError>;
}

/// The kernel's stream of link and route changes.
#[allow(async_fn_in_trait)]
pub trait KernelEvents {
    /// The next change; `None` when the source is gone.
    async fn next(&mut self) -> Option<KernelEvent>;
}

/// An in-memory kernel for tests: routes keyed as the kernel keys them.
#[cfg(test)]
pub mod memory {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;

    type Key = (u32, Ipv6Prefix, Option<Ipv6Prefix>, u32);

    /// Routes by (table, destination, source, priority), links by index.
    #[derive(Debug, Default)]
    pub struct MemoryKernel {
        /// The routes.
        pub routes: RefCell<BTreeMap<Key, KernelRoute>>,
        /// The links.
        pub links: RefCell<Vec<LinkState>>,
        /// Every event the kernel would have sent, in order.
        pub events: RefCell<Vec<KernelEvent>>,
    }

    fn key(r: &KernelRoute) -> Key {
        (r.table, r.dst, r.src, r.priority)
    }

    fn kernel_route(route: &GatewayRoute) -> KernelRoute {
        KernelRoute {
            dst: Ipv6Prefix::new(Ipv6Addr::UNSPECIFIED, 0).unwrap(),
            src: Some(route.source),
            via: route.via,
            ifindex: Some(route.ifindex),
            protocol: route.protocol,
            priority: GATEWAY_ROUTE_PRIORITY,
            table: MAIN_TABLE,
        }
    }

    impl MemoryKernel {
        /// Adds a route someone else installed (`ip route add`).
        pub fn add(&self, route: KernelRoute) {
            self.routes.borrow_mut().insert(key(&route), route);
            self.events
                .borrow_mut()
                .push(KernelEvent::RouteAdded(route));
        }

        /// Removes a route as someone else would (`ip route del`).
        pub fn remove(&self, route: &KernelRoute) -> bool {
            let gone = self.routes.borrow_mut().remove(&key(route));
            if let Some(r) = gone {
                self.events.borrow_mut().push(KernelEvent::RouteRemoved(r));
            }
            gone.is_some()
        }

        /// The routes with source prefix `source`.
        pub fn from_source(&self, source: Ipv6Prefix) -> Vec<KernelRoute> {
            let routes = self.routes.borrow();
            routes
                .values()
                .filter(|r| r.src == Some(source))
                .copied()
                .collect()
        }
    }

    impl Kernel for MemoryKernel {
        async fn replace_gateway_route(&self, route: &GatewayRoute) -> Result<(), KernelError> {
            // NLM_F_REPLACE: the key has no protocol, gateway or device.
            let r = kernel_route(route);
            self.routes.borrow_mut().insert(key(&r), r);
            self.events.borrow_mut().push(KernelEvent::RouteAdded(r));
            Ok(())
        }

        async fn delete_gateway_route(&self, route: &GatewayRoute) -> Result<(), KernelError> {
            let r = kernel_route(route);
            let matches = self.routes.borrow().get(&key(&r)) == Some(&r);
            if matches {
                self.remove(&r);
            }
            Ok(())
        }

        async fn dump_routes(&self) -> Result<Vec<KernelRoute>, KernelError> {
            Ok(self.routes.borrow().values().copied().collect())
        }

        async fn dump_links(&self) -> Result<Vec<LinkState>, KernelError> {
            Ok(self.links.borrow().clone())
        }
    }
}
