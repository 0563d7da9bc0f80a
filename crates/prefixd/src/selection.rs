//! Which client prefixes this node gives its clients (the seeds' "nodes
//! will choose which prefixes to announce to clients").
//!
//! Input: every prefix the node knows, each with what babel says about it
//! (gateways heard, best metric, whether this node has a route for it), its
//! own announcements and the configured site prefixes. Output: for each
//! prefix a state, and from the states the router advertisement's prefix
//! options and the prefixes routing must keep serving.
//!
//! A prefix is *suitable* when this node has a route for it, at least
//! `min_gateways` gateways announce it and its metric is within
//! `metric_margin` of the best prefix's. Up to `max_prefixes` suitable ones
//! are *selected* (advertised as preferred), best metric first. Hysteresis,
//! so that a wobbling metric does not renumber clients: a selected prefix
//! stays selected while it is unsuitable for less than `hold_down`, and a
//! better prefix displaces a selected one only if its metric is lower by
//! more than `switch_margin`. A prefix that goes (no gateway heard, no
//! route) is deprecated at once: its gateway is gone, waiting helps nobody.
//! A deprecated prefix is advertised with preferred lifetime 0 and a valid
//! lifetime running down in real time (RFC 9096 §3.5), and routing for it
//! goes on until that reaches 0 (the seeds: "Routing for all, even
//! deprecated, prefixes will be maintained as long as reasonably
//! possible").
//!
//! Pure: time comes in as [`Instant`]s, the caller re-evaluates on every
//! change of its inputs and at [`PrefixSet::next_deadline`].

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use l3roamd_daemon::{limits, ConfigError};
use l3roamd_types::Ipv6Prefix;
use serde::Deserialize;

/// The selection's settings (part of `[prefixd]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelectionSettings {
    /// At most this many prefixes are preferred at a time.
    pub max_prefixes: usize,
    /// A prefix needs at least this many gateways announcing it.
    pub min_gateways: usize,
    /// A prefix whose metric exceeds the best one's by more is unsuitable.
    pub metric_margin: u32,
    /// A better prefix displaces a selected one only if its metric is lower
    /// by more than this.
    pub switch_margin: u32,
    /// A selected prefix stays selected while unsuitable for less than
    /// this, seconds.
    pub hold_down: u64,
    /// Preferred lifetime of selected prefixes in RAs, seconds.
    pub preferred_lifetime: u32,
    /// Valid lifetime of selected prefixes in RAs, seconds.
    pub valid_lifetime: u32,
}

impl Default for SelectionSettings {
    fn default() -> Self {
        // Lifetimes as RFC 9096 §3.4 recommends for a CE router's LAN
        // side: a client drops a vanished prefix within minutes, not days.
        SelectionSettings {
            max_prefixes: 2,
            min_gateways: 1,
            metric_margin: 512,
            switch_margin: 128,
            hold_down: 60,
            preferred_lifetime: 2700,
            valid_lifetime: 5400,
        }
    }
}

impl SelectionSettings {
    /// Checks ranges; names the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        limits::in_range("prefixd.max_prefixes", self.max_prefixes, 1, 16, "")?;
        limits::in_range("prefixd.min_gateways", self.min_gateways, 1, 64, "")?;
        limits::in_range("prefixd.metric_margin", self.metric_margin, 0, 65535, "")?;
        limits::in_range("prefixd.switch_margin", self.switch_margin, 0, 65535, "")?;
        limits::in_range("prefixd.hold_down", self.hold_down, 0, 86_400, " s")?;
        limits::in_range(
            "prefixd.valid_lifetime",
            self.valid_lifetime,
            1,
            u32::MAX - 1,
            " s",
        )?;
        if self.preferred_lifetime > self.valid_lifetime {
            return Err(ConfigError::invalid(
                "prefixd.preferred_lifetime",
                format!(
                    "{} s exceeds prefixd.valid_lifetime ({} s)",
                    self.preferred_lifetime, self.valid_lifetime
                ),
            ));
        }
        Ok(())
    }
}

/// Where a prefix is known from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `mesh.client_prefixes`: the site prefix of a mesh without gateway
    /// announcements, always usable while the node has a default route.
    Configured,
    /// Announced by this node.
    Announced,
    /// Learned from babel.
    Learned,
}

/// What is known about one prefix right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The client prefix (the source prefix of its default route).
    pub prefix: Ipv6Prefix,
    /// Where it is known from.
    pub origin: Origin,
    /// Gateways announcing it, by babel router id, with their metric
    /// (empty when babel's view is not available).
    pub gateways: Vec<(String, u32)>,
    /// The best metric this node has for it (`None`: unknown, e.g. only
    /// kernel routes are visible).
    pub metric: Option<u32>,
    /// Whether this node has a usable route for traffic from the prefix.
    pub routable: bool,
}

/// A prefix's place in this node's advertisements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Advertised as preferred.
    Selected,
    /// Advertised with preferred lifetime 0 until `valid_until`; routed.
    Deprecated {
        /// When its valid lifetime at the clients runs out.
        valid_until: Instant,
    },
    /// Known, not advertised.
    Known,
}

impl State {
    /// For logs and the status: `selected`, `deprecated` or `known`.
    pub fn name(&self) -> &'static str {
        match self {
            State::Selected => "selected",
            State::Deprecated { .. } => "deprecated",
            State::Known => "known",
        }
    }
}

/// One prefix as the node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixEntry {
    /// The prefix.
    pub prefix: Ipv6Prefix,
    /// The latest observation (`None` once it is no longer heard).
    pub observed: Option<Observation>,
    /// Its state.
    pub state: State,
    /// Since when it is in this state.
    pub since: Instant,
    /// Since when it is unsuitable without interruption (selected ones).
    unsuitable_since: Option<Instant>,
}

impl PrefixEntry {
    /// Where the prefix is known from, if still observed.
    pub fn origin(&self) -> Option<Origin> {
        self.observed.as_ref().map(|o| o.origin)
    }
}

/// A prefix option for a router advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advertised {
    /// The prefix.
    pub prefix: Ipv6Prefix,
    /// Preferred lifetime, seconds.
    pub preferred_lifetime: u32,
    /// Valid lifetime, seconds.
    pub valid_lifetime: u32,
}

/// A change of state, for the log and `WatchPrefixes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The prefix.
    pub prefix: Ipv6Prefix,
    /// Its state before (`None`: new).
    pub from: Option<State>,
    /// Its state now (`None`: forgotten).
    pub to: Option<State>,
}

/// Every known prefix and its state.
#[derive(Debug)]
pub struct PrefixSet {
    settings: SelectionSettings,
    entries: BTreeMap<Ipv6Prefix, PrefixEntry>,
}

impl PrefixSet {
    /// An empty set.
    pub fn new(settings: SelectionSettings) -> PrefixSet {
        PrefixSet {
            settings,
            entries: BTreeMap::new(),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &SelectionSettings {
        &self.settings
    }

    /// Every known prefix, in prefix order.
    pub fn entries(&self) -> impl Iterator<Item = &PrefixEntry> {
        self.entries.values()
    }

    /// The entry of `prefix`.
    pub fn get(&self, prefix: &Ipv6Prefix) -> Option<&PrefixEntry> {
        self.entries.get(prefix)
    }

    /// Takes the complete current view (`observed`, one entry per prefix;
    /// later duplicates are ignored) and re-evaluates every state.
    pub fn update(&mut self, observed: Vec<Observation>, now: Instant) -> Vec<Change> {
        let mut seen = BTreeMap::new();
        for o in observed {
            seen.entry(o.prefix).or_insert(o);
        }
        for entry in self.entries.values_mut() {
            entry.observed = seen.remove(&entry.prefix);
        }
        for (prefix, o) in seen {
            self.entries.insert(
                prefix,
                PrefixEntry {
                    prefix,
                    observed: Some(o),
                    state: State::Known,
                    since: now,
                    unsuitable_since: None,
                },
            );
        }
        self.evaluate(now)
    }

    /// Re-evaluates with the same view (timers: hold-down, deprecation).
    pub fn tick(&mut self, now: Instant) -> Vec<Change> {
        self.evaluate(now)
    }

    /// When the next state change is due without new input.
    pub fn next_deadline(&self) -> Option<Instant> {
        let hold = Duration::from_secs(self.settings.hold_down);
        self.entries
            .values()
            .filter_map(|e| match e.state {
                State::Deprecated { valid_until } => Some(valid_until),
                State::Selected => e.unsuitable_since.and_then(|t| t.checked_add(hold)),
                State::Known => None,
            })
            .min()
    }

    /// The prefix options of a router advertisement: selected prefixes
    /// preferred, deprecated ones with preferred lifetime 0 and what is
    /// left of their valid lifetime.
    pub fn advertised(&self, now: Instant) -> Vec<Advertised> {
        self.entries
            .values()
            .filter_map(|e| match e.state {
                State::Selected => Some(Advertised {
                    prefix: e.prefix,
                    preferred_lifetime: self.settings.preferred_lifetime,
                    valid_lifetime: self.settings.valid_lifetime,
                }),
                State::Deprecated { valid_until } => Some(Advertised {
                    prefix: e.prefix,
                    preferred_lifetime: 0,
                    valid_lifetime: remaining_secs(valid_until, now),
                }),
                State::Known => None,
            })
            .collect()
    }

    /// The prefixes clients of this node may still use: selected and
    /// deprecated ones. Core routes (catch-alls, host routes) exactly these.
    pub fn in_use(&self) -> Vec<Ipv6Prefix> {
        self.entries
            .values()
            .filter(|e| !matches!(e.state, State::Known))
            .map(|e| e.prefix)
            .collect()
    }

    /// Whether some advertised prefix is routable from here: the router
    /// lifetime of an RA is non-zero only then.
    pub fn has_default_route(&self) -> bool {
        self.entries.values().any(|e| {
            matches!(e.state, State::Selected) && e.observed.as_ref().is_some_and(|o| o.routable)
        })
    }

    /// The prefixes of `addresses` (a client's) that this node does not
    /// advertise as preferred: a client arriving with them gets a unicast
    /// RA that deprecates them.
    pub fn foreign_prefixes(&self, addresses: &[Ipv6Addr]) -> Vec<Ipv6Prefix> {
        let mut out: Vec<Ipv6Prefix> = Vec::new();
        for addr in addresses {
            // Link-local and other unroutable addresses belong to no prefix.
            if !l3roamd_types::addr::is_routable_client_address(addr, None) {
                continue;
            }
            let selected = self
                .entries
                .values()
                .any(|e| matches!(e.state, State::Selected) && e.prefix.contains(addr));
            if selected {
                continue;
            }
            let Ok(p) = Ipv6Prefix::new(mask64(addr), 64) else {
                continue;
            };
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    // ===== evaluation =====

    fn suitable(&self, o: &Observation, best: Option<u32>) -> bool {
        if o.origin == Origin::Configured {
            // The site prefix of a mesh without gateway announcements:
            // always advertised (the router lifetime says whether there is
            // a default route).
            return true;
        }
        if !o.routable {
            return false;
        }
        if o.origin != Origin::Learned {
            // Our own and configured prefixes need no gateway count.
            return true;
        }
        if o.gateways.len() < self.settings.min_gateways && !o.gateways.is_empty() {
            return false;
        }
        match (o.metric, best) {
            (Some(m), Some(b)) => m <= b.saturating_add(self.settings.metric_margin),
            _ => true,
        }
    }

    fn evaluate(&mut self, now: Instant) -> Vec<Change> {
        let best = self
            .entries
            .values()
            .filter_map(|e| e.observed.as_ref())
            .filter(|o| o.routable)
            .filter_map(|o| o.metric)
            .min();
        let hold = Duration::from_secs(self.settings.hold_down);
        let suitable: BTreeMap<Ipv6Prefix, bool> = self
            .entries
            .values()
            .map(|e| {
                let s = e.observed.as_ref().is_some_and(|o| self.suitable(o, best));
                (e.prefix, s)
            })
            .collect();
        let mut changes = Vec::new();
        let valid = Duration::from_secs(u64::from(self.settings.valid_lifetime));

        // 1. Selected prefixes that must go: gone at once, unsuitable after
        //    the hold-down.
        for e in self.entries.values_mut() {
            if e.state != State::Selected {
                continue;
            }
            let fit = suitable.get(&e.prefix).copied().unwrap_or(false);
            let gone = e
                .observed
                .as_ref()
                .is_none_or(|o| !o.routable && o.origin != Origin::Configured);
            if fit {
                e.unsuitable_since = None;
                continue;
            }
            let since = *e.unsuitable_since.get_or_insert(now);
            if gone || now.saturating_duration_since(since) >= hold {
                let to = State::Deprecated {
                    valid_until: now.checked_add(valid).unwrap_or(now),
                };
                changes.push(set(e, to, now));
            }
        }

        // 2. Fill free slots, best first; then let a clearly better prefix
        //    displace the worst selected one.
        let metric_of = |e: &PrefixEntry| e.observed.as_ref().and_then(|o| o.metric);
        let mut candidates: Vec<(Option<u32>, Ipv6Prefix)> = self
            .entries
            .values()
            .filter(|e| e.state != State::Selected)
            .filter(|e| suitable.get(&e.prefix).copied().unwrap_or(false))
            .map(|e| (metric_of(e), e.prefix))
            .collect();
        candidates.sort_by_key(|(m, p)| (m.unwrap_or(u32::MAX), *p));
        for (metric, prefix) in candidates {
            let configured = self
                .entries
                .get(&prefix)
                .is_some_and(|e| e.origin() == Some(Origin::Configured));
            // The configured site prefixes are a set of their own: always
            // advertised, outside the limit.
            let selected: Vec<(Option<u32>, Ipv6Prefix)> = self
                .entries
                .values()
                .filter(|e| e.state == State::Selected && e.origin() != Some(Origin::Configured))
                .map(|e| (metric_of(e), e.prefix))
                .collect();
            if !configured && selected.len() >= self.settings.max_prefixes {
                let worst = selected
                    .iter()
                    .max_by_key(|(m, p)| (m.unwrap_or(u32::MAX), *p))
                    .copied();
                let Some((worst_metric, worst_prefix)) = worst else {
                    continue;
                };
                let better = match (metric, worst_metric) {
                    (Some(m), Some(w)) => m.saturating_add(self.settings.switch_margin) < w,
                    _ => false,
                };
                if !better {
                    continue;
                }
                if let Some(w) = self.entries.get_mut(&worst_prefix) {
                    let to = State::Deprecated {
                        valid_until: now.checked_add(valid).unwrap_or(now),
                    };
                    changes.push(set(w, to, now));
                }
            }
            if let Some(e) = self.entries.get_mut(&prefix) {
                changes.push(set(e, State::Selected, now));
            }
        }

        // 3. Deprecated prefixes whose valid lifetime ran out are no longer
        //    in use; prefixes no longer heard and not in use are forgotten.
        for e in self.entries.values_mut() {
            if let State::Deprecated { valid_until } = e.state {
                if now >= valid_until {
                    changes.push(set(e, State::Known, now));
                }
            }
        }
        let forgotten: Vec<Ipv6Prefix> = self
            .entries
            .values()
            .filter(|e| e.state == State::Known && e.observed.is_none())
            .map(|e| e.prefix)
            .collect();
        for prefix in forgotten {
            self.entries.remove(&prefix);
            changes.push(Change {
                prefix,
                from: Some(State::Known),
                to: None,
            });
        }
        changes
    }
}

fn set(e: &mut PrefixEntry, to: State, now: Instant) -> Change {
    let from = e.state;
    e.state = to;
    e.since = now;
    e.unsuitable_since = None;
    Change {
        prefix: e.prefix,
        from: Some(from),
        to: Some(to),
    }
}

/// Whole seconds from `now` to `until`, rounded up (a lifetime advertised
/// as 0 would end the address at once).
fn remaining_secs(until: Instant, now: Instant) -> u32 {
    let left = until.saturating_duration_since(now);
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

fn mask64(addr: &Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    let mut m = [0u8; 16];
    m[..8].copy_from_slice(&o[..8]);
    Ipv6Addr::from(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Ipv6Prefix {
        s.parse().unwrap()
    }

    fn learned(prefix: &str, metric: u32, gateways: usize) -> Observation {
        Observation {
            prefix: p(prefix),
            origin: Origin::Learned,
            gateways: (0..gateways).map(|i| (format!("gw{i}"), metric)).collect(),
            metric: Some(metric),
            routable: true,
        }
    }

    fn states(set: &PrefixSet) -> Vec<(String, &'static str)> {
        set.entries()
            .map(|e| {
                let s = match e.state {
                    State::Selected => "selected",
                    State::Deprecated { .. } => "deprecated",
                    State::Known => "known",
                };
                (e.prefix.to_string(), s)
            })
            .collect()
    }

    fn st(list: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
        list.iter().map(|(a, b)| (a.to_string(), *b)).collect()
    }

    fn settings() -> SelectionSettings {
        SelectionSettings {
            max_prefixes: 1,
            ..SelectionSettings::default()
        }
    }

    #[test]
    fn the_best_suitable_prefixes_are_selected_up_to_the_limit() {
        let mut set = PrefixSet::new(SelectionSettings::default());
        let t = Instant::now();
        set.update(
            vec![
                learned("2001:db8:a::/64", 96, 1),
                learned("2001:db8:b::/64", 288, 1),
                learned("2001:db8:c::/64", 192, 1),
                learned("2001:db8:d::/64", 2000, 1),
            ],
            t,
        );
        assert_eq!(
            states(&set),
            st(&[
                ("2001:db8:a::/64", "selected"),
                ("2001:db8:b::/64", "known"),
                ("2001:db8:c::/64", "selected"),
                ("2001:db8:d::/64", "known"),
            ])
        );
        assert!(set.has_default_route());
        assert_eq!(
            set.in_use(),
            vec![p("2001:db8:a::/64"), p("2001:db8:c::/64")]
        );
    }

    #[test]
    fn too_few_gateways_or_no_route_is_unsuitable() {
        let mut set = PrefixSet::new(SelectionSettings {
            min_gateways: 2,
            ..SelectionSettings::default()
        });
        let mut unroutable = learned("2001:db8:c::/64", 96, 3);
        unroutable.routable = false;
        set.update(
            vec![
                learned("2001:db8:a::/64", 96, 1),
                learned("2001:db8:b::/64", 96, 2),
                unroutable,
            ],
            Instant::now(),
        );
        assert_eq!(
            states(&set),
            st(&[
                ("2001:db8:a::/64", "known"),
                ("2001:db8:b::/64", "selected"),
                ("2001:db8:c::/64", "known"),
            ])
        );
    }

    #[test]
    fn a_wobble_within_the_switch_margin_renumbers_nobody() {
        let mut set = PrefixSet::new(settings());
        let t = Instant::now();
        set.update(vec![learned("2001:db8:a::/64", 300, 1)], t);
        let t1 = t + Duration::from_secs(1);
        let changes = set.update(
            vec![
                learned("2001:db8:a::/64", 300, 1),
                learned("2001:db8:b::/64", 250, 1),
            ],
            t1,
        );
        assert!(changes.iter().all(|c| c.to != Some(State::Selected)));
        assert_eq!(
            states(&set),
            st(&[
                ("2001:db8:a::/64", "selected"),
                ("2001:db8:b::/64", "known")
            ])
        );
        // Better by more than the margin: b displaces a, a is deprecated.
        set.update(
            vec![
                learned("2001:db8:a::/64", 300, 1),
                learned("2001:db8:b::/64", 100, 1),
            ],
            t1,
        );
        assert_eq!(
            states(&set),
            st(&[
                ("2001:db8:a::/64", "deprecated"),
                ("2001:db8:b::/64", "selected")
            ])
        );
    }

    #[test]
    fn an_unsuitable_prefix_stays_for_the_hold_down_and_a_vanished_one_goes_at_once() {
        let mut set = PrefixSet::new(SelectionSettings::default());
        let t = Instant::now();
        set.update(
            vec![
                learned("2001:db8:a::/64", 96, 1),
                learned("2001:db8:b::/64", 192, 1),
            ],
            t,
        );
        // b's metric jumps out of the margin: still selected for a while.
        let far = vec![
            learned("2001:db8:a::/64", 96, 1),
            learned("2001:db8:b::/64", 5000, 1),
        ];
        set.update(far.clone(), t + Duration::from_secs(1));
        assert_eq!(
            set.get(&p("2001:db8:b::/64")).unwrap().state,
            State::Selected
        );
        assert_eq!(set.next_deadline(), Some(t + Duration::from_secs(61)));
        set.tick(t + Duration::from_secs(61));
        assert!(matches!(
            set.get(&p("2001:db8:b::/64")).unwrap().state,
            State::Deprecated { .. }
        ));
        // a vanishes: deprecated at once, still routed.
        let t2 = t + Duration::from_secs(62);
        set.update(vec![learned("2001:db8:b::/64", 5000, 1)], t2);
        let a = set.get(&p("2001:db8:a::/64")).unwrap();
        assert_eq!(
            a.state,
            State::Deprecated {
                valid_until: t2 + Duration::from_secs(5400)
            }
        );
        assert!(set.in_use().contains(&p("2001:db8:a::/64")));
        // b, alone now, is the best there is: selected again.
        assert_eq!(
            set.get(&p("2001:db8:b::/64")).unwrap().state,
            State::Selected
        );
        assert!(set.has_default_route());
    }

    #[test]
    fn deprecated_prefixes_count_down_and_end() {
        let mut set = PrefixSet::new(SelectionSettings::default());
        let t = Instant::now();
        set.update(vec![learned("2001:db8:a::/64", 96, 1)], t);
        set.update(vec![], t);
        let later = t + Duration::from_millis(100_500);
        assert_eq!(
            set.advertised(later),
            vec![Advertised {
                prefix: p("2001:db8:a::/64"),
                preferred_lifetime: 0,
                valid_lifetime: 5300,
            }]
        );
        assert_eq!(set.next_deadline(), Some(t + Duration::from_secs(5400)));
        let changes = set.tick(t + Duration::from_secs(5400));
        assert_eq!(set.entries().count(), 0, "forgotten: {changes:?}");
        assert!(set.in_use().is_empty());
    }

    #[test]
    fn a_returning_prefix_is_selected_again() {
        let mut set = PrefixSet::new(SelectionSettings::default());
        let t = Instant::now();
        set.update(vec![learned("2001:db8:a::/64", 96, 1)], t);
        set.update(vec![], t + Duration::from_secs(1));
        set.update(
            vec![learned("2001:db8:a::/64", 96, 1)],
            t + Duration::from_secs(2),
        );
        assert_eq!(
            set.get(&p("2001:db8:a::/64")).unwrap().state,
            State::Selected
        );
        assert_eq!(set.advertised(t)[0].preferred_lifetime, 2700);
    }

    #[test]
    fn a_configured_prefix_needs_only_a_route() {
        let mut set = PrefixSet::new(SelectionSettings::default());
        let o = Observation {
            prefix: p("fddd:1::/64"),
            origin: Origin::Configured,
            gateways: vec![],
            metric: None,
            routable: true,
        };
        set.update(vec![o.clone()], Instant::now());
        assert_eq!(set.get(&p("fddd:1::/64")).unwrap().state, State::Selected);
        assert!(set.has_default_route());
        // Without a default route it is still advertised, but this node is
        // no default router.
        let unroutable = Observation {
            routable: false,
            ..o
        };
        set.update(vec![unroutable], Instant::now());
        assert_eq!(set.get(&p("fddd:1::/64")).unwrap().state, State::Selected);
        assert!(!set.has_default_route());
    }

    #[test]
    fn configured_prefixes_are_outside_the_limit() {
        let mut set = PrefixSet::new(settings());
        let site = Observation {
            prefix: p("fddd:1::/64"),
            origin: Origin::Configured,
            gateways: vec![],
            metric: None,
            routable: true,
        };
        set.update(
            vec![
                learned("2001:db8:a::/64", 96, 1),
                learned("2001:db8:b::/64", 96, 1),
                site,
            ],
            Instant::now(),
        );
        assert_eq!(
            states(&set),
            st(&[
                ("2001:db8:a::/64", "selected"),
                ("2001:db8:b::/64", "known"),
                ("fddd:1::/64", "selected"),
            ])
        );
    }

    #[test]
    fn foreign_prefixes_of_a_client() {
        let mut set = PrefixSet::new(SelectionSettings::default());
        set.update(vec![learned("2001:db8:a::/64", 96, 1)], Instant::now());
        let addrs: Vec<Ipv6Addr> = ["2001:db8:a::1", "2001:db8:b::1", "2001:db8:b::2", "fe80::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(set.foreign_prefixes(&addrs), vec![p("2001:db8:b::/64")]);
    }

    #[test]
    fn bad_settings_name_the_key() {
        let bad = SelectionSettings {
            preferred_lifetime: 6000,
            ..SelectionSettings::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().key(),
            Some("prefixd.preferred_lifetime")
        );
        let bad = SelectionSettings {
            max_prefixes: 0,
            ..SelectionSettings::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().key(),
            Some("prefixd.max_prefixes")
        );
    }
}
