//! `[clientmon]`: this daemon's own settings.
//!
//! The client interfaces themselves come from `[mesh] client_interfaces`;
//! this section adds the wireless interfaces whose nl80211 stations count,
//! the presence timeout and the bounds on what is remembered. Every value is
//! checked at start; a bad one stops the daemon with a message naming its key.

use std::path::PathBuf;
use std::time::Duration;

use l3roamd_daemon::config::check_interface_name;
use l3roamd_daemon::{ConfigError, MeshConfig};
use serde::Deserialize;

use crate::presence::Settings;

/// Section name, for error messages.
const SECTION: &str = "clientmon";

/// The `[clientmon]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientmonConfig {
    /// The socket to serve, if not `<runtime.socket_dir>/clientmon.sock`.
    pub socket: Option<PathBuf>,
    /// Wireless client interfaces (access points) whose nl80211 station
    /// events and dumps count as presence. Empty: nl80211 is not used.
    pub wireless_interfaces: Vec<String>,
    /// A client no source has seen for this many seconds is gone.
    ///
    /// 150 s: longer than an MLD query interval plus its response delay
    /// (125 s + 10 s), so a quiet client on a link with a querier is
    /// refreshed by its reports, and than two or three neighbour
    /// reachability confirmations (30 s ± 50 %) of a client the node talks
    /// to; well below the 300 s after which hostapd polls an idle station
    /// and the bridge ages out an FDB entry, which is why we have a timeout
    /// of our own. A client gone too early costs a route withdrawal and
    /// re-announcement across the mesh; one kept too long after it left is
    /// taken over by the node it roamed to (CLAIM), so erring long is cheaper.
    pub presence_timeout_secs: u64,
    /// How often the kernel's tables (links, bridge FDB, neighbours,
    /// stations) are read again in full: FDB entries and stations carry the
    /// time of the client's last frame, and a full read repairs any lost
    /// notification. At most half the presence timeout.
    pub resync_interval_secs: u64,
    /// Most clients tracked at once; more are refused (and counted) so a
    /// flood of forged MACs cannot exhaust the router's memory.
    pub max_clients: usize,
    /// Most addresses remembered per client (privacy addresses accumulate);
    /// the least recently seen is forgotten first.
    pub max_addresses_per_client: usize,
    /// How long the target of a duplicate address detection probe waits
    /// before it counts as the client's address (RFC 4862's RetransTimer is
    /// 1 s; a defence within the wait drops it).
    pub dad_wait_ms: u64,
    /// Snoop neighbour discovery and MLD on client links (AF_PACKET).
    pub snoop: bool,
}

impl Default for ClientmonConfig {
    fn default() -> Self {
        ClientmonConfig {
            socket: None,
            wireless_interfaces: Vec::new(),
            presence_timeout_secs: 150,
            resync_interval_secs: 30,
            max_clients: 4096,
            max_addresses_per_client: 16,
            dad_wait_ms: 1500,
            snoop: true,
        }
    }
}

// ===== validation =====

/// Longest timeout accepted: one day.
const MAX_SECS: u64 = 86_400;
/// Largest client table accepted: far more than a router has memory for.
const MAX_CLIENTS: usize = 1 << 20;
/// Most addresses per client accepted.
const MAX_ADDRESSES: usize = 1024;

fn key(name: &str) -> String {
    format!("{SECTION}.{name}")
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    min: T,
    max: T,
    unit: &str,
) -> Result<(), ConfigError> {
    l3roamd_daemon::limits::in_range(&key(name), value, min, max, unit)
}

impl ClientmonConfig {
    /// Checks what the types alone cannot; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, name) in self.wireless_interfaces.iter().enumerate() {
            check_interface_name(&format!("{}[{i}]", key("wireless_interfaces")), name)?;
        }
        if let Some(socket) = &self.socket {
            if socket.as_os_str().is_empty() {
                return Err(ConfigError::invalid(key("socket"), "must not be empty"));
            }
        }
        in_range(
            "presence_timeout_secs",
            self.presence_timeout_secs,
            2,
            MAX_SECS,
            " s",
        )?;
        in_range(
            "resync_interval_secs",
            self.resync_interval_secs,
            1,
            MAX_SECS,
            " s",
        )?;
        if self.resync_interval_secs * 2 > self.presence_timeout_secs {
            return Err(ConfigError::invalid(
                key("resync_interval_secs"),
                format!(
                    "{} s is more than half of clientmon.presence_timeout_secs ({} s): \
                     an active client could time out between two reads",
                    self.resync_interval_secs, self.presence_timeout_secs
                ),
            ));
        }
        in_range("max_clients", self.max_clients, 1, MAX_CLIENTS, "")?;
        in_range(
            "max_addresses_per_client",
            self.max_addresses_per_client,
            1,
            MAX_ADDRESSES,
            "",
        )?;
        in_range("dad_wait_ms", self.dad_wait_ms, 0, 60_000, " ms")?;
        Ok(())
    }

    /// The presence timeout.
    pub fn presence_timeout(&self) -> Duration {
        Duration::from_secs(self.presence_timeout_secs)
    }

    /// The full-read interval.
    pub fn resync_interval(&self) -> Duration {
        Duration::from_secs(self.resync_interval_secs)
    }

    /// The state machine's settings, with the mesh's next-node MAC and
    /// node-client prefix.
    pub fn presence_settings(&self, mesh: &MeshConfig) -> Settings {
        Settings {
            presence_timeout: self.presence_timeout(),
            dad_wait: Duration::from_millis(self.dad_wait_ms),
            max_clients: self.max_clients,
            max_addresses: self.max_addresses_per_client,
            next_node_mac: mesh.next_node_mac,
            node_client_prefix: Some(mesh.node_client_prefix),
        }
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;
    use l3roamd_daemon::Config;

    const MESH: &str = r#"
        [mesh]
        node_address = "fdff::1"
        client_interfaces = ["br-client"]
        next_node_mac = "02:4e:4e:00:00:01"
    "#;

    fn load(section: &str) -> Result<ClientmonConfig, ConfigError> {
        l3roamd_daemon::limits::try_section(MESH, "clientmon", section, ClientmonConfig::validate)
    }

    fn key_of(section: &str) -> String {
        l3roamd_daemon::limits::rejected_key(load(section)).unwrap_or_default()
    }

    #[test]
    fn defaults_are_valid() {
        let c = load("").unwrap();
        assert_eq!(c.presence_timeout_secs, 150);
        assert_eq!(c.max_clients, 4096);
        assert!(c.wireless_interfaces.is_empty());
        assert!(c.snoop);
        let config = Config::from_toml(MESH).unwrap();
        let s = c.presence_settings(&config.mesh);
        assert_eq!(s.next_node_mac, Some("02:4e:4e:00:00:01".parse().unwrap()));
    }

    #[test]
    fn a_full_section_loads() {
        let c = load(
            "wireless_interfaces = [\"client0\", \"client1\"]\npresence_timeout_secs = 60\n\
             resync_interval_secs = 10\nmax_clients = 100\nmax_addresses_per_client = 4\n\
             dad_wait_ms = 1000\nsnoop = false\nsocket = \"/tmp/cm.sock\"",
        )
        .unwrap();
        assert_eq!(c.wireless_interfaces, ["client0", "client1"]);
        assert_eq!(c.presence_timeout(), Duration::from_secs(60));
        assert!(!c.snoop);
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            key_of("presence_timout_secs = 5"),
            "clientmon.presence_timout_secs"
        );
        assert_eq!(
            key_of("presence_timeout_secs = \"x\""),
            "clientmon.presence_timeout_secs"
        );
        assert_eq!(
            key_of("presence_timeout_secs = 1"),
            "clientmon.presence_timeout_secs"
        );
        assert_eq!(
            key_of("presence_timeout_secs = 20"),
            "clientmon.resync_interval_secs"
        );
        assert_eq!(key_of("max_clients = 0"), "clientmon.max_clients");
        assert_eq!(
            key_of("max_addresses_per_client = 0"),
            "clientmon.max_addresses_per_client"
        );
        assert_eq!(
            key_of("wireless_interfaces = [\"ok\", \"not/ok\"]"),
            "clientmon.wireless_interfaces[1]"
        );
        assert_eq!(key_of("dad_wait_ms = 100000"), "clientmon.dad_wait_ms");
    }
}
