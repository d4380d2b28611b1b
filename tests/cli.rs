//! The real `mdbus` binary: the demo end to end, `--help` everywhere, and
//! exit code 2 with a clear message for bad arguments.

mod common;

use assert_cmd::Command;

fn mdbus() -> Command {
    let mut cmd = Command::cargo_bin("mdbus").unwrap();
    cmd.timeout(std::time::Duration::from_secs(120));
    cmd
}

#[test]
fn demo_runs_and_its_subscriber_sees_every_record() {
    // A queue of 3 s of records: a subscriber thread kept off the CPU for
    // a while (a loaded machine) still loses none.
    let out = mdbus()
        .args(["demo", "--instruments", "8", "--rate", "20000", "--duration", "1.5"])
        .args(["--queue", "65536"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("summary:"))
        .expect("a summary line");
    // "summary: N records in ... N received, 0 holes ..., last seq N, 0 book errors"
    let words: Vec<&str> = summary.split_whitespace().collect();
    let records: u64 = words[1].parse().unwrap();
    // How many depends on this machine's speed: only that some were.
    assert!(records > 0, "{summary}");
    assert!(summary.contains(&format!("{records} received, 0 holes")), "{summary}");
    assert!(
        summary.contains(&format!("last seq {records}, 0 book errors")),
        "{summary}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("t=") && l.contains("IF2501")),
        "{stdout}"
    );
}

#[test]
fn every_subcommand_has_help() {
    for args in [vec!["--help"], vec!["demo", "--help"], vec!["help", "demo"]] {
        let out = mdbus().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{args:?}");
    }
}

#[test]
fn bad_arguments_exit_2_naming_the_argument() {
    for (args, names) in [
        (vec!["demo", "--instruments", "0"], "--instruments"),
        (vec!["demo", "--instruments", "5000"], "--instruments"),
        (vec!["demo", "--duration", "abc"], "--duration"),
        (vec!["demo", "--rate", "-5"], "-5"),
        (vec!["frobnicate"], "frobnicate"),
        (
            vec![
                "publish",
                "--feed",
                "x",
                "--wal",
                "/nonexistent/mdbus",
                "--synthetic",
                "--group",
                "mdbus-no-such-group",
            ],
            "--group: group mdbus-no-such-group: no such group",
        ),
        (vec![], "Usage"),
    ] {
        let out = mdbus().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(names), "{args:?}: {stderr}");
    }
}

#[test]
fn snapshot_prints_the_fixture_board_as_expected() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/board");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/expected.json")).unwrap()).unwrap();
    for symbol in ["BTC/USDT", "IF2501", "SPREAD-X"] {
        let out = mdbus()
            .args([
                "snapshot",
                "--feed",
                "golden",
                "--instrument",
                symbol,
                "--json",
                "--board-dir",
                dir,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got, expected[symbol], "{symbol}");
    }
    // Human form of every instrument.
    let out = mdbus()
        .args(["snapshot", "--feed", "golden", "--board-dir", dir])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("last seq 21") && text.contains("SPREAD-X") && text.contains("no tick yet"),
        "{text}"
    );
    // Unknown instrument: a clear error naming it.
    let out = mdbus()
        .args([
            "snapshot",
            "--feed",
            "golden",
            "--instrument",
            "rb2505",
            "--json",
            "--board-dir",
            dir,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rb2505") && stderr.contains("not on the board"),
        "{stderr}"
    );
    // Over-long symbol: usage error naming it.
    let out = mdbus()
        .args([
            "snapshot",
            "--feed",
            "golden",
            "--instrument",
            "A_SYMBOL_LONGER_THAN_16",
            "--board-dir",
            dir,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("A_SYMBOL_LONGER_THAN_16"));
    // A feed without a board names the file.
    let out = mdbus()
        .args(["snapshot", "--feed", "nosuchfeed", "--board-dir", dir])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mdbus.nosuchfeed.board"));
}

/// Publisher and subscriber in two real processes over iceoryx2.
#[cfg(feature = "iceoryx2")]
#[test]
fn publish_and_subscribe_across_processes() {
    use std::process::{Command as Process, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let feed = format!("clitest{}", std::process::id());
    let bin = assert_cmd::cargo::cargo_bin("mdbus");
    let publisher = Process::new(&bin)
        .args([
            "publish",
            "--feed",
            &feed,
            "--synthetic",
            "--instruments",
            "4",
            "--rate",
            "5000",
        ])
        .args(["--duration", "300", "--board-dir"])
        .arg(dir.path())
        .arg("--wal")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Runs until killed below (or when the test fails): a slow start of
    // the subscriber never finds it ended.
    let mut publisher = common::Proc(publisher);
    let out = mdbus()
        .args([
            "subscribe",
            "--feed",
            &feed,
            "--count",
            "2000",
            "--duration",
            "60",
            // A debug publisher prepares its first segment before it
            // creates the services; a loaded machine may take longer than
            // the default 10 s.
            "--wait-for-publisher",
            "90",
            "--wait",
            "block",
            "--json",
        ])
        .output()
        .unwrap();
    // The publisher was still running: it is killed, and said nothing wrong.
    publisher.kill_9();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut publisher.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2000);
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "a subscriber that keeps up sees no hole"
    );
    assert!(records.iter().all(|r| r["latency_ns"].as_u64().is_some()));
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("subscribed 2000 records") && summary.contains("0 holes"),
        "{summary}"
    );
    // What was received live is what the WAL holds.
    let replay = mdbus()
        .args(["replay", "--feed", &feed, "--from-seq"])
        .arg(seqs[0].to_string())
        .arg("--wal")
        .arg(dir.path())
        .output()
        .unwrap();
    let logged: Vec<serde_json::Value> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .take(2000)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (live, mut live_obj) in records.iter().zip(records.clone()) {
        live_obj.as_object_mut().unwrap().remove("latency_ns");
        let seq = live["seq"].as_u64().unwrap();
        assert_eq!(logged[(seq - seqs[0]) as usize], live_obj, "seq {seq}");
    }
}

/// A late subscriber with `--replay` joins a running publisher: replay from
/// the WAL the publisher announces, then live, each seq once, in order.
#[cfg(feature = "iceoryx2")]
#[test]
fn subscribe_with_replay_merge_joins_late_without_gap_or_duplicate() {
    use std::process::{Command as Process, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let feed = format!("climerge{}", std::process::id());
    let bin = assert_cmd::cargo::cargo_bin("mdbus");
    let publisher = Process::new(&bin)
        .args([
            "publish",
            "--feed",
            &feed,
            "--synthetic",
            "--instruments",
            "4",
            "--rate",
            "1000",
        ])
        .args(["--duration", "300", "--board-dir"])
        .arg(dir.path())
        .arg("--wal")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed when the test ends (it runs far longer than needed). Its rate
    // is low so that even a debug build replaying under full CPU load
    // catches up with it (the switch to live needs that) with a wide margin.
    let mut publisher = common::Proc(publisher);
    // Wait until the publisher is ahead, so that the subscriber has
    // history to replay: 500 records in the WAL (a condition, not a sleep).
    let deadline = std::time::Instant::now() + common::WATCHDOG;
    loop {
        let records = mdbus::wal::WalReader::open(dir.path(), &feed, mdbus::wal::ReadOptions::default())
            .ok()
            .map_or(0, |mut reader| {
                let mut n = 0;
                while n < 500 && matches!(reader.next_record(), Ok(Some(_))) {
                    n += 1;
                }
                n
            });
        if records >= 500 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "watchdog: {records} records in the WAL"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = mdbus()
        .args([
            "subscribe",
            "--feed",
            &feed,
            "--replay",
            "--json",
            "--count",
            "3000",
            "--duration",
            "30",
        ])
        .output()
        .unwrap();
    // The publisher was still running: it is killed, and said nothing wrong.
    publisher.kill_9();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut publisher.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let markers: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i]["type"] == "replay_done")
        .collect();
    assert_eq!(markers.len(), 1, "one replay-done marker");
    let records: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("seq").is_some()).collect();
    assert_eq!(records.len(), 3000);
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs[0], 1, "replayed from the start of the WAL");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap, no duplicate at the switch"
    );
    let replayed = records.iter().filter(|r| r["source"] == "replay").count();
    assert!(replayed > 0 && replayed == markers[0], "replay first, then the marker");
    assert!(records[replayed..].iter().all(|r| r["source"] != "replay"));
}

/// `mdbus publish --config FILE`: the file's settings, overridden by the
/// command line; a bad key or value exits 2 naming the file and the key.
#[test]
fn publish_reads_a_config_file_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let feed = format!("cliconf{}", std::process::id());
    let config = dir.path().join("mdbus.toml");
    let wal = dir.path().join("wal");
    std::fs::write(
        &config,
        format!(
            "[publish]\nfeed = \"from-file\"\nwal = {wal:?}\nsynthetic = true\ninstruments = 3\n\
             rate = 5000\nduration = 0.3\nno-board = true\nsync = \"never\"\n\n[gateway]\nfeed = \"from-file\"\n",
            wal = wal.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = mdbus()
        .arg("publish")
        .arg("--config")
        .arg(&config)
        .args(["--feed", &feed])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("settings from"), "{stderr}");
    // The command line's feed, the file's WAL folder.
    assert!(!wal.join("from-file").exists());
    let records: usize = std::fs::read_dir(wal.join(&feed))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "wal"))
        .count();
    assert!(records > 0, "no WAL segment for {feed}");
    let replay = mdbus()
        .args(["replay", "--feed", &feed, "--wal"])
        .arg(&wal)
        .output()
        .unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    // Three instruments, from the file.
    let symbols: std::collections::BTreeSet<String> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["instrument"].as_str().map(str::to_string))
        .collect();
    assert_eq!(symbols.len(), 3, "{symbols:?}");

    for (text, key) in [
        ("[publish]\nfeeds = \"x\"\n", "[publish] key `feeds`: unknown key"),
        (
            "[publish]\ninstruments = \"many\"\n",
            "[publish] key `instruments`: invalid value 'many'",
        ),
        ("[publish]\nrate = 1.5\n", "[publish] key `rate`: invalid value '1.5'"),
        (
            "[publish]\nno-board = 1\n",
            "[publish] key `no-board`: expected true or false, found an integer",
        ),
        (
            "[gateway]\nlisten = \"not an address\"\n",
            "[gateway] key `listen`: invalid value",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = mdbus()
            .args(["publish", "--feed", &feed, "--synthetic", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {stderr}");
        assert!(
            stderr.contains(&format!("config {}", config.display())),
            "{text:?}: {stderr}"
        );
        assert!(stderr.contains(key), "{text:?}: {stderr}");
    }
    // The gateway reads the same file, and checks it the same way.
    std::fs::write(&config, "[gateway]\nqueue = 0\n").unwrap();
    let out = mdbus()
        .args(["gateway", "--feed", &feed, "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("[gateway] key `queue`: invalid value '0'"), "{stderr}");
}
