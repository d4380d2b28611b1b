"""Record arrays to pandas and Arrow, vectorised (no Python object per
record): prices as float (NULL -> NaN/null), nullable int or decimal;
timestamps as UTC ``datetime64[ns]``; instruments as categories of str;
books flattened to ``bid_px_00, bid_qty_00, ask_px_00, ask_qty_00, ...,
ask_qty_09``."""

import numpy as np

from . import _mdbus
from ._dtypes import DTYPES, kind_of

_NULL = _mdbus.PRICE_NULL
_PRICES = ("float", "int", "decimal")
_DEPTH = DTYPES["book"]["bids"].shape[0]
_SIDES = np.array(["bid", "ask"], dtype=object)


def _kind(arr, name="arr"):
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array from mdbus.read_wal, got {type(arr).__name__}")
    kind = kind_of(arr.dtype)
    if kind is None or arr.ndim != 1:
        raise TypeError(f"{name}: expected a 1-d array of an mdbus record dtype, got {arr.dtype} with shape {arr.shape}")
    return kind


def _price_arg(price):
    if price not in _PRICES:
        raise ValueError(f"price: {price!r} is not one of {list(_PRICES)}")
    return price


def _columns(arr, kind, float_prices=False):
    """``(name, role, values)`` per output column, each contiguous, read
    out of the records in one pass (``_mdbus.gather``, the GIL released).
    Roles: ``seq``, ``time`` (int64 ns), ``price`` (raw int64, or float64
    with NaN for NULL when ``float_prices``), ``int``, ``instrument``
    (``values`` is then ``(codes, names)``, read in the same pass), ``side``."""
    fields = arr.dtype.fields
    spec = []  # (name, role, offset, dtype)

    def field(name, role, f=None):
        dt, off = fields[f or name][:2]
        spec.append((name, role, off, dt))

    field("seq", "int")
    field("ts_event", "time")
    field("ts_publish", "time")
    if kind == "tick":
        for f in ("last_px", "last_qty", "bid_px", "bid_qty", "ask_px", "ask_qty", "volume"):
            field(f, "price" if f.endswith("_px") else "int")
    elif kind == "delta":
        field("side", "side")
        field("price", "price")
        field("qty", "int")
    elif kind == "book":
        field("bid_count", "int")
        field("ask_count", "int")
        (bids, bids_off), (asks, asks_off) = fields["bids"][:2], fields["asks"][:2]
        level = bids.base
        (px_dt, px_off), (qty_dt, qty_off) = level.fields["price"][:2], level.fields["qty"][:2]
        for i in range(_DEPTH):
            for side, off in (("bid", bids_off), ("ask", asks_off)):
                base = off + i * level.itemsize
                spec.append((f"{side}_px_{i:02}", "price", base + px_off, px_dt))
                spec.append((f"{side}_qty_{i:02}", "int", base + qty_off, qty_dt))
    field("flags", "int")
    flat = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    wanted = [(off, dt.itemsize, float_prices and role == "price") for _, role, off, dt in spec]
    symbol = fields["instrument"][1] if kind != "heartbeat" else None
    raw, symbols = _mdbus.gather(flat, arr.dtype.itemsize, wanted, symbol)
    cols = [
        (name, role, r.view(np.float64 if fl else dt))
        for (name, role, _, dt), r, (_, _, fl) in zip(spec, raw, wanted)
    ]
    if symbols is not None:
        cols.insert(3, ("instrument", "instrument", symbols))
    return cols


def _decimal_arrow(raw):
    """A pyarrow ``decimal128(19, 9)`` array of the raw 1e-9 units (their
    unscaled value), NULL as null, built from buffers."""
    import pyarrow as pa

    raw = np.ascontiguousarray(raw, dtype=np.int64)
    words = np.empty((len(raw), 2), dtype=np.int64)
    words[:, 0] = raw
    words[:, 1] = raw >> 63  # sign extension to 128 bits
    null = raw == _NULL
    validity = pa.array(~null).buffers()[1] if null.any() else None
    return pa.Array.from_buffers(
        pa.decimal128(19, 9), len(raw), [validity, pa.py_buffer(words)], null_count=int(null.sum())
    )


def to_pandas(arr, price="float", instrument="category"):
    """A DataFrame of a record array from ``read_wal`` (or a dict of them,
    giving a dict of DataFrames).

    - ``price="float"``: float64, NULL -> NaN (exact to the nearest double);
      ``"int"``: the raw int64 1e-9 units as pandas ``Int64``, NULL -> <NA>;
      ``"decimal"``: exact decimals (pyarrow ``decimal128(19, 9)``), NULL ->
      <NA> (needs pyarrow).
    - ``instrument="category"``: a categorical of str (one str per
      symbol, not per record); ``"str"``: plain str values.
    - ``ts_event``/``ts_publish``: ``datetime64[ns, UTC]``; ``side`` of
      deltas: ``"bid"``/``"ask"``; books: ``bid_count``, ``ask_count`` and
      ``bid_px_00, bid_qty_00, ask_px_00, ask_qty_00, ..., ask_qty_09``.
    """
    import pandas as pd

    if isinstance(arr, dict):
        return {k: to_pandas(v, price=price, instrument=instrument) for k, v in arr.items()}
    kind = _kind(arr)
    _price_arg(price)
    if instrument not in ("category", "str"):
        raise ValueError(f"instrument: {instrument!r} is not one of ['category', 'str']")
    data = {}
    for name, role, values in _columns(arr, kind, float_prices=price == "float"):
        if role == "time":
            col = pd.Series(values.view("datetime64[ns]"), copy=False).dt.tz_localize("UTC")
        elif role == "instrument":
            codes, names = values
            cat = pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=object), validate=False)
            col = pd.Series(cat) if instrument == "category" else pd.Series(cat).astype(str)
        elif role == "side":
            col = pd.Series(pd.Categorical.from_codes(values.astype(np.int8), categories=["bid", "ask"]))
        elif role == "price" and price == "float":
            col = pd.Series(values, copy=False)
        elif role == "price" and price == "int":
            col = pd.Series(pd.arrays.IntegerArray(values, values == _NULL))
        elif role == "price":
            col = pd.Series(pd.arrays.ArrowExtensionArray(_decimal_arrow(values)))
        else:
            col = pd.Series(values, copy=False)
        data[name] = col
    return pd.DataFrame(data, copy=False)  # the columns are ours: no consolidating copy


def to_arrow(arr, price="float"):
    """A ``pyarrow.Table`` of a record array from ``read_wal`` (or a dict
    of them, giving a dict of tables): the columns of ``to_pandas``;
    prices float64 (``"float"``), int64 (``"int"``) or ``decimal128(19, 9)``
    (``"decimal"``) with NULL as null; timestamps ``timestamp("ns", "UTC")``;
    instruments dictionary-encoded str. Needs pyarrow (the ``arrow`` extra)."""
    import pyarrow as pa

    if isinstance(arr, dict):
        return {k: to_arrow(v, price=price) for k, v in arr.items()}
    kind = _kind(arr)
    _price_arg(price)
    names, columns = [], []
    for name, role, values in _columns(arr, kind, float_prices=price == "float"):
        if role == "time":
            col = pa.array(values.view(np.int64)).cast(pa.timestamp("ns", tz="UTC"))
        elif role == "instrument":
            codes, syms = values
            col = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(syms, type=pa.string()))
        elif role == "side":
            col = pa.DictionaryArray.from_arrays(pa.array(values.astype(np.int8)), pa.array(["bid", "ask"]))
        elif role == "price" and price == "float":
            col = pa.array(values, mask=np.isnan(values))  # NaN only for NULL
        elif role == "price" and price == "int":
            col = pa.array(values, mask=values == _NULL)
        elif role == "price":
            col = _decimal_arrow(values)
        else:
            col = pa.array(values)
        names.append(name)
        columns.append(col)
    return pa.Table.from_arrays(columns, names=names)


def to_polars(arr, price="float"):
    """A ``polars.DataFrame`` of a record array from ``read_wal`` (or a dict
    of them, giving a dict of frames): ``to_arrow``'s table handed to
    polars (no copy of the columns); instruments categorical. Needs polars
    and pyarrow (the ``polars`` extra)."""
    import polars as pl

    if isinstance(arr, dict):
        return {k: to_polars(v, price=price) for k, v in arr.items()}
    return pl.from_arrow(to_arrow(arr, price=price))
