//! `[ndproxy]`: this daemon's own settings.
//!
//! Everything but the socket bounds how much ndproxy may send or remember,
//! so that nothing a client, core or the mesh does can make it flood a link
//! or grow without bound. The defaults suit a community mesh router; every
//! value is checked at start and a bad one is reported with its key.

use std::path::PathBuf;
use std::time::Duration;

use l3roamd_daemon::ConfigError;
use serde::Deserialize;

use crate::seek::Limits;

/// Section name, for error messages.
const SECTION: &str = "ndproxy";

/// The `[ndproxy]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NdproxyConfig {
    /// The socket to serve, if not `<runtime.socket_dir>/ndproxy.sock`.
    pub socket: Option<PathBuf>,
    /// Seeks requested by core that may go out per second, all addresses
    /// together (token bucket rate).
    pub seeks_per_second: u32,
    /// How many seeks may go out at once after a quiet period (bucket size).
    pub seek_burst: u32,
    /// Shortest interval between two seeks for the same address; doubles
    /// while requests keep coming, up to `seek_max_interval_ms`.
    pub seek_min_interval_ms: u64,
    /// Longest interval between two seeks for the same address.
    pub seek_max_interval_ms: u64,
    /// Solicitations on client links caused by SEEKs from the mesh, per second.
    pub mesh_solicits_per_second: u32,
    /// Burst of solicitations caused by SEEKs from the mesh.
    pub mesh_solicit_burst: u32,
    /// SEEKs from the mesh re-flooded per second.
    pub mesh_forwards_per_second: u32,
    /// Burst of re-flooded SEEKs.
    pub mesh_forward_burst: u32,
    /// How long a flooded SEEK is remembered to drop its duplicates. Must
    /// stay below 3 s: C nodes repeat a SEEK with identical bytes every 3 s.
    pub seen_window_ms: u64,
    /// Most SEEKs remembered for duplicate suppression.
    pub seen_capacity: usize,
    /// How long after a seek an answer from the client counts as found, and
    /// how long a seeking node is listed in `sought_by`.
    pub answer_window_ms: u64,
    /// Most addresses being sought at once (oldest forgotten first).
    pub max_sought: usize,
    /// How long a found neighbour stays in the watch snapshot.
    pub found_keep_ms: u64,
    /// Most found neighbours kept for the watch snapshot.
    pub max_found: usize,
    /// Whether a client's duplicate address detection for an address that
    /// another node serves for another client is answered (defended).
    pub dad_defence: bool,
    /// Defending advertisements per second, all addresses.
    pub dad_defences_per_second: u32,
    /// Burst of defending advertisements.
    pub dad_defence_burst: u32,
    /// Shortest time between two defences of one address.
    pub dad_defence_interval_ms: u64,
}

impl Default for NdproxyConfig {
    fn default() -> Self {
        NdproxyConfig {
            socket: None,
            seeks_per_second: 20,
            seek_burst: 40,
            seek_min_interval_ms: 250,
            seek_max_interval_ms: 3000,
            mesh_solicits_per_second: 50,
            mesh_solicit_burst: 100,
            mesh_forwards_per_second: 100,
            mesh_forward_burst: 200,
            seen_window_ms: 2000,
            seen_capacity: 1024,
            answer_window_ms: 10_000,
            max_sought: 4096,
            found_keep_ms: 60_000,
            max_found: 1024,
            dad_defence: true,
            dad_defences_per_second: 10,
            dad_defence_burst: 20,
            dad_defence_interval_ms: 200,
        }
    }
}

// ===== validation =====

use l3roamd_daemon::limits::{self, MAX_COUNT};

/// Most packets per second (and burst) accepted for a rate.
const MAX_RATE: u32 = 100_000;

fn key(name: &str) -> String {
    format!("{SECTION}.{name}")
}

/// A rate or burst: from 1 to [`MAX_RATE`].
fn rate(name: &str, value: u32) -> Result<(), ConfigError> {
    limits::in_range(&key(name), value, 1, MAX_RATE, "")
}

fn capacity(name: &str, value: usize) -> Result<(), ConfigError> {
    limits::count(&key(name), value, MAX_COUNT)
}

fn millis(name: &str, value: u64) -> Result<(), ConfigError> {
    limits::millis(&key(name), value, 1)
}

impl NdproxyConfig {
    /// Checks what the types alone cannot; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self
            .socket
            .as_ref()
            .is_some_and(|s| s.as_os_str().is_empty())
        {
            return Err(ConfigError::invalid(key("socket"), "must not be empty"));
        }
        rate("seeks_per_second", self.seeks_per_second)?;
        rate("seek_burst", self.seek_burst)?;
        rate("mesh_solicits_per_second", self.mesh_solicits_per_second)?;
        rate("mesh_solicit_burst", self.mesh_solicit_burst)?;
        rate("mesh_forwards_per_second", self.mesh_forwards_per_second)?;
        rate("mesh_forward_burst", self.mesh_forward_burst)?;
        millis("seek_min_interval_ms", self.seek_min_interval_ms)?;
        millis("seek_max_interval_ms", self.seek_max_interval_ms)?;
        if self.seek_max_interval_ms < self.seek_min_interval_ms {
            return Err(ConfigError::invalid(
                key("seek_max_interval_ms"),
                format!(
                    "{} is below seek_min_interval_ms ({})",
                    self.seek_max_interval_ms, self.seek_min_interval_ms
                ),
            ));
        }
        millis("seen_window_ms", self.seen_window_ms)?;
        if self.seen_window_ms >= 3000 {
            return Err(ConfigError::invalid(
                key("seen_window_ms"),
                format!(
                    "{} ms would drop the identical SEEK a C node repeats every 3 s; use less than 3000",
                    self.seen_window_ms
                ),
            ));
        }
        capacity("seen_capacity", self.seen_capacity)?;
        millis("answer_window_ms", self.answer_window_ms)?;
        capacity("max_sought", self.max_sought)?;
        millis("found_keep_ms", self.found_keep_ms)?;
        capacity("max_found", self.max_found)?;
        rate("dad_defences_per_second", self.dad_defences_per_second)?;
        rate("dad_defence_burst", self.dad_defence_burst)?;
        millis("dad_defence_interval_ms", self.dad_defence_interval_ms)?;
        Ok(())
    }

    /// The settings of the duplicate address defence on this node.
    pub fn dad_settings(&self, mesh: &l3roamd_daemon::MeshConfig) -> crate::dad::Settings {
        crate::dad::Settings {
            mesh_interfaces: mesh.mesh_interfaces.clone(),
            client_interfaces: mesh.client_interfaces.clone(),
            node_client_prefix: mesh.node_client_prefix,
            per_second: self.dad_defences_per_second,
            burst: self.dad_defence_burst,
            per_address: Duration::from_millis(self.dad_defence_interval_ms),
            max_addresses: 1024,
        }
    }

    /// The limits of the seek state machine.
    pub fn limits(&self) -> Limits {
        Limits {
            seeks_per_second: self.seeks_per_second,
            seek_burst: self.seek_burst,
            seek_min_interval: Duration::from_millis(self.seek_min_interval_ms),
            seek_max_interval: Duration::from_millis(self.seek_max_interval_ms),
            mesh_solicits_per_second: self.mesh_solicits_per_second,
            mesh_solicit_burst: self.mesh_solicit_burst,
            mesh_forwards_per_second: self.mesh_forwards_per_second,
            mesh_forward_burst: self.mesh_forward_burst,
            seen_window: Duration::from_millis(self.seen_window_ms),
            seen_capacity: self.seen_capacity,
            answer_window: Duration::from_millis(self.answer_window_ms),
            max_sought: self.max_sought,
            found_keep: Duration::from_millis(self.found_keep_ms),
            max_found: self.max_found,
        }
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;

    const MESH: &str = r#"
        [mesh]
        node_address = "fdff::1"
        mesh_interfaces = ["m-n2"]
        client_interfaces = ["br-client"]
    "#;

    fn load(section: &str) -> Result<NdproxyConfig, ConfigError> {
        l3roamd_daemon::limits::try_section(MESH, SECTION, section, NdproxyConfig::validate)
    }

    fn key_of(section: &str) -> String {
        l3roamd_daemon::limits::rejected_key(load(section)).unwrap_or_default()
    }

    #[test]
    fn defaults_are_valid() {
        let c = load("").unwrap();
        assert_eq!(c.seek_min_interval_ms, 250);
        assert_eq!(c.limits().seen_window, Duration::from_secs(2));
        let c = load("seeks_per_second = 5\nsocket = \"/tmp/n.sock\"").unwrap();
        assert_eq!(c.seeks_per_second, 5);
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(key_of("seeks_per_second = 0"), "ndproxy.seeks_per_second");
        assert_eq!(key_of("seeks_per_second = -1"), "ndproxy.seeks_per_second");
        assert_eq!(
            key_of("seeks_per_second = 1000000"),
            "ndproxy.seeks_per_second"
        );
        assert_eq!(key_of("found_keep_ms = 86400001"), "ndproxy.found_keep_ms");
        assert_eq!(key_of("seek_burst = \"many\""), "ndproxy.seek_burst");
        assert_eq!(
            key_of("seek_max_interval_ms = 100"),
            "ndproxy.seek_max_interval_ms"
        );
        assert_eq!(key_of("seen_window_ms = 3000"), "ndproxy.seen_window_ms");
        assert_eq!(key_of("seen_capacity = 0"), "ndproxy.seen_capacity");
        assert_eq!(key_of("max_sought = 100000000"), "ndproxy.max_sought");
        assert_eq!(key_of("answer_window_ms = 0"), "ndproxy.answer_window_ms");
        assert_eq!(key_of("seen_windw_ms = 10"), "ndproxy.seen_windw_ms");
        assert_eq!(key_of("socket = \"\""), "ndproxy.socket");
        assert_eq!(
            key_of("dad_defences_per_second = 0"),
            "ndproxy.dad_defences_per_second"
        );
        assert_eq!(
            key_of("dad_defence_interval_ms = 0"),
            "ndproxy.dad_defence_interval_ms"
        );
    }
}
