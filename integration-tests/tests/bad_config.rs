//! A daemon given a bad configuration value stops at once, non-zero, with a
//! message on stderr naming the key. No namespaces needed: the daemons must
//! refuse the file before touching the network.

use std::path::Path;
use std::time::{Duration, Instant};

use l3roamd_lab::daemons::{run_to_exit, MULTICALL_BINARY};
use l3roamd_lab::{BinDir, Daemon, DaemonConfig};

/// How long a daemon may take to refuse its configuration.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// True if `text` names `key` as a whole key, not as part of a longer one
/// (`mesh.node_address.mesh`, `mesh.node_addresses`); an index may follow
/// (`[0]` or `.0`).
fn names_key(text: &str, key: &str) -> bool {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    text.match_indices(key).any(|(i, _)| {
        let mut rest = &text[i + key.len()..];
        if let Some(index) = rest.strip_prefix('.') {
            let digits = index.len() - index.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits > 0 {
                rest = &index[digits..];
            }
        }
        !rest.chars().next().is_some_and(is_key_char)
    })
}

/// Writes a config with `section.key = raw` under `dir`, returns its path.
fn bad_config(dir: &Path, name: &str, section: &str, key: &str, raw: &str) -> std::path::PathBuf {
    let mut config = DaemonConfig::new(
        &dir.join(name),
        "fdff::1".parse().expect("addr"),
        vec!["m-gw".into(), "m-n2".into()],
    );
    config.set_raw(section, key, raw);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config.render()).expect("write config");
    path
}

/// Runs every daemon (and the multicall binary as each daemon) on `config`
/// and checks each refuses it naming `key`.
fn all_refuse(config: &Path, key: &str) {
    refuse(&Daemon::ALL, config, key);
}

/// Runs `daemons` (and the multicall binary as each) on `config` and checks
/// each refuses it naming `key`.
fn refuse(daemons: &[Daemon], config: &Path, key: &str) {
    let bins = BinDir::locate().expect("bin dir");
    let conf = config.to_str().expect("utf-8 path");
    let mut runs: Vec<(String, std::path::PathBuf, Vec<&str>)> = Vec::new();
    for &daemon in daemons {
        let bin = bins
            .binary(daemon.binary())
            .unwrap_or_else(|e| panic!("{e}"));
        runs.push((daemon.binary().to_string(), bin, vec!["-c", conf]));
    }
    let multicall = bins
        .binary(MULTICALL_BINARY)
        .unwrap_or_else(|e| panic!("{e}"));
    for &daemon in daemons {
        runs.push((
            format!("l3roamd {}", daemon.binary()),
            multicall.clone(),
            vec![daemon.binary(), "-c", conf],
        ));
    }
    // The runs are independent: run them side by side to keep the test short.
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|(name, bin, args)| {
                s.spawn(move || {
                    let start = Instant::now();
                    let out = match run_to_exit(bin, args, EXIT_TIMEOUT) {
                        Ok(out) => out,
                        Err(e) => return Some(format!("{name}: {e}")),
                    };
                    let took = start.elapsed();
                    if out.status.success() {
                        return Some(format!("{name}: exited 0 on a bad {key}"));
                    }
                    if !names_key(&out.stderr, key) {
                        return Some(format!(
                            "{name} ({}) stderr does not name `{key}`: {:?}",
                            out.status,
                            out.stderr.trim()
                        ));
                    }
                    eprintln!("{name}: {} in {took:?}: {}", out.status, out.stderr.trim());
                    None
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap_or_else(|_| Some("a run panicked".into())))
            .collect()
    });
    assert!(failures.is_empty(), "bad {key}:\n{}", failures.join("\n"));
}

#[test]
fn bad_node_address_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = bad_config(
        dir.path(),
        "addr",
        "mesh",
        "node_address",
        "\"not-an-address\"",
    );
    all_refuse(&config, "mesh.node_address");
}

#[test]
fn client_prefix_with_host_bits_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = bad_config(
        dir.path(),
        "prefix",
        "mesh",
        "client_prefixes",
        "[\"fddd:1::1/64\"]",
    );
    all_refuse(&config, "mesh.client_prefixes");
}

#[test]
fn bad_prefixd_settings_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, key, raw, named) in [
        (
            "announce48",
            "announce",
            "[{ prefix = \"2001:db8::/48\", metric = 0, uplink = \"up0\" }]",
            "prefixd.announce[0].prefix",
        ),
        (
            "lifetimes",
            "preferred_lifetime",
            "6000",
            "prefixd.preferred_lifetime",
        ),
        ("interval", "max_interval", "2000.0", "prefixd.max_interval"),
    ] {
        let config = bad_config(dir.path(), name, "prefixd", key, raw);
        refuse(&[Daemon::PrefixD], &config, named);
    }
}

#[test]
fn key_matching_is_exact() {
    assert!(names_key(
        "x: mesh.node_address: invalid",
        "mesh.node_address"
    ));
    assert!(names_key(
        "mesh.client_prefixes[0]: host bits",
        "mesh.client_prefixes"
    ));
    assert!(!names_key(
        "mesh.node_address.mesh: invalid",
        "mesh.node_address"
    ));
    assert!(!names_key("bin_dir: not a section", "mesh.node_address"));
    assert!(names_key(
        "mesh.client_prefixes.0: host bits",
        "mesh.client_prefixes"
    ));
    assert!(!names_key(
        "mesh.client_prefixes.0.mesh: host bits",
        "mesh.client_prefixes"
    ));
}
