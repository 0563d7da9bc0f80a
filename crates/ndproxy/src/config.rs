//! `[ndproxy]`: this daemon's own settings.

use std::path::PathBuf;

use serde::Deserialize;

/// The `[ndproxy]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NdproxyConfig {
    /// The socket to serve, if not `<runtime.socket_dir>/ndproxy.sock`.
    pub socket: Option<PathBuf>,
}
