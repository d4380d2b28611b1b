"""mdbus from Python: a feed's WAL into numpy, pandas and Arrow, and the
snapshot board.

    import mdbus
    ticks = mdbus.read_wal("/var/lib/mdbus/wal", "md", kind="tick",
                           start="2026-12-01T09:00", instruments=["IF2501"])
    df = mdbus.to_pandas(ticks)            # float prices, NaN for NULL
    for batch in mdbus.iter_wal("/var/lib/mdbus/wal", "md", batch=65536): ...
    mdbus.Board("md").book("IF2501")
    for batch in mdbus.Subscriber("md", replay=True): batch["tick"] ...

Arrays are numpy structured arrays whose dtype (``mdbus.dtype(kind)``) is
byte-identical to the record layout of docs/spec.md, built from the Rust
layout table. Prices are int64 fixed point (1e-9 units) with
``PRICE_NULL`` (``i64::MAX``) for "no price"; ``to_pandas`` and
``to_arrow`` turn them into floats with NaN/null, nullable ints or
decimals.
"""

import collections
import datetime as _dt
import os
import warnings

import numpy as np

from . import _mdbus
from ._convert import to_arrow, to_pandas, to_polars
from ._dtypes import DTYPES, RECORDS, dtype, kind_of, record_dtype

__all__ = [
    "Batch",
    "Board",
    "Subscriber",
    "DTYPES",
    "KINDS",
    "PRICE_NULL",
    "PRICE_SCALE",
    "Quote",
    "WalError",
    "WalSkipWarning",
    "dtype",
    "iter_wal",
    "read_wal",
    "record_dtype",
    "to_arrow",
    "to_pandas",
    "to_parquet",
    "to_polars",
]

PRICE_NULL = _mdbus.PRICE_NULL
PRICE_SCALE = _mdbus.PRICE_SCALE
KINDS = tuple(_mdbus.KINDS)
DEFAULT_BOARD_DIR = "/dev/shm"


class WalError(Exception):
    """A WAL read stopped at a bad frame (or another read error).

    ``str(err)`` is the Rust message (file and byte offset for a corrupt
    frame). Attributes:

    - ``path``: the segment file (None when not about one frame),
    - ``offset``: the bad frame's byte offset in it (or None),
    - ``partial``: every valid record read before the error, as
      ``read_wal`` would have returned it (an array, or a dict per kind
      for ``kind="all"``; for ``iter_wal``, the records of the batch in
      progress, the earlier batches having been yielded).
    """

    def __init__(self, message, path=None, offset=None, partial=None):
        super().__init__(message)
        self.path = path
        self.offset = offset
        self.partial = partial


class WalSkipWarning(UserWarning):
    """A ``skip_corrupt=True`` read jumped over bad bytes. The warning's
    ``range`` attribute is a dict: ``path``, ``from``, ``to`` (bytes),
    ``seq_hole`` (``(first, last)`` seqs lost, or None) and ``reason``."""

    def __init__(self, message, range_=None):
        super().__init__(message)
        self.range = range_


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _ns(value, name):
    """A time bound as ns since the Unix epoch (UTC): an int, a numpy
    datetime64, a datetime/pandas Timestamp (naive = UTC), a date, or an
    ISO 8601 string (``2026-12-01T09:00:00.123456789Z``, naive = UTC)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: a bool is not a time")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str):
        return _parse_iso(value, name)
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise ValueError(f"{name}: NaT is not a time")
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, _dt.datetime):
        ns = getattr(value, "value", None)  # pandas.Timestamp: exact ns, UTC
        if isinstance(ns, int) and hasattr(value, "nanosecond"):
            return ns
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return (value - _EPOCH) // _dt.timedelta(microseconds=1) * 1000
    if isinstance(value, _dt.date):
        return _ns(_dt.datetime(value.year, value.month, value.day), name)
    raise TypeError(
        f"{name}: expected ns since the epoch (int), numpy.datetime64, datetime or an ISO string, "
        f"got {type(value).__name__}"
    )


def _parse_iso(text, name):
    s = text.strip()
    for suffix in ("Z", "z", "+00:00", "+0000"):
        if s.endswith(suffix):
            s = s[: -len(suffix)]
            break
    else:
        if len(s) > 10 and ("+" in s[10:] or "-" in s[10:]):
            try:  # an explicit offset: to UTC (microsecond precision)
                return _ns(_dt.datetime.fromisoformat(s), name)
            except ValueError as e:
                raise ValueError(f"{name}: {text!r} is not an ISO 8601 time ({e})") from None
    try:
        value = np.datetime64(s.replace(" ", "T"), "ns")
    except ValueError as e:
        raise ValueError(f"{name}: {text!r} is not an ISO 8601 time ({e})") from None
    if np.isnat(value):
        raise ValueError(f"{name}: {text!r} is not a time")
    return int(value.astype(np.int64))


def _kinds(kind):
    if not isinstance(kind, str):
        raise TypeError(f"kind: expected a str, got {type(kind).__name__}")
    if kind == "all":
        return list(KINDS), False
    if kind not in KINDS:
        raise ValueError(f'kind: {kind!r} is not one of {list(KINDS)} or "all"')
    return [kind], True


def _cursor(wal, feed, kind, start, end, instruments, skip_corrupt):
    if not isinstance(wal, (str, os.PathLike)):
        raise TypeError(f"wal: expected a directory path, got {type(wal).__name__}")
    if not isinstance(feed, str):
        raise TypeError(f"feed: expected a str, got {type(feed).__name__}")
    kinds, single = _kinds(kind)
    if instruments is not None:
        if isinstance(instruments, str):
            instruments = [instruments]
        try:
            instruments = list(instruments)
        except TypeError:
            raise TypeError(
                f"instruments: expected a symbol or a list of symbols, got {type(instruments).__name__}"
            ) from None
        for sym in instruments:
            if not isinstance(sym, str):
                raise TypeError(f"instruments: expected str symbols, got {type(sym).__name__}")
    if not isinstance(skip_corrupt, (bool, np.bool_)):
        raise TypeError(f"skip_corrupt: expected a bool, got {type(skip_corrupt).__name__}")
    cursor = _mdbus.WalCursor(
        os.fspath(wal),
        feed,
        kinds,
        start=_ns(start, "start"),
        end=_ns(end, "end"),
        instruments=instruments,
        skip_corrupt=bool(skip_corrupt),
    )
    return cursor, kinds, single


def _batch(cursor, kinds, single, limit):
    """One read: the arrays (viewed with their dtypes), raising WalError
    with them attached when an error stopped the read."""
    arrays, skipped, error, done = cursor.read(limit)
    out = {k: arrays[k].view(DTYPES[k]) for k in kinds}
    result = out[kinds[0]] if single else out
    for r in skipped:
        warnings.warn(WalSkipWarning(r["message"], r), stacklevel=3)
    if error is not None:
        message, path, offset = error
        raise WalError(message, path=path, offset=offset, partial=result)
    return result, done, sum(len(a) for a in out.values())


def read_wal(wal, feed, kind="tick", start=None, end=None, instruments=None, skip_corrupt=False):
    """The records of ``feed`` in the WAL directory ``wal`` (segments in
    ``<wal>/<feed>/``), as a numpy structured array of ``dtype(kind)``, or
    for ``kind="all"`` a dict ``{"tick", "book", "delta", "heartbeat"}``
    of arrays, each in seq order.

    - ``kind``: ``"tick"``, ``"book"`` (snapshots), ``"delta"``,
      ``"heartbeat"`` or ``"all"``.
    - ``start``/``end``: exactly the records with ``start <= ts_event <
      end`` (ns ints, ``numpy.datetime64``, datetimes or ISO strings;
      naive means UTC). ``start`` seeks with the WAL's sparse index. As
      ``ts_event`` may go back a little along a feed (a segment's recovery
      snapshots and heartbeats carry the publisher's clock), the seek goes
      1 s before ``start`` and reading stops at the first record 1 s past
      ``end``; a record more than 1 s out of time order may be missed.
    - ``instruments``: a symbol or a list of them (heartbeats, which have
      none, are then left out).
    - ``skip_corrupt``: False raises ``WalError`` at a bad frame, its
      ``partial`` holding every valid record before it; True jumps over
      bad bytes to the next valid frame and warns ``WalSkipWarning`` per
      range skipped (the seqs lost in ``warning.range["seq_hole"]``).

    A torn tail (a frame the writer did not finish) is the WAL's live end,
    not an error. Every record returned passed the WAL's checks (crc32c,
    layout); a bad frame of a kind or instrument not asked for may be
    passed over unchecked (it loses nothing asked for): read
    ``kind="all"`` or run ``mdbus wal verify`` to check a whole WAL. The records are copied once out of the segment maps into
    the array, with the GIL released.
    """
    cursor, kinds, single = _cursor(wal, feed, kind, start, end, instruments, skip_corrupt)
    result, _, _ = _batch(cursor, kinds, single, None)
    return result


def iter_wal(wal, feed, kind="tick", start=None, end=None, instruments=None, skip_corrupt=False, batch=65536):
    """``read_wal`` in batches of at most ``batch`` records (all kinds
    together for ``kind="all"``, each batch then a dict per kind): memory
    bounded by a batch, for ranges bigger than memory. Yields only
    non-empty batches; a bad frame raises ``WalError`` after the batches
    before it (``partial`` holds the records of the batch in progress)."""
    if isinstance(batch, (bool, np.bool_)) or not isinstance(batch, (int, np.integer)):
        raise TypeError(f"batch: expected an int, got {type(batch).__name__}")
    if batch < 1:
        raise ValueError(f"batch: must be at least 1, got {batch}")
    cursor, kinds, single = _cursor(wal, feed, kind, start, end, instruments, skip_corrupt)
    return _iterate(cursor, kinds, single, int(batch))


def _iterate(cursor, kinds, single, limit):
    while True:
        result, done, n = _batch(cursor, kinds, single, limit)
        if n:
            yield result
        if done:
            return


def to_parquet(wal, feed, out_dir, kinds=("tick", "book", "delta"), by="day", start=None, end=None,
               instruments=None, price="float", skip_corrupt=False, batch=1_000_000):
    """Writes the records of ``feed`` to Parquet files (pyarrow, zstd),
    ``to_arrow``'s columns: ``<out_dir>/<kind>/<YYYY-MM-DD>.parquet`` per
    UTC day of ``ts_event`` (``by="day"``) or ``<out_dir>/<kind>.parquet``
    (``by=None``). Reads with ``iter_wal`` in batches of ``batch`` records
    (bounded memory); ``start``, ``end``, ``instruments``,
    ``skip_corrupt`` as for ``read_wal``. Returns the files written,
    sorted. Needs pyarrow (the ``arrow`` extra)."""
    import pyarrow.parquet as pq

    if isinstance(kinds, str):
        kinds = [kinds]
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"kinds: {kind!r} is not one of {list(KINDS)}")
    if by not in ("day", None):
        raise ValueError(f'by: {by!r} is not "day" or None')
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir: expected a directory path, got {type(out_dir).__name__}")
    day_ns = 86_400 * 1_000_000_000
    written = []
    for kind in kinds:
        writers = {}
        try:
            for arr in iter_wal(wal, feed, kind=kind, start=start, end=end, instruments=instruments,
                                skip_corrupt=skip_corrupt, batch=batch):  # fmt: skip
                days = arr["ts_event"] // day_ns if by == "day" else np.zeros(len(arr), dtype=np.int64)
                for day in np.unique(days):
                    part = arr[days == day] if by == "day" else arr
                    table = to_arrow(part, price=price)
                    if day not in writers:
                        folder = os.path.join(os.fspath(out_dir), kind) if by == "day" else os.fspath(out_dir)
                        os.makedirs(folder, exist_ok=True)
                        name = str(np.datetime64(int(day), "D")) if by == "day" else kind
                        path = os.path.join(folder, f"{name}.parquet")
                        writers[day] = pq.ParquetWriter(path, table.schema, compression="zstd")
                        written.append(path)
                    writers[day].write_table(table)
        finally:
            for w in writers.values():
                w.close()
    return sorted(written)


class Board:
    """A read-only view of a feed's snapshot board
    ``<dir>/mdbus.<feed>.board``, through the Rust reader (a seqcount
    latch: a record read is never torn, never blocked by the writer).

    ``tick(sym)`` and ``book(sym)`` return one record (a numpy structured
    scalar of ``dtype("tick")``/``dtype("book")``: ``t["bid_px"]``), or None
    when the board holds none; ``instruments()`` lists the symbols.
    """

    def __init__(self, feed, dir=DEFAULT_BOARD_DIR):
        if not isinstance(feed, str):
            raise TypeError(f"feed: expected a str, got {type(feed).__name__}")
        if not isinstance(dir, (str, os.PathLike)):
            raise TypeError(f"dir: expected a directory path, got {type(dir).__name__}")
        self._board = _mdbus.Board(feed, os.fspath(dir))
        self.feed = feed

    @staticmethod
    def _symbol(sym):
        if not isinstance(sym, str):
            raise TypeError(f"symbol: expected a str, got {type(sym).__name__}")
        return sym

    def tick(self, sym):
        """The latest tick of ``sym``, or None."""
        raw = self._board.tick(self._symbol(sym))
        return None if raw is None else raw.view(DTYPES["tick"])[0]

    def book(self, sym):
        """The current top-10 book of ``sym``, or None."""
        raw = self._board.book(self._symbol(sym))
        return None if raw is None else raw.view(DTYPES["book"])[0]

    def instruments(self):
        """Every symbol on the board, sorted."""
        return self._board.instruments()

    @property
    def last_seq(self):
        """The last seq the publisher put on the board."""
        return self._board.last_seq()

    @property
    def path(self):
        """The board file."""
        return self._board.path()

    def __repr__(self):
        return f"mdbus.Board({self.feed!r}, path={str(self.path)!r})"


Quote = collections.namedtuple(
    "Quote", "instrument bid_px bid_qty ask_px ask_qty seq ts_event ts_publish stale"
)
Quote.__doc__ = "The top of one instrument's book (``Subscriber.quote``); prices float, NaN for an empty side."


class Batch:
    """What ``Subscriber.poll`` returns: ``records`` (a dict per kind of
    structured arrays, each in seq order), ``gaps`` (``(first, last)``
    seqs lost for good: retention, corruption), ``replay_done`` (the switch
    from replay to live happened in this batch), ``live``."""

    __slots__ = ("records", "gaps", "replay_done", "live")

    def __init__(self, records, gaps, replay_done, live):
        self.records = records
        self.gaps = gaps
        self.replay_done = replay_done
        self.live = live

    def __len__(self):
        return sum(len(a) for a in self.records.values())

    def __getitem__(self, kind):
        return self.records[kind]

    def __repr__(self):
        counts = ", ".join(f"{k}={len(a)}" for k, a in self.records.items())
        return f"mdbus.Batch({counts}, gaps={self.gaps}, replay_done={self.replay_done}, live={self.live})"


class Subscriber:
    """A live subscriber of ``feed`` (iceoryx2) through the Rust
    ``mdbus::Subscriber``: with ``replay=True`` it replays the WAL from its
    newest full snapshot set, then goes live, every seq once in order,
    holes filled from the WAL (or reported as gaps). ``wal``: the WAL root
    instead of the one the publisher announces; ``open_timeout``: seconds
    to wait for the publisher. ``start_seq`` (a seq) or ``start`` (a time,
    as for ``read_wal``) replays from there instead of the snapshot set;
    seqs the WAL no longer has (retention deleted their segment) come as a
    gap in the first batch, never as silence.

    ``poll(max=4096, timeout=0.1)`` returns a ``Batch`` (records per kind);
    iterating yields non-empty batches for ever. The GIL is released while
    waiting, and Ctrl-C interrupts a waiting poll. ``tick(sym)`` and
    ``book(sym)`` read the L1 cache (as of the last record polled).
    """

    def __init__(self, feed, replay=True, wal=None, open_timeout=10.0, start=None, start_seq=None):
        if not isinstance(feed, str):
            raise TypeError(f"feed: expected a str, got {type(feed).__name__}")
        if wal is not None and not isinstance(wal, (str, os.PathLike)):
            raise TypeError(f"wal: expected a directory path, got {type(wal).__name__}")
        if start_seq is not None:
            if isinstance(start_seq, (bool, np.bool_)) or not isinstance(start_seq, (int, np.integer)):
                raise TypeError(f"start_seq: expected an int, got {type(start_seq).__name__}")
            if start_seq < 0:
                raise ValueError(f"start_seq: must be at least 0, got {start_seq}")
            if start is not None:
                raise ValueError("start_seq: give start_seq or start, not both")
        self.feed = feed
        self._sub = _mdbus.Subscriber(
            feed, replay=bool(replay), wal=None if wal is None else os.fspath(wal), open_timeout=float(open_timeout),
            start_seq=None if start_seq is None else int(start_seq), start_time=_ns(start, "start"),
        )  # fmt: skip

    def poll(self, max=4096, timeout=0.1):
        """Waits up to ``timeout`` s for events, then takes what is there,
        up to ``max`` records."""
        if isinstance(max, (bool, np.bool_)) or not isinstance(max, (int, np.integer)):
            raise TypeError(f"max: expected an int, got {type(max).__name__}")
        if max < 1:
            raise ValueError(f"max: must be at least 1, got {max}")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise TypeError(f"timeout: expected seconds, got {type(timeout).__name__}")
        arrays, gaps, replay_done, live = self._sub.poll(int(max), float(timeout))
        records = {k: arrays[k].view(DTYPES[k]) for k in KINDS}
        return Batch(records, gaps, replay_done, live)

    def __iter__(self):
        while True:
            batch = self.poll()
            if len(batch) or batch.gaps or batch.replay_done:
                yield batch

    def tick(self, sym):
        """The latest tick of ``sym`` (L1 cache), or None."""
        raw = self._sub.tick(Board._symbol(sym))
        return None if raw is None else raw.view(DTYPES["tick"])[0]

    def book(self, sym):
        """The current top-10 book of ``sym`` (L1 cache), or None."""
        raw = self._sub.book(Board._symbol(sym))
        return None if raw is None else raw.view(DTYPES["book"])[0]

    def instruments(self):
        """The symbols in the L1 cache, sorted."""
        return self._sub.instruments()

    def quote(self, sym):
        """The top of the book of ``sym`` in one read (L1 cache), or None:
        a ``Quote`` with float prices (NaN for an empty side), the seq and
        times of the record that last changed the book, and ``stale``
        (the book missed records and waits for its next snapshot)."""
        q = self._sub.quote(Board._symbol(sym))
        if q is None:
            return None
        bid_px, bid_qty, ask_px, ask_qty, seq, ts_event, ts_publish, stale = q
        px = lambda raw: float("nan") if raw == PRICE_NULL else raw / PRICE_SCALE  # noqa: E731
        return Quote(sym, px(bid_px), bid_qty, px(ask_px), ask_qty, seq, ts_event, ts_publish, stale)

    def ticks(self, sym, start, end):
        """The trades of ``sym`` with ``start <= ts_event <= end`` (times as
        for ``read_wal``) from the subscriber's history (memory, then the
        WAL), as a tick array."""
        raw = self._sub.ticks(Board._symbol(sym), _ns(start, "start"), _ns(end, "end"))
        return raw.view(DTYPES["tick"])

    def book_at(self, sym, t):
        """The book of ``sym`` as it was at ``t`` (from history), or None."""
        raw = self._sub.book_at(Board._symbol(sym), _ns(t, "t"))
        return None if raw is None else raw.view(DTYPES["book"])[0]

    @property
    def live(self):
        """Whether replay is done and records come live."""
        return self._sub.is_live()
