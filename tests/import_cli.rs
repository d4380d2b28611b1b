//! `mdbus import dbn` as a user runs it: the real DBN samples (crates/
//! mdbus-dbn/tests/data, Apache-2.0, see NOTICE.md there) into a WAL that
//! `mdbus book-at` and `mdbus wal verify` read; bad input and its exit codes.

mod common;

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

/// `(seq, kind, ts_event)` of every record `mdbus replay` prints.
fn replayed(wal: &str, feed: &str) -> Vec<(u64, String, i64)> {
    let out = mdbus(&["replay", "--wal", wal, "--feed", feed]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                v["seq"].as_u64().unwrap(),
                v["kind"].as_str().unwrap().to_owned(),
                v["ts_event"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// `mdbus import dbn --retain-bytes` keeps the WAL within the budget while
/// it imports (the oldest segments deleted, the newest snapshot set's
/// kept); what is left verifies clean and ends with the newest records.
#[test]
fn retain_bytes_bounds_the_imported_wal() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().to_str().unwrap();
    let files: Vec<PathBuf> = [
        "test_data.mbp-10.v3.dbn.zst",
        "test_data.trades.v3.dbn.zst",
        "test_data.mbo.v3.dbn.zst",
        "test_data.tbbo.v3.dbn.zst",
    ]
    .iter()
    .map(|name| data(name))
    .collect();
    let import = |feed: &str, extra: &[&str]| {
        let mut args = vec!["import", "dbn"];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        args.extend_from_slice(&["--feed", feed, "--wal", wal, "--segment-bytes", "1024"]);
        args.extend_from_slice(extra);
        let out = mdbus(&args);
        assert!(out.status.success(), "{}", text(&out));
    };
    import("all", &[]);
    let budget: u64 = 3 << 10;
    import("kept", &["--retain-bytes", "3KiB"]);
    let all = replayed(wal, "all");
    assert!(
        common::segment_bytes(&dir.path().join("all")) > budget,
        "the import is too small to test retention"
    );
    let kept_bytes = common::segment_bytes(&dir.path().join("kept"));
    // Retention's rule allows more only when what is left starts at the
    // newest full snapshot set's segment.
    let out = mdbus(&["wal", "inspect", "--wal", wal, "--feed", "kept", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let sets: Vec<bool> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["full_snapshot_set"] == true)
        .collect();
    assert!(
        kept_bytes <= budget || sets.iter().rposition(|&set| set) == Some(0),
        "{kept_bytes} bytes kept ({sets:?})"
    );
    let out = mdbus(&["wal", "verify", "--wal", wal, "--feed", "kept"]);
    assert!(out.status.success() && text(&out).contains("clean"), "{}", text(&out));
    // The same records as the whole import's, its oldest ones gone.
    let kept = replayed(wal, "kept");
    assert!(!kept.is_empty() && kept[0].0 > 1, "nothing deleted: {kept:?}");
    assert!(kept.len() < all.len());
    assert_eq!(kept[..], all[all.len() - kept.len()..]);
}

#[test]
fn a_bad_retention_value_exits_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().to_str().unwrap();
    let mbp10 = data("test_data.mbp-10.v3.dbn.zst");
    for (flag, value) in [("--retain-bytes", "12XB"), ("--retain-age", "soon")] {
        let out = mdbus(&[
            "import",
            "dbn",
            mbp10.to_str().unwrap(),
            "--feed",
            "es",
            "--wal",
            wal,
            flag,
            value,
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(flag), "{}", text(&out));
    }
    assert!(!dir.path().join("es").exists(), "nothing written");
}
