//! `[prefixd]`: this daemon's own settings.
//!
//! One flat section as operators write it; the modules' settings are built
//! from it (serde's `flatten` and `deny_unknown_fields` do not mix).

use std::net::Ipv6Addr;
use std::path::PathBuf;

use l3roamd_daemon::config::check_interface_name;
use l3roamd_daemon::{limits, ConfigError};
use serde::Deserialize;

use crate::announce::{AnnounceConfig, GatewayConfig, DEFAULT_ROUTE_PROTOCOL};
use crate::babel::{BabelLocalConfig, DEFAULT_MAX_ROUTES};
use crate::ra::RaSettings;
use crate::selection::SelectionSettings;

/// The `[prefixd]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrefixdConfig {
    /// The socket to serve, if not `<runtime.socket_dir>/prefixd.sock`.
    pub socket: Option<PathBuf>,

    // ----- router advertisements -----
    /// Interfaces to send router advertisements on (default: the mesh's
    /// client interfaces).
    pub ra_interfaces: Option<Vec<String>>,
    /// See [`RaSettings`].
    pub min_interval: Option<f64>,
    /// See [`RaSettings`].
    pub max_interval: f64,
    /// See [`RaSettings`].
    pub router_lifetime: u32,
    /// See [`RaSettings`].
    pub mtu: Option<u32>,
    /// See [`RaSettings`].
    pub on_link: bool,
    /// See [`RaSettings`].
    pub unicast_solicited: bool,
    /// Recursive DNS servers (RFC 8106) in the advertisements; default: the
    /// next node's routable address, if `mesh.next_node_routable_address`
    /// is set. An empty list sends none.
    pub dns_servers: Option<Vec<Ipv6Addr>>,
    /// Lifetime of the DNS servers in advertisements, seconds (RFC 8106
    /// §5.1: at least max_interval; default 3 × max_interval).
    pub dns_lifetime: Option<u32>,

    // ----- selection -----
    /// See [`SelectionSettings`].
    pub max_prefixes: usize,
    /// See [`SelectionSettings`].
    pub min_gateways: usize,
    /// See [`SelectionSettings`].
    pub metric_margin: u32,
    /// See [`SelectionSettings`].
    pub switch_margin: u32,
    /// See [`SelectionSettings`].
    pub hold_down: u64,
    /// Preferred lifetime of selected prefixes in advertisements, seconds.
    pub preferred_lifetime: u32,
    /// Valid lifetime of selected prefixes in advertisements, seconds.
    pub valid_lifetime: u32,

    // ----- babel -----
    /// babeld's `local-path` (a UNIX socket).
    pub babel_socket: Option<PathBuf>,
    /// babeld's `local-port` on `[::1]`.
    pub babel_port: Option<u16>,
    /// babeld routes kept at most.
    pub babel_max_routes: usize,

    // ----- gateway -----
    /// The uplink interface of a gateway.
    pub uplink: Option<String>,
    /// The prefixes this node announces, from the start.
    pub announce: Vec<AnnounceConfig>,
    /// First of the eight route protocol numbers of the gateway routes.
    pub route_protocol: u8,
}

impl Default for PrefixdConfig {
    fn default() -> Self {
        let ra = RaSettings::default();
        let sel = SelectionSettings::default();
        PrefixdConfig {
            socket: None,
            ra_interfaces: None,
            min_interval: ra.min_interval,
            max_interval: ra.max_interval,
            router_lifetime: ra.router_lifetime,
            mtu: ra.mtu,
            on_link: ra.on_link,
            unicast_solicited: ra.unicast_solicited,
            dns_servers: None,
            dns_lifetime: None,
            max_prefixes: sel.max_prefixes,
            min_gateways: sel.min_gateways,
            metric_margin: sel.metric_margin,
            switch_margin: sel.switch_margin,
            hold_down: sel.hold_down,
            preferred_lifetime: sel.preferred_lifetime,
            valid_lifetime: sel.valid_lifetime,
            babel_socket: None,
            babel_port: None,
            babel_max_routes: DEFAULT_MAX_ROUTES,
            uplink: None,
            announce: Vec::new(),
            route_protocol: DEFAULT_ROUTE_PROTOCOL,
        }
    }
}

impl PrefixdConfig {
    /// The advertisement settings.
    pub fn ra(&self) -> RaSettings {
        RaSettings {
            min_interval: self.min_interval,
            max_interval: self.max_interval,
            router_lifetime: self.router_lifetime,
            mtu: self.mtu,
            on_link: self.on_link,
            unicast_solicited: self.unicast_solicited,
        }
    }

    /// The selection settings.
    pub fn selection(&self) -> SelectionSettings {
        SelectionSettings {
            max_prefixes: self.max_prefixes,
            min_gateways: self.min_gateways,
            metric_margin: self.metric_margin,
            switch_margin: self.switch_margin,
            hold_down: self.hold_down,
            preferred_lifetime: self.preferred_lifetime,
            valid_lifetime: self.valid_lifetime,
        }
    }

    /// Where babeld's local interface is.
    pub fn babel(&self) -> BabelLocalConfig {
        BabelLocalConfig {
            babel_socket: self.babel_socket.clone(),
            babel_port: self.babel_port,
            babel_max_routes: self.babel_max_routes,
        }
    }

    /// The gateway settings.
    pub fn gateway(&self) -> GatewayConfig {
        GatewayConfig {
            route_protocol: self.route_protocol,
            uplink: self.uplink.clone(),
            announce: self.announce.clone(),
        }
    }

    /// The DNS servers' lifetime in advertisements.
    pub fn dns_lifetime(&self) -> u32 {
        self.dns_lifetime
            .unwrap_or_else(|| (3.0 * self.max_interval).ceil() as u32)
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.ra().validate()?;
        self.selection().validate()?;
        self.babel().validate()?;
        if let Some(list) = &self.ra_interfaces {
            for (i, name) in list.iter().enumerate() {
                check_interface_name(&format!("prefixd.ra_interfaces[{i}]"), name)?;
            }
        }
        if let Some(servers) = &self.dns_servers {
            limits::count("prefixd.dns_servers", servers.len(), 8)?;
            for (i, s) in servers.iter().enumerate() {
                if s.is_unspecified() || s.is_multicast() || s.is_loopback() {
                    return Err(ConfigError::invalid(
                        format!("prefixd.dns_servers[{i}]"),
                        format!("{s} is not a unicast address"),
                    ));
                }
            }
        }
        if let Some(l) = self.dns_lifetime {
            if f64::from(l) < self.max_interval && l != 0 {
                return Err(ConfigError::invalid(
                    "prefixd.dns_lifetime",
                    format!(
                        "{l} s is shorter than prefixd.max_interval ({} s; RFC 8106 §5.1)",
                        self.max_interval
                    ),
                ));
            }
        }
        self.gateway().validate()?;
        for (i, a) in self.announce.iter().enumerate() {
            if a.uplink.is_none() && self.uplink.is_none() {
                return Err(ConfigError::invalid(
                    format!("prefixd.announce[{i}].uplink"),
                    "no uplink: set it here or prefixd.uplink",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l3roamd_daemon::limits::rejected_key;

    fn parse(toml: &str) -> Result<PrefixdConfig, ConfigError> {
        let text = format!("[mesh]\nnode_address = \"fdff::1\"\n[prefixd]\n{toml}");
        let config = l3roamd_daemon::Config::from_toml(&text)?;
        let c: PrefixdConfig = config.section("prefixd")?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse("").unwrap();
        assert_eq!(c.valid_lifetime, 5400);
        assert_eq!(c.preferred_lifetime, 2700);
        assert_eq!(c.dns_lifetime(), 1800);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (toml, key) in [
            ("preferred_lifetime = 6000", "prefixd.preferred_lifetime"),
            ("max_interval = 2.0", "prefixd.max_interval"),
            ("min_interval = 1.0", "prefixd.min_interval"),
            ("router_lifetime = 100", "prefixd.router_lifetime"),
            ("mtu = 1000", "prefixd.mtu"),
            ("dns_servers = [\"ff02::1\"]", "prefixd.dns_servers[0]"),
            ("ra_interfaces = [\"a b\"]", "prefixd.ra_interfaces[0]"),
            ("route_protocol = 158", "prefixd.route_protocol"),
            ("bogus = 1", "prefixd.bogus"),
            (
                "uplink = \"up0\"\nannounce = [{ prefix = \"2001:db8::/48\", metric = 0 }]",
                "prefixd.announce[0].prefix",
            ),
            (
                "announce = [{ prefix = \"2001:db8::/64\", metric = 0 }]",
                "prefixd.announce[0].uplink",
            ),
            (
                "uplink = \"up0\"\nannounce = [{ prefix = \"2001:db8::/64\", metric = 5000 }]",
                "prefixd.announce[0].metric",
            ),
        ] {
            let key_got = rejected_key(parse(toml));
            assert_eq!(key_got.as_deref(), Some(key), "{toml}");
        }
    }
}
