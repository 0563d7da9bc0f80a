//! prefixd's view of babeld through its local (control) interface.
//!
//! Gateways announce source-specific default routes, `::/0 from P`
//! (RFC 9079), one per client prefix P. The kernel shows only the route
//! babeld installed; babeld's local interface (`local-path` or
//! `local-port`) shows every route it knows, installed or not, with its
//! metric and the gateway's router-id. That is how prefixd learns which
//! client prefixes exist, how many gateways it hears for each and at which
//! metric.
//!
//! - [`line`]: the text format, parsed (and printed, for tests);
//! - [`view`]: babeld's routes rebuilt from those lines and summarised as
//!   [`HeardPrefix`]es;
//! - [`client`]: the task that connects, sends `monitor`, follows the
//!   updates and publishes a [`BabelStatus`] through a `watch` channel,
//!   reconnecting when babeld restarts.

pub mod client;
pub mod line;
pub mod view;

use std::fmt;
use std::path::PathBuf;

use l3roamd_daemon::{limits, ConfigError};
use serde::Deserialize;

pub use client::{
    BabelClient, BabelStatus, Conversation, Counter as BabelCounter, Counters as BabelCounters,
    Frame, LineBuffer, Step,
};
pub use line::{parse_line, Action, BabelLine, LineError, RouteLine, RouterId, XRouteLine};
pub use view::{BabelRoute, BabelView, BabelXRoute, HeardGateway, HeardPrefix};

/// Routes kept by default: far more than a mesh of a few hundred nodes with
/// their clients' host routes, few enough for a router's memory.
pub const DEFAULT_MAX_ROUTES: usize = 65_536;

/// The babel keys of `[prefixd]`. `deny_unknown_fields` and `flatten` do not
/// mix in serde, so the section's struct carries these three keys under the
/// same names and builds this one from them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BabelLocalConfig {
    /// `prefixd.babel_socket`: babeld's `local-path`, e.g.
    /// `/var/run/babeld.sock`.
    pub babel_socket: Option<PathBuf>,
    /// `prefixd.babel_port`: babeld's `local-port`, on `[::1]`.
    pub babel_port: Option<u16>,
    /// `prefixd.babel_max_routes`: babeld routes (and, separately, xroutes)
    /// kept; more are refused and counted.
    pub babel_max_routes: usize,
}

impl Default for BabelLocalConfig {
    fn default() -> Self {
        BabelLocalConfig {
            babel_socket: None,
            babel_port: None,
            babel_max_routes: DEFAULT_MAX_ROUTES,
        }
    }
}

/// Where babeld's local interface listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BabelSource {
    /// A UNIX socket (`local-path`).
    Unix(PathBuf),
    /// A TCP port on `[::1]` (`local-port`).
    Tcp(u16),
}

impl fmt::Display for BabelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BabelSource::Unix(path) => write!(f, "{}", path.display()),
            BabelSource::Tcp(port) => write!(f, "[::1]:{port}"),
        }
    }
}

impl BabelLocalConfig {
    /// Checks what the types alone cannot; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(path) = &self.babel_socket {
            if !path.is_absolute() {
                return Err(ConfigError::invalid(
                    "prefixd.babel_socket",
                    format!(
                        "{:?} is not an absolute path (babeld's local-path, e.g. /var/run/babeld.sock)",
                        path.display().to_string()
                    ),
                ));
            }
        }
        if let Some(port) = self.babel_port {
            if self.babel_socket.is_some() {
                return Err(ConfigError::invalid(
                    "prefixd.babel_port",
                    "set either prefixd.babel_socket or prefixd.babel_port, not both",
                ));
            }
            if port == 0 {
                return Err(ConfigError::invalid(
                    "prefixd.babel_port",
                    "0 is not a TCP port (babeld's local-port)",
                ));
            }
        }
        limits::count(
            "prefixd.babel_max_routes",
            self.babel_max_routes,
            limits::MAX_COUNT,
        )
    }

    /// Where to connect; `None` when neither key is set and prefixd does
    /// without babel (the kernel's routes only).
    pub fn source(&self) -> Option<BabelSource> {
        match (&self.babel_socket, self.babel_port) {
            (Some(path), _) => Some(BabelSource::Unix(path.clone())),
            (None, Some(port)) => Some(BabelSource::Tcp(port)),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(body: &str) -> Result<BabelLocalConfig, ConfigError> {
        limits::try_section(
            "[mesh]\nnode_address = \"fdff::1\"\nclient_prefixes = [\"fddd:1::/64\"]\n",
            "prefixd",
            body,
            BabelLocalConfig::validate,
        )
    }

    #[test]
    fn defaults_to_no_babel_and_65536_routes() {
        let c = config("").unwrap();
        assert_eq!(c, BabelLocalConfig::default());
        assert_eq!(c.source(), None);
        assert_eq!(c.babel_max_routes, 65_536);
    }

    #[test]
    fn socket_or_port_but_not_both() {
        let c = config("babel_socket = \"/var/run/babeld.sock\"").unwrap();
        assert_eq!(
            c.source(),
            Some(BabelSource::Unix("/var/run/babeld.sock".into()))
        );
        let c = config("babel_port = 33123").unwrap();
        assert_eq!(c.source(), Some(BabelSource::Tcp(33123)));
        assert_eq!(c.source().unwrap().to_string(), "[::1]:33123");

        let e = config("babel_socket = \"/run/b.sock\"\nbabel_port = 33123").unwrap_err();
        assert_eq!(e.key(), Some("prefixd.babel_port"));
        let e = config("babel_port = 0").unwrap_err();
        assert_eq!(e.key(), Some("prefixd.babel_port"));
        let e = config("babel_socket = \"babeld.sock\"").unwrap_err();
        assert_eq!(e.key(), Some("prefixd.babel_socket"));
        let e = config("babel_max_routes = 0").unwrap_err();
        assert_eq!(e.key(), Some("prefixd.babel_max_routes"));
    }
}
