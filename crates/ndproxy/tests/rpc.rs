//! ndproxy's gRPC service end to end on a UNIX socket, without root: a node
//! with no mesh and no client interfaces still answers seeks (with rate
//! limiting), counts them and serves the watch stream.

use std::net::Ipv6Addr;
use std::time::Duration;

use l3roamd_daemon::{Config, Context, Shutdown};
use l3roamd_rpc::pb;
use l3roamd_rpc::pb::nd_proxy_client::NdProxyClient;
use tokio_stream::StreamExt;

const CONFIG: &str = r#"
    [mesh]
    node_address = "fdff::1"
    [ndproxy]
    seeks_per_second = 1
    seek_burst = 2
"#;

fn seek(addr: Ipv6Addr) -> pb::SeekRequest {
    pb::SeekRequest {
        address: Some(addr.into()),
    }
}

fn counter(status: &pb::NdProxyStatus, name: &str) -> u64 {
    status
        .counters
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.value)
        .unwrap_or_else(|| panic!("no counter {name}: {:?}", status.counters))
}

#[tokio::test(flavor = "current_thread")]
async fn seek_watch_and_status_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ndproxy.sock");
    let (stop, shutdown) = Shutdown::manual();
    let ctx = Context {
        name: "ndproxy",
        config: Config::from_toml(CONFIG).unwrap(),
        socket: socket.clone(),
        shutdown,
    };
    let daemon = tokio::spawn(ndproxy::run(ctx));
    let mut waited = Duration::ZERO;
    while !socket.exists() {
        assert!(waited < Duration::from_secs(10), "ndproxy did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    let channel = l3roamd_rpc::connect(&socket).await.unwrap();
    let mut client = NdProxyClient::new(channel);

    // The watch starts with an empty snapshot.
    let mut watch = client
        .watch_neighbours(pb::WatchNeighboursRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert!(matches!(
        first.event,
        Some(pb::neighbour_event::Event::SnapshotDone(_))
    ));

    let a: Ipv6Addr = "fddd:1::100".parse().unwrap();
    let b: Ipv6Addr = "fddd:1::101".parse().unwrap();
    let c: Ipv6Addr = "fddd:1::102".parse().unwrap();
    assert!(client.seek(seek(a)).await.unwrap().into_inner().sent);
    // The same address again at once: backoff.
    assert!(!client.seek(seek(a)).await.unwrap().into_inner().sent);
    // The burst of two is used up by a and b; c waits for the rate.
    assert!(client.seek(seek(b)).await.unwrap().into_inner().sent);
    assert!(!client.seek(seek(c)).await.unwrap().into_inner().sent);

    // Bad requests are refused with the field's name.
    for bad in [
        pb::SeekRequest { address: None },
        pb::SeekRequest {
            address: Some(pb::Ip6 { octets: vec![1, 2] }),
        },
        seek("fe80::1".parse().unwrap()),
        seek("ff02::1".parse().unwrap()),
    ] {
        let err = client.seek(bad).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
        assert!(err.message().contains("address"), "{err}");
    }

    let status = client
        .get_status(pb::NdProxyStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(counter(&status, "seeks_requested"), 4);
    assert_eq!(counter(&status, "seeks_sent"), 2);
    assert_eq!(counter(&status, "seeks_suppressed_backoff"), 1);
    assert_eq!(counter(&status, "seeks_suppressed_rate"), 1);
    assert_eq!(counter(&status, "mesh_packets_sent"), 0);
    assert!(status.mesh_interfaces.is_empty());

    // Stopping ends the watch stream and removes the socket.
    stop.send(true).unwrap();
    assert!(watch.next().await.is_none());
    daemon.await.unwrap().unwrap();
    assert!(!socket.exists());
}
