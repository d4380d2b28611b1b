"""The repo's WAL and board fixtures (written from docs/spec.md alone)
read to exactly their expected JSON."""

import json
import math

import numpy as np
import pytest

import mdbus
from conftest import FIXTURES, all_json, fixture_wal, mdbus_cmd, read_jsonl, record_json


@pytest.mark.parametrize("name", ["wal-clean", "wal-partial-append"])
def test_a_clean_wal_and_a_partial_append_read_to_expected(name, tmp_path):
    wal = fixture_wal(name, tmp_path)
    got = all_json(mdbus.read_wal(wal, "golden", kind="all"))
    assert got == read_jsonl(wal / "expected.jsonl")


def test_a_torn_tail_is_the_live_end_not_an_error(tmp_path):
    wal = fixture_wal("wal-torn-tail", tmp_path)
    expected = read_jsonl(wal / "expected.jsonl")
    got = all_json(mdbus.read_wal(wal, "golden", kind="all"))
    # EXPECT.md: seq 21 at byte 2992 is torn; replay prints the first 20.
    assert got == [r for r in expected if r["seq"] < 21]
    assert [r["seq"] for r in got] == list(range(1, 21))


def test_a_corrupt_middle_raises_with_file_offset_and_the_records_before(tmp_path):
    wal = fixture_wal("wal-corrupt-middle", tmp_path)
    expected = read_jsonl(wal / "expected.jsonl")
    with pytest.raises(mdbus.WalError) as info:
        mdbus.read_wal(wal, "golden", kind="all")
    err = info.value
    assert err.offset == 1896
    assert err.path == str(wal / "golden" / "00000000000000000001.wal")
    assert "1896" in str(err) and "00000000000000000001.wal" in str(err)
    assert all_json(err.partial) == expected  # EXPECT.md: the first 10 records
    assert [r["seq"] for r in expected] == list(range(1, 11))
    # One kind: the partial result is that kind's array. The bad frame
    # (seq 11) is a heartbeat: a heartbeat read checks it and stops there.
    with pytest.raises(mdbus.WalError) as info:
        mdbus.read_wal(wal, "golden", kind="heartbeat")
    assert info.value.offset == 1896
    assert info.value.partial.dtype == mdbus.dtype("heartbeat")
    assert info.value.partial["seq"].tolist() == [r["seq"] for r in expected if r["kind"] == "heartbeat"]
    # A tick read passes over a bad frame of another kind unchecked (as
    # documented): it loses nothing it wanted, the ticks on both sides.
    ticks = mdbus.read_wal(wal, "golden", kind="tick")
    with pytest.warns(mdbus.WalSkipWarning):
        both = mdbus.read_wal(wal, "golden", kind="all", skip_corrupt=True)
    assert np.array_equal(ticks, both["tick"]) and ticks["seq"].max() > 11


def test_skip_corrupt_reads_both_sides_and_warns_the_hole(tmp_path):
    wal = fixture_wal("wal-corrupt-middle", tmp_path)
    expected = read_jsonl(wal / "expected.jsonl")
    with pytest.warns(mdbus.WalSkipWarning) as warned:
        got = all_json(mdbus.read_wal(wal, "golden", kind="all", skip_corrupt=True))
    # EXPECT.md: resync at byte 1936, seq 12..21 too (expected.jsonl holds
    # what a plain replay prints: 1..10); `mdbus replay --skip-corrupt` agrees.
    assert got[:10] == expected
    assert [r["seq"] for r in got] == [s for s in range(1, 22) if s != 11]
    out = mdbus_cmd("replay", "--wal", wal, "--feed", "golden", "--skip-corrupt")
    assert got == [json.loads(line) for line in out.splitlines()]
    ranges = [w.message.range for w in warned]
    assert len(ranges) == 1
    assert (ranges[0]["from"], ranges[0]["to"], ranges[0]["seq_hole"]) == (1896, 1936, (11, 11))


def test_null_prices_are_nan_null_or_na(tmp_path):
    wal = fixture_wal("wal-clean", tmp_path)
    ticks = mdbus.read_wal(wal, "golden", kind="tick")
    null = ticks["bid_px"] == mdbus.PRICE_NULL
    assert null.any(), "the fixture has a tick with an empty bid side"
    df = mdbus.to_pandas(ticks)
    assert np.isnan(df["bid_px"].to_numpy()[null]).all()
    assert not np.isnan(df["bid_px"].to_numpy()[~null]).any()
    expected = [r for r in read_jsonl(wal / "expected.jsonl") if r["kind"] == "tick"]
    for f in ("last_px", "bid_px", "ask_px"):
        for got, exp in zip(df[f], expected):
            assert (math.isnan(got) and exp[f] is None) or got == exp[f]
    assert df["bid_px"].dtype == np.float64
    assert df["bid_px"].isna().sum() == null.sum()
    as_int = mdbus.to_pandas(ticks, price="int")
    assert as_int["bid_px"].isna().sum() == null.sum()
    assert int(as_int["last_px"][0]) == int(ticks["last_px"][0])
    table = mdbus.to_arrow(ticks)
    assert table.column("bid_px").null_count == null.sum()
    books = mdbus.to_pandas(mdbus.read_wal(wal, "golden", kind="book"))
    # BTC/USDT's book is empty: every level NaN; IF2501 has 3 bids.
    empty = books[books["instrument"] == "BTC/USDT"].iloc[0]
    assert all(math.isnan(empty[f"bid_px_{i:02}"]) for i in range(10))
    first = books.iloc[0]
    assert [first[f"bid_px_{i:02}"] for i in range(3)] == [4123.4, 4123.2, 4123.0]
    assert math.isnan(first["bid_px_03"]) and first["bid_qty_03"] == 0


def test_decimal_prices_are_exact(tmp_path):
    pytest.importorskip("pyarrow")
    from decimal import Decimal

    wal = fixture_wal("wal-clean", tmp_path)
    books = mdbus.read_wal(wal, "golden", kind="book")
    df = mdbus.to_pandas(books, price="decimal")
    spread = df[df["instrument"] == "SPREAD-X"].iloc[0]
    assert spread["bid_px_00"] == Decimal("-12.5")
    assert spread["ask_px_01"] == Decimal("0.000000001")
    assert spread["bid_px_01"] is None or str(spread["bid_px_01"]) in ("<NA>", "None")


def test_board_fixture_reads_to_expected():
    board = mdbus.Board("golden", dir=FIXTURES / "board")
    expected = json.loads((FIXTURES / "board" / "expected.json").read_text())
    assert board.instruments() == sorted(expected)
    for sym, exp in expected.items():
        tick, book = board.tick(sym), board.book(sym)
        assert (None if tick is None else record_json("tick", tick)) == exp["tick"], sym
        assert (None if book is None else record_json("book", book)) == exp["book"], sym
    assert board.tick("NOT-ON-BOARD") is None and board.book("NOT-ON-BOARD") is None
