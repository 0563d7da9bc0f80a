//! `[prefixd]`: this daemon's own settings.

use std::path::PathBuf;

use l3roamd_daemon::ConfigError;
use serde::Deserialize;

/// The `[prefixd]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrefixdConfig {
    /// The socket to serve, if not `<runtime.socket_dir>/prefixd.sock`.
    pub socket: Option<PathBuf>,
    /// Valid lifetime of prefixes in router advertisements, seconds.
    pub valid_lifetime: u32,
    /// Preferred lifetime of prefixes in router advertisements, seconds.
    pub preferred_lifetime: u32,
}

impl Default for PrefixdConfig {
    fn default() -> Self {
        // RFC 4861 defaults: 30 days valid, 7 days preferred.
        PrefixdConfig {
            socket: None,
            valid_lifetime: 2_592_000,
            preferred_lifetime: 604_800,
        }
    }
}

impl PrefixdConfig {
    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.preferred_lifetime > self.valid_lifetime {
            return Err(ConfigError::invalid(
                "prefixd.preferred_lifetime",
                format!(
                    "{} exceeds prefixd.valid_lifetime ({})",
                    self.preferred_lifetime, self.valid_lifetime
                ),
            ));
        }
        Ok(())
    }
}
