/* Reads one mdbus WAL segment through include/mdbus.h alone (no Rust):
 * checks the segment header (magic, version, crc32c), then walks the
 * frames, checks each frame's crc32c, and prints one line per record:
 *
 *   seq kind instrument flags detail
 *
 * where detail is last_px/last_qty for a tick, bid_count/ask_count and the
 * best bid for a snapshot, side/price/qty for a delta. Stops at the live
 * end (len 0). Exit 0 when every frame was valid, 1 on a bad one (named
 * with its offset), 2 on usage or I/O errors.
 *
 *   cc -std=c11 -Wall -Wextra -Werror -I include tests/c/read_wal.c -o read_wal
 *   ./read_wal tests/fixtures/wal-clean/golden/00000000000000000001.wal
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mdbus.h"

/* crc32c (Castagnoli, reflected 0x82F63B78), bit by bit: small, slow, plain. */
static uint32_t crc32c(const uint8_t *p, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void symbol(const uint8_t raw[MDBUS_SYMBOL_LEN], char out[MDBUS_SYMBOL_LEN + 1]) {
    memcpy(out, raw, MDBUS_SYMBOL_LEN);
    out[MDBUS_SYMBOL_LEN] = '\0';
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SEGMENT.wal\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)size);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "%s: cannot read %ld bytes\n", argv[1], size);
        return 2;
    }
    fclose(f);
    if (size < MDBUS_WAL_HEADER_LEN) {
        fprintf(stderr, "%s: shorter than the segment header\n", argv[1]);
        return 1;
    }
    mdbus_wal_segment_header header;
    memcpy(&header, buf, sizeof header);
    if (memcmp(header.magic, MDBUS_WAL_MAGIC, 8) != 0 || header.version != MDBUS_WAL_VERSION ||
        header.header_len != MDBUS_WAL_HEADER_LEN) {
        fprintf(stderr, "%s: not an mdbus WAL segment of version %d\n", argv[1], MDBUS_WAL_VERSION);
        return 1;
    }
    if (crc32c(buf, offsetof(mdbus_wal_segment_header, header_crc32c)) != header.header_crc32c) {
        fprintf(stderr, "%s: segment header crc32c mismatch\n", argv[1]);
        return 1;
    }
    printf("# feed %.32s first_seq %" PRIu64 "\n", header.feed, header.first_seq);
    size_t off = MDBUS_WAL_HEADER_LEN;
    while (off + MDBUS_WAL_FRAME_HEADER_LEN <= (size_t)size) {
        mdbus_wal_frame_header frame;
        memcpy(&frame, buf + off, sizeof frame);
        if (frame.len == 0) break; /* the live end */
        size_t payload = off + MDBUS_WAL_FRAME_HEADER_LEN;
        if (payload + frame.len > (size_t)size || frame.len < sizeof(mdbus_record_header)) {
            fprintf(stderr, "%s: bad frame length %" PRIu32 " at offset %zu\n", argv[1], frame.len, off);
            return 1;
        }
        if (crc32c(buf + payload, frame.len) != frame.crc32c) {
            fprintf(stderr, "%s: crc32c mismatch in the frame at offset %zu\n", argv[1], off);
            return 1;
        }
        mdbus_record_header h;
        memcpy(&h, buf + payload, sizeof h);
        char sym[MDBUS_SYMBOL_LEN + 1] = "-";
        if (h.kind == MDBUS_KIND_TICK && frame.len == sizeof(mdbus_tick)) {
            mdbus_tick t;
            memcpy(&t, buf + payload, sizeof t);
            symbol(t.instrument, sym);
            printf("%" PRIu64 " tick %s %u last %" PRId64 " x %" PRId64 "\n", h.seq, sym, h.flags, t.last_px,
                   t.last_qty);
        } else if (h.kind == MDBUS_KIND_BOOK_SNAPSHOT && frame.len == sizeof(mdbus_book_snapshot)) {
            mdbus_book_snapshot s;
            memcpy(&s, buf + payload, sizeof s);
            symbol(s.instrument, sym);
            printf("%" PRIu64 " book_snapshot %s %u levels %u/%u best_bid %" PRId64 "\n", h.seq, sym, h.flags,
                   s.bid_count, s.ask_count, s.bid_count ? s.bids[0].price : MDBUS_PRICE_NULL);
        } else if (h.kind == MDBUS_KIND_BOOK_DELTA && frame.len == sizeof(mdbus_book_delta)) {
            mdbus_book_delta d;
            memcpy(&d, buf + payload, sizeof d);
            symbol(d.instrument, sym);
            printf("%" PRIu64 " book_delta %s %u %s %" PRId64 " x %" PRId64 "\n", h.seq, sym, h.flags,
                   d.side ? "ask" : "bid", d.price, d.qty);
        } else if (h.kind == MDBUS_KIND_HEARTBEAT && frame.len == sizeof(mdbus_heartbeat)) {
            printf("%" PRIu64 " heartbeat - %u\n", h.seq, h.flags);
        } else {
            fprintf(stderr, "%s: kind %u with length %" PRIu32 " at offset %zu\n", argv[1], h.kind, frame.len, off);
            return 1;
        }
        off = payload + ((frame.len + 7u) & ~7u);
    }
    free(buf);
    return 0;
}
