//! Where a gateway's traffic leaves the mesh: each link's usability as an
//! uplink, from the kernel's links and plain default routes.
//!
//! In: link and route events ([`Uplinks::on_event`]) and full dumps
//! ([`Uplinks::resync`], at start and after an overrun). Out: the links
//! whose [`Egress`] changed, by name, for `crate::announce`. A link is a
//! usable uplink while it is up (see [`LinkState::up`]: carrier loss makes
//! it unusable) and the main table has a plain default route on it
//! (`default [via <router>] dev <link>`, no source prefix) that is neither
//! babel's (proto 42: that leads back into the mesh) nor one of our own
//! gateway routes. That route's gateway is the uplink router; a default
//! route without one (a point-to-point uplink) gives a `dev`-only egress.
//! Every link is tracked, not only the configured uplinks, so an
//! announcement naming another uplink at run time needs no new dump.
//! No time is involved: the kernel expires router-advertised default
//! routes itself and tells us.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use crate::announce::ProtocolBlock;
use crate::kernel::{KernelEvent, KernelRoute, LinkState, BABEL_PROTOCOL};

/// How many links are tracked; beyond it new links are ignored (and
/// counted) until a resync.
pub const MAX_LINKS: usize = 4096;

/// How many plain default routes are tracked (a handful in practice).
pub const MAX_DEFAULT_ROUTES: usize = 256;

/// Where a gateway route of a usable uplink points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    /// The uplink interface.
    pub ifindex: u32,
    /// The uplink router; `None` on a point-to-point uplink.
    pub via: Option<Ipv6Addr>,
}

/// A link whose egress changed: `None` when it is no longer usable.
pub type UplinkChange = (String, Option<Egress>);

/// Links and the plain default routes on them.
#[derive(Debug, Clone)]
pub struct Uplinks {
    ours: ProtocolBlock,
    links: BTreeMap<u32, LinkState>,
    /// (ifindex, priority, via) of each plain default route.
    defaults: BTreeSet<(u32, u32, Option<Ipv6Addr>)>,
    dropped: u64,
}

impl Uplinks {
    /// Nothing known yet; `ours` are the protocols of our gateway routes.
    pub fn new(ours: ProtocolBlock) -> Uplinks {
        Uplinks {
            ours,
            links: BTreeMap::new(),
            defaults: BTreeSet::new(),
            dropped: 0,
        }
    }

    /// The egress of link `name`, when it is a usable uplink.
    pub fn egress(&self, name: &str) -> Option<Egress> {
        let (&ifindex, link) = self.links.iter().find(|(_, l)| l.name == name)?;
        if !link.up {
            return None;
        }
        // The kernel prefers the lowest priority; the first of the set is it.
        self.defaults
            .range((ifindex, 0, None)..=(ifindex, u32::MAX, Some(Ipv6Addr::from(u128::MAX))))
            .next()
            .map(|&(_, _, via)| Egress { ifindex, via })
    }

    /// Links or default routes ignored because a table was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Follows one kernel event; returns the links whose egress changed.
    pub fn on_event(&mut self, event: &KernelEvent) -> Vec<UplinkChange> {
        let before = self.all_egress();
        match event {
            KernelEvent::Link(link) => self.put_link(link.clone()),
            KernelEvent::LinkGone { ifindex, .. } => self.drop_link(*ifindex),
            KernelEvent::RouteAdded(route) => {
                if let Some(key) = self.default_key(route) {
                    if self.defaults.len() < MAX_DEFAULT_ROUTES {
                        self.defaults.insert(key);
                    } else if !self.defaults.contains(&key) {
                        self.dropped += 1;
                    }
                }
            }
            KernelEvent::RouteRemoved(route) => {
                if let Some(key) = self.default_key(route) {
                    self.defaults.remove(&key);
                }
            }
            // The caller dumps and calls `resync`.
            KernelEvent::Overrun => {}
        }
        changes(&before, &self.all_egress())
    }

    /// Replaces everything with a fresh dump; returns the links whose
    /// egress changed.
    pub fn resync(&mut self, links: &[LinkState], routes: &[KernelRoute]) -> Vec<UplinkChange> {
        let before = self.all_egress();
        self.links.clear();
        self.defaults.clear();
        for link in links {
            self.put_link(link.clone());
        }
        for route in routes {
            if let Some(key) = self.default_key(route) {
                if self.defaults.len() < MAX_DEFAULT_ROUTES {
                    self.defaults.insert(key);
                } else {
                    self.dropped += 1;
                }
            }
        }
        changes(&before, &self.all_egress())
    }

    fn put_link(&mut self, link: LinkState) {
        if self.links.len() >= MAX_LINKS && !self.links.contains_key(&link.ifindex) {
            self.dropped += 1;
            return;
        }
        self.links.insert(link.ifindex, link);
    }

    fn drop_link(&mut self, ifindex: u32) {
        self.links.remove(&ifindex);
        // The kernel removes the routes through a link with it.
        self.defaults.retain(|&(i, _, _)| i != ifindex);
    }

    /// The key of `route` when it is a plain default route that can make
    /// its link an uplink.
    fn default_key(&self, route: &KernelRoute) -> Option<(u32, u32, Option<Ipv6Addr>)> {
        let usable = route.is_main_default()
            && route.src.is_none()
            && route.protocol != BABEL_PROTOCOL
            && !self.ours.contains(route.protocol);
        usable
            .then_some(route.ifindex)
            .flatten()
            .map(|i| (i, route.priority, route.via))
    }

    fn all_egress(&self) -> BTreeMap<String, Egress> {
        self.links
            .values()
            .filter_map(|l| self.egress(&l.name).map(|e| (l.name.clone(), e)))
            .collect()
    }
}

fn changes(
    before: &BTreeMap<String, Egress>,
    after: &BTreeMap<String, Egress>,
) -> Vec<UplinkChange> {
    let mut out: Vec<UplinkChange> = before
        .keys()
        .filter(|name| !after.contains_key(*name))
        .map(|name| (name.clone(), None))
        .collect();
    out.extend(
        after
            .iter()
            .filter(|(name, e)| before.get(*name) != Some(e))
            .map(|(name, e)| (name.clone(), Some(*e))),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::MAIN_TABLE;
    use l3roamd_types::Ipv6Prefix;

    const WAN: u32 = 3;
    const R1: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const R2: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

    fn link(ifindex: u32, name: &str, up: bool) -> LinkState {
        LinkState {
            ifindex,
            name: name.into(),
            up,
        }
    }

    fn default_route(
        ifindex: u32,
        via: Option<Ipv6Addr>,
        protocol: u8,
        priority: u32,
    ) -> KernelRoute {
        KernelRoute {
            dst: "::/0".parse().unwrap(),
            src: None,
            via,
            ifindex: Some(ifindex),
            protocol,
            priority,
            table: MAIN_TABLE,
        }
    }

    fn uplinks() -> Uplinks {
        let mut u = Uplinks::new(ProtocolBlock::new(160).unwrap());
        u.resync(&[link(1, "lo", true), link(WAN, "wan", true)], &[]);
        u
    }

    fn wan(via: Option<Ipv6Addr>) -> Vec<UplinkChange> {
        vec![("wan".into(), Some(Egress { ifindex: WAN, via }))]
    }

    #[test]
    fn a_link_with_a_default_route_is_usable() {
        let mut u = uplinks();
        assert_eq!(u.egress("wan"), None);
        let changes = u.on_event(&KernelEvent::RouteAdded(default_route(
            WAN,
            Some(R1),
            9,
            1024,
        )));
        assert_eq!(changes, wan(Some(R1)));
        assert_eq!(
            u.egress("wan"),
            Some(Egress {
                ifindex: WAN,
                via: Some(R1)
            })
        );
        assert_eq!(u.egress("lo"), None);
    }

    #[test]
    fn a_point_to_point_default_route_has_no_router() {
        let mut u = uplinks();
        let changes = u.on_event(&KernelEvent::RouteAdded(default_route(WAN, None, 4, 1024)));
        assert_eq!(changes, wan(None));
    }

    #[test]
    fn babel_our_own_source_specific_and_other_tables_do_not_count() {
        let mut u = uplinks();
        let mut ss = default_route(WAN, Some(R1), 4, 1024);
        ss.src = Some("2001:db8:1::/64".parse().unwrap());
        let mut other_table = default_route(WAN, Some(R1), 4, 1024);
        other_table.table = 100;
        for route in [
            default_route(WAN, Some(R1), BABEL_PROTOCOL, 0),
            default_route(WAN, Some(R1), 160, 1024),
            default_route(WAN, Some(R1), 167, 1024),
            ss,
            other_table,
            KernelRoute {
                dst: "2001:db8::/32".parse::<Ipv6Prefix>().unwrap(),
                ..default_route(WAN, Some(R1), 4, 1024)
            },
        ] {
            assert_eq!(
                u.on_event(&KernelEvent::RouteAdded(route)),
                vec![],
                "{route:?}"
            );
        }
        assert_eq!(u.egress("wan"), None);
        // 168 is outside the block: someone else's route.
        assert_eq!(
            u.on_event(&KernelEvent::RouteAdded(default_route(
                WAN,
                Some(R1),
                168,
                1024
            ))),
            wan(Some(R1))
        );
    }

    #[test]
    fn carrier_loss_and_return() {
        let mut u = uplinks();
        u.on_event(&KernelEvent::RouteAdded(default_route(
            WAN,
            Some(R1),
            9,
            1024,
        )));
        assert_eq!(
            u.on_event(&KernelEvent::Link(link(WAN, "wan", false))),
            vec![("wan".into(), None)]
        );
        assert_eq!(u.egress("wan"), None);
        // Carrier back: the route stayed (IPv6 keeps it, flagged linkdown).
        assert_eq!(
            u.on_event(&KernelEvent::Link(link(WAN, "wan", true))),
            wan(Some(R1))
        );
        // A repeated link message changes nothing.
        assert_eq!(
            u.on_event(&KernelEvent::Link(link(WAN, "wan", true))),
            vec![]
        );
    }

    #[test]
    fn default_route_gone_then_back_with_a_new_router() {
        let mut u = uplinks();
        u.on_event(&KernelEvent::RouteAdded(default_route(
            WAN,
            Some(R1),
            9,
            1024,
        )));
        assert_eq!(
            u.on_event(&KernelEvent::RouteRemoved(default_route(
                WAN,
                Some(R1),
                9,
                1024
            ))),
            vec![("wan".into(), None)]
        );
        assert_eq!(
            u.on_event(&KernelEvent::RouteAdded(default_route(
                WAN,
                Some(R2),
                9,
                1024
            ))),
            wan(Some(R2))
        );
    }

    #[test]
    fn the_lowest_priority_default_route_is_the_router() {
        let mut u = uplinks();
        u.on_event(&KernelEvent::RouteAdded(default_route(
            WAN,
            Some(R2),
            9,
            1024,
        )));
        assert_eq!(
            u.on_event(&KernelEvent::RouteAdded(default_route(
                WAN,
                Some(R1),
                16,
                100
            ))),
            wan(Some(R1))
        );
        // The worse one going changes nothing.
        assert_eq!(
            u.on_event(&KernelEvent::RouteRemoved(default_route(
                WAN,
                Some(R2),
                9,
                1024
            ))),
            vec![]
        );
        // The better one going falls back to nothing... or the other if present.
        u.on_event(&KernelEvent::RouteAdded(default_route(
            WAN,
            Some(R2),
            9,
            1024,
        )));
        assert_eq!(
            u.on_event(&KernelEvent::RouteRemoved(default_route(
                WAN,
                Some(R1),
                16,
                100
            ))),
            wan(Some(R2))
        );
    }

    #[test]
    fn link_gone_renamed_and_readded() {
        let mut u = uplinks();
        u.on_event(&KernelEvent::RouteAdded(default_route(
            WAN,
            Some(R1),
            9,
            1024,
        )));
        assert_eq!(
            u.on_event(&KernelEvent::Link(link(WAN, "wan0", true))),
            vec![
                ("wan".into(), None),
                (
                    "wan0".into(),
                    Some(Egress {
                        ifindex: WAN,
                        via: Some(R1)
                    })
                )
            ]
        );
        assert_eq!(
            u.on_event(&KernelEvent::LinkGone {
                ifindex: WAN,
                name: "wan0".into()
            }),
            vec![("wan0".into(), None)]
        );
        // A new link of that name has no routes until the kernel says so.
        assert_eq!(u.on_event(&KernelEvent::Link(link(9, "wan", true))), vec![]);
        assert_eq!(
            u.on_event(&KernelEvent::RouteAdded(default_route(9, None, 4, 1024))),
            vec![(
                "wan".into(),
                Some(Egress {
                    ifindex: 9,
                    via: None
                })
            )]
        );
    }

    #[test]
    fn resync_reports_only_differences() {
        let mut u = uplinks();
        let links = [link(WAN, "wan", true), link(4, "wan2", true)];
        let routes = [default_route(WAN, Some(R1), 9, 1024)];
        assert_eq!(u.resync(&links, &routes), wan(Some(R1)));
        assert_eq!(u.resync(&links, &routes), vec![]);
        let routes = [default_route(4, Some(R2), 9, 1024)];
        assert_eq!(
            u.resync(&links, &routes),
            vec![
                ("wan".into(), None),
                (
                    "wan2".into(),
                    Some(Egress {
                        ifindex: 4,
                        via: Some(R2)
                    })
                )
            ]
        );
    }

    #[test]
    fn overrun_changes_nothing_by_itself() {
        let mut u = uplinks();
        u.on_event(&KernelEvent::RouteAdded(default_route(
            WAN,
            Some(R1),
            9,
            1024,
        )));
        assert_eq!(u.on_event(&KernelEvent::Overrun), vec![]);
        assert!(u.egress("wan").is_some());
    }
}
