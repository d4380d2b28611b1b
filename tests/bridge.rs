//! `mdbus bridge` across processes on loopback (issue 15, phase 1): a
//! feed published by `mdbus publish`, put on Zenoh by `mdbus bridge out`
//! and republished by `mdbus bridge in --as G` must leave a replica WAL
//! with the source's records (dense seq, same bytes), also when either
//! bridge is killed with SIGKILL and restarted, and a receiver that joins
//! late starts at the source's newest snapshot set. Every wait is a
//! condition under a watchdog; children are killed on drop. Network
//! namespaces, SIGSTOP and link-down cases are phase 2.
#![cfg(feature = "iceoryx2")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mdbus::board::BoardReader;
use mdbus::wal::{ReadEvent, ReadFrom, ReadOptions, WalReader};

use common::{Proc, WATCHDOG};

const MDBUS: &str = env!("CARGO_BIN_EXE_mdbus");

/// One test at a time: each runs a publisher and two bridges, and the
/// kill points need them to make progress on a small, shared machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether a child has exited (reaped).
fn exited(proc: &mut Proc) -> bool {
    proc.0.try_wait().unwrap().is_some()
}

/// A feed name unique to this test process and `test`.
fn feed(test: &str) -> String {
    format!("br{}{test}", std::process::id())
}

/// A free TCP port on 127.0.0.1 (bound once to port 0, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(args: &[&str], log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(MDBUS)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// `mdbus publish` of a synthetic feed into `<dir>/src`.
fn publish(dir: &Path, feed: &str, rate: &str, seconds: &str, segment_bytes: &str) -> Proc {
    let (wal, board) = (dir.join("src"), dir.join("board-src"));
    std::fs::create_dir_all(&board).unwrap();
    spawn(
        &[
            "publish",
            "--feed",
            feed,
            "--wal",
            wal.to_str().unwrap(),
            "--synthetic",
            "--rate",
            rate,
            "--duration",
            seconds,
            "--segment-bytes",
            segment_bytes,
            "--board-dir",
            board.to_str().unwrap(),
        ],
        &dir.join(format!("publish-{feed}.log")),
    )
}

fn bridge_out(dir: &Path, feed: &str, port: u16, n: u32) -> Proc {
    spawn(
        &[
            "bridge",
            "out",
            "--feed",
            feed,
            "--listen",
            &format!("tcp/127.0.0.1:{port}"),
            "--wal",
            dir.join("src").to_str().unwrap(),
        ],
        &dir.join(format!("out-{n}.log")),
    )
}

fn bridge_in(dir: &Path, feed: &str, port: u16, n: u32) -> Proc {
    let board = dir.join("board-dst");
    std::fs::create_dir_all(&board).unwrap();
    spawn(
        &[
            "bridge",
            "in",
            "--feed",
            feed,
            "--connect",
            &format!("tcp/127.0.0.1:{port}"),
            "--as",
            &replica(feed),
            "--wal",
            dir.join("dst").to_str().unwrap(),
            "--board-dir",
            board.to_str().unwrap(),
        ],
        &dir.join(format!("in-{n}.log")),
    )
}

fn replica(feed: &str) -> String {
    format!("{feed}G")
}

/// Every record of a WAL, in order: (seq, bytes). A hole or a corrupt
/// frame fails the test (the reader does not skip).
fn records(root: &Path, feed: &str) -> Vec<(u64, Vec<u8>)> {
    let options = ReadOptions {
        from: ReadFrom::Start,
        skip_corrupt: false,
    };
    let mut reader = match WalReader::open(root, feed, options) {
        Ok(reader) => reader,
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    while let Some(event) = reader.next_event().unwrap() {
        if let ReadEvent::Record(r) = event {
            out.push((r.seq(), r.record.as_bytes().to_vec()));
        }
    }
    out
}

/// Follows a WAL as it grows: the last seq read so far (0 when empty).
struct Tail {
    root: std::path::PathBuf,
    feed: String,
    reader: Option<WalReader>,
    last: u64,
}

impl Tail {
    fn new(root: &Path, feed: &str) -> Tail {
        Tail {
            root: root.to_path_buf(),
            feed: feed.to_string(),
            reader: None,
            last: 0,
        }
    }

    /// Reads what was appended since the last call; the last seq.
    fn last_seq(&mut self) -> u64 {
        if self.reader.is_none() {
            let options = ReadOptions {
                from: ReadFrom::Seq(self.last + 1),
                skip_corrupt: false,
            };
            self.reader = WalReader::open(&self.root, &self.feed, options).ok();
        }
        let Some(reader) = &mut self.reader else {
            return self.last;
        };
        loop {
            match reader.next_event() {
                Ok(Some(ReadEvent::Record(r))) => self.last = r.seq(),
                Ok(Some(ReadEvent::Skipped(_))) => {}
                Ok(None) => break,
                // A replica's first (empty) segment replaced by the one at
                // its start seq: open again after what was read.
                Err(_) => {
                    self.reader = None;
                    break;
                }
            }
        }
        self.last
    }
}

/// The last seq in a WAL (0 when empty).
fn last_seq(root: &Path, feed: &str) -> u64 {
    Tail::new(root, feed).last_seq()
}

/// Waits until `done` holds, failing after the watchdog with `what` and
/// the logs of `dir`.
fn wait_for(what: &str, dir: &Path, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WATCHDOG;
    while !done() {
        if Instant::now() > deadline {
            let mut logs = String::new();
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                if entry.path().extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(5).collect();
                    logs += &format!("\n{}:\n{}", entry.path().display(), tail.join("\n"));
                }
            }
            panic!("watchdog: {what}{logs}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The replica holds exactly the source's records from its first seq to
/// the source's end: dense, same bytes. Returns (first seq, count).
fn assert_replica_equals_source(dir: &Path, feed: &str) -> (u64, usize) {
    let source = records(&dir.join("src"), feed);
    let copy = records(&dir.join("dst"), &replica(feed));
    assert!(!copy.is_empty(), "the replica is empty");
    let first = copy[0].0;
    for (i, (seq, _)) in copy.iter().enumerate() {
        assert_eq!(*seq, first + i as u64, "replica seq not dense at index {i}");
    }
    let start = source
        .iter()
        .position(|r| r.0 == first)
        .expect("the replica's first seq is in the source");
    assert_eq!(source.len() - start, copy.len(), "replica length");
    for (a, b) in source[start..].iter().zip(&copy) {
        assert_eq!(a, b, "record seq {} differs", a.0);
    }
    (first, copy.len())
}

/// Stops a bridge with SIGTERM (a clean exit, its iceoryx2 service
/// removed) and waits for it.
fn stop(proc: &mut Proc, what: &str) {
    let status = Command::new("kill")
        .args(["-TERM", &proc.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    proc.wait_ok(what);
}

#[test]
fn loopback_replica_has_dense_seq_and_identical_bytes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let feed = feed("lo");
    let port = free_port();
    let mut receiver = bridge_in(dir, &feed, port, 1);
    // Until the source holds 200 k records (how long that takes depends
    // on the machine's load: the count is waited for, not the clock), then
    // the publisher is killed; the bridge sends the rest from the WAL.
    let mut publisher = publish(dir, &feed, "100000", "300", "67108864");
    let mut sender = bridge_out(dir, &feed, port, 1);
    let mut source = Tail::new(&dir.join("src"), &feed);
    wait_for("the source holds 200 k records", dir, || source.last_seq() >= 200_000);
    publisher.kill_9();
    let end = last_seq(&dir.join("src"), &feed);
    let mut copy = Tail::new(&dir.join("dst"), &replica(&feed));
    wait_for("the replica reaches the source's last seq", dir, || {
        copy.last_seq() >= end
    });
    stop(&mut receiver, "bridge in");
    stop(&mut sender, "bridge out");
    let (first, count) = assert_replica_equals_source(dir, &feed);
    println!("replica: seq {first}.. ({count} records) equal to the source");
    assert!(count >= 200_000, "{count}");
}

#[test]
fn bridges_killed_with_sigkill_and_restarted_leave_no_gap_or_duplicate() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let feed = feed("k9");
    let port = free_port();
    let mut receiver = bridge_in(dir, &feed, port, 1);
    let mut publisher = publish(dir, &feed, "50000", "10", "67108864");
    let mut sender = bridge_out(dir, &feed, port, 1);
    let mut copy = Tail::new(&dir.join("dst"), &replica(&feed));
    let mut source = Tail::new(&dir.join("src"), &feed);
    // Mid-stream: the replica has records and the source goes on (or, on
    // a slow machine, has ended: the restart must catch up all the same).
    wait_for("the replica gets records", dir, || copy.last_seq() > 20_000);
    receiver.kill_9();
    let at_kill = copy.last_seq();
    wait_for("the source moves on", dir, || {
        source.last_seq() > at_kill + 20_000 || exited(&mut publisher)
    });
    receiver = bridge_in(dir, &feed, port, 2);
    wait_for("the restarted receiver moves on", dir, || {
        copy.last_seq() > at_kill + 10_000
    });
    sender.kill_9();
    let at_kill = source.last_seq();
    wait_for("the source moves on", dir, || {
        source.last_seq() > at_kill + 20_000 || exited(&mut publisher)
    });
    sender = bridge_out(dir, &feed, port, 2);
    publisher.wait_ok("mdbus publish");
    let end = source.last_seq();
    wait_for("the replica reaches the source's last seq", dir, || {
        copy.last_seq() >= end
    });
    stop(&mut receiver, "bridge in");
    stop(&mut sender, "bridge out");
    let (first, count) = assert_replica_equals_source(dir, &feed);
    assert_eq!(first, 1, "the receiver started with the feed");
    println!("replica: seq 1..={count} equal to the source after both kills");
}

#[test]
fn a_late_receiver_starts_at_the_newest_snapshot_set_and_ends_with_the_source_board() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let feed = feed("late");
    let port = free_port();
    // Small segments: several snapshot sets before the receiver joins.
    let mut publisher = publish(dir, &feed, "50000", "2", "1048576");
    let mut sender = bridge_out(dir, &feed, port, 1);
    publisher.wait_ok("mdbus publish");
    let src_root = dir.join("src");
    let point = mdbus::wal::recovery_point(&src_root, &feed).unwrap().unwrap();
    assert!(point.start_seq() > 1, "the source has several segments");
    let end = last_seq(&src_root, &feed);
    let mut receiver = bridge_in(dir, &feed, port, 1);
    let mut copy = Tail::new(&dir.join("dst"), &replica(&feed));
    wait_for("the late replica reaches the source's last seq", dir, || {
        copy.last_seq() >= end
    });
    stop(&mut receiver, "bridge in");
    stop(&mut sender, "bridge out");
    let (first, _) = assert_replica_equals_source(dir, &feed);
    assert_eq!(
        first,
        point.start_seq(),
        "the replica starts at the newest snapshot set"
    );
    let source = BoardReader::open(&dir.join("board-src"), &feed).unwrap();
    let copy = BoardReader::open(&dir.join("board-dst"), &replica(&feed)).unwrap();
    let instruments = source.instruments();
    assert!(!instruments.is_empty());
    for id in instruments {
        assert_eq!(copy.tick(&id), source.tick(&id), "tick of {id}");
        assert_eq!(copy.book(&id), source.book(&id), "book of {id}");
    }
}
