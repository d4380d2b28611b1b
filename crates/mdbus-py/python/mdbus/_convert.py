"""Record arrays to pandas and Arrow, vectorised (no Python object per
record): prices as float (NULL -> NaN/null), nullable int or decimal;
timestamps as UTC ``datetime64[ns]``; instruments as categories of str;
books flattened to ``bid_px_00, bid_qty_00, ask_px_00, ask_qty_00, ...,
ask_qty_09``."""

import numpy as np

from . import _mdbus
from ._dtypes import DTYPES, kind_of

_NULL = _mdbus.PRICE_NULL
_SCALE = float(_mdbus.PRICE_SCALE)
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


def _columns(arr, kind):
    """``(name, role, values)`` per output column. Roles: ``seq``,
    ``time`` (int64 ns), ``price`` (raw int64), ``int``, ``instrument``,
    ``side``."""
    cols = [("seq", "int", arr["seq"]), ("ts_event", "time", arr["ts_event"]), ("ts_publish", "time", arr["ts_publish"])]
    if kind != "heartbeat":
        cols.append(("instrument", "instrument", arr))
    if kind == "tick":
        for f in ("last_px", "last_qty", "bid_px", "bid_qty", "ask_px", "ask_qty", "volume"):
            cols.append((f, "price" if f.endswith("_px") else "int", arr[f]))
    elif kind == "delta":
        cols += [("side", "side", arr["side"]), ("price", "price", arr["price"]), ("qty", "int", arr["qty"])]
    elif kind == "book":
        cols += [("bid_count", "int", arr["bid_count"]), ("ask_count", "int", arr["ask_count"])]
        bids, asks = arr["bids"], arr["asks"]
        for i in range(_DEPTH):
            cols += [
                (f"bid_px_{i:02}", "price", bids["price"][:, i]),
                (f"bid_qty_{i:02}", "int", bids["qty"][:, i]),
                (f"ask_px_{i:02}", "price", asks["price"][:, i]),
                (f"ask_qty_{i:02}", "int", asks["qty"][:, i]),
            ]
    cols.append(("flags", "int", arr["flags"]))
    return cols


def _instrument_codes(arr):
    """``(codes, names)`` of the records' symbols, in Rust (one hash
    look-up per record)."""
    flat = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    offset = arr.dtype.fields["instrument"][1]
    return _mdbus.instrument_codes(flat, arr.dtype.itemsize, offset)


def _float_prices(raw):
    out = raw.astype(np.float64)
    null = raw == _NULL
    out /= _SCALE  # division: the nearest double to the decimal price
    out[null] = np.nan
    return out


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
    for name, role, values in _columns(arr, kind):
        if role == "time":
            col = pd.Series(values.astype("datetime64[ns]"), copy=False).dt.tz_localize("UTC")
        elif role == "instrument":
            codes, names = _instrument_codes(values)
            cat = pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=object), validate=False)
            col = pd.Series(cat) if instrument == "category" else pd.Series(cat).astype(str)
        elif role == "side":
            col = pd.Series(pd.Categorical.from_codes(values.astype(np.int8), categories=["bid", "ask"]))
        elif role == "price" and price == "float":
            col = pd.Series(_float_prices(values), copy=False)
        elif role == "price" and price == "int":
            raw = np.ascontiguousarray(values, dtype=np.int64)
            col = pd.Series(pd.arrays.IntegerArray(raw, raw == _NULL))
        elif role == "price":
            col = pd.Series(pd.arrays.ArrowExtensionArray(_decimal_arrow(values)))
        else:
            col = pd.Series(np.ascontiguousarray(values), copy=False)
        data[name] = col
    return pd.DataFrame(data)


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
    for name, role, values in _columns(arr, kind):
        if role == "time":
            col = pa.array(np.ascontiguousarray(values, dtype=np.int64)).cast(pa.timestamp("ns", tz="UTC"))
        elif role == "instrument":
            codes, syms = _instrument_codes(values)
            col = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(syms, type=pa.string()))
        elif role == "side":
            col = pa.DictionaryArray.from_arrays(pa.array(values.astype(np.int8)), pa.array(["bid", "ask"]))
        elif role == "price" and price == "float":
            raw = values
            col = pa.array(_float_prices(raw), mask=raw == _NULL)
        elif role == "price" and price == "int":
            raw = np.ascontiguousarray(values, dtype=np.int64)
            col = pa.array(raw, mask=raw == _NULL)
        elif role == "price":
            col = _decimal_arrow(values)
        else:
            col = pa.array(np.ascontiguousarray(values))
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
