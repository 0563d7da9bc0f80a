//! The control socket over a real UNIX socket with a fake daemon: the
//! answers a C-daemon client reads, errors for bad lines, and the bounds
//! (connections, line length, silent clients) without harm to serving.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::net::Ipv6Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use l3roamd_compat::{
    serve, AddressState, Backend, BackendError, Client, Counter, Counters, Limits, SharedCounters,
    Verbosity,
};
use l3roamd_types::{Ipv6Prefix, MacAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// A daemon with one client, a list of mesh interfaces and a log level.
#[derive(Default)]
struct Fake {
    meshifs: Mutex<Vec<String>>,
    probes: Mutex<Vec<(Ipv6Addr, MacAddr)>>,
    verbosity: Mutex<Option<Verbosity>>,
    /// `get_clients` never answers (a stuck engine).
    stuck: bool,
}

impl Backend for Fake {
    async fn clients(&self) -> Result<Vec<Client>, BackendError> {
        if self.stuck {
            std::future::pending::<()>().await;
        }
        Ok(vec![Client {
            mac: "02:00:00:00:01:00".parse().unwrap(),
            interface: "br-client".into(),
            addresses: vec![("fddd:1::5".parse().unwrap(), AddressState::Active)],
        }])
    }

    async fn mesh_interfaces(&self) -> Result<Vec<String>, BackendError> {
        Ok(self.meshifs.lock().unwrap().clone())
    }

    async fn add_mesh_interface(&self, name: &str) -> Result<(), BackendError> {
        let mut m = self.meshifs.lock().unwrap();
        if !m.iter().any(|n| n == name) {
            m.push(name.to_string());
        }
        Ok(())
    }

    async fn remove_mesh_interface(&self, name: &str) -> Result<(), BackendError> {
        if name == "mesh0" {
            return Err(BackendError::Invalid("mesh0 is configured".into()));
        }
        self.meshifs.lock().unwrap().retain(|n| n != name);
        Ok(())
    }

    async fn prefixes(&self) -> Result<Vec<Ipv6Prefix>, BackendError> {
        Ok(vec!["fddd:1::/64".parse().unwrap()])
    }

    async fn probe(&self, addr: Ipv6Addr, mac: MacAddr) -> Result<(), BackendError> {
        self.probes.lock().unwrap().push((addr, mac));
        Ok(())
    }

    fn set_verbosity(&self, verbosity: Verbosity) -> Result<(), BackendError> {
        *self.verbosity.lock().unwrap() = Some(verbosity);
        Ok(())
    }
}

struct Running {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    fake: Arc<Fake>,
    counters: SharedCounters,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

fn start(fake: Fake, limits: Limits) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l3roamd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let fake = Arc::new(fake);
    fake.meshifs.lock().unwrap().push("mesh0".into());
    let counters: SharedCounters = Arc::new(Mutex::new(Counters::default()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        listener,
        fake.clone(),
        limits,
        counters.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    Running {
        _dir: dir,
        path,
        fake,
        counters,
        stop,
        task,
    }
}

/// Sends `bytes`, half-closes like `echo ... | socat`, reads to the end.
async fn ask(path: &Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(path).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

fn counter(r: &Running, c: Counter) -> u64 {
    r.counters.lock().unwrap().get(c)
}

#[tokio::test]
async fn every_command_round_trips_over_the_socket() {
    let r = start(Fake::default(), Limits::default());
    let p = &r.path;
    assert_eq!(
        ask(p, b"get_clients\n").await,
        r#"{ "clients": 1, "clientlist": { "02:00:00:00:01:00": { "interface": "br-client", "addresses": { "fddd:1::5": { "state": 1 } } } } }"#
    );
    // respondd's way: write the line, keep the socket open, read.
    let mut s = UnixStream::connect(p).await.unwrap();
    s.write_all(b"get_clients\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["clients"], 1);

    assert_eq!(ask(p, b"add_meshif mesh-vpn\n").await, "");
    assert_eq!(ask(p, b"add_meshif mesh-vpn\n").await, "");
    assert_eq!(
        ask(p, b"get_meshifs\n").await,
        r#"{ "mesh_interfaces": [ "mesh0", "mesh-vpn" ] }"#
    );
    assert_eq!(ask(p, b"del_meshif mesh-vpn\n").await, "");
    assert_eq!(
        ask(p, b"del_meshif mesh0\n").await,
        "error: del_meshif: invalid argument: mesh0 is configured\n"
    );
    assert_eq!(
        ask(p, b"get_meshifs").await,
        r#"{ "mesh_interfaces": [ "mesh0" ] }"#
    );
    assert_eq!(
        ask(p, b"get_prefixes\r\n").await,
        r#"{ "prefixes": [ "fddd:1::\/64" ] }"#
    );
    assert_eq!(
        ask(p, b"has_route fddd:1::5\n").await,
        "found route fddd:1::5/128: YES\n"
    );
    assert_eq!(
        ask(p, b"has_route fddd:1::6\n").await,
        "found route fddd:1::6/128: NO\n"
    );
    assert_eq!(ask(p, b"probe fddd:1::7 02:00:00:00:07:00\n").await, "");
    assert_eq!(
        *r.fake.probes.lock().unwrap(),
        [(
            "fddd:1::7".parse().unwrap(),
            "02:00:00:00:07:00".parse().unwrap()
        )]
    );
    assert_eq!(ask(p, b"verbosity debug\n").await, "");
    assert_eq!(*r.fake.verbosity.lock().unwrap(), Some(Verbosity::Debug));
    let reply = ask(p, b"add_prefix fddd:2::/64\n").await;
    assert!(
        reply.starts_with("error: add_prefix: not supported: "),
        "{reply}"
    );
    let reply = ask(p, b"add_address 10.1.2.3 02:00:00:00:01:00\n").await;
    assert!(
        reply.starts_with("error: add_address: not supported: "),
        "{reply}"
    );
    assert_eq!(counter(&r, Counter::Commands), 15);
    assert_eq!(counter(&r, Counter::Failed), 3);
    r.stop.send(()).unwrap();
    r.task.await.unwrap();
}

#[tokio::test]
async fn bad_lines_get_an_error_line_and_serving_goes_on() {
    let limits = Limits {
        line: 64,
        ..Limits::default()
    };
    let r = start(Fake::default(), limits);
    let p = &r.path;
    for (line, want) in [
        (&b"bogus\n"[..], "error: unknown command \"bogus\"\n"),
        (b"\n", "error: empty command\n"),
        (b"", "error: empty command\n"),
        (b"probe ::1\n", "error: probe: missing mac\n"),
        (b"verbosity\n", "error: verbosity: missing level\n"),
        (b"\xff\xfe\n", "error: the command is not text\n"),
    ] {
        assert_eq!(ask(p, line).await, want, "{line:?}");
    }
    let long = vec![b'a'; 10_000];
    assert_eq!(ask(p, &long).await, "error: line longer than 64 bytes\n");
    assert_eq!(counter(&r, Counter::Malformed), 7);
    assert_eq!(
        ask(p, b"get_meshifs\n").await,
        r#"{ "mesh_interfaces": [ "mesh0" ] }"#
    );
    r.stop.send(()).unwrap();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn silent_clients_time_out_and_extra_ones_are_refused() {
    let limits = Limits {
        connections: 2,
        ..Limits::default()
    };
    let r = start(Fake::default(), limits);
    let p = &r.path;
    // Two clients that connect and say nothing hold both slots.
    let mut a = UnixStream::connect(p).await.unwrap();
    let mut b = UnixStream::connect(p).await.unwrap();
    tokio::task::yield_now().await;
    // The paused clock only moves when every task waits: the two silent
    // connections are accepted before the third arrives.
    tokio::time::sleep(Duration::from_millis(10)).await;
    // (It sends nothing: the refusal does not wait for its line.)
    assert_eq!(ask(p, b"").await, "error: too many connections\n");
    assert_eq!(counter(&r, Counter::Refused), 1);
    // Their read deadline passes: they are told so and closed.
    tokio::time::sleep(limits.read + Duration::from_millis(100)).await;
    for s in [&mut a, &mut b] {
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "error: no command within the time limit\n");
    }
    assert_eq!(counter(&r, Counter::TimedOut), 2);
    // Both slots are free again.
    assert!(ask(p, b"get_clients\n")
        .await
        .starts_with("{ \"clients\": 1"));
    r.stop.send(()).unwrap();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stuck_daemon_answers_with_an_error_in_time() {
    let r = start(
        Fake {
            stuck: true,
            ..Fake::default()
        },
        Limits::default(),
    );
    assert_eq!(
        ask(&r.path, b"get_clients\n").await,
        "error: get_clients: no answer in time\n"
    );
    // Shutdown cuts what is still open.
    let _open = UnixStream::connect(&r.path).await.unwrap();
    r.stop.send(()).unwrap();
    r.task.await.unwrap();
}
