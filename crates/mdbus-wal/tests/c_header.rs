//! `include/mdbus.h` is what the code generates, and a C program built with
//! `cc` reads a WAL fixture (written independently from docs/spec.md)
//! through it: the same records as the fixture's expected JSON, and a bit
//! flip found.
//!
//! After a layout change: `MDBUS_BLESS=1 cargo test -p mdbus-wal --test
//! c_header` rewrites the header, then commit it with docs/spec.md.

use std::path::{Path, PathBuf};
use std::process::Command;

use mdbus_types::RecordRef;
use mdbus_types::json::sample_from_json;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_checked_in_header_is_the_generated_one() {
    let path = root().join("include/mdbus.h");
    let generated = mdbus_wal::c_header();
    if std::env::var_os("MDBUS_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} differs from mdbus_wal::c_header(): regenerate it with MDBUS_BLESS=1 cargo test -p mdbus-wal --test c_header",
        path.display()
    );
}

/// Builds `tests/c/read_wal.c` against `include/mdbus.h`; `None` (a
/// visible skip, a failure under CI) without a C compiler.
fn build_reader(dir: &Path) -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    if Command::new(&cc).arg("--version").output().is_err() {
        mdbus_types::test_support::skip("c_reader_reads_the_fixture_wal", &format!("no C compiler ({cc})"));
        return None;
    }
    let exe = dir.join("read_wal");
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-I"])
        .arg(root().join("include"))
        .arg(root().join("tests/c/read_wal.c"))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cc} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(exe)
}

/// What the C reader prints for a record, from the Rust side.
fn expected_line(record: RecordRef<'_>) -> String {
    let h = record.header();
    match record {
        RecordRef::Tick(t) => format!(
            "{} tick {} {} last {} x {}",
            h.seq,
            t.instrument,
            h.flags,
            t.last_px.raw(),
            t.last_qty
        ),
        RecordRef::BookSnapshot(s) => format!(
            "{} book_snapshot {} {} levels {}/{} best_bid {}",
            h.seq,
            s.instrument,
            h.flags,
            s.bid_count,
            s.ask_count,
            s.bid_levels().first().map_or(i64::MAX, |l| l.price.raw())
        ),
        RecordRef::BookDelta(d) => format!(
            "{} book_delta {} {} {} {} x {}",
            h.seq,
            d.instrument,
            h.flags,
            if d.side == 0 { "bid" } else { "ask" },
            d.price.raw(),
            d.qty
        ),
        RecordRef::Heartbeat(_) => format!("{} heartbeat - {}", h.seq, h.flags),
    }
}

#[test]
fn c_reader_reads_the_fixture_wal() {
    let dir = tempfile::tempdir().unwrap();
    let Some(reader) = build_reader(dir.path()) else { return };
    let fixture = root().join("tests/fixtures/wal-clean");
    let segment = fixture.join("golden/00000000000000000001.wal");
    let out = Command::new(&reader).arg(&segment).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    let mut lines = printed.lines();
    assert_eq!(lines.next(), Some("# feed golden first_seq 1"));
    let got: Vec<&str> = lines.collect();

    let expected: Vec<String> = std::fs::read_to_string(fixture.join("expected.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let sample = sample_from_json(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            expected_line(sample.record().unwrap())
        })
        .collect();
    assert_eq!(got.len(), 21, "{printed}");
    assert_eq!(got, expected);

    // A bit flip in a payload: the C reader's crc check names the frame.
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[128 + 8 + 40] ^= 0x01;
    let flipped = dir.path().join("flipped.wal");
    std::fs::write(&flipped, &bytes).unwrap();
    let out = Command::new(&reader).arg(&flipped).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("crc32c mismatch in the frame at offset 128"),
        "{stderr}"
    );
}
