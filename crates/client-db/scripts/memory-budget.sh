#!/usr/bin/env bash
# The whole client-db daemon's memory with N clients, per store backend.
# Run as root (a network namespace keeps UDP 5523 away from the host):
#
#   cargo build --release -p client-db --features sled --bin client-db --example fill_clients
#   bash crates/client-db/scripts/memory-budget.sh [N] [BINARY] [FILL]
#
# For each backend (redb, memory, and sled when the binary has the feature)
# it starts the daemon, waits 1 s, Updates N clients (three addresses each)
# with examples/fill_clients.rs and prints one JSON line per backend with
# the daemon's VmRSS and Threads after the fill and a flush. The budget is
# 4096 kB RSS with 1,000 clients.
set -euo pipefail

N=${1:-1000}
BIN=$(readlink -f "${2:-/work/target-clientdb/release/client-db}")
FILL=$(readlink -f "${3:-/work/target-clientdb/release/examples/fill_clients}")
NS=cdb-mem-$$
WORK=$(mktemp -d /dev/shm/client-db-mem.XXXXXX)
PID=

cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip -6 addr add fdff::1/128 dev lo

for backend in redb memory sled; do
	rm -rf "$WORK/db" "$WORK/run"
	cat >"$WORK/l3roamd.toml" <<EOF
[runtime]
socket_dir = "$WORK/run"
[mesh]
node_address = "fdff::1"
[client_db]
db_path = "$WORK/db"
backend = "$backend"
EOF
	ip netns exec "$NS" "$BIN" -c "$WORK/l3roamd.toml" 2>"$WORK/log" &
	PID=$!
	for _ in $(seq 100); do [ -S "$WORK/run/client-db.sock" ] && break; sleep 0.05; done
	if [ ! -S "$WORK/run/client-db.sock" ]; then
		wait "$PID" 2>/dev/null || true
		PID=
		echo "{\"backend\":\"$backend\",\"error\":\"$(tail -1 "$WORK/log" | tr -d '"')\"}"
		continue
	fi
	sleep 1
	idle=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
	line=$("$FILL" "$WORK/run/client-db.sock" "$PID" "$N")
	db_kb=$( (du -sk "$WORK/db" 2>/dev/null || true) | cut -f1)
	echo "{\"backend\":\"$backend\",\"idle_rss_kb\":$idle,\"db_kb\":${db_kb:-0},${line#\{}"
	kill "$PID"
	wait "$PID" 2>/dev/null || true
	PID=
done
