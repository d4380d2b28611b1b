"""Fixtures of the mdbus Python tests: the repo's WAL and board fixtures,
and a WAL published by the real `mdbus` binary (MDBUS_BIN, by default
target/release/mdbus of the repo) into a temp dir, with its board."""

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

import mdbus

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
MDBUS_BIN = Path(os.environ.get("MDBUS_BIN", REPO / "target" / "release" / "mdbus"))
SEGMENT_BYTES = 1_000_000


def mdbus_cmd(*args, **kwargs):
    """Runs the mdbus binary; its stdout."""
    if not MDBUS_BIN.exists():
        if os.environ.get("CI"):
            raise FileNotFoundError(f"{MDBUS_BIN}: build it with `cargo build --release`")
        pytest.skip(f"{MDBUS_BIN} not built (cargo build --release)")
    return subprocess.run([str(MDBUS_BIN), *map(str, args)], check=True, capture_output=True, **kwargs).stdout


def price_json(raw):
    """A raw 1e-9 price as docs/spec.md's JSON number (None for NULL)."""
    return None if raw == mdbus.PRICE_NULL else raw / 1e9


def record_json(kind, r):
    """One record of a structured array in docs/spec.md's JSON form (as
    parsed objects), for comparison with `mdbus replay` and fixtures."""
    names = {"tick": "tick", "book": "book_snapshot", "delta": "book_delta", "heartbeat": "heartbeat"}
    out = {
        "seq": int(r["seq"]),
        "kind": names[kind],
        "ts_event": int(r["ts_event"]),
        "ts_publish": int(r["ts_publish"]),
        "flags": int(r["flags"]),
    }
    if kind != "heartbeat":
        out["instrument"] = r["instrument"].decode()
    if kind == "tick":
        for f in ("last_px", "bid_px", "ask_px"):
            out[f] = price_json(int(r[f]))
        for f in ("last_qty", "bid_qty", "ask_qty", "volume"):
            out[f] = int(r[f])
    elif kind == "book":
        out["bids"] = [[price_json(int(lv["price"])), int(lv["qty"])] for lv in r["bids"][: r["bid_count"]]]
        out["asks"] = [[price_json(int(lv["price"])), int(lv["qty"])] for lv in r["asks"][: r["ask_count"]]]
    elif kind == "delta":
        out["side"] = ["bid", "ask"][int(r["side"])]
        out["price"] = price_json(int(r["price"]))
        out["qty"] = int(r["qty"])
    return out


def all_json(arrays):
    """Every record of a `read_wal(kind="all")` dict, in seq order, as JSON objects."""
    recs = [record_json(kind, r) for kind, arr in arrays.items() for r in arr]
    return sorted(recs, key=lambda o: o["seq"])


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def fixture_wal(name, tmp_path):
    """A copy of tests/fixtures/<name> (feed `golden`): a reader never
    writes, but the copy keeps the repo clean whatever happens."""
    dst = tmp_path / name
    shutil.copytree(FIXTURES / name, dst)
    return dst


class Published:
    """A feed published by `mdbus publish --synthetic --rate 0` into a temp
    dir: WAL in `wal/<feed>/` (several segments), board in `board/`."""

    def __init__(self, root, feed):
        self.root = root
        self.feed = feed
        self.wal = root / "wal"
        self.board_dir = root / "board"

    def segments(self):
        return sorted((self.wal / self.feed).glob("*.wal"))


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("published")
    feed = f"pytest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    pub = Published(root, feed)
    pub.board_dir.mkdir()
    mdbus_cmd(
        "publish", "--feed", feed, "--wal", pub.wal, "--synthetic", "--rate", 0, "--duration",
        os.environ.get("MDBUS_PY_TEST_SECONDS", "2"), "--board-dir", pub.board_dir,
        "--segment-bytes", SEGMENT_BYTES, "--instruments", 16,
    )  # fmt: skip
    yield pub
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def published_all(published):
    """`read_wal(kind="all")` of the published feed."""
    return mdbus.read_wal(published.wal, published.feed, kind="all")


@pytest.fixture(scope="session")
def replayed(published):
    """`mdbus replay --format json` of the published feed, parsed."""
    out = mdbus_cmd("replay", "--wal", published.wal, "--feed", published.feed, "--format", "json")
    return [json.loads(line) for line in out.splitlines()]


def concat(arrays):
    return np.concatenate(arrays) if arrays else None
