//! `mdbus import dbn` as a user runs it: the real DBN samples (crates/
//! mdbus-dbn/tests/data, Apache-2.0, see NOTICE.md there) into a WAL that
//! `mdbus book-at` and `mdbus wal verify` read; bad input and its exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mdbus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdbus"))
        .args(args)
        .output()
        .expect("run mdbus")
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/mdbus-dbn/tests/data")
        .join(name)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn import_then_read_the_book_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().to_str().unwrap();
    let mbp10 = data("test_data.mbp-10.v3.dbn.zst");
    let trades = data("test_data.trades.v3.dbn.zst");
    let out = mdbus(&[
        "import",
        "dbn",
        mbp10.to_str().unwrap(),
        trades.to_str().unwrap(),
        "--feed",
        "es",
        "--wal",
        wal,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("imported 4 DBN records from 2 of 2 files"),
        "{}",
        text(&out)
    );
    let out = mdbus(&[
        "book-at",
        "--wal",
        wal,
        "--feed",
        "es",
        "--instrument",
        "ESH1",
        "--at",
        "2030-01-01T00:00:00Z",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let book: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(book["instrument"], "ESH1", "{book}");
    assert_eq!(book["bids"].as_array().unwrap().len(), 10, "{book}");
    let out = mdbus(&["wal", "verify", "--wal", wal, "--feed", "es"]);
    assert!(out.status.success() && text(&out).contains("clean"), "{}", text(&out));
    // Again into the same feed: refused (the data would be there twice) ...
    let out = mdbus(&["import", "dbn", mbp10.to_str().unwrap(), "--feed", "es", "--wal", wal]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--append"), "{}", text(&out));
    // ... unless asked for.
    let out = mdbus(&[
        "import",
        "dbn",
        trades.to_str().unwrap(),
        "--feed",
        "es",
        "--wal",
        wal,
        "--append",
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn bad_input_exits_1_and_bad_arguments_2() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().to_str().unwrap();
    let definition = data("test_data.definition.v3.dbn.zst");
    let out = mdbus(&[
        "import",
        "dbn",
        definition.to_str().unwrap(),
        "--feed",
        "es",
        "--wal",
        wal,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("schema definition is not imported"),
        "{}",
        text(&out)
    );
    let missing = dir.path().join("missing.dbn");
    // (The refused import above left an empty WAL: --append.)
    let out = mdbus(&[
        "import",
        "dbn",
        missing.to_str().unwrap(),
        "--feed",
        "es",
        "--wal",
        wal,
        "--append",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("missing.dbn"), "{}", text(&out));
    let out = mdbus(&[
        "import",
        "dbn",
        "x.dbn",
        "--feed",
        "es",
        "--wal",
        wal,
        "--alias",
        "5=THIS_IS_TOO_LONG_X",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("longer than 16 bytes"), "{}", text(&out));
}
