//! Batches of kernel requests: the route and address changes of one event
//! (or of a burst of events, such as clientmon's snapshot of 10,000
//! clients) go to the kernel together, so that [`crate::kernel::Kernel::apply`]
//! can have them all in flight at once instead of waiting a round trip for
//! each.
//!
//! The engine pushes a request with a [`Step`] (what the request was for,
//! so that its result is counted, logged and followed up as the one-by-one
//! code did); [`runs`] cuts the batch where a request touches what an
//! earlier one of the same run touched (a client parked and back in one
//! burst: its routes replaced twice), so that the requests of each run
//! commute and the kernel sees every destination's requests in order.

use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::ops::Range;

use l3roamd_types::MacAddr;

use crate::kernel::KernelOp;

/// What a request of a batch was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A client's host route via its link.
    Install {
        /// The client's address.
        addr: Ipv6Addr,
        /// The client's MAC.
        mac: MacAddr,
        /// The client interface.
        interface: String,
    },
    /// A client's host route removed.
    Remove(Ipv6Addr),
    /// A departed client's route parked in the TUN device.
    Park(Ipv6Addr),
    /// The neighbour entry of a parked address (its result does not matter).
    ForgetNeighbour,
    /// A released address handed over.
    HandOver(Ipv6Addr),
    /// A handover's route removed.
    EndHandOver(Ipv6Addr),
    /// A node-client address put on `lo`.
    HoldAddress(MacAddr),
    /// The route of a node-client address via `lo`.
    HoldRoute(MacAddr, Ipv6Addr),
    /// A node-client address taken off `lo`.
    ReleaseAddress(Ipv6Addr),
    /// A route of an earlier run removed at start.
    Stale(Ipv6Addr),
    /// A node-client address of an earlier run removed at start.
    StaleAddress(Ipv6Addr),
    /// Removed at shutdown (its result does not matter).
    CleanUp,
}

/// Kernel requests waiting to be sent, each with its [`Step`].
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<KernelOp>,
    steps: Vec<Step>,
}

impl Batch {
    /// Adds a request.
    pub fn push(&mut self, op: KernelOp, step: Step) {
        self.ops.push(op);
        self.steps.push(step);
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Empties the batch: its requests and their steps, in order.
    pub fn take(&mut self) -> (Vec<KernelOp>, Vec<Step>) {
        (
            std::mem::take(&mut self.ops),
            std::mem::take(&mut self.steps),
        )
    }
}

/// Cuts `ops` into consecutive runs in which no two requests share a
/// [`KernelOp::key`]: each run may be sent at once, the runs one after the
/// other.
pub fn runs(ops: &[KernelOp]) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut seen: HashSet<(u8, Ipv6Addr)> = HashSet::new();
    let mut start = 0;
    for (i, op) in ops.iter().enumerate() {
        if !seen.insert(op.key()) {
            runs.push(start..i);
            start = i;
            seen.clear();
            seen.insert(op.key());
        }
    }
    if start < ops.len() {
        runs.push(start..ops.len());
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Route;
    use netlink_packet_route::route::RouteType;

    fn route(last: u16) -> Route {
        Route {
            destination: Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, last),
            prefix_len: 128,
            table: 254,
            protocol: 158,
            oif: Some(2),
            gateway: None,
            metric: Some(32),
            kind: RouteType::Unicast,
        }
    }

    #[test]
    fn distinct_destinations_are_one_run() {
        let ops: Vec<KernelOp> = (0..1000)
            .map(|i| KernelOp::ReplaceRoute(route(i)))
            .collect();
        assert_eq!(runs(&ops), vec![0..1000]);
        assert!(runs(&[]).is_empty());
    }

    #[test]
    fn a_destination_touched_again_starts_a_new_run() {
        let ops = vec![
            KernelOp::ReplaceRoute(route(1)),
            KernelOp::ReplaceRoute(route(2)),
            KernelOp::DeleteRoute(route(1)),
            KernelOp::ReplaceRoute(route(3)),
            KernelOp::ReplaceRoute(route(1)),
        ];
        assert_eq!(runs(&ops), vec![0..2, 2..4, 4..5]);
    }

    #[test]
    fn an_address_and_its_route_commute() {
        let addr = route(1).destination;
        let ops = vec![
            KernelOp::AddAddress(addr, 1),
            KernelOp::ReplaceRoute(route(1)),
            KernelOp::DeleteNeighbour(addr, 2),
            KernelOp::DelAddress(addr, 1),
        ];
        assert_eq!(runs(&ops), vec![0..3, 3..4]);
    }
}
