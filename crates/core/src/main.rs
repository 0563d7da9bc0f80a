//! The `l3roamd-core` binary: everything lives in the library, so the multicall
//! `l3roamd` binary can carry it too.

fn main() -> std::process::ExitCode {
    l3roamd_core::main(std::env::args_os().collect())
}
