//! Compiles `proto/` with protox (pure Rust, no protoc) and generates the
//! tonic services from the resulting descriptor set, which is also kept for
//! server reflection.

use std::path::PathBuf;

use prost::Message;

const FILES: &[&str] = &[
    "common",
    "core",
    "clientmon",
    "client_db",
    "ndproxy",
    "prefixd",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files: Vec<PathBuf> = FILES
        .iter()
        .map(|f| root.join(format!("l3roamd/v1/{f}.proto")))
        .collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("l3roamd_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
