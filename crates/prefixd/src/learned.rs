//! The mesh's prefixes as the kernel shows them: source-specific default
//! routes babel installed, and whether this node has a usable default route
//! for a prefix.
//!
//! This is the fallback view when babeld's local interface is not
//! available: babel installs `default from P via <neighbour> dev <mesh if>
//! proto babel` for every prefix P a gateway announces. In: route events
//! and dumps of the main table. Out: [`LearnedRoutes::learned`] and
//! [`LearnedRoutes::has_default_for`] (the router advertisements' "Router
//! Lifetime non-zero only while this node has a usable default route for an
//! advertised prefix"). Every default route of the main table is kept,
//! whoever installed it, since any of them can carry a prefix's traffic: a
//! gateway's own route for P (ours) counts as much as babel's.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use l3roamd_types::Ipv6Prefix;

use crate::kernel::{KernelEvent, KernelRoute, BABEL_PROTOCOL};

/// How many default routes are tracked; more are ignored and counted.
pub const MAX_DEFAULT_ROUTES: usize = 4096;

/// The default routes of the main table.
#[derive(Debug, Clone, Default)]
pub struct LearnedRoutes {
    routes: BTreeSet<KernelRoute>,
    dropped: u64,
}

impl LearnedRoutes {
    /// Nothing known yet.
    pub fn new() -> LearnedRoutes {
        LearnedRoutes::default()
    }

    /// Follows one kernel event; true when the view changed. A link gone
    /// takes its routes with it.
    pub fn on_event(&mut self, event: &KernelEvent) -> bool {
        match event {
            KernelEvent::RouteAdded(r) if r.is_main_default() => self.insert(*r),
            KernelEvent::RouteRemoved(r) if r.is_main_default() => self.routes.remove(r),
            KernelEvent::LinkGone { ifindex, .. } => {
                let before = self.routes.len();
                self.routes.retain(|r| r.ifindex != Some(*ifindex));
                self.routes.len() != before
            }
            _ => false,
        }
    }

    /// Starts over from a dump; true when the view changed.
    pub fn resync(&mut self, routes: &[KernelRoute]) -> bool {
        let before = std::mem::take(&mut self.routes);
        for r in routes.iter().filter(|r| r.is_main_default()) {
            self.insert(*r);
        }
        before != self.routes
    }

    /// Babel's source-specific default routes: (source prefix, next hop,
    /// interface), by prefix.
    pub fn learned(&self) -> Vec<(Ipv6Prefix, Option<Ipv6Addr>, Option<u32>)> {
        self.routes
            .iter()
            .filter(|r| r.protocol == BABEL_PROTOCOL)
            .filter_map(|r| r.src.map(|src| (src, r.via, r.ifindex)))
            .collect()
    }

    /// Whether a packet from inside `prefix` has a default route: a
    /// source-specific one whose source covers `prefix`, or a plain one.
    pub fn has_default_for(&self, prefix: &Ipv6Prefix) -> bool {
        self.routes.iter().any(|r| match r.src {
            None => true,
            Some(src) => src.prefix_len() <= prefix.prefix_len() && src.contains(&prefix.addr()),
        })
    }

    /// Routes ignored because the table was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn insert(&mut self, route: KernelRoute) -> bool {
        if self.routes.len() >= MAX_DEFAULT_ROUTES && !self.routes.contains(&route) {
            self.dropped += 1;
            return false;
        }
        self.routes.insert(route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::MAIN_TABLE;

    const NEIGH: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 7);

    fn p(s: &str) -> Ipv6Prefix {
        s.parse().unwrap()
    }

    fn route(src: Option<&str>, protocol: u8, ifindex: u32) -> KernelRoute {
        KernelRoute {
            dst: p("::/0"),
            src: src.map(p),
            via: Some(NEIGH),
            ifindex: Some(ifindex),
            protocol,
            priority: 0,
            table: MAIN_TABLE,
        }
    }

    #[test]
    fn babel_source_specific_routes_are_learned() {
        let mut l = LearnedRoutes::new();
        assert!(l.on_event(&KernelEvent::RouteAdded(route(
            Some("2001:db8:1::/64"),
            42,
            5
        ))));
        assert!(!l.on_event(&KernelEvent::RouteAdded(route(
            Some("2001:db8:1::/64"),
            42,
            5
        ))));
        // Not babel's, not source-specific, not default, not main: not learned.
        l.on_event(&KernelEvent::RouteAdded(route(
            Some("2001:db8:2::/64"),
            160,
            5,
        )));
        l.on_event(&KernelEvent::RouteAdded(route(None, 42, 5)));
        let mut other_table = route(Some("2001:db8:3::/64"), 42, 5);
        other_table.table = 10;
        assert!(!l.on_event(&KernelEvent::RouteAdded(other_table)));
        let mut not_default = route(Some("2001:db8:4::/64"), 42, 5);
        not_default.dst = p("2001:db8::/32");
        assert!(!l.on_event(&KernelEvent::RouteAdded(not_default)));
        assert_eq!(
            l.learned(),
            vec![(p("2001:db8:1::/64"), Some(NEIGH), Some(5))]
        );

        assert!(l.on_event(&KernelEvent::RouteRemoved(route(
            Some("2001:db8:1::/64"),
            42,
            5
        ))));
        assert_eq!(l.learned(), vec![]);
    }

    #[test]
    fn usable_default_for_a_prefix() {
        let mut l = LearnedRoutes::new();
        let p1 = p("2001:db8:1::/64");
        assert!(!l.has_default_for(&p1));
        // Another prefix's route does not help.
        l.on_event(&KernelEvent::RouteAdded(route(
            Some("2001:db8:2::/64"),
            42,
            5,
        )));
        assert!(!l.has_default_for(&p1));
        // A shorter source prefix covering it does; so does our own route.
        l.on_event(&KernelEvent::RouteAdded(route(
            Some("2001:db8::/32"),
            42,
            5,
        )));
        assert!(l.has_default_for(&p1));
        l.on_event(&KernelEvent::RouteRemoved(route(
            Some("2001:db8::/32"),
            42,
            5,
        )));
        l.on_event(&KernelEvent::RouteAdded(route(
            Some("2001:db8:1::/64"),
            163,
            3,
        )));
        assert!(l.has_default_for(&p1));
        // A longer source prefix inside it covers only part: no.
        l.on_event(&KernelEvent::RouteRemoved(route(
            Some("2001:db8:1::/64"),
            163,
            3,
        )));
        l.on_event(&KernelEvent::RouteAdded(route(
            Some("2001:db8:1::/80"),
            42,
            5,
        )));
        assert!(!l.has_default_for(&p1));
        // A plain default route serves every prefix.
        l.on_event(&KernelEvent::RouteAdded(route(None, 9, 3)));
        assert!(l.has_default_for(&p1));
    }

    #[test]
    fn link_gone_and_resync() {
        let mut l = LearnedRoutes::new();
        l.on_event(&KernelEvent::RouteAdded(route(
            Some("2001:db8:1::/64"),
            42,
            5,
        )));
        l.on_event(&KernelEvent::RouteAdded(route(
            Some("2001:db8:2::/64"),
            42,
            6,
        )));
        assert!(l.on_event(&KernelEvent::LinkGone {
            ifindex: 5,
            name: "mesh0".into()
        }));
        assert_eq!(
            l.learned(),
            vec![(p("2001:db8:2::/64"), Some(NEIGH), Some(6))]
        );
        let dump = [route(Some("2001:db8:9::/64"), 42, 6)];
        assert!(l.resync(&dump));
        assert!(!l.resync(&dump));
        assert_eq!(
            l.learned(),
            vec![(p("2001:db8:9::/64"), Some(NEIGH), Some(6))]
        );
        assert!(!l.on_event(&KernelEvent::Overrun));
    }

    #[test]
    fn bounded() {
        let mut l = LearnedRoutes::new();
        let routes: Vec<KernelRoute> = (0..=MAX_DEFAULT_ROUTES as u32)
            .map(|i| KernelRoute {
                priority: i,
                ..route(None, 9, 1)
            })
            .collect();
        l.resync(&routes);
        assert_eq!(l.dropped(), 1);
        assert_eq!(l.routes.len(), MAX_DEFAULT_ROUTES);
    }
}
