//! Memory and threads of each store backend with N client records.
//!
//! ```text
//! cargo run --release -p client-db --features sled --example store_footprint
//! cargo run --release -p client-db --features sled --example store_footprint -- sled-small 1000
//! ```
//!
//! Without a backend argument it runs itself once per backend (a process
//! each, so one backend's allocations do not count against another's) and
//! prints one JSON line per backend:
//!
//! ```text
//! {"backend":"redb","records":1000,"baseline_rss_kb":..,"open_rss_kb":..,
//!  "written_rss_kb":..,"loaded_rss_kb":..,"rss_growth_kb":..,"threads":..,
//!  "extra_threads":..,"db_bytes":..}
//! ```
//!
//! `rss_growth_kb` is `loaded_rss_kb - baseline_rss_kb`: what opening the
//! store, writing N records, flushing them and reading them all back added to
//! the process. RSS and threads come from `/proc/self/status` (VmRSS,
//! Threads). The database lives under `--dir DIR` (default: a new directory
//! in /dev/shm, a tmpfs like a router's /tmp), removed afterwards.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use client_db::db::Record;
use client_db::store::{self, Store};
use l3roamd_types::MacAddr;

/// Every backend variant this binary knows.
const BACKENDS: &[&str] = &["memory", "redb", "sled-default", "sled-small"];

fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kb() -> u64 {
    status_field("VmRSS:")
}

fn threads() -> u64 {
    status_field("Threads:")
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_bytes(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

/// A plausible client: two global addresses and its link-local one.
fn record(i: u32) -> Record {
    let [_, b, c, d] = i.to_be_bytes();
    let mac = MacAddr([2, 0, 0, b, c, d]);
    let now = 1_760_000_000;
    let mut r = Record::new(mac, now);
    let low = (i & 0xffff) as u16;
    r.merge_addresses(
        [
            Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, (i >> 16) as u16, low),
            Ipv6Addr::new(0xfddd, 2, 0, 0, 0, 0, (i >> 16) as u16, low),
            mac.link_local(),
        ],
        now,
    );
    r.note_served_by(Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, 1), now);
    r.serving = true;
    r
}

fn open(backend: &str, dir: &Path) -> Result<Box<dyn Store>, String> {
    match backend {
        "memory" => store::open(store::Backend::Memory, dir).map_err(|e| e.to_string()),
        "redb" => store::open(store::Backend::Redb, dir).map_err(|e| e.to_string()),
        #[cfg(feature = "sled")]
        "sled-default" | "sled-small" => {
            let tuning = if backend == "sled-default" {
                store::SledTuning::DEFAULT
            } else {
                store::SledTuning::SMALL
            };
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            store::SledStore::open(&dir.join(store::SledStore::DIR), tuning)
                .map(|s| Box::new(s) as Box<dyn Store>)
                .map_err(|e| e.to_string())
        }
        #[cfg(not(feature = "sled"))]
        "sled-default" | "sled-small" => Err("built without --features sled".into()),
        other => Err(format!("unknown backend {other:?} (known: {BACKENDS:?})")),
    }
}

fn measure(backend: &str, count: u32, dir: &Path) -> Result<String, String> {
    let records: Vec<Record> = (0..count).map(record).collect();
    let baseline_rss = rss_kb();
    let baseline_threads = threads();
    let mut store = open(backend, dir)?;
    let open_rss = rss_kb();
    for r in &records {
        store.put(r).map_err(|e| e.to_string())?;
    }
    store.flush().map_err(|e| e.to_string())?;
    let written_rss = rss_kb();
    let loaded = store.load_all().map_err(|e| e.to_string())?;
    if loaded.records.len() != records.len() {
        return Err(format!(
            "wrote {} records, read back {}",
            records.len(),
            loaded.records.len()
        ));
    }
    drop(loaded);
    let loaded_rss = rss_kb();
    let threads_now = threads();
    Ok(format!(
        "{{\"backend\":\"{backend}\",\"records\":{count},\"baseline_rss_kb\":{baseline_rss},\
         \"open_rss_kb\":{open_rss},\"written_rss_kb\":{written_rss},\"loaded_rss_kb\":{loaded_rss},\
         \"rss_growth_kb\":{},\"threads\":{threads_now},\"extra_threads\":{},\"db_bytes\":{}}}",
        loaded_rss.saturating_sub(baseline_rss),
        threads_now.saturating_sub(baseline_threads),
        dir_bytes(dir),
    ))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut backend = None;
    let mut count = 1000u32;
    let mut dir: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        if arg == "--dir" {
            dir = args.next().map(PathBuf::from);
        } else if let Ok(n) = arg.parse() {
            count = n;
        } else {
            backend = Some(arg);
        }
    }
    let base = dir.unwrap_or_else(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    });
    let Some(backend) = backend else {
        // One process per backend.
        let Ok(me) = std::env::current_exe() else {
            eprintln!("cannot find my own executable");
            return ExitCode::FAILURE;
        };
        let mut ok = true;
        for b in BACKENDS {
            match Command::new(&me)
                .args([b.to_string(), count.to_string(), "--dir".into()])
                .arg(&base)
                .status()
            {
                Ok(s) if s.success() => {}
                _ => ok = false,
            }
        }
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    };
    let dir = base.join(format!(
        "client-db-footprint-{}-{backend}",
        std::process::id()
    ));
    let result = measure(&backend, count, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{{\"backend\":\"{backend}\",\"records\":{count},\"error\":\"{e}\"}}");
            ExitCode::FAILURE
        }
    }
}
