"""The dtypes are the record layout of docs/spec.md, byte for byte, as
the Rust layout table gives it."""

import numpy as np

import mdbus
from mdbus import _mdbus

HEADER_FIELDS = {"seq", "ts_event", "ts_publish", "kind", "flags"}


def table():
    rows = {}
    for record, record_size, offset, size, field, ty in _mdbus.layout_table():
        rows.setdefault(record, (record_size, []))[1].append((offset, size, field, ty))
    return rows


def test_every_field_at_the_table_offset_with_the_table_size():
    rows = table()
    header = {field: (offset, size) for offset, size, field, _ in rows["RecordHeader"][1]}
    for kind, record in mdbus.RECORDS.items():
        dt = mdbus.dtype(kind)
        record_size, fields = rows[record]
        assert dt.itemsize == record_size, kind
        expected = {}
        for offset, size, field, ty in fields:
            if ty == "RecordHeader":
                expected.update({f: (offset + o, s) for f, (o, s) in header.items() if not f.startswith("_")})
            elif not field.startswith("_"):
                expected[field] = (offset, size)
        got = {name: (off, sub.itemsize) for name, (sub, off, *_) in dt.fields.items()}
        assert got == expected, kind
        assert HEADER_FIELDS <= set(got)


def test_level_and_sizes_match_docs_spec():
    level = mdbus.record_dtype("Level")
    assert level.itemsize == 16 and level.fields["price"][1] == 0 and level.fields["qty"][1] == 8
    assert {k: mdbus.dtype(k).itemsize for k in mdbus.KINDS} == {"tick": 104, "book": 376, "delta": 72, "heartbeat": 32}
    assert mdbus.dtype("book")["bids"].shape == (10,)
    assert mdbus.PRICE_NULL == np.iinfo(np.int64).max
    assert mdbus.PRICE_SCALE == 1_000_000_000


def test_a_record_packed_by_hand_reads_back_through_the_dtype():
    # docs/spec.md's Tick: header (seq u64, ts_event i64, ts_publish i64,
    # kind u16, flags u16, pad 4), instrument [u8;16], 7 x i64.
    import struct

    raw = struct.pack("<QqqHH4x16s7q", 7, 11, 12, 1, 2, b"IF2501", 4123400000000, 2, 1, 3, mdbus.PRICE_NULL, 0, 99)
    t = np.frombuffer(raw, dtype=mdbus.dtype("tick"))[0]
    assert (t["seq"], t["ts_event"], t["ts_publish"], t["kind"], t["flags"]) == (7, 11, 12, 1, 2)
    assert t["instrument"] == b"IF2501"
    assert (t["last_px"], t["last_qty"], t["bid_px"], t["bid_qty"]) == (4123400000000, 2, 1, 3)
    assert (t["ask_px"], t["ask_qty"], t["volume"]) == (mdbus.PRICE_NULL, 0, 99)
