#!/usr/bin/env bash
# mdbus bridge, measured side by side in one run: a synthetic feed at RATE
# records/s, `bridge out` and `bridge in --as`, one `mdbus subscribe` on
# the replica (end to end: source publish -> bridge out -> Zenoh -> bridge
# in -> iceoryx2 -> subscriber) and one on the source feed (same host, no
# bridge), each for SECONDS; the CPU of each bridge over the same window
# from /proc/<pid>/stat (utime + stime), and split by thread
# (/proc/<pid>/task/*/stat, by thread name, digits folded): the bridge's
# own thread (`mdbus`; `mdbus-bridge-wal` answers gap fills), Zenoh's
# (rx-*, tx-*, net-*, acc-*, ...) and the replica WAL writer's
# (`mdbus-wal-preal`: the next segment's preallocation and pre-fault,
# `mdbus-wal-sync`: group commit).
#
#   scripts/bridge-measure.sh [loopback|veth] [RATE] [SECONDS]   (defaults loopback 100000 10)
#
# veth: the source (publisher, bridge out, its subscriber) in one network
# namespace, the receiver (bridge in, its subscriber) in another, joined by
# a veth pair (needs root; deleted on exit). Latency is receive time minus
# the source's ts_publish, so both ends read the same clock here. Uses the
# release binary (built first). Prints each subscriber's summary and the
# cores each bridge used. MDBUS_BIN=PATH runs that binary instead (no
# build): two builds measured alternately. OUT_ARGS="..." adds arguments
# to `bridge out` (e.g. OUT_ARGS="--linger-us 500").
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-loopback}
rate=${2:-100000}
seconds=${3:-10}
warmup=3

[[ -n "${MDBUS_BIN:-}" ]] || cargo build --release --quiet --bin mdbus
mdbus=${MDBUS_BIN:-$PWD/target/release/mdbus}
work=$(mktemp -d)
feed="bm$$"
ns_a="" ns_b=""
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$ns_a" ] && ip netns del "$ns_a" 2>/dev/null || true
    [ -n "$ns_b" ] && ip netns del "$ns_b" 2>/dev/null || true
    rm -rf "$work" "/dev/shm/mdbus.$feed.board" "/dev/shm/mdbus.${feed}G.board"
}
trap cleanup EXIT

case "$mode" in
loopback)
    on_a=() on_b=()
    endpoint="tcp/127.0.0.1:$((20000 + $$ % 20000))"
    ;;
veth)
    ns_a="mdbmA$$" ns_b="mdbmB$$"
    ip netns add "$ns_a"
    ip netns add "$ns_b"
    ip link add "vmA$$" type veth peer name "vmB$$"
    ip link set "vmA$$" netns "$ns_a"
    ip link set "vmB$$" netns "$ns_b"
    ip -n "$ns_a" addr add 10.198.0.1/24 dev "vmA$$"
    ip -n "$ns_b" addr add 10.198.0.2/24 dev "vmB$$"
    for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
    ip -n "$ns_a" link set "vmA$$" up
    ip -n "$ns_b" link set "vmB$$" up
    on_a=(ip netns exec "$ns_a") on_b=(ip netns exec "$ns_b")
    endpoint="tcp/10.198.0.1:7447"
    ;;
*)
    echo "mode: loopback or veth" >&2
    exit 2
    ;;
esac

"${on_b[@]}" "$mdbus" bridge in --feed "$feed" --connect "$endpoint" --as "${feed}G" \
    --wal "$work/dst" --status-dir "$work" 2>"$work/in.log" &
in_pid=$!
pids+=("$in_pid")
"${on_a[@]}" "$mdbus" publish --feed "$feed" --wal "$work/src" --synthetic --rate "$rate" \
    --duration "$((warmup + seconds + 5))" 2>"$work/publish.log" &
pids+=($!)
"${on_a[@]}" "$mdbus" bridge out --feed "$feed" --listen "$endpoint" --wal "$work/src" \
    --status-dir "$work" ${OUT_ARGS:-} 2>"$work/out.log" &
out_pid=$!
pids+=("$out_pid")
sleep "$warmup"

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# "tid name ticks" per thread of $1 (the name is field 2, in
# parentheses; thread names here have no spaces). A thread that ended
# within the window is not counted by thread (its time is in the process
# total); one started within it counts from 0.
thread_ticks() {
    for stat in /proc/"$1"/task/*/stat; do
        awk '{ gsub(/[()]/, "", $2); print $1, $2, $14 + $15 }' "$stat" 2>/dev/null || true
    done
}
hz=$(getconf CLK_TCK)
out_0=$(ticks "$out_pid") in_0=$(ticks "$in_pid") t_0=$(date +%s.%N)
# "records messages" bridge out has put so far (its status file, rewritten
# once a second): records per Zenoh message over the window, which sets
# how often bridge in wakes up.
out_counts() {
    "$mdbus" bridge status --feed "$feed" --status-dir "$work" --json |
        python3 -c 'import json, sys; o = json.load(sys.stdin)["out"]; print(o["records"], o["messages"])'
}
out_msgs_0=$(out_counts)
thread_ticks "$out_pid" >"$work/out-threads-0"
thread_ticks "$in_pid" >"$work/in-threads-0"
"${on_b[@]}" "$mdbus" subscribe --feed "${feed}G" --duration "$seconds" --quiet >"$work/sub-bridge.txt" 2>&1 &
sub_bridge=$!
"${on_a[@]}" "$mdbus" subscribe --feed "$feed" --duration "$seconds" --quiet >"$work/sub-local.txt" 2>&1 &
sub_local=$!
pids+=("$sub_bridge" "$sub_local")
wait "$sub_bridge" "$sub_local"
out_1=$(ticks "$out_pid") in_1=$(ticks "$in_pid") t_1=$(date +%s.%N)
out_msgs_1=$(out_counts)
thread_ticks "$out_pid" >"$work/out-threads-1"
thread_ticks "$in_pid" >"$work/in-threads-1"

echo "== $mode, $rate records/s, $seconds s, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "-- across the bridge (subscriber on ${feed}G):"
cat "$work/sub-bridge.txt"
echo "-- same host (subscriber on $feed):"
cat "$work/sub-local.txt"
awk -v a="$out_0" -v b="$out_1" -v c="$in_0" -v d="$in_1" -v t0="$t_0" -v t1="$t_1" -v hz="$hz" 'BEGIN {
    s = t1 - t0
    printf "-- CPU over %.1f s: bridge out %.3f cores, bridge in %.3f cores\n", s, (b - a) / hz / s, (d - c) / hz / s
}'
# Cores per group of threads over the window, threads matched by tid.
# $2: the process's ticks over the window; what the listed threads do not
# account for ran in threads that ended within it (the WAL's preallocation
# thread, one per segment).
by_thread() {
    awk -v s="$(echo "$t_1 - $t_0" | bc)" -v hz="$hz" -v total="$2" '
        NR == FNR { start[$1] = $3; next }
        {
            group = $2
            sub(/[0-9]+$/, "*", group)
            cores[group] += ($3 - start[$1]) / hz / s
            listed += $3 - start[$1]
        }
        END {
            for (g in cores) if (cores[g] >= 0.0005) printf "   %s %.3f cores\n", g, cores[g]
            printf "   (threads ended within the window) %.3f cores\n", (total - listed) / hz / s
        }' "$work/$1-threads-0" "$work/$1-threads-1" | sort
}
echo "$out_msgs_0 $out_msgs_1" | awk '{ m = $4 - $2; printf "-- bridge out put %d records in %d Zenoh messages over the window: %.1f records per message, %.0f messages/s\n", $3 - $1, m, m ? ($3 - $1) / m : 0, m / ('"$t_1 - $t_0"') }'
echo "-- bridge out by thread:"
by_thread out "$((out_1 - out_0))"
echo "-- bridge in by thread:"
by_thread in "$((in_1 - in_0))"
echo "-- status of bridge in at the end:"
"$mdbus" bridge status --feed "${feed}G" --status-dir "$work" || true
