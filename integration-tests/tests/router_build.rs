//! The router build end to end: in a chain gw - n1 - n2, node n2 runs
//! l3roamd-core and clientmon as the aarch64 musl multicall binary under
//! qemu-user while everything else stays native. The emulated core creates
//! its TUN device and routes the client prefix into it (netlink); then the
//! gateway pings a client behind n2 that the emulated core serves: the
//! emulated clientmon sees it (packet socket, BPF, rtnetlink), the emulated
//! core installs the host route (netlink), babel carries it and the pings
//! arrive (after n1's seek when they come first).
//!
//! Native on n2, because qemu-user 10.0 does not translate their socket
//! options (setsockopt returns ENOPROTOOPT under `qemu-aarch64 -strace`):
//! client-db and ndproxy (`IPV6_MULTICAST_ALL` on the intercom socket) and
//! prefixd (`PACKET_ADD_MEMBERSHIP`, level SOL_PACKET, on its client link:
//! the client would get no router advertisement). The emulator must be
//! qemu 10 (Debian 13's, scripts/install-deps.sh): Debian 12's 7.2 fails
//! route-netlink dumps.
//!
//! `scripts/cross.sh` builds the binary (release, the size that goes on
//! flash) before the suite's lab tests run; `L3ROAMD_AARCH64_BIN` names
//! another one, `L3ROAMD_AARCH64_RUNNER` another emulator. Without either,
//! the test fails under `CI=true` and skips elsewhere.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use l3roamd_lab::{
    cmd, require_root_and_tools, Daemon, Emulated, Lab, LabOptions, Launch, GATEWAY,
};

const BIN_ENV: &str = "L3ROAMD_AARCH64_BIN";
const RUNNER_ENV: &str = "L3ROAMD_AARCH64_RUNNER";
const RUNNER: &str = "qemu-aarch64-static";
/// The daemons of n2 that run under the emulator (see above for the others).
const EMULATED: [Daemon; 2] = [Daemon::Core, Daemon::ClientMon];

/// The aarch64 binary and its emulator, or what is missing.
fn aarch64_build() -> Result<Emulated, String> {
    let multicall = std::env::var_os(BIN_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/aarch64-unknown-linux-musl/release/l3roamd")
        });
    let runner = match std::env::var_os(RUNNER_ENV).filter(|v| !v.is_empty()) {
        Some(r) => PathBuf::from(r),
        None => cmd::find_tool(RUNNER)
            .ok_or_else(|| format!("`{RUNNER}` (Debian's qemu-user-static)"))?,
    };
    if !cmd::is_executable(&multicall) {
        return Err(format!(
            "the aarch64 binary {} (scripts/cross.sh builds it)",
            multicall.display()
        ));
    }
    Ok(Emulated {
        runner,
        multicall,
        daemons: EMULATED.to_vec(),
    })
}

/// The aarch64 build, or `None` after a SKIP line; panics under `CI=true`.
fn require_aarch64_build() -> Option<Emulated> {
    match aarch64_build() {
        Ok(e) => Some(e),
        Err(what) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("router build test prerequisite missing on CI: {what}")
        }
        Err(what) => {
            eprintln!("SKIP: router build test needs {what}");
            None
        }
    }
}

/// One of core's counters on `node`.
fn core_counter(lab: &Lab, node: &str, name: &str) -> u64 {
    lab.counter(node, Daemon::Core, name).expect("core status")
}

#[test]
fn aarch64_node_under_qemu_serves_and_seeks() {
    if !require_root_and_tools() {
        return;
    }
    let Some(emulated) = require_aarch64_build() else {
        return;
    };
    let runner = emulated.runner.clone();
    let mut lab = Lab::new(LabOptions::chain(2)).expect("build chain");
    let far = lab.add_client("c1", "n2").expect("c1").address;
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.emulate_node("n2", emulated).expect("emulate n2");
    if let Err(e) = lab.start_all_daemons(Launch::MulticallSubcommand) {
        panic!("{e}\n{}", lab.report());
    }
    // Really emulated: those daemons of n2 are the emulator running the
    // aarch64 binary, no native fallback.
    for daemon in EMULATED {
        let pid = lab.daemon_process("n2", daemon).expect("started").pid();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
        assert_eq!(
            exe.canonicalize().expect("exe"),
            runner.canonicalize().expect("runner"),
            "n2/{daemon} runs under the emulator"
        );
    }

    // The emulated core is up once its TUN device exists and the client
    // prefix is routed into it (netlink, route protocol 158): pinging before
    // that lost the first packets. Bounded: the emulator starts slowly.
    let n2 = lab.node("n2").expect("n2").clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let catch_all = n2
            .exec(&[
                "ip", "-6", "route", "show", "dev", "l3roam0", "proto", "158",
            ])
            .unwrap_or_default();
        if catch_all.contains("fddd:1::/64") {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "the emulated core never routed the client prefix into its TUN device\n{}",
                lab.report()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // Gateway to the client behind the emulated node: n1 seeks, n2 finds.
    assert!(lab.host_routes("n1", far).expect("routes").is_empty());
    let ping = lab
        .ping(GATEWAY, far, 10, Duration::from_millis(20))
        .expect("ping");
    if !ping.all_received() {
        panic!("gw -> c1 behind the emulated n2: {ping}\n{}", lab.report());
    }
    eprintln!(
        "gw -> c1 behind emulated n2: first reply after {:?}",
        ping.rtts[0].unwrap_or_default()
    );
    if let Err(e) = lab.wait_served_by(&[far], "n2", Duration::from_secs(30)) {
        panic!("{e}\n{}", lab.report());
    }

    assert_eq!(core_counter(&lab, "n2", "held_now"), 0);
}
