#!/usr/bin/env python3
"""An hour of ticks from a feed's WAL: mid-price and spread per instrument,
a table on stdout and a chart saved as a PNG (package `mdbus`, see the
README's Python section; needs pandas and matplotlib).

    python examples/python/research.py --wal /var/lib/mdbus --feed cffex \\
        [--start 2026-12-01T09:00Z] [--hours 1] [--out research.png]

Without --start: the last hour the WAL holds.
"""

import argparse

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

import mdbus  # noqa: E402

HOUR_NS = 3_600 * 1_000_000_000


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wal", required=True, help="WAL directory (segments in <wal>/<feed>/)")
    ap.add_argument("--feed", required=True)
    ap.add_argument("--start", help="ns since the epoch or ISO time (UTC); default: the last --hours of the WAL")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--out", default="research.png")
    args = ap.parse_args()

    span = int(args.hours * HOUR_NS)
    if args.start is not None:
        start = int(args.start) if args.start.isdigit() else args.start
        ticks = mdbus.read_wal(args.wal, args.feed, kind="tick", start=start, end=mdbus._ns(start, "start") + span)
    else:
        ticks = mdbus.read_wal(args.wal, args.feed, kind="tick")
        if len(ticks):
            ticks = ticks[ticks["ts_event"] >= ticks["ts_event"].max() - span]
    if len(ticks) == 0:
        raise SystemExit("no ticks in that hour")

    df = mdbus.to_pandas(ticks)  # float prices, NaN for an empty side
    df["mid"] = (df["bid_px"] + df["ask_px"]) / 2
    df["spread"] = df["ask_px"] - df["bid_px"]
    by = df.groupby("instrument", observed=True)
    table = by.agg(ticks=("seq", "size"), mid=("mid", "mean"), spread=("spread", "mean"), volume=("volume", "max"))
    print(table.sort_values("ticks", ascending=False).to_string(float_format=lambda x: f"{x:.4f}"))

    busiest = table.sort_values("ticks", ascending=False).index[:4]
    fig, (ax_mid, ax_spread) = plt.subplots(2, 1, sharex=True, figsize=(10, 6), constrained_layout=True)
    for sym in busiest:
        g = by.get_group(sym)
        first = g["mid"].dropna().iloc[0]
        ax_mid.plot(g["ts_event"], (g["mid"] / first - 1) * 1e4, lw=0.8, label=sym)
        ax_spread.plot(g["ts_event"], g["spread"] / g["mid"] * 1e4, lw=0.6, label=sym)
    ax_mid.set_ylabel("mid change (bp)")
    ax_spread.set_ylabel("spread (bp of mid)")
    ax_mid.legend(fontsize="small", ncol=3)
    t0, t1 = df["ts_event"].min(), df["ts_event"].max()
    fig.suptitle(f"{args.feed}: {len(df):,} ticks, {t0:%Y-%m-%d %H:%M:%S} to {t1:%H:%M:%S} UTC")
    fig.savefig(args.out, dpi=72)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
