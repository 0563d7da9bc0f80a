//! Kernel routes as `ip -j -6 route` prints them.
//!
//! Only what the lab asserts on is kept: destination, route type, protocol,
//! device, gateway and metric. babeld leaves `unreachable` routes (proto
//! babel) behind for retracted prefixes, so "has a babel route" must look at
//! the type too.

use std::net::Ipv6Addr;

use serde_json::Value;

use crate::error::{Error, Result};

/// The route protocol number babeld installs its routes with.
pub const PROTO_BABEL: u8 = 42;

/// One route of a routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination as printed: `fdff::2`, `fddd:1::/64` or `default`.
    pub dst: String,
    /// Route type: `unicast` unless `ip` printed another (`unreachable`, `local`, ...).
    pub kind: String,
    /// Protocol as printed: a name from rt_protos (`babel`, `kernel`) or a number (`158`).
    pub protocol: String,
    /// Output device, if any.
    pub dev: Option<String>,
    /// Next hop, if any.
    pub gateway: Option<Ipv6Addr>,
    /// Route metric, if printed.
    pub metric: Option<u32>,
    /// Flags as printed (`linkdown`, `onlink`, ...).
    pub flags: Vec<String>,
    /// Table, when listed with `table all` (`main`, `local`, a number); `None` means main.
    pub table: Option<String>,
    /// Source prefix of a source-specific route (`default from 2001:db8:a::/64`).
    pub from: Option<String>,
    /// Seconds until the kernel expires the route (RA-learned routes).
    pub expires: Option<u32>,
    /// Router preference of an RA-learned route (`low`, `medium`, `high`).
    pub pref: Option<String>,
}

impl Route {
    /// The protocol as a number, translating the names iproute2 knows.
    pub fn protocol_number(&self) -> Option<u8> {
        if let Ok(n) = self.protocol.parse() {
            return Some(n);
        }
        Some(match self.protocol.as_str() {
            "unspec" => 0,
            "redirect" => 1,
            "kernel" => 2,
            "boot" => 3,
            "static" => 4,
            "ra" => 9,
            "zebra" => 11,
            "bird" => 12,
            "dhcp" => 16,
            "babel" => PROTO_BABEL,
            _ => return None,
        })
    }

    /// True for a usable route (type unicast) installed by babeld.
    pub fn is_babel_unicast(&self) -> bool {
        self.kind == "unicast" && self.protocol_number() == Some(PROTO_BABEL)
    }

    /// True if the kernel marked the route's device as without carrier.
    pub fn is_linkdown(&self) -> bool {
        self.flags.iter().any(|f| f == "linkdown")
    }

    /// True if the route is in the main table (or the table was not printed).
    pub fn in_main_table(&self) -> bool {
        self.table
            .as_deref()
            .is_none_or(|t| t == "main" || t == "254")
    }

    /// True for a default route whose source prefix is `from` (`2001:db8:a::/64`).
    pub fn is_default_from(&self, from: &str) -> bool {
        self.dst == "default" && self.from.as_deref() == Some(from)
    }

    /// True if the destination is exactly the host `addr` (`addr` or `addr/128`).
    pub fn is_host(&self, addr: Ipv6Addr) -> bool {
        let (a, len) = match self.dst.split_once('/') {
            Some((a, len)) => (a, len),
            None => (self.dst.as_str(), "128"),
        };
        len == "128" && a.parse::<Ipv6Addr>() == Ok(addr)
    }
}

/// Parses the JSON printed by `ip -j -6 route show`.
pub fn parse_json(json: &str) -> Result<Vec<Route>> {
    let what = "`ip -j -6 route` output";
    // `ip -j` prints nothing at all for an empty table on some versions.
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value =
        serde_json::from_str(json).map_err(|e| Error::parse(what, format!("{e}: {json}")))?;
    let entries = value
        .as_array()
        .ok_or_else(|| Error::parse(what, format!("not a JSON array: {json}")))?;
    entries
        .iter()
        .map(|entry| {
            let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_string);
            let dst = text("dst")
                .ok_or_else(|| Error::parse(what, format!("route without dst: {entry}")))?;
            let gateway = match text("gateway") {
                Some(g) => Some(
                    g.parse()
                        .map_err(|_| Error::parse(what, format!("bad gateway {g:?} in {entry}")))?,
                ),
                None => None,
            };
            Ok(Route {
                dst,
                kind: text("type").unwrap_or_else(|| "unicast".into()),
                protocol: match entry.get("protocol") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => "unspec".into(),
                },
                dev: text("dev"),
                gateway,
                metric: entry
                    .get("metric")
                    .and_then(Value::as_u64)
                    .and_then(|m| u32::try_from(m).ok()),
                flags: entry
                    .get("flags")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                table: match entry.get("table") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                },
                from: text("from"),
                expires: entry
                    .get("expires")
                    .and_then(Value::as_u64)
                    .and_then(|e| u32::try_from(e).ok()),
                pref: text("pref"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"[
        {"dst":"fddd:1::5","dev":"lo","protocol":"158","metric":1024,"flags":[],"pref":"medium"},
        {"dst":"fdff::2","gateway":"fe80::443:29ff:fe73:d45d","dev":"m-n2","protocol":"babel","metric":96,"flags":["onlink"],"pref":"medium"},
        {"type":"unreachable","dst":"fdff::5","dev":"lo","protocol":"babel","metric":4294967295,"flags":[],"pref":"medium"}
    ]"#;

    #[test]
    fn parses_babel_and_unreachable_routes() {
        let routes = parse_json(SAMPLE).expect("parses");
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[0].protocol_number(), Some(158));
        assert!(!routes[0].is_babel_unicast());
        assert!(routes[1].is_babel_unicast());
        assert!(routes[1].is_host("fdff::2".parse().expect("addr")));
        assert_eq!(routes[1].dev.as_deref(), Some("m-n2"));
        assert_eq!(routes[2].kind, "unreachable");
        assert!(!routes[2].is_babel_unicast());
        assert!(routes[1].flags.iter().any(|f| f == "onlink"));
        assert!(!routes[1].is_linkdown());
        assert!(routes[1].in_main_table());
    }

    #[test]
    fn parses_linkdown_and_tables() {
        let json = r#"[
            {"dst":"default","gateway":"fe80::1","dev":"eth0","protocol":"boot","metric":1024,"flags":["linkdown"],"pref":"medium"},
            {"type":"local","dst":"fddd:1::101","table":"local","dev":"eth0","protocol":"kernel","metric":0,"flags":[]}
        ]"#;
        let routes = parse_json(json).expect("parses");
        assert!(routes[0].is_linkdown());
        assert_eq!(routes[1].table.as_deref(), Some("local"));
        assert!(!routes[1].in_main_table());
    }

    #[test]
    fn prefix_is_not_a_host() {
        let r = Route {
            dst: "fddd:1::/64".into(),
            kind: "unicast".into(),
            protocol: "babel".into(),
            dev: None,
            gateway: None,
            metric: None,
            flags: Vec::new(),
            table: None,
            from: None,
            expires: None,
            pref: None,
        };
        assert!(!r.is_host("fddd:1::".parse().expect("addr")));
    }

    #[test]
    fn parses_source_specific_and_ra_routes() {
        let json = r#"[
            {"dst":"default","from":"2001:db8:a::/64","gateway":"fe80::2","dev":"m-gw","protocol":"babel","metric":1024,"flags":[],"pref":"medium"},
            {"dst":"default","gateway":"fe80::1","dev":"eth0","protocol":"ra","metric":1024,"flags":[],"expires":1799,"pref":"high"}
        ]"#;
        let routes = parse_json(json).expect("parses");
        assert!(routes[0].is_default_from("2001:db8:a::/64"));
        assert!(!routes[0].is_default_from("2001:db8:b::/64"));
        assert!(routes[0].is_babel_unicast());
        assert_eq!(routes[1].protocol_number(), Some(9));
        assert_eq!(routes[1].expires, Some(1799));
        assert_eq!(routes[1].pref.as_deref(), Some("high"));
        assert_eq!(routes[1].from, None);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_json("{not json").is_err());
        assert!(parse_json(r#"[{"dev":"lo"}]"#).is_err());
    }
}
