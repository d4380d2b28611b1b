//! The WAL commands through the real binary, on the fixture folders written
//! independently from docs/spec.md (tests/fixtures/wal-*), and a publish ->
//! verify -> inspect -> replay round trip.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn mdbus() -> Command {
    let mut cmd = Command::cargo_bin("mdbus").unwrap();
    cmd.timeout(std::time::Duration::from_secs(120));
    cmd
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn expected(name: &str) -> Vec<Value> {
    std::fs::read_to_string(fixture(name).join("expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Copies a fixture WAL folder into a writable temp dir.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(name).join("golden");
    std::fs::create_dir(dir.path().join("golden")).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dir.path().join("golden").join(entry.file_name());
        std::fs::copy(entry.path(), &to).unwrap();
        let mut perms = std::fs::metadata(&to).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&to, perms).unwrap();
    }
    dir
}

#[test]
fn verify_exit_codes_and_offsets_match_each_fixture() {
    for (name, code, needle) in [
        ("wal-clean", 0, "clean"),
        ("wal-torn-tail", 3, "offset 2992"),
        ("wal-corrupt-middle", 1, "offset 1896"),
        ("wal-partial-append", 0, "clean"),
    ] {
        let out = mdbus()
            .args(["wal", "verify", "--feed", "golden", "--wal"])
            .arg(fixture(name))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{name}: {stdout}");
        assert!(stdout.contains(needle), "{name}: {stdout}");
    }
    let out = mdbus()
        .args(["wal", "verify", "--feed", "golden", "--wal", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn replay_prints_each_fixtures_expected_records() {
    for name in ["wal-clean", "wal-partial-append", "wal-torn-tail"] {
        let out = mdbus()
            .args(["replay", "--feed", "golden", "--format", "json", "--wal"])
            .arg(fixture(name))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let want = expected(name);
        let want = if name == "wal-torn-tail" {
            // A torn tail is the state a crash leaves: every valid record
            // is printed, the tail is named on stderr, exit 0.
            assert!(stderr.contains("torn tail") && stderr.contains("2992"), "{stderr}");
            want[..20].to_vec()
        } else {
            want
        };
        assert_eq!(json_lines(&out.stdout), want, "{name}");
    }
}

#[test]
fn replay_of_corruption_stops_naming_file_and_offset_or_skips_when_asked() {
    let out = mdbus()
        .args(["replay", "--feed", "golden", "--wal"])
        .arg(fixture("wal-corrupt-middle"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let want = expected("wal-corrupt-middle");
    assert_eq!(json_lines(&out.stdout), want[..10].to_vec());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("00000000000000000001.wal") && stderr.contains("1896"),
        "{stderr}"
    );

    let out = mdbus()
        .args(["replay", "--feed", "golden", "--skip-corrupt", "--wal"])
        .arg(fixture("wal-corrupt-middle"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let got = json_lines(&out.stdout);
    let seqs: Vec<u64> = got.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=10).chain(12..=21).collect::<Vec<_>>());
    assert_eq!(got[..10].to_vec(), want);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1896") && stderr.contains("1936") && stderr.contains("11"),
        "{stderr}"
    );
}

/// A flipped byte in a segment's header (its magic): a strict replay stops
/// naming the file; `--skip-corrupt` reports the header and prints every
/// record anyway (the frames carry their own crc, the name the first seq).
#[test]
fn replay_skip_corrupt_reads_past_a_damaged_segment_header() {
    let dir = copy_fixture("wal-clean");
    let segment = dir.path().join("golden/00000000000000000001.wal");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[2] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();

    let out = mdbus()
        .args(["replay", "--feed", "golden", "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("00000000000000000001.wal") && stderr.contains("magic"),
        "{stderr}"
    );

    let out = mdbus()
        .args(["replay", "--feed", "golden", "--skip-corrupt", "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(json_lines(&out.stdout), expected("wal-clean"));
    assert!(
        stderr.contains("bad segment header") && stderr.contains("magic"),
        "{stderr}"
    );
}

#[test]
fn replay_filters_and_csv() {
    let out = mdbus()
        .args([
            "replay",
            "--feed",
            "golden",
            "--instrument",
            "SPREAD-X",
            "--from-seq",
            "4",
            "--wal",
        ])
        .arg(fixture("wal-clean"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let got = json_lines(&out.stdout);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["seq"], 9);
    let out = mdbus()
        .args(["replay", "--feed", "golden", "--format", "csv", "--wal"])
        .arg(fixture("wal-clean"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 22);
    assert!(lines[0].starts_with("seq,kind,instrument,ts_event"));
    assert!(
        lines[10].starts_with("10,tick,BTC/USDT,1764000000000010000,"),
        "{}",
        lines[10]
    );
    assert!(lines[10].contains(",99999.999999999,1,,0,,0,1,"), "{}", lines[10]);
}

#[test]
fn a_writer_reopening_a_torn_tail_continues_at_the_next_seq() {
    let dir = copy_fixture("wal-torn-tail");
    let out = mdbus()
        .args([
            "publish",
            "--feed",
            "golden",
            "--synthetic",
            "--instruments",
            "2",
            "--rate",
            "1000",
        ])
        .args(["--duration", "0.3", "--no-board", "--segment-bytes", "65536", "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("2992"), "the cut is reported: {stderr}");
    let out = mdbus()
        .args(["replay", "--feed", "golden", "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let got = json_lines(&out.stdout);
    assert_eq!(got[..20].to_vec(), expected("wal-torn-tail")[..20].to_vec());
    let seqs: Vec<u64> = got.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "dense after the cut");
    assert!(seqs.len() > 21);
    let out = mdbus()
        .args(["wal", "verify", "--feed", "golden", "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn publish_verify_inspect_replay_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let out = mdbus()
        .args([
            "publish",
            "--feed",
            "rt",
            "--synthetic",
            "--instruments",
            "5",
            "--rate",
            "50000",
        ])
        .args(["--duration", "1", "--segment-bytes", "262144", "--board-dir"])
        .arg(dir.path())
        .arg("--wal")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("published "), "{stdout}");
    let records: u64 = stdout.split_whitespace().nth(1).unwrap().parse().unwrap();
    let out = mdbus()
        .args(["wal", "verify", "--feed", "rt", "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = mdbus()
        .args(["wal", "inspect", "--json", "--feed", "rt", "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    let segments = json_lines(&out.stdout);
    assert!(segments.len() >= 2, "{segments:?}");
    assert!(segments.iter().all(|s| s["full_snapshot_set"] == true), "{segments:?}");
    let frames: u64 = segments.iter().map(|s| s["frames"].as_u64().unwrap()).sum();
    assert_eq!(frames, records);
    let out = mdbus()
        .args(["replay", "--feed", "rt", "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let got = json_lines(&out.stdout);
    assert_eq!(got.len() as u64, records);
    // The board's last book equals the book the replay ends with.
    let out = mdbus()
        .args([
            "snapshot",
            "--feed",
            "rt",
            "--json",
            "--instrument",
            "IF2501",
            "--board-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let board: Value = serde_json::from_slice(&out.stdout).unwrap();
    let book_seq = board["book"]["seq"].as_u64().unwrap();
    assert!(
        got.iter()
            .any(|r| r["seq"].as_u64() == Some(book_seq) && r["instrument"] == "IF2501")
    );
}

#[test]
fn history_and_book_at_match_a_reference_from_the_full_replay() {
    use mdbus::types::{Book, InstrumentId, RecordRef};
    let dir = tempfile::tempdir().unwrap();
    let out = mdbus()
        .args([
            "publish",
            "--feed",
            "hist",
            "--synthetic",
            "--instruments",
            "3",
            "--rate",
            "20000",
        ])
        .args(["--duration", "1", "--no-board", "--segment-bytes", "262144", "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = mdbus()
        .args(["replay", "--feed", "hist", "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    let all = json_lines(&out.stdout);
    let samples: Vec<_> = all
        .iter()
        .map(|v| mdbus::types::json::sample_from_json(&v.to_string()).unwrap())
        .collect();
    let (t0, t1) = (
        samples[samples.len() / 4].header().ts_event,
        samples[samples.len() / 2].header().ts_event,
    );
    let id = InstrumentId::new("IF2501").unwrap();
    // Reference: trades of IF2501 with ts_event in [t0, t1] (snapshot-set
    // copies of a tick are not trades), and the book after the last record
    // with ts_event <= t1.
    let want_ticks: Vec<&Value> = all
        .iter()
        .filter(|v| v["kind"] == "tick" && v["instrument"] == "IF2501")
        .filter(|v| v["flags"].as_u64().unwrap() & 2 == 0)
        .filter(|v| (t0..=t1).contains(&v["ts_event"].as_i64().unwrap()))
        .collect();
    let mut book = Book::new(id);
    for s in samples.iter().take_while(|s| s.header().ts_event <= t1) {
        match s.record().unwrap() {
            RecordRef::BookSnapshot(b) if b.instrument == id => book.apply_snapshot(b).unwrap(),
            RecordRef::BookDelta(d) if d.instrument == id => {
                book.apply_delta(d).unwrap();
            }
            _ => {}
        }
    }
    let out = mdbus()
        .args([
            "history",
            "--feed",
            "hist",
            "--instrument",
            "IF2501",
            "--from",
            &t0.to_string(),
        ])
        .args(["--to", &t1.to_string(), "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = json_lines(&out.stdout);
    assert!(!want_ticks.is_empty());
    assert_eq!(got.iter().collect::<Vec<_>>(), want_ticks);
    let out = mdbus()
        .args([
            "book-at",
            "--feed",
            "hist",
            "--instrument",
            "IF2501",
            "--json",
            "--at",
            &t1.to_string(),
            "--wal",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let snap = book.to_snapshot();
    let want: Value =
        serde_json::from_str(&mdbus::types::json::record_to_json(RecordRef::BookSnapshot(&snap))).unwrap();
    assert_eq!(got["bids"], want["bids"]);
    assert_eq!(got["asks"], want["asks"]);
    // Bad input: an unknown time format and an over-long symbol.
    let out = mdbus()
        .args([
            "history",
            "--feed",
            "hist",
            "--instrument",
            "IF2501",
            "--from",
            "soon",
            "--to",
            "1",
            "--wal",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = mdbus()
        .args([
            "book-at",
            "--feed",
            "hist",
            "--instrument",
            "TOO_LONG_A_SYMBOL_X",
            "--at",
            "1",
            "--wal",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOO_LONG_A_SYMBOL_X"));
}

/// `mdbus publish --retain-bytes` keeps the feed's WAL within the budget
/// (whole segments deleted in the background, the newest snapshot set's
/// kept: it still replays from there); `mdbus wal prune` does the same on
/// demand, and asks for a limit.
#[test]
fn publish_retain_bytes_and_wal_prune_bound_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let feed = format!("retain{}", std::process::id());
    let budget: u64 = 1 << 20;
    let out = mdbus()
        .args([
            "publish",
            "--feed",
            &feed,
            "--synthetic",
            "--rate",
            "0",
            "--duration",
            "2",
        ])
        .args([
            "--segment-bytes",
            "131072",
            "--retain-bytes",
            "1MiB",
            "--no-board",
            "--wal",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let feed_dir = dir.path().join(&feed);
    assert!(
        common::segment_bytes(&feed_dir) <= budget,
        "{} bytes kept",
        common::segment_bytes(&feed_dir)
    );
    let out = mdbus()
        .args(["wal", "verify", "--feed", &feed, "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    let out = mdbus()
        .args(["wal", "prune", "--feed", &feed, "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = mdbus()
        .args(["wal", "prune", "--feed", &feed, "--retain-bytes", "300KB", "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("segments deleted"), "{stdout}");
    // Never the newest snapshot set's segment: the feed still recovers.
    let out = mdbus()
        .args(["replay", "--feed", &feed, "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first = json_lines(&out.stdout)[0]["seq"].as_u64().unwrap();
    assert!(first > 1, "the oldest segments are gone: replay starts at seq {first}");
    let out = mdbus()
        .args(["wal", "prune", "--feed", &feed, "--retain-bytes", "lots", "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"lots\" is not a size"));
}
