#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed set-up is a failed test"
)]
//! clientmon against a real kernel: a node namespace with the client bridge
//! `br-client` and the next-node macvlan `local-node` on it, a client
//! namespace on a veth port, the real binary, its watch stream over its
//! socket.
//!
//! The client sends nothing but what its kernel sends by itself: MLD reports
//! on link-up (no DAD, no router solicitation), later a DAD probe for a new
//! address. Needs root and iproute2; skipped without them, except with
//! `CI=true`, where missing prerequisites fail the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use l3roamd_rpc::pb;
use l3roamd_rpc::pb::client_event::Event;

const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0, 0, 0, 1];
const NEXT_NODE_MAC: [u8; 6] = [0x02, 0x4e, 0x4e, 0, 0, 1];
const BRIDGE_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 1];
const PORT_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0xc1];

// ===== the lab =====

/// Namespaces, files and the daemon of one run; all removed on drop, even
/// when the test fails.
struct Lab {
    node: String,
    client: String,
    dir: PathBuf,
    daemon: Option<Child>,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(status.success(), "ip {args:?} failed");
}

fn in_ns(ns: &str, args: &[&str]) {
    let status = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(status.success(), "{args:?} in {ns} failed");
}

impl Lab {
    fn new() -> Lab {
        let id = std::process::id();
        let lab = Lab {
            node: format!("cm-n-{id}"),
            client: format!("cm-c-{id}"),
            dir: std::env::temp_dir().join(format!("clientmon-lab-{id}")),
            daemon: None,
        };
        std::fs::create_dir_all(&lab.dir).unwrap();
        let (n, c) = (lab.node.as_str(), lab.client.as_str());
        ip(&["netns", "add", n]);
        ip(&["netns", "add", c]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            n,
            "link",
            "add",
            "br-client",
            "address",
            "02:bb:00:00:00:01",
            "type",
            "bridge",
        ]);
        ip(&["-n", n, "link", "set", "br-client", "up"]);
        ip(&[
            "-n",
            n,
            "link",
            "add",
            "local-node",
            "link",
            "br-client",
            "address",
            "02:4e:4e:00:00:01",
            "type",
            "macvlan",
            "mode",
            "bridge",
        ]);
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            "fe80::1/64",
            "dev",
            "local-node",
            "nodad",
        ]);
        ip(&["-n", n, "link", "set", "local-node", "up"]);
        ip(&[
            "-n",
            n,
            "link",
            "add",
            "veth-c1",
            "address",
            "02:bb:00:00:00:c1",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            c,
        ]);
        ip(&[
            "-n",
            n,
            "link",
            "set",
            "veth-c1",
            "master",
            "br-client",
            "up",
        ]);
        ip(&[
            "-n",
            c,
            "link",
            "set",
            "eth0",
            "address",
            "02:c1:00:00:00:01",
        ]);
        // A client that sends nothing of its own: no DAD, no router
        // solicitation; only its kernel's MLD reports on link-up.
        in_ns(c, &["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"]);
        in_ns(
            c,
            &["sysctl", "-qw", "net.ipv6.conf.eth0.router_solicitations=0"],
        );
        ip(&[
            "-n",
            c,
            "addr",
            "add",
            "fddd:1::100/64",
            "dev",
            "eth0",
            "nodad",
        ]);
        lab
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("clientmon.sock")
    }

    fn start_clientmon(&mut self) {
        let config = self.dir.join("l3roamd.toml");
        std::fs::write(
            &config,
            format!(
                "[runtime]\nsocket_dir = {dir:?}\n\
                 [mesh]\nnode_address = \"fdff::1\"\nclient_interfaces = [\"br-client\"]\n\
                 next_node_mac = \"02:4e:4e:00:00:01\"\n\
                 [clientmon]\npresence_timeout_secs = 6\nresync_interval_secs = 3\ndad_wait_ms = 500\n",
                dir = self.dir.display().to_string()
            ),
        )
        .unwrap();
        let daemon = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.node,
                env!("CARGO_BIN_EXE_clientmon"),
                "-c",
            ])
            .arg(&config)
            .stdin(Stdio::null())
            .spawn()
            .expect("start clientmon");
        self.daemon = Some(daemon);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        for ns in [&self.node, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root".to_string());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        missing.push("`ip` (iproute2)".to_string());
    }
    missing
}

/// True if the lab can run; skips (or fails with `CI=true`) otherwise.
fn lab_possible() -> bool {
    let missing = missing_prerequisites();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "lab prerequisites missing on CI: {what}"
    );
    eprintln!("SKIP: clientmon netns test needs {what}");
    false
}

// ===== the watch =====

type Watch = tonic::Streaming<pb::ClientEvent>;

async fn connect(
    socket: &Path,
) -> pb::client_mon_client::ClientMonClient<tonic::transport::Channel> {
    for _ in 0..100 {
        if let Ok(channel) = l3roamd_rpc::connect(socket).await {
            return pb::client_mon_client::ClientMonClient::new(channel);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clientmon never served {}", socket.display());
}

fn mac_of(mac: &Option<pb::Mac>) -> Vec<u8> {
    mac.as_ref().map(|m| m.octets.clone()).unwrap_or_default()
}

/// The next event, within `limit`; panics on a timeout or an error.
async fn next(watch: &mut Watch, limit: Duration) -> Event {
    let item = tokio::time::timeout(limit, watch.next())
        .await
        .expect("no event in time")
        .expect("the watch ended")
        .expect("the watch failed");
    let event = item.event.expect("an empty event");
    // Never the node's own MACs.
    if let Event::Appeared(c) | Event::Snapshot(c) = &event {
        let mac = mac_of(&c.mac);
        for own in [NEXT_NODE_MAC, BRIDGE_MAC, PORT_MAC] {
            assert_ne!(mac, own, "a MAC of the node appeared as a client: {c:?}");
        }
    }
    event
}

// ===== the test =====

#[tokio::test(flavor = "current_thread")]
async fn a_client_appears_on_mld_alone_is_learned_and_goes_with_its_port() {
    if !lab_possible() {
        return;
    }
    let mut lab = Lab::new();
    lab.start_clientmon();
    let mut client = connect(&lab.socket()).await;
    let mut watch = client
        .watch_clients(pb::WatchClientsRequest {})
        .await
        .expect("watch")
        .into_inner();
    assert!(matches!(
        next(&mut watch, Duration::from_secs(5)).await,
        Event::SnapshotDone(_)
    ));

    // Link-up: the client's kernel sends MLD reports and nothing else.
    ip(&["-n", &lab.client, "link", "set", "eth0", "up"]);
    match next(&mut watch, Duration::from_secs(5)).await {
        Event::Appeared(c) => {
            assert_eq!(mac_of(&c.mac), CLIENT_MAC);
            assert_eq!(c.interface, "veth-c1");
        }
        other => panic!("expected the client to appear, got {other:?}"),
    }

    // A new address: its duplicate address detection probe teaches it.
    in_ns(
        &lab.client,
        &["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=1"],
    );
    ip(&[
        "-n",
        &lab.client,
        "addr",
        "add",
        "fddd:1::200/64",
        "dev",
        "eth0",
    ]);
    match next(&mut watch, Duration::from_secs(5)).await {
        Event::AddressLearned(a) => {
            assert_eq!(mac_of(&a.mac), CLIENT_MAC);
            let octets = a.address.map(|a| a.octets).unwrap_or_default();
            assert_eq!(
                octets,
                "fddd:1::200"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets()
            );
        }
        other => panic!("expected the address to be learned, got {other:?}"),
    }
    let list = client
        .list_clients(pb::ListClientsRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.clients.len(), 1, "{list:?}");

    // The port vanishes: gone at once, long before the 6 s timeout.
    ip(&["-n", &lab.node, "link", "del", "veth-c1"]);
    match next(&mut watch, Duration::from_secs(2)).await {
        Event::Gone(g) => assert_eq!(mac_of(&g.mac), CLIENT_MAC),
        other => panic!("expected the client to be gone, got {other:?}"),
    }
}
