//! `l3roamd`: the five daemons in one binary, so a router carries one copy
//! of tokio, tonic and hyper instead of five.
//!
//! Like busybox it dispatches on the name it was called by (install it with
//! links named `l3roamd-core`, `clientmon`, `client-db`, `ndproxy`,
//! `prefixd`), or on its first argument: `l3roamd ndproxy -c FILE`.
//! `l3roamd ctl` (or a link `l3roamd-ctl`) is core's runtime calls for
//! init scripts: `l3roamd ctl add-meshif IF`.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

type Main = fn(Vec<OsString>) -> ExitCode;

/// The daemons this binary carries, by the names they answer to.
const APPLETS: &[(&str, &str, Main)] = &[
    ("l3roamd-core", "core", l3roamd_core::main),
    ("clientmon", "clientmon", clientmon::main),
    ("client-db", "client-db", client_db::main),
    ("ndproxy", "ndproxy", ndproxy::main),
    ("prefixd", "prefixd", prefixd::main),
    ("l3roamd-ctl", "ctl", l3roamd_core::ctl::main),
];

fn find(name: &str) -> Option<Main> {
    APPLETS
        .iter()
        .find(|(full, short, _)| name == *full || name == *short)
        .map(|(_, _, main)| *main)
}

fn usage() -> String {
    let names: Vec<&str> = APPLETS
        .iter()
        .filter(|(_, short, _)| *short != "ctl")
        .map(|(full, _, _)| *full)
        .collect();
    format!(
        "l3roamd {}: seamless client roaming for layer-3 mesh networks\n\n\
         Usage: l3roamd <DAEMON> [OPTIONS]   (or call it by a daemon's name through a link)\n\n\
         Daemons: {}\n\
         Runtime calls to core: l3roamd ctl --help\n\
         Run `l3roamd <DAEMON> --help` for a daemon's options.",
        env!("CARGO_PKG_VERSION"),
        names.join(", ")
    )
}

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let called_as = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("l3roamd")
        .to_string();
    if let Some(main) = find(&called_as) {
        return main(args);
    }
    // Called as `l3roamd`: the first argument names the daemon.
    let Some(first) = args.get(1).and_then(|a| a.to_str()).map(str::to_string) else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    match first.as_str() {
        "-h" | "--help" | "help" => {
            println!("{}", usage());
            ExitCode::SUCCESS
        }
        "-V" | "--version" => {
            println!("l3roamd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        name => match find(name) {
            Some(main) => {
                // The daemon sees itself called by its full name.
                args.remove(0);
                main(args)
            }
            None => {
                eprintln!("l3roamd: unknown daemon {name:?}\n\n{}", usage());
                ExitCode::from(2)
            }
        },
    }
}
