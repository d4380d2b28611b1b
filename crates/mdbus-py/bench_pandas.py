#!/usr/bin/env python3
"""to_pandas(price="float") rows/s per kind in one process (a measurement,
not a test): medians of --repeat runs, wall and CPU time, and a hash of
each frame (to check that two builds give the same frames). Alternate
builds with PYTHONPATH, fresh processes.

    python crates/mdbus-py/bench_pandas.py /tmp/mdbus-bench bench
"""

import argparse
import statistics
import time

import pandas as pd

import mdbus


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("wal")
    ap.add_argument("feed")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    arrays = mdbus.read_wal(args.wal, args.feed, kind="all")
    arrays["delta"] = arrays["delta"][:1_000_000]
    for kind in ("tick", "book", "delta"):
        arr = arrays[kind]
        wall, cpu = [], []
        for _ in range(args.repeat):
            df = None
            t, c = time.perf_counter(), time.process_time()
            df = mdbus.to_pandas(arr)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        w, c = statistics.median(wall), statistics.median(cpu)
        digest = int(pd.util.hash_pandas_object(df, index=False).sum()) & 0xFFFFFFFF
        print(f"{kind} rows={len(df)} cols={df.shape[1]} wall_ms={w * 1e3:.1f} cpu_ms={c * 1e3:.1f} "
              f"Mrows/s={len(df) / w / 1e6:.2f} cpu_Mrows/s={len(df) / c / 1e6:.2f} hash={digest:08x}")


if __name__ == "__main__":
    main()
