#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and crate tests, and the
# namespace lab (real babeld, real kernels routes, our real binaries).
# Run as root. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# client-db's optional sled backend must keep building too.
cargo clippy -p client-db --all-targets --features sled -- -D warnings

echo "== build the daemons (the lab runs the real binaries)"
cargo build --workspace --bins

echo "== router builds (aarch64, armv7: sizes; aarch64 tests under qemu)"
# Before the lab: tests/router_build.rs runs the aarch64 binary built here.
bash scripts/cross.sh

echo "== cargo test"
# Lab tests build 4-node meshes; two at a time is what 2 cores carry well.
cargo test --workspace -- --test-threads="${L3ROAMD_TEST_THREADS:-2}"

echo "== deploy scripts"
L3R_TEST_BIN="$PWD/target/debug/l3roamd" sh deploy/test-uci-to-toml.sh
