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
