//! The answers, byte for byte as the C daemon wrote them.
//!
//! The C daemon printed with json-c's `json_object_to_json_string`, which
//! is the spaced format: `{ "key": value, "key": value }`, `[ "a", "b" ]`,
//! an empty array `[ ]`, `/` escaped as `\/`, no newline at the end. Object
//! keys keep their insertion order. respondd and Gluon's scripts parse the
//! JSON (json-c, jsonfilter), so the spacing matters only to a script that
//! greps; it costs nothing to keep it.

use std::fmt::Write as _;
use std::net::Ipv6Addr;

use l3roamd_types::{Ipv6Prefix, MacAddr};

/// The C daemon's state of a client address (`enum ip_state`), printed as
/// its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressState {
    /// 0: known but not in use (our client's routes are parked: it left).
    Inactive = 0,
    /// 1: in use (our client is served).
    Active = 1,
    /// 2: being confirmed (our client is being claimed).
    Tentative = 2,
}

/// A client of this node as `get_clients` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its MAC, the key in `clientlist`.
    pub mac: MacAddr,
    /// The client interface it is on.
    pub interface: String,
    /// Its addresses (IPv4 ones mapped, `::ffff:a.b.c.d`, as the C daemon
    /// printed them) and their state.
    pub addresses: Vec<(Ipv6Addr, AddressState)>,
}

/// A JSON string as json-c writes it.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{ "key": [ "item", ... ] }`.
fn object_of_strings(key: &str, items: impl IntoIterator<Item = String>) -> String {
    let mut out = String::from("{ ");
    string(&mut out, key);
    out.push_str(": [");
    let mut first = true;
    for item in items {
        out.push_str(if first { " " } else { ", " });
        first = false;
        string(&mut out, &item);
    }
    out.push_str(" ] }");
    out
}

/// `get_clients`: `clients` is the count; `clientlist` (absent when there
/// are none) maps each MAC to its `interface` and `addresses` (absent when
/// it has none), each address to its `state`.
pub fn clients(clients: &[Client]) -> String {
    let mut out = String::from("{ \"clients\": ");
    let _ = write!(out, "{}", clients.len());
    if !clients.is_empty() {
        out.push_str(", \"clientlist\": {");
        for (i, client) in clients.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { ", " });
            string(&mut out, &client.mac.to_string());
            out.push_str(": { \"interface\": ");
            string(&mut out, &client.interface);
            if !client.addresses.is_empty() {
                out.push_str(", \"addresses\": {");
                for (j, (addr, state)) in client.addresses.iter().enumerate() {
                    out.push_str(if j == 0 { " " } else { ", " });
                    string(&mut out, &addr.to_string());
                    let _ = write!(out, ": {{ \"state\": {} }}", *state as u8);
                }
                out.push_str(" }");
            }
            out.push_str(" }");
        }
        out.push_str(" }");
    }
    out.push_str(" }");
    out
}

/// `get_meshifs`: `{ "mesh_interfaces": [ ... ] }`.
pub fn mesh_interfaces(names: &[String]) -> String {
    object_of_strings("mesh_interfaces", names.iter().cloned())
}

/// `get_prefixes`: `{ "prefixes": [ ... ] }`, each as `addr/len` (the C
/// daemon dropped the length; see the design notes).
pub fn prefixes(prefixes: &[Ipv6Prefix]) -> String {
    object_of_strings("prefixes", prefixes.iter().map(ToString::to_string))
}

/// `has_route`: the C daemon's line.
pub fn has_route(addr: Ipv6Addr, found: bool) -> String {
    let found = if found { "YES" } else { "NO" };
    format!("found route {addr}/128: {found}\n")
}

/// A failed or malformed command: one line, never JSON (a client that
/// parses the answer as JSON fails instead of reading made-up data).
pub fn error(message: &dyn std::fmt::Display) -> String {
    let line = format!("error: {message}");
    // One line whatever the message holds.
    let mut out: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(mac: &str, addrs: &[(&str, AddressState)]) -> Client {
        Client {
            mac: mac.parse().unwrap(),
            interface: "br-client".into(),
            addresses: addrs
                .iter()
                .map(|(a, s)| (a.parse().unwrap(), *s))
                .collect(),
        }
    }

    #[test]
    fn get_clients_as_json_c_printed_it() {
        // What the C daemon answered with no clients and with two, one of
        // them without addresses (json-c 0.13, json_object_to_json_string).
        assert_eq!(clients(&[]), r#"{ "clients": 0 }"#);
        let two = [
            client(
                "02:00:00:00:01:00",
                &[
                    ("fddd:1::5", AddressState::Active),
                    ("::ffff:10.1.2.3", AddressState::Tentative),
                ],
            ),
            client("02:00:00:00:02:00", &[]),
        ];
        assert_eq!(
            clients(&two),
            r#"{ "clients": 2, "clientlist": { "02:00:00:00:01:00": { "interface": "br-client", "addresses": { "fddd:1::5": { "state": 1 }, "::ffff:10.1.2.3": { "state": 2 } } }, "02:00:00:00:02:00": { "interface": "br-client" } } }"#
        );
        // And it is JSON with the keys respondd and scripts read.
        let v: serde_json::Value = serde_json::from_str(&clients(&two)).unwrap();
        assert_eq!(v["clients"], 2);
        assert_eq!(
            v["clientlist"]["02:00:00:00:01:00"]["addresses"]["fddd:1::5"]["state"],
            1
        );
    }

    #[test]
    fn lists_as_json_c_printed_them() {
        assert_eq!(mesh_interfaces(&[]), r#"{ "mesh_interfaces": [ ] }"#);
        assert_eq!(
            mesh_interfaces(&["mesh0".into(), "mesh-vpn".into()]),
            r#"{ "mesh_interfaces": [ "mesh0", "mesh-vpn" ] }"#
        );
        assert_eq!(
            prefixes(&["fddd:1::/64".parse().unwrap()]),
            r#"{ "prefixes": [ "fddd:1::\/64" ] }"#
        );
        let v: serde_json::Value =
            serde_json::from_str(&prefixes(&["fddd:1::/64".parse().unwrap()])).unwrap();
        assert_eq!(v["prefixes"][0], "fddd:1::/64");
        assert_eq!(
            has_route("fddd:1::5".parse().unwrap(), true),
            "found route fddd:1::5/128: YES\n"
        );
    }

    #[test]
    fn strings_are_escaped_and_errors_are_one_line() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\n\u{1}");
        assert_eq!(out, r#""a\"b\\c\n\u0001""#);
        assert_eq!(error(&"bad\nthing"), "error: bad thing\n");
    }
}
