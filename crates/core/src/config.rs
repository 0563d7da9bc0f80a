//! `[core]`: this daemon's own settings.

use std::path::PathBuf;
use std::time::Duration;

use l3roamd_daemon::config::check_interface_name;
use l3roamd_daemon::limits;
use l3roamd_daemon::ConfigError;
use serde::Deserialize;

use crate::held::Limits;

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
    /// Route protocol number of handover routes (a released client's host
    /// routes into the TUN device), so that babeld can announce them with
    /// a high metric (`redistribute ... proto 159 metric 4096`).
    pub handover_protocol: u8,
    /// Route protocol number of seek routes: a /128 into the TUN device,
    /// just better than the unreachable route babeld keeps for a retracted
    /// client address (a client whose node vanished), so that its packets
    /// are held and the client sought instead of dropped. babeld must not
    /// announce them (no rule allows it: the reference rules deny every
    /// other route inside the client prefixes).
    pub seek_protocol: u8,
    /// Kernel metric of core's host routes. It must stay below any metric
    /// babeld installs (96 per hop on wired links), so that a route babel
    /// learned for a client this node serves never wins over ours: babeld
    /// 1.12.1 can install such a route after one of its redistributed routes
    /// is withdrawn (fixed in 1.12.2).
    pub host_route_metric: u32,
    /// Milliseconds a destination may go unanswered before its held
    /// packets are dropped and their senders told it is unreachable.
    pub hold_time_ms: u64,
    /// Milliseconds between seeks for a destination still unanswered.
    pub reseek_interval_ms: u64,
    /// Milliseconds packets for a found client go straight to the finder
    /// while babel spreads its host route.
    pub found_time_ms: u64,
    /// Packets held for one destination.
    pub queue_per_destination: usize,
    /// Packets held in total.
    pub queue_packets: usize,
    /// Bytes held in total.
    pub queue_bytes: usize,
    /// Destinations sought at the same time.
    pub queue_destinations: usize,
    /// ICMPv6 unreachable errors per second at most.
    pub unreachable_per_second: u32,
    /// Milliseconds the host routes of a client claimed by another node stay
    /// announced from here, pointing into the TUN device (babeld announces
    /// them with a high metric, see deploy/babeld/l3roamd.conf), so that
    /// the mesh has a route until the new node's announcement has spread;
    /// packets arriving meanwhile go on to the new node. 0 withdraws them
    /// at once.
    pub handover_ms: u64,
    /// Milliseconds a client that left keeps its host routes here, in case
    /// it comes back (a client claimed by another node loses them at once).
    pub gone_grace_ms: u64,
    /// Clients served at the same time.
    pub max_clients: usize,
    /// Where to serve the C daemon's text control socket (`get_clients`,
    /// `get_meshifs`, ...) for Gluon's scripts and respondd; empty serves
    /// none. The C daemon's `-s`, at the path Gluon uses.
    pub compat_socket: PathBuf,
    /// Kernel requests of one batch (the route changes of one event, or of
    /// a burst of arrivals) in flight at once on the rtnetlink socket,
    /// 1 to 128. 1 waits for each acknowledgement before the next request:
    /// the way to compare (docs/design-notes.md, "Many clients on one node").
    pub route_batch: usize,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            socket: None,
            tun_device: "l3roam0".to_string(),
            export_table: 254,
            route_protocol: 158,
            handover_protocol: 159,
            seek_protocol: 157,
            host_route_metric: 32,
            hold_time_ms: 5_000,
            reseek_interval_ms: 1_000,
            found_time_ms: 30_000,
            queue_per_destination: 64,
            queue_packets: 1024,
            queue_bytes: 1024 * 1024,
            queue_destinations: 256,
            unreachable_per_second: 10,
            handover_ms: 5_000,
            gone_grace_ms: 5_000,
            max_clients: 4096,
            compat_socket: PathBuf::from("/var/run/l3roamd.sock"),
            route_batch: crate::netlink::IN_FLIGHT,
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

/// Most packets or destinations the held-packet queue may be given.
const MAX_QUEUE: u64 = 1 << 16;
/// Most bytes the held-packet queue may be given: 64 MiB.
const MAX_QUEUE_BYTES: usize = 64 << 20;
/// Longest UNIX socket path.
const MAX_SOCKET_PATH: usize = 107;
/// Most ICMPv6 errors per second (0 sends none).
const MAX_UNREACHABLE_PER_SECOND: u32 = 10_000;

impl CoreConfig {
    /// Checks what the types alone cannot; every duration and count is
    /// bounded, so that no value makes the timers' arithmetic overflow.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_interface_name("core.tun_device", &self.tun_device)?;
        for (key, protocol) in [
            ("core.route_protocol", self.route_protocol),
            ("core.handover_protocol", self.handover_protocol),
            ("core.seek_protocol", self.seek_protocol),
        ] {
            if let Some((_, name)) = RESERVED_PROTOCOLS.iter().find(|(n, _)| *n == protocol) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{protocol} is the {name} protocol's number"),
                ));
            }
        }
        if self.handover_protocol == self.route_protocol {
            return Err(ConfigError::invalid(
                "core.handover_protocol",
                format!(
                    "{} is core.route_protocol too: babeld could not tell handovers apart",
                    self.handover_protocol
                ),
            ));
        }
        if self.seek_protocol == self.route_protocol || self.seek_protocol == self.handover_protocol
        {
            return Err(ConfigError::invalid(
                "core.seek_protocol",
                format!(
                    "{} is core.route_protocol or core.handover_protocol too",
                    self.seek_protocol
                ),
            ));
        }
        // 253 default, 254 main are fine; 0 and 255 (local) are not.
        if self.export_table == 0 || self.export_table == 255 {
            return Err(ConfigError::invalid(
                "core.export_table",
                format!("table {} cannot hold host routes", self.export_table),
            ));
        }
        for (key, value, min) in [
            ("core.hold_time_ms", self.hold_time_ms, 1),
            ("core.reseek_interval_ms", self.reseek_interval_ms, 1),
            ("core.found_time_ms", self.found_time_ms, 1),
            ("core.handover_ms", self.handover_ms, 0),
            ("core.gone_grace_ms", self.gone_grace_ms, 0),
        ] {
            limits::millis(key, value, min)?;
        }
        for (key, value, max) in [
            (
                "core.queue_per_destination",
                self.queue_per_destination,
                MAX_QUEUE,
            ),
            ("core.queue_packets", self.queue_packets, MAX_QUEUE),
            (
                "core.queue_destinations",
                self.queue_destinations,
                MAX_QUEUE,
            ),
            ("core.max_clients", self.max_clients, limits::MAX_COUNT),
        ] {
            limits::count(key, value, max)?;
        }
        limits::in_range(
            "core.route_batch",
            self.route_batch,
            1,
            crate::netlink::IN_FLIGHT,
            "",
        )?;
        limits::in_range(
            "core.queue_bytes",
            self.queue_bytes,
            1280,
            MAX_QUEUE_BYTES,
            " bytes",
        )?;
        limits::in_range(
            "core.unreachable_per_second",
            self.unreachable_per_second,
            0,
            MAX_UNREACHABLE_PER_SECOND,
            "",
        )?;
        if self.host_route_metric >= 96 {
            return Err(ConfigError::invalid(
                "core.host_route_metric",
                format!(
                    "{} is not below babel's smallest installed metric (96)",
                    self.host_route_metric
                ),
            ));
        }
        // sun_path holds 108 bytes with the terminating NUL.
        if self.compat_socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(ConfigError::invalid(
                "core.compat_socket",
                format!(
                    "{} is longer than a UNIX socket path may be ({MAX_SOCKET_PATH} bytes)",
                    self.compat_socket.display()
                ),
            ));
        }
        if self.handover_ms > self.found_time_ms {
            return Err(ConfigError::invalid(
                "core.handover_ms",
                format!(
                    "{} is longer than core.found_time_ms ({}): packets still \
                     arriving would have nowhere to go",
                    self.handover_ms, self.found_time_ms
                ),
            ));
        }
        Ok(())
    }

    /// The C control socket's path, if one is to be served.
    pub fn compat_socket(&self) -> Option<&std::path::Path> {
        (!self.compat_socket.as_os_str().is_empty()).then_some(self.compat_socket.as_path())
    }

    /// The held-packet queue's limits.
    pub fn limits(&self) -> Limits {
        Limits {
            per_destination: self.queue_per_destination,
            total_packets: self.queue_packets,
            total_bytes: self.queue_bytes,
            destinations: self.queue_destinations,
            hold_time: Duration::from_millis(self.hold_time_ms),
            reseek_interval: Duration::from_millis(self.reseek_interval_ms),
            found_time: Duration::from_millis(self.found_time_ms),
            unreachable_per_second: self.unreachable_per_second,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(section: &str) -> Result<CoreConfig, ConfigError> {
        l3roamd_daemon::limits::try_section(
            "[mesh]\nnode_address = \"fdff::1\"",
            "core",
            section,
            CoreConfig::validate,
        )
    }

    fn key_of(section: &str) -> String {
        l3roamd_daemon::limits::rejected_key(load(section)).unwrap_or_default()
    }

    #[test]
    fn defaults_are_valid() {
        let c = load("").unwrap();
        assert_eq!(c.limits().found_time, Duration::from_secs(30));
    }

    #[test]
    fn the_compat_socket_is_gluons_path_and_empty_disables_it() {
        let c = load("").unwrap();
        assert_eq!(
            c.compat_socket(),
            Some(std::path::Path::new("/var/run/l3roamd.sock"))
        );
        assert_eq!(load("compat_socket = \"\"").unwrap().compat_socket(), None);
    }

    #[test]
    fn an_absurd_found_time_is_rejected_naming_the_key() {
        let err = load("found_time_ms = 9223372036854775807").unwrap_err();
        assert_eq!(err.key(), Some("core.found_time_ms"));
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn every_duration_and_count_is_bounded() {
        for (line, key) in [
            ("hold_time_ms = 0", "core.hold_time_ms"),
            ("hold_time_ms = 86400001", "core.hold_time_ms"),
            ("reseek_interval_ms = 86400001", "core.reseek_interval_ms"),
            ("gone_grace_ms = 86400001", "core.gone_grace_ms"),
            ("queue_per_destination = 0", "core.queue_per_destination"),
            ("queue_packets = 100000000", "core.queue_packets"),
            ("queue_destinations = 100000000", "core.queue_destinations"),
            ("queue_bytes = 1000", "core.queue_bytes"),
            ("queue_bytes = 100000000000", "core.queue_bytes"),
            ("max_clients = 0", "core.max_clients"),
            ("max_clients = 100000000", "core.max_clients"),
            ("route_batch = 0", "core.route_batch"),
            ("route_batch = 129", "core.route_batch"),
            (
                "unreachable_per_second = 100000",
                "core.unreachable_per_second",
            ),
            ("handover_ms = 40000", "core.handover_ms"),
            (
                "compat_socket = \"/var/run/a-directory-name-so-long-that-no-unix-socket-path-could-ever-hold-it-not-even-on-linux-with-108-bytes/l3roamd.sock\"",
                "core.compat_socket",
            ),
        ] {
            assert_eq!(key_of(line), key, "{line}");
        }
    }
}
