#!/usr/bin/env python3
"""One read_wal in a fresh process (a measurement, not a test): its wall
time, CPU time, and its peak RSS over the result's size: (peak RSS of the
process - RSS before the read) / bytes of the arrays returned. Run it
several times, alternating builds (PYTHONPATH), and take medians.

    python crates/mdbus-py/bench_mem.py /tmp/mdbus-bench bench --kind tick
"""

import argparse
import resource
import time

import numpy as np  # noqa: F401  (imported before the baseline)

import mdbus


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("wal")
    ap.add_argument("feed")
    ap.add_argument("--kind", default="tick")
    args = ap.parse_args()
    before = rss_kb()
    cpu0, t0 = time.process_time(), time.perf_counter()
    out = mdbus.read_wal(args.wal, args.feed, kind=args.kind)
    dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    arrays = out.values() if isinstance(out, dict) else [out]
    n, size = sum(map(len, arrays)), sum(a.nbytes for a in arrays)
    print(f"kind={args.kind} records={n} bytes={size} ms={dt * 1e3:.1f} cpu_ms={cpu * 1e3:.1f} "
          f"Mrec/s={n / dt / 1e6:.2f} peak_over_result={(peak - before) * 1024 / size:.2f}")


if __name__ == "__main__":
    main()
