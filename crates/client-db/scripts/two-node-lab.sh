#!/usr/bin/env bash
# Two client-db daemons in two network namespaces joined by a veth (the mesh
# link), exchanging CLAIM / INFO / ACK for real. Run as root:
#
#   bash crates/client-db/scripts/two-node-lab.sh [path/to/client-db]
#
# Node A (fdff::4) serves client 02:00:00:00:01:00 and holds its node-client
# address fec0::ff:fe00:100 (as core will); node B (fdff::2) claims it. The
# node addresses are those of vectors 7-9 of the C capture, so the packets
# on the wire must equal those vectors byte for byte, except the nonce (and
# the INFO has no PLAT segment). Then B's client-db is restarted and must
# still know the client. Finally a stand-in for ndproxy (a socket bound to
# [ff02::5523%IF]:5523) checks that multicast goes to it and unicast to
# client-db, never both.
#
# Prints PASS/FAIL lines and "N passed, N failed"; exits non-zero on any
# failure. Everything it creates (namespaces, processes, files) is removed
# on exit, also after a failure.
set -euo pipefail

BIN=${1:-/work/target-clientdb/debug/client-db}
BIN=$(readlink -f "$BIN")
GRPCURL=${GRPCURL:-grpcurl}
ID=$$
NSA=cdb-a-$ID
NSB=cdb-b-$ID
VA=cdba$ID
VB=cdbb$ID
WORK=$(mktemp -d /tmp/client-db-lab.XXXXXX)
PIDS=()
passed=0
failed=0

cleanup() {
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	ip netns del "$NSA" 2>/dev/null || true
	ip netns del "$NSB" 2>/dev/null || true
	if [ -n "${KEEP:-}" ]; then
		echo "kept $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/    /'; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

b64() { python3 -c 'import base64,ipaddress,sys; print(base64.b64encode(ipaddress.IPv6Address(sys.argv[1]).packed).decode())' "$1"; }
MAC_B64=AgAAAAEA # 02:00:00:00:01:00

# ===== the two nodes =====

ip netns add "$NSA"
ip netns add "$NSB"
ip link add "$VA" type veth peer name "$VB"
ip link set "$VA" netns "$NSA"
ip link set "$VB" netns "$NSB"
ina() { ip netns exec "$NSA" "$@"; }
inb() { ip netns exec "$NSB" "$@"; }
for ns in "$NSA" "$NSB"; do
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	ip netns exec "$ns" ip link set lo up
done
ina ip link set "$VA" up
inb ip link set "$VB" up
ina ip -6 addr add fe80::a/64 dev "$VA" nodad
inb ip -6 addr add fe80::b/64 dev "$VB" nodad
ina ip -6 addr add fdff::4/128 dev lo
inb ip -6 addr add fdff::2/128 dev lo
# What babel would install: each node address, and the node-client address
# A announces because it serves the client.
ina ip -6 route add fdff::2/128 via fe80::b dev "$VA"
ina ip -6 route add fdff::3/128 via fe80::b dev "$VA" # a third node, behind B
inb ip -6 route add fdff::4/128 via fe80::a dev "$VB"
ina ip -6 addr add fec0::ff:fe00:100/128 dev lo
inb ip -6 route add fec0::ff:fe00:100/128 via fe80::a dev "$VB"

config() { # node-letter node-address mesh-interface
	mkdir -p "$WORK/$1"
	cat >"$WORK/$1/l3roamd.toml" <<EOF
[runtime]
socket_dir = "$WORK/$1/run"
log_level = "trace"
[mesh]
node_address = "$2"
mesh_interfaces = ["$3"]
[client_db]
db_path = "$WORK/$1/db"
flush_interval_ms = 100
EOF
}
config a fdff::4 "$VA"
config b fdff::2 "$VB"
SOCKA=$WORK/a/run/client-db.sock
SOCKB=$WORK/b/run/client-db.sock

start() { # node-letter netns
	ip netns exec "$2" "$BIN" -c "$WORK/$1/l3roamd.toml" >>"$WORK/$1/log" 2>&1 &
	PIDS+=($!)
	eval "PID_$1=$!"
	for _ in $(seq 100); do [ -S "$WORK/$1/run/client-db.sock" ] && return 0; sleep 0.05; done
	echo "client-db $1 did not start:"; cat "$WORK/$1/log"; return 1
}
call() { # socket method json
	"$GRPCURL" -plaintext -unix -authority localhost -d "$3" "$1" "l3roamd.v1.ClientDb/$2"
}
watch() { # node-letter socket
	"$GRPCURL" -plaintext -unix -authority localhost -d '{}' "$2" l3roamd.v1.ClientDb/Watch >"$WORK/$1/watch" 2>&1 &
	PIDS+=($!)
}

start a "$NSA"
start b "$NSB"
watch a "$SOCKA"
watch b "$SOCKB"
inb tcpdump -i "$VB" -U -w "$WORK/cap.pcap" udp port 5523 >/dev/null 2>&1 &
PIDS+=($!)
TCPDUMP=$!
sleep 1

# ===== A serves the client; B claims it =====

call "$SOCKA" Update "{\"mac\":{\"octets\":\"$MAC_B64\"},\"addresses\":[{\"octets\":\"$(b64 fddd:1::100)\"},{\"octets\":\"$(b64 fe80::ff:fe00:100)\"}]}" >"$WORK/update.json"
check "Update on A answers the record" grep -q '"served_by"\|"servedBy"' "$WORK/update.json"
call "$SOCKB" Claim "{\"mac\":{\"octets\":\"$MAC_B64\"}}" >"$WORK/claim.json"
check "Claim on B answers" grep -q record "$WORK/claim.json"
sleep 1

NODE_A_B64=$(b64 fdff::4)
NODE_B_B64=$(b64 fdff::2)
tr -d ' \n' <"$WORK/b/watch" >"$WORK/b/watch.flat"
tr -d ' \n' <"$WORK/a/watch" >"$WORK/a/watch.flat"
check "B's watch: snapshot done, then claim_done answered by A" \
	grep -q "\"snapshotDone\":{}.*\"claimDone\":{\"mac\":{\"octets\":\"$MAC_B64\"},\"answered\":true,\"answeredBy\":{\"octets\":\"$NODE_A_B64\"}}" "$WORK/b/watch.flat"
check "B's watch: updated with A's address before claim_done" \
	grep -q "\"updated\":{\"mac\":{\"octets\":\"$MAC_B64\"},\"addresses\":\[{\"address\":{\"octets\":\"$(b64 fddd:1::100)\"}.*\"claimDone\"" "$WORK/b/watch.flat"
check "A's watch: release claimed by B" \
	grep -q "\"release\":{\"mac\":{\"octets\":\"$MAC_B64\"},\"claimedBy\":{\"octets\":\"$NODE_B_B64\"}}" "$WORK/a/watch.flat"
call "$SOCKB" GetClient "{\"mac\":{\"octets\":\"$MAC_B64\"}}" >"$WORK/get-b.json"
check "GetClient on B: A's addresses" grep -q "$(b64 fddd:1::100)" "$WORK/get-b.json"

kill "$TCPDUMP"
wait "$TCPDUMP" 2>/dev/null || true

# ===== the bytes on the wire =====

python3 - "$WORK/cap.pcap" >"$WORK/wire.txt" <<'EOF'
import struct, sys, ipaddress
data = open(sys.argv[1], "rb").read()
pos = 24
while pos + 16 <= len(data):
    _, _, incl, _ = struct.unpack("<IIII", data[pos:pos + 16])
    frame = data[pos + 16:pos + 16 + incl]
    pos += 16 + incl
    ip = frame[14:]
    if len(ip) < 48 or ip[6] != 17:
        continue
    src, dst = ipaddress.IPv6Address(ip[8:24]), ipaddress.IPv6Address(ip[24:40])
    sport, dport = struct.unpack(">HH", ip[40:44])
    payload = ip[48:]
    masked = payload[:4] + b"\0\0\0\0" + payload[8:]
    print(src, sport, dst, dport, ip[7], masked.hex(), payload.hex())
EOF
cat "$WORK/wire.txt"
mask() { echo "${1:0:8}00000000${1:16}"; }
V7=000101000000560ffdff00000000000000000000000000020008020000000100
V8_NO_PLAT=000102000000556bfdff0000000000000000000000000004""0128020000000100fddd0001000000000000000000000100fe80000000000000000000fffe000100
V9=000103000000560ffdff00000000000000000000000000020008020000000100
check "CLAIM fdff::2:5523 -> fec0::ff:fe00:100:5523 is vector 7 (nonce aside)" \
	grep -q "^fdff::2 5523 fec0::ff:fe00:100 5523 [0-9]* $(mask $V7) " "$WORK/wire.txt"
check "INFO fdff::4:5523 -> fdff::2:5523 is vector 8 without PLAT (nonce aside)" \
	grep -q "^fdff::4 5523 fdff::2 5523 [0-9]* $(mask $V8_NO_PLAT) " "$WORK/wire.txt"
check "ACK fdff::2:5523 -> fdff::4:5523 is vector 9 (nonce aside)" \
	grep -q "^fdff::2 5523 fdff::4 5523 [0-9]* $(mask $V9) " "$WORK/wire.txt"
check "exactly one CLAIM, one INFO, one ACK (no retransmission needed)" \
	test "$(wc -l <"$WORK/wire.txt")" -eq 3

# ===== restart B: the record survives =====

kill "$PID_b"
wait "$PID_b" 2>/dev/null || true
check "B stopped cleanly and removed its socket" test ! -e "$SOCKB"
start b "$NSB"
call "$SOCKB" GetClient "{\"mac\":{\"octets\":\"$MAC_B64\"}}" >"$WORK/get-b2.json" 2>&1 || true
check "after a restart B still has the record with A's addresses" grep -q "$(b64 fddd:1::100)" "$WORK/get-b2.json"
check "B's log says the records were loaded" grep -q 'stored=1 kept=1' "$WORK/b/log"

# ===== multicast goes to ndproxy, unicast to client-db =====

cat >"$WORK/standin.py" <<'EOF'
import socket, struct, sys
ifname, out = sys.argv[1], sys.argv[2]
idx = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("ff02::5523", 5523, 0, idx))
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
             socket.inet_pton(socket.AF_INET6, "ff02::5523") + struct.pack("@I", idx))
s.settimeout(3)
with open(out, "w") as f:
    try:
        while True:
            data, addr = s.recvfrom(2048)
            f.write(f"{addr[0]} {data.hex()}\n")
            f.flush()
    except socket.timeout:
        pass
EOF
ina python3 "$WORK/standin.py" "$VA" "$WORK/standin.txt" &
STANDIN=$!
PIDS+=($STANDIN)
sleep 0.5
cat >"$WORK/send.py" <<'EOF'
import socket, sys
ifname, dst, hexdata = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
s.bind(("fdff::2", 0))
s.sendto(bytes.fromhex(hexdata), (dst, 5523, 0, socket.if_nametoindex(ifname)))
EOF
SEEK=00ff0000000055d1fdff000000000000000000000000000200140000fddd0001000000000000000000000199
# A CLAIM from a third node (fdff::3) by unicast to A's node-client address.
CLAIM3=0001010000001234fdff00000000000000000000000000030008020000000100
lines_before=$(grep -c '"datagram"\|datagram' "$WORK/a/log" || true)
inb python3 "$WORK/send.py" "$VB" ff02::5523 "$SEEK"
inb python3 "$WORK/send.py" "$VB" fec0::ff:fe00:100 "$CLAIM3"
sleep 0.5
wait "$STANDIN" 2>/dev/null || true
check "the ndproxy stand-in got the multicast SEEK" grep -q "${SEEK}" "$WORK/standin.txt"
check "the ndproxy stand-in did not get the unicast CLAIM" bash -c "! grep -q '$CLAIM3' '$WORK/standin.txt'"
datagrams=$(grep -c 'datagram' "$WORK/a/log" || true)
check "client-db on A got the unicast CLAIM and not the SEEK (one more datagram)" \
	test "$((datagrams - lines_before))" -eq 1
check "A answered fdff::3 (the CLAIM was read)" grep -q 'answering CLAIM with INFO.*claimer=fdff::3' "$WORK/a/log"

# ===== a claim nobody answers =====

mkdir -p "$WORK/b2"
watch b2 "$SOCKB" # the first watch ended with B's restart
sleep 0.5
call "$SOCKB" Claim '{"mac":{"octets":"AgAAAAIA"}}' >/dev/null # 02:00:00:00:02:00
sleep 5.5 # 1 + 15 CLAIMs 300 ms apart, given up 300 ms after the last
tr -d ' \n' <"$WORK/b2/watch" >"$WORK/b2/watch.flat"
check "an unanswered claim ends with claim_done answered false" \
	grep -q '"claimDone":{"mac":{"octets":"AgAAAAIA"}}' "$WORK/b2/watch.flat"

# ===== no errors logged =====
check "no ERROR or WARN in the logs" bash -c "! grep -h ' ERROR \\| WARN ' '$WORK/a/log' '$WORK/b/log'"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
