//! `[client_db]`: this daemon's own settings.
//!
//! The timings default to the C l3roamd's (CLAIM every 300 ms, INFO every
//! 500 ms, 15 retransmissions each), so a mixed mesh behaves as before. Every
//! value is checked at start and a bad one is reported with its key.

use std::path::PathBuf;
use std::time::Duration;

use l3roamd_daemon::{ConfigError, MeshConfig};
use serde::Deserialize;

use crate::events::Settings;
use crate::store::Backend;

/// Section name, for error messages.
const SECTION: &str = "client_db";

/// The `[client_db]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientDbConfig {
    /// The socket to serve, if not `<runtime.socket_dir>/client-db.sock`.
    pub socket: Option<PathBuf>,
    /// Directory of the database (tmpfs on flash routers); created if missing.
    pub db_path: PathBuf,
    /// `redb` (default), `sled` (only when built with the `sled` feature) or
    /// `memory` (nothing persisted).
    pub backend: String,
    /// Seconds after its last change that a record expires, and after its
    /// last sighting that an address is dropped from it.
    pub record_ttl_secs: u64,
    /// Interval between CLAIM transmissions.
    pub claim_interval_ms: u64,
    /// CLAIM retransmissions after the first, until an INFO arrives.
    pub claim_retries: u32,
    /// Interval between INFO transmissions.
    pub info_interval_ms: u64,
    /// INFO retransmissions after the first, until an ACK arrives.
    pub info_retries: u32,
    /// How often changed records are written to the store (one transaction).
    pub flush_interval_ms: u64,
    /// Most client records kept.
    pub max_records: usize,
    /// Most addresses announced in one INFO (1 to 15, one BASIC segment).
    /// C nodes are reported to crash on INFOs of about 5 addresses: a mesh
    /// that still has C nodes should set 4.
    pub info_max_addresses: usize,
}

impl Default for ClientDbConfig {
    fn default() -> Self {
        ClientDbConfig {
            socket: None,
            db_path: PathBuf::from("/var/lib/l3roamd/client-db"),
            backend: "redb".to_string(),
            record_ttl_secs: 900,
            claim_interval_ms: 300,
            claim_retries: 15,
            info_interval_ms: 500,
            info_retries: 15,
            flush_interval_ms: 1000,
            max_records: 4096,
            info_max_addresses: l3roamd_intercom::MAX_BASIC_ADDRS,
        }
    }
}

// ===== validation =====

/// Largest table accepted: far more than a router has memory for.
const MAX_RECORDS: usize = 1 << 20;
/// Most retransmissions accepted.
const MAX_RETRIES: u32 = 100;
/// Longest retransmission interval accepted: one minute.
const MAX_INTERVAL_MS: u64 = 60_000;
/// Longest flush interval accepted: ten minutes.
const MAX_FLUSH_MS: u64 = 600_000;
/// Longest record TTL accepted: one week.
const MAX_TTL_SECS: u64 = 7 * 86_400;

fn key(name: &str) -> String {
    format!("{SECTION}.{name}")
}

fn in_range(name: &str, value: u64, min: u64, max: u64, unit: &str) -> Result<(), ConfigError> {
    l3roamd_daemon::limits::in_range(&key(name), value, min, max, unit)
}

impl ClientDbConfig {
    /// Checks what the types alone cannot; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.db_path.as_os_str().is_empty() {
            return Err(ConfigError::invalid(key("db_path"), "must not be empty"));
        }
        self.backend()?;
        in_range(
            "record_ttl_secs",
            self.record_ttl_secs,
            10,
            MAX_TTL_SECS,
            " s",
        )?;
        in_range(
            "claim_interval_ms",
            self.claim_interval_ms,
            10,
            MAX_INTERVAL_MS,
            " ms",
        )?;
        in_range(
            "info_interval_ms",
            self.info_interval_ms,
            10,
            MAX_INTERVAL_MS,
            " ms",
        )?;
        in_range(
            "claim_retries",
            u64::from(self.claim_retries),
            0,
            u64::from(MAX_RETRIES),
            "",
        )?;
        in_range(
            "info_retries",
            u64::from(self.info_retries),
            0,
            u64::from(MAX_RETRIES),
            "",
        )?;
        in_range(
            "flush_interval_ms",
            self.flush_interval_ms,
            10,
            MAX_FLUSH_MS,
            " ms",
        )?;
        in_range(
            "max_records",
            self.max_records as u64,
            1,
            MAX_RECORDS as u64,
            "",
        )?;
        in_range(
            "info_max_addresses",
            self.info_max_addresses as u64,
            1,
            l3roamd_intercom::MAX_BASIC_ADDRS as u64,
            "",
        )?;
        Ok(())
    }

    /// The store backend named by `backend`.
    pub fn backend(&self) -> Result<Backend, ConfigError> {
        match self.backend.as_str() {
            "redb" => Ok(Backend::Redb),
            "memory" => Ok(Backend::Memory),
            "sled" if cfg!(feature = "sled") => Ok(Backend::Sled),
            "sled" => Err(ConfigError::invalid(
                key("backend"),
                "\"sled\" needs client-db built with the `sled` cargo feature (--features sled); \
                 this build has \"redb\" and \"memory\"",
            )),
            other => Err(ConfigError::invalid(
                key("backend"),
                format!("{other:?} is not a backend (redb, sled, memory)"),
            )),
        }
    }

    /// The state machine's settings on node `mesh`.
    pub fn settings(&self, mesh: &MeshConfig) -> Settings {
        Settings {
            node: mesh.node_address,
            node_client_prefix: mesh.node_client_prefix,
            record_ttl: self.record_ttl_secs,
            claim_interval: Duration::from_millis(self.claim_interval_ms),
            claim_retries: self.claim_retries,
            info_interval: Duration::from_millis(self.info_interval_ms),
            info_retries: self.info_retries,
            max_records: self.max_records,
            max_pending: MAX_PENDING.min(self.max_records.max(16)),
            info_max_addresses: self.info_max_addresses,
        }
    }

    /// How often changed records are written.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}

/// Most claims running at once and most INFOs awaiting an ACK: far more
/// clients than roam onto or off one node within a few seconds.
const MAX_PENDING: usize = 256;

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;
    use l3roamd_daemon::Config;

    const MESH: &str = "[mesh]\nnode_address = \"fdff::1\"\n";

    fn load(section: &str) -> Result<ClientDbConfig, ConfigError> {
        l3roamd_daemon::limits::try_section(MESH, SECTION, section, ClientDbConfig::validate)
    }

    fn key_of(section: &str) -> String {
        l3roamd_daemon::limits::rejected_key(load(section)).unwrap_or_default()
    }

    #[test]
    fn defaults_are_c_compatible() {
        let c = load("").unwrap();
        assert_eq!(c.backend().unwrap(), Backend::Redb);
        assert_eq!(c.record_ttl_secs, 900);
        assert_eq!((c.claim_interval_ms, c.claim_retries), (300, 15));
        assert_eq!((c.info_interval_ms, c.info_retries), (500, 15));
        assert_eq!(c.max_records, 4096);
        let config = Config::from_toml(MESH).unwrap();
        let s = c.settings(&config.mesh);
        assert_eq!(s.node, "fdff::1".parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(s.claim_interval, Duration::from_millis(300));
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(key_of("backend = \"lmdb\""), "client_db.backend");
        assert_eq!(key_of("record_ttl_secs = 0"), "client_db.record_ttl_secs");
        assert_eq!(
            key_of("claim_interval_ms = 0"),
            "client_db.claim_interval_ms"
        );
        assert_eq!(key_of("info_retries = 1000"), "client_db.info_retries");
        assert_eq!(
            key_of("flush_interval_ms = 1"),
            "client_db.flush_interval_ms"
        );
        assert_eq!(key_of("max_records = 0"), "client_db.max_records");
        assert_eq!(
            key_of("info_max_addresses = 16"),
            "client_db.info_max_addresses"
        );
        assert_eq!(key_of("db_path = \"\""), "client_db.db_path");
        assert_eq!(key_of("max_record = 5"), "client_db.max_record");
        assert_eq!(key_of("claim_retries = -1"), "client_db.claim_retries");
    }

    #[test]
    fn sled_needs_its_feature() {
        let result = load("backend = \"sled\"");
        if cfg!(feature = "sled") {
            assert_eq!(result.unwrap().backend().unwrap(), Backend::Sled);
        } else {
            let err = result.unwrap_err();
            assert_eq!(err.key(), Some("client_db.backend"));
            assert!(err.to_string().contains("feature"), "{err}");
        }
    }
}
