//! `[client_db]`: this daemon's own settings.

use std::path::PathBuf;

use l3roamd_daemon::ConfigError;
use serde::Deserialize;

/// The `[client_db]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientDbConfig {
    /// The socket to serve, if not `<runtime.socket_dir>/client-db.sock`.
    pub socket: Option<PathBuf>,
    /// Where the database lives (tmpfs on flash routers).
    pub db_path: PathBuf,
}

impl Default for ClientDbConfig {
    fn default() -> Self {
        ClientDbConfig {
            socket: None,
            db_path: PathBuf::from("/var/lib/l3roamd/client-db"),
        }
    }
}

impl ClientDbConfig {
    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.db_path.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "client_db.db_path",
                "must not be empty",
            ));
        }
        Ok(())
    }
}
