#!/usr/bin/env python3
"""A WAL of mostly ticks (for bench.py): a DBN `trades` file of N trades
(databento_dbn; 16 instruments round robin, ts_event stepped by 1 us,
prices walking) imported by `mdbus import dbn` (a trade is a Tick).
`mdbus publish --synthetic` writes 15 % ticks; this one ~100 %. Needs
`databento`.

    python crates/mdbus-py/make_tick_wal.py /tmp/mdbus-ticks ticks -n 3000000 --mdbus target/release/mdbus
    python crates/mdbus-py/bench.py /tmp/mdbus-ticks ticks
"""

import argparse
import os
import subprocess
import tempfile

import numpy as np


def main():
    import databento_dbn as dbn

    ap = argparse.ArgumentParser()
    ap.add_argument("wal")
    ap.add_argument("feed")
    ap.add_argument("-n", type=int, default=3_000_000)
    ap.add_argument("--mdbus", default="target/release/mdbus")
    args = ap.parse_args()
    n, instruments, t0 = args.n, 16, 1_764_000_000_000_000_000
    msg = dbn.TradeMsg(
        publisher_id=1, instrument_id=1, ts_event=t0, price=4_000_000_000_000, size=1, action=dbn.Action.TRADE,
        side=dbn.Side.BID, depth=0, ts_recv=t0, flags=0x80,
    )  # fmt: skip
    rec = np.frombuffer(bytes(msg), dtype=np.uint8)
    body = np.tile(rec, n).reshape(n, len(rec))
    i = np.arange(n, dtype=np.int64)
    # DBN header: instrument_id at 4 (u32), ts_event at 8 (i64); then price at 16 (i64), size at 24 (u32),
    # ts_recv at 32 (i64).
    body[:, 4:8] = (1 + i % instruments).astype(np.uint32).view(np.uint8).reshape(n, 4)
    ts = (t0 + i * 1000).view(np.uint8).reshape(n, 8)
    body[:, 8:16] = ts
    body[:, 32:40] = ts
    body[:, 16:24] = (4_000_000_000_000 + (i % 97) * 200_000_000).view(np.uint8).reshape(n, 8)
    body[:, 24:28] = (1 + i % 9).astype(np.uint32).view(np.uint8).reshape(n, 4)
    meta = dbn.Metadata(
        dataset="GLBX.MDP3", start=t0, stype_in=dbn.SType.RAW_SYMBOL, stype_out=dbn.SType.INSTRUMENT_ID,
        schema=dbn.Schema.TRADES, symbols=[f"T{k:02}" for k in range(1, instruments + 1)],
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trades.dbn")
        with open(path, "wb") as f:
            f.write(bytes(meta.encode()))
            f.write(body.tobytes())
        aliases = [a for k in range(1, instruments + 1) for a in ("--alias", f"{k}=T{k:02}")]
        subprocess.run([args.mdbus, "import", "dbn", "--feed", args.feed, "--wal", args.wal, *aliases, path], check=True)


if __name__ == "__main__":
    main()
