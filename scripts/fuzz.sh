#!/usr/bin/env bash
# Fuzzes every decoder of outside data (fuzz/, cargo-fuzz and libFuzzer),
# one target after the other, and prints per target the executions done,
# the result and the time. Not part of scripts/test.sh: it takes minutes
# per target and needs the nightly toolchain.
#
#   scripts/fuzz.sh [RUNS] [TARGET...]   RUNS executions each (default 10000000)
#   FUZZ_TIME=60 scripts/fuzz.sh         60 seconds each instead
#
# Environment: FUZZ_RUNS (RUNS), FUZZ_TIME (seconds, instead of a count),
# FUZZ_SANITIZER (default none: safe Rust needs no ASan; panics, overflow
# checks and debug assertions are on either way), FUZZ_TIMEOUT (seconds one
# input may take before it counts as a hang, default 10).
#
# One fuzzer process at a time. New inputs go to fuzz/work/<target> (not
# committed); fuzz/corpus/<target> is the committed seed corpus. A crash
# leaves its input in fuzz/artifacts/<target>/ and the script exits 1 after
# running the rest; minimise it with
#   cd fuzz && cargo +nightly fuzz tmin -s none -a <target> artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

runs="${1:-${FUZZ_RUNS:-10000000}}"
shift || true
sanitizer="${FUZZ_SANITIZER:-none}"
timeout="${FUZZ_TIMEOUT:-10}"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

if [ -n "${FUZZ_TIME:-}" ]; then
    limit=(-max_total_time="$FUZZ_TIME")
else
    limit=(-runs="$runs")
fi

# -a: debug assertions and overflow checks, as in the test builds.
flags=(-s "$sanitizer" -a)
cargo +nightly fuzz build "${flags[@]}"

failed=0
summary=()
for target in "${targets[@]}"; do
    mkdir -p "work/$target" "corpus/$target"
    log="work/$target.log"
    start=$(date +%s)
    status=0
    cargo +nightly fuzz run "${flags[@]}" "$target" "work/$target" "corpus/$target" -- \
        "${limit[@]}" -timeout="$timeout" -print_final_stats=1 >"$log" 2>&1 || status=$?
    seconds=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$status" -eq 0 ]; then
        result=clean
    else
        result="FAILED (exit $status, see fuzz/$log)"
        failed=1
        grep -E '^(thread .* panicked|==[0-9]+== ERROR|SUMMARY|artifact_prefix|Test unit written)' "$log" >&2 || true
    fi
    line=$(printf '%-22s %12s execs %6ss  %s' "$target" "${execs:-?}" "$seconds" "$result")
    echo "$line"
    summary+=("$line")
done

echo
echo "== fuzz summary (${limit[*]})"
printf '%s\n' "${summary[@]}"
exit "$failed"
