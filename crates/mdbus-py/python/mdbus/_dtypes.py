"""numpy dtypes of the records, built from the Rust layout table.

``mdbus._mdbus.layout_table()`` is ``mdbus_types::layout_table()``: every
field's offset, size and type as docs/spec.md holds them. The dtypes here
are made from it (explicit offsets and itemsize), so an array of them is
byte-identical to the records in the WAL; nothing is retyped by hand.

The header's fields are flattened into each record (``arr["seq"]``,
``arr["ts_event"]``); padding fields are left unnamed (the itemsize keeps
their bytes); book levels are a ``(10,)`` sub-array of ``{price, qty}``.
"""

import re

import numpy as np

from . import _mdbus

# Python kind name -> the record name of the layout table.
RECORDS = {
    "tick": "Tick",
    "book": "BookSnapshot",
    "delta": "BookDelta",
    "heartbeat": "Heartbeat",
}

_SCALARS = {
    "u8": "u1",
    "u16": "<u2",
    "u32": "<u4",
    "u64": "<u8",
    "i8": "i1",
    "i16": "<i2",
    "i32": "<i4",
    "i64": "<i8",
    "Price": "<i8",
    "Qty": "<i8",
}

_ARRAY = re.compile(r"^\[(\w+); (\d+)\]$")


def _rows():
    records = {}
    for record, record_size, offset, size, field, ty in _mdbus.layout_table():
        records.setdefault(record, (record_size, []))[1].append((offset, size, field, ty))
    return records


_TABLE = _rows()
_CACHE = {}


def _format(ty, size):
    """The numpy format of a layout-table type, checked against its size."""
    if ty in _SCALARS:
        fmt = np.dtype(_SCALARS[ty])
    elif m := _ARRAY.match(ty):
        inner, n = m.group(1), int(m.group(2))
        if inner == "u8":
            fmt = np.dtype(f"S{n}")  # symbols: NUL-padded ASCII
        else:
            fmt = np.dtype((_format(inner, None), (n,)))
    elif ty in _TABLE:
        fmt = record_dtype(ty)
    else:
        raise ImportError(f"mdbus: layout table type {ty!r} has no numpy form")
    if size is not None and fmt.itemsize != size:
        raise ImportError(f"mdbus: {ty} is {size} bytes in the layout table, {fmt.itemsize} as {fmt}")
    return fmt


def _fields(record, base, names, formats, offsets):
    for offset, size, field, ty in _TABLE[record][1]:
        if field.startswith("_"):
            continue  # padding: zero, left unnamed
        if ty == "RecordHeader":
            _fields(ty, base + offset, names, formats, offsets)
            continue
        names.append(field)
        formats.append(_format(ty, size))
        offsets.append(base + offset)


def record_dtype(record):
    """The dtype of a layout-table record (``"Tick"``, ``"Level"``, ...)."""
    if record not in _CACHE:
        if record not in _TABLE:
            raise ValueError(f"record: {record!r} is not in the layout table")
        names, formats, offsets = [], [], []
        _fields(record, 0, names, formats, offsets)
        _CACHE[record] = np.dtype(
            {"names": names, "formats": formats, "offsets": offsets, "itemsize": _TABLE[record][0]}
        )
    return _CACHE[record]


def dtype(kind):
    """The structured dtype of a kind's records: ``"tick"``, ``"book"``,
    ``"delta"`` or ``"heartbeat"``."""
    if kind not in RECORDS:
        raise ValueError(f"kind: {kind!r} is not one of {list(RECORDS)}")
    return record_dtype(RECORDS[kind])


DTYPES = {kind: dtype(kind) for kind in RECORDS}


def kind_of(dt):
    """The kind whose dtype is ``dt``, or None. Also the kind of a record
    dtype without its padding: numpy's promotion packs structured dtypes,
    so ``np.concatenate`` of record arrays (``iter_wal`` batches, say)
    gives the same fields at packed offsets."""
    for kind, d in DTYPES.items():
        if d == dt:
            return kind
    if getattr(dt, "names", None) is None:
        return None
    packed = np.result_type(dt)
    for kind, d in DTYPES.items():
        if np.result_type(d) == packed:
            return kind
    return None
