#!/usr/bin/env bash
# mdbus soak: a publisher at a steady rate over many instruments with WAL
# retention, a replaying subscriber and the WebSocket gateway attached, for
# a while; samples the WAL's size and each process's resident memory every
# few seconds and checks that they level off under their budgets.
#
#   scripts/soak.sh [SECONDS] [RATE] [INSTRUMENTS]     (defaults 600 100000 1000)
#
# Budgets checked at every sample: the WAL folder at most --retain-bytes
# plus three segments (the live one may be new, with the next one
# preallocated beside it, while the pass that follows each roll runs); the
# subscriber's anonymous resident memory (heap: L1, L2, queues) under 384
# MiB (its L2 budget is 256 MiB), the gateway's under 128 MiB (it keeps no
# L2). Prints the samples (also in target/soak.tsv), the growth over the
# last third of the run, and exits 1 if a budget is broken. Uses the
# release binary (built first).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
rate=${2:-100000}
instruments=${3:-1000}
segment=$((4 << 20))
retain=$((64 << 20))
every=5

cargo build --release --quiet --bin mdbus
mdbus=target/release/mdbus
work=$(mktemp -d)
feed="soak$$"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work" "/dev/shm/mdbus.$feed.board"
}
trap cleanup EXIT

"$mdbus" publish --feed "$feed" --wal "$work/wal" --synthetic --instruments "$instruments" \
    --rate "$rate" --duration "$((seconds + 30))" --segment-bytes "$segment" \
    --retain-bytes "$retain" >"$work/publish.log" 2>&1 &
pids+=($!)
publisher=$!
"$mdbus" subscribe --feed "$feed" --replay --quiet --wait block --duration "$((seconds + 20))" \
    >"$work/subscribe.log" 2>&1 &
pids+=($!)
subscriber=$!
"$mdbus" gateway --feed "$feed" --listen 127.0.0.1:0 --duration "$((seconds + 20))" \
    >"$work/gateway.log" 2>&1 &
pids+=($!)
gateway=$!

# Anonymous resident memory (the heap: L1, L2, queues), not the shared
# memory and file pages a process maps (iceoryx2 segments, the board, the
# WAL it reads), which the kernel shares and can drop.
rss_mib() { awk '/^RssAnon/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
wal_mib() { du -sm --apparent-size "$work/wal/$feed" 2>/dev/null | cut -f1 || echo 0; }

mkdir -p target
out=target/soak.tsv
printf 't_s\twal_mib\tpublisher_anon_mib\tsubscriber_anon_mib\tgateway_anon_mib\n' >"$out"
start=$(date +%s)
while :; do
    now=$(($(date +%s) - start))
    ((now > seconds)) && break
    for pid in "$publisher" "$subscriber" "$gateway"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "FAIL: process $pid ended early" >&2
            tail -5 "$work"/*.log >&2
            exit 1
        fi
    done
    printf '%s\t%s\t%s\t%s\t%s\n' "$now" "$(wal_mib)" "$(rss_mib "$publisher")" \
        "$(rss_mib "$subscriber")" "$(rss_mib "$gateway")" >>"$out"
    sleep "$every"
done
awk -F"\t" '{ printf "%-6s %-8s %-20s %-20s %-18s\n", $1, $2, $3, $4, $5 }' "$out"

# The checks, on the samples.
awk -v seconds="$seconds" -v wal_max=$(((retain + 3 * segment) >> 20)) '
    NR == 1 { next }
    { t = $1; wal = $2; sub_rss = $4; gw = $5 }
    wal > wal_max { printf "FAIL: WAL %s MiB at %s s, budget %s MiB\n", wal, t, wal_max; bad = 1 }
    sub_rss > 384 { printf "FAIL: subscriber %s MiB at %s s, budget 384 MiB\n", sub_rss, t; bad = 1 }
    gw > 128 { printf "FAIL: gateway %s MiB at %s s, budget 128 MiB\n", gw, t; bad = 1 }
    t <= 2 * seconds / 3 { sub_at = sub_rss; gw_at = gw; wal_at = wal }
    END {
        printf "last third: WAL %+d MiB, subscriber %+.1f MiB, gateway %+.1f MiB\n", wal - wal_at, sub_rss - sub_at, gw - gw_at
        exit bad
    }
' "$out"
echo "soak passed: $seconds s at $rate records/s over $instruments instruments (samples in $out)"
