#!/usr/bin/env bash
# mdbus benchmark report: builds the release harness, runs the criterion
# benches (WAL append and replay, L1 cache get) and the latency harness
# (mdbus vs raw iceoryx2, a Unix datagram socket and crossbeam, in real
# processes), and writes <target>/bench-report.md with the table, the
# machine, the date, the exact commands, and HDR percentile plots
# (<target>/bench-report-*.svg) next to it.
#
#   scripts/bench.sh            full run (5 s per scenario; a few minutes)
#   scripts/bench.sh --quick    1 s per scenario, short criterion runs (under 2 min warm)
#   scripts/bench.sh --smoke    a few seconds, no criterion (for CI)
#   --pin                       pin publisher and subscribers to cores (off by default)
#
# <target> is $CARGO_TARGET_DIR, or ./target. Never asserts a time: the
# numbers go to the report only.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

mode=full
pin=()
for arg in "$@"; do
    case "$arg" in
        --quick) mode=quick ;;
        --smoke) mode=smoke ;;
        --full) mode=full ;;
        --pin) pin=(--pin) ;;
        -h | --help)
            sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "scripts/bench.sh: unknown argument $arg (--quick, --smoke, --full, --pin)" >&2
            exit 2
            ;;
    esac
done

target="${CARGO_TARGET_DIR:-$PWD/target}"
started=$(date +%s)
commands=()
timings=()
run() {
    echo "+ $*" >&2
    commands+=("$*")
    local t0
    t0=$(date +%s)
    "$@"
    timings+=("$(($(date +%s) - t0)) s: $*")
}

run cargo build --release -p mdbus-bench --bin mdbus-latency

# Criterion: each bench writes <target>/criterion/<id>/new/estimates.json,
# which the harness reads into the report.
case "$mode" in
    quick)
        short=(--warm-up-time 0.3 --measurement-time 1 --sample-size 10 --noplot)
        run cargo bench -p mdbus-wal --bench wal -- 'append_tick/(never|interval)/warm|replay/tick_validated' "${short[@]}"
        run cargo bench -p mdbus-subscriber --bench cache -- '^l1/' "${short[@]}"
        ;;
    full)
        run cargo bench -p mdbus-wal --bench wal -- 'append_tick/(never|interval)/(warm|steady)|replay/' --noplot
        run cargo bench -p mdbus-subscriber --bench cache -- '^l1/' --noplot
        run cargo bench --bench publish -- 'wal_interval_board_iceoryx2' --noplot
        ;;
    smoke) ;;
esac

# --since: criterion estimates older than this script's start are an
# earlier run's; the report lists them as not run this time.
harness=("$target/release/mdbus-latency" run --mode "$mode" "${pin[@]}" --target-dir "$target" --since "$started")
listed=()
for c in "${commands[@]}"; do
    listed+=(--command "$c")
done
listed+=(--command "${harness[*]}")
listed+=(--note "load average at the start of the harness: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)")
echo "+ ${harness[*]}" >&2
t0=$(date +%s)
"${harness[@]}" "${listed[@]}"
timings+=("$(($(date +%s) - t0)) s: the harness")
printf '%s\n' "${timings[@]}" >&2
echo "scripts/bench.sh --$mode: $(($(date +%s) - started)) s in all; report $target/bench-report.md" >&2
