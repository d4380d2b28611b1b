//! The WAL commands through the real binary, on the fixture folders written
//! independently from DESIGN.md (tests/fixtures/wal-*), and a publish ->
//! verify -> inspect -> replay round trip.

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
