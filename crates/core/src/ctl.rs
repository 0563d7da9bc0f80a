//! `l3roamd ctl`: core's runtime calls from the shell, so that an init
//! script (procd's `interface.*` trigger) can add and remove mesh
//! interfaces without grpcurl on the router.
//!
//! ```text
//! l3roamd ctl [-s SOCKET] add-meshif IF     # AddMeshInterface
//! l3roamd ctl [-s SOCKET] del-meshif IF     # RemoveMeshInterface
//! l3roamd ctl [-s SOCKET] get-meshifs       # ListMeshInterfaces
//! ```
//!
//! Each prints the list afterwards, one interface a line: `NAME present|absent
//! configured|runtime`. Exit status 0 on success, 1 when core cannot be
//! reached or refuses (its message on stderr), 2 for bad usage.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use l3roamd_rpc::pb;
use l3roamd_rpc::pb::core_client::CoreClient;

/// core's socket when `-s` is not given (`runtime.socket_dir` by default).
const DEFAULT_SOCKET: &str = "/var/run/l3roamd/core.sock";

const USAGE: &str = "Usage: l3roamd ctl [-s SOCKET] add-meshif IF | del-meshif IF | get-meshifs\n\
    SOCKET: core's socket [/var/run/l3roamd/core.sock]";

/// What to ask core.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Add(String),
    Remove(String),
    List,
}

/// The socket and the call from `args` (without the program name).
fn parse(args: &[String]) -> Result<(PathBuf, Call), String> {
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    let mut rest = args;
    while let [flag, tail @ ..] = rest {
        match flag.as_str() {
            "-s" | "--socket" => {
                let [path, tail @ ..] = tail else {
                    return Err(format!("{flag} needs a socket path"));
                };
                socket = PathBuf::from(path);
                rest = tail;
            }
            _ => break,
        }
    }
    let call = match rest {
        [cmd, name] if cmd == "add-meshif" => Call::Add(name.clone()),
        [cmd, name] if cmd == "del-meshif" => Call::Remove(name.clone()),
        [cmd] if cmd == "get-meshifs" => Call::List,
        [] => return Err("no command".to_string()),
        _ => return Err(format!("cannot understand {:?}", rest.join(" "))),
    };
    Ok((socket, call))
}

/// One line per interface.
fn render(list: &pb::MeshInterfaces) -> String {
    list.interfaces
        .iter()
        .map(|i| {
            format!(
                "{} {} {}\n",
                i.name,
                if i.present { "present" } else { "absent" },
                if i.configured {
                    "configured"
                } else {
                    "runtime"
                }
            )
        })
        .collect()
}

/// Runs `l3roamd ctl` with `args` (`args[0]` is the program name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = args
        .into_iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if matches!(args.first().map(String::as_str), Some("-h" | "--help")) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (socket, call) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("l3roamd ctl: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("l3roamd ctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ask(&socket, call)) {
        Ok(list) => {
            print!("{}", render(&list));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("l3roamd ctl: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn ask(socket: &std::path::Path, call: Call) -> Result<pb::MeshInterfaces, String> {
    let channel = l3roamd_rpc::connect(socket)
        .await
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    let mut core = CoreClient::new(channel);
    let answer = match call {
        Call::Add(name) => {
            core.add_mesh_interface(pb::MeshInterfaceRequest { name })
                .await
        }
        Call::Remove(name) => {
            core.remove_mesh_interface(pb::MeshInterfaceRequest { name })
                .await
        }
        Call::List => {
            core.list_mesh_interfaces(pb::ListMeshInterfacesRequest {})
                .await
        }
    };
    answer
        .map(tonic::Response::into_inner)
        .map_err(|status| status.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_the_three_calls_and_the_socket() {
        assert_eq!(
            parse(&args("add-meshif wg_1")).unwrap(),
            (PathBuf::from(DEFAULT_SOCKET), Call::Add("wg_1".into()))
        );
        assert_eq!(
            parse(&args("-s /tmp/c.sock del-meshif mesh0")).unwrap(),
            (PathBuf::from("/tmp/c.sock"), Call::Remove("mesh0".into()))
        );
        assert_eq!(parse(&args("get-meshifs")).unwrap().1, Call::List);
        for bad in ["", "-s", "add-meshif", "get-meshifs x", "frobnicate x"] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn renders_one_line_per_interface() {
        let list = pb::MeshInterfaces {
            interfaces: vec![
                pb::MeshInterface {
                    name: "mesh0".into(),
                    present: true,
                    configured: true,
                },
                pb::MeshInterface {
                    name: "wg_1".into(),
                    present: false,
                    configured: false,
                },
            ],
        };
        assert_eq!(
            render(&list),
            "mesh0 present configured\nwg_1 absent runtime\n"
        );
    }
}
