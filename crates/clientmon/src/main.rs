//! The `clientmon` binary: everything lives in the library, so the multicall
//! `l3roamd` binary can carry it too.

fn main() -> std::process::ExitCode {
    clientmon::main(std::env::args_os().collect())
}
