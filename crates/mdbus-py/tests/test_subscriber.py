"""The live Subscriber against `mdbus publish` in a subprocess: started
mid-stream with replay, it sees every seq once in order, the replay-done
marker once, and ends with the board's books."""

import json
import os
import signal
import subprocess
import threading
import time
import uuid

import numpy as np
import pytest

import mdbus
from conftest import MDBUS_BIN, mdbus_cmd, record_json


def wait_for(cond, seconds, what):
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_subscriber_started_mid_stream_replays_then_follows_live(tmp_path):
    if not MDBUS_BIN.exists():
        pytest.skip(f"{MDBUS_BIN} not built")
    feed = f"pysub-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    wal, board_dir = tmp_path / "wal", tmp_path / "board"
    board_dir.mkdir()
    publisher = subprocess.Popen(
        [str(MDBUS_BIN), "publish", "--feed", feed, "--wal", str(wal), "--synthetic", "--rate", "20000",
         "--duration", "3", "--board-dir", str(board_dir), "--segment-bytes", "1000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(lambda: (wal / feed).is_dir() and sum(map(len, mdbus.read_wal(wal, feed, kind="all").values())) > 5000,
                 10, "the publisher's first records")  # fmt: skip
        sub = mdbus.Subscriber(feed, replay=True, open_timeout=5)
        batches, replay_done, gaps = [], 0, []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            b = sub.poll(max=4096, timeout=0.2)
            replay_done += b.replay_done
            gaps += b.gaps
            for kind, arr in b.records.items():
                assert arr.dtype == mdbus.dtype(kind)
                assert np.all(np.diff(arr["seq"].astype(np.int64)) > 0), kind
            if len(b):
                batches.append((np.sort(np.concatenate([a["seq"] for a in b.records.values()])), b.live))
            if publisher.poll() is not None and len(b) == 0:
                break
        assert publisher.wait(timeout=10) == 0, publisher.stderr.read()
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
    board = mdbus.Board(feed, dir=board_dir)
    seqs = np.concatenate([s for s, _ in batches])
    assert np.array_equal(seqs, np.arange(seqs[0], seqs[0] + len(seqs))), "every seq once, in order"
    assert int(seqs[-1]) == board.last_seq
    assert replay_done == 1 and gaps == []
    assert not batches[0][1] and batches[-1][1], "replayed first, live at the end"
    assert len(seqs) > 20_000 and sum(len(s) for s, live in batches if live) > 10_000
    assert sub.live
    syms = board.instruments()
    assert syms and sub.instruments() == syms
    for sym in syms:
        ours, theirs = sub.book(sym), board.book(sym)
        for f in ("instrument", "bid_count", "ask_count", "bids", "asks"):
            assert np.array_equal(ours[f], theirs[f]), (sym, f)
    # L1 quote and history queries agree with the board and the WAL.
    sym = syms[0]
    q, book = sub.quote(sym), board.book(sym)
    assert q.instrument == sym and not q.stale
    assert q.bid_px == book["bids"][0]["price"] / 1e9 and q.ask_qty == book["asks"][0]["qty"]
    ticks = mdbus.read_wal(wal, feed, instruments=[sym])
    t0, t1 = int(ticks["ts_event"][len(ticks) // 3]), int(ticks["ts_event"][2 * len(ticks) // 3])
    trades = ticks[(ticks["ts_event"] >= t0) & (ticks["ts_event"] <= t1) & (ticks["flags"] & 2 == 0)]
    assert np.array_equal(sub.ticks(sym, t0, t1), trades) and len(trades) > 0
    at = json.loads(mdbus_cmd("book-at", "--wal", wal, "--feed", feed, "--instrument", sym, "--at", t1, "--json"))
    assert record_json("book", sub.book_at(sym, t1)) == at
    # The feed is quiet now: a long poll waits with the GIL released, and
    # Ctrl-C (SIGINT) interrupts it instead of the 60 s timeout.
    ticker = threading.Thread(target=lambda: [time.sleep(0.3), os.kill(os.getpid(), signal.SIGINT)])
    ticker.start()
    t0 = time.monotonic()
    interrupted = False
    try:  # (pytest.raises lets a KeyboardInterrupt through)
        sub.poll(timeout=60)
    except KeyboardInterrupt:
        interrupted = True
    ticker.join()
    assert interrupted
    assert time.monotonic() - t0 < 50


def test_subscriber_bad_arguments():
    with pytest.raises(ValueError, match="^feed:"):
        mdbus.Subscriber("no such feed")
    with pytest.raises(TypeError, match="^feed:"):
        mdbus.Subscriber(3)
    with pytest.raises(OSError):
        mdbus.Subscriber(f"absent-{uuid.uuid4().hex[:8]}", open_timeout=0.2)
    with pytest.raises(TypeError, match="^start_seq:"):
        mdbus.Subscriber("md", start_seq="1")
    with pytest.raises(ValueError, match="^start_seq:"):
        mdbus.Subscriber("md", start_seq=-1)
    with pytest.raises(ValueError, match="^start_seq:"):
        mdbus.Subscriber("md", start_seq=1, start=5)
    with pytest.raises(ValueError, match="^start:"):
        mdbus.Subscriber("md", start="not a time")


def segment_firsts(feed_dir):
    """The first seqs of a feed's segments (from their names), sorted."""
    return sorted(int(p.stem) for p in feed_dir.glob("*.wal"))


def test_subscriber_reports_seqs_retention_deleted_as_a_gap(tmp_path):
    """Replaying from seq 1 of a live feed whose oldest segments retention
    deleted: the first batch holds a gap from seq 1 to the oldest seq left;
    every seq after is delivered or reported lost (never silently
    skipped), up to the board's last seq."""
    if not MDBUS_BIN.exists():
        pytest.skip(f"{MDBUS_BIN} not built")
    feed = f"pyret-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    wal, board_dir = tmp_path / "wal", tmp_path / "board"
    board_dir.mkdir()
    publisher = subprocess.Popen(
        [str(MDBUS_BIN), "publish", "--feed", feed, "--wal", str(wal), "--synthetic", "--rate", "20000",
         "--duration", "4", "--board-dir", str(board_dir), "--segment-bytes", "1000000", "--retain-bytes", "3MB"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(lambda: (wal / feed).is_dir() and segment_firsts(wal / feed)[:1] not in ([], [1]),
                 30, "retention to delete the first segment")  # fmt: skip
        oldest_before = segment_firsts(wal / feed)[0]
        sub = mdbus.Subscriber(feed, start_seq=1, open_timeout=5)
        oldest_after = segment_firsts(wal / feed)[0]
        batches = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            b = sub.poll(max=4096, timeout=0.2)
            if len(b) or b.gaps or b.replay_done:
                batches.append(b)
            if publisher.poll() is not None and len(b) == 0:
                break
        assert publisher.wait(timeout=10) == 0, publisher.stderr.read()
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
    first = batches[0]
    assert first.gaps, "the deleted seqs are reported in the first batch"
    gap_from, gap_to = first.gaps[0]
    assert gap_from == 1
    seqs = np.sort(np.concatenate([a["seq"] for b in batches for a in b.records.values()]).astype(np.int64))
    # The replay starts at the oldest segment the reader found.
    assert oldest_before <= gap_to + 1 == seqs[0] <= oldest_after
    # Delivered seqs and gaps tile 1..=last exactly: nothing silent.
    spans = [(int(s), int(s)) for s in seqs] + [g for b in batches for g in b.gaps]
    spans.sort()
    assert spans[0][0] == 1
    for (_, prev_to), (nxt_from, _) in zip(spans, spans[1:]):
        assert nxt_from == prev_to + 1, (prev_to, nxt_from)
    assert spans[-1][1] == mdbus.Board(feed, dir=board_dir).last_seq
    assert sum(b.replay_done for b in batches) == 1
    assert batches[-1].live
