//! Fills a running client-db with N clients (Update, three addresses each)
//! and prints the daemon's memory and threads, for the memory budget and the
//! "memory per client" benchmark:
//!
//! ```text
//! cargo run --release -p client-db --example fill_clients -- SOCKET PID [N]
//! ```
//!
//! prints one JSON line:
//! `{"clients":1000,"before_rss_kb":..,"rss_kb":..,"rss_anon_kb":..,"rss_file_kb":..,"threads":..,"seconds":..}`
//! with VmRSS before the first Update, and VmRSS (with its anonymous part:
//! heap and stacks, and its file part: the binary's and libraries' pages,
//! shared with every other process mapping them) and Threads after the last
//! one and a flush interval later, all from `/proc/PID/status`.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use l3roamd_rpc::pb;
use l3roamd_types::MacAddr;

fn status_field(pid: u32, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn fill(socket: PathBuf, pid: u32, count: u32) -> Result<String, String> {
    let channel = l3roamd_rpc::connect(&socket)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = pb::client_db_client::ClientDbClient::new(channel);
    let before = status_field(pid, "VmRSS:");
    let started = Instant::now();
    for i in 0..count {
        let [_, b, c, d] = i.to_be_bytes();
        let mac = MacAddr([2, 0, 0, b, c, d]);
        let low = (i & 0xffff) as u16;
        let high = (i >> 16) as u16;
        let addresses = [
            Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, high, low),
            Ipv6Addr::new(0xfddd, 2, 0, 0, 0, 0, high, low),
            mac.link_local(),
        ];
        client
            .update(pb::UpdateClientRequest {
                mac: Some(mac.into()),
                addresses: addresses.iter().map(|a| pb::Ip6::from(*a)).collect(),
            })
            .await
            .map_err(|e| format!("Update {mac}: {e}"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    // Let a flush happen (default flush_interval_ms is 1000).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Ok(format!(
        "{{\"clients\":{count},\"before_rss_kb\":{before},\"rss_kb\":{},\"rss_anon_kb\":{},\"rss_file_kb\":{},\"threads\":{},\"seconds\":{seconds:.3}}}",
        status_field(pid, "VmRSS:"),
        status_field(pid, "RssAnon:"),
        status_field(pid, "RssFile:"),
        status_field(pid, "Threads:"),
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(socket), Some(Ok(pid))) = (args.first(), args.get(1).map(|p| p.parse::<u32>()))
    else {
        eprintln!("usage: fill_clients SOCKET PID [N]");
        return ExitCode::from(2);
    };
    let count = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fill(PathBuf::from(socket), pid, count)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
