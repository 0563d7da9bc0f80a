//! A configuration file that changes under a running daemon is never half
//! applied: the real `prefixd` binary, started on one file, keeps serving
//! exactly that configuration while the file is rewritten, cut short and
//! signalled about with SIGHUP (the C daemon's habit, whose default action
//! would kill it); a restart then applies the new file whole, or refuses a
//! broken one with exit status 78 and the key's name. No root needed.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use l3roamd_rpc::pb;
use l3roamd_rpc::pb::prefix_d_client::PrefixDClient;
use l3roamd_types::Ipv6Prefix;

fn config(prefix: &str) -> String {
    format!("[mesh]\nnode_address = \"fdff::1\"\nclient_prefixes = [\"{prefix}\"]\n")
}

fn start(config: &Path, socket: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_prefixd"))
        .arg("-c")
        .arg(config)
        .arg("--socket")
        .arg(socket)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The configured prefixes prefixd serves, once its socket answers.
async fn configured(socket: &Path) -> Vec<Ipv6Prefix> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let channel = loop {
        match l3roamd_rpc::connect(socket).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => panic!("prefixd does not answer: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let listed = PrefixDClient::new(channel)
        .list_prefixes(pb::ListPrefixesRequest {})
        .await
        .unwrap()
        .into_inner()
        .prefixes;
    listed
        .into_iter()
        .filter(|i| i.origin == pb::PrefixOrigin::Configured as i32)
        .filter_map(|i| l3roamd_rpc::convert::prefix("prefix", i.prefix.as_ref()).ok())
        .collect()
}

/// Reads `child`'s log (stderr) until a line contains `what` (true), the
/// log ends because the daemon exited, or 10 s pass (false). The rest of
/// the log is drained, so the daemon never blocks on a full pipe.
fn logged(child: &mut Child, what: &str) -> bool {
    use std::io::BufRead;
    let Some(stderr) = child.stderr.take() else {
        return false;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let what = what.to_string();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains(&what) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10)).is_ok()
}

fn stop(mut child: Child) -> std::process::ExitStatus {
    // SAFETY: kill on the pid of a child we started and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_changed_file_is_applied_whole_at_restart_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l3roamd.toml");
    let socket = dir.path().join("prefixd.sock");
    let old: Ipv6Prefix = "fddd:1::/64".parse().unwrap();
    let new: Ipv6Prefix = "fddd:2::/64".parse().unwrap();
    std::fs::write(&path, config("fddd:1::/64")).unwrap();
    let mut daemon = start(&path, &socket);
    assert_eq!(configured(&socket).await, vec![old]);

    // Rewritten, then cut short mid-key, then a SIGHUP: still the old one.
    std::fs::write(&path, config("fddd:2::/64")).unwrap();
    std::fs::write(&path, "[mesh]\nnode_address = \"fdff::1\"\nclient_pre").unwrap();
    // SAFETY: kill on the pid of a child we started.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGHUP) };
    assert!(
        logged(&mut daemon, "SIGHUP ignored"),
        "prefixd did not log the SIGHUP"
    );
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "SIGHUP stopped prefixd"
    );
    assert_eq!(configured(&socket).await, vec![old]);
    assert!(stop(daemon).success());

    // A restart on the broken file refuses it and says where it broke.
    let broken = start(&path, &socket);
    let output = broken.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(78), "EX_CONFIG");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("l3roamd.toml"), "{stderr}");

    // Written whole, the next start applies all of it.
    std::fs::write(&path, config("fddd:2::/64")).unwrap();
    daemon = start(&path, &socket);
    assert_eq!(configured(&socket).await, vec![new]);
    assert!(stop(daemon).success());
}
