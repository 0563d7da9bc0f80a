//! `[clientmon]`: this daemon's own settings.

use std::path::PathBuf;

use serde::Deserialize;

/// The `[clientmon]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientmonConfig {
    /// The socket to serve, if not `<runtime.socket_dir>/clientmon.sock`.
    pub socket: Option<PathBuf>,
}
