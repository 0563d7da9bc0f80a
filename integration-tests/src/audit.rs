//! Route audit: where does every member's kernel send a client address?
//!
//! For one client address the audit takes the main routing table of every
//! member (gateway included) and
//!
//! - names the **holders**: members with a unicast `/128` for the address
//!   through their client bridge ([`CLIENT_BRIDGE`]; core installs it with
//!   protocol 158). A `/128` into core's TUN device (`l3roam0`) is not a
//!   holder;
//! - follows, from every member, the route the kernel would pick (longest
//!   prefix, then lowest metric) hop by hop, mapping a next hop (device and
//!   link-local gateway) to the neighbouring member, until the path ends.
//!
//! A path ends at a holder ([`PathEnd::Holder`]), in a TUN device, without
//! a route, at an `unreachable` route, at a next hop that is no member, or
//! in a loop. A `/128` into the TUN device with the handover protocol (159)
//! is where a node that released the client forwards what still comes its
//! way to the new node over core's data path ([`PathEnd::Handover`]): it is
//! a valid path end *only* while a handover is in progress (core's
//! `handover_ms` after a claim), and only when the caller says so
//! ([`Expect::accept_handover`]). A `/128` into the TUN device with any other
//! protocol is a parked route (core keeps a departed client's routes there
//! for `gone_grace_ms`, packets are held until a seek finds the client) and
//! the `/64` into the TUN device is the seek catch-all: both hold packets
//! until a re-seek, so neither is a valid end once the client is reachable.
//!
//! [`Audit::problems`] says what is wrong against an expected holder;
//! [`Audit::report`] prints the paths and every member's routes for
//! assertion messages. The walk itself is pure and unit-tested on synthetic
//! tables; [`crate::Lab::audit`] reads the real ones.

use std::fmt::Write as _;
use std::net::Ipv6Addr;

use crate::routes::Route;
use crate::CLIENT_BRIDGE;

/// Name of core's TUN device in the lab.
pub const TUN_DEVICE: &str = "l3roam0";
/// Route protocol of core's own host routes.
pub const PROTO_CORE: &str = "158";
/// Route protocol of core's handover routes.
pub const PROTO_HANDOVER: &str = "159";
/// Route protocol of core's seek routes (a client address babel retracted,
/// routed into the TUN device to be sought).
pub const PROTO_SEEK: &str = "157";

/// A member's link to a neighbouring member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// The member's device toward the neighbour (`m-n2`).
    pub dev: String,
    /// The neighbour's link-local addresses on that link.
    pub link_locals: Vec<Ipv6Addr>,
    /// The neighbour's lab name.
    pub node: String,
}

/// The main routing table of one member and its mesh neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTable {
    /// Lab name (`gw`, `n1`, ...).
    pub node: String,
    /// Its IPv6 routes (main table).
    pub routes: Vec<Route>,
    /// Its neighbours on the mesh links.
    pub neighbours: Vec<Neighbour>,
}

/// Where a path from one member ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathEnd {
    /// At a member holding the address through its client bridge.
    Holder(String),
    /// In a member's TUN device through a handover route (protocol 159).
    Handover(String),
    /// In a member's TUN device through another `/128` (a parked route).
    Parked(String),
    /// In a member's TUN device through a covering prefix (the seek catch-all).
    Seek(String),
    /// Out of a member's client bridge by a route that is not a host route.
    Bridge(String),
    /// At an `unreachable`/`blackhole`/`prohibit` route of a member.
    Unreachable {
        /// The member.
        node: String,
        /// Route type and protocol, e.g. `unreachable proto babel`.
        kind: String,
    },
    /// A member without any route to the address.
    NoRoute(String),
    /// A next hop that is no known neighbour.
    UnknownNextHop {
        /// The member.
        node: String,
        /// The route it would use.
        route: String,
    },
    /// Anything else (another device), with the route.
    Other {
        /// The member.
        node: String,
        /// The route it would use.
        route: String,
    },
    /// A loop: the members in the order visited, the repeated one last.
    Loop(Vec<String>),
}

impl PathEnd {
    /// True for a loop.
    pub fn is_loop(&self) -> bool {
        matches!(self, PathEnd::Loop(_))
    }
}

impl std::fmt::Display for PathEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathEnd::Holder(n) => write!(f, "holder {n}"),
            PathEnd::Handover(n) => write!(f, "handover route into {TUN_DEVICE} on {n}"),
            PathEnd::Parked(n) => write!(f, "parked route into {TUN_DEVICE} on {n}"),
            PathEnd::Seek(n) => write!(f, "seek catch-all into {TUN_DEVICE} on {n}"),
            PathEnd::Bridge(n) => write!(f, "client bridge of {n} without a host route"),
            PathEnd::Unreachable { node, kind } => write!(f, "{kind} on {node}"),
            PathEnd::NoRoute(n) => write!(f, "no route on {n}"),
            PathEnd::UnknownNextHop { node, route } => {
                write!(f, "unknown next hop on {node}: {route}")
            }
            PathEnd::Other { node, route } => write!(f, "other route on {node}: {route}"),
            PathEnd::Loop(v) => write!(f, "LOOP {}", v.join(" -> ")),
        }
    }
}

/// The path the kernels give a packet from one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// Members visited, the start first.
    pub hops: Vec<String>,
    /// Where it ended.
    pub end: PathEnd,
}

/// What an audit is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The member that must be the one holder, and where every path ends.
    pub holder: String,
    /// Accept paths that end in a handover route (only while a handover is
    /// in progress: the data path forwards them to the new node).
    pub accept_handover: bool,
}

impl Expect {
    /// Exactly `holder` holds the address and every path ends there.
    pub fn holder(holder: &str) -> Expect {
        Expect {
            holder: holder.to_string(),
            accept_handover: false,
        }
    }

    /// Like [`Expect::holder`], but paths may also end in a handover route.
    pub fn during_handover(holder: &str) -> Expect {
        Expect {
            holder: holder.to_string(),
            accept_handover: true,
        }
    }
}

/// The audit of one address over all members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// The audited address.
    pub address: Ipv6Addr,
    /// Members holding it through their client bridge.
    pub holders: Vec<String>,
    /// The path from every member, in the order of the tables.
    pub paths: Vec<Path>,
    /// The tables audited.
    pub tables: Vec<NodeTable>,
}

impl Audit {
    /// Audits `address` over `tables`.
    pub fn new(address: Ipv6Addr, tables: Vec<NodeTable>) -> Audit {
        let holders = tables
            .iter()
            .filter(|t| {
                t.routes
                    .iter()
                    .any(|r| r.kind == "unicast" && r.is_host(address) && is_bridge(r))
            })
            .map(|t| t.node.clone())
            .collect();
        let paths = tables
            .iter()
            .map(|t| walk(address, &tables, &t.node))
            .collect();
        Audit {
            address,
            holders,
            paths,
            tables,
        }
    }

    /// Paths that end in a loop.
    pub fn loops(&self) -> usize {
        self.paths.iter().filter(|p| p.end.is_loop()).count()
    }

    /// Paths that do not end at `holder` (nor, if accepted, in a handover route).
    pub fn stray_paths(&self, expect: &Expect) -> Vec<&Path> {
        self.paths
            .iter()
            .filter(|p| match &p.end {
                PathEnd::Holder(n) => *n != expect.holder,
                PathEnd::Handover(_) => !expect.accept_handover,
                _ => true,
            })
            .collect()
    }

    /// What is wrong against `expect` (empty when all is right).
    pub fn problems(&self, expect: &Expect) -> Vec<String> {
        let mut wrong = Vec::new();
        if self.holders != [expect.holder.clone()] {
            wrong.push(format!(
                "holders of {} are [{}], want [{}]",
                self.address,
                self.holders.join(", "),
                expect.holder
            ));
        }
        for p in self.stray_paths(expect) {
            wrong.push(format!(
                "path from {} ({}) ends at {}",
                p.hops.first().map(String::as_str).unwrap_or("?"),
                p.hops.join(" -> "),
                p.end
            ));
        }
        wrong
    }

    /// True when [`Audit::problems`] finds nothing.
    pub fn is_ok(&self, expect: &Expect) -> bool {
        self.problems(expect).is_empty()
    }

    /// One line: holders, loops, and the path ends.
    pub fn summary(&self) -> String {
        let ends: Vec<String> = self
            .paths
            .iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    p.hops.first().map(String::as_str).unwrap_or("?"),
                    p.end
                )
            })
            .collect();
        format!(
            "{}: holders [{}], {} loops; {}",
            self.address,
            self.holders.join(", "),
            self.loops(),
            ends.join("; ")
        )
    }

    /// The paths and every member's routes, for assertion messages.
    pub fn report(&self) -> String {
        let mut out = format!("===== route audit of {} =====\n", self.address);
        let _ = writeln!(out, "holders: [{}]", self.holders.join(", "));
        for p in &self.paths {
            let _ = writeln!(out, "path {} => {}", p.hops.join(" -> "), p.end);
        }
        for t in &self.tables {
            let _ = writeln!(out, "--- {} routes (main table):", t.node);
            for r in &t.routes {
                let mark = if covers(r, self.address).is_some() {
                    "*"
                } else {
                    " "
                };
                let _ = writeln!(out, "{mark} {}", describe(r));
            }
        }
        out
    }
}

/// `ip route`-like text of one route.
pub fn describe(r: &Route) -> String {
    let mut s = String::new();
    if r.kind != "unicast" {
        s.push_str(&r.kind);
        s.push(' ');
    }
    s.push_str(&r.dst);
    if let Some(g) = r.gateway {
        let _ = write!(s, " via {g}");
    }
    if let Some(d) = &r.dev {
        let _ = write!(s, " dev {d}");
    }
    let _ = write!(s, " proto {}", r.protocol);
    if let Some(m) = r.metric {
        let _ = write!(s, " metric {m}");
    }
    for f in &r.flags {
        let _ = write!(s, " {f}");
    }
    s
}

fn is_bridge(r: &Route) -> bool {
    r.dev.as_deref() == Some(CLIENT_BRIDGE)
}

/// The prefix length of `r` if its destination covers `addr`.
fn covers(r: &Route, addr: Ipv6Addr) -> Option<u8> {
    if r.dst == "default" {
        return Some(0);
    }
    let (a, len) = match r.dst.split_once('/') {
        Some((a, len)) => (a, len.parse::<u8>().ok()?),
        None => (r.dst.as_str(), 128),
    };
    let net: Ipv6Addr = a.parse().ok()?;
    if len > 128 {
        return None;
    }
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    (u128::from(net) & mask == u128::from(addr) & mask).then_some(len)
}

/// The route the kernel picks for `addr`: longest prefix, then lowest
/// metric (IPv6's default 1024 when none is printed).
pub fn lookup(routes: &[Route], addr: Ipv6Addr) -> Option<&Route> {
    let usable = |r: &&Route| {
        matches!(
            r.kind.as_str(),
            "unicast" | "unreachable" | "blackhole" | "prohibit" | "throw"
        )
    };
    routes
        .iter()
        .filter(usable)
        .filter_map(|r| covers(r, addr).map(|len| (len, r)))
        .max_by(|(la, ra), (lb, rb)| {
            la.cmp(lb)
                .then_with(|| rb.metric.unwrap_or(1024).cmp(&ra.metric.unwrap_or(1024)))
        })
        .map(|(_, r)| r)
}

/// Follows the kernels' choices for `addr` from member `start`.
pub fn walk(addr: Ipv6Addr, tables: &[NodeTable], start: &str) -> Path {
    let mut hops = vec![start.to_string()];
    let mut at = start.to_string();
    // Bounded: every member is visited at most once before a loop is declared.
    for _ in 0..=tables.len() {
        let Some(table) = tables.iter().find(|t| t.node == at) else {
            let end = PathEnd::Other {
                node: at.clone(),
                route: "(no table for this member)".into(),
            };
            return Path { hops, end };
        };
        let Some(route) = lookup(&table.routes, addr) else {
            return Path {
                hops,
                end: PathEnd::NoRoute(at),
            };
        };
        let end = match (route.kind.as_str(), route.dev.as_deref()) {
            ("unicast", Some(CLIENT_BRIDGE)) if route.is_host(addr) => PathEnd::Holder(at.clone()),
            ("unicast", Some(CLIENT_BRIDGE)) => PathEnd::Bridge(at.clone()),
            ("unicast", Some(TUN_DEVICE)) if route.is_host(addr) => {
                if route.protocol == PROTO_HANDOVER {
                    PathEnd::Handover(at.clone())
                } else if route.protocol == PROTO_SEEK {
                    PathEnd::Seek(at.clone())
                } else {
                    PathEnd::Parked(at.clone())
                }
            }
            ("unicast", Some(TUN_DEVICE)) => PathEnd::Seek(at.clone()),
            ("unicast", Some(dev)) => {
                let next = route.gateway.and_then(|g| {
                    table
                        .neighbours
                        .iter()
                        .find(|n| n.dev == dev && n.link_locals.contains(&g))
                });
                match next {
                    Some(n) => {
                        let next = n.node.clone();
                        let seen = hops.contains(&next);
                        hops.push(next.clone());
                        if seen {
                            return Path {
                                end: PathEnd::Loop(hops.clone()),
                                hops,
                            };
                        }
                        at = next;
                        continue;
                    }
                    None if route.gateway.is_some() => PathEnd::UnknownNextHop {
                        node: at.clone(),
                        route: describe(route),
                    },
                    None => PathEnd::Other {
                        node: at.clone(),
                        route: describe(route),
                    },
                }
            }
            ("unicast", None) => PathEnd::Other {
                node: at.clone(),
                route: describe(route),
            },
            (kind, _) => PathEnd::Unreachable {
                node: at.clone(),
                kind: format!("{kind} {} proto {}", route.dst, route.protocol),
            },
        };
        return Path { hops, end };
    }
    Path {
        end: PathEnd::Loop(hops.clone()),
        hops,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "fddd:1::101";

    fn addr() -> Ipv6Addr {
        CLIENT.parse().expect("addr")
    }

    fn ll(n: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, n)
    }

    fn route(dst: &str, dev: &str, gateway: Option<Ipv6Addr>, proto: &str, metric: u32) -> Route {
        Route {
            dst: dst.into(),
            kind: "unicast".into(),
            protocol: proto.into(),
            dev: Some(dev.into()),
            gateway,
            metric: Some(metric),
            flags: Vec::new(),
            table: None,
            from: None,
            expires: None,
            pref: None,
        }
    }

    /// Link-local of member `i` (gw = 0) on its link toward member `j`.
    fn ll_of(i: u16, j: u16) -> Ipv6Addr {
        ll(i * 0x100 + j)
    }

    /// A chain gw - n1 - .. - n<len>, without routes.
    fn chain(len: u16) -> Vec<NodeTable> {
        let name = |i: u16| {
            if i == 0 {
                "gw".to_string()
            } else {
                format!("n{i}")
            }
        };
        (0..=len)
            .map(|i| {
                let mut neighbours = Vec::new();
                for j in [i.wrapping_sub(1), i + 1] {
                    if j <= len {
                        neighbours.push(Neighbour {
                            dev: format!("m-{}", name(j)),
                            link_locals: vec![ll_of(j, i)],
                            node: name(j),
                        });
                    }
                }
                NodeTable {
                    node: name(i),
                    routes: Vec::new(),
                    neighbours,
                }
            })
            .collect()
    }

    fn table<'a>(t: &'a mut [NodeTable], node: &str) -> &'a mut NodeTable {
        t.iter_mut().find(|x| x.node == node).expect("member")
    }

    /// A babel route on member `i` toward member `j` (adjacent).
    fn via(t: &mut [NodeTable], i: u16, j: u16, metric: u32) {
        let name = |k: u16| {
            if k == 0 {
                "gw".to_string()
            } else {
                format!("n{k}")
            }
        };
        table(t, &name(i)).routes.push(route(
            CLIENT,
            &format!("m-{}", name(j)),
            Some(ll_of(j, i)),
            "babel",
            metric,
        ));
    }

    #[test]
    fn every_path_ends_at_the_one_holder() {
        let mut t = chain(4);
        table(&mut t, "n4")
            .routes
            .push(route(CLIENT, CLIENT_BRIDGE, None, PROTO_CORE, 1024));
        for i in 0..4 {
            via(&mut t, i, i + 1, 96 * u32::from(4 - i));
        }
        let a = Audit::new(addr(), t);
        assert_eq!(a.holders, ["n4"]);
        assert_eq!(a.loops(), 0);
        assert!(a.is_ok(&Expect::holder("n4")), "{}", a.report());
        assert_eq!(a.paths[0].hops, ["gw", "n1", "n2", "n3", "n4"]);
        assert!(!a.is_ok(&Expect::holder("n2")));
    }

    #[test]
    fn a_loop_is_found_and_reported() {
        // The loop of issue 8: n3 -> n2, n2 -> n3, n4 serves.
        let mut t = chain(4);
        table(&mut t, "n4")
            .routes
            .push(route(CLIENT, CLIENT_BRIDGE, None, PROTO_CORE, 1024));
        via(&mut t, 0, 1, 288);
        via(&mut t, 1, 2, 192);
        via(&mut t, 2, 3, 192);
        via(&mut t, 3, 2, 96);
        let a = Audit::new(addr(), t);
        assert_eq!(a.holders, ["n4"]);
        assert_eq!(a.loops(), 4, "{}", a.report());
        assert_eq!(
            a.paths[0].end,
            PathEnd::Loop(vec![
                "gw".into(),
                "n1".into(),
                "n2".into(),
                "n3".into(),
                "n2".into()
            ])
        );
        // n4 itself still delivers.
        assert_eq!(a.paths[4].end, PathEnd::Holder("n4".into()));
        let problems = a.problems(&Expect::holder("n4"));
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(a.report().contains("LOOP gw -> n1 -> n2 -> n3 -> n2"));
    }

    #[test]
    fn two_holders_and_unreachable_routes_are_problems() {
        let mut t = chain(3);
        for n in ["n2", "n3"] {
            table(&mut t, n)
                .routes
                .push(route(CLIENT, CLIENT_BRIDGE, None, PROTO_CORE, 1024));
        }
        via(&mut t, 0, 1, 192);
        let mut unreachable = route(CLIENT, "lo", None, "babel", u32::MAX);
        unreachable.kind = "unreachable".into();
        table(&mut t, "n1").routes.push(unreachable);
        let a = Audit::new(addr(), t);
        assert_eq!(a.holders, ["n2", "n3"]);
        assert!(matches!(
            &a.paths[0].end,
            PathEnd::Unreachable { node, .. } if node == "n1"
        ));
        let p = a.problems(&Expect::holder("n3"));
        assert!(p.iter().any(|x| x.contains("holders")), "{p:?}");
        assert!(p.iter().any(|x| x.contains("unreachable")), "{p:?}");
    }

    #[test]
    fn longest_prefix_then_lowest_metric_wins() {
        let mut t = chain(2);
        // n1: a /64 into the TUN (seek), a worse babel /128 and a better one.
        let n1 = table(&mut t, "n1");
        n1.routes
            .push(route("fddd:1::/64", TUN_DEVICE, None, "158", 1024));
        n1.routes
            .push(route(CLIENT, "m-gw", Some(ll_of(0, 1)), "babel", 500));
        n1.routes
            .push(route(CLIENT, "m-n2", Some(ll_of(2, 1)), "babel", 96));
        table(&mut t, "n2")
            .routes
            .push(route(CLIENT, CLIENT_BRIDGE, None, PROTO_CORE, 1024));
        let a = Audit::new(addr(), t);
        assert_eq!(a.paths[1].hops, ["n1", "n2"]);
        assert_eq!(a.paths[1].end, PathEnd::Holder("n2".into()));
        // Without the /128s only the catch-all is left: a seek.
        let mut t = chain(1);
        table(&mut t, "n1")
            .routes
            .push(route("fddd:1::/64", TUN_DEVICE, None, "158", 1024));
        let a = Audit::new(addr(), t);
        assert_eq!(a.paths[1].end, PathEnd::Seek("n1".into()));
        assert_eq!(a.paths[0].end, PathEnd::NoRoute("gw".into()));
    }

    #[test]
    fn handover_and_parked_routes_end_in_the_tun() {
        let mut t = chain(3);
        table(&mut t, "n3")
            .routes
            .push(route(CLIENT, CLIENT_BRIDGE, None, PROTO_CORE, 1024));
        // n2 released the client: its handover route into the TUN.
        table(&mut t, "n2")
            .routes
            .push(route(CLIENT, TUN_DEVICE, None, PROTO_HANDOVER, 1024));
        via(&mut t, 0, 1, 288);
        via(&mut t, 1, 2, 192);
        let a = Audit::new(addr(), t.clone());
        assert_eq!(a.holders, ["n3"], "a TUN route holds nothing");
        assert_eq!(a.paths[0].end, PathEnd::Handover("n2".into()));
        assert!(!a.is_ok(&Expect::holder("n3")));
        assert!(a.is_ok(&Expect::during_handover("n3")), "{}", a.report());
        // A parked route (protocol 158 into the TUN) is never a valid end.
        let n2 = table(&mut t, "n2");
        n2.routes[0].protocol = PROTO_CORE.into();
        let a = Audit::new(addr(), t);
        assert_eq!(a.paths[0].end, PathEnd::Parked("n2".into()));
        assert!(!a.is_ok(&Expect::during_handover("n3")));
    }

    #[test]
    fn a_next_hop_that_is_no_neighbour_is_reported() {
        let mut t = chain(2);
        table(&mut t, "n1")
            .routes
            .push(route(CLIENT, "m-n2", Some(ll(0xdead)), "babel", 96));
        let a = Audit::new(addr(), t);
        assert!(matches!(
            &a.paths[1].end,
            PathEnd::UnknownNextHop { node, .. } if node == "n1"
        ));
    }
}
