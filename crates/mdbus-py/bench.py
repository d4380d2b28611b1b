#!/usr/bin/env python3
"""Throughput of read_wal and to_pandas on a WAL (a measurement, not a test).

    target/release/mdbus publish --feed bench --wal /tmp/mdbus-bench --synthetic --rate 0 \\
        --duration 5 --board-dir /tmp/mdbus-bench --no-board
    python crates/mdbus-py/bench.py /tmp/mdbus-bench bench

Median of --repeat runs each (wall clock: on a shared machine compare
only numbers of one run); peak RSS counts the WAL's mapped pages too.
"""

import argparse
import resource
import statistics
import time

import mdbus


def best(fn, repeat=5):
    """The median time of `repeat` runs of `fn`, and its result."""
    times, out = [], None
    for _ in range(repeat):
        out = None  # the previous result freed first
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("wal")
    ap.add_argument("feed")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import pandas  # noqa: F401  (import time kept out of the numbers)

    dt, all_ = best(lambda: mdbus.read_wal(args.wal, args.feed, kind="all"), args.repeat)
    n = sum(map(len, all_.values()))
    size = sum(a.nbytes for a in all_.values())
    print(f"read_wal(kind='all'): {n:,} records ({size / 1e6:.0f} MB) in {dt * 1e3:.0f} ms: {n / dt / 1e6:.1f} M records/s")
    del all_
    for kind in ("tick", "book"):
        dt, arr = best(lambda: mdbus.read_wal(args.wal, args.feed, kind=kind), args.repeat)
        print(f"read_wal(kind={kind!r}): {len(arr):,} records in {dt * 1e3:.0f} ms: {len(arr) / dt / 1e6:.1f} M {kind}s/s "
              f"({n / dt / 1e6:.1f} M WAL records scanned/s)")
        dt, df = best(lambda: mdbus.to_pandas(arr), args.repeat)
        print(f"to_pandas({kind}s, price='float'): {len(df):,} rows x {df.shape[1]} columns in {dt * 1e3:.0f} ms: "
              f"{len(df) / dt / 1e6:.1f} M rows/s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB")


if __name__ == "__main__":
    main()
