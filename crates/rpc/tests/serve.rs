//! The UNIX-socket server: stale sockets, permissions, health, clean removal.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[tokio::test]
async fn serves_health_on_a_socket_and_removes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("sub/test.sock");
    std::fs::create_dir_all(socket.parent().expect("parent")).expect("mkdir");
    // A stale file from a crashed run must not stop the server.
    std::fs::write(&socket, b"stale").expect("stale file");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let path = socket.clone();
    let server = tokio::spawn(async move {
        l3roamd_rpc::serve(&path, None, "l3roamd.v1.Test", |router| router, async {
            let _ = stop_rx.await;
        })
        .await
    });

    // Bounded wait for the socket to answer.
    let mut channel = None;
    for _ in 0..100 {
        if let Ok(c) = l3roamd_rpc::connect(&socket).await {
            channel = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let channel = channel.expect("server never answered");
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);

    let mut health = HealthClient::new(channel);
    for service in ["", "l3roamd.v1.Test"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(reply.status, 1, "service {service:?} is not SERVING");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope".to_string(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    drop(health);
    stop_tx.send(()).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server did not stop")
        .expect("join")
        .expect("serve");
    assert!(!socket.exists(), "socket left behind");
}

#[tokio::test]
async fn connect_to_nothing_fails_with_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("absent.sock");
    let err = l3roamd_rpc::connect(&socket)
        .await
        .expect_err("nothing listens");
    assert!(err.to_string().contains("absent.sock"), "{err}");
}

/// The gid of `name` in /etc/group, if listed there.
fn gid_of(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

#[tokio::test]
async fn the_socket_belongs_to_the_configured_group() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    // Debian's base-passwd always has it.
    let gid = gid_of("nogroup").expect("a group nogroup in /etc/group");
    let socket = dir.path().join("group.sock");
    let path = socket.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        l3roamd_rpc::serve(
            &path,
            Some("nogroup"),
            "l3roamd.v1.Test",
            |router| router,
            async {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    for _ in 0..100 {
        if l3roamd_rpc::connect(&socket).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let meta = std::fs::metadata(&socket).expect("socket");
    assert_eq!(meta.gid(), gid);
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let _ = stop_tx.send(());
    server.await.expect("join").expect("served");

    // A group that does not exist is a configuration error naming the key.
    let err = l3roamd_rpc::serve(
        &dir.path().join("nope.sock"),
        Some("no-such-group-here"),
        "l3roamd.v1.Test",
        |router| router,
        async {},
    )
    .await
    .expect_err("unknown group");
    assert!(err.to_string().contains("runtime.socket_group"), "{err}");
}
