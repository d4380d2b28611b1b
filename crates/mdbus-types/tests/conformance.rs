//! Conformance with docs/spec.md: the layout table, and the records of a WAL
//! folder written independently from docs/spec.md (tests/fixtures/wal-clean).

use std::collections::BTreeMap;
use std::path::PathBuf;

use mdbus_types::{Book, RecordRef, json, layout_table, layout_table_markdown};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The layout table of the contract (`docs/spec.md`), the meaning column
/// dropped and cells trimmed.
fn design_rows() -> Vec<Vec<String>> {
    let spec = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/spec.md");
    let text = std::fs::read_to_string(&spec).unwrap();
    let table: Vec<&str> = text
        .lines()
        .skip_while(|line| *line != "| record | off | size | field | type | meaning |")
        .take_while(|line| line.starts_with('|'))
        .collect();
    assert!(table.len() > 2, "no layout table in {}", spec.display());
    table
        .into_iter()
        .skip(2)
        .map(|line| {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().replace('`', ""))
                .collect();
            cells[..5].to_vec()
        })
        .collect()
}

#[test]
fn layout_table_from_code_equals_design_table() {
    let printed = layout_table_markdown();
    println!("{printed}");
    let code: Vec<Vec<String>> = printed
        .lines()
        .skip(2)
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let design = design_rows();
    assert_eq!(code.len(), design.len(), "row count differs from docs/spec.md");
    for (c, d) in code.iter().zip(&design) {
        assert_eq!(c, d, "layout row differs from docs/spec.md");
    }
    assert_eq!(layout_table().len(), design.len());
}

/// Walks the frames of a WAL segment written from docs/spec.md's frame rules.
fn frames(segment: &[u8]) -> Vec<&[u8]> {
    assert_eq!(&segment[..8], b"MDBUSWAL");
    let mut out = Vec::new();
    let mut off = 128;
    while off + 8 <= segment.len() {
        let len = u32::from_le_bytes(segment[off..off + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        let crc = u32::from_le_bytes(segment[off + 4..off + 8].try_into().unwrap());
        let payload = &segment[off + 8..off + 8 + len];
        assert_eq!(crc32c::crc32c(payload), crc, "crc of frame at {off}");
        out.push(payload);
        off += 8 + len.next_multiple_of(8);
    }
    out
}

/// The fixture segment in an 8-aligned buffer: records are read in place.
fn segment_words() -> Vec<u64> {
    let raw = std::fs::read(fixtures().join("wal-clean/golden/00000000000000000001.wal")).unwrap();
    assert_eq!(raw.len(), 65536);
    let mut words = vec![0u64; raw.len() / 8];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words).copy_from_slice(&raw);
    words
}

#[test]
fn wal_clean_fixture_decodes_to_expected_json_and_back_to_the_same_bytes() {
    let words = segment_words();
    let segment = &bytemuck::cast_slice::<u64, u8>(&words)[..65536];
    let expected = std::fs::read_to_string(fixtures().join("wal-clean/expected.jsonl")).unwrap();
    let expected: Vec<&str> = expected.lines().collect();
    let frames = frames(segment);
    assert_eq!(frames.len(), expected.len());
    assert_eq!(frames.len(), 21);
    for (payload, line) in frames.iter().zip(&expected) {
        let record = RecordRef::from_bytes(payload).unwrap();
        let ours: serde_json::Value = serde_json::from_str(&json::record_to_json(record)).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(ours, theirs, "seq {}", record.header().seq);
        // And the JSON encodes back to exactly the frame's bytes.
        let sample = json::sample_from_json(line).unwrap();
        assert_eq!(sample.record_bytes().unwrap(), *payload, "seq {}", record.header().seq);
        assert_eq!(sample, record.to_sample());
    }
}

#[test]
fn wal_clean_fixture_books_equal_expected_books() {
    let words = segment_words();
    let segment: &[u8] = bytemuck::cast_slice(&words);
    let mut books: BTreeMap<String, Book> = BTreeMap::new();
    for payload in frames(segment) {
        match RecordRef::from_bytes(payload).unwrap() {
            RecordRef::BookSnapshot(s) => {
                books.insert(s.instrument.to_string(), Book::from_snapshot(s).unwrap());
            }
            RecordRef::BookDelta(d) => {
                books.get_mut(d.instrument.as_str()).unwrap().apply_delta(d).unwrap();
            }
            _ => {}
        }
    }
    let expected: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("wal-clean/expected-books.json")).unwrap())
            .unwrap();
    assert_eq!(books.len(), expected.len());
    for (symbol, want) in expected {
        let snap = books[&symbol].to_snapshot();
        let got: serde_json::Value =
            serde_json::from_str(&json::record_to_json(RecordRef::BookSnapshot(&snap))).unwrap();
        assert_eq!(got, want, "{symbol}");
    }
}

#[test]
fn rkyv_archive_of_each_record_is_its_plain_bytes() {
    let words = segment_words();
    let segment: &[u8] = bytemuck::cast_slice(&words);
    let mut kinds = std::collections::BTreeSet::new();
    for payload in frames(segment) {
        let record = RecordRef::from_bytes(payload).unwrap();
        kinds.insert(record.kind() as u16);
        let archived = match record {
            RecordRef::Tick(r) => rkyv::to_bytes::<rkyv::rancor::Error>(r).unwrap(),
            RecordRef::BookSnapshot(r) => rkyv::to_bytes::<rkyv::rancor::Error>(r).unwrap(),
            RecordRef::BookDelta(r) => rkyv::to_bytes::<rkyv::rancor::Error>(r).unwrap(),
            RecordRef::Heartbeat(r) => rkyv::to_bytes::<rkyv::rancor::Error>(r).unwrap(),
        };
        assert_eq!(archived.as_slice(), payload, "seq {}", record.header().seq);
    }
    assert_eq!(kinds.len(), 4, "the fixture holds every kind");
}
