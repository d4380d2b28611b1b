//! `mdbus play` as a user runs it: a recorded WAL published again as
//! another feed, every market record once and in order, fresh snapshots
//! first with `--from`, and an end-of-recording marker.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use mdbus::subscriber::History;
use mdbus::types::{
    FLAG_END_OF_RECORDING, FLAG_RECOVERY_SNAPSHOT, InstrumentId, Kind, MdSample, RecordRef, WalLocation,
};
use mdbus::wal::{ReadOptions, WalReader};

fn mdbus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdbus"))
        .args(args)
        .output()
        .expect("run mdbus")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn feed(name: &str) -> String {
    format!("{name}{}", std::process::id())
}

/// The feed's records in WAL order, its own snapshot sets left out.
fn records(root: &Path, feed: &str) -> Vec<MdSample> {
    let mut reader = WalReader::open(root, feed, ReadOptions::default()).unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        if r.record.header().flags & FLAG_RECOVERY_SNAPSHOT == 0 {
            out.push(r.record.to_sample());
        }
    }
    out
}

/// What a subscriber sees of a market record: all but seq, ts_publish, flags.
fn market(sample: &MdSample) -> Option<(Kind, i64, Vec<u8>)> {
    let record = sample.record().unwrap();
    (record.kind() != Kind::Heartbeat).then(|| {
        (
            record.kind(),
            record.header().ts_event,
            record.as_bytes()[32..].to_vec(),
        )
    })
}

/// `mdbus play --wal ROOT --feed RECORDED --as PLAYED EXTRA...`.
fn play(root: &str, recorded: &str, played: &str, extra: &[&str]) -> Output {
    let mut args = vec!["play", "--wal", root, "--feed", recorded, "--as", played];
    args.extend_from_slice(extra);
    mdbus(&args)
}

fn record(root: &str, feed: &str) {
    let out = mdbus(&[
        "publish",
        "--feed",
        feed,
        "--wal",
        root,
        "--synthetic",
        "--rate",
        "3000",
        "--duration",
        "1",
        "--no-board",
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_played_feed_carries_every_record_once_in_order_then_the_end_marker() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let (recorded, played) = (feed("rec"), feed("play"));
    record(root, &recorded);
    let out = play(root, &recorded, &played, &["--max", "--no-board"]);
    assert!(out.status.success(), "{}", text(&out));
    let source: Vec<_> = records(dir.path(), &recorded).iter().filter_map(market).collect();
    let copy = records(dir.path(), &played);
    let (end, body) = copy.split_last().expect("records");
    let body: Vec<_> = body.iter().filter_map(market).collect();
    assert!(source.len() > 1_000, "{} records recorded", source.len());
    // Every recorded record once, in order, ts_event as recorded; what the
    // played feed's own publisher adds between them are book snapshots
    // (its snapshot policy).
    let mut next = source.iter().peekable();
    let mut extra = 0;
    for record in &body {
        if next.peek() == Some(&record) {
            next.next();
        } else {
            assert_eq!(
                record.0,
                Kind::BookSnapshot,
                "a record that is not the next recorded one"
            );
            extra += 1;
        }
    }
    assert!(
        next.peek().is_none(),
        "{} recorded records were not played",
        next.count()
    );
    assert!(extra < body.len() / 2, "{extra} extra snapshots");
    let end = end.record().unwrap();
    assert_eq!(end.kind(), Kind::Heartbeat);
    assert_ne!(end.header().flags & FLAG_END_OF_RECORDING, 0, "the end marker");
    // Seqs of the played feed are its own, dense.
    let seqs: Vec<u64> = copy.iter().map(|s| s.header().seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]));
}

#[test]
fn from_starts_with_the_books_as_of_then() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let (recorded, played) = (feed("recfrom"), feed("playfrom"));
    record(root, &recorded);
    let source = records(dir.path(), &recorded);
    let from = source[source.len() / 2].header().ts_event;
    let out = play(
        root,
        &recorded,
        &played,
        &["--max", "--no-board", "--from", &from.to_string()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let copy = records(dir.path(), &played);
    // First the books as of `from` (every instrument), then the records.
    let history = History::open(WalLocation::try_new(dir.path(), &recorded).unwrap());
    let mut snapshots = 0;
    for sample in copy.iter().take_while(|s| {
        matches!(s.record().unwrap(), RecordRef::BookSnapshot(_) | RecordRef::Tick(_)) && s.header().ts_event == from
    }) {
        if let RecordRef::BookSnapshot(s) = sample.record().unwrap() {
            let book = history
                .book_at(&s.instrument, from - 1)
                .unwrap()
                .expect("a book before from");
            assert_eq!(
                (s.bid_levels(), s.ask_levels()),
                (book.bid_levels(), book.ask_levels()),
                "{}",
                s.instrument
            );
            snapshots += 1;
        }
    }
    assert_eq!(snapshots, 16, "one snapshot per synthetic instrument");
    let first_played = copy
        .iter()
        .position(|s| s.header().ts_event == from && market(s) == market(&source[source.len() / 2]));
    assert!(first_played.is_some(), "the record at from is played");
}

/// The number after `key` in the summary line: "in 0.503 s", "scheduled 0.250 s", "played 3001 records".
fn summary_number(summary: &str, key: &str) -> f64 {
    let at = summary.find(key).unwrap_or_else(|| panic!("no {key:?} in {summary}")) + key.len();
    let number: String = summary[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number.parse().unwrap_or_else(|_| panic!("{key:?} in {summary}"))
}

/// `--speed X` schedules the recording's own gaps divided by X and
/// `--rate R` one record every 1/R s; a playback never runs ahead of its
/// schedule. (How late it runs depends on the machine's load: reported by
/// `mdbus play` as "worst lag", not asserted.)
#[test]
fn speed_and_rate_set_the_schedule_and_playback_never_runs_ahead_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let recorded = feed("recpace");
    record(root, &recorded);
    let times: Vec<i64> = records(dir.path(), &recorded)
        .iter()
        .filter_map(market)
        .map(|r| r.1)
        .collect();
    let span = (times.iter().max().unwrap() - times[0]) as f64 / 1e9;
    assert!(span > 0.5, "the recording spans {span} s");
    for (played, pace, expected) in [
        (feed("playspeed"), ["--speed", "4"], span / 4.0),
        (feed("playrate"), ["--rate", "5000"], (times.len() - 1) as f64 / 5000.0),
    ] {
        let out = play(root, &recorded, &played, &[pace[0], pace[1], "--no-board"]);
        assert!(out.status.success(), "{}", text(&out));
        let all = text(&out);
        let summary = all.lines().find(|l| l.contains("end of recording")).expect(&all);
        assert_eq!(summary_number(summary, "played") as usize, times.len(), "{summary}");
        let scheduled = summary_number(summary, "scheduled");
        assert!(
            (scheduled - expected).abs() < 0.002,
            "{pace:?}: {summary}; expected {expected:.3} s"
        );
        assert!(
            summary_number(summary, " in") >= scheduled,
            "{pace:?} ran ahead: {summary}"
        );
    }
    // --rate and --speed (or --max) are one choice.
    let out = play(root, &recorded, "z", &["--rate", "10", "--speed", "2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = play(root, &recorded, "z", &["--rate", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--rate 0"), "{}", text(&out));
}

#[test]
fn bad_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let recorded = feed("recbad");
    let out = play(root, &recorded, "x", &["--max"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("the recording"), "{}", text(&out));
    record(root, &recorded);
    let out = play(root, &recorded, &recorded, &["--max"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("into the recording itself"), "{}", text(&out));
    let out = play(root, &recorded, "y", &["--speed", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let _ = InstrumentId::new("IF2501");
}

/// SIGUSR1 pauses, SIGUSR2 resumes; the playback then completes, every
/// record played once.
#[cfg(unix)]
#[test]
fn sigusr1_pauses_and_sigusr2_resumes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let (recorded, played) = (feed("recpause"), feed("playpause"));
    record(root, &recorded);
    // At speed 0.1 the 1 s recording takes 10 s: time to pause it after the
    // first progress line (1 s), however loaded the machine.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mdbus"))
        .args([
            "play",
            "--wal",
            root,
            "--feed",
            &recorded,
            "--as",
            &played,
            "--speed",
            "0.1",
            "--no-board",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let signal = |name: &str| {
        assert!(
            Command::new("kill")
                .args(["-s", name, &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let watchdog = Instant::now() + Duration::from_secs(60);
    let wait_for = |what: &str| loop {
        let left = watchdog.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("watchdog: no {what:?} line"));
        if line.contains(what) {
            break line;
        }
    };
    // The first progress line: it plays.
    wait_for("records/s");
    signal("USR1");
    wait_for("paused");
    signal("USR2");
    wait_for("resumed after");
    let end = wait_for("end of recording");
    assert!(child.wait().unwrap().success(), "{end}");
    reader.join().unwrap();
    let source = records(dir.path(), &recorded)
        .iter()
        .filter_map(market)
        .filter(|r| r.0 != Kind::BookSnapshot)
        .count();
    let copy = records(dir.path(), &played)
        .iter()
        .filter_map(market)
        .filter(|r| r.0 != Kind::BookSnapshot)
        .count();
    assert_eq!(copy, source, "every tick and delta played once");
}

/// Retention's rule: the WAL is within `budget`, or what is left starts at
/// the segment holding the newest full snapshot set (which, like the live
/// segment after it, is never deleted).
fn within_budget(root: &str, feed: &str, budget: u64) -> bool {
    let total = common::segment_bytes(&Path::new(root).join(feed));
    if total <= budget {
        return true;
    }
    let out = mdbus(&["wal", "inspect", "--wal", root, "--feed", feed, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let segments: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let newest_set = segments.iter().rposition(|s| s["full_snapshot_set"] == true);
    newest_set == Some(0)
}

/// `mdbus play --retain-bytes`: a long `--loop` keeps the played feed's
/// WAL within its budget (the oldest segments deleted); what is left
/// verifies clean and ends with the newest records and the end marker.
#[test]
fn retain_bytes_bounds_the_played_feeds_wal() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let (recorded, played) = (feed("retrec"), feed("retplay"));
    record(root, &recorded);
    let budget: u64 = 256 << 10;
    let out = play(
        root,
        &recorded,
        &played,
        &[
            "--max",
            "--no-board",
            "--loop",
            "3",
            "--segment-bytes",
            "65536",
            "--retain-bytes",
            "256KiB",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        within_budget(root, &played, budget),
        "{} bytes kept",
        common::segment_bytes(&dir.path().join(&played))
    );
    let out = mdbus(&["wal", "verify", "--wal", root, "--feed", &played]);
    assert!(out.status.success() && text(&out).contains("clean"), "{}", text(&out));
    // The oldest records are gone, the newest are there: the last pass's
    // market records (ticks and deltas; the publishers' snapshots differ)
    // are the recording's, then the end marker.
    let copy = records(dir.path(), &played);
    assert!(copy[0].header().seq > 1, "nothing deleted: the WAL starts at seq 1");
    let (end, body) = copy.split_last().unwrap();
    let end = end.record().unwrap();
    assert_ne!(end.header().flags & FLAG_END_OF_RECORDING, 0, "the end marker");
    let payloads = |samples: &[MdSample]| -> Vec<(Kind, Vec<u8>)> {
        samples
            .iter()
            .filter_map(market)
            .filter(|(kind, _, _)| *kind != Kind::BookSnapshot)
            .map(|(kind, _, payload)| (kind, payload))
            .collect()
    };
    let source = payloads(&records(dir.path(), &recorded));
    let tail = payloads(body);
    assert!(tail.len() > 100, "{} market records left", tail.len());
    assert_eq!(tail[tail.len() - 100..], source[source.len() - 100..]);
}

#[test]
fn a_bad_retention_value_exits_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let (recorded, played) = (feed("badrec"), feed("badplay"));
    for (flag, value) in [("--retain-bytes", "12XB"), ("--retain-age", "soon")] {
        let out = play(root, &recorded, &played, &["--max", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(flag), "{}", text(&out));
    }
}
