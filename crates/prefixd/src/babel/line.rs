//! The lines of babeld's local (control) interface, parsed and printed.
//!
//! babeld (the same in 1.12.2, 1.13.x and 1.14) writes one event per line, each built
//! by one `snprintf` in `local.c`; this module is the only place that knows
//! their layout, the rest of prefixd speaks in [`BabelLine`]. The formats:
//!
//! ```text
//! BABEL 1.0                        local_header: "BABEL 1.0\nversion %s\nhost %s\nmy-id %s\nok\n"
//! version babeld-1.13.1
//! host gw1
//! my-id 02:00:00:00:00:01:00:01
//! ok                               also the end of a dump; "no%s%s\n" (with a message) and "bad\n"
//! add route 55d0c3a8b2f0 prefix ::/0 from 2001:db8:1::/64 installed yes id 02:00:00:00:00:01:00:01 metric 96 refmetric 0 via fe80::1 if mesh0
//!     "%s route %lx prefix %s from %s installed %s id %s metric %d refmetric %d via %s if %s\n"
//! add xroute ::/0-2001:db8:1::/64 prefix ::/0 from 2001:db8:1::/64 metric 0
//!     "%s xroute %s-%s prefix %s from %s metric %d\n"
//! add interface mesh0 up true ipv6 fe80::1
//!     "%s interface %s up true%s%s%s%s\n" / "%s interface %s up false\n"
//! add neighbour 55d0c3a8b010 address fe80::2 if mesh0 reach ffff ureach 0000 rxcost 96 txcost 96 cost 96
//!     "%s neighbour %lx address %s if %s reach %04x ureach %04x rxcost %u txcost %u%s cost %u\n"
//! ```
//!
//! `%s` of the action is `local_kind()`: `add`, `change` or `flush`. A route
//! that is not source-specific still prints `from ::/0` (`format_prefix` of
//! an all-zero source of length 0), and an IPv4 one prints IPv4 notation
//! (`plen >= 96 && v4mapped(prefix)` in `format_prefix`), `from 0.0.0.0/0`.
//!
//! Parsing is by key after the fixed head (`<action> <kind> <id>`), so a
//! field babeld adds later is skipped rather than breaking the line; a known
//! line missing a field it must have is an error. Nothing here panics on any
//! input: every token is reached through iterators and `str::parse`.

use std::fmt;
use std::net::Ipv6Addr;

use l3roamd_types::Ipv6Prefix;

/// babeld's `INFINITY` (`#define INFINITY ((unsigned short)(~0))` in
/// `babeld.h`): the metric of a retracted or unreachable route, kept in
/// babeld's table for a while but not a way to anywhere.
pub const METRIC_INFINITY: u16 = u16::MAX;

/// The longest value quoted back in an error, so a log line stays short.
const QUOTE_MAX: usize = 64;

/// Why a line of a known kind could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// A field the line kind always has is absent.
    #[error("{kind} line without `{field}`")]
    MissingField {
        /// `route`, `xroute`, `interface`, `neighbour` or `my-id`.
        kind: &'static str,
        /// The absent field.
        field: &'static str,
    },
    /// The last key has no value after it.
    #[error("key {0:?} has no value")]
    MissingValue(String),
    /// A key given twice: the line is not what babeld writes.
    #[error("key {0:?} appears twice")]
    Duplicate(String),
    /// A value that does not parse as what its field holds.
    #[error("bad {field}: {value:?}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// Its value (shortened).
        value: String,
    },
    /// An IPv6 destination with an IPv4 source, or the other way round.
    #[error("prefix {prefix:?} and source {from:?} are of different families")]
    MixedFamilies {
        /// The destination prefix.
        prefix: String,
        /// The source prefix.
        from: String,
    },
}

fn quote(value: &str) -> String {
    value.chars().take(QUOTE_MAX).collect()
}

fn bad(field: &'static str, value: &str) -> LineError {
    LineError::BadValue {
        field,
        value: quote(value),
    }
}

// ===== router-id =====

/// A babel router-id, the EUI-64 babeld prints as eight colon-separated hex
/// octets (`format_eui64`: `"%02x:%02x:%02x:%02x:%02x:%02x:%02x:%02x"`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RouterId(pub [u8; 8]);

impl std::str::FromStr for RouterId {
    type Err = LineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut octets = [0u8; 8];
        let mut parts = s.split(':');
        for octet in octets.iter_mut() {
            let part = parts.next().ok_or_else(|| bad("router-id", s))?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("router-id", s));
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad("router-id", s))?;
        }
        if parts.next().is_some() {
            return Err(bad("router-id", s));
        }
        Ok(RouterId(octets))
    }
}

impl fmt::Display for RouterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g, h, i] = self.0;
        write!(
            f,
            "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}:{h:02x}:{i:02x}"
        )
    }
}

impl fmt::Debug for RouterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

// ===== lines =====

/// What happened to the object a line describes (`local_kind()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// New (also every line of a dump).
    Add,
    /// Changed in place: same id, new values.
    Change,
    /// Gone.
    Flush,
}

impl Action {
    fn parse(word: &str) -> Option<Action> {
        match word {
            "add" => Some(Action::Add),
            "change" => Some(Action::Change),
            "flush" => Some(Action::Flush),
            _ => None,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Change => "change",
            Action::Flush => "flush",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A route babel learned from a neighbour, installed or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLine {
    /// What happened to it.
    pub action: Action,
    /// babeld's handle of the route (its address in memory, `%lx`): stable
    /// while the route lives, possibly reused after its flush.
    pub id: String,
    /// The destination.
    pub prefix: Ipv6Prefix,
    /// The source of a source-specific route (RFC 9079); `None` when babeld
    /// prints `from ::/0`, which is how it writes "not source-specific".
    pub from: Option<Ipv6Prefix>,
    /// Whether babeld installed it into the kernel.
    pub installed: bool,
    /// The router that originated it (for a default route: the gateway).
    pub router_id: RouterId,
    /// The metric through this neighbour; [`METRIC_INFINITY`] if retracted.
    pub metric: u16,
    /// The metric the neighbour announced.
    pub refmetric: u16,
    /// The neighbour it goes through (a link-local address).
    pub via: Option<Ipv6Addr>,
    /// The interface of that neighbour.
    pub interface: Option<String>,
}

/// A route this node exports into babel (redistributed from the kernel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XRouteLine {
    /// What happened to it.
    pub action: Action,
    /// babeld's handle: `<prefix>-<from>` as it prints them.
    pub id: String,
    /// The destination.
    pub prefix: Ipv6Prefix,
    /// The source, `None` for `from ::/0` as in [`RouteLine::from`].
    pub from: Option<Ipv6Prefix>,
    /// The metric it is announced with.
    pub metric: u16,
}

/// An interface babeld runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceLine {
    /// What happened to it.
    pub action: Action,
    /// Its name.
    pub name: String,
    /// Whether babeld considers it up.
    pub up: bool,
    /// Its first link-local address, when up.
    pub ipv6: Option<Ipv6Addr>,
}

/// A babel neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourLine {
    /// What happened to it.
    pub action: Action,
    /// babeld's handle (an address in memory).
    pub id: String,
    /// Its link-local address.
    pub address: Ipv6Addr,
    /// The interface it is heard on.
    pub interface: String,
    /// The link cost towards it.
    pub cost: u32,
}

/// One line of babeld's local interface, of a kind prefixd understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BabelLine {
    /// `BABEL <version>`: the first line, the local protocol's version.
    Protocol(String),
    /// `version <babeld version>` in the greeting.
    Version(String),
    /// `host <hostname>` in the greeting.
    Host(String),
    /// `my-id <router-id>` in the greeting: this node's own router-id.
    MyId(RouterId),
    /// `ok`: the end of the greeting and of every reply (a dump included).
    Ok,
    /// `no` or `no <message>`: a request refused.
    No(String),
    /// `bad`: a request not understood.
    Bad,
    /// A learned route.
    Route(RouteLine),
    /// An exported route.
    XRoute(XRouteLine),
    /// An interface.
    Interface(InterfaceLine),
    /// A neighbour.
    Neighbour(NeighbourLine),
}

/// The `key value` pairs after a line's fixed head.
struct Fields<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Fields<'a> {
    fn new(mut tokens: impl Iterator<Item = &'a str>) -> Result<Fields<'a>, LineError> {
        let mut pairs: Vec<(&'a str, &'a str)> = Vec::new();
        while let Some(key) = tokens.next() {
            let value = tokens
                .next()
                .ok_or_else(|| LineError::MissingValue(quote(key)))?;
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(LineError::Duplicate(quote(key)));
            }
            pairs.push((key, value));
        }
        Ok(Fields { pairs })
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn require(&self, kind: &'static str, field: &'static str) -> Result<&'a str, LineError> {
        self.get(field)
            .ok_or(LineError::MissingField { kind, field })
    }
}

/// babeld prints IPv4 prefixes in dotted notation (`format_prefix`); an
/// IPv6 one always has a colon, even with an embedded IPv4 part
/// (`::ffff:192.0.2.1/128` from `inet_ntop`).
fn is_ipv4(s: &str) -> bool {
    !s.contains(':')
}

fn prefix(field: &'static str, s: &str) -> Result<Ipv6Prefix, LineError> {
    s.parse().map_err(|_| bad(field, s))
}

/// `from`: `::/0` stands for "not source-specific".
fn source(s: &str) -> Result<Option<Ipv6Prefix>, LineError> {
    let p = prefix("from", s)?;
    Ok(if p.is_default() { None } else { Some(p) })
}

fn number<T: std::str::FromStr>(field: &'static str, s: &str) -> Result<T, LineError> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(field, s));
    }
    s.parse().map_err(|_| bad(field, s))
}

fn address(field: &'static str, s: &str) -> Result<Ipv6Addr, LineError> {
    s.parse().map_err(|_| bad(field, s))
}

/// A handle printed with `%lx`: 1 to 16 hex digits.
fn handle(field: &'static str, s: &str) -> Result<String, LineError> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(field, s));
    }
    Ok(s.to_string())
}

fn yes_no(field: &'static str, s: &str, yes: &str, no: &str) -> Result<bool, LineError> {
    if s == yes {
        Ok(true)
    } else if s == no {
        Ok(false)
    } else {
        Err(bad(field, s))
    }
}

/// Destination and source of a route or xroute; `None` for IPv4 ones.
fn destination(
    kind: &'static str,
    fields: &Fields<'_>,
) -> Result<Option<(Ipv6Prefix, Option<Ipv6Prefix>)>, LineError> {
    let dst = fields.require(kind, "prefix")?;
    let from = fields.get("from");
    match (is_ipv4(dst), from.map(is_ipv4)) {
        (true, None | Some(true)) => return Ok(None),
        (false, None | Some(false)) => {}
        (_, Some(_)) => {
            return Err(LineError::MixedFamilies {
                prefix: quote(dst),
                from: quote(from.unwrap_or_default()),
            })
        }
    }
    let dst = prefix("prefix", dst)?;
    let from = match from {
        Some(from) => source(from)?,
        None => None,
    };
    Ok(Some((dst, from)))
}

fn route<'a>(
    action: Action,
    mut tokens: impl Iterator<Item = &'a str>,
) -> Result<Option<BabelLine>, LineError> {
    const KIND: &str = "route";
    let id = tokens.next().ok_or(LineError::MissingField {
        kind: KIND,
        field: "id",
    })?;
    let id = handle("route id", id)?;
    let fields = Fields::new(tokens)?;
    let Some((prefix, from)) = destination(KIND, &fields)? else {
        return Ok(None);
    };
    Ok(Some(BabelLine::Route(RouteLine {
        action,
        id,
        prefix,
        from,
        installed: yes_no("installed", fields.require(KIND, "installed")?, "yes", "no")?,
        router_id: fields.require(KIND, "id")?.parse()?,
        metric: number("metric", fields.require(KIND, "metric")?)?,
        refmetric: number("refmetric", fields.require(KIND, "refmetric")?)?,
        via: fields.get("via").map(|v| address("via", v)).transpose()?,
        interface: fields.get("if").map(str::to_string),
    })))
}

fn xroute<'a>(
    action: Action,
    mut tokens: impl Iterator<Item = &'a str>,
) -> Result<Option<BabelLine>, LineError> {
    const KIND: &str = "xroute";
    let id = tokens.next().ok_or(LineError::MissingField {
        kind: KIND,
        field: "id",
    })?;
    let fields = Fields::new(tokens)?;
    let Some((prefix, from)) = destination(KIND, &fields)? else {
        return Ok(None);
    };
    Ok(Some(BabelLine::XRoute(XRouteLine {
        action,
        id: id.to_string(),
        prefix,
        from,
        metric: number("metric", fields.require(KIND, "metric")?)?,
    })))
}

fn interface<'a>(
    action: Action,
    mut tokens: impl Iterator<Item = &'a str>,
) -> Result<Option<BabelLine>, LineError> {
    const KIND: &str = "interface";
    let name = tokens.next().ok_or(LineError::MissingField {
        kind: KIND,
        field: "name",
    })?;
    let fields = Fields::new(tokens)?;
    Ok(Some(BabelLine::Interface(InterfaceLine {
        action,
        name: name.to_string(),
        up: yes_no("up", fields.require(KIND, "up")?, "true", "false")?,
        ipv6: fields.get("ipv6").map(|a| address("ipv6", a)).transpose()?,
    })))
}

fn neighbour<'a>(
    action: Action,
    mut tokens: impl Iterator<Item = &'a str>,
) -> Result<Option<BabelLine>, LineError> {
    const KIND: &str = "neighbour";
    let id = tokens.next().ok_or(LineError::MissingField {
        kind: KIND,
        field: "id",
    })?;
    let id = handle("neighbour id", id)?;
    let fields = Fields::new(tokens)?;
    Ok(Some(BabelLine::Neighbour(NeighbourLine {
        action,
        id,
        address: address("address", fields.require(KIND, "address")?)?,
        interface: fields.require(KIND, "if")?.to_string(),
        cost: number("cost", fields.require(KIND, "cost")?)?,
    })))
}

/// Parses one line (without its newline). `Ok(None)` for what prefixd does
/// not follow: empty lines, unknown kinds, IPv4 routes and xroutes.
pub fn parse_line(line: &str) -> Result<Option<BabelLine>, LineError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut tokens = line.split_ascii_whitespace();
    let Some(first) = tokens.next() else {
        return Ok(None);
    };
    // The rest of the line after the first word, for free-text values.
    let rest = || {
        line.trim_start_matches(|c: char| c.is_ascii_whitespace())
            .get(first.len()..)
            .unwrap_or("")
            .trim()
            .to_string()
    };
    match first {
        "BABEL" => return Ok(Some(BabelLine::Protocol(rest()))),
        "version" => return Ok(Some(BabelLine::Version(rest()))),
        "host" => return Ok(Some(BabelLine::Host(rest()))),
        "my-id" => {
            let id = tokens.next().ok_or(LineError::MissingField {
                kind: "my-id",
                field: "id",
            })?;
            return Ok(Some(BabelLine::MyId(id.parse()?)));
        }
        "ok" => return Ok(Some(BabelLine::Ok)),
        "no" => return Ok(Some(BabelLine::No(rest()))),
        "bad" => return Ok(Some(BabelLine::Bad)),
        _ => {}
    }
    let Some(action) = Action::parse(first) else {
        return Ok(None);
    };
    match tokens.next() {
        Some("route") => route(action, tokens),
        Some("xroute") => xroute(action, tokens),
        Some("interface") => interface(action, tokens),
        Some("neighbour") => neighbour(action, tokens),
        _ => Ok(None),
    }
}

/// `from` as babeld prints it: `::/0` for "not source-specific".
struct From<'a>(&'a Option<Ipv6Prefix>);

impl fmt::Display for From<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "{p}"),
            None => f.write_str("::/0"),
        }
    }
}

/// Prints the line as babeld writes it (for tests and fakes of babeld);
/// interface and neighbour lines print only the fields kept.
impl fmt::Display for BabelLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BabelLine::Protocol(v) => write!(f, "BABEL {v}"),
            BabelLine::Version(v) => write!(f, "version {v}"),
            BabelLine::Host(h) => write!(f, "host {h}"),
            BabelLine::MyId(id) => write!(f, "my-id {id}"),
            BabelLine::Ok => f.write_str("ok"),
            BabelLine::No(m) if m.is_empty() => f.write_str("no"),
            BabelLine::No(m) => write!(f, "no {m}"),
            BabelLine::Bad => f.write_str("bad"),
            BabelLine::Route(r) => {
                write!(
                    f,
                    "{} route {} prefix {} from {} installed {} id {} metric {} refmetric {}",
                    r.action,
                    r.id,
                    r.prefix,
                    From(&r.from),
                    if r.installed { "yes" } else { "no" },
                    r.router_id,
                    r.metric,
                    r.refmetric
                )?;
                if let Some(via) = r.via {
                    write!(f, " via {via}")?;
                }
                if let Some(ifname) = &r.interface {
                    write!(f, " if {ifname}")?;
                }
                Ok(())
            }
            BabelLine::XRoute(x) => write!(
                f,
                "{} xroute {} prefix {} from {} metric {}",
                x.action,
                x.id,
                x.prefix,
                From(&x.from),
                x.metric
            ),
            BabelLine::Interface(i) => {
                write!(
                    f,
                    "{} interface {} up {}",
                    i.action,
                    i.name,
                    if i.up { "true" } else { "false" }
                )?;
                if let Some(ll) = i.ipv6 {
                    write!(f, " ipv6 {ll}")?;
                }
                Ok(())
            }
            BabelLine::Neighbour(n) => write!(
                f,
                "{} neighbour {} address {} if {} cost {}",
                n.action, n.id, n.address, n.interface, n.cost
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines in the layout of babeld 1.13's `local.c` (see the module docs),
    // with values as a lab node shows them.
    const SS_DEFAULT: &str = "add route 5581f1b3e4c0 prefix ::/0 from 2001:db8:1::/64 installed yes id 02:00:00:ff:fe:00:01:01 metric 96 refmetric 0 via fe80::ff:fe00:101 if mesh0";
    const HOST_ROUTE: &str = "change route 5581f1b3e5a0 prefix fdff::2/128 from ::/0 installed no id 02:00:00:ff:fe:00:02:01 metric 256 refmetric 160 via fe80::ff:fe00:201 if mesh1";
    const RETRACTED: &str = "change route 5581f1b3e4c0 prefix ::/0 from 2001:db8:1::/64 installed no id 02:00:00:ff:fe:00:01:01 metric 65535 refmetric 65535 via fe80::ff:fe00:101 if mesh0";
    const FLUSH: &str = "flush route 5581f1b3e4c0 prefix ::/0 from 2001:db8:1::/64 installed no id 02:00:00:ff:fe:00:01:01 metric 65535 refmetric 65535 via fe80::ff:fe00:101 if mesh0";
    const V4_ROUTE: &str = "add route 5581f1b3e680 prefix 10.0.0.0/8 from 0.0.0.0/0 installed yes id 02:00:00:ff:fe:00:01:01 metric 96 refmetric 0 via fe80::ff:fe00:101 if mesh0";
    const XROUTE: &str =
        "add xroute ::/0-2001:db8:1::/64 prefix ::/0 from 2001:db8:1::/64 metric 0";
    const V4_XROUTE: &str =
        "add xroute 192.0.2.0/24-0.0.0.0/0 prefix 192.0.2.0/24 from 0.0.0.0/0 metric 256";
    const IF_UP: &str = "add interface mesh0 up true ipv6 fe80::ff:fe00:101 ipv4 10.0.0.1";
    const IF_DOWN: &str = "add interface wg0 up false";
    const NEIGHBOUR: &str = "add neighbour 5581f1b3d010 address fe80::ff:fe00:201 if mesh0 reach ffff ureach 0000 rxcost 96 txcost 96 rtt 1.234 rttcost 0 cost 96";

    fn p(s: &str) -> Ipv6Prefix {
        s.parse().unwrap()
    }

    fn rid(s: &str) -> RouterId {
        s.parse().unwrap()
    }

    fn route(line: &str) -> RouteLine {
        match parse_line(line) {
            Ok(Some(BabelLine::Route(r))) => r,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    #[test]
    fn greeting_and_replies() {
        // "BABEL 1.0\nversion %s\nhost %s\nmy-id %s\nok\n"
        let greeting =
            "BABEL 1.0\nversion babeld-1.13.1\nhost gw1\nmy-id 02:00:00:ff:fe:00:01:01\nok";
        let lines: Vec<_> = greeting
            .lines()
            .map(|l| parse_line(l).unwrap().unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                BabelLine::Protocol("1.0".into()),
                BabelLine::Version("babeld-1.13.1".into()),
                BabelLine::Host("gw1".into()),
                BabelLine::MyId(RouterId([2, 0, 0, 0xff, 0xfe, 0, 1, 1])),
                BabelLine::Ok,
            ]
        );
        // "no%s%s\n" with and without a message, "bad\n".
        assert_eq!(
            parse_line("no").unwrap(),
            Some(BabelLine::No(String::new()))
        );
        assert_eq!(
            parse_line("no No such interface").unwrap(),
            Some(BabelLine::No("No such interface".into()))
        );
        assert_eq!(parse_line("bad").unwrap(), Some(BabelLine::Bad));
        assert!(parse_line("my-id 02:00").is_err());
        assert!(parse_line("my-id").is_err());
    }

    #[test]
    fn source_specific_default_route() {
        assert_eq!(
            route(SS_DEFAULT),
            RouteLine {
                action: Action::Add,
                id: "5581f1b3e4c0".into(),
                prefix: p("::/0"),
                from: Some(p("2001:db8:1::/64")),
                installed: true,
                router_id: rid("02:00:00:ff:fe:00:01:01"),
                metric: 96,
                refmetric: 0,
                via: Some("fe80::ff:fe00:101".parse().unwrap()),
                interface: Some("mesh0".into()),
            }
        );
    }

    #[test]
    fn from_zero_means_not_source_specific() {
        let r = route(HOST_ROUTE);
        assert_eq!(r.action, Action::Change);
        assert_eq!(r.prefix, p("fdff::2/128"));
        assert_eq!(r.from, None);
        assert!(!r.installed);
        assert_eq!((r.metric, r.refmetric), (256, 160));
        assert_eq!(r.interface.as_deref(), Some("mesh1"));
    }

    #[test]
    fn retraction_and_flush() {
        assert_eq!(route(RETRACTED).metric, METRIC_INFINITY);
        assert_eq!(route(FLUSH).action, Action::Flush);
    }

    #[test]
    fn ipv4_and_unknown_kinds_are_ignored() {
        assert_eq!(parse_line(V4_ROUTE).unwrap(), None);
        assert_eq!(parse_line(V4_XROUTE).unwrap(), None);
        // v4-via-v6: an IPv4 destination through an IPv6 neighbour.
        assert_eq!(
            parse_line("add route 1 prefix 10.1.0.0/16 from 0.0.0.0/0 installed no id 02:00:00:ff:fe:00:01:01 metric 1 refmetric 0 via fe80::1 if m").unwrap(),
            None
        );
        // An IPv6 prefix with an embedded IPv4 part is IPv6.
        let r = route(&SS_DEFAULT.replace("prefix ::/0", "prefix ::ffff:192.0.2.0/120"));
        assert_eq!(r.prefix, p("::ffff:c000:200/120"));
        for line in [
            "",
            "   ",
            "add",
            "add frobnicator 1 x y",
            "frobnicate",
            "flush",
        ] {
            assert_eq!(parse_line(line).unwrap(), None, "{line:?}");
        }
    }

    #[test]
    fn xroutes_interfaces_neighbours() {
        assert_eq!(
            parse_line(XROUTE).unwrap(),
            Some(BabelLine::XRoute(XRouteLine {
                action: Action::Add,
                id: "::/0-2001:db8:1::/64".into(),
                prefix: p("::/0"),
                from: Some(p("2001:db8:1::/64")),
                metric: 0,
            }))
        );
        assert_eq!(
            parse_line(IF_UP).unwrap(),
            Some(BabelLine::Interface(InterfaceLine {
                action: Action::Add,
                name: "mesh0".into(),
                up: true,
                ipv6: Some("fe80::ff:fe00:101".parse().unwrap()),
            }))
        );
        assert_eq!(
            parse_line(IF_DOWN).unwrap(),
            Some(BabelLine::Interface(InterfaceLine {
                action: Action::Add,
                name: "wg0".into(),
                up: false,
                ipv6: None,
            }))
        );
        assert_eq!(
            parse_line(NEIGHBOUR).unwrap(),
            Some(BabelLine::Neighbour(NeighbourLine {
                action: Action::Add,
                id: "5581f1b3d010".into(),
                address: "fe80::ff:fe00:201".parse().unwrap(),
                interface: "mesh0".into(),
                cost: 96,
            }))
        );
    }

    #[test]
    fn a_later_field_is_skipped_and_a_missing_one_is_an_error() {
        let r = route(&format!("{SS_DEFAULT} weight 3"));
        assert_eq!(r.metric, 96);
        // No via/if: still a route.
        let r = route("add route ab prefix ::/0 from 2001:db8:1::/64 installed no id 02:00:00:ff:fe:00:01:01 metric 5 refmetric 1");
        assert_eq!((r.via, r.interface), (None, None));
        assert_eq!(
            parse_line(&SS_DEFAULT.replace(" metric 96", "")),
            Err(LineError::MissingField {
                kind: "route",
                field: "metric"
            })
        );
    }

    #[test]
    fn malformed_lines_say_why() {
        let cases: &[(&str, &str)] = &[
            ("metric 96", "metric 65536"),
            ("metric 96", "metric -1"),
            ("metric 96", "metric +9"),
            ("installed yes", "installed maybe"),
            ("id 02:00:00:ff:fe:00:01:01", "id 02:00:00:ff:fe:00:01"),
            (
                "id 02:00:00:ff:fe:00:01:01",
                "id 02:00:00:ff:fe:00:01:01:02",
            ),
            ("id 02:00:00:ff:fe:00:01:01", "id 2:00:00:ff:fe:00:01:01"),
            ("id 02:00:00:ff:fe:00:01:01", "id +2:00:00:ff:fe:00:01:01"),
            ("from 2001:db8:1::/64", "from 2001:db8:1::1/64"),
            ("from 2001:db8:1::/64", "from 2001:db8:1::/129"),
            ("from 2001:db8:1::/64", "from 10.0.0.0/8"),
            ("prefix ::/0", "prefix ::"),
            ("via fe80::ff:fe00:101", "via fe80::zz"),
            ("5581f1b3e4c0", "0x5581f1b3e4c0"),
            ("5581f1b3e4c0", "11112222333344445"),
            (" if mesh0", " if"),
            (" if mesh0", " if mesh0 metric 3"),
        ];
        for (from, to) in cases {
            let line = SS_DEFAULT.replace(from, to);
            assert!(parse_line(&line).is_err(), "{line:?} was accepted");
        }
        assert!(matches!(
            parse_line(&SS_DEFAULT.replace("from 2001:db8:1::/64", "from 10.0.0.0/8")),
            Err(LineError::MixedFamilies { .. })
        ));
        assert_eq!(
            parse_line(&SS_DEFAULT.replace(" if mesh0", " if")),
            Err(LineError::MissingValue("if".into()))
        );
        assert_eq!(
            parse_line(&format!("{SS_DEFAULT} metric 3")),
            Err(LineError::Duplicate("metric".into()))
        );
    }

    #[test]
    fn lines_print_as_babeld_writes_them() {
        for line in [
            SS_DEFAULT,
            HOST_ROUTE,
            RETRACTED,
            FLUSH,
            XROUTE,
            IF_DOWN,
            "ok",
            "bad",
            "no",
            "no Couldn't flush interface",
            "BABEL 1.0",
            "my-id 02:00:00:ff:fe:00:01:01",
        ] {
            let parsed = parse_line(line).unwrap().unwrap();
            assert_eq!(parsed.to_string(), line);
        }
    }

    // ===== property: random and damaged lines =====

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn random_prefix(rng: &mut Rng) -> Ipv6Prefix {
        let len = rng.below(129) as u8;
        let bits = (u128::from(rng.next()) << 64) | u128::from(rng.next());
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(len))
        };
        Ipv6Prefix::new(Ipv6Addr::from(bits & mask), len).unwrap()
    }

    fn random_route(rng: &mut Rng) -> RouteLine {
        let from = random_prefix(rng);
        RouteLine {
            action: [Action::Add, Action::Change, Action::Flush][rng.below(3)],
            id: format!("{:x}", rng.next()),
            prefix: if rng.below(2) == 0 {
                Ipv6Prefix::new(Ipv6Addr::UNSPECIFIED, 0).unwrap()
            } else {
                random_prefix(rng)
            },
            from: (!from.is_default()).then_some(from),
            installed: rng.below(2) == 0,
            router_id: RouterId(rng.next().to_be_bytes()),
            metric: rng.next() as u16,
            refmetric: rng.next() as u16,
            via: (rng.below(4) != 0).then(|| Ipv6Addr::from(u128::from(rng.next()))),
            interface: (rng.below(4) != 0).then(|| format!("mesh{}", rng.below(100))),
        }
    }

    #[test]
    fn random_routes_round_trip() {
        let mut rng = Rng(0x5eed_babe_1d00_0001);
        for _ in 0..2000 {
            let route = random_route(&mut rng);
            let line = BabelLine::Route(route);
            assert_eq!(parse_line(&line.to_string()).unwrap().as_ref(), Some(&line));
        }
    }

    #[test]
    fn damaged_lines_never_panic() {
        let mut rng = Rng(0x0bad_11fe_0000_0002);
        const ALPHABET: &[u8] = b"0123456789abcdefx:./- \t\r\nroutexidfmyBABELok\xff";
        let mut kinds = [0usize; 3];
        let mut count = |r: &Result<Option<BabelLine>, LineError>| match r {
            Ok(Some(_)) => kinds[0] += 1,
            Ok(None) => kinds[1] += 1,
            Err(_) => kinds[2] += 1,
        };
        let seeds = [
            SS_DEFAULT,
            HOST_ROUTE,
            V4_ROUTE,
            XROUTE,
            IF_UP,
            NEIGHBOUR,
            "my-id 02:00:00:ff:fe:00:01:01",
            "BABEL 1.0",
        ];
        for seed in seeds {
            // Every truncation.
            for (i, _) in seed.char_indices() {
                count(&parse_line(&seed[..i]));
            }
            // Tokens dropped, repeated, swapped or replaced by garbage.
            let tokens: Vec<&str> = seed.split(' ').collect();
            for _ in 0..500 {
                let mut t: Vec<String> = tokens.iter().map(|s| s.to_string()).collect();
                for _ in 0..1 + rng.below(3) {
                    let i = rng.below(t.len());
                    match rng.below(4) {
                        0 => {
                            t.remove(i);
                            if t.is_empty() {
                                t.push(String::new());
                            }
                        }
                        1 => {
                            let dup = t[i].clone();
                            t.insert(i, dup);
                        }
                        2 => {
                            let j = rng.below(t.len());
                            t.swap(i, j);
                        }
                        _ => {
                            let n = rng.below(12);
                            let bytes: Vec<u8> = (0..n)
                                .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                                .collect();
                            t[i] = String::from_utf8_lossy(&bytes).into_owned();
                        }
                    }
                }
                count(&parse_line(&t.join(" ")));
            }
        }
        // Pure noise.
        for _ in 0..2000 {
            let n = rng.below(200);
            let bytes: Vec<u8> = (0..n)
                .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                .collect();
            count(&parse_line(&String::from_utf8_lossy(&bytes)));
        }
        // The generator reached all three outcomes.
        assert!(kinds.iter().all(|k| *k > 100), "{kinds:?}");
    }
}
