//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use mdbus_types::{
    BookDelta, BookSnapshot, FLAG_RECOVERY_SNAPSHOT, Heartbeat, InstrumentId, Kind, Level, MdSample, Price,
    RecordHeader, Side, Tick, json,
};
use mdbus_wal::{ReadEvent, ReadOptions, SkippedRange, SyncPolicy, Wal, WalOptions, WalReader};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A temp dir holding a copy of fixture folder `name` (feed `golden`).
pub fn fixture_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join(name), dir.path());
    dir
}

pub fn expected_lines(name: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(fixtures().join(name).join("expected.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Small segments, no background threads: quick tests.
pub fn test_options(segment_bytes: u64) -> WalOptions {
    WalOptions::default()
        .segment_bytes(segment_bytes)
        .sync(SyncPolicy::Never)
        .preallocate_next(false)
}

/// Everything a strict or skip-corrupt replay from the start yields.
#[derive(Debug, Default)]
pub struct Replay {
    pub json: Vec<serde_json::Value>,
    pub seqs: Vec<u64>,
    pub bytes: Vec<Vec<u8>>,
    pub skipped: Vec<SkippedRange>,
    pub error: Option<mdbus_wal::Error>,
}

pub fn replay(dir: &Path, feed: &str, skip_corrupt: bool) -> Replay {
    let mut out = Replay::default();
    let mut reader = WalReader::open(
        dir,
        feed,
        ReadOptions {
            skip_corrupt,
            ..ReadOptions::default()
        },
    )
    .unwrap();
    loop {
        match reader.next_event() {
            Ok(Some(ReadEvent::Record(r))) => {
                out.json
                    .push(serde_json::from_str(&json::record_to_json(r.record)).unwrap());
                out.seqs.push(r.seq());
                out.bytes.push(r.record.as_bytes().to_vec());
            }
            Ok(Some(ReadEvent::Skipped(s))) => out.skipped.push(s),
            Ok(None) => break,
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
    }
    out
}

fn instrument(i: u64) -> InstrumentId {
    InstrumentId::new(["IF2501", "BTC/USDT", "SPREAD-X"][(i % 3) as usize]).unwrap()
}

/// A deterministic record of `kind` (0..4) with `seq`; ts_event = seq * 1000.
pub fn record(seq: u64, kind: u8) -> MdSample {
    let ts = 1_764_000_000_000_000_000 + seq as i64 * 1000;
    let mut sample = match kind % 4 {
        0 => MdSample::from(Tick {
            header: RecordHeader::new(Kind::Tick, ts),
            instrument: instrument(seq),
            last_px: Price::from_raw(4_123_400_000_000 + seq as i64),
            last_qty: 2,
            bid_px: Price::from_raw(4_123_200_000_000),
            bid_qty: 5,
            ask_px: Price::from_raw(4_123_400_000_000),
            ask_qty: 3,
            volume: seq as i64,
        }),
        1 => {
            let mut s = BookSnapshot::empty(instrument(seq), ts);
            s.bid_count = 1;
            s.bids[0] = Level {
                price: Price::from_raw(100_000_000_000),
                qty: seq as i64 + 1,
            };
            MdSample::from(s)
        }
        2 => MdSample::from(BookDelta::new(
            instrument(seq),
            Side::Ask,
            Price::from_raw(seq as i64),
            7,
            ts,
        )),
        _ => MdSample::from(Heartbeat {
            header: RecordHeader::new(Kind::Heartbeat, ts),
        }),
    };
    sample.header_mut().seq = seq;
    sample.header_mut().ts_publish = ts + 1;
    sample
}

/// A snapshot-set record (flagged), a heartbeat closing it when `close`.
pub fn snapshot_record(seq: u64, close: bool) -> MdSample {
    let mut sample = record(seq, if close { 3 } else { 1 });
    sample.header_mut().flags = FLAG_RECOVERY_SNAPSHOT;
    sample
}

/// Runs `f` on a thread and panics if it takes longer than `limit`
/// (a watchdog, not a timing assertion).
pub fn with_watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).expect("watchdog: the test did not finish")
}

/// Writes seq 1..=n of mixed kinds (`record(seq, seq % 4)`) into feed `f`
/// over small segments; the frame (segment, offset, len) of each seq.
pub fn write_mixed(dir: &Path, n: u64) -> Vec<(PathBuf, usize, usize)> {
    let mut wal = Wal::open(dir, "f", test_options(4096)).unwrap();
    let mut frames = Vec::new();
    for seq in 1..=n {
        let sample = record(seq, (seq % 4) as u8);
        let len = sample.record_bytes().unwrap().len();
        wal.append(&sample).unwrap();
        let offset = wal.append_offset() as usize - 8 - len;
        frames.push((wal.segment_path().to_path_buf(), offset, len));
    }
    wal.sync().unwrap();
    frames
}

/// Flips one bit of the byte at `at` in the file at `path`.
pub fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

/// This process's maps of files, from `/proc/self/smaps` (Linux): each
/// map's file and the lines that follow its first one (`Rss:   12 kB`,
/// `VmFlags: rd sh mr ...`), in the order the kernel lists them.
pub fn file_maps() -> Vec<(PathBuf, Vec<String>)> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
    let mut maps: Vec<(Option<PathBuf>, Vec<String>)> = Vec::new();
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            // A map's first line: "start-end perms offset dev inode [path]".
            maps.push((line.split_whitespace().nth(5).map(PathBuf::from), Vec::new()));
        } else if let Some((_, lines)) = maps.last_mut() {
            lines.push(line.to_string());
        }
    }
    maps.into_iter()
        .filter_map(|(path, lines)| path.map(|path| (path, lines)))
        .collect()
}
