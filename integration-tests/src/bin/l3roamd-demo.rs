//! `l3roamd-demo`: builds a small mesh in network namespaces and shows l3roamd
//! running on it, step by step.
//!
//! A chain of nodes behind a gateway, a real babeld on each, one client on the
//! last node, and the five l3roamd daemons on every node; it prints what each
//! daemon serves, its health, and the routes babel learned, then tears it all
//! down. Needs root, iproute2, babeld and grpcurl, and the daemon binaries
//! (`cargo build --workspace --bins`; `L3ROAMD_BIN_DIR` to point elsewhere).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use l3roamd_lab::{
    health_status, list_services, node_address, Daemon, Lab, LabOptions, Launch, INTERNET_ADDRESS,
};

const USAGE: &str = "\
Usage: l3roamd-demo [--nodes N] [--hello SECONDS] [--multicall] [--keep]

  --nodes N        mesh nodes in the chain behind the gateway (default 4)
  --hello SECONDS  babeld hello interval (default 1; babeld's own default is 4)
  --multicall      run the daemons through the multicall binary `l3roamd`
  --keep           keep /tmp/l3r-<id> (configs and logs) afterwards";

/// Command-line settings of the demo.
struct Args {
    nodes: usize,
    hello: Duration,
    launch: Launch,
    keep: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        nodes: 4,
        hello: Duration::from_secs(1),
        launch: Launch::Separate,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--nodes" => {
                let v = it.next().ok_or("--nodes needs a number")?;
                args.nodes = v
                    .parse()
                    .map_err(|_| format!("--nodes: not a number: {v:?}"))?;
            }
            "--hello" => {
                let v = it.next().ok_or("--hello needs seconds")?;
                let secs: f64 = v
                    .parse()
                    .map_err(|_| format!("--hello: not a number: {v:?}"))?;
                if !(0.01..=600.0).contains(&secs) {
                    return Err(format!("--hello: {secs} s is out of range"));
                }
                args.hello = Duration::from_secs_f64(secs);
            }
            "--multicall" => args.launch = Launch::MulticallSymlink,
            "--keep" => args.keep = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match l3roamd_lab::bench::start("l3roamd-demo", USAGE, parse_args) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let started = Instant::now();
    let options = LabOptions {
        nodes: args.nodes,
        hello_interval: args.hello,
        keep_dir: args.keep || LabOptions::default().keep_dir,
        ..LabOptions::default()
    };
    let mut lab = match Lab::new(options) {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("l3roamd-demo: building the mesh failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = run(&mut lab, &args);
    if let Err(e) = &result {
        eprintln!("\nl3roamd-demo: FAILED: {e}\n\n{}", lab.report());
    }
    step("Tearing down (daemons, babeld, namespaces)");
    if let Err(e) = lab.shutdown() {
        eprintln!("l3roamd-demo: teardown: {e}");
        return ExitCode::FAILURE;
    }
    match result {
        Ok(()) => {
            println!(
                "\nDone in {:.1?}: the mesh ran, every daemon answered.",
                started.elapsed()
            );
            ExitCode::SUCCESS
        }
        Err(_) => ExitCode::FAILURE,
    }
}

fn step(text: &str) {
    println!("\n==> {text}");
}

fn run(lab: &mut Lab, args: &Args) -> l3roamd_lab::Result<()> {
    step(&format!(
        "Built a chain of {} nodes behind a gateway (lab {}, files in {})",
        lab.nodes().len(),
        lab.id(),
        lab.dir().display()
    ));
    for node in lab.members() {
        let addrs: Vec<String> = node
            .announced_addresses()
            .iter()
            .map(|a| a.to_string())
            .collect();
        println!(
            "    {:<4} netns {:<16} address {:<22} mesh links {}",
            node.name,
            node.netns.name(),
            addrs.join(" + "),
            node.mesh_interfaces.join(", ")
        );
    }

    let last = lab
        .nodes()
        .last()
        .map(|n| n.name.clone())
        .ok_or_else(|| l3roamd_lab::Error::Usage("no nodes".into()))?;
    let client = lab.add_client("c1", &last)?.clone();
    step(&format!(
        "Plugged client c1 ({}, MAC {}) into the client bridge of {last}",
        client.address, client.mac
    ));

    step(&format!(
        "Starting babeld on every namespace (hello interval {:?})",
        args.hello
    ));
    lab.start_babel()?;
    let took = lab.wait_routes_converged(Duration::from_secs(60))?;
    println!("    every node has a babel route to every other node after {took:.1?}");
    let far = node_address(lab.nodes().len());
    let ping = lab.ping("gw", far, 3, Duration::from_millis(200))?;
    println!("    ping gw → {far}: {ping}");
    let ping = lab.ping(&last, INTERNET_ADDRESS, 3, Duration::from_millis(200))?;
    println!("    ping {last} → {INTERNET_ADDRESS} (the internet): {ping}");

    step(&format!(
        "Starting the five l3roamd daemons on every node ({:?})",
        args.launch
    ));
    let t = Instant::now();
    lab.start_all_daemons(args.launch)?;
    println!(
        "    all sockets accept connections after {:.1?}",
        t.elapsed()
    );

    let mut problems = Vec::new();
    for node in lab.nodes() {
        step(&format!("Node {} ({})", node.name, node.address));
        for daemon in Daemon::ALL {
            let socket = node.socket(daemon);
            let services = list_services(&socket)?;
            let health = health_status(&socket)?;
            if health != "SERVING" || !services.iter().any(|s| s == daemon.service()) {
                problems.push(format!("{}/{daemon}", node.name));
            }
            println!(
                "    {:<13} {:<7} {}",
                daemon.binary(),
                health,
                services.join(", ")
            );
        }
        println!("    babel routes:");
        for route in node.routes()?.iter().filter(|r| r.is_babel_unicast()) {
            println!(
                "      {:<16} via {} dev {} metric {}",
                route.dst,
                route
                    .gateway
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "-".into()),
                route.dev.as_deref().unwrap_or("-"),
                route
                    .metric
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
    if !problems.is_empty() {
        return Err(l3roamd_lab::Error::Usage(format!(
            "not serving or not listing its own service: {}",
            problems.join(", ")
        )));
    }

    seek_and_roam(lab, &client.name, client.address, &last)
}

/// The host routes (`/128`) of `addr` on every node, one line each.
fn show_host_routes(lab: &Lab, addr: std::net::Ipv6Addr) -> l3roamd_lab::Result<()> {
    for node in lab.nodes() {
        let routes: Vec<String> = lab
            .host_routes(&node.name, addr)?
            .into_iter()
            .map(|r| {
                format!(
                    "proto {} dev {}{}",
                    r.protocol,
                    r.dev.as_deref().unwrap_or("-"),
                    r.gateway.map(|g| format!(" via {g}")).unwrap_or_default()
                )
            })
            .collect();
        println!(
            "      {:<4} {}",
            node.name,
            if routes.is_empty() {
                "(none)".to_string()
            } else {
                routes.join("; ")
            }
        );
    }
    Ok(())
}

/// The mission in two acts: reach a client nobody knows, then let it roam.
fn seek_and_roam(
    lab: &mut Lab,
    client: &str,
    addr: std::net::Ipv6Addr,
    home: &str,
) -> l3roamd_lab::Result<()> {
    step(&format!(
        "Pinging {client} ({addr}) from the gateway: no node knows it yet"
    ));
    println!("    host routes before:");
    show_host_routes(lab, addr)?;
    let ping = lab.ping("gw", addr, 10, Duration::from_millis(20))?;
    println!("    ping gw → {addr}: {ping}");
    if let Some(Some(first)) = ping.rtts.first() {
        println!(
            "    first reply after {first:.1?}: n1 held the packet, flooded a SEEK, {home} found \
             the client, installed the host route and told n1 directly (FOUND); the held \
             packets went to {home} encapsulated, before babel had spread the route"
        );
    }
    let t = Instant::now();
    l3roamd_lab::wait::until("the host route reached n1", Duration::from_secs(30), || {
        let n1 = &lab.nodes()[0];
        Ok(if n1.has_babel_route(addr)? {
            l3roamd_lab::wait::Check::Ready(())
        } else {
            l3roamd_lab::wait::Check::Pending("no babel route on n1 yet".into())
        })
    })?;
    println!(
        "    babel's own route for {addr} reached n1 {:.1?} later",
        t.elapsed()
    );
    println!("    host routes now:");
    show_host_routes(lab, addr)?;

    let Some(target) = lab.nodes().get(1).map(|n| n.name.clone()) else {
        return Ok(());
    };
    if target == home {
        return Ok(());
    }
    step(&format!(
        "Moving {client} from {home} to {target} while the gateway pings it every 10 ms"
    ));
    let gw = lab.netns("gw")?.path();
    let pinger = std::thread::spawn(move || {
        l3roamd_lab::ping::ping(
            &gw,
            addr,
            None,
            300,
            Duration::from_millis(10),
            Duration::from_secs(1),
        )
    });
    std::thread::sleep(Duration::from_secs(1));
    lab.move_client(client, &target)?;
    let result = pinger
        .join()
        .map_err(|_| l3roamd_lab::Error::Usage("pinger thread panicked".into()))??;
    let lost = result.rtts.iter().filter(|r| r.is_none()).count();
    println!("    {result}: {lost} of 300 lost across the roam");
    println!(
        "    {target} claimed the client (CLAIM to its node-client address), {home} let go \
         and answered with its addresses (INFO), {target} installed the host routes"
    );
    let t = Instant::now();
    // In the chain, nodes before the new one route towards higher numbers,
    // nodes after it towards lower ones.
    let names: Vec<String> = lab.nodes().iter().map(|n| n.name.clone()).collect();
    let t_index = names.iter().position(|n| *n == target).unwrap_or(0);
    l3roamd_lab::wait::until("the routes moved", Duration::from_secs(30), || {
        let want = addr.to_string();
        let mut pending = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let routes: Vec<_> = lab
                .node(name)?
                .routes()?
                .into_iter()
                .filter(|r| r.dst == want && r.kind == "unicast")
                .collect();
            let expected_dev = match i.cmp(&t_index) {
                std::cmp::Ordering::Equal => "br-client".to_string(),
                std::cmp::Ordering::Less => format!("m-{}", names[i + 1]),
                std::cmp::Ordering::Greater => format!("m-{}", names[i - 1]),
            };
            let ok =
                matches!(routes.as_slice(), [r] if r.dev.as_deref() == Some(expected_dev.as_str()));
            if !ok {
                pending.push(format!("{name}: {routes:?}"));
            }
        }
        Ok(if pending.is_empty() {
            l3roamd_lab::wait::Check::Ready(())
        } else {
            l3roamd_lab::wait::Check::Pending(pending.join("; "))
        })
    })?;
    println!(
        "    routes settled {:.1?} after the pings ended:",
        t.elapsed()
    );
    show_host_routes(lab, addr)?;
    Ok(())
}
