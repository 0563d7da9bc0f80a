//! What babeld knows, rebuilt from the lines of its local interface, and the
//! one question prefixd asks of it: which gateways announce a default route
//! from which client prefix (RFC 9079 source-specific routing), at which
//! metric.
//!
//! Contract: [`BabelView::apply`] takes every parsed line in the order
//! babeld wrote them (the greeting, the dump of `monitor`, then its live
//! updates) and answers whether the summary [`BabelView::default_routes`]
//! may have changed, so the caller recomputes it only then. The view holds
//! no time and does no I/O; a lost connection is a [`BabelView::clear`].
//! Both tables are bounded: a route beyond the cap is refused and counted
//! by the caller.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;

use l3roamd_types::Ipv6Prefix;

use super::line::{Action, BabelLine, RouteLine, RouterId, XRouteLine, METRIC_INFINITY};

/// A route babel learned, as babeld last described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BabelRoute {
    /// The destination.
    pub prefix: Ipv6Prefix,
    /// The source of a source-specific route; `None` if not source-specific.
    pub from: Option<Ipv6Prefix>,
    /// Whether babeld installed it into the kernel.
    pub installed: bool,
    /// The originating router.
    pub router_id: RouterId,
    /// The metric through its neighbour ([`METRIC_INFINITY`]: retracted).
    pub metric: u16,
    /// The neighbour it goes through.
    pub via: Option<Ipv6Addr>,
    /// That neighbour's interface.
    pub interface: Option<String>,
}

/// A route this node exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BabelXRoute {
    /// The destination.
    pub prefix: Ipv6Prefix,
    /// The source; `None` if not source-specific.
    pub from: Option<Ipv6Prefix>,
    /// The metric it is announced with.
    pub metric: u16,
}

/// One gateway announcing a default route from a client prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeardGateway {
    /// Its router-id; this node's own (`my-id`) when `own`.
    pub router_id: RouterId,
    /// The best metric of its routes; 0 when `own`.
    pub metric: u16,
    /// Whether one of its routes is the one babeld installed.
    pub installed: bool,
    /// This node exports the route itself (an xroute): it is the gateway.
    pub own: bool,
}

/// A client prefix some gateway announces `::/0 from <source>` for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeardPrefix {
    /// The client prefix, with its length as announced.
    pub source: Ipv6Prefix,
    /// The gateways, one per router-id, best metric first.
    pub gateways: Vec<HeardGateway>,
    /// The lowest metric of the gateways.
    pub best_metric: u16,
    /// Whether babeld installed a route for it.
    pub installed: bool,
    /// Whether this node announces it itself.
    pub own: bool,
}

/// Why a line was not taken into the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The route table is at its cap; the route is not kept.
    #[error("babel route table full ({0} routes)")]
    RoutesFull(usize),
    /// The xroute table is at its cap.
    #[error("babel xroute table full ({0} xroutes)")]
    XRoutesFull(usize),
}

/// babeld's routes and xroutes by their handles, and this node's router-id.
#[derive(Debug, Clone)]
pub struct BabelView {
    my_id: Option<RouterId>,
    routes: HashMap<String, BabelRoute>,
    xroutes: HashMap<String, BabelXRoute>,
    max_routes: usize,
}

/// Whether a route or xroute can enter the summary: `::/0 from P`.
fn is_source_default(prefix: &Ipv6Prefix, from: &Option<Ipv6Prefix>) -> bool {
    prefix.is_default() && from.is_some()
}

impl BabelView {
    /// An empty view keeping at most `max_routes` routes (and as many
    /// xroutes).
    pub fn new(max_routes: usize) -> BabelView {
        BabelView {
            my_id: None,
            routes: HashMap::new(),
            xroutes: HashMap::new(),
            max_routes,
        }
    }

    /// Forgets everything: babeld went away, its handles mean nothing now.
    pub fn clear(&mut self) {
        self.my_id = None;
        self.routes.clear();
        self.xroutes.clear();
    }

    /// This node's router-id, from the greeting.
    pub fn my_id(&self) -> Option<RouterId> {
        self.my_id
    }

    /// The routes kept, by babeld's handle.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &BabelRoute)> {
        self.routes.iter().map(|(id, r)| (id.as_str(), r))
    }

    /// The xroutes kept, by babeld's handle.
    pub fn xroutes(&self) -> impl Iterator<Item = (&str, &BabelXRoute)> {
        self.xroutes.iter().map(|(id, x)| (id.as_str(), x))
    }

    /// How many routes are kept.
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// Takes one line into the view. `Ok(true)` when
    /// [`BabelView::default_routes`] may have changed.
    pub fn apply(&mut self, line: &BabelLine) -> Result<bool, Refused> {
        match line {
            BabelLine::MyId(id) => {
                let changed = self.my_id != Some(*id);
                self.my_id = Some(*id);
                Ok(changed
                    && self
                        .xroutes
                        .values()
                        .any(|x| is_source_default(&x.prefix, &x.from)))
            }
            BabelLine::Route(r) => self.apply_route(r),
            BabelLine::XRoute(x) => self.apply_xroute(x),
            _ => Ok(false),
        }
    }

    fn apply_route(&mut self, line: &RouteLine) -> Result<bool, Refused> {
        let new_counts = is_source_default(&line.prefix, &line.from);
        if line.action == Action::Flush {
            let old = self.routes.remove(&line.id);
            return Ok(new_counts || old.is_some_and(|o| is_source_default(&o.prefix, &o.from)));
        }
        // A change of a route we never saw (its add was refused or lost) is
        // taken as an add: the line carries the whole route.
        if !self.routes.contains_key(&line.id) && self.routes.len() >= self.max_routes {
            return Err(Refused::RoutesFull(self.max_routes));
        }
        let route = BabelRoute {
            prefix: line.prefix,
            from: line.from,
            installed: line.installed,
            router_id: line.router_id,
            metric: line.metric,
            via: line.via,
            interface: line.interface.clone(),
        };
        let old = self.routes.insert(line.id.clone(), route);
        Ok(new_counts || old.is_some_and(|o| is_source_default(&o.prefix, &o.from)))
    }

    fn apply_xroute(&mut self, line: &XRouteLine) -> Result<bool, Refused> {
        let new_counts = is_source_default(&line.prefix, &line.from);
        if line.action == Action::Flush {
            let old = self.xroutes.remove(&line.id);
            return Ok(new_counts || old.is_some_and(|o| is_source_default(&o.prefix, &o.from)));
        }
        if !self.xroutes.contains_key(&line.id) && self.xroutes.len() >= self.max_routes {
            return Err(Refused::XRoutesFull(self.max_routes));
        }
        let xroute = BabelXRoute {
            prefix: line.prefix,
            from: line.from,
            metric: line.metric,
        };
        let old = self.xroutes.insert(line.id.clone(), xroute);
        Ok(new_counts || old.is_some_and(|o| is_source_default(&o.prefix, &o.from)))
    }

    /// The client prefixes gateways announce `::/0 from <prefix>` for,
    /// sorted by prefix. Retracted routes (metric [`METRIC_INFINITY`]) are
    /// not a gateway heard; a prefix with only those is absent. This node's
    /// own xroutes count as a gateway at metric 0 with `own` set.
    pub fn default_routes(&self) -> Vec<HeardPrefix> {
        // source -> router-id -> (metric, installed, own)
        let mut heard: BTreeMap<Ipv6Prefix, BTreeMap<RouterId, (u16, bool, bool)>> =
            BTreeMap::new();
        for r in self.routes.values() {
            let (true, Some(source)) = (r.prefix.is_default(), r.from) else {
                continue;
            };
            if r.metric == METRIC_INFINITY {
                continue;
            }
            let entry = heard
                .entry(source)
                .or_default()
                .entry(r.router_id)
                .or_insert((r.metric, false, false));
            entry.0 = entry.0.min(r.metric);
            entry.1 |= r.installed;
        }
        let me = self.my_id.unwrap_or_default();
        for x in self.xroutes.values() {
            let (true, Some(source)) = (x.prefix.is_default(), x.from) else {
                continue;
            };
            if x.metric == METRIC_INFINITY {
                continue;
            }
            let entry = heard
                .entry(source)
                .or_default()
                .entry(me)
                .or_insert((0, false, true));
            entry.0 = 0;
            entry.2 = true;
        }
        heard
            .into_iter()
            .map(|(source, by_router)| {
                let mut gateways: Vec<HeardGateway> = by_router
                    .into_iter()
                    .map(|(router_id, (metric, installed, own))| HeardGateway {
                        router_id,
                        metric,
                        installed,
                        own,
                    })
                    .collect();
                gateways.sort_by_key(|g| (g.metric, g.router_id));
                HeardPrefix {
                    source,
                    best_metric: gateways.first().map_or(METRIC_INFINITY, |g| g.metric),
                    installed: gateways.iter().any(|g| g.installed),
                    own: gateways.iter().any(|g| g.own),
                    gateways,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::babel::line::parse_line;

    const GW1: &str = "02:00:00:ff:fe:00:01:01";
    const GW2: &str = "02:00:00:ff:fe:00:02:01";
    const ME: &str = "02:00:00:ff:fe:00:09:01";

    fn route(
        action: &str,
        id: &str,
        prefix: &str,
        from: &str,
        installed: bool,
        gw: &str,
        metric: u16,
    ) -> BabelLine {
        let installed = if installed { "yes" } else { "no" };
        let line = format!(
            "{action} route {id} prefix {prefix} from {from} installed {installed} id {gw} metric {metric} refmetric 0 via fe80::{id} if mesh0"
        );
        parse_line(&line).unwrap().unwrap()
    }

    fn line(s: &str) -> BabelLine {
        parse_line(s).unwrap().unwrap()
    }

    fn p(s: &str) -> Ipv6Prefix {
        s.parse().unwrap()
    }

    fn rid(s: &str) -> RouterId {
        s.parse().unwrap()
    }

    fn gw(id: &str, metric: u16, installed: bool) -> HeardGateway {
        HeardGateway {
            router_id: rid(id),
            metric,
            installed,
            own: false,
        }
    }

    #[test]
    fn add_change_flush() {
        let mut v = BabelView::new(16);
        assert!(v
            .apply(&route(
                "add",
                "a1",
                "::/0",
                "2001:db8:1::/64",
                true,
                GW1,
                96
            ))
            .unwrap());
        assert_eq!(
            v.default_routes(),
            [HeardPrefix {
                source: p("2001:db8:1::/64"),
                gateways: vec![gw(GW1, 96, true)],
                best_metric: 96,
                installed: true,
                own: false,
            }]
        );
        assert!(v
            .apply(&route(
                "change",
                "a1",
                "::/0",
                "2001:db8:1::/64",
                false,
                GW1,
                200
            ))
            .unwrap());
        let heard = v.default_routes();
        assert_eq!(heard[0].gateways, [gw(GW1, 200, false)]);
        assert!(!heard[0].installed);
        assert!(v
            .apply(&route(
                "flush",
                "a1",
                "::/0",
                "2001:db8:1::/64",
                false,
                GW1,
                200
            ))
            .unwrap());
        assert!(v.default_routes().is_empty());
        assert_eq!(v.route_count(), 0);
        // A flush of an unknown route is harmless.
        v.apply(&route("flush", "b2", "fdff::1/128", "::/0", false, GW1, 1))
            .unwrap();
    }

    #[test]
    fn other_routes_are_kept_but_do_not_touch_the_summary() {
        let mut v = BabelView::new(16);
        // Host route, plain default route, default from a non-default source.
        assert!(!v
            .apply(&route("add", "a1", "fdff::2/128", "::/0", true, GW1, 96))
            .unwrap());
        assert!(!v
            .apply(&route("add", "a2", "::/0", "::/0", true, GW1, 96))
            .unwrap());
        assert!(!v
            .apply(&route(
                "add",
                "a3",
                "2001:db8::/32",
                "2001:db8:1::/64",
                true,
                GW1,
                96
            ))
            .unwrap());
        assert_eq!(v.route_count(), 3);
        assert!(v.default_routes().is_empty());
        // A handle reused for a default route, and back: both change the summary.
        assert!(v
            .apply(&route(
                "change",
                "a1",
                "::/0",
                "2001:db8:1::/64",
                true,
                GW1,
                96
            ))
            .unwrap());
        assert!(v
            .apply(&route("change", "a1", "fdff::2/128", "::/0", true, GW1, 96))
            .unwrap());
        assert!(v.default_routes().is_empty());
        assert!(!v.apply(&line("ok")).unwrap());
    }

    #[test]
    fn two_gateways_and_two_neighbours() {
        let mut v = BabelView::new(16);
        let ss = "2001:db8:1::/64";
        v.apply(&route("add", "a1", "::/0", ss, false, GW2, 300))
            .unwrap();
        v.apply(&route("add", "a2", "::/0", ss, true, GW1, 200))
            .unwrap();
        // GW2 heard again through another neighbour, better.
        v.apply(&route("add", "a3", "::/0", ss, false, GW2, 150))
            .unwrap();
        // Another client prefix, only from GW2, of another length.
        v.apply(&route(
            "add",
            "a4",
            "::/0",
            "2001:db8:2::/56",
            false,
            GW2,
            150,
        ))
        .unwrap();
        let heard = v.default_routes();
        assert_eq!(heard.len(), 2);
        assert_eq!(heard[0].source, p(ss));
        assert_eq!(heard[0].gateways, [gw(GW2, 150, false), gw(GW1, 200, true)]);
        assert_eq!(heard[0].best_metric, 150);
        assert!(heard[0].installed);
        assert_eq!(heard[1].source, p("2001:db8:2::/56"));
        assert_eq!(heard[1].gateways, [gw(GW2, 150, false)]);
        assert!(!heard[1].installed);
    }

    #[test]
    fn retracted_routes_are_no_gateway() {
        let mut v = BabelView::new(16);
        let ss = "2001:db8:1::/64";
        v.apply(&route("add", "a1", "::/0", ss, false, GW1, 96))
            .unwrap();
        v.apply(&route("add", "a2", "::/0", ss, false, GW2, 96))
            .unwrap();
        assert!(v
            .apply(&route(
                "change",
                "a1",
                "::/0",
                ss,
                false,
                GW1,
                METRIC_INFINITY
            ))
            .unwrap());
        assert_eq!(v.default_routes()[0].gateways, [gw(GW2, 96, false)]);
        v.apply(&route(
            "change",
            "a2",
            "::/0",
            ss,
            false,
            GW2,
            METRIC_INFINITY,
        ))
        .unwrap();
        assert!(v.default_routes().is_empty());
        assert_eq!(v.route_count(), 2);
    }

    #[test]
    fn own_xroute_is_a_gateway_at_metric_zero() {
        let mut v = BabelView::new(16);
        v.apply(&line(&format!("my-id {ME}"))).unwrap();
        assert!(v
            .apply(&line(
                "add xroute ::/0-2001:db8:1::/64 prefix ::/0 from 2001:db8:1::/64 metric 256"
            ))
            .unwrap());
        assert!(!v
            .apply(&line(
                "add xroute fdff::9/128-::/0 prefix fdff::9/128 from ::/0 metric 0"
            ))
            .unwrap());
        v.apply(&route(
            "add",
            "a1",
            "::/0",
            "2001:db8:1::/64",
            false,
            GW1,
            96,
        ))
        .unwrap();
        let heard = v.default_routes();
        assert_eq!(heard.len(), 1);
        assert!(heard[0].own);
        assert_eq!(
            heard[0].gateways,
            [
                HeardGateway {
                    router_id: rid(ME),
                    metric: 0,
                    installed: false,
                    own: true
                },
                gw(GW1, 96, false)
            ]
        );
        assert_eq!(heard[0].best_metric, 0);
        assert!(v
            .apply(&line(
                "flush xroute ::/0-2001:db8:1::/64 prefix ::/0 from 2001:db8:1::/64 metric 256"
            ))
            .unwrap());
        assert!(!v.default_routes()[0].own);
        assert_eq!(v.xroutes().count(), 1);
    }

    #[test]
    fn tables_are_bounded_and_clear_forgets() {
        let mut v = BabelView::new(2);
        v.apply(&route("add", "a1", "fdff::1/128", "::/0", false, GW1, 1))
            .unwrap();
        v.apply(&route("add", "a2", "fdff::2/128", "::/0", false, GW1, 1))
            .unwrap();
        assert_eq!(
            v.apply(&route(
                "add",
                "a3",
                "::/0",
                "2001:db8:1::/64",
                false,
                GW1,
                1
            )),
            Err(Refused::RoutesFull(2))
        );
        // Changes of kept routes still go in; a change of an unknown one is an add.
        v.apply(&route("change", "a2", "fdff::2/128", "::/0", true, GW1, 7))
            .unwrap();
        assert_eq!(v.routes().find(|(id, _)| *id == "a2").unwrap().1.metric, 7);
        v.apply(&route("flush", "a1", "fdff::1/128", "::/0", false, GW1, 1))
            .unwrap();
        v.apply(&route(
            "change",
            "a3",
            "::/0",
            "2001:db8:1::/64",
            false,
            GW1,
            1,
        ))
        .unwrap();
        assert_eq!(v.default_routes().len(), 1);
        for i in 0..3 {
            let x =
                format!("add xroute fdff::{i}/128-::/0 prefix fdff::{i}/128 from ::/0 metric 0");
            let r = v.apply(&line(&x));
            assert_eq!(r.is_err(), i == 2, "{x}");
        }
        v.apply(&line(&format!("my-id {ME}"))).unwrap();
        v.clear();
        assert_eq!(
            (v.route_count(), v.xroutes().count(), v.my_id()),
            (0, 0, None)
        );
    }
}
