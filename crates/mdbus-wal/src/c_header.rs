//! `include/mdbus.h`, the contract for C and C++, generated from the code:
//! the record structs from [`mdbus_types::layout_table`] (so every size and
//! offset is the one the Rust compiler asserts), the kinds, flags and
//! price constants, and the WAL's segment header and frame constants.
//! `tests/c_header.rs` checks the checked-in header against this, and
//! compiles a C reader of a WAL fixture with it.

use std::fmt::Write;

use mdbus_types::{
    FLAG_END_OF_BATCH, FLAG_END_OF_RECORDING, FLAG_RECOVERY_SNAPSHOT, Kind, PRICE_SCALE, Price, SYMBOL_LEN,
    layout_table,
};

use crate::format::{FRAME_HEADER_LEN, HEADER_LEN, MAGIC, VERSION};

/// The C name of a record type: `Tick` -> `mdbus_tick`.
fn c_struct(record: &str) -> String {
    let mut out = String::from("mdbus_");
    for (i, ch) in record.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// A field declaration for a layout-table type (`u64`, `[u8; 16]`,
/// `[Level; 10]`, `Price`, ...).
fn c_field(ty: &str, field: &str) -> String {
    let scalar = |t: &str| match t {
        "u8" => "uint8_t".to_string(),
        "u16" => "uint16_t".to_string(),
        "u32" => "uint32_t".to_string(),
        "u64" => "uint64_t".to_string(),
        "i64" | "Price" | "Qty" => "int64_t".to_string(),
        other => c_struct(other),
    };
    match ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(array) => {
            let (elem, len) = array.split_once("; ").expect("array types are `[T; N]`");
            format!("{} {field}[{len}];", scalar(elem))
        }
        None => format!("{} {field};", scalar(ty)),
    }
}

/// The text of `include/mdbus.h`.
pub fn c_header() -> String {
    let mut h = String::new();
    let w = &mut h;
    // `write!` into a String cannot fail.
    let _ = writeln!(
        w,
        "/* mdbus.h: the mdbus record layouts and WAL format for C and C++.\n \
         * GENERATED from the Rust code by mdbus_wal::c_header(); do not edit.\n \
         * The contract is docs/spec.md. All integers are little-endian; every\n \
         * struct is 8-byte aligned with explicit padding fields. */"
    );
    let _ = writeln!(
        w,
        "#ifndef MDBUS_H\n#define MDBUS_H\n\n#include <stddef.h>\n#include <stdint.h>\n"
    );
    for kind in [Kind::Tick, Kind::BookSnapshot, Kind::BookDelta, Kind::Heartbeat] {
        let name = kind.json_name().to_ascii_uppercase();
        let _ = writeln!(w, "#define MDBUS_KIND_{name} {}", kind as u16);
    }
    let _ = writeln!(w, "#define MDBUS_FLAG_END_OF_BATCH {FLAG_END_OF_BATCH}");
    let _ = writeln!(w, "#define MDBUS_FLAG_RECOVERY_SNAPSHOT {FLAG_RECOVERY_SNAPSHOT}");
    let _ = writeln!(w, "#define MDBUS_FLAG_END_OF_RECORDING {FLAG_END_OF_RECORDING}");
    let _ = writeln!(
        w,
        "/* Prices: int64 fixed point, 1 unit = 1e-9; NULL means \"no price\". */"
    );
    let _ = writeln!(w, "#define MDBUS_PRICE_SCALE ((int64_t){PRICE_SCALE})");
    let _ = writeln!(w, "#define MDBUS_PRICE_NULL ((int64_t){})", Price::NULL.raw());
    let _ = writeln!(w, "#define MDBUS_SYMBOL_LEN {SYMBOL_LEN}\n");

    let rows = layout_table();
    let mut records: Vec<(&str, usize)> = Vec::new();
    for row in &rows {
        if records.last().map(|r| r.0) != Some(row.record) {
            records.push((row.record, row.record_size));
        }
    }
    for (record, size) in &records {
        let name = c_struct(record);
        let _ = writeln!(w, "typedef struct {name} {{");
        for row in rows.iter().filter(|r| r.record == *record) {
            let _ = writeln!(
                w,
                "    {} /* offset {}, {} bytes */",
                c_field(row.ty, row.field),
                row.offset,
                row.size
            );
        }
        let _ = writeln!(w, "}} {name};");
        let _ = writeln!(w, "_Static_assert(sizeof({name}) == {size}, \"{name} size\");");
        for row in rows.iter().filter(|r| r.record == *record) {
            let _ = writeln!(
                w,
                "_Static_assert(offsetof({name}, {}) == {}, \"{name}.{}\");",
                row.field, row.offset, row.field
            );
        }
        let _ = writeln!(w);
    }

    let _ = writeln!(
        w,
        "/* WAL: <root>/<feed>/<first_seq:020>.wal. A segment starts with a\n \
         * header, then frames: len u32 (the payload's exact length, one of the\n \
         * record sizes; 0 = the live end), crc32c u32 of the payload, the\n \
         * payload (the record's bytes), zero padding to 8 bytes. */"
    );
    let magic = std::str::from_utf8(MAGIC).expect("ASCII magic");
    let _ = writeln!(w, "#define MDBUS_WAL_MAGIC \"{magic}\"");
    let _ = writeln!(w, "#define MDBUS_WAL_VERSION {VERSION}");
    let _ = writeln!(w, "#define MDBUS_WAL_HEADER_LEN {HEADER_LEN}");
    let _ = writeln!(w, "#define MDBUS_WAL_FRAME_HEADER_LEN {FRAME_HEADER_LEN}\n");
    let _ = writeln!(
        w,
        "typedef struct mdbus_wal_segment_header {{\n    \
         char magic[8]; /* MDBUS_WAL_MAGIC, not NUL-terminated */\n    \
         uint32_t version;\n    \
         uint32_t header_len;\n    \
         uint64_t first_seq;\n    \
         int64_t created_ns;\n    \
         uint64_t segment_bytes;\n    \
         char feed[32]; /* NUL-padded */\n    \
         uint8_t reserved[52];\n    \
         uint32_t header_crc32c; /* crc32c of bytes 0..124 */\n\
         }} mdbus_wal_segment_header;"
    );
    let _ = writeln!(
        w,
        "_Static_assert(sizeof(mdbus_wal_segment_header) == MDBUS_WAL_HEADER_LEN, \"segment header size\");"
    );
    for (field, offset) in [
        ("version", 8),
        ("first_seq", 16),
        ("segment_bytes", 32),
        ("feed", 40),
        ("header_crc32c", 124),
    ] {
        let _ = writeln!(
            w,
            "_Static_assert(offsetof(mdbus_wal_segment_header, {field}) == {offset}, \"segment header {field}\");"
        );
    }
    let _ = writeln!(
        w,
        "\ntypedef struct mdbus_wal_frame_header {{\n    uint32_t len;\n    uint32_t crc32c;\n}} mdbus_wal_frame_header;"
    );
    let _ = writeln!(
        w,
        "_Static_assert(sizeof(mdbus_wal_frame_header) == MDBUS_WAL_FRAME_HEADER_LEN, \"frame header size\");"
    );
    let _ = writeln!(w, "\n#endif /* MDBUS_H */");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_fields_map_to_c() {
        assert_eq!(c_struct("BookSnapshot"), "mdbus_book_snapshot");
        assert_eq!(c_struct("MdSample"), "mdbus_md_sample");
        assert_eq!(c_field("[Level; 10]", "bids"), "mdbus_level bids[10];");
        assert_eq!(c_field("Price", "last_px"), "int64_t last_px;");
        assert_eq!(c_field("[u8; 16]", "instrument"), "uint8_t instrument[16];");
    }
}
