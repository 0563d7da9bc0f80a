//! The in-memory platform for the engine's unit tests, as babeld's
//! `mocked_kernel.c`: a routing table that behaves like the kernel's where
//! core depends on it (replace by destination, table and metric; delete by
//! destination, table, protocol, metric and interface), interfaces, a
//! neighbour table, addresses, and devices that record what was sent.
//! Nothing here blocks or sleeps: the receive sides never yield anything,
//! the tests call the engine's event handlers themselves.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::rc::Rc;

use l3roamd_intercom::Packet;

use crate::datapath::Received;
use crate::kernel::{
    Address, DataLink, IcmpErrors, Kernel, KernelError, KernelOp, Neighbour, Parts, Platform,
    Route, RouteChange, RouteEvents, TunDevice,
};

/// A record of what was sent, shared between a device and the test.
pub type Record<T> = Rc<RefCell<Vec<T>>>;

/// The kernel's default IPv6 route metric.
const DEFAULT_METRIC: u32 = 1024;

/// What the mocked kernel holds.
#[derive(Debug, Default)]
pub struct KernelState {
    /// Every route of every table.
    pub routes: Vec<Route>,
    /// `(address, ifindex)` pairs.
    pub addresses: Vec<(Ipv6Addr, u32)>,
    /// Addresses with flags other than core's (an older run's), until
    /// core adds them again.
    pub other_flags: std::collections::BTreeSet<Ipv6Addr>,
    /// Address additions asked for.
    pub address_adds: usize,
    /// The neighbour table.
    pub neighbours: Vec<Neighbour>,
    /// Interfaces by name.
    pub links: BTreeMap<String, u32>,
    /// Bridge ports and their bridge.
    pub bridges: BTreeMap<String, String>,
    /// The route changes the kernel would have announced, in order.
    pub events: Vec<RouteChange>,
    /// Route requests (`replace` or `delete`) made, in order.
    pub requests: Vec<String>,
    /// The size of every batch ([`Kernel::apply`]), in order.
    pub batches: Vec<usize>,
    /// Destinations whose route requests fail, as a full table would.
    pub refused: Vec<Ipv6Addr>,
}

impl KernelState {
    /// The routes for `addr/128` in any table.
    pub fn host_routes(&self, addr: Ipv6Addr) -> Vec<&Route> {
        self.routes
            .iter()
            .filter(|r| r.destination == addr && r.prefix_len == 128)
            .collect()
    }
}

fn no_such(what: &'static str) -> KernelError {
    KernelError {
        what,
        source: Box::new(std::io::Error::from_raw_os_error(libc::ESRCH)),
    }
}

/// The mocked kernel; clones share one state.
#[derive(Debug, Clone, Default)]
pub struct MockKernel {
    /// The state, for tests to arrange and inspect.
    pub state: Rc<RefCell<KernelState>>,
}

impl MockKernel {
    /// A kernel with `lo` (1), the given interfaces (2, 3, ...).
    pub fn with_links(names: &[&str]) -> MockKernel {
        let kernel = MockKernel::default();
        {
            let mut s = kernel.state.borrow_mut();
            s.links.insert("lo".to_string(), 1);
            for (i, name) in names.iter().enumerate() {
                s.links.insert((*name).to_string(), i as u32 + 2);
            }
        }
        kernel
    }

    /// The index of a link the test created.
    pub fn index(&self, name: &str) -> u32 {
        self.state.borrow().links.get(name).copied().unwrap_or(0)
    }
}

fn metric(route: &Route) -> u32 {
    route.metric.unwrap_or(DEFAULT_METRIC)
}

impl Kernel for MockKernel {
    /// One request after the other, as the trait's default does, and the
    /// batch's size recorded.
    async fn apply(&self, ops: &[KernelOp]) -> Vec<Result<(), KernelError>> {
        self.state.borrow_mut().batches.push(ops.len());
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

    async fn routes(&self, table: u32, protocol: u8) -> Result<Vec<Route>, KernelError> {
        Ok(self
            .state
            .borrow()
            .routes
            .iter()
            .filter(|r| r.table == table && r.protocol == protocol)
            .cloned()
            .collect())
    }

    async fn replace_route(&self, route: &Route) -> Result<(), KernelError> {
        let mut s = self.state.borrow_mut();
        if let Some(oif) = route.oif {
            if !s.links.values().any(|i| *i == oif) {
                return Err(no_such("route add"));
            }
        }
        if s.refused.contains(&route.destination) {
            return Err(KernelError {
                what: "route add",
                source: Box::new(std::io::Error::from_raw_os_error(libc::ENOBUFS)),
            });
        }
        s.requests.push(format!(
            "replace {}/{} proto {} oif {:?}",
            route.destination, route.prefix_len, route.protocol, route.oif
        ));
        let mut stored = route.clone();
        stored.metric = Some(metric(route));
        s.routes.retain(|r| {
            !(r.destination == route.destination
                && r.prefix_len == route.prefix_len
                && r.table == route.table
                && metric(r) == metric(route))
        });
        s.routes.push(stored.clone());
        s.events.push(RouteChange::Added(stored));
        Ok(())
    }

    async fn delete_route(&self, route: &Route) -> Result<(), KernelError> {
        let mut s = self.state.borrow_mut();
        s.requests.push(format!(
            "delete {}/{} proto {}",
            route.destination, route.prefix_len, route.protocol
        ));
        let found = s.routes.iter().position(|r| {
            r.destination == route.destination
                && r.prefix_len == route.prefix_len
                && r.table == route.table
                && r.protocol == route.protocol
                && route.metric.is_none_or(|m| metric(r) == m)
                && route.oif.is_none_or(|o| r.oif == Some(o))
        });
        let Some(i) = found else {
            return Err(no_such("route delete"));
        };
        let removed = s.routes.remove(i);
        s.events.push(RouteChange::Removed(removed));
        Ok(())
    }

    async fn neighbours(&self) -> Result<Vec<Neighbour>, KernelError> {
        Ok(self.state.borrow().neighbours.clone())
    }

    async fn delete_neighbour(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), KernelError> {
        let mut s = self.state.borrow_mut();
        let before = s.neighbours.len();
        s.neighbours
            .retain(|n| !(n.address == addr && n.ifindex == ifindex));
        if s.neighbours.len() == before {
            return Err(no_such("neighbour delete"));
        }
        Ok(())
    }

    async fn addresses(&self, ifindex: u32) -> Result<Vec<Address>, KernelError> {
        let s = self.state.borrow();
        Ok(s.addresses
            .iter()
            .filter(|(_, i)| *i == ifindex)
            .map(|(a, _)| Address {
                addr: *a,
                as_core_adds: !s.other_flags.contains(a),
            })
            .collect())
    }

    async fn add_address(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), KernelError> {
        let mut s = self.state.borrow_mut();
        s.other_flags.remove(&addr);
        s.address_adds += 1;
        if !s.addresses.contains(&(addr, ifindex)) {
            s.addresses.push((addr, ifindex));
        }
        Ok(())
    }

    async fn del_address(&self, addr: Ipv6Addr, ifindex: u32) -> Result<(), KernelError> {
        let mut s = self.state.borrow_mut();
        let before = s.addresses.len();
        s.addresses.retain(|x| *x != (addr, ifindex));
        if s.addresses.len() == before {
            return Err(no_such("address delete"));
        }
        Ok(())
    }

    fn interface_index(&self, name: &str) -> Option<u32> {
        self.state.borrow().links.get(name).copied()
    }

    fn interface_name(&self, index: u32) -> Option<String> {
        self.state
            .borrow()
            .links
            .iter()
            .find(|(_, i)| **i == index)
            .map(|(n, _)| n.clone())
    }

    fn bridge_of(&self, name: &str) -> Option<String> {
        self.state.borrow().bridges.get(name).cloned()
    }
}

/// Route events never arrive by themselves: tests replay
/// [`KernelState::events`] where the kernel's echo matters.
#[derive(Debug, Default)]
pub struct NoRouteEvents;

impl RouteEvents for NoRouteEvents {
    async fn next(&mut self) -> Option<RouteChange> {
        std::future::pending().await
    }
}

/// A TUN device that records what core writes into it.
#[derive(Debug, Clone, Default)]
pub struct MockTun {
    /// Packets handed to the kernel, in order.
    pub sent: Record<Vec<u8>>,
}

impl TunDevice for MockTun {
    fn name(&self) -> &str {
        "l3roam0"
    }

    async fn recv(&mut self) -> std::io::Result<Vec<u8>> {
        std::future::pending().await
    }

    async fn send(&self, packet: &[u8]) -> std::io::Result<()> {
        self.sent.borrow_mut().push(packet.to_vec());
        Ok(())
    }
}

/// A data path that records what core sends.
#[derive(Debug, Clone, Default)]
pub struct MockData {
    /// `(node, packet)` in order.
    pub sent: Record<(Ipv6Addr, Packet)>,
}

impl DataLink for MockData {
    async fn recv(&mut self) -> std::io::Result<Received> {
        std::future::pending().await
    }

    async fn send(&self, node: Ipv6Addr, packet: &Packet) -> std::io::Result<()> {
        self.sent.borrow_mut().push((node, packet.clone()));
        Ok(())
    }
}

/// ICMPv6 errors and announcements, recorded.
#[derive(Debug, Clone, Default)]
pub struct MockIcmp {
    /// `(to, message)` in order.
    pub sent: Record<(Ipv6Addr, Vec<u8>)>,
    /// `(ifindex, source, message)` in order.
    pub announced: Record<(u32, Ipv6Addr, Vec<u8>)>,
}

impl IcmpErrors for MockIcmp {
    fn send(&self, to: Ipv6Addr, message: &[u8]) -> std::io::Result<()> {
        self.sent.borrow_mut().push((to, message.to_vec()));
        Ok(())
    }

    fn announce(&self, ifindex: u32, source: Ipv6Addr, message: &[u8]) -> std::io::Result<()> {
        self.announced
            .borrow_mut()
            .push((ifindex, source, message.to_vec()));
        Ok(())
    }
}

/// The in-memory platform.
#[derive(Debug)]
pub struct Mock;

impl Platform for Mock {
    type Kernel = MockKernel;
    type Routes = NoRouteEvents;
    type Tun = MockTun;
    type Data = MockData;
    type Icmp = MockIcmp;
}

/// A platform's parts, with handles the test keeps.
#[derive(Debug, Clone)]
pub struct MockParts {
    /// The kernel (shared state).
    pub kernel: MockKernel,
    /// The TUN device (shared record).
    pub tun: MockTun,
    /// The data path (shared record).
    pub data: MockData,
    /// ICMPv6 (shared record).
    pub icmp: MockIcmp,
}

impl MockParts {
    /// Parts for an engine; the handles stay with the test.
    pub fn parts(&self) -> Parts<Mock> {
        Parts {
            kernel: self.kernel.clone(),
            routes: NoRouteEvents,
            tun: self.tun.clone(),
            data: self.data.clone(),
            icmp: self.icmp.clone(),
        }
    }
}
