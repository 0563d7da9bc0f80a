#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed set-up is a failed test"
)]
//! client-db's gRPC service end to end on a UNIX socket, without root: the
//! real daemon (`client_db::run`) on a free UDP port, with a redb database in
//! a temporary directory. Nobody answers its claims here (the node address
//! is not assigned, so the CLAIMs cannot even leave), which is the claim
//! that runs out of retries; the two-node exchange is checked by
//! `scripts/two-node-lab.sh` in network namespaces.

use std::path::Path;
use std::time::Duration;

use l3roamd_daemon::{Config, Context, Shutdown};
use l3roamd_rpc::pb;
use l3roamd_rpc::pb::client_db_client::ClientDbClient;
use l3roamd_rpc::pb::client_db_event::Event;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

const MAC: [u8; 6] = [2, 0, 0, 0, 1, 0];

fn mac() -> Option<pb::Mac> {
    Some(pb::Mac {
        octets: MAC.to_vec(),
    })
}

fn ip(s: &str) -> pb::Ip6 {
    s.parse::<std::net::Ipv6Addr>().unwrap().into()
}

/// A UDP port nobody uses now.
fn free_port() -> u16 {
    let probe = std::net::UdpSocket::bind("[::]:0").unwrap();
    probe.local_addr().unwrap().port()
}

struct Daemon {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), l3roamd_daemon::DaemonError>>,
    client: ClientDbClient<Channel>,
}

async fn start(dir: &Path, port: u16) -> Daemon {
    let socket = dir.join("client-db.sock");
    let config = format!(
        r#"
        [mesh]
        node_address = "fdff::1"
        intercom_port = {port}
        data_port = {data}
        [client_db]
        db_path = "{db}"
        claim_interval_ms = 20
        claim_retries = 2
        flush_interval_ms = 50
        "#,
        data = port.wrapping_add(1).max(1),
        db = dir.join("db").display(),
    );
    let (stop, shutdown) = Shutdown::manual();
    let ctx = Context {
        name: "client-db",
        config: Config::from_toml(&config).unwrap(),
        socket: socket.clone(),
        shutdown,
    };
    let task = tokio::spawn(client_db::run(ctx));
    let mut waited = Duration::ZERO;
    while !socket.exists() {
        assert!(!task.is_finished(), "client-db stopped at start");
        assert!(waited < Duration::from_secs(10), "client-db did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    let channel = l3roamd_rpc::connect(&socket).await.unwrap();
    Daemon {
        stop,
        task,
        client: ClientDbClient::new(channel),
    }
}

impl Daemon {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

async fn next_event(stream: &mut tonic::Streaming<pb::ClientDbEvent>) -> Event {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
        .expect("no error")
        .event
        .expect("an event")
}

#[tokio::test(flavor = "current_thread")]
async fn update_claim_forget_watch_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut d = start(dir.path(), port).await;

    // An empty snapshot, then its end.
    let mut watch = d
        .client
        .watch(pb::WatchClientDbRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        next_event(&mut watch).await,
        Event::SnapshotDone(_)
    ));

    // Update: the record, served here, announced.
    let record = d
        .client
        .update(pb::UpdateClientRequest {
            mac: mac(),
            addresses: vec![ip("fddd:1::100"), ip("fe80::ff:fe00:100")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.addresses.len(), 2);
    assert_eq!(record.served_by[0].node_address, Some(ip("fdff::1")));
    assert!(matches!(next_event(&mut watch).await, Event::Updated(r) if r.addresses.len() == 2));

    // Claim: answered with the record at once; nobody answers on the mesh,
    // so the claim ends unanswered after its retries.
    let claimed = d
        .client
        .claim(pb::ClaimRequest { mac: mac() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(claimed.record.unwrap().addresses.len(), 2);
    match next_event(&mut watch).await {
        Event::ClaimDone(done) => {
            assert!(!done.answered);
            assert_eq!(done.mac, mac());
        }
        other => panic!("{other:?}"),
    }

    // Forget: kept, no longer served here.
    d.client
        .forget(pb::ForgetClientRequest { mac: mac() })
        .await
        .unwrap();
    assert!(matches!(next_event(&mut watch).await, Event::Updated(_)));

    // Bad arguments name their field.
    let status = d
        .client
        .update(pb::UpdateClientRequest {
            mac: mac(),
            addresses: vec![ip("ff02::1")],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().starts_with("addresses[0]"),
        "{}",
        status.message()
    );
    let status = d
        .client
        .claim(pb::ClaimRequest {
            mac: Some(pb::Mac {
                octets: vec![1, 0, 0, 0, 0, 1],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let status = d
        .client
        .get_client(pb::GetClientRequest {
            mac: Some(pb::Mac {
                octets: vec![2, 0, 0, 0, 0, 9],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    // A stop flushes; a restart loads the record again.
    d.stop().await;
    let mut d = start(dir.path(), port).await;
    let got = d
        .client
        .get_client(pb::GetClientRequest { mac: mac() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.addresses.len(), 2);
    let listed = d
        .client
        .list_clients(pb::ListClientRecordsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.clients.len(), 1);
    let mut watch = d
        .client
        .watch(pb::WatchClientDbRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(next_event(&mut watch).await, Event::Snapshot(r) if r.mac == mac()));
    assert!(matches!(
        next_event(&mut watch).await,
        Event::SnapshotDone(_)
    ));
    d.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn sled_backend_is_refused_naming_the_key_without_the_feature() {
    if cfg!(feature = "sled") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[mesh]\nnode_address = \"fdff::1\"\n[client_db]\ndb_path = \"{}\"\nbackend = \"sled\"\n",
        dir.path().display()
    );
    let (_stop, shutdown) = Shutdown::manual();
    let ctx = Context {
        name: "client-db",
        config: Config::from_toml(&config).unwrap(),
        socket: dir.path().join("s.sock"),
        shutdown,
    };
    match client_db::run(ctx).await {
        Err(l3roamd_daemon::DaemonError::Config(e)) => {
            assert_eq!(e.key(), Some("client_db.backend"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}
