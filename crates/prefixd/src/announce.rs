//! A gateway's announcements: client prefixes it routes to its uplink and
//! announces into the mesh as source-specific default routes.
//!
//! An announced prefix P with metric m becomes the kernel route
//! `default from P [via <router>] dev <uplink> proto <base + class>` in the
//! main table; babeld (`ipv6-subtrees true`, and the rules of
//! [`babeld_redistribute_lines`]) redistributes it. babeld takes the metric
//! of a redistributed route only from the first matching `redistribute`
//! rule (configuration.c `do_filter` returns `f->action.add_metric`; the
//! kernel priority is ignored), and rules added at run time go to the end
//! of its list, so the metric travels in the route's protocol: one protocol
//! per metric class ([`METRIC_CLASSES`]), a block of eight from
//! `prefixd.route_protocol`. A metric is announced as the smallest class at
//! or above it (never better than asked).
//!
//! The state machine: in, the announcements (configuration, then
//! [`Announcements::announce`] / [`Announcements::withdraw`]), the uplinks'
//! egress (`crate::uplink`), the kernel's routes of our protocol block
//! (events and full dumps); out, [`Action`]s for the kernel. It owns no
//! time and does no I/O. Actions are assumed to succeed (the believed
//! kernel state is updated when they are returned); when one fails, the
//! caller dumps the routes and calls [`Announcements::resync`], which
//! corrects both ways.
//!
//! Every change of a prefix's route (new router, other uplink, other metric
//! class) is one [`Action::Replace`]: the kernel keys IPv6 routes by
//! (table, destination, source, priority) and we always use
//! [`GATEWAY_ROUTE_PRIORITY`], so `NLM_F_REPLACE` swaps the route in place
//! whatever its protocol, gateway or device (`fib6_add_rt2node` compares
//! `fib6_metric` only, and replaces the first route of that metric even
//! when one has a gateway and the other none). babeld sees one route
//! change (`kernel_route_notify` finds its xroute by prefix and source and
//! updates the metric) and never two routes for one prefix.
//!
//! An announcement without an uplink (none given and no `prefixd.uplink`)
//! installs no route: a node that does not itself route a prefix to the
//! outside has nothing honest to point `default from P` at. Its own
//! default route usually leads through the mesh to a gateway, and
//! redistributing that into babel would announce a route back into the
//! mesh (a loop), while an unreachable route would announce a black hole.
//! Such a prefix is this node's statement only (ListPrefixes, origin
//! ANNOUNCED; router advertisements to its own clients), and the mesh
//! learns a route for it from whichever gateway announces it with an
//! uplink.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use l3roamd_daemon::config::check_interface_name;
use l3roamd_daemon::ConfigError;
use l3roamd_types::Ipv6Prefix;
use serde::Deserialize;

use crate::kernel::{GatewayRoute, KernelEvent, KernelRoute, GATEWAY_ROUTE_PRIORITY};
use crate::uplink::Egress;

// ===== metric classes and protocols =====

/// The metric of each class; class i is announced with protocol base + i.
pub const METRIC_CLASSES: [u16; 8] = [0, 64, 128, 256, 512, 1024, 2048, 4096];

/// The highest metric an announcement may ask for.
pub const MAX_METRIC: u32 = 4096;

/// The default first protocol of the block (`prefixd.route_protocol`).
pub const DEFAULT_ROUTE_PROTOCOL: u8 = 160;

/// Protocol numbers the block must not cover, with their owners:
/// `rtnetlink.h`'s `RTPROT_*` and core's route and handover protocols.
const TAKEN_PROTOCOLS: &[(u8, &str)] = &[
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (8, "gated"),
    (9, "ra"),
    (10, "mrt"),
    (11, "zebra"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (16, "dhcp"),
    (17, "mrouted"),
    (18, "keepalived"),
    (42, "babel"),
    (99, "openr"),
    (158, "core.route_protocol"),
    (159, "core.handover_protocol"),
    (186, "bgp"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (192, "eigrp"),
];

/// The class an announcement with metric `requested` gets: (protocol
/// offset, class metric), the smallest class at or above `requested`;
/// `None` above [`MAX_METRIC`].
pub fn metric_class(requested: u32) -> Option<(u8, u16)> {
    METRIC_CLASSES
        .iter()
        .zip(0u8..)
        .find(|(class, _)| u32::from(**class) >= requested)
        .map(|(class, offset)| (offset, *class))
}

/// The metric babeld announces a withdrawn prefix with for a while before
/// its route goes: one hop more and it is infinite (65535), so every
/// neighbour takes it as a retraction. Needed because babeld (1.13.1 and
/// its master of 2026) does not retract a flushed source-specific xroute:
/// `flush_xroute` takes `plen` and `src_prefix` from `xroutes[0]` instead
/// of the flushed xroute, so the retraction it sends is for some other
/// prefix (see docs/design-notes.md, "Client prefixes").
pub const RETRACT_METRIC: u16 = 65534;

/// The nine protocols of our gateway routes: one per metric class, then the
/// retraction protocol ([`RETRACT_METRIC`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolBlock {
    base: u8,
}

impl ProtocolBlock {
    /// The block from `base`; `None` when it would pass 255.
    pub fn new(base: u8) -> Option<ProtocolBlock> {
        base.checked_add(METRIC_CLASSES.len() as u8)
            .map(|_| ProtocolBlock { base })
    }

    /// The protocol of a withdrawn prefix's route while babeld retracts it
    /// (not one of the classes: the announcements never hold it).
    pub fn retract(&self) -> u8 {
        self.base.saturating_add(METRIC_CLASSES.len() as u8)
    }

    /// The first protocol.
    pub fn base(&self) -> u8 {
        self.base
    }

    /// Whether `protocol` is one of ours.
    pub fn contains(&self, protocol: u8) -> bool {
        protocol
            .checked_sub(self.base)
            .is_some_and(|offset| usize::from(offset) < METRIC_CLASSES.len())
    }

    /// The protocol of class `offset`.
    fn protocol(&self, offset: u8) -> u8 {
        self.base.saturating_add(offset)
    }
}

/// The `redistribute` lines babeld needs for the block, best class first,
/// to be placed before any broader `redistribute ... deny` (babeld takes
/// the first rule that matches).
///
/// `ip ::/0 eq 0` matches a route whose destination is `::/0` whatever its
/// source prefix (configuration.c `filter_match` checks the source only
/// when `src-ip` or `src-eq/ge/le` was given), so nothing more is needed
/// for source-specific routes. Class 0 says `allow` because babeld refuses
/// `metric 0` (`parse_filter`: `metric <= 0` is an error) while `allow`
/// sets `add_metric = 0`.
pub fn babeld_redistribute_lines(block: ProtocolBlock) -> String {
    let mut out = String::new();
    for (offset, metric) in (0u8..).zip(METRIC_CLASSES) {
        let protocol = block.protocol(offset);
        let action = match metric {
            0 => "allow".to_string(),
            m => format!("metric {m}"),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "redistribute ip ::/0 eq 0 proto {protocol} {action}");
    }
    let _ = writeln!(
        out,
        "redistribute ip ::/0 eq 0 proto {} metric {RETRACT_METRIC}",
        block.retract()
    );
    out
}

// ===== configuration =====

/// How many prefixes one node may announce.
pub const MAX_ANNOUNCEMENTS: usize = 64;

/// The gateway keys of `[prefixd]`: `route_protocol`, `uplink`, `announce`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// First of the eight route protocols of our gateway routes.
    pub route_protocol: u8,
    /// The uplink of announcements that name none.
    pub uplink: Option<String>,
    /// The prefixes announced from the start.
    pub announce: Vec<AnnounceConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            route_protocol: DEFAULT_ROUTE_PROTOCOL,
            uplink: None,
            announce: Vec::new(),
        }
    }
}

/// One `[[prefixd.announce]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceConfig {
    /// The client prefix, a /64.
    pub prefix: Ipv6Prefix,
    /// Its babel metric, 0 to [`MAX_METRIC`] (0 when not given).
    #[serde(default)]
    pub metric: u32,
    /// Its uplink, if not `prefixd.uplink`.
    #[serde(default)]
    pub uplink: Option<String>,
}

impl GatewayConfig {
    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let base = self.route_protocol;
        let Some(block) = ProtocolBlock::new(base) else {
            return Err(ConfigError::invalid(
                "prefixd.route_protocol",
                format!(
                    "{base} leaves no room for the block of {} protocols (at most {})",
                    METRIC_CLASSES.len(),
                    u8::MAX - METRIC_CLASSES.len() as u8
                ),
            ));
        };
        if let Some((p, owner)) = TAKEN_PROTOCOLS
            .iter()
            .find(|(p, _)| block.contains(*p) || block.retract() == *p)
        {
            return Err(ConfigError::invalid(
                "prefixd.route_protocol",
                format!(
                    "the block {base}..={} covers protocol {p} ({owner})",
                    block.retract()
                ),
            ));
        }
        if let Some(uplink) = &self.uplink {
            check_interface_name("prefixd.uplink", uplink)?;
        }
        if self.announce.len() > MAX_ANNOUNCEMENTS {
            return Err(ConfigError::invalid(
                "prefixd.announce",
                format!(
                    "{} announcements, at most {MAX_ANNOUNCEMENTS}",
                    self.announce.len()
                ),
            ));
        }
        for (i, a) in self.announce.iter().enumerate() {
            if a.prefix.prefix_len() != 64 {
                return Err(ConfigError::invalid(
                    format!("prefixd.announce[{i}].prefix"),
                    format!("{} is not a /64", a.prefix),
                ));
            }
            if let Some(j) = self.announce[..i].iter().position(|b| b.prefix == a.prefix) {
                return Err(ConfigError::invalid(
                    format!("prefixd.announce[{i}].prefix"),
                    format!(
                        "{} is announced twice (also prefixd.announce[{j}])",
                        a.prefix
                    ),
                ));
            }
            if a.metric > MAX_METRIC {
                return Err(ConfigError::invalid(
                    format!("prefixd.announce[{i}].metric"),
                    format!("{} exceeds {MAX_METRIC}", a.metric),
                ));
            }
            if let Some(uplink) = &a.uplink {
                check_interface_name(&format!("prefixd.announce[{i}].uplink"), uplink)?;
            }
        }
        Ok(())
    }
}

// ===== the state machine =====

/// Why an announcement was refused (the RPC layer's INVALID_ARGUMENT, or
/// RESOURCE_EXHAUSTED for [`AnnounceError::Full`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// Client prefixes are /64s (SLAAC).
    #[error("{0} is not a /64")]
    NotSlash64(Ipv6Prefix),
    /// Above the highest metric class.
    #[error("metric {0} exceeds {MAX_METRIC}")]
    Metric(u32),
    /// Not a possible interface name.
    #[error("uplink {0:?} is not a valid interface name")]
    Uplink(String),
    /// [`MAX_ANNOUNCEMENTS`] prefixes are announced already.
    #[error("{MAX_ANNOUNCEMENTS} prefixes are announced already")]
    Full,
}

/// Why a withdrawal was refused (the RPC layer's NOT_FOUND).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not announced")]
pub struct NotAnnounced(pub Ipv6Prefix);

/// What the kernel should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Install, or replace in place, a gateway route.
    Replace(GatewayRoute),
    /// Remove a gateway route.
    Delete(GatewayRoute),
}

/// One announced prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The client prefix.
    pub prefix: Ipv6Prefix,
    /// The metric asked for.
    pub metric: u32,
    /// Its own uplink, if not the default one.
    pub uplink: Option<String>,
}

/// An announcement and what the kernel has for it, for ListPrefixes and
/// GetStatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncedPrefix {
    /// The announcement.
    pub announcement: Announcement,
    /// The metric babel announces it with (its class).
    pub class_metric: u16,
    /// The uplink it uses, if any.
    pub uplink: Option<String>,
    /// Its gateway route while installed; `None` while it has no usable
    /// uplink (or none at all).
    pub route: Option<GatewayRoute>,
}

/// The announcements, the uplinks' egress and the gateway routes the
/// kernel holds.
#[derive(Debug, Clone)]
pub struct Announcements {
    block: ProtocolBlock,
    default_uplink: Option<String>,
    wanted: BTreeMap<Ipv6Prefix, Announcement>,
    /// Our gateway routes in the kernel, as far as we know.
    installed: BTreeMap<Ipv6Prefix, GatewayRoute>,
    /// The usable uplinks.
    egress: BTreeMap<String, Egress>,
}

fn check(prefix: Ipv6Prefix, metric: u32, uplink: Option<&str>) -> Result<(), AnnounceError> {
    if prefix.prefix_len() != 64 {
        return Err(AnnounceError::NotSlash64(prefix));
    }
    if metric_class(metric).is_none() {
        return Err(AnnounceError::Metric(metric));
    }
    if let Some(name) = uplink {
        check_interface_name("uplink", name).map_err(|_| AnnounceError::Uplink(name.into()))?;
    }
    Ok(())
}

impl Announcements {
    /// The configured announcements (validated), with no uplink known yet
    /// and nothing believed installed: feed the uplinks' state, then
    /// [`Announcements::resync`] with a route dump.
    pub fn new(config: &GatewayConfig) -> Announcements {
        let block = ProtocolBlock::new(config.route_protocol)
            .or(ProtocolBlock::new(DEFAULT_ROUTE_PROTOCOL))
            .unwrap_or(ProtocolBlock { base: 160 });
        let wanted = config
            .announce
            .iter()
            .filter(|a| check(a.prefix, a.metric, a.uplink.as_deref()).is_ok())
            .map(|a| {
                let announcement = Announcement {
                    prefix: a.prefix,
                    metric: a.metric,
                    uplink: a.uplink.clone(),
                };
                (a.prefix, announcement)
            })
            .collect();
        Announcements {
            block,
            default_uplink: config.uplink.clone(),
            wanted,
            installed: BTreeMap::new(),
            egress: BTreeMap::new(),
        }
    }

    /// Our protocol block.
    pub fn block(&self) -> ProtocolBlock {
        self.block
    }

    /// Every announcement and its state, by prefix.
    pub fn announced(&self) -> Vec<AnnouncedPrefix> {
        self.wanted
            .values()
            .map(|a| AnnouncedPrefix {
                announcement: a.clone(),
                class_metric: metric_class(a.metric).map_or(0, |(_, m)| m),
                uplink: self.uplink_of(a).map(str::to_string),
                route: self.installed.get(&a.prefix).copied(),
            })
            .collect()
    }

    /// Announces `prefix` (or changes its metric or uplink).
    pub fn announce(
        &mut self,
        prefix: Ipv6Prefix,
        metric: u32,
        uplink: Option<String>,
    ) -> Result<Vec<Action>, AnnounceError> {
        check(prefix, metric, uplink.as_deref())?;
        if !self.wanted.contains_key(&prefix) && self.wanted.len() >= MAX_ANNOUNCEMENTS {
            return Err(AnnounceError::Full);
        }
        self.wanted.insert(
            prefix,
            Announcement {
                prefix,
                metric,
                uplink,
            },
        );
        Ok(self.reconcile(prefix).into_iter().collect())
    }

    /// Withdraws `prefix`.
    pub fn withdraw(&mut self, prefix: Ipv6Prefix) -> Result<Vec<Action>, NotAnnounced> {
        self.wanted.remove(&prefix).ok_or(NotAnnounced(prefix))?;
        Ok(self.reconcile(prefix).into_iter().collect())
    }

    /// Uplink `name` became usable through `egress`, or unusable (`None`).
    pub fn uplink_changed(&mut self, name: &str, egress: Option<Egress>) -> Vec<Action> {
        match egress {
            Some(e) => self.egress.insert(name.to_string(), e),
            None => self.egress.remove(name),
        };
        let affected: Vec<Ipv6Prefix> = self
            .wanted
            .values()
            .filter(|a| self.uplink_of(a) == Some(name))
            .map(|a| a.prefix)
            .collect();
        affected
            .into_iter()
            .filter_map(|p| self.reconcile(p))
            .collect()
    }

    /// Follows one kernel event (route events only; links reach us through
    /// `crate::uplink`, overruns through a dump and `resync`).
    pub fn on_event(&mut self, event: &KernelEvent) -> Vec<Action> {
        match event {
            KernelEvent::RouteAdded(r) => self.route_added(r),
            KernelEvent::RouteRemoved(r) => self.route_removed(r),
            _ => Vec::new(),
        }
    }

    /// A route appeared or was replaced. A route of ours we did not ask
    /// for (someone else's replace, a leftover) is corrected.
    pub fn route_added(&mut self, route: &KernelRoute) -> Vec<Action> {
        let Some(seen) = self.ours(route) else {
            return Vec::new();
        };
        let prefix = seen.source;
        if !self.wanted.contains_key(&prefix) {
            return vec![Action::Delete(seen)];
        }
        // The kernel holds exactly one route in our slot: this one.
        self.installed.insert(prefix, seen);
        self.reconcile(prefix).into_iter().collect()
    }

    /// A route was removed: when it was ours and still wanted, reinstall.
    pub fn route_removed(&mut self, route: &KernelRoute) -> Vec<Action> {
        let Some(gone) = self.ours(route) else {
            return Vec::new();
        };
        if self.installed.get(&gone.source) != Some(&gone) {
            // Not what we hold there (an older route, already replaced).
            return Vec::new();
        }
        self.installed.remove(&gone.source);
        self.reconcile(gone.source).into_iter().collect()
    }

    /// Starts over from a dump of the main table: adopts our routes that
    /// match an announcement, removes those of prefixes no longer
    /// announced, and installs or corrects the rest.
    pub fn resync(&mut self, routes: &[KernelRoute]) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut found: BTreeMap<Ipv6Prefix, Vec<GatewayRoute>> = BTreeMap::new();
        for route in routes {
            if let Some(g) = self.ours(route) {
                found.entry(g.source).or_default().push(g);
            }
        }
        self.installed.clear();
        let mut renew = Vec::new();
        for (prefix, mut present) in found {
            if !self.wanted.contains_key(&prefix) {
                actions.extend(present.into_iter().map(Action::Delete));
                continue;
            }
            // Several next hops in our slot (a multipath route): keep the
            // one we want, or the first, and remove the others.
            let desired = self.desired(prefix);
            let keep = present
                .iter()
                .position(|g| Some(*g) == desired)
                .unwrap_or(0);
            let kept = present.swap_remove(keep);
            if !present.is_empty() {
                actions.extend(present.into_iter().map(Action::Delete));
                // babeld drops its announcement when any of them goes:
                // say the route again afterwards.
                renew.push(prefix);
            }
            self.installed.insert(prefix, kept);
        }
        let prefixes: Vec<Ipv6Prefix> = self.wanted.keys().copied().collect();
        for prefix in prefixes {
            match self.reconcile(prefix) {
                Some(action) => actions.push(action),
                None if renew.contains(&prefix) => {
                    if let Some(g) = self.installed.get(&prefix) {
                        actions.push(Action::Replace(*g));
                    }
                }
                None => {}
            }
        }
        actions
    }

    fn uplink_of<'a>(&'a self, a: &'a Announcement) -> Option<&'a str> {
        a.uplink.as_deref().or(self.default_uplink.as_deref())
    }

    /// The route `prefix` should have now.
    fn desired(&self, prefix: Ipv6Prefix) -> Option<GatewayRoute> {
        let a = self.wanted.get(&prefix)?;
        let egress = self.egress.get(self.uplink_of(a)?)?;
        let (offset, _) = metric_class(a.metric)?;
        Some(GatewayRoute {
            source: prefix,
            via: egress.via,
            ifindex: egress.ifindex,
            protocol: self.block.protocol(offset),
        })
    }

    /// The one action bringing `prefix`'s route from what is installed to
    /// what is desired, recorded as done.
    fn reconcile(&mut self, prefix: Ipv6Prefix) -> Option<Action> {
        let desired = self.desired(prefix);
        match (desired, self.installed.get(&prefix).copied()) {
            (Some(d), Some(i)) if d == i => None,
            (Some(d), _) => {
                self.installed.insert(prefix, d);
                Some(Action::Replace(d))
            }
            (None, Some(i)) => {
                self.installed.remove(&prefix);
                Some(Action::Delete(i))
            }
            (None, None) => None,
        }
    }

    /// `route` as one of our gateway routes: main table, `::/0 from` a
    /// prefix, our priority, a protocol of our block, a device. Routes of
    /// our protocols at other priorities are not in our slot and are left
    /// alone.
    fn ours(&self, route: &KernelRoute) -> Option<GatewayRoute> {
        if !route.is_main_default()
            || route.priority != GATEWAY_ROUTE_PRIORITY
            || !self.block.contains(route.protocol)
        {
            return None;
        }
        Some(GatewayRoute {
            source: route.src?,
            via: route.via,
            ifindex: route.ifindex?,
            protocol: route.protocol,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;
    use crate::kernel::memory::MemoryKernel;
    use crate::kernel::{Kernel, MAIN_TABLE};

    const WAN: u32 = 3;
    const WAN2: u32 = 4;
    const R1: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const R2: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

    fn p(s: &str) -> Ipv6Prefix {
        s.parse().unwrap()
    }

    fn p1() -> Ipv6Prefix {
        p("2001:db8:1::/64")
    }

    fn p2() -> Ipv6Prefix {
        p("2001:db8:2::/64")
    }

    fn egress(ifindex: u32, via: Option<Ipv6Addr>) -> Option<Egress> {
        Some(Egress { ifindex, via })
    }

    fn gw(source: Ipv6Prefix, via: Option<Ipv6Addr>, ifindex: u32, protocol: u8) -> GatewayRoute {
        GatewayRoute {
            source,
            via,
            ifindex,
            protocol,
        }
    }

    fn kernel_route(g: GatewayRoute) -> KernelRoute {
        KernelRoute {
            dst: p("::/0"),
            src: Some(g.source),
            via: g.via,
            ifindex: Some(g.ifindex),
            protocol: g.protocol,
            priority: GATEWAY_ROUTE_PRIORITY,
            table: MAIN_TABLE,
        }
    }

    fn config(uplink: Option<&str>, announce: Vec<AnnounceConfig>) -> GatewayConfig {
        GatewayConfig {
            uplink: uplink.map(str::to_string),
            announce,
            ..GatewayConfig::default()
        }
    }

    fn entry(prefix: Ipv6Prefix, metric: u32, uplink: Option<&str>) -> AnnounceConfig {
        AnnounceConfig {
            prefix,
            metric,
            uplink: uplink.map(str::to_string),
        }
    }

    /// Default uplink "wan", usable through R1.
    fn gateway() -> Announcements {
        let mut a = Announcements::new(&config(Some("wan"), vec![]));
        assert_eq!(a.uplink_changed("wan", egress(WAN, Some(R1))), vec![]);
        a
    }

    // ===== metric classes, protocols, babeld =====

    #[test]
    fn metric_classes_round_up() {
        assert_eq!(metric_class(0), Some((0, 0)));
        assert_eq!(metric_class(1), Some((1, 64)));
        assert_eq!(metric_class(64), Some((1, 64)));
        assert_eq!(metric_class(65), Some((2, 128)));
        assert_eq!(metric_class(256), Some((3, 256)));
        assert_eq!(metric_class(257), Some((4, 512)));
        assert_eq!(metric_class(1024), Some((5, 1024)));
        assert_eq!(metric_class(2048), Some((6, 2048)));
        assert_eq!(metric_class(4095), Some((7, 4096)));
        assert_eq!(metric_class(4096), Some((7, 4096)));
        assert_eq!(metric_class(4097), None);
        assert_eq!(metric_class(u32::MAX), None);
    }

    #[test]
    fn protocol_block() {
        let b = ProtocolBlock::new(160).unwrap();
        assert!(!b.contains(159));
        assert!(b.contains(160));
        assert!(b.contains(167));
        assert!(!b.contains(168));
        assert!(ProtocolBlock::new(247).is_some());
        assert!(ProtocolBlock::new(248).is_none());
        assert_eq!(b.retract(), 168);
        assert!(!b.contains(168), "the retraction protocol is no class");
    }

    #[test]
    fn babeld_lines_for_the_block() {
        let lines = babeld_redistribute_lines(ProtocolBlock::new(160).unwrap());
        assert_eq!(
            lines,
            "redistribute ip ::/0 eq 0 proto 160 allow\n\
             redistribute ip ::/0 eq 0 proto 161 metric 64\n\
             redistribute ip ::/0 eq 0 proto 162 metric 128\n\
             redistribute ip ::/0 eq 0 proto 163 metric 256\n\
             redistribute ip ::/0 eq 0 proto 164 metric 512\n\
             redistribute ip ::/0 eq 0 proto 165 metric 1024\n\
             redistribute ip ::/0 eq 0 proto 166 metric 2048\n\
             redistribute ip ::/0 eq 0 proto 167 metric 4096\n\
             redistribute ip ::/0 eq 0 proto 168 metric 65534\n"
        );
        let moved = babeld_redistribute_lines(ProtocolBlock::new(200).unwrap());
        assert!(moved.starts_with("redistribute ip ::/0 eq 0 proto 200 allow\n"));
        assert!(moved.ends_with(
            "proto 207 metric 4096\nredistribute ip ::/0 eq 0 proto 208 metric 65534\n"
        ));
    }

    // ===== configuration =====

    fn invalid_key(c: &GatewayConfig) -> String {
        c.validate().unwrap_err().key().unwrap().to_string()
    }

    #[test]
    fn config_defaults_and_a_valid_one() {
        assert_eq!(GatewayConfig::default().validate(), Ok(()));
        let c = config(
            Some("wan"),
            vec![entry(p1(), 256, Some("wan2")), entry(p2(), 4096, None)],
        );
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn config_errors_name_their_key() {
        let mut c = GatewayConfig {
            route_protocol: 155,
            ..GatewayConfig::default()
        };
        assert_eq!(invalid_key(&c), "prefixd.route_protocol"); // covers 158
        for base in [0, 2, 37, 152, 249, 255] {
            c.route_protocol = base;
            assert_eq!(invalid_key(&c), "prefixd.route_protocol", "{base}");
        }
        c.route_protocol = 200;
        assert_eq!(c.validate(), Ok(()));

        let c = config(Some("a/b"), vec![]);
        assert_eq!(invalid_key(&c), "prefixd.uplink");

        let c = config(
            None,
            vec![entry(p1(), 0, None), entry(p("2001:db8::/48"), 0, None)],
        );
        assert_eq!(invalid_key(&c), "prefixd.announce[1].prefix");
        let c = config(None, vec![entry(p1(), 0, None), entry(p1(), 64, None)]);
        assert_eq!(invalid_key(&c), "prefixd.announce[1].prefix");
        let c = config(None, vec![entry(p1(), 4097, None)]);
        assert_eq!(invalid_key(&c), "prefixd.announce[0].metric");
        let c = config(None, vec![entry(p1(), 0, Some("way too long a name"))]);
        assert_eq!(invalid_key(&c), "prefixd.announce[0].uplink");
        let many = (0..=MAX_ANNOUNCEMENTS as u16)
            .map(|i| {
                entry(
                    Ipv6Prefix::new(Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0), 64).unwrap(),
                    0,
                    None,
                )
            })
            .collect();
        assert_eq!(invalid_key(&config(None, many)), "prefixd.announce");
    }

    #[test]
    fn config_deserializes_and_refuses_unknown_keys() {
        let c: GatewayConfig = serde_json::from_str(
            r#"{"uplink": "wan", "announce": [{"prefix": "2001:db8:1::/64", "metric": 256, "uplink": "wan"}]}"#,
        )
        .unwrap();
        assert_eq!(c.route_protocol, 160);
        assert_eq!(c.announce, vec![entry(p1(), 256, Some("wan"))]);
        let c: GatewayConfig =
            serde_json::from_str(r#"{"announce": [{"prefix": "2001:db8:1::/64"}]}"#).unwrap();
        assert_eq!(c.announce, vec![entry(p1(), 0, None)]);
        assert!(serde_json::from_str::<GatewayConfig>(r#"{"uplinks": "wan"}"#).is_err());
        assert!(serde_json::from_str::<GatewayConfig>(
            r#"{"announce": [{"prefix": "2001:db8:1::/64", "metrik": 1}]}"#
        )
        .is_err());
    }

    // ===== announce, withdraw, uplink =====

    #[test]
    fn announce_installs_in_the_metric_class_protocol() {
        let mut a = gateway();
        let actions = a.announce(p1(), 200, None).unwrap();
        assert_eq!(actions, vec![Action::Replace(gw(p1(), Some(R1), WAN, 163))]);
        // Announcing the same again changes nothing.
        assert_eq!(a.announce(p1(), 200, None).unwrap(), vec![]);
        // Same class: nothing either.
        assert_eq!(a.announce(p1(), 256, None).unwrap(), vec![]);
        let status = a.announced();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].class_metric, 256);
        assert_eq!(status[0].uplink.as_deref(), Some("wan"));
        assert_eq!(status[0].route, Some(gw(p1(), Some(R1), WAN, 163)));
    }

    #[test]
    fn announce_refusals() {
        let mut a = gateway();
        assert_eq!(
            a.announce(p("2001:db8::/48"), 0, None),
            Err(AnnounceError::NotSlash64(p("2001:db8::/48")))
        );
        assert_eq!(
            a.announce(p1(), 4097, None),
            Err(AnnounceError::Metric(4097))
        );
        assert_eq!(
            a.announce(p1(), 0, Some("no spaces".into())),
            Err(AnnounceError::Uplink("no spaces".into()))
        );
        for i in 0..MAX_ANNOUNCEMENTS as u16 {
            let prefix =
                Ipv6Prefix::new(Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0), 64).unwrap();
            a.announce(prefix, 0, None).unwrap();
        }
        assert_eq!(
            a.announce(p("2001:db9::/64"), 0, None),
            Err(AnnounceError::Full)
        );
        // Changing an existing one is still possible when full.
        assert!(a.announce(p("2001:db8::/64"), 64, None).is_ok());
        assert!(a.announced().iter().all(|s| s.route.is_some()));
    }

    #[test]
    fn withdraw_deletes() {
        let mut a = gateway();
        a.announce(p1(), 0, None).unwrap();
        assert_eq!(
            a.withdraw(p1()),
            Ok(vec![Action::Delete(gw(p1(), Some(R1), WAN, 160))])
        );
        assert_eq!(a.withdraw(p1()), Err(NotAnnounced(p1())));
        assert_eq!(a.announced(), vec![]);
        // Withdrawing a prefix without a route deletes nothing.
        a.uplink_changed("wan", None);
        a.announce(p1(), 0, None).unwrap();
        assert_eq!(a.withdraw(p1()), Ok(vec![]));
    }

    #[test]
    fn metric_change_moves_the_route_in_place() {
        let mut a = gateway();
        a.announce(p1(), 64, None).unwrap();
        // One replace with the new protocol: no delete, no second route.
        assert_eq!(
            a.announce(p1(), 1000, None).unwrap(),
            vec![Action::Replace(gw(p1(), Some(R1), WAN, 165))]
        );
    }

    #[test]
    fn uplink_down_deletes_and_return_reinstalls_with_the_new_router() {
        let mut a = Announcements::new(&config(
            Some("wan"),
            vec![entry(p1(), 0, None), entry(p2(), 512, None)],
        ));
        // Nothing until the uplink is usable.
        assert_eq!(a.resync(&[]), vec![]);
        assert_eq!(
            a.uplink_changed("wan", egress(WAN, Some(R1))),
            vec![
                Action::Replace(gw(p1(), Some(R1), WAN, 160)),
                Action::Replace(gw(p2(), Some(R1), WAN, 164)),
            ]
        );
        // Another link's changes do not matter.
        assert_eq!(a.uplink_changed("lan", egress(9, None)), vec![]);
        assert_eq!(
            a.uplink_changed("wan", None),
            vec![
                Action::Delete(gw(p1(), Some(R1), WAN, 160)),
                Action::Delete(gw(p2(), Some(R1), WAN, 164)),
            ]
        );
        assert!(a.announced().iter().all(|s| s.route.is_none()));
        assert_eq!(
            a.uplink_changed("wan", egress(WAN, Some(R2))),
            vec![
                Action::Replace(gw(p1(), Some(R2), WAN, 160)),
                Action::Replace(gw(p2(), Some(R2), WAN, 164)),
            ]
        );
    }

    #[test]
    fn a_new_router_is_one_replace() {
        let mut a = gateway();
        a.announce(p1(), 0, None).unwrap();
        assert_eq!(
            a.uplink_changed("wan", egress(WAN, Some(R2))),
            vec![Action::Replace(gw(p1(), Some(R2), WAN, 160))]
        );
        // Point-to-point now: dev only, still in place.
        assert_eq!(
            a.uplink_changed("wan", egress(WAN, None)),
            vec![Action::Replace(gw(p1(), None, WAN, 160))]
        );
    }

    #[test]
    fn per_announcement_uplink() {
        let mut a = gateway();
        // Its uplink is not usable yet: no route.
        assert_eq!(a.announce(p2(), 64, Some("wan2".into())).unwrap(), vec![]);
        assert_eq!(
            a.uplink_changed("wan2", egress(WAN2, None)),
            vec![Action::Replace(gw(p2(), None, WAN2, 161))]
        );
        // The default uplink going does not touch it.
        assert_eq!(a.uplink_changed("wan", None), vec![]);
        // Moving it to the default uplink (down) deletes; back up installs.
        assert_eq!(
            a.announce(p2(), 64, None).unwrap(),
            vec![Action::Delete(gw(p2(), None, WAN2, 161))]
        );
        assert_eq!(
            a.uplink_changed("wan", egress(WAN, Some(R1))),
            vec![Action::Replace(gw(p2(), Some(R1), WAN, 161))]
        );
        // And moving between usable uplinks is one replace.
        assert_eq!(
            a.announce(p2(), 64, Some("wan2".into())).unwrap(),
            vec![Action::Replace(gw(p2(), None, WAN2, 161))]
        );
    }

    #[test]
    fn without_an_uplink_an_announcement_is_a_statement_only() {
        let mut a = Announcements::new(&config(None, vec![entry(p1(), 0, None)]));
        assert_eq!(a.uplink_changed("wan", egress(WAN, Some(R1))), vec![]);
        assert_eq!(a.resync(&[]), vec![]);
        assert_eq!(a.announce(p2(), 0, None).unwrap(), vec![]);
        let status = a.announced();
        assert_eq!(status.len(), 2);
        assert!(status
            .iter()
            .all(|s| s.uplink.is_none() && s.route.is_none()));
    }

    // ===== the kernel's view =====

    #[test]
    fn resync_adopts_removes_and_corrects() {
        let mut a = Announcements::new(&config(
            Some("wan"),
            vec![
                entry(p1(), 0, None),
                entry(p2(), 64, None),
                entry(p("2001:db8:3::/64"), 0, None),
            ],
        ));
        a.uplink_changed("wan", egress(WAN, Some(R1)));
        let kept = gw(p1(), Some(R1), WAN, 160);
        let stale = gw(p2(), Some(R2), WAN, 167);
        let leftover = gw(p("2001:db8:9::/64"), Some(R1), WAN, 163);
        let mut other_priority = kernel_route(gw(p("2001:db8:8::/64"), Some(R1), WAN, 160));
        other_priority.priority = 100;
        let mut other_table = kernel_route(gw(p("2001:db8:7::/64"), Some(R1), WAN, 160));
        other_table.table = 100;
        let foreign = kernel_route(gw(p("2001:db8:6::/64"), Some(R1), WAN, 4));
        let dump = [
            kernel_route(kept),
            kernel_route(stale),
            kernel_route(leftover),
            other_priority,
            other_table,
            foreign,
        ];
        assert_eq!(
            a.resync(&dump),
            vec![
                Action::Delete(leftover),
                Action::Replace(gw(p2(), Some(R1), WAN, 161)),
                Action::Replace(gw(p("2001:db8:3::/64"), Some(R1), WAN, 160)),
            ]
        );
        // The same dump, corrected, is quiet.
        let dump = [
            kernel_route(kept),
            kernel_route(gw(p2(), Some(R1), WAN, 161)),
            kernel_route(gw(p("2001:db8:3::/64"), Some(R1), WAN, 160)),
        ];
        assert_eq!(a.resync(&dump), vec![]);
    }

    #[test]
    fn resync_while_the_uplink_is_down_removes_our_routes() {
        let mut a = Announcements::new(&config(Some("wan"), vec![entry(p1(), 0, None)]));
        let old = gw(p1(), Some(R1), WAN, 160);
        assert_eq!(a.resync(&[kernel_route(old)]), vec![Action::Delete(old)]);
    }

    #[test]
    fn resync_collapses_a_multipath_slot() {
        let mut a = gateway();
        a.announce(p1(), 0, None).unwrap();
        let wanted = gw(p1(), Some(R1), WAN, 160);
        let extra = gw(p1(), Some(R2), WAN, 160);
        assert_eq!(
            a.resync(&[kernel_route(extra), kernel_route(wanted)]),
            vec![Action::Delete(extra), Action::Replace(wanted)]
        );
    }

    #[test]
    fn removed_from_outside_is_reinstalled() {
        let mut a = gateway();
        a.announce(p1(), 0, None).unwrap();
        let ours = gw(p1(), Some(R1), WAN, 160);
        assert_eq!(
            a.on_event(&KernelEvent::RouteRemoved(kernel_route(ours))),
            vec![Action::Replace(ours)]
        );
        // The removal of an older route (already replaced) changes nothing.
        let older = gw(p1(), Some(R2), WAN, 160);
        assert_eq!(
            a.on_event(&KernelEvent::RouteRemoved(kernel_route(older))),
            vec![]
        );
        // Our own delete coming back as an event changes nothing.
        let deleted = a.withdraw(p1()).unwrap();
        assert_eq!(deleted, vec![Action::Delete(ours)]);
        assert_eq!(
            a.on_event(&KernelEvent::RouteRemoved(kernel_route(ours))),
            vec![]
        );
    }

    #[test]
    fn added_from_outside_is_corrected() {
        let mut a = gateway();
        a.announce(p1(), 0, None).unwrap();
        let ours = gw(p1(), Some(R1), WAN, 160);
        // Our own replace coming back: quiet.
        assert_eq!(
            a.on_event(&KernelEvent::RouteAdded(kernel_route(ours))),
            vec![]
        );
        // Someone replaced it with another router or class: put ours back.
        let theirs = gw(p1(), Some(R2), WAN, 166);
        assert_eq!(
            a.on_event(&KernelEvent::RouteAdded(kernel_route(theirs))),
            vec![Action::Replace(ours)]
        );
        // A route of our block for a prefix we do not announce: removed.
        let stray = gw(p2(), Some(R1), WAN, 161);
        assert_eq!(
            a.on_event(&KernelEvent::RouteAdded(kernel_route(stray))),
            vec![Action::Delete(stray)]
        );
        // Other protocols, priorities, plain defaults: not ours.
        let mut plain = kernel_route(ours);
        plain.src = None;
        let mut other_priority = kernel_route(stray);
        other_priority.priority = 5;
        for r in [
            kernel_route(gw(p2(), Some(R1), WAN, 42)),
            plain,
            other_priority,
        ] {
            assert_eq!(a.on_event(&KernelEvent::RouteAdded(r)), vec![]);
            assert_eq!(a.on_event(&KernelEvent::RouteRemoved(r)), vec![]);
        }
        assert_eq!(a.on_event(&KernelEvent::Overrun), vec![]);
    }

    #[test]
    fn added_while_the_uplink_is_down_is_removed() {
        let mut a = gateway();
        a.announce(p1(), 0, None).unwrap();
        let ours = gw(p1(), Some(R1), WAN, 160);
        a.uplink_changed("wan", None);
        // A late echo of our earlier replace.
        assert_eq!(
            a.on_event(&KernelEvent::RouteAdded(kernel_route(ours))),
            vec![Action::Delete(ours)]
        );
    }

    // ===== against a kernel that keys routes as Linux does =====

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Applies `actions`, feeds the kernel's events back until quiet.
    fn run(kernel: &MemoryKernel, a: &mut Announcements, mut actions: Vec<Action>) {
        for _round in 0..10 {
            for action in actions.drain(..) {
                match action {
                    Action::Replace(g) => block_on(kernel.replace_gateway_route(&g)).unwrap(),
                    Action::Delete(g) => block_on(kernel.delete_gateway_route(&g)).unwrap(),
                }
            }
            let events: Vec<KernelEvent> = kernel.events.borrow_mut().drain(..).collect();
            if events.is_empty() {
                return;
            }
            for e in &events {
                actions.extend(a.on_event(e));
            }
        }
        panic!("no quiet after 10 rounds");
    }

    #[test]
    fn one_route_per_prefix_through_every_change() {
        let kernel = MemoryKernel::default();
        let mut a = gateway();
        let actions = a.announce(p1(), 0, None).unwrap();
        run(&kernel, &mut a, actions);
        assert_eq!(
            kernel.from_source(p1()),
            vec![kernel_route(gw(p1(), Some(R1), WAN, 160))]
        );

        let actions = a.announce(p1(), 3000, None).unwrap();
        run(&kernel, &mut a, actions);
        assert_eq!(
            kernel.from_source(p1()),
            vec![kernel_route(gw(p1(), Some(R1), WAN, 167))]
        );

        let actions = a.uplink_changed("wan", egress(WAN, None));
        run(&kernel, &mut a, actions);
        assert_eq!(
            kernel.from_source(p1()),
            vec![kernel_route(gw(p1(), None, WAN, 167))]
        );

        let actions = a.announce(p1(), 3000, Some("wan2".into())).unwrap();
        run(&kernel, &mut a, actions);
        assert_eq!(kernel.from_source(p1()), vec![]);
        let actions = a.uplink_changed("wan2", egress(WAN2, Some(R2)));
        run(&kernel, &mut a, actions);
        assert_eq!(
            kernel.from_source(p1()),
            vec![kernel_route(gw(p1(), Some(R2), WAN2, 167))]
        );

        // Someone deletes it: it comes back.
        kernel.remove(&kernel_route(gw(p1(), Some(R2), WAN2, 167)));
        run(&kernel, &mut a, vec![]);
        assert_eq!(
            kernel.from_source(p1()),
            vec![kernel_route(gw(p1(), Some(R2), WAN2, 167))]
        );

        // A restart adopts it without touching it.
        let mut restarted =
            Announcements::new(&config(Some("wan"), vec![entry(p1(), 3000, Some("wan2"))]));
        restarted.uplink_changed("wan2", egress(WAN2, Some(R2)));
        let dump = block_on(kernel.dump_routes()).unwrap();
        assert_eq!(restarted.resync(&dump), vec![]);

        let actions = a.withdraw(p1()).unwrap();
        run(&kernel, &mut a, actions);
        assert_eq!(kernel.from_source(p1()), vec![]);
    }
}
