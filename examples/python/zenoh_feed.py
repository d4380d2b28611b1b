#!/usr/bin/env python3
"""A feed from `mdbus bridge out`, read by a plain Zenoh client (package
`eclipse-zenoh`, no mdbus code): each message on `mdbus/<feed>/md` is whole
records in the documented layout (docs/spec.md, "Records"), concatenated in
seq order, with the CRC-32C of those bytes as the attachment; this checks
the checksum, decodes the records and checks that seq is dense.

    pip install eclipse-zenoh
    python examples/python/zenoh_feed.py --connect tcp/SOURCE:7447 --feed md \\
        [--count 100000] [--timeout 30] [--print 5]

Prints the first --print ticks, then one JSON summary line: records,
first and last seq, counts per kind, bad messages (checksum missing or not
matching, or not whole records; dropped), holes (seqs that did not follow; a
plain client has no gap fill: `mdbus bridge in` asks the source's WAL for
them), and the first ticks decoded. Exit code 0 when --count records came
with dense seq, 1 on a hole, 2 when --timeout passed first.
"""

import argparse
import json
import queue
import struct
import sys
import time

import zenoh

# RecordHeader (32 bytes): seq u64, ts_event i64, ts_publish i64, kind u16,
# flags u16, 4 bytes of padding; little-endian.
HEADER = struct.Struct("<QqqHH4x")
# Record size by kind: 1 Tick, 2 BookSnapshot, 3 BookDelta, 4 Heartbeat.
SIZES = {1: 104, 2: 376, 3: 72, 4: 32}
KINDS = {1: "tick", 2: "book_snapshot", 3: "book_delta", 4: "heartbeat"}
# Tick after its header: instrument [u8; 16], then last_px, last_qty,
# bid_px, bid_qty, ask_px, ask_qty, volume (i64 each; prices 1e-9 units).
TICK = struct.Struct("<16s7q")
PRICE_NULL = 2**63 - 1


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli) of `data`, the checksum `bridge out` attaches
    (the `crc32c` package computes the same, faster, where installed)."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:
    from crc32c import crc32c  # noqa: F811 (the same function, in C)
except ImportError:
    pass


def check(message, attachment):
    """ValueError unless `attachment` is the CRC-32C of `message` (4 bytes,
    little-endian): a payload changed on the way is not used."""
    if attachment is None or len(attachment) != 4:
        raise ValueError(f"message of {len(message)} bytes without a 4-byte checksum attachment")
    attached = struct.unpack("<I", attachment)[0]
    computed = crc32c(message)
    if attached != computed:
        raise ValueError(f"message of {len(message)} bytes: CRC-32C {computed:08x} does not match the attached {attached:08x}")


def records(message):
    """(seq, kind, offset) of each record of a message; ValueError when it
    is not whole records of known kinds."""
    offset = 0
    while offset < len(message):
        if offset + HEADER.size > len(message):
            raise ValueError(f"message of {len(message)} bytes ends inside a header at {offset}")
        seq, _ts_event, _ts_publish, kind, _flags = HEADER.unpack_from(message, offset)
        size = SIZES.get(kind)
        if size is None:
            raise ValueError(f"unknown kind {kind} at byte {offset}")
        if offset + size > len(message):
            raise ValueError(f"message of {len(message)} bytes ends inside a record at {offset}")
        yield seq, kind, offset
        offset += size


def tick(message, offset):
    """A tick as a dict: seq, instrument, last price (float or None), volume."""
    seq, ts_event, ts_publish, _kind, _flags = HEADER.unpack_from(message, offset)
    instrument, last_px, last_qty, _bp, _bq, _ap, _aq, volume = TICK.unpack_from(message, offset + HEADER.size)
    return {
        "seq": seq,
        "ts_event": ts_event,
        "instrument": instrument.rstrip(b"\0").decode("ascii"),
        "last_px": None if last_px == PRICE_NULL else last_px / 1e9,
        "last_px_raw": last_px,
        "last_qty": last_qty,
        "volume": volume,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connect", required=True, action="append", help="Zenoh endpoint of the sending bridge, e.g. tcp/127.0.0.1:7447")
    ap.add_argument("--feed", required=True)
    ap.add_argument("--count", type=int, default=100_000, help="stop after this many records")
    ap.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds")
    ap.add_argument("--print", type=int, default=5, help="print the first N ticks")
    args = ap.parse_args()

    zenoh.init_log_from_env_or("error")
    config = zenoh.Config()
    config.insert_json5("mode", '"peer"')
    config.insert_json5("scouting/multicast/enabled", "false")
    config.insert_json5("listen/endpoints", "[]")
    config.insert_json5("connect/endpoints", json.dumps(args.connect))
    messages = queue.Queue()
    deadline = time.monotonic() + args.timeout
    summary = {"records": 0, "first_seq": None, "last_seq": None, "kinds": {}, "holes": 0, "bad_messages": 0, "ticks": []}
    with zenoh.open(config) as session:
        # Zenoh's thread only queues the bytes; decoding happens here.
        def queue_message(sample):
            attachment = sample.attachment.to_bytes() if sample.attachment is not None else None
            messages.put((sample.payload.to_bytes(), attachment))

        session.declare_subscriber(f"mdbus/{args.feed}/md", queue_message)
        while summary["records"] < args.count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                message, attachment = messages.get(timeout=left)
            except queue.Empty:
                break
            try:
                check(message, attachment)
                decoded = list(records(message))
            except ValueError as e:
                summary["bad_messages"] += 1
                print(f"refused a message: {e}", file=sys.stderr)
                continue
            for seq, kind, offset in decoded:
                last = summary["last_seq"]
                if last is not None and seq != last + 1:
                    summary["holes"] += 1
                    print(f"hole: seq {seq} after {last}", file=sys.stderr)
                if summary["first_seq"] is None:
                    summary["first_seq"] = seq
                summary["last_seq"] = seq
                summary["records"] += 1
                name = KINDS[kind]
                summary["kinds"][name] = summary["kinds"].get(name, 0) + 1
                if kind == 1 and len(summary["ticks"]) < args.print:
                    t = tick(message, offset)
                    summary["ticks"].append(t)
                    print(f"seq {t['seq']} {t['instrument']} last {t['last_px']} x {t['last_qty']} volume {t['volume']}")
    print(json.dumps(summary))
    if summary["holes"]:
        return 1
    return 0 if summary["records"] >= args.count else 2


if __name__ == "__main__":
    sys.exit(main())
