//! The layout table of the records, printed from the code: every field's
//! offset, size and type, as docs/spec.md's table and `include/mdbus.h`
//! hold them.

use std::mem::{offset_of, size_of};

use bytemuck::Zeroable;

use crate::record::{BookDelta, BookSnapshot, Heartbeat, Level, RecordHeader, Tick};
use crate::sample::MdSample;

/// One row of the layout table: a field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRow {
    /// Record type name.
    pub record: &'static str,
    /// Size of the record.
    pub record_size: usize,
    /// Field offset in bytes.
    pub offset: usize,
    /// Field size in bytes.
    pub size: usize,
    /// Field name.
    pub field: &'static str,
    /// Field type as docs/spec.md writes it.
    pub ty: &'static str,
}

macro_rules! rows {
    ($out:ident, $rec:ty, $name:literal, $( $field:ident : $ty:literal ),+ $(,)?) => {{
        let zero = <$rec as Zeroable>::zeroed();
        $(
            $out.push(LayoutRow {
                record: $name,
                record_size: size_of::<$rec>(),
                offset: offset_of!($rec, $field),
                size: std::mem::size_of_val(&zero.$field),
                field: stringify!($field),
                ty: $ty,
            });
        )+
    }};
}

/// The layout table of every record, from the code (offsets from
/// `offset_of!`, sizes from `size_of`), in docs/spec.md's order.
pub fn layout_table() -> Vec<LayoutRow> {
    let mut out = Vec::new();
    rows!(out, RecordHeader, "RecordHeader",
        seq: "u64", ts_event: "i64", ts_publish: "i64", kind: "u16", flags: "u16", _pad: "[u8; 4]");
    rows!(out, Tick, "Tick",
        header: "RecordHeader", instrument: "[u8; 16]", last_px: "Price", last_qty: "Qty",
        bid_px: "Price", bid_qty: "Qty", ask_px: "Price", ask_qty: "Qty", volume: "Qty");
    rows!(out, Level, "Level", price: "Price", qty: "Qty");
    rows!(out, BookSnapshot, "BookSnapshot",
        header: "RecordHeader", instrument: "[u8; 16]", bid_count: "u16", ask_count: "u16",
        _pad: "[u8; 4]", bids: "[Level; 10]", asks: "[Level; 10]");
    rows!(out, BookDelta, "BookDelta",
        header: "RecordHeader", instrument: "[u8; 16]", price: "Price", qty: "Qty",
        side: "u8", _pad: "[u8; 7]");
    rows!(out, Heartbeat, "Heartbeat", header: "RecordHeader");
    rows!(out, MdSample, "MdSample", words: "[u64; 47]");
    out
}

/// The layout table as docs/spec.md's markdown rows:
/// `| Tick (104) | 0 | 32 | header | RecordHeader |` (record name on a
/// record's first row only; the meaning column is left out).
pub fn layout_table_markdown() -> String {
    let mut out = String::from("| record | off | size | field | type |\n|---|---|---|---|---|\n");
    let mut last = "";
    for row in layout_table() {
        let name = if row.record != last {
            format!("{} ({})", row.record, row.record_size)
        } else {
            String::new()
        };
        last = row.record;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            name, row.offset, row.size, row.field, row.ty
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_implicit_padding_field_sizes_sum_to_record_size() {
        let table = layout_table();
        for record in [
            "RecordHeader",
            "Tick",
            "Level",
            "BookSnapshot",
            "BookDelta",
            "Heartbeat",
            "MdSample",
        ] {
            let rows: Vec<_> = table.iter().filter(|r| r.record == record).collect();
            let mut next = 0;
            for r in &rows {
                assert_eq!(r.offset, next, "{record}.{} leaves a gap", r.field);
                next += r.size;
            }
            assert_eq!(next, rows[0].record_size, "{record} has trailing padding");
        }
    }
}
