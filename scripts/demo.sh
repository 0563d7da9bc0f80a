#!/usr/bin/env bash
# The demo: builds l3roamd, sets up a small mesh in network namespaces with
# real babeld and our five daemons on every node, and shows what happens.
# Run as root. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --workspace --bins
exec ./target/debug/l3roamd-demo "$@"
