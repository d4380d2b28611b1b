//! The snapshot board across processes: the independently written fixture,
//! the Python reader, a torture test for torn reads, and kill -9 of the
//! writer mid-update.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytemuck::Zeroable;
use mdbus_board::{BoardReader, BoardWriter};
use mdbus_types::{BookSnapshot, InstrumentId, Kind, Level, Price, RecordHeader, RecordRef, Tick, json};

const CHILD_ENV: &str = "MDBUS_BOARD_CHILD";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/board_reader.py")
}

fn entry_json(reader: &BoardReader, id: &InstrumentId) -> serde_json::Value {
    let entry = reader.entry(id).expect("on the board");
    let book = entry.book().map(|b| json::record_to_json(RecordRef::BookSnapshot(&b)));
    let tick = entry.tick().map(|t| json::record_to_json(RecordRef::Tick(&t)));
    let text = format!(
        r#"{{"instrument":"{id}","book":{},"tick":{}}}"#,
        book.as_deref().unwrap_or("null"),
        tick.as_deref().unwrap_or("null")
    );
    serde_json::from_str(&text).unwrap()
}

fn expected_board() -> BTreeMap<String, serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("board/expected.json")).unwrap()).unwrap()
}

#[test]
fn fixture_board_reads_as_expected() {
    let reader = BoardReader::open(&fixtures().join("board"), "golden").unwrap();
    let status = reader.status();
    assert_eq!((status.feed.as_str(), status.capacity, status.count), ("golden", 64, 3));
    assert_eq!((status.epoch, status.writer_pid, status.last_seq), (3, 4242, 21));
    let expected = expected_board();
    let names: Vec<String> = reader.instruments().iter().map(|i| i.to_string()).collect();
    assert_eq!(names, expected.keys().cloned().collect::<Vec<_>>());
    for (symbol, want) in &expected {
        let id = InstrumentId::new(symbol).unwrap();
        assert_eq!(&entry_json(&reader, &id), want, "{symbol}");
    }
    assert!(reader.entry(&InstrumentId::new("rb2505").unwrap()).is_none());
}

fn python() -> Option<&'static str> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        mdbus_types::test_support::skip("python_reader_reads_the_fixture_board", "python3 not found");
    }
    ok.then_some("python3")
}

#[test]
fn python_reader_reads_the_fixture_board() {
    let Some(python) = python() else { return };
    let out = Command::new(python)
        .arg(script())
        .arg(fixtures().join("board/mdbus.golden.board"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = expected_board();
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), expected.len());
    for line in lines {
        let symbol = line["instrument"].as_str().unwrap().to_string();
        assert_eq!(line, expected[&symbol], "{symbol}");
    }
    let missing = Command::new(python)
        .arg(script())
        .arg(fixtures().join("board/mdbus.golden.board"))
        .args(["--instrument", "NOPE"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NOPE"));
}

// ---- counter-derived values: a torn read mixes two counters and shows ----

fn symbols(n: usize) -> Vec<InstrumentId> {
    (0..n).map(|i| InstrumentId::new(&format!("SYM{i}")).unwrap()).collect()
}

fn derived_tick(id: InstrumentId, c: u64) -> Tick {
    let c = c as i64;
    let mut t = Tick::zeroed();
    t.header = RecordHeader::new(Kind::Tick, c);
    t.header.seq = c as u64;
    t.instrument = id;
    (t.last_px, t.last_qty, t.bid_px, t.bid_qty) = (Price(c * 7), c * 3, Price(c * 5), c);
    (t.ask_px, t.ask_qty, t.volume) = (Price(c * 11), c * 2, c * 13);
    t
}

fn derived_book(id: InstrumentId, c: u64) -> BookSnapshot {
    let mut b = BookSnapshot::empty(id, c as i64);
    b.header.seq = c;
    b.bid_count = (c % 11) as u16;
    b.ask_count = 10 - (c % 11).min(10) as u16;
    let n = c as i64;
    for i in 0..10 {
        let k = i as i64;
        b.bids[i] = Level {
            price: Price(n * 100 - k),
            qty: n + k,
        };
        b.asks[i] = Level {
            price: Price(n * 100 + 1 + k),
            qty: n * 2 + k,
        };
    }
    b
}

fn child(role: &str, dir: &Path, feed: &str, instruments: usize, seconds: f64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(
            CHILD_ENV,
            format!("{role},{},{feed},{instruments},{seconds}", dir.display()),
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Not a test of its own: the writer process of the tests below, selected
/// by an environment variable (a normal run returns at once).
#[test]
fn child_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let parts: Vec<&str> = spec.split(',').collect();
    let (dir, feed) = (Path::new(parts[1]), parts[2]);
    let ids = symbols(parts[3].parse().unwrap());
    let seconds: f64 = parts[4].parse().unwrap();
    let mut writer = BoardWriter::open(dir, feed, 64).unwrap();
    let start = Instant::now();
    let mut c = 0u64;
    while seconds == 0.0 || start.elapsed().as_secs_f64() < seconds {
        c += 1;
        for &id in &ids {
            writer.update_tick(&derived_tick(id, c)).unwrap();
            writer.update_book(&derived_book(id, c)).unwrap();
        }
        writer.set_last_seq(c);
        if c.is_multiple_of(1024) {
            writer.heartbeat();
        }
    }
}

/// Reads every instrument until `until`; returns (reads, torn).
fn read_and_check(reader: &BoardReader, ids: &[InstrumentId], until: Instant) -> (u64, u64) {
    let (mut reads, mut torn) = (0u64, 0u64);
    while Instant::now() < until {
        for &id in ids {
            let Some(entry) = reader.entry(&id) else { continue };
            if let Some(t) = entry.tick() {
                reads += 1;
                torn += u64::from(t != derived_tick(id, t.header.seq));
            }
            if let Some(b) = entry.book() {
                reads += 1;
                torn += u64::from(b != derived_book(id, b.header.seq));
            }
        }
    }
    (reads, torn)
}

fn wait_for_board(dir: &Path, feed: &str, deadline: Instant) -> BoardReader {
    loop {
        if let Ok(reader) = BoardReader::open(dir, feed)
            && reader.status().last_seq > 0
        {
            return reader;
        }
        assert!(Instant::now() < deadline, "watchdog: the writer child never wrote");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn torture_across_processes_has_no_torn_read() {
    let dir = tempfile::tempdir().unwrap();
    let ids = symbols(8);
    let mut writer = child("torture", dir.path(), "torture", ids.len(), 3.0);
    let reader = wait_for_board(dir.path(), "torture", Instant::now() + Duration::from_secs(60));
    let python = python().map(|p| {
        Command::new(p)
            .arg(script())
            .arg(reader.path())
            .args(["--torture", "1.5"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    });
    let (reads, torn) = read_and_check(&reader, &ids, Instant::now() + Duration::from_secs(2));
    let status = writer.wait().unwrap();
    assert!(status.success());
    println!(
        "rust reader: {reads} reads, {torn} torn; writer reached seq {}",
        reader.status().last_seq
    );
    assert!(reads > 1000, "{reads}");
    assert_eq!(torn, 0);
    if let Some(py) = python {
        let out = py.wait_with_output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        println!("python reader: {report}");
        assert!(out.status.success(), "{report}");
        assert_eq!(report["torn"], 0);
        assert!(report["reads"].as_u64().unwrap() > 0);
    }
}

#[test]
fn kill_9_of_the_writer_leaves_the_last_complete_values_and_a_new_writer_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let ids = symbols(4);
    let mut writer = child("kill", dir.path(), "killed", ids.len(), 0.0);
    let reader = wait_for_board(dir.path(), "killed", Instant::now() + Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    while reader.status().last_seq < 10_000 {
        assert!(Instant::now() < deadline, "watchdog: writer too slow");
        std::thread::sleep(Duration::from_millis(1));
    }
    writer.kill().unwrap(); // SIGKILL
    writer.wait().unwrap();
    // Every value is complete and consistent; reads never block.
    let (reads, torn) = read_and_check(&reader, &ids, Instant::now() + Duration::from_millis(200));
    assert!(reads > 0);
    assert_eq!(torn, 0);
    let before: Vec<Tick> = ids.iter().map(|id| reader.tick(id).unwrap()).collect();
    // The flock died with the process: a new writer opens, repairs any
    // cell left mid-update, bumps the epoch and keeps the values.
    let mut next = BoardWriter::open(dir.path(), "killed", 64).unwrap();
    println!("cells repaired after kill -9: {}", next.repaired_cells());
    assert_eq!(next.epoch(), 2);
    assert_eq!(next.status().writer_pid, std::process::id());
    let after: Vec<Tick> = ids.iter().map(|id| reader.tick(id).unwrap()).collect();
    assert_eq!(before, after);
    let c = before[0].header.seq + 1;
    next.update_tick(&derived_tick(ids[0], c)).unwrap();
    assert_eq!(reader.tick(&ids[0]).unwrap(), derived_tick(ids[0], c));
}
