#!/usr/bin/env bash
# mdbus bridge, measured side by side in one run: a synthetic feed at RATE
# records/s, `bridge out` and `bridge in --as`, one `mdbus subscribe` on
# the replica (end to end: source publish -> bridge out -> Zenoh -> bridge
# in -> iceoryx2 -> subscriber) and one on the source feed (same host, no
# bridge), each for SECONDS; the CPU of each bridge over the same window
# from /proc/<pid>/stat (utime + stime).
#
#   scripts/bridge-measure.sh [loopback|veth] [RATE] [SECONDS]   (defaults loopback 100000 10)
#
# veth: the source (publisher, bridge out, its subscriber) in one network
# namespace, the receiver (bridge in, its subscriber) in another, joined by
# a veth pair (needs root; deleted on exit). Latency is receive time minus
# the source's ts_publish, so both ends read the same clock here. Uses the
# release binary (built first). Prints each subscriber's summary and the
# cores each bridge used.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-loopback}
rate=${2:-100000}
seconds=${3:-10}
warmup=3

cargo build --release --quiet --bin mdbus
mdbus=$PWD/target/release/mdbus
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
    --status-dir "$work" 2>"$work/out.log" &
out_pid=$!
pids+=("$out_pid")
sleep "$warmup"

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
out_0=$(ticks "$out_pid") in_0=$(ticks "$in_pid") t_0=$(date +%s.%N)
"${on_b[@]}" "$mdbus" subscribe --feed "${feed}G" --duration "$seconds" --quiet >"$work/sub-bridge.txt" 2>&1 &
sub_bridge=$!
"${on_a[@]}" "$mdbus" subscribe --feed "$feed" --duration "$seconds" --quiet >"$work/sub-local.txt" 2>&1 &
sub_local=$!
pids+=("$sub_bridge" "$sub_local")
wait "$sub_bridge" "$sub_local"
out_1=$(ticks "$out_pid") in_1=$(ticks "$in_pid") t_1=$(date +%s.%N)

echo "== $mode, $rate records/s, $seconds s, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "-- across the bridge (subscriber on ${feed}G):"
cat "$work/sub-bridge.txt"
echo "-- same host (subscriber on $feed):"
cat "$work/sub-local.txt"
awk -v a="$out_0" -v b="$out_1" -v c="$in_0" -v d="$in_1" -v t0="$t_0" -v t1="$t_1" -v hz="$hz" 'BEGIN {
    s = t1 - t0
    printf "-- CPU over %.1f s: bridge out %.3f cores, bridge in %.3f cores\n", s, (b - a) / hz / s, (d - c) / hz / s
}'
echo "-- status of bridge in at the end:"
"$mdbus" bridge status --feed "${feed}G" --status-dir "$work" || true
