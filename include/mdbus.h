/* mdbus.h: the mdbus record layouts and WAL format for C and C++.
 * GENERATED from the Rust code by mdbus_wal::c_header(); do not edit.
 * The contract is docs/spec.md. All integers are little-endian; every
 * struct is 8-byte aligned with explicit padding fields. */
#ifndef MDBUS_H
#define MDBUS_H

#include <stddef.h>
#include <stdint.h>

#define MDBUS_KIND_TICK 1
#define MDBUS_KIND_BOOK_SNAPSHOT 2
#define MDBUS_KIND_BOOK_DELTA 3
#define MDBUS_KIND_HEARTBEAT 4
#define MDBUS_FLAG_END_OF_BATCH 1
#define MDBUS_FLAG_RECOVERY_SNAPSHOT 2
#define MDBUS_FLAG_END_OF_RECORDING 4
/* Prices: int64 fixed point, 1 unit = 1e-9; NULL means "no price". */
#define MDBUS_PRICE_SCALE ((int64_t)1000000000)
#define MDBUS_PRICE_NULL ((int64_t)9223372036854775807)
#define MDBUS_SYMBOL_LEN 16

typedef struct mdbus_record_header {
    uint64_t seq; /* offset 0, 8 bytes */
    int64_t ts_event; /* offset 8, 8 bytes */
    int64_t ts_publish; /* offset 16, 8 bytes */
    uint16_t kind; /* offset 24, 2 bytes */
    uint16_t flags; /* offset 26, 2 bytes */
    uint8_t _pad[4]; /* offset 28, 4 bytes */
} mdbus_record_header;
_Static_assert(sizeof(mdbus_record_header) == 32, "mdbus_record_header size");
_Static_assert(offsetof(mdbus_record_header, seq) == 0, "mdbus_record_header.seq");
_Static_assert(offsetof(mdbus_record_header, ts_event) == 8, "mdbus_record_header.ts_event");
_Static_assert(offsetof(mdbus_record_header, ts_publish) == 16, "mdbus_record_header.ts_publish");
_Static_assert(offsetof(mdbus_record_header, kind) == 24, "mdbus_record_header.kind");
_Static_assert(offsetof(mdbus_record_header, flags) == 26, "mdbus_record_header.flags");
_Static_assert(offsetof(mdbus_record_header, _pad) == 28, "mdbus_record_header._pad");

typedef struct mdbus_tick {
    mdbus_record_header header; /* offset 0, 32 bytes */
    uint8_t instrument[16]; /* offset 32, 16 bytes */
    int64_t last_px; /* offset 48, 8 bytes */
    int64_t last_qty; /* offset 56, 8 bytes */
    int64_t bid_px; /* offset 64, 8 bytes */
    int64_t bid_qty; /* offset 72, 8 bytes */
    int64_t ask_px; /* offset 80, 8 bytes */
    int64_t ask_qty; /* offset 88, 8 bytes */
    int64_t volume; /* offset 96, 8 bytes */
} mdbus_tick;
_Static_assert(sizeof(mdbus_tick) == 104, "mdbus_tick size");
_Static_assert(offsetof(mdbus_tick, header) == 0, "mdbus_tick.header");
_Static_assert(offsetof(mdbus_tick, instrument) == 32, "mdbus_tick.instrument");
_Static_assert(offsetof(mdbus_tick, last_px) == 48, "mdbus_tick.last_px");
_Static_assert(offsetof(mdbus_tick, last_qty) == 56, "mdbus_tick.last_qty");
_Static_assert(offsetof(mdbus_tick, bid_px) == 64, "mdbus_tick.bid_px");
_Static_assert(offsetof(mdbus_tick, bid_qty) == 72, "mdbus_tick.bid_qty");
_Static_assert(offsetof(mdbus_tick, ask_px) == 80, "mdbus_tick.ask_px");
_Static_assert(offsetof(mdbus_tick, ask_qty) == 88, "mdbus_tick.ask_qty");
_Static_assert(offsetof(mdbus_tick, volume) == 96, "mdbus_tick.volume");

typedef struct mdbus_level {
    int64_t price; /* offset 0, 8 bytes */
    int64_t qty; /* offset 8, 8 bytes */
} mdbus_level;
_Static_assert(sizeof(mdbus_level) == 16, "mdbus_level size");
_Static_assert(offsetof(mdbus_level, price) == 0, "mdbus_level.price");
_Static_assert(offsetof(mdbus_level, qty) == 8, "mdbus_level.qty");

typedef struct mdbus_book_snapshot {
    mdbus_record_header header; /* offset 0, 32 bytes */
    uint8_t instrument[16]; /* offset 32, 16 bytes */
    uint16_t bid_count; /* offset 48, 2 bytes */
    uint16_t ask_count; /* offset 50, 2 bytes */
    uint8_t _pad[4]; /* offset 52, 4 bytes */
    mdbus_level bids[10]; /* offset 56, 160 bytes */
    mdbus_level asks[10]; /* offset 216, 160 bytes */
} mdbus_book_snapshot;
_Static_assert(sizeof(mdbus_book_snapshot) == 376, "mdbus_book_snapshot size");
_Static_assert(offsetof(mdbus_book_snapshot, header) == 0, "mdbus_book_snapshot.header");
_Static_assert(offsetof(mdbus_book_snapshot, instrument) == 32, "mdbus_book_snapshot.instrument");
_Static_assert(offsetof(mdbus_book_snapshot, bid_count) == 48, "mdbus_book_snapshot.bid_count");
_Static_assert(offsetof(mdbus_book_snapshot, ask_count) == 50, "mdbus_book_snapshot.ask_count");
_Static_assert(offsetof(mdbus_book_snapshot, _pad) == 52, "mdbus_book_snapshot._pad");
_Static_assert(offsetof(mdbus_book_snapshot, bids) == 56, "mdbus_book_snapshot.bids");
_Static_assert(offsetof(mdbus_book_snapshot, asks) == 216, "mdbus_book_snapshot.asks");

typedef struct mdbus_book_delta {
    mdbus_record_header header; /* offset 0, 32 bytes */
    uint8_t instrument[16]; /* offset 32, 16 bytes */
    int64_t price; /* offset 48, 8 bytes */
    int64_t qty; /* offset 56, 8 bytes */
    uint8_t side; /* offset 64, 1 bytes */
    uint8_t _pad[7]; /* offset 65, 7 bytes */
} mdbus_book_delta;
_Static_assert(sizeof(mdbus_book_delta) == 72, "mdbus_book_delta size");
_Static_assert(offsetof(mdbus_book_delta, header) == 0, "mdbus_book_delta.header");
_Static_assert(offsetof(mdbus_book_delta, instrument) == 32, "mdbus_book_delta.instrument");
_Static_assert(offsetof(mdbus_book_delta, price) == 48, "mdbus_book_delta.price");
_Static_assert(offsetof(mdbus_book_delta, qty) == 56, "mdbus_book_delta.qty");
_Static_assert(offsetof(mdbus_book_delta, side) == 64, "mdbus_book_delta.side");
_Static_assert(offsetof(mdbus_book_delta, _pad) == 65, "mdbus_book_delta._pad");

typedef struct mdbus_heartbeat {
    mdbus_record_header header; /* offset 0, 32 bytes */
} mdbus_heartbeat;
_Static_assert(sizeof(mdbus_heartbeat) == 32, "mdbus_heartbeat size");
_Static_assert(offsetof(mdbus_heartbeat, header) == 0, "mdbus_heartbeat.header");

typedef struct mdbus_md_sample {
    uint64_t words[47]; /* offset 0, 376 bytes */
} mdbus_md_sample;
_Static_assert(sizeof(mdbus_md_sample) == 376, "mdbus_md_sample size");
_Static_assert(offsetof(mdbus_md_sample, words) == 0, "mdbus_md_sample.words");

/* WAL: <root>/<feed>/<first_seq:020>.wal. A segment starts with a
 * header, then frames: len u32 (the payload's exact length, one of the
 * record sizes; 0 = the live end), crc32c u32 of the payload, the
 * payload (the record's bytes), zero padding to 8 bytes. */
#define MDBUS_WAL_MAGIC "MDBUSWAL"
#define MDBUS_WAL_VERSION 1
#define MDBUS_WAL_HEADER_LEN 128
#define MDBUS_WAL_FRAME_HEADER_LEN 8

typedef struct mdbus_wal_segment_header {
    char magic[8]; /* MDBUS_WAL_MAGIC, not NUL-terminated */
    uint32_t version;
    uint32_t header_len;
    uint64_t first_seq;
    int64_t created_ns;
    uint64_t segment_bytes;
    char feed[32]; /* NUL-padded */
    uint8_t reserved[52];
    uint32_t header_crc32c; /* crc32c of bytes 0..124 */
} mdbus_wal_segment_header;
_Static_assert(sizeof(mdbus_wal_segment_header) == MDBUS_WAL_HEADER_LEN, "segment header size");
_Static_assert(offsetof(mdbus_wal_segment_header, version) == 8, "segment header version");
_Static_assert(offsetof(mdbus_wal_segment_header, first_seq) == 16, "segment header first_seq");
_Static_assert(offsetof(mdbus_wal_segment_header, segment_bytes) == 32, "segment header segment_bytes");
_Static_assert(offsetof(mdbus_wal_segment_header, feed) == 40, "segment header feed");
_Static_assert(offsetof(mdbus_wal_segment_header, header_crc32c) == 124, "segment header header_crc32c");

typedef struct mdbus_wal_frame_header {
    uint32_t len;
    uint32_t crc32c;
} mdbus_wal_frame_header;
_Static_assert(sizeof(mdbus_wal_frame_header) == MDBUS_WAL_FRAME_HEADER_LEN, "frame header size");

#endif /* MDBUS_H */
