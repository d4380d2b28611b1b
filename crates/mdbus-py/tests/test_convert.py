"""to_pandas and to_arrow: columns, types, flattened books."""

import numpy as np
import pytest

import mdbus
from conftest import FIXTURES

WAL = FIXTURES / "wal-clean"


def test_tick_frame_columns_and_types():
    ticks = mdbus.read_wal(WAL, "golden")
    df = mdbus.to_pandas(ticks)
    assert list(df.columns) == [
        "seq", "ts_event", "ts_publish", "instrument", "last_px", "last_qty",
        "bid_px", "bid_qty", "ask_px", "ask_qty", "volume", "flags",
    ]  # fmt: skip
    assert str(df["ts_event"].dtype) == "datetime64[ns, UTC]"
    assert df["ts_event"].iloc[0].value == int(ticks["ts_event"][0])
    assert df["instrument"].astype(str).tolist() == [s.decode() for s in ticks["instrument"]]
    assert df["last_px"].tolist() == (ticks["last_px"] / 1e9).tolist()
    assert mdbus.to_pandas(ticks, instrument="str")["instrument"].tolist() == df["instrument"].astype(str).tolist()


def test_book_frame_is_flattened_bid_px_00_to_ask_qty_09():
    books = mdbus.read_wal(WAL, "golden", kind="book")
    df = mdbus.to_pandas(books)
    levels = [c for c in df.columns if c[:4] in ("bid_", "ask_") and c[-2:].isdigit()]
    assert levels[:4] == ["bid_px_00", "bid_qty_00", "ask_px_00", "ask_qty_00"]
    assert levels[-1] == "ask_qty_09" and len(levels) == 40
    raw = books["asks"]["price"]
    for i in range(10):
        want = np.where(raw[:, i] == mdbus.PRICE_NULL, np.nan, raw[:, i] / 1e9)
        assert np.array_equal(df[f"ask_px_{i:02}"].to_numpy(), want, equal_nan=True)
        assert np.array_equal(df[f"bid_qty_{i:02}"].to_numpy(), books["bids"]["qty"][:, i])


def test_all_kinds_give_a_dict_of_frames_and_deltas_name_their_side():
    frames = mdbus.to_pandas(mdbus.read_wal(WAL, "golden", kind="all"))
    assert set(frames) == set(mdbus.KINDS)
    assert list(frames["heartbeat"].columns) == ["seq", "ts_event", "ts_publish", "flags"]
    assert set(frames["delta"]["side"].astype(str)) == {"bid", "ask"}


def test_arrow_table_matches_pandas():
    pa = pytest.importorskip("pyarrow")
    ticks = mdbus.read_wal(WAL, "golden")
    table = mdbus.to_arrow(ticks)
    assert table.schema.field("ts_event").type == pa.timestamp("ns", tz="UTC")
    assert table.column("instrument").to_pylist() == [s.decode() for s in ticks["instrument"]]
    df = mdbus.to_pandas(ticks)
    assert table.column("bid_px").to_pylist() == [None if np.isnan(x) else x for x in df["bid_px"]]
    dec = mdbus.to_arrow(ticks, price="decimal")
    assert dec.schema.field("last_px").type == pa.decimal128(19, 9)
    assert str(dec.column("last_px")[0]) == "4123.400000000"
    books = mdbus.to_arrow(mdbus.read_wal(WAL, "golden", kind="book"))
    assert books.num_columns == 4 + 2 + 40 + 1


def test_polars_frame_matches_arrow():
    pl = pytest.importorskip("polars")
    ticks = mdbus.read_wal(WAL, "golden")
    df = mdbus.to_polars(ticks)
    assert isinstance(df, pl.DataFrame) and df.height == len(ticks)
    assert df["instrument"].cast(pl.String).to_list() == [s.decode() for s in ticks["instrument"]]
    assert df["bid_px"].null_count() == int((ticks["bid_px"] == mdbus.PRICE_NULL).sum())
    assert str(df.schema["ts_event"]) == "Datetime(time_unit='ns', time_zone='UTC')"
    frames = mdbus.to_polars(mdbus.read_wal(WAL, "golden", kind="all"))
    assert set(frames) == set(mdbus.KINDS) and frames["book"].width == 47


def test_to_parquet_by_day_reads_back_as_to_arrow(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    files = mdbus.to_parquet(WAL, "golden", tmp_path / "out", kinds=["tick", "book"], batch=2)
    assert [p.replace(str(tmp_path), "") for p in files] == ["/out/book/2025-11-24.parquet", "/out/tick/2025-11-24.parquet"]
    for kind in ("tick", "book"):
        got = pq.read_table(tmp_path / "out" / kind / "2025-11-24.parquet")
        want = mdbus.to_arrow(mdbus.read_wal(WAL, "golden", kind=kind))
        assert got.combine_chunks().equals(want.combine_chunks().cast(got.schema)), kind
        meta = pq.ParquetFile(tmp_path / "out" / kind / "2025-11-24.parquet").metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
    one = mdbus.to_parquet(WAL, "golden", tmp_path / "flat", kinds="delta", by=None, price="decimal")
    assert pq.read_table(one[0]).schema.field("price").type == pa.decimal128(19, 9)
    with pytest.raises(ValueError, match="^kinds:"):
        mdbus.to_parquet(WAL, "golden", tmp_path, kinds=["trades"])
    with pytest.raises(ValueError, match="^by:"):
        mdbus.to_parquet(WAL, "golden", tmp_path, by="hour")


def test_concatenated_batches_convert_like_the_whole():
    """numpy packs a structured dtype when it concatenates (the padding
    goes): joined `iter_wal` batches are still records of their kind."""
    import pandas as pd

    whole = mdbus.read_wal(WAL, "golden")
    joined = np.concatenate(list(mdbus.iter_wal(WAL, "golden", batch=2)))
    assert joined.dtype != whole.dtype and joined.dtype.itemsize < whole.dtype.itemsize
    assert mdbus.kind_of(joined.dtype) == "tick"
    pd.testing.assert_frame_equal(mdbus.to_pandas(joined), mdbus.to_pandas(whole))
    assert mdbus.to_arrow(joined).equals(mdbus.to_arrow(whole))
