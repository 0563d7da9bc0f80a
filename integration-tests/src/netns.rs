//! Named network namespaces and the commands run inside them.
//!
//! A [`Netns`] is a handle on a namespace under `/run/netns`; it does not
//! delete the namespace when dropped (the [`Lab`](crate::Lab) owns that), so
//! handles can be cloned freely. Commands run as `ip -n NAME ...` for
//! iproute2 and `ip netns exec NAME ...` for anything else.

use std::ffi::OsStr;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cmd::{self, Output};
use crate::error::{Error, Result};
use crate::routes::{self, Route};

use serde_json::Value;

/// Where iproute2 keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// A named network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    name: String,
    ip: PathBuf,
}

impl Netns {
    /// Creates the namespace `name` (`ip netns add`) with `lo` up.
    pub fn create(name: &str, ip: &Path) -> Result<Netns> {
        if Path::new(NETNS_DIR).join(name).exists() {
            return Err(Error::Usage(format!(
                "network namespace {name} already exists"
            )));
        }
        cmd::run(ip, &["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
            ip: ip.to_path_buf(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace name as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mount file of the namespace (`/run/netns/NAME`).
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Runs `ip -n NAME args...` and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        cmd::run(&self.ip, &full).map_err(|e| self.context(e))
    }

    /// Runs `args` inside the namespace and returns its stdout; non-zero exit is an error.
    pub fn exec<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        self.exec_status(args, cmd::DEFAULT_COMMAND_TIMEOUT)?
            .success()
            .map_err(|e| self.context(e))
    }

    /// Runs `args` inside the namespace within `timeout`, whatever the exit status.
    pub fn exec_status<S: AsRef<OsStr>>(&self, args: &[S], timeout: Duration) -> Result<Output> {
        let mut full: Vec<&OsStr> = vec!["netns".as_ref(), "exec".as_ref(), self.name.as_ref()];
        full.extend(args.iter().map(AsRef::as_ref));
        cmd::run_status(&self.ip, &full, timeout)
    }

    /// Sets sysctls (dotted keys such as `net.ipv6.conf.all.forwarding`) inside the namespace.
    ///
    /// Written through `/proc/sys` by a shell, so no `sysctl` binary is needed.
    pub fn sysctls(&self, settings: &[(&str, &str)]) -> Result<()> {
        let mut script = String::from("set -e");
        for (key, value) in settings {
            if !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                || !value.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return Err(Error::Usage(format!("unsafe sysctl {key}={value}")));
            }
            script.push_str(&format!(
                "; echo {value} > /proc/sys/{}",
                key.replace('.', "/")
            ));
        }
        self.exec(&["sh", "-c", &script]).map(|_| ())
    }

    /// The IPv6 routes of the main table.
    pub fn routes(&self) -> Result<Vec<Route>> {
        let json = self.ip(&["-j", "-6", "route", "show"])?;
        routes::parse_json(&json).map_err(|e| self.context(e))
    }

    /// Interfaces with their operational state and usable (not tentative) IPv6 addresses.
    pub fn interfaces(&self) -> Result<Vec<Interface>> {
        let json = self.ip(&["-j", "-6", "addr", "show"])?;
        parse_interfaces(&json).map_err(|e| self.context(e))
    }

    /// Deletes the namespace (`ip netns del`).
    pub fn delete(&self) -> Result<()> {
        cmd::run(&self.ip, &["netns", "del", &self.name]).map(|_| ())
    }

    fn context(&self, e: Error) -> Error {
        match e {
            Error::Command {
                command,
                status,
                stderr,
            } => Error::Command {
                command: format!("{command} [in netns {}]", self.name),
                status,
                stderr,
            },
            other => other,
        }
    }
}

/// One interface as `ip -j -6 addr show` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Operational state (`UP`, `DOWN`, `UNKNOWN`, `LOWERLAYERDOWN`).
    pub operstate: String,
    /// IPv6 addresses that are usable: not tentative, not failed DAD.
    pub addresses: Vec<Ipv6Addr>,
}

impl Interface {
    /// True if the interface is up and has a usable link-local address.
    pub fn link_local_ready(&self) -> bool {
        self.operstate == "UP" && self.addresses.iter().any(|a| a.is_unicast_link_local())
    }
}

/// Parses the JSON printed by `ip -j -6 addr show`.
pub fn parse_interfaces(json: &str) -> Result<Vec<Interface>> {
    let what = "`ip -j -6 addr` output";
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value =
        serde_json::from_str(json).map_err(|e| Error::parse(what, format!("{e}: {json}")))?;
    let entries = value
        .as_array()
        .ok_or_else(|| Error::parse(what, format!("not a JSON array: {json}")))?;
    let mut out = Vec::new();
    for entry in entries {
        // `ip -j addr` also prints empty objects for interfaces filtered out.
        let Some(name) = entry.get("ifname").and_then(Value::as_str) else {
            continue;
        };
        let mut addresses = Vec::new();
        for info in entry
            .get("addr_info")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let flag = |k: &str| info.get(k).and_then(Value::as_bool).unwrap_or(false);
            if flag("tentative") || flag("dadfailed") {
                continue;
            }
            if let Some(local) = info.get("local").and_then(Value::as_str) {
                let addr = local
                    .parse()
                    .map_err(|_| Error::parse(what, format!("bad address {local:?} on {name}")))?;
                addresses.push(addr);
            }
        }
        out.push(Interface {
            name: name.to_string(),
            operstate: entry
                .get("operstate")
                .and_then(Value::as_str)
                .unwrap_or("UNKNOWN")
                .to_string(),
            addresses,
        });
    }
    Ok(out)
}

/// The lifetime `ip -j` prints for "forever".
const FOREVER: u64 = u32::MAX as u64;

/// One IPv6 address of an interface, with its lifetimes and DAD state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress {
    /// The address.
    pub addr: Ipv6Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// Seconds it stays preferred; `None` is forever.
    pub preferred_lft: Option<u32>,
    /// Seconds it stays valid; `None` is forever.
    pub valid_lft: Option<u32>,
    /// Deprecated (preferred lifetime over): kept for existing flows, not chosen as a source.
    pub deprecated: bool,
    /// Still in duplicate address detection.
    pub tentative: bool,
    /// Duplicate address detection failed.
    pub dad_failed: bool,
    /// Configured from an RA (autoconf), not by hand.
    pub dynamic: bool,
}

impl ClientAddress {
    /// True if the address may be used as a source for new flows.
    pub fn is_preferred(&self) -> bool {
        !self.deprecated && !self.tentative && !self.dad_failed && self.preferred_lft != Some(0)
    }
}

/// The IPv6 addresses of `iface` in the JSON printed by `ip -j -6 addr show`.
pub fn parse_addresses(json: &str, iface: &str) -> Result<Vec<ClientAddress>> {
    let what = "`ip -j -6 addr` output";
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value =
        serde_json::from_str(json).map_err(|e| Error::parse(what, format!("{e}: {json}")))?;
    let entries = value
        .as_array()
        .ok_or_else(|| Error::parse(what, format!("not a JSON array: {json}")))?;
    let mut out = Vec::new();
    let infos = entries
        .iter()
        .filter(|e| e.get("ifname").and_then(Value::as_str) == Some(iface))
        .filter_map(|e| e.get("addr_info").and_then(Value::as_array))
        .flatten();
    for info in infos {
        if info.get("family").and_then(Value::as_str) != Some("inet6") {
            continue;
        }
        let flag = |k: &str| info.get(k).and_then(Value::as_bool).unwrap_or(false);
        let lifetime = |k: &str| match info.get(k).and_then(Value::as_u64) {
            None | Some(FOREVER..) => None,
            Some(s) => u32::try_from(s).ok(),
        };
        let local = info
            .get("local")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::parse(what, format!("address without local: {info}")))?;
        out.push(ClientAddress {
            addr: local
                .parse()
                .map_err(|_| Error::parse(what, format!("bad address {local:?} on {iface}")))?,
            prefix_len: info
                .get("prefixlen")
                .and_then(Value::as_u64)
                .and_then(|l| u8::try_from(l).ok())
                .ok_or_else(|| Error::parse(what, format!("bad prefixlen in {info}")))?,
            preferred_lft: lifetime("preferred_life_time"),
            valid_lft: lifetime("valid_life_time"),
            deprecated: flag("deprecated"),
            tentative: flag("tentative"),
            dad_failed: flag("dadfailed"),
            dynamic: flag("dynamic"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_skip_tentative_addresses() {
        let json = r#"[{},{"ifindex":2,"ifname":"m-gw","flags":["UP"],"operstate":"UP","addr_info":[
            {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link","tentative":true}]},
            {"ifindex":3,"ifname":"m-n2","operstate":"UP","addr_info":[
            {"family":"inet6","local":"fe80::2","prefixlen":64,"scope":"link"}]}]"#;
        let ifaces = parse_interfaces(json).expect("parses");
        assert_eq!(ifaces.len(), 2);
        assert!(!ifaces[0].link_local_ready());
        assert!(ifaces[1].link_local_ready());
        assert!(
            parse_interfaces("[{\"ifname\":\"x\",\"addr_info\":[{\"local\":\"nope\"}]}]").is_err()
        );
    }

    #[test]
    fn addresses_with_lifetimes_and_flags() {
        let json = r#"[{"ifindex":2,"ifname":"eth0","addr_info":[
            {"family":"inet6","local":"2001:db8:a::c1:ff:fe00:1","prefixlen":64,"scope":"global","dynamic":true,"mngtmpaddr":true,"valid_life_time":86390,"preferred_life_time":14390},
            {"family":"inet6","local":"2001:db8:b::c1:ff:fe00:1","prefixlen":64,"scope":"global","deprecated":true,"dynamic":true,"valid_life_time":600,"preferred_life_time":0},
            {"family":"inet6","local":"fe80::c1:ff:fe00:1","prefixlen":64,"scope":"link","tentative":true,"valid_life_time":4294967295,"preferred_life_time":4294967295}]},
            {"ifindex":3,"ifname":"other","addr_info":[{"family":"inet6","local":"fd00::1","prefixlen":64}]}]"#;
        let addrs = parse_addresses(json, "eth0").expect("parses");
        assert_eq!(addrs.len(), 3);
        assert_eq!(addrs[0].preferred_lft, Some(14390));
        assert_eq!(addrs[0].valid_lft, Some(86390));
        assert!(addrs[0].dynamic && addrs[0].is_preferred());
        assert!(addrs[1].deprecated && !addrs[1].is_preferred());
        assert_eq!(addrs[2].valid_lft, None);
        assert!(addrs[2].tentative && !addrs[2].is_preferred());
        assert_eq!(addrs[2].prefix_len, 64);
        assert!(parse_addresses("[]", "eth0").expect("empty").is_empty());
        assert!(parse_addresses(
            r#"[{"ifname":"eth0","addr_info":[{"family":"inet6"}]}]"#,
            "eth0"
        )
        .is_err());
    }
}
