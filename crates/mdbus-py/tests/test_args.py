"""Bad arguments raise ValueError/TypeError naming the argument."""

import numpy as np
import pytest

import mdbus
from conftest import FIXTURES

WAL = FIXTURES / "wal-clean"


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        ({"kind": "trade"}, ValueError, "kind"),
        ({"kind": 1}, TypeError, "kind"),
        ({"start": "yesterday"}, ValueError, "start"),
        ({"end": 1.5}, TypeError, "end"),
        ({"start": True}, TypeError, "start"),
        ({"end": np.datetime64("NaT")}, ValueError, "end"),
        ({"instruments": [1]}, TypeError, "instruments"),
        ({"instruments": 5}, TypeError, "instruments"),
        ({"instruments": ["A_SYMBOL_LONGER_THAN_16"]}, ValueError, "instruments"),
        ({"skip_corrupt": "yes"}, TypeError, "skip_corrupt"),
    ],
)
def test_read_wal_names_the_bad_argument(kwargs, exc, name):
    with pytest.raises(exc, match=f"^{name}:"):
        mdbus.read_wal(WAL, "golden", **kwargs)


def test_bad_feed_wal_and_batch():
    with pytest.raises(ValueError, match="^feed:"):
        mdbus.read_wal(WAL, "bad feed!")
    with pytest.raises(TypeError, match="^feed:"):
        mdbus.read_wal(WAL, 7)
    with pytest.raises(TypeError, match="^wal:"):
        mdbus.read_wal(3, "golden")
    with pytest.raises(FileNotFoundError, match="^wal:"):
        mdbus.read_wal(WAL / "missing", "golden")
    with pytest.raises(ValueError, match="^batch:"):
        mdbus.iter_wal(WAL, "golden", batch=0)
    with pytest.raises(TypeError, match="^batch:"):
        mdbus.iter_wal(WAL, "golden", batch="10")


def test_a_feed_without_segments_reads_empty(tmp_path):
    assert len(mdbus.read_wal(tmp_path, "nothing-here")) == 0


def test_conversions_and_board_name_their_bad_arguments():
    ticks = mdbus.read_wal(WAL, "golden")
    with pytest.raises(ValueError, match="^price:"):
        mdbus.to_pandas(ticks, price="cents")
    with pytest.raises(ValueError, match="^price:"):
        mdbus.to_arrow(ticks, price="cents")
    with pytest.raises(TypeError, match="^arr:"):
        mdbus.to_pandas(np.zeros(3))
    with pytest.raises(TypeError, match="^arr:"):
        mdbus.to_pandas([1, 2])
    with pytest.raises(ValueError, match="^instrument:"):
        mdbus.to_pandas(ticks, instrument="bytes")
    board = mdbus.Board("golden", dir=FIXTURES / "board")
    with pytest.raises(ValueError, match="^symbol:"):
        board.tick("")
    with pytest.raises(TypeError, match="^symbol:"):
        board.book(3)
    with pytest.raises(FileNotFoundError):
        mdbus.Board("no-such-feed", dir=FIXTURES / "board")
    with pytest.raises(ValueError, match="^feed:"):
        mdbus.Board("a/b", dir=FIXTURES / "board")


def test_time_forms_agree():
    t = 1_764_000_000_000_008_000
    ticks = mdbus.read_wal(WAL, "golden", start=t)
    assert ticks["seq"].tolist() == [8, 10, 20]
    for form in (
        np.datetime64(t, "ns"),
        "2025-11-24T16:00:00.000008Z",
        "2025-11-24T16:00:00.000008",
        "2025-11-24 17:00:00.000008+01:00",
    ):
        assert np.array_equal(mdbus.read_wal(WAL, "golden", start=form), ticks), form
    import datetime as dt

    when = dt.datetime(2025, 11, 24, 16, 0, 0, 8, tzinfo=dt.timezone.utc)
    assert np.array_equal(mdbus.read_wal(WAL, "golden", start=when), ticks)
