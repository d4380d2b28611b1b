"""A WAL published by the real `mdbus publish` (several segments): read_wal
equals `mdbus replay`, filters, time bounds at segment edges, batches,
corruption, and the board against `mdbus snapshot`."""

import json
import shutil

import numpy as np
import pytest

import mdbus
from conftest import mdbus_cmd, record_json


def merged(arrays, field):
    """`field` of every record of a kind="all" dict, in seq order."""
    seq = np.concatenate([a["seq"] for a in arrays.values()])
    vals = np.concatenate([a[field] for a in arrays.values()])
    return vals[np.argsort(seq, kind="stable")]


def test_read_wal_equals_mdbus_replay_record_for_record(published, published_all, replayed):
    assert len(published.segments()) >= 3, "the test wants several segments"
    n = sum(len(a) for a in published_all.values())
    assert n == len(replayed) and n > 100_000
    assert [r["seq"] for r in replayed] == list(range(1, n + 1))
    assert np.array_equal(merged(published_all, "seq"), np.arange(1, n + 1, dtype=np.uint64))
    names = {"tick": "tick", "book": "book_snapshot", "delta": "book_delta", "heartbeat": "heartbeat"}
    for kind, arr in published_all.items():
        exp = [r for r in replayed if r["kind"] == names[kind]]
        assert len(arr) == len(exp), kind
        assert [r["seq"] for r in exp] == arr["seq"].tolist(), kind
        assert [r["ts_event"] for r in exp] == arr["ts_event"].tolist(), kind
        if kind == "heartbeat":
            continue
        assert [r["instrument"] for r in exp] == mdbus.to_pandas(arr)["instrument"].astype(str).tolist(), kind
        if kind == "book":
            # Books compare whole (levels, counts), as JSON objects.
            assert [record_json("book", r) for r in arr] == exp
            continue
        df = mdbus.to_pandas(arr)
        for f in ("last_px", "bid_px", "ask_px", "last_qty", "volume") if kind == "tick" else ("price", "qty", "side"):
            want = [np.nan if r[f] is None else r[f] for r in exp]
            got = df[f].astype(object if f == "side" else float).tolist()
            assert got == want or np.array_equal(np.array(got, float), np.array(want, float), equal_nan=True), (kind, f)


def test_a_large_conversion_equals_its_small_pieces(published_all):
    """Record arrays of 4 MiB or more (GATHER_SPLIT_MIN) are gathered by two
    threads, half each, the second half's instrument codes renumbered: the
    frame equals the concatenation of frames of small pieces (one thread
    each), and its categories are the symbols in first-seen order over the
    whole array. The second half has symbols of the first and symbols of
    its own (the array is arranged so)."""
    import pandas as pd

    for kind in ("tick", "book", "delta"):
        arr = published_all[kind]
        symbols = np.unique(arr["instrument"])
        late = np.isin(arr["instrument"], symbols[len(symbols) // 2 :])
        # The first half holds early symbols only; the second starts with
        # early ones (numbered by the first half) and then has the late
        # ones (new to the first half).
        parts = [arr[~late], arr[~late], arr[late]]
        while sum(p.nbytes for p in parts) < (4 << 20) + 2 * arr.dtype.itemsize:
            parts = [np.concatenate([p, p]) for p in parts]
        big = np.concatenate(parts)
        step = max(1, (1 << 20) // big.dtype.itemsize)  # pieces of 1 MiB: one thread each
        for price in ("float", "int"):
            want = pd.concat(
                [mdbus.to_pandas(big[i : i + step], price=price, instrument="str") for i in range(0, len(big), step)],
                ignore_index=True,
            )
            pd.testing.assert_frame_equal(mdbus.to_pandas(big, price=price, instrument="str"), want, obj=kind)
        df = mdbus.to_pandas(big)
        firsts = list(dict.fromkeys(s.decode() for s in big["instrument"]))
        assert list(df["instrument"].cat.categories) == firsts, kind
        assert df["instrument"].astype(str).tolist() == [s.decode() for s in big["instrument"]], kind


def test_kinds_and_the_instrument_filter(published, published_all):
    ticks = mdbus.read_wal(published.wal, published.feed)  # kind="tick" by default
    assert ticks.dtype == mdbus.dtype("tick")
    assert np.array_equal(ticks, published_all["tick"])
    books = mdbus.read_wal(published.wal, published.feed, kind="book")
    assert np.array_equal(books, published_all["book"])
    syms = sorted({s.decode() for s in published_all["tick"]["instrument"]})
    assert len(syms) == 16
    picked = mdbus.read_wal(published.wal, published.feed, kind="all", instruments=syms[:2])
    assert len(picked["heartbeat"]) == 0, "heartbeats have no instrument"
    for kind in ("tick", "book", "delta"):
        full = published_all[kind]
        keep = np.isin(full["instrument"], [s.encode() for s in syms[:2]])
        assert keep.any() and not keep.all()
        assert np.array_equal(picked[kind], full[keep]), kind
    one = mdbus.read_wal(published.wal, published.feed, kind="tick", instruments=syms[3])
    assert set(one["instrument"].tolist()) == {syms[3].encode()}


def test_time_bounds_at_segment_edges(published, published_all):
    ts = merged(published_all, "ts_event")
    seq = merged(published_all, "seq")
    # A segment starts with recovery snapshots stamped by the publisher's
    # clock: ts_event goes back a little there, and the bounds are still exact.
    assert (np.diff(ts) < 0).any()
    firsts = [int(p.stem) for p in published.segments()[1:3]]
    for first in firsts:
        t = int(ts[seq == first][0])  # ts_event of a segment's first record
        for start in (t, t - 1, t + 1):
            got = mdbus.read_wal(published.wal, published.feed, kind="all", start=start)
            got_seq = np.sort(np.concatenate([a["seq"] for a in got.values()]))
            assert np.array_equal(got_seq, seq[ts >= start]), (first, start)
            got = mdbus.read_wal(published.wal, published.feed, kind="all", end=start)
            got_seq = np.sort(np.concatenate([a["seq"] for a in got.values()]))
            assert np.array_equal(got_seq, seq[ts < start]), (first, start)
    # A window across the second segment edge, and its time forms.
    t0, t1 = int(ts[seq == firsts[0]][0]), int(ts[seq == firsts[1]][0]) + 1
    window = mdbus.read_wal(published.wal, published.feed, start=t0, end=t1)
    full = published_all["tick"]
    assert len(window) > 0
    assert np.array_equal(window, full[(full["ts_event"] >= t0) & (full["ts_event"] < t1)])
    d0, d1 = np.datetime64(t0, "ns"), np.datetime64(t1, "ns")
    assert np.array_equal(mdbus.read_wal(published.wal, published.feed, start=d0, end=d1), window)
    iso0, iso1 = str(d0) + "Z", str(d1)  # with and without the Z
    assert np.array_equal(mdbus.read_wal(published.wal, published.feed, start=iso0, end=iso1), window)
    assert len(mdbus.read_wal(published.wal, published.feed, start=t1, end=t0)) == 0


def test_iter_wal_yields_bounded_batches_equal_to_read_wal(published, published_all):
    batches = list(mdbus.iter_wal(published.wal, published.feed, kind="tick", batch=10_000))
    assert len(batches) > 2 and all(0 < len(b) <= 10_000 for b in batches)
    assert np.array_equal(np.concatenate(batches), published_all["tick"])
    dicts = list(mdbus.iter_wal(published.wal, published.feed, kind="all", batch=50_000))
    assert all(0 < sum(map(len, d.values())) <= 50_000 for d in dicts)
    for kind in mdbus.KINDS:
        assert np.array_equal(np.concatenate([d[kind] for d in dicts]), published_all[kind]), kind


def flip_copy(published, tmp_path, segment, at):
    """A copy of the published WAL with one bit flipped at byte `at` of segment `segment`."""
    wal = tmp_path / "wal"
    shutil.copytree(published.wal, wal)
    path = sorted((wal / published.feed).glob("*.wal"))[segment]
    data = bytearray(path.read_bytes())
    data[at] ^= 0x10
    path.write_bytes(bytes(data))
    return wal, path


def test_a_flipped_bit_raises_with_the_partial_result_or_is_skipped(published, published_all, tmp_path):
    wal, path = flip_copy(published, tmp_path, 1, 500_000)
    with pytest.raises(mdbus.WalError) as info:
        mdbus.read_wal(wal, published.feed, kind="all")
    err = info.value
    assert err.path == str(path) and 0 < err.offset <= 500_000
    assert str(err.offset) in str(err) and path.name in str(err)
    part_seq = merged(err.partial, "seq")
    n_before = len(part_seq)
    first_of_segment = int(path.stem)
    assert n_before > first_of_segment
    assert np.array_equal(part_seq, np.arange(1, n_before + 1, dtype=np.uint64))
    for kind in mdbus.KINDS:
        full = published_all[kind]
        assert np.array_equal(err.partial[kind], full[full["seq"] <= n_before]), kind
    # The bad frame's mdbus replay agrees on where it stops.
    with pytest.raises(Exception):
        mdbus_cmd("replay", "--wal", wal, "--feed", published.feed)
    with pytest.warns(mdbus.WalSkipWarning) as warned:
        skipped = mdbus.read_wal(wal, published.feed, kind="all", skip_corrupt=True)
    hole = warned[0].message.range["seq_hole"]
    assert hole is not None and hole[0] == n_before + 1
    lost = set(range(hole[0], hole[1] + 1))
    got = merged(skipped, "seq")
    n = sum(map(len, published_all.values()))
    assert got.tolist() == [s for s in range(1, n + 1) if s not in lost]
    # iter_wal: the batches before the error, then the error.
    seen = []
    with pytest.raises(mdbus.WalError) as info:
        for b in mdbus.iter_wal(wal, published.feed, kind="all", batch=4096):
            seen.append(merged(b, "seq"))
    seen.append(merged(info.value.partial, "seq"))
    assert np.array_equal(np.concatenate(seen), part_seq)


def test_a_truncated_last_segment_reads_up_to_the_cut(published, published_all, tmp_path):
    wal = tmp_path / "wal"
    shutil.copytree(published.wal, wal)
    last = sorted((wal / published.feed).glob("*.wal"))[-1]
    # Cut the file inside a frame: what follows is gone, nothing is invented.
    with open(last, "r+b") as f:
        f.truncate(20_011)
    got = mdbus.read_wal(wal, published.feed, kind="all")
    seq = merged(got, "seq")
    assert len(seq) > int(last.stem) and np.array_equal(seq, np.arange(1, len(seq) + 1, dtype=np.uint64))
    for kind in mdbus.KINDS:
        full = published_all[kind]
        assert np.array_equal(got[kind], full[full["seq"] <= seq[-1]]), kind


def test_board_equals_mdbus_snapshot(published):
    board = mdbus.Board(published.feed, dir=published.board_dir)
    out = mdbus_cmd("snapshot", "--feed", published.feed, "--board-dir", published.board_dir, "--json")
    expected = {o["instrument"]: o for o in map(json.loads, out.splitlines())}
    assert board.instruments() == sorted(expected) and len(expected) == 16
    for sym, exp in expected.items():
        assert record_json("tick", board.tick(sym)) == exp["tick"], sym
        assert record_json("book", board.book(sym)) == exp["book"], sym
    assert board.last_seq > 0


def test_a_deleted_middle_segment_is_a_hole_not_silence(published, published_all, tmp_path):
    wal = tmp_path / "wal"
    shutil.copytree(published.wal, wal)
    segments = sorted((wal / published.feed).glob("*.wal"))
    gone, after = segments[1], segments[2]
    gone.unlink()
    lost = (int(gone.stem), int(after.stem) - 1)
    with pytest.raises(mdbus.WalError) as info:
        mdbus.read_wal(wal, published.feed, kind="all")
    assert info.value.path == str(after) and f"expected seq {lost[0]}" in str(info.value)
    assert merged(info.value.partial, "seq").tolist() == list(range(1, lost[0]))
    with pytest.warns(mdbus.WalSkipWarning) as warned:
        got = mdbus.read_wal(wal, published.feed, kind="all", skip_corrupt=True)
    assert [w.message.range["seq_hole"] for w in warned] == [lost]
    for kind in mdbus.KINDS:
        full = published_all[kind]
        keep = (full["seq"] < lost[0]) | (full["seq"] > lost[1])
        assert np.array_equal(got[kind], full[keep]), kind
