//! The seam between core's engine and the operating system.
//!
//! The engine reaches the kernel's routing state, the TUN device, the data
//! path socket and the ICMPv6 socket only through the traits here, as babeld
//! keeps its kernel behind `kernel.h`. The real implementations are
//! [`crate::netlink::Netlink`], [`crate::tun::Tun`],
//! [`crate::datapath::DataPath`] and [`crate::icmp::IcmpSender`] (bundled as
//! [`Host`]); the unit tests use the in-memory ones in `crate::mock`, so the
//! engine's orchestration (adoption, release, handover, parking, restart) is
//! tested without root and without sleeping.
//!
//! The traits are crate-private and used with generics only (no `dyn`), so
//! their `async fn`s need no boxing and keep whatever auto traits the
//! implementation's futures have.

use std::net::Ipv6Addr;

use l3roamd_intercom::Packet;
use l3roamd_types::MacAddr;
use netlink_packet_route::route::RouteType;

use crate::datapath::Received;

/// An IPv6 address of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// The address.
    pub addr: Ipv6Addr,
    /// Whether it has the flags [`Kernel::add_address`] gives it (no
    /// duplicate address detection, no prefix route of the kernel's).
    pub as_core_adds: bool,
}

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
    /// Next hop, on-link on `oif` when core installs it: the catch-alls
    /// name one, so that every destination routed into the TUN device
    /// shares its one neighbour entry instead of taking its own.
    pub gateway: Option<Ipv6Addr>,
    /// Route metric (priority); `None`: the kernel's default.
    pub metric: Option<u32>,
    /// Unicast, unreachable, local, ...
    pub kind: RouteType,
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

/// One request of a batch ([`Kernel::apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelOp {
    /// [`Kernel::replace_route`].
    ReplaceRoute(Route),
    /// [`Kernel::delete_route`].
    DeleteRoute(Route),
    /// [`Kernel::add_address`].
    AddAddress(Ipv6Addr, u32),
    /// [`Kernel::del_address`].
    DelAddress(Ipv6Addr, u32),
    /// [`Kernel::delete_neighbour`].
    DeleteNeighbour(Ipv6Addr, u32),
}

impl KernelOp {
    /// What the request touches: two requests with the same key must reach
    /// the kernel in order, requests with different keys commute (a route
    /// via `lo` does not need the address on `lo` first, for instance).
    pub fn key(&self) -> (u8, Ipv6Addr) {
        match self {
            KernelOp::ReplaceRoute(r) | KernelOp::DeleteRoute(r) => (0, r.destination),
            KernelOp::AddAddress(a, _) | KernelOp::DelAddress(a, _) => (1, *a),
            KernelOp::DeleteNeighbour(a, _) => (2, *a),
        }
    }
}

/// The kernel's routing state and interfaces, as the engine uses them.
#[allow(async_fn_in_trait)] // crate-private, generic use only
pub trait Kernel {
    /// Carries out `ops`, one result per request in the same order. The
    /// requests commute (no two share a [`KernelOp::key`]): an
    /// implementation may have them all in flight at once, as rtnetlink
    /// does, instead of waiting a round trip for each (10,000 clients with
    /// three addresses each are 30,000 routes).
    async fn apply(&self, ops: &[KernelOp]) -> Vec<Result<(), KernelError>> {
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            results.push(match op {
                KernelOp::ReplaceRoute(r) => self.replace_route(r).await,
                KernelOp::DeleteRoute(r) => self.delete_route(r).await,
                KernelOp::AddAddress(a, i) => self.add_address(*a, *i).await,
                KernelOp::DelAddress(a, i) => self.del_address(*a, *i).await,
                KernelOp::DeleteNeighbour(a, i) => self.delete_neighbour(*a, *i).await,
            });
        }
        results
    }

    /// All IPv6 routes in `table` installed with `protocol`.
    async fn routes(&self, table: u32, protocol: u8) -> Result<Vec<Route>, KernelError>;
    /// Installs `route`, replacing a route with the same destination,
    /// table and metric in one step (`NLM_F_REPLACE`): babeld never sees
    /// two routes for one prefix, nor a gap between them.
    async fn replace_route(&self, route: &Route) -> Result<(), KernelError>;
    /// Removes the route matching destination, table, protocol and (when
    /// given) metric and interface.
    async fn delete_route(&self, route: &Route) -> Result<(), KernelError>;
    /// The kernel's IPv6 neighbour entries.
    async fn neighbours(&self) -> Result<Vec<Neighbour>, KernelError>;
    /// Removes the neighbour entry of `addr` on `ifindex` (and with it any
    /// packets queued for its resolution, without errors to their senders).
    async fn delete_neighbour(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), KernelError>;
    /// The IPv6 addresses of interface `ifindex`.
    async fn addresses(&self, ifindex: u32) -> Result<Vec<Address>, KernelError>;
    /// Adds `addr/128` to `ifindex` without duplicate address detection.
    async fn add_address(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), KernelError>;
    /// Removes `addr/128` from `ifindex`.
    async fn del_address(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), KernelError>;
    /// The index of interface `name`.
    fn interface_index(&self, name: &str) -> Option<u32>;
    /// The name of interface `index`.
    fn interface_name(&self, index: u32) -> Option<String>;
    /// The bridge interface `name` is a port of, if any.
    fn bridge_of(&self, name: &str) -> Option<String>;
}

/// The kernel's stream of route changes.
#[allow(async_fn_in_trait)]
pub trait RouteEvents {
    /// The next change; `None` when the source is gone.
    async fn next(&mut self) -> Option<RouteChange>;
}

/// The TUN catch-all device.
#[allow(async_fn_in_trait)]
pub trait TunDevice {
    /// The device's name.
    fn name(&self) -> &str;
    /// The next packet routed into the device.
    async fn recv(&mut self) -> std::io::Result<Vec<u8>>;
    /// Hands a packet to the kernel as if it arrived on the device.
    async fn send(&self, packet: &[u8]) -> std::io::Result<()>;
}

/// The data path to other cores (FOUND and DATA on `mesh.data_port`).
#[allow(async_fn_in_trait)]
pub trait DataLink {
    /// Waits for the next datagram.
    async fn recv(&mut self) -> std::io::Result<Received>;
    /// Sends `packet` to `node`.
    async fn send(&self, node: Ipv6Addr, packet: &Packet) -> std::io::Result<()>;
}

/// Where ICMPv6 errors and the next-node router's advertisements go out.
pub trait IcmpErrors {
    /// Sends the ICMPv6 `message` to `to`.
    fn send(&self, to: Ipv6Addr, message: &[u8]) -> std::io::Result<()>;
    /// Sends the neighbour-discovery `message` from `source` to all nodes
    /// on interface `ifindex`, hop limit 255.
    fn announce(&self, ifindex: u32, source: Ipv6Addr, message: &[u8]) -> std::io::Result<()>;
}

/// One set of implementations of the seam.
pub trait Platform {
    /// Routing state.
    type Kernel: Kernel;
    /// Route change events.
    type Routes: RouteEvents;
    /// The TUN device.
    type Tun: TunDevice;
    /// The data path.
    type Data: DataLink;
    /// ICMPv6 errors.
    type Icmp: IcmpErrors;
}

/// The parts of one platform the engine owns.
pub struct Parts<P: Platform> {
    /// Routing state.
    pub kernel: P::Kernel,
    /// Route change events (subscribed before the tables are read).
    pub routes: P::Routes,
    /// The TUN device, created.
    pub tun: P::Tun,
    /// The data path, bound.
    pub data: P::Data,
    /// The ICMPv6 socket.
    pub icmp: P::Icmp,
}

/// The real system: rtnetlink, a TUN device, UDP and raw ICMPv6 sockets.
#[derive(Debug)]
pub struct Host;

impl Platform for Host {
    type Kernel = crate::netlink::Netlink;
    type Routes = crate::netlink::RouteWatch;
    type Tun = crate::tun::Tun;
    type Data = crate::datapath::DataPath;
    type Icmp = crate::icmp::IcmpSender;
}

// ===== the real devices behind the seam =====

impl TunDevice for crate::tun::Tun {
    fn name(&self) -> &str {
        crate::tun::Tun::name(self)
    }

    async fn recv(&mut self) -> std::io::Result<Vec<u8>> {
        crate::tun::Tun::recv(self).await
    }

    async fn send(&self, packet: &[u8]) -> std::io::Result<()> {
        crate::tun::Tun::send(self, packet).await
    }
}

impl DataLink for crate::datapath::DataPath {
    async fn recv(&mut self) -> std::io::Result<Received> {
        crate::datapath::DataPath::recv(self).await
    }

    async fn send(&self, node: Ipv6Addr, packet: &Packet) -> std::io::Result<()> {
        crate::datapath::DataPath::send(self, node, packet).await
    }
}

impl IcmpErrors for crate::icmp::IcmpSender {
    fn send(&self, to: Ipv6Addr, message: &[u8]) -> std::io::Result<()> {
        crate::icmp::IcmpSender::send(self, to, message)
    }

    fn announce(&self, ifindex: u32, source: Ipv6Addr, message: &[u8]) -> std::io::Result<()> {
        crate::icmp::IcmpSender::announce(self, ifindex, source, message)
    }
}
