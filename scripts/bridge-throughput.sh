#!/usr/bin/env bash
# mdbus bridge at rate, without subscribers: a synthetic feed published at
# RATE records/s for SECONDS (no board), `bridge out` and `bridge in --as`
# on loopback. Prints the replica's seq and records/s once a second (from
# `mdbus bridge status`), the publisher's summary, and how long after the
# publisher started the replica held its last seq (to the status files'
# 1 s granularity), then both bridges' status.
#
#   scripts/bridge-throughput.sh [RATE] [SECONDS]   (defaults 1000000 10)
#
# Uses the release binary (built first); MDBUS_BIN=PATH runs that one.
set -euo pipefail
cd "$(dirname "$0")/.."

rate=${1:-1000000}
seconds=${2:-10}
[[ -n "${MDBUS_BIN:-}" ]] || cargo build --release --quiet --bin mdbus
mdbus=${MDBUS_BIN:-$PWD/target/release/mdbus}
work=$(mktemp -d)
feed="bt$$"
endpoint="tcp/127.0.0.1:$((20000 + $$ % 20000))"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The replica's last seq, or nothing while its status file is not there.
replica_seq() {
    "$mdbus" bridge status --feed "${feed}G" --status-dir "$work" --json 2>/dev/null |
        python3 -c 'import json, sys; i = json.load(sys.stdin)["in"]; print(i["last_seq"], round(i["records_per_sec"]))' \
            2>/dev/null || true
}
elapsed() { echo "$(date +%s.%N) - $t0" | bc; }

"$mdbus" bridge in --feed "$feed" --connect "$endpoint" --as "${feed}G" --wal "$work/dst" \
    --status-dir "$work" 2>"$work/in.log" &
pids+=($!)
"$mdbus" bridge out --feed "$feed" --listen "$endpoint" --wal "$work/src" --status-dir "$work" \
    2>"$work/out.log" &
pids+=($!)
sleep 1
t0=$(date +%s.%N)
"$mdbus" publish --feed "$feed" --wal "$work/src" --synthetic --rate "$rate" --duration "$seconds" \
    --no-board >"$work/publish.log" 2>&1 &
publisher=$!
pids+=("$publisher")
echo "seconds  replica-last-seq  replica-records/s"
while kill -0 "$publisher" 2>/dev/null; do
    printf '%6.2f  %s\n' "$(elapsed)" "$(replica_seq)"
    sleep 1
done
wait "$publisher"
grep published "$work/publish.log"
last=$(grep -o 'seq 1\.\.=[0-9]*' "$work/publish.log" | tail -n 1 | cut -d= -f2)
seq=0
for _ in $(seq 1 240); do
    read -r seq _ <<<"$(replica_seq) 0"
    [[ -n "$seq" && "$seq" -ge "$last" ]] && break
    sleep 0.25
done
printf 'replica at seq %s of %s, %.2f s after the publisher started\n' "$seq" "$last" "$(elapsed)"
"$mdbus" bridge status --feed "$feed" --status-dir "$work" || true
"$mdbus" bridge status --feed "${feed}G" --status-dir "$work" || true
