#!/usr/bin/env bash
# Router builds, proven on router CPUs (README, "Building for a router"):
#  1. the multicall binary, release profile, for aarch64 (stable rust-std,
#     linked by rust-lld: .cargo/config.toml) and armv7 (no rust-std for it
#     is fetchable here: nightly's -Z build-std, zig as the musl C runtime
#     and linker through cargo-zigbuild);
#  2. their stripped sizes, failing over the budget in the README's table;
#  3. the root-free crates' tests built for aarch64 and run under
#     qemu-user (an explicit runner: binfmt_misc may be unusable in CI).
# The lab test integration-tests/tests/router_build.rs then runs the aarch64
# binary of step 1 on one mesh node, so scripts/test.sh runs this first.
# Run as root: installs what it needs (install-deps.sh brings qemu).
set -euo pipefail
cd "$(dirname "$0")/.."

AARCH64=aarch64-unknown-linux-musl
ARMV7=armv7-unknown-linux-musleabihf
# Pinned: the nightly whose build-std these builds were proven with (the
# mirror CI reaches has it; its newest is fetched only if named).
NIGHTLY=${L3ROAMD_NIGHTLY:-nightly-2026-05-19}
RUNNER=qemu-aarch64-static

step() {
    echo "== cross: $* ($SECONDS s so far)"
}

# ----- what the builds need -----
if ! rustup target list --installed | grep -qx "$AARCH64"; then
    rustup target add "$AARCH64"
fi
if ! rustup run "$NIGHTLY" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$NIGHTLY" --profile minimal
fi
if ! rustup +"$NIGHTLY" component list --installed | grep -qx rust-src; then
    rustup +"$NIGHTLY" component add rust-src
fi
if ! command -v cargo-zigbuild >/dev/null 2>&1 || ! python3 -m ziglang version >/dev/null 2>&1; then
    echo "install-deps: pip install ziglang cargo-zigbuild"
    python3 -m pip install -q --root-user-action=ignore ziglang cargo-zigbuild
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
    hash -r
fi
if ! command -v "$RUNNER" >/dev/null 2>&1; then
    echo "cross: $RUNNER missing (scripts/install-deps.sh installs qemu-user-static)" >&2
    exit 1
fi

# The budget of `target` in KiB, from its row of the README's table
# "| `target` | how | size now | budget |".
budget_kib() {
    awk -F'|' -v t="\`$1\`" '$2 ~ t { gsub(/[^0-9]/, "", $5); print $5; exit }' README.md
}

check_size() {
    local target=$1 bin="target/$1/release/l3roamd" budget size
    budget=$(budget_kib "$target")
    if [ -z "$budget" ]; then
        echo "cross: no size budget for $target in README.md" >&2
        exit 1
    fi
    size=$(( ($(stat -c %s "$bin") + 1023) / 1024 ))
    echo "cross: $bin: $size KiB stripped (budget $budget KiB)"
    if [ "$size" -gt "$budget" ]; then
        echo "cross: $target is over its size budget: $size KiB > $budget KiB" >&2
        exit 1
    fi
}

# ----- 1 and 2: release builds and their sizes -----
step "release build for $AARCH64"
cargo build --release --locked --target "$AARCH64" -p l3roamd
check_size "$AARCH64"

step "release build for $ARMV7 (nightly build-std, zig)"
# Zig brings musl's crt objects and libunwind: rustc must not look for its
# own self-contained ones, which only a downloaded rust-std would have.
RUSTFLAGS="-C link-self-contained=no" \
    cargo +"$NIGHTLY" zigbuild --release --target "$ARMV7" -p l3roamd \
    -Z build-std=std,panic_abort
check_size "$ARMV7"

# ----- 3: the root-free tests under qemu -----
# Debug: the release profile's LTO per test binary costs more than the
# emulator saves. clientmon's tests/netns.rs needs root and starts the
# daemon binary itself (an aarch64 exec without binfmt_misc): its library
# tests run, that one does not; integration-tests is the (root) lab.
# The two client-db tests that open the intercom socket are skipped:
# qemu-user does not translate IPV6_MULTICAST_ALL (ENOPROTOOPT); so is
# prefixd's config_change test, which execs the daemon binary itself.
step "tests for $AARCH64 under $RUNNER"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=$RUNNER
cargo test --locked --target "$AARCH64" \
    -p l3roamd-types -p l3roamd-intercom -p l3roamd-net -p l3roamd-rpc \
    -p l3roamd-daemon -p l3roamd-compat -p l3roamd-core -p client-db -p ndproxy -p prefixd -p l3roamd \
    -- --test-threads=2 \
    --skip socket_opens_beside_another_on_the_same_port \
    --skip update_claim_forget_watch_and_restart \
    --skip a_changed_file_is_applied_whole_at_restart_only
cargo test --locked --target "$AARCH64" -p clientmon --lib --bins -- --test-threads=2

step "done"
