#!/usr/bin/env python3
"""Side by side (a measurement, not a test): databento's
`DBNStore.to_ndarray()` on a DBN file of N MBP-10 records vs
`mdbus.read_wal(kind="book")` returning N book snapshots from a WAL:
(1) the WAL given (books among other records), N its book count; (2) the
same DBN file imported by `mdbus import dbn` (a delta per book change,
snapshots now and then), read whole. The
DBN file repeats one MBP-10 record (made with databento_dbn, ts_event and
ts_recv stepped) N times. Needs `databento`.

    python crates/mdbus-py/bench_dbn.py /tmp/mdbus-bench bench --mdbus target/release/mdbus
"""

import argparse
import os
import tempfile

import numpy as np

import mdbus
from bench import best  # the same timing as bench.py (this folder is on the path)


def main():
    import databento as db
    import databento_dbn as dbn

    ap = argparse.ArgumentParser()
    ap.add_argument("wal")
    ap.add_argument("feed")
    ap.add_argument("--mdbus", default="target/release/mdbus")
    args = ap.parse_args()

    t_ours, books = best(lambda: mdbus.read_wal(args.wal, args.feed, kind="book"))
    n = len(books)
    levels = [dbn.BidAskPair(bid_px=4_000_000_000_000 - i, ask_px=4_000_000_000_001 + i, bid_sz=5, ask_sz=7)
              for i in range(10)]  # fmt: skip
    msg = dbn.MBP10Msg(
        publisher_id=1, instrument_id=42, ts_event=1_764_000_000_000_000_000, price=4_000_000_000_000, size=1,
        action=dbn.Action.ADD, side=dbn.Side.BID, depth=0, ts_recv=1_764_000_000_000_000_001, levels=levels, flags=0x80,
    )  # fmt: skip
    rec = np.frombuffer(bytes(msg), dtype=np.uint8)
    body = np.tile(rec, n).reshape(n, len(rec))
    # ts_event (offset 8 in the record header) steps by 1 us.
    steps = (1_764_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 1000).view(np.uint8).reshape(n, 8)
    body[:, 8:16] = steps  # header ts_event
    body[:, 32:40] = steps  # ts_recv (after price, size, action, side, flags, depth)
    # levels[0].bid_sz (levels at 48: bid_px, ask_px, bid_sz, ...): the book changes with each record.
    body[:, 64:68] = (1 + np.arange(n, dtype=np.uint32) % 50).view(np.uint8).reshape(n, 4)
    meta = dbn.Metadata(
        dataset="GLBX.MDP3", start=1_764_000_000_000_000_000, stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.MBP_10, symbols=["ESZ6"],
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mbp10.dbn")
        with open(path, "wb") as f:
            f.write(bytes(meta.encode()))
            f.write(body.tobytes())
        store = db.DBNStore.from_file(path)
        t_dbn, arr = best(lambda: db.DBNStore.from_file(path).to_ndarray())
        assert len(arr) == n, (len(arr), n)
        t_df, _ = best(lambda: store.to_df())
        print(f"{n:,} records, {len(rec)} B each in DBN, {books.dtype.itemsize} B in mdbus")
        print(f"databento DBNStore.from_file().to_ndarray(): {t_dbn * 1e3:.0f} ms ({n / t_dbn / 1e6:.2f} M records/s)")
        print(f"mdbus.read_wal(kind='book') (scanning a WAL of other records too): {t_ours * 1e3:.0f} ms "
              f"({n / t_ours / 1e6:.2f} M records/s); ratio databento/mdbus time {t_dbn / t_ours:.2f}")
        t_pd, _ = best(lambda: mdbus.to_pandas(books))
        print(f"databento to_df(): {t_df * 1e3:.0f} ms; mdbus.to_pandas(books): {t_pd * 1e3:.0f} ms")
        import subprocess

        wal = os.path.join(tmp, "wal")
        subprocess.run([args.mdbus, "import", "dbn", "--feed", "dbnbench", "--wal", wal, "--alias", "42=ESZ6", path],
                       check=True, capture_output=True)  # fmt: skip
        t_imp, imported = best(lambda: mdbus.read_wal(wal, "dbnbench", kind="all"))
        counts = {k: len(v) for k, v in imported.items()}
        total = sum(counts.values())
        print(f"the DBN file imported by mdbus import dbn (a book change is a delta): {counts}")
        print(f"mdbus.read_wal(kind='all') of it: {total:,} records in {t_imp * 1e3:.0f} ms "
              f"({total / t_imp / 1e6:.2f} M records/s); ratio databento/mdbus time {t_dbn / t_imp:.2f}")
        # (3) The same records flagged SNAPSHOT (flags byte at 30: LAST | SNAPSHOT): each imports as a
        # BookSnapshot, so the WAL holds N books and (almost) nothing else, as the DBN file does.
        body[:, 30] = 0x80 | 0x20
        snap_path = os.path.join(tmp, "mbp10-snap.dbn")
        with open(snap_path, "wb") as f:
            f.write(bytes(meta.encode()))
            f.write(body.tobytes())
        snap_wal = os.path.join(tmp, "wal-snap")
        subprocess.run([args.mdbus, "import", "dbn", "--feed", "dbnsnap", "--wal", snap_wal, "--alias", "42=ESZ6",
                        snap_path], check=True, capture_output=True)  # fmt: skip
        t_snap_dbn, _ = best(lambda: db.DBNStore.from_file(snap_path).to_ndarray())
        t_snap, snaps = best(lambda: mdbus.read_wal(snap_wal, "dbnsnap", kind="book"))
        print(f"the DBN file with every record flagged SNAPSHOT, imported: {len(snaps):,} books; "
              f"read_wal(kind='book') {t_snap * 1e3:.0f} ms ({len(snaps) / t_snap / 1e6:.2f} M records/s) vs "
              f"databento to_ndarray {t_snap_dbn * 1e3:.0f} ms; ratio databento/mdbus time {t_snap_dbn / t_snap:.2f}")

if __name__ == "__main__":
    main()
