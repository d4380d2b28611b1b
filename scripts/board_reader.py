#!/usr/bin/env python3
"""Read an mdbus snapshot board with mmap and docs/spec.md's layout alone.

No iceoryx2, no Rust: this is how a risk service in another language reads
the latest tick and book of any instrument.

    board_reader.py BOARD_FILE [--instrument SYMBOL]   # JSON, one object per instrument
    board_reader.py BOARD_FILE --status                # the header as JSON
    board_reader.py BOARD_FILE --torture SECONDS       # check counter-derived ticks are never torn

Prices print as exact decimals from the 1e-9 fixed point (null for NULL).
"""
import json
import mmap
import struct
import sys
import time
from decimal import Decimal

NULL = (1 << 63) - 1
HEADER = struct.Struct("<8sIIIIIIQIIqQ32s")
TICK = struct.Struct("<QqqHH4x16sqqqqqqq")  # 104 bytes
BOOK_HEAD = struct.Struct("<QqqHH4x16sHH4x")  # 56 bytes, then 20 levels
LEVEL = struct.Struct("<qq")
TICK_CELL, BOOK_CELL, SLOT_LEN, ENTRY_LEN = 0, 256, 1024, 24


def price(units):
    if units == NULL:
        return None
    return Decimal(units).scaleb(-9)


def dump(value):
    """JSON text with Decimal prices written as exact decimals (never via float)."""
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + dump(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return json.dumps(value)


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def symbol(raw):
    return raw.rstrip(b"\0").decode("ascii")


class Board:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.map = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        (magic, version, header_len, capacity, index_len, slot_len, count, epoch,
         pid, _pad, heartbeat, last_seq, feed) = HEADER.unpack_from(self.map, 0)
        if magic != b"MDBUSBRD" or version != 1 or header_len != 128 or slot_len != SLOT_LEN:
            raise SystemExit(f"{path}: not an mdbus board version 1 (magic {magic!r}, version {version})")
        self.capacity, self.index_len = capacity, index_len
        self.slots = (128 + index_len * ENTRY_LEN + 63) // 64 * 64
        self.status = {"feed": symbol(feed), "capacity": capacity, "count": count, "epoch": epoch,
                       "writer_pid": pid, "heartbeat_ns": heartbeat, "last_seq": last_seq}

    def lookup(self, sym):
        key = sym.encode("ascii").ljust(16, b"\0")
        i = fnv1a64(key) & (self.index_len - 1)
        for _ in range(self.index_len):
            off = 128 + i * ENTRY_LEN
            raw, slot, ready = struct.unpack_from("<16sII", self.map, off)
            if ready == 0:
                return None
            if raw == key:
                return self.slots + slot * SLOT_LEN
            i = (i + 1) & (self.index_len - 1)
        return None

    def instruments(self):
        out = []
        for i in range(self.index_len):
            raw, _slot, ready = struct.unpack_from("<16sII", self.map, 128 + i * ENTRY_LEN)
            if ready:
                out.append(symbol(raw))
        return sorted(out)

    def latch(self, cell, size):
        """The seqcount latch: copy the copy not being written, retry if seq moved."""
        while True:
            (seq,) = struct.unpack_from("<Q", self.map, cell)
            start = cell + 8 + (size if seq & 1 else 0)
            data = self.map[start:start + size]
            (again,) = struct.unpack_from("<Q", self.map, cell)
            if again == seq:
                return data

    def tick(self, slot):
        data = self.latch(slot + TICK_CELL, 104)
        (seq, ts_event, ts_publish, kind, flags, inst, last_px, last_qty, bid_px, bid_qty,
         ask_px, ask_qty, volume) = TICK.unpack_from(data)
        if seq == 0:
            return None
        return {"seq": seq, "kind": "tick", "instrument": symbol(inst), "ts_event": ts_event,
                "ts_publish": ts_publish, "flags": flags, "last_px": price(last_px), "last_qty": last_qty,
                "bid_px": price(bid_px), "bid_qty": bid_qty, "ask_px": price(ask_px), "ask_qty": ask_qty,
                "volume": volume}

    def book(self, slot):
        data = self.latch(slot + BOOK_CELL, 376)
        seq, ts_event, ts_publish, kind, flags, inst, bid_count, ask_count = BOOK_HEAD.unpack_from(data)
        if seq == 0:
            return None
        levels = [LEVEL.unpack_from(data, 56 + 16 * i) for i in range(20)]
        bids = [[price(p), q] for p, q in levels[:bid_count]]
        asks = [[price(p), q] for p, q in levels[10:10 + ask_count]]
        return {"seq": seq, "kind": "book_snapshot", "instrument": symbol(inst), "ts_event": ts_event,
                "ts_publish": ts_publish, "flags": flags, "bids": bids, "asks": asks}


def torture(board, seconds):
    """Ticks written by the torture writer derive every field from seq."""
    reads = torn = 0
    names = board.instruments()
    slots = [board.lookup(n) for n in names]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for slot in slots:
            data = board.latch(slot + TICK_CELL, 104)
            f = TICK.unpack_from(data)
            seq = f[0]
            if seq == 0:
                continue
            reads += 1
            want = (seq * 7, seq * 3, seq * 5, seq, seq * 11, seq * 2, seq * 13)
            if f[1] != seq or tuple(f[6:13]) != want:
                torn += 1
    print(json.dumps({"reads": reads, "torn": torn}))
    return 1 if torn else 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    board = Board(argv[1])
    args = argv[2:]
    if args[:1] == ["--status"]:
        print(json.dumps(board.status))
        return 0
    if args[:1] == ["--torture"]:
        return torture(board, float(args[1]))
    names = board.instruments()
    if args[:1] == ["--instrument"]:
        names = [args[1]]
    for name in names:
        slot = board.lookup(name)
        if slot is None:
            print(f"instrument {name!r} is not on the board", file=sys.stderr)
            return 1
        print(dump({"instrument": name, "book": board.book(slot), "tick": board.tick(slot)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
