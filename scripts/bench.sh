#!/usr/bin/env bash
# mdbus benchmark report: builds the release harness, runs the criterion
# benches (WAL append and replay, L1 cache get) and the latency harness
# (mdbus vs raw iceoryx2, a Unix datagram socket and crossbeam, in real
# processes), and writes <target>/bench-report.md with the table, the
# machine, the date, the exact commands, and HDR percentile plots
# (<target>/bench-report-*.svg) next to it.
#
#   scripts/bench.sh            full run: each scenario 5 rounds of 0.3 s warm-up + 1 s measured
#   scripts/bench.sh --quick    each scenario 2 rounds of 0.2 s warm-up + 0.5 s measured, short criterion runs
#   scripts/bench.sh --smoke    one 0.1 s warm-up + 0.3 s run per transport, no criterion (for CI)
#   --no-pin                    run unpinned (default: the publisher and its WAL
#                               threads on one core, each subscriber on its own,
#                               as low-latency users run; --pin is accepted)
#
# <target> is $CARGO_TARGET_DIR, or ./target. Never asserts a time: the
# numbers go to the report only. The bench binaries are built first, in
# steps timed apart from the measured ones.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

mode=full
pin=(--pin)
for arg in "$@"; do
    case "$arg" in
        --quick) mode=quick ;;
        --smoke) mode=smoke ;;
        --full) mode=full ;;
        --pin) pin=(--pin) ;;
        --no-pin) pin=() ;;
        -h | --help)
            sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "scripts/bench.sh: unknown argument $arg (--quick, --smoke, --full, --pin, --no-pin)" >&2
            exit 2
            ;;
    esac
done

target="${CARGO_TARGET_DIR:-$PWD/target}"
started=$(date +%s)
commands=()
timings=()
# The command line as a shell would read it back (quoting kept).
quoted() {
    local line
    line=$(printf '%q ' "$@")
    printf '%s' "${line% }"
}
run() {
    local line t0
    line=$(quoted "$@")
    echo "+ $line" >&2
    commands+=("$line")
    t0=$(date +%s)
    "$@"
    timings+=("$(($(date +%s) - t0)) s: $line")
}
# A build step: timed, not listed among the commands that made the numbers.
build() {
    local line t0
    line=$(quoted "$@")
    echo "+ $line" >&2
    t0=$(date +%s)
    "$@"
    timings+=("$(($(date +%s) - t0)) s (build): $line")
}

build cargo build --release -p mdbus-bench --bin mdbus-latency

# Criterion: each bench writes <target>/criterion/<id>/new/estimates.json,
# which the harness reads into the report.
# The bench binaries are built before the timed runs.
case "$mode" in
    quick)
        build cargo bench --no-run -p mdbus-wal --bench wal
        build cargo bench --no-run -p mdbus-subscriber --bench cache
        ;;
    full)
        build cargo bench --no-run -p mdbus-wal --bench wal
        build cargo bench --no-run -p mdbus-subscriber --bench cache
        build cargo bench --no-run -p mdbus --bench publish
        ;;
    smoke) ;;
esac

case "$mode" in
    quick)
        short=(--warm-up-time 0.3 --measurement-time 1 --sample-size 10 --noplot)
        run cargo bench -p mdbus-wal --bench wal -- 'append_tick/(never|interval)/warm|replay/tick_validated' "${short[@]}"
        run cargo bench -p mdbus-subscriber --bench cache -- '^l1/' "${short[@]}"
        ;;
    full)
        run cargo bench -p mdbus-wal --bench wal -- 'append_tick/(never|interval)/(warm|steady)|replay/' --noplot
        run cargo bench -p mdbus-subscriber --bench cache -- '^l1/' --noplot
        run cargo bench -p mdbus --bench publish -- 'wal_interval_board_iceoryx2' --noplot
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
listed+=(--command "$(quoted "${harness[@]}")")
listed+=(--note "load average at the start of the harness: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)")
echo "+ $(quoted "${harness[@]}")" >&2
t0=$(date +%s)
"${harness[@]}" "${listed[@]}"
timings+=("$(($(date +%s) - t0)) s: the harness")
printf '%s\n' "${timings[@]}" >&2
echo "scripts/bench.sh --$mode: $(($(date +%s) - started)) s in all; report $target/bench-report.md" >&2
