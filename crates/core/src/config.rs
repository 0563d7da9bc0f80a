//! `[core]`: this daemon's own settings.

use std::path::PathBuf;

use l3roamd_daemon::config::check_interface_name;
use l3roamd_daemon::ConfigError;
use serde::Deserialize;

/// The `[core]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoreConfig {
    /// The socket to serve, if not `<runtime.socket_dir>/core.sock`.
    pub socket: Option<PathBuf>,
    /// Name of the TUN catch-all device.
    pub tun_device: String,
    /// Kernel routing table for client host routes (babeld imports from it).
    pub export_table: u32,
    /// Route protocol number that marks the routes core owns.
    pub route_protocol: u8,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            socket: None,
            tun_device: "l3roam0".to_string(),
            export_table: 254,
            route_protocol: 158,
        }
    }
}

/// Route protocol numbers the kernel and babeld use themselves.
const RESERVED_PROTOCOLS: &[(u8, &str)] = &[
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (42, "babel"),
];

impl CoreConfig {
    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_interface_name("core.tun_device", &self.tun_device)?;
        if let Some((_, name)) = RESERVED_PROTOCOLS
            .iter()
            .find(|(n, _)| *n == self.route_protocol)
        {
            return Err(ConfigError::invalid(
                "core.route_protocol",
                format!("{} is the {name} protocol's number", self.route_protocol),
            ));
        }
        // 253 default, 254 main are fine; 0 and 255 (local) are not.
        if self.export_table == 0 || self.export_table == 255 {
            return Err(ConfigError::invalid(
                "core.export_table",
                format!("table {} cannot hold host routes", self.export_table),
            ));
        }
        Ok(())
    }
}
