#!/usr/bin/env python3
"""Live Subscriber.poll throughput and loss (a measurement, not a test):
runs `mdbus publish --synthetic` at --rate records/s for --duration s in a
subprocess (WAL and board in a temp dir), subscribes from Python with
replay, and counts records, holes and gaps.

    python crates/mdbus-py/bench_live.py --mdbus target/release/mdbus --rate 500000 --duration 5
"""

import argparse
import os
import subprocess
import tempfile
import time

import numpy as np

import mdbus


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mdbus", default="target/release/mdbus")
    ap.add_argument("--rate", type=int, default=500_000)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--max", type=int, default=4096)
    args = ap.parse_args()
    feed = f"pybench-live-{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        pub = subprocess.Popen(
            [args.mdbus, "publish", "--feed", feed, "--wal", f"{tmp}/wal", "--synthetic", "--rate", str(args.rate),
             "--duration", str(args.duration), "--board-dir", tmp],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        sub = mdbus.Subscriber(feed, replay=True, open_timeout=10)
        n, busy, last, holes, gaps = 0, 0.0, None, 0, []
        t_start = time.perf_counter()
        while True:
            t = time.perf_counter()
            b = sub.poll(max=args.max, timeout=0.2)
            if len(b):
                busy += time.perf_counter() - t
            gaps += b.gaps
            if len(b):
                seq = np.sort(np.concatenate([a["seq"] for a in b.records.values()]))
                if last is not None:
                    holes += int(seq[0]) - last - 1
                holes += int(seq[-1] - seq[0]) + 1 - len(seq)
                last = int(seq[-1])
                n += len(seq)
            elif pub.poll() is not None:
                break
        wall = time.perf_counter() - t_start
        print(pub.stdout.read().strip())
        print(f"Subscriber.poll: {n:,} records in {wall:.2f} s wall; {n / busy / 1e6:.2f} M records/s while "
              f"records were there (batches of <= {args.max}); holes {holes}, gaps {gaps}")


if __name__ == "__main__":
    main()
