//! When to send router advertisements on one client link (RFC 4861 §6.2.4
//! to §6.2.6), as a state machine.
//!
//! Inputs: the start ([`Schedule::new`]), valid solicitations
//! ([`Schedule::solicited`]), a change of what is advertised
//! ([`Schedule::content_changed`]), the integrator's requests for an
//! advertisement to one client ([`Schedule::unicast_now`]) and shutdown
//! ([`Schedule::final_adverts`]). Output: the [`Destination`]s
//! [`Schedule::due`] returns, each one advertisement to build and send now.
//! There is no clock and no randomness source in here: every call carries
//! `now`, and the random jitter the RFC asks for comes from the
//! [`Random`] given at construction, so tests are deterministic. The caller
//! sleeps until [`Schedule::next_deadline`] (or the next input) and calls
//! [`Schedule::due`].
//!
//! The rules, and why:
//!
//! - After the start and after every content change, the first
//!   [`MAX_INITIAL_RTR_ADVERTISEMENTS`] multicast advertisements come at
//!   most [`MAX_INITIAL_RTR_ADVERT_INTERVAL`] apart, the first within
//!   [`MAX_RA_DELAY_TIME`]: a host that just attached, or a new prefix,
//!   should not wait minutes (§6.2.4).
//! - Then multicast advertisements follow at random intervals, uniform
//!   between the minimum and maximum interval, so routers on a link do not
//!   synchronise (§6.2.4).
//! - Two multicast advertisements are never closer than
//!   [`MIN_DELAY_BETWEEN_RAS`], whatever asked for them (§6.2.6).
//! - A solicitation is answered after a random delay up to
//!   [`MAX_RA_DELAY_TIME`]. By unicast to the solicitor when
//!   `unicast_solicited` is on and it has an address (RFC 7772 §5.1: a
//!   multicast wakes every sleeping phone on the link); unicast replies do
//!   not count against the multicast rate limit. Otherwise by multicast at
//!   the earlier of the scheduled multicast and now plus the delay, moved to
//!   the last multicast plus [`MIN_DELAY_BETWEEN_RAS`] plus the delay if that
//!   is too close; several solicitations share one multicast (§6.2.6).
//!   Every multicast restarts the random interval.
//! - Unicasts are bounded: one client (by MAC) gets at most one per
//!   [`CLIENT_UNICAST_INTERVAL`]; requests meanwhile are merged into the one
//!   pending (its address kept). At most [`MAX_PENDING_UNICASTS`] wait and
//!   [`MAX_RECENT_CLIENTS`] are remembered; beyond either, a solicitation is
//!   answered by multicast instead, which reaches everyone and is rate
//!   limited, so a flood of forged solicitations costs one multicast every
//!   three seconds.
//! - At shutdown, up to [`MAX_FINAL_RTR_ADVERTISEMENTS`] multicast
//!   advertisements with router lifetime 0, rate limited like the others
//!   (§6.2.5); after that the schedule is silent.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use l3roamd_daemon::ConfigError;
use l3roamd_types::MacAddr;
use serde::Deserialize;

use super::packet::Solicitation;

// ===== protocol constants (RFC 4861 §10) =====

/// Initial advertisements come at most this far apart.
pub const MAX_INITIAL_RTR_ADVERT_INTERVAL: Duration = Duration::from_secs(16);
/// How many advertisements count as initial.
pub const MAX_INITIAL_RTR_ADVERTISEMENTS: u8 = 3;
/// How many advertisements with router lifetime 0 end advertising.
pub const MAX_FINAL_RTR_ADVERTISEMENTS: u8 = 3;
/// Two multicast advertisements are at least this far apart.
pub const MIN_DELAY_BETWEEN_RAS: Duration = Duration::from_secs(3);
/// Answers to solicitations wait a random time up to this.
pub const MAX_RA_DELAY_TIME: Duration = Duration::from_millis(500);

// ===== our own bounds =====

/// One client gets at most one unicast advertisement per this interval.
pub const CLIENT_UNICAST_INTERVAL: Duration = Duration::from_secs(1);
/// At most this many unicast advertisements wait to be sent.
pub const MAX_PENDING_UNICASTS: usize = 64;
/// At most this many clients are remembered for [`CLIENT_UNICAST_INTERVAL`].
pub const MAX_RECENT_CLIENTS: usize = 1024;

// ===== settings =====

/// The advertisement settings under `[prefixd]`.
///
/// Intervals are seconds as floating point (like radvd's
/// `MinRtrAdvInterval`), so tests and labs can use a fraction; the RFC's
/// ranges apply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaSettings {
    /// `prefixd.min_interval`: least seconds between unsolicited multicast
    /// advertisements; 3 ..= 0.75 * max. Default 0.33 * max, but at least 3
    /// (RFC 4861 suggests max itself below 9 s, which breaks its own 0.75
    /// rule).
    pub min_interval: Option<f64>,
    /// `prefixd.max_interval`: most seconds between unsolicited multicast
    /// advertisements, 4 ..= 1800.
    pub max_interval: f64,
    /// `prefixd.router_lifetime`: seconds hosts keep us as default router;
    /// 0 (not a default router) or max_interval ..= 9000.
    pub router_lifetime: u32,
    /// `prefixd.mtu`: the link MTU to advertise, 1280 ..= 65535; none by
    /// default (hosts keep the interface MTU).
    pub mtu: Option<u32>,
    /// `prefixd.on_link`: set the L flag on client prefixes. Off by default:
    /// clients of other nodes share the prefix but not the link, so hosts
    /// must send everything to the next-node router.
    pub on_link: bool,
    /// `prefixd.unicast_solicited`: answer a solicitation from an address by
    /// unicast (RFC 7772 §5.1).
    pub unicast_solicited: bool,
}

impl Default for RaSettings {
    fn default() -> Self {
        RaSettings {
            min_interval: None,
            max_interval: 600.0,
            router_lifetime: 1800,
            mtu: None,
            on_link: false,
            unicast_solicited: true,
        }
    }
}

impl RaSettings {
    /// The minimum interval in seconds, the default filled in.
    pub fn min_interval_secs(&self) -> f64 {
        self.min_interval
            .unwrap_or((0.33 * self.max_interval).max(3.0))
    }

    /// The router lifetime for advertisements (validated to fit).
    pub fn router_lifetime(&self) -> u16 {
        u16::try_from(self.router_lifetime).unwrap_or(u16::MAX)
    }

    /// Checks the RFC 4861 §6.2.1 ranges, naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let max = self.max_interval;
        if !(4.0..=1800.0).contains(&max) {
            return Err(ConfigError::invalid(
                "prefixd.max_interval",
                format!("{max} is not between 4 and 1800 seconds"),
            ));
        }
        let min = self.min_interval_secs();
        if !(min >= 3.0 && min <= 0.75 * max) {
            return Err(ConfigError::invalid(
                "prefixd.min_interval",
                format!(
                    "{min} is not between 3 seconds and 0.75 * prefixd.max_interval ({})",
                    0.75 * max
                ),
            ));
        }
        let lifetime = self.router_lifetime;
        if lifetime != 0 && !(f64::from(lifetime) >= max && lifetime <= 9000) {
            return Err(ConfigError::invalid(
                "prefixd.router_lifetime",
                format!(
                    "{lifetime} is neither 0 nor between prefixd.max_interval ({max}) and 9000 seconds"
                ),
            ));
        }
        if let Some(mtu) = self.mtu {
            if !(1280..=65535).contains(&mtu) {
                return Err(ConfigError::invalid(
                    "prefixd.mtu",
                    format!("{mtu} is not between 1280 and 65535"),
                ));
            }
        }
        Ok(())
    }
}

// ===== the schedule =====

/// A source of uniformly random 64-bit values (e.g. `Box::new(rand::random)`
/// or [`xorshift`] seeded from the clock).
pub type Random = Box<dyn FnMut() -> u64 + Send>;

/// A small seeded generator (xorshift64): enough for timer jitter, and
/// deterministic in tests. A zero seed is replaced, it would stay zero.
pub fn xorshift(seed: u64) -> Random {
    let mut s = if seed == 0 {
        0x9e37_79b9_7f4a_7c15
    } else {
        seed
    };
    Box::new(move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    })
}

/// Where one advertisement goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// To all nodes (ff02::1, 33:33:00:00:00:01).
    Multicast,
    /// To one client.
    Unicast {
        /// Its IPv6 address (the IPv6 destination).
        ip: Ipv6Addr,
        /// Its MAC (the Ethernet destination).
        mac: MacAddr,
    },
}

/// A unicast advertisement waiting for its time.
#[derive(Debug, Clone, Copy)]
struct PendingUnicast {
    at: Instant,
    ip: Ipv6Addr,
    mac: MacAddr,
}

/// The advertisement timers of one client link.
pub struct Schedule {
    min: Duration,
    max: Duration,
    unicast_solicited: bool,
    random: Random,
    /// Initial advertisements still to send (§6.2.4).
    initial_left: u8,
    /// The next multicast; `None` once the final advertisements are planned.
    next_multicast: Option<Instant>,
    last_multicast: Option<Instant>,
    unicasts: Vec<PendingUnicast>,
    /// When each client last got a unicast, for [`CLIENT_UNICAST_INTERVAL`].
    recent: BTreeMap<MacAddr, Instant>,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule")
            .field("min", &self.min)
            .field("max", &self.max)
            .field("initial_left", &self.initial_left)
            .field("next_multicast", &self.next_multicast)
            .field("last_multicast", &self.last_multicast)
            .field("unicasts", &self.unicasts)
            .finish_non_exhaustive()
    }
}

impl Schedule {
    /// Starts advertising at `now` with validated `settings`.
    pub fn new(settings: &RaSettings, now: Instant, random: Random) -> Schedule {
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(MIN_DELAY_BETWEEN_RAS);
        let min = secs(settings.min_interval_secs()).max(MIN_DELAY_BETWEEN_RAS);
        let max = secs(settings.max_interval).max(min);
        let mut schedule = Schedule {
            min,
            max,
            unicast_solicited: settings.unicast_solicited,
            random,
            initial_left: MAX_INITIAL_RTR_ADVERTISEMENTS,
            next_multicast: None,
            last_multicast: None,
            unicasts: Vec::new(),
            recent: BTreeMap::new(),
        };
        let first = now + schedule.jitter(MAX_RA_DELAY_TIME);
        schedule.next_multicast = Some(first);
        schedule
    }

    /// A uniformly random duration in `0 ..= span`.
    fn jitter(&mut self, span: Duration) -> Duration {
        // 53 random bits make an f64 in [0, 1).
        let unit = ((self.random)() >> 11) as f64 / (1u64 << 53) as f64;
        span.mul_f64(unit)
    }

    /// The earliest a multicast may go: [`MIN_DELAY_BETWEEN_RAS`] after the last.
    fn earliest_multicast(&self, at: Instant) -> Instant {
        match self.last_multicast {
            Some(last) => at.max(last + MIN_DELAY_BETWEEN_RAS),
            None => at,
        }
    }

    /// Whether the final advertisements are planned (nothing else is sent).
    pub fn is_final(&self) -> bool {
        self.next_multicast.is_none()
    }

    /// A valid solicitation arrived at `now`.
    pub fn solicited(&mut self, now: Instant, solicitation: &Solicitation) {
        if self.is_final() {
            return;
        }
        let delay = self.jitter(MAX_RA_DELAY_TIME);
        if self.unicast_solicited && !solicitation.src_ip.is_unspecified() {
            // The Ethernet source is where the answer is delivered; it is
            // the SLLAO's MAC for every host that sends one.
            let queued = self.queue_unicast(now + delay, solicitation.src_ip, solicitation.src_mac);
            if queued {
                return;
            }
        }
        self.solicited_multicast(now, delay);
    }

    /// Schedules a multicast answer `delay` after `now` (§6.2.6).
    fn solicited_multicast(&mut self, now: Instant, delay: Duration) {
        let Some(next) = self.next_multicast else {
            return;
        };
        let at = match self.last_multicast {
            Some(last) if now < last + MIN_DELAY_BETWEEN_RAS => {
                last + MIN_DELAY_BETWEEN_RAS + delay
            }
            _ => now + delay,
        };
        self.next_multicast = Some(next.min(at));
    }

    /// The integrator wants `client_ip`/`client_mac` to hear an
    /// advertisement now (a client that just arrived, or one with an
    /// advertisement of its own). Rate limited per client; no jitter, as
    /// nothing else on the link answers for the same trigger.
    pub fn unicast_now(&mut self, now: Instant, client_ip: Ipv6Addr, client_mac: MacAddr) {
        if self.is_final() {
            return;
        }
        self.queue_unicast(now, client_ip, client_mac);
    }

    /// Queues a unicast at `at` or as soon after as the client's rate limit
    /// allows; false when the bounds leave no room.
    fn queue_unicast(&mut self, at: Instant, ip: Ipv6Addr, mac: MacAddr) -> bool {
        let at = match self.recent.get(&mac) {
            Some(last) => at.max(*last + CLIENT_UNICAST_INTERVAL),
            None => at,
        };
        if let Some(pending) = self.unicasts.iter_mut().find(|p| p.mac == mac) {
            pending.at = pending.at.min(at);
            return true;
        }
        let room = self.unicasts.len() < MAX_PENDING_UNICASTS
            && (self.recent.contains_key(&mac) || self.recent.len() < MAX_RECENT_CLIENTS);
        if room {
            self.unicasts.push(PendingUnicast { at, ip, mac });
        }
        room
    }

    /// What is advertised changed (a prefix came or went, a lifetime or the
    /// DNS servers changed): send the initial burst again (§6.2.4).
    pub fn content_changed(&mut self, now: Instant) {
        let Some(next) = self.next_multicast else {
            return;
        };
        self.initial_left = MAX_INITIAL_RTR_ADVERTISEMENTS;
        let soon = now + self.jitter(MAX_RA_DELAY_TIME);
        self.next_multicast = Some(next.min(self.earliest_multicast(soon)));
    }

    /// When [`Schedule::due`] has something next; `None` once final.
    pub fn next_deadline(&self) -> Option<Instant> {
        let unicast = self.unicasts.iter().map(|p| p.at).min();
        match (self.next_multicast, unicast) {
            (Some(m), Some(u)) => Some(m.min(u)),
            (m, u) => m.or(u),
        }
    }

    /// The advertisements to send at `now`, multicast first.
    pub fn due(&mut self, now: Instant) -> Vec<Destination> {
        let mut out = Vec::new();
        if let Some(next) = self.next_multicast {
            if next <= now {
                out.push(Destination::Multicast);
                self.last_multicast = Some(now);
                self.initial_left = self.initial_left.saturating_sub(1);
                let mut interval = self.min + self.jitter(self.max - self.min);
                if self.initial_left > 0 {
                    interval = interval.min(MAX_INITIAL_RTR_ADVERT_INTERVAL);
                }
                self.next_multicast = Some(now + interval.max(MIN_DELAY_BETWEEN_RAS));
            }
        }
        let recent = &mut self.recent;
        recent.retain(|_, last| now < *last + CLIENT_UNICAST_INTERVAL);
        self.unicasts.retain(|p| {
            if p.at > now {
                return true;
            }
            out.push(Destination::Unicast {
                ip: p.ip,
                mac: p.mac,
            });
            recent.insert(p.mac, now);
            false
        });
        out
    }

    /// Ends advertising at `now`: the times at which to multicast the
    /// [`MAX_FINAL_RTR_ADVERTISEMENTS`] advertisements with router lifetime
    /// 0, [`MIN_DELAY_BETWEEN_RAS`] apart (§6.2.5). Afterwards the schedule
    /// is silent; a second call returns nothing.
    ///
    /// In the mesh every node is the same next-node router, and a host
    /// that hears lifetime 0 drops its default route until the next
    /// advertisement: send these only when this node stops serving clients
    /// for good, not when prefixd merely restarts.
    pub fn final_adverts(&mut self, now: Instant) -> Vec<Instant> {
        if self.is_final() {
            return Vec::new();
        }
        self.next_multicast = None;
        self.unicasts.clear();
        let first = self.earliest_multicast(now);
        (0..u32::from(MAX_FINAL_RTR_ADVERTISEMENTS))
            .map(|i| first + MIN_DELAY_BETWEEN_RAS * i)
            .collect()
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_MAC: MacAddr = MacAddr([0x02, 0xc1, 0, 0, 0, 1]);

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn rs_from(src: &str, mac: MacAddr) -> Solicitation {
        Solicitation {
            src_mac: mac,
            src_ip: ip(src),
            source_lladdr: None,
        }
    }

    /// A random source that always returns `unit` of the range (0.0 ..= 1.0).
    fn fixed(unit: f64) -> Random {
        let v = ((unit * (1u64 << 53) as f64) as u64).min((1u64 << 53) - 1) << 11;
        Box::new(move || v)
    }

    fn settings(min: f64, max: f64) -> RaSettings {
        RaSettings {
            min_interval: Some(min),
            max_interval: max,
            ..RaSettings::default()
        }
    }

    /// Runs the schedule to `until`, stepping from deadline to deadline, and
    /// returns what was sent when (as offsets from `t0`).
    fn run(s: &mut Schedule, t0: Instant, until: Duration) -> Vec<(Duration, Destination)> {
        let mut sent = Vec::new();
        while let Some(at) = s.next_deadline() {
            if at > t0 + until {
                break;
            }
            for d in s.due(at) {
                sent.push((at - t0, d));
            }
        }
        sent
    }

    fn multicast_times(sent: &[(Duration, Destination)]) -> Vec<Duration> {
        sent.iter()
            .filter(|(_, d)| *d == Destination::Multicast)
            .map(|(t, _)| *t)
            .collect()
    }

    // ----- settings -----

    #[test]
    fn defaults_are_valid_and_follow_the_rfc() {
        let s = RaSettings::default();
        s.validate().unwrap();
        assert_eq!(s.max_interval, 600.0);
        assert!((s.min_interval_secs() - 198.0).abs() < 1e-9);
        assert_eq!(s.router_lifetime(), 1800);
        assert!(!s.on_link);
        assert!(s.unicast_solicited);
        // A short max keeps the derived min at 3 s and valid.
        let short = RaSettings {
            max_interval: 4.0,
            ..RaSettings::default()
        };
        assert_eq!(short.min_interval_secs(), 3.0);
        RaSettings {
            router_lifetime: 0,
            ..short
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn out_of_range_settings_name_their_key() {
        let bad = |s: RaSettings| s.validate().unwrap_err().key().unwrap().to_string();
        let d = RaSettings::default;
        for max in [3.9, 1800.5, f64::NAN] {
            assert_eq!(
                bad(RaSettings {
                    max_interval: max,
                    ..d()
                }),
                "prefixd.max_interval"
            );
        }
        for min in [2.9, 450.1, f64::NAN] {
            assert_eq!(
                bad(RaSettings {
                    min_interval: Some(min),
                    ..d()
                }),
                "prefixd.min_interval"
            );
        }
        for lifetime in [1, 599, 9001] {
            assert_eq!(
                bad(RaSettings {
                    router_lifetime: lifetime,
                    ..d()
                }),
                "prefixd.router_lifetime"
            );
        }
        for mtu in [1279, 65536] {
            assert_eq!(
                bad(RaSettings {
                    mtu: Some(mtu),
                    ..d()
                }),
                "prefixd.mtu"
            );
        }
        RaSettings {
            min_interval: Some(450.0),
            router_lifetime: 600,
            mtu: Some(1280),
            ..d()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn settings_deserialize_by_their_key_names() {
        let s: RaSettings = serde_json::from_str(
            r#"{"min_interval": 3.5, "max_interval": 10, "router_lifetime": 0,
                "mtu": 1400, "on_link": true, "unicast_solicited": false}"#,
        )
        .unwrap();
        assert_eq!(s.min_interval, Some(3.5));
        assert_eq!(s.max_interval, 10.0);
        assert_eq!(s.mtu, Some(1400));
        assert!(s.on_link && !s.unicast_solicited);
        s.validate().unwrap();
        assert!(serde_json::from_str::<RaSettings>(r#"{"interval": 3}"#).is_err());
    }

    // ----- initial and periodic multicasts -----

    #[test]
    fn the_first_advert_goes_within_the_solicitation_delay() {
        let t0 = Instant::now();
        for unit in [0.0, 0.5, 0.999] {
            let s = Schedule::new(&RaSettings::default(), t0, fixed(unit));
            let first = s.next_deadline().unwrap() - t0;
            assert!(first <= MAX_RA_DELAY_TIME, "{first:?}");
        }
    }

    #[test]
    fn three_initial_adverts_at_most_16_s_apart_then_random_intervals() {
        let t0 = Instant::now();
        // With the random value at the top, intervals would be max (600 s).
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.999_999));
        let sent = multicast_times(&run(&mut s, t0, secs(2000)));
        let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps[0], MAX_INITIAL_RTR_ADVERT_INTERVAL);
        assert_eq!(gaps[1], MAX_INITIAL_RTR_ADVERT_INTERVAL);
        for g in &gaps[2..] {
            assert!(*g > secs(599) && *g <= secs(600), "{g:?}");
        }
    }

    #[test]
    fn periodic_intervals_are_uniform_between_min_and_max() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&settings(30.0, 100.0), t0, xorshift(7));
        let sent = multicast_times(&run(&mut s, t0, secs(100_000)));
        let gaps: Vec<Duration> = sent.windows(2).skip(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.len() > 900);
        assert!(gaps.iter().all(|g| *g >= secs(30) && *g <= secs(100)));
        // Roughly uniform: the mean is near 65 s and both halves are used.
        let mean = gaps.iter().map(Duration::as_secs_f64).sum::<f64>() / gaps.len() as f64;
        assert!((mean - 65.0).abs() < 4.0, "{mean}");
        assert!(gaps.iter().any(|g| *g < secs(40)));
        assert!(gaps.iter().any(|g| *g > secs(90)));
    }

    #[test]
    fn with_a_low_random_value_the_minimum_interval_is_used() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&settings(30.0, 100.0), t0, fixed(0.0));
        let sent = multicast_times(&run(&mut s, t0, secs(200)));
        assert_eq!(
            sent,
            [
                ms(0),
                secs(16),
                secs(32),
                secs(62),
                secs(92),
                secs(122),
                secs(152),
                secs(182)
            ]
        );
    }

    #[test]
    fn a_content_change_restarts_the_initial_burst() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.999_999));
        run(&mut s, t0, secs(1000));
        let changed = t0 + secs(1000);
        s.content_changed(changed);
        let next = s.next_deadline().unwrap();
        assert!(next >= changed && next <= changed + MAX_RA_DELAY_TIME);
        let sent = multicast_times(&run(&mut s, changed, secs(100)));
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(sent
            .windows(2)
            .all(|w| w[1] - w[0] <= MAX_INITIAL_RTR_ADVERT_INTERVAL));
    }

    #[test]
    fn a_content_change_right_after_a_multicast_waits_for_the_rate_limit() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.0));
        assert_eq!(s.due(t0), [Destination::Multicast]);
        s.content_changed(t0 + secs(1));
        assert_eq!(s.next_deadline(), Some(t0 + MIN_DELAY_BETWEEN_RAS));
    }

    // ----- solicitations -----

    #[test]
    fn a_solicitation_from_an_address_is_answered_by_unicast_within_half_a_second() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.5));
        run(&mut s, t0, secs(40)); // past the initial burst
        let now = t0 + secs(40);
        s.solicited(now, &rs_from("fe80::c1:ff:fe00:1", CLIENT_MAC));
        assert_eq!(s.next_deadline(), Some(now + ms(250)));
        assert!(s.due(now + ms(249)).is_empty());
        assert_eq!(
            s.due(now + ms(250)),
            [Destination::Unicast {
                ip: ip("fe80::c1:ff:fe00:1"),
                mac: CLIENT_MAC
            }]
        );
    }

    #[test]
    fn a_unicast_answer_ignores_the_multicast_rate_limit() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.0));
        assert_eq!(s.due(t0), [Destination::Multicast]);
        s.solicited(t0 + ms(100), &rs_from("fe80::2", CLIENT_MAC));
        assert_eq!(
            s.due(t0 + ms(100)),
            [Destination::Unicast {
                ip: ip("fe80::2"),
                mac: CLIENT_MAC
            }]
        );
    }

    #[test]
    fn a_solicitation_from_the_unspecified_address_is_answered_by_multicast() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.5));
        run(&mut s, t0, secs(40));
        let now = t0 + secs(100);
        s.solicited(now, &rs_from("::", CLIENT_MAC));
        assert_eq!(s.next_deadline(), Some(now + ms(250)));
        assert_eq!(s.due(now + ms(250)), [Destination::Multicast]);
    }

    #[test]
    fn without_unicast_solicited_every_answer_is_multicast() {
        let t0 = Instant::now();
        let settings = RaSettings {
            unicast_solicited: false,
            ..RaSettings::default()
        };
        let mut s = Schedule::new(&settings, t0, fixed(0.5));
        run(&mut s, t0, secs(40));
        let now = t0 + secs(100);
        s.solicited(now, &rs_from("fe80::2", CLIENT_MAC));
        assert_eq!(s.due(now + ms(250)), [Destination::Multicast]);
    }

    #[test]
    fn a_solicited_multicast_waits_for_min_delay_after_the_last_one() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.5));
        let first = s.next_deadline().unwrap();
        assert_eq!(s.due(first), [Destination::Multicast]);
        s.solicited(first + secs(1), &rs_from("::", CLIENT_MAC));
        // last + MIN_DELAY_BETWEEN_RAS + the random delay (0.25 s).
        assert_eq!(s.next_deadline(), Some(first + secs(3) + ms(250)));
        assert!(s.due(first + secs(3)).is_empty());
        assert_eq!(s.due(first + secs(3) + ms(250)), [Destination::Multicast]);
    }

    #[test]
    fn a_solicitation_never_delays_an_earlier_scheduled_multicast() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.9));
        let first = s.next_deadline().unwrap(); // 0.45 s
        s.solicited(t0, &rs_from("::", CLIENT_MAC)); // would be 0.45 s too
        s.solicited(t0 + ms(200), &rs_from("::", CLIENT_MAC)); // would be 0.65 s
        assert_eq!(s.next_deadline(), Some(first));
    }

    #[test]
    fn several_solicitations_share_one_multicast() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.5));
        run(&mut s, t0, secs(40));
        let now = t0 + secs(100);
        for i in 0..5 {
            s.solicited(
                now + ms(i * 50),
                &rs_from("::", MacAddr([2, 0, 0, 0, 0, i as u8])),
            );
        }
        // Each delay is relative to its solicitation; the first decides.
        assert_eq!(s.next_deadline(), Some(now + ms(250)));
        assert_eq!(s.due(now + ms(500)), [Destination::Multicast]);
        // The next one is a periodic one, at least min_interval later.
        assert!(s.next_deadline().unwrap() >= now + ms(500) + secs(198));
    }

    #[test]
    fn multicasts_are_never_closer_than_min_delay() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&settings(3.0, 4.0), t0, xorshift(42));
        let mut last = None;
        let mut now = t0;
        for step in 0..5000u64 {
            now += ms(97);
            if step % 3 == 0 {
                s.solicited(now, &rs_from("::", CLIENT_MAC));
            }
            if step % 50 == 0 {
                s.content_changed(now);
            }
            if s.due(now).contains(&Destination::Multicast) {
                if let Some(l) = last {
                    assert!(now - l >= MIN_DELAY_BETWEEN_RAS, "{:?}", now - l);
                }
                last = Some(now);
            }
        }
        assert!(last.is_some());
    }

    // ----- unicast to one client -----

    #[test]
    fn unicast_now_is_immediate_and_rate_limited_per_client() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.5));
        run(&mut s, t0, secs(40));
        let now = t0 + secs(100);
        let client = Destination::Unicast {
            ip: ip("fddd:1::100"),
            mac: CLIENT_MAC,
        };
        s.unicast_now(now, ip("fddd:1::100"), CLIENT_MAC);
        assert_eq!(s.due(now), [client]);
        // Again 0.3 s later: held back to 1 s after the last one, merged.
        s.unicast_now(now + ms(300), ip("fddd:1::100"), CLIENT_MAC);
        s.unicast_now(now + ms(400), ip("fe80::c1:ff:fe00:1"), CLIENT_MAC);
        assert_eq!(s.next_deadline(), Some(now + secs(1)));
        assert!(s.due(now + ms(999)).is_empty());
        assert_eq!(s.due(now + secs(1)), [client]);
        // Another client is not held back.
        let other = MacAddr([2, 0xc1, 0, 0, 0, 2]);
        s.unicast_now(now + ms(1100), ip("fddd:1::200"), other);
        assert_eq!(
            s.due(now + ms(1100)),
            [Destination::Unicast {
                ip: ip("fddd:1::200"),
                mac: other
            }]
        );
    }

    #[test]
    fn solicitations_from_one_client_get_at_most_one_unicast_per_second() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.0));
        run(&mut s, t0, secs(40));
        let mut now = t0 + secs(100);
        let mut sent = Vec::new();
        for _ in 0..100 {
            s.solicited(now, &rs_from("fe80::2", CLIENT_MAC));
            for d in s.due(now) {
                sent.push((now, d));
            }
            now += ms(100);
        }
        let unicasts: Vec<Instant> = sent
            .iter()
            .filter(|(_, d)| matches!(d, Destination::Unicast { .. }))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(unicasts.len(), 10);
        assert!(unicasts
            .windows(2)
            .all(|w| w[1] - w[0] >= CLIENT_UNICAST_INTERVAL));
    }

    #[test]
    fn too_many_pending_unicasts_fall_back_to_one_multicast() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.5));
        run(&mut s, t0, secs(40));
        let now = t0 + secs(100);
        for i in 0..(MAX_PENDING_UNICASTS as u32 + 10) {
            let [_, _, a, b] = i.to_be_bytes();
            let mac = MacAddr([2, 0, 0, 0, a, b]);
            s.solicited(now, &rs_from(&format!("fe80::{:x}", i + 1), mac));
        }
        let sent = s.due(now + ms(250));
        assert_eq!(
            sent.iter()
                .filter(|d| **d == Destination::Multicast)
                .count(),
            1
        );
        assert_eq!(sent.len(), MAX_PENDING_UNICASTS + 1);
    }

    // ----- final advertisements -----

    #[test]
    fn final_adverts_are_rate_limited_and_end_the_schedule() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.0));
        assert_eq!(s.due(t0), [Destination::Multicast]);
        s.solicited(t0 + ms(10), &rs_from("fe80::2", CLIENT_MAC));
        let times = s.final_adverts(t0 + secs(1));
        assert_eq!(times, [t0 + secs(3), t0 + secs(6), t0 + secs(9)]);
        assert!(s.is_final());
        assert_eq!(s.next_deadline(), None);
        assert!(s.due(t0 + secs(10)).is_empty());
        s.solicited(t0 + secs(11), &rs_from("fe80::2", CLIENT_MAC));
        s.unicast_now(t0 + secs(11), ip("fe80::2"), CLIENT_MAC);
        s.content_changed(t0 + secs(11));
        assert_eq!(s.next_deadline(), None);
        assert!(s.final_adverts(t0 + secs(12)).is_empty());
        // Long after the last multicast, the first final one goes at once.
        let mut s = Schedule::new(&RaSettings::default(), t0, fixed(0.0));
        run(&mut s, t0, secs(100));
        assert_eq!(s.final_adverts(t0 + secs(500))[0], t0 + secs(500));
    }
}
