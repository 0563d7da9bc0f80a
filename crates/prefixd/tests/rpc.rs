//! prefixd's gRPC service end to end on a UNIX socket, without root: a node
//! with no client interfaces and no uplink still takes announcements (it
//! installs no route without an uplink), refuses bad arguments naming the
//! field, lists and watches its prefixes and reports its status.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::time::Duration;

use l3roamd_daemon::{Config, Context, Shutdown};
use l3roamd_rpc::pb;
use l3roamd_rpc::pb::prefix_d_client::PrefixDClient;
use l3roamd_types::Ipv6Prefix;
use tokio_stream::StreamExt;
use tonic::Code;

const CONFIG: &str = r#"
    [mesh]
    node_address = "fdff::1"
    client_prefixes = ["fddd:1::/64"]
"#;

/// CPU time of this process (the daemon runs on the test's runtime).
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to an rusage.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn prefix(s: &str) -> Option<pb::Prefix> {
    Some(s.parse::<Ipv6Prefix>().unwrap().into())
}

#[tokio::test(flavor = "current_thread")]
async fn announce_list_watch_and_bad_arguments_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("prefixd.sock");
    let (stop, shutdown) = Shutdown::manual();
    let ctx = Context {
        name: "prefixd",
        config: Config::from_toml(CONFIG).unwrap(),
        socket: socket.clone(),
        shutdown,
    };
    let daemon = tokio::spawn(prefixd::run(ctx));
    let mut waited = Duration::ZERO;
    while !socket.exists() {
        assert!(waited < Duration::from_secs(10), "prefixd did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    let channel = l3roamd_rpc::connect(&socket).await.unwrap();
    let mut client = PrefixDClient::new(channel);

    // The configured site prefix, selected, is the snapshot.
    let mut watch = client
        .watch_prefixes(pb::WatchPrefixesRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    match first.event {
        Some(pb::prefix_event::Event::Snapshot(info)) => {
            assert_eq!(info.prefix, prefix("fddd:1::/64"));
            assert_eq!(info.state, pb::PrefixState::Selected as i32);
            assert_eq!(info.origin, pb::PrefixOrigin::Configured as i32);
            assert_eq!((info.preferred_lifetime, info.valid_lifetime), (2700, 5400));
        }
        other => panic!("not the site prefix: {other:?}"),
    }
    assert!(matches!(
        watch.next().await.unwrap().unwrap().event,
        Some(pb::prefix_event::Event::SnapshotDone(_))
    ));

    // Bad arguments are refused with the field's name.
    let announce = |p: Option<pb::Prefix>, metric: u32, uplink: &str| pb::AnnounceRequest {
        prefix: p,
        metric,
        uplink: uplink.to_string(),
    };
    for (bad, field) in [
        (announce(None, 0, ""), "prefix"),
        (announce(prefix("2001:db8::/48"), 0, ""), "prefix"),
        (announce(prefix("2001:db8::/64"), 5000, ""), "metric"),
        (announce(prefix("2001:db8::/64"), 0, "a b"), "uplink"),
    ] {
        let status = client.announce(bad.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status}");
        assert!(status.message().contains(field), "{bad:?}: {status}");
    }
    let status = client
        .withdraw(pb::WithdrawRequest {
            prefix: prefix("2001:db8:7::/64"),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status}");
    let status = client
        .client_arrived(pb::ClientArrivedRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("mac"), "{status}");

    // An announcement: metric 100 is babel's class 128, protocol 162.
    let answer = client
        .announce(announce(prefix("2001:db8:1::/64"), 100, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((answer.metric, answer.route_protocol), (128, 162));
    let listed = client
        .list_prefixes(pb::ListPrefixesRequest {})
        .await
        .unwrap()
        .into_inner()
        .prefixes;
    let ours = listed
        .iter()
        .find(|i| i.prefix == prefix("2001:db8:1::/64"))
        .unwrap_or_else(|| panic!("announced prefix not listed: {listed:?}"));
    assert_eq!(ours.origin, pb::PrefixOrigin::Announced as i32);
    // No uplink: no route, so not advertised (nobody here routes it).
    assert!(!ours.routable);
    assert_eq!(ours.state, pb::PrefixState::Known as i32);
    // The watcher hears of it (after other changes, such as the site
    // prefix found routable once the kernel's routes are read).
    let mut heard = Vec::new();
    for _ in 0..10 {
        let event = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let ours = matches!(&event.event, Some(pb::prefix_event::Event::Added(i)) if i.prefix == prefix("2001:db8:1::/64"));
        heard.push(event);
        if ours {
            break;
        }
    }
    assert!(
        matches!(&heard.last().and_then(|e| e.event.clone()), Some(pb::prefix_event::Event::Added(i)) if i.prefix == prefix("2001:db8:1::/64")),
        "{heard:?}"
    );
    client
        .withdraw(pb::WithdrawRequest {
            prefix: prefix("2001:db8:1::/64"),
        })
        .await
        .unwrap();

    let status = client
        .get_status(pb::PrefixdStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!status.babel_connected);
    assert_eq!(status.learned_from, "kernel");
    assert!(status.links.is_empty());
    assert!(status.counters.iter().any(|c| c.name == "adverts_sent"));

    // Idle, it sleeps: no babel here, nothing to advertise on. (A loop
    // polled for ever would use the whole second.)
    let before = cpu_time();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_time() - before;
    assert!(
        used < Duration::from_millis(300),
        "idle prefixd used {used:?} of CPU in 1 s"
    );

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!socket.exists(), "socket removed at stop");
}
