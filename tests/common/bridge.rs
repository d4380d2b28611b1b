//! Helpers of the bridge tests (tests/bridge.rs, tests/bridge_hosts.rs):
//! `mdbus publish`, `mdbus bridge out|in|status` as real processes, on
//! this host or inside a network namespace (`ip netns exec`, which execs
//! the command: the child's pid is mdbus's, so signals reach it), and
//! readers of the WALs they leave. Included with `#[path]` beside
//! `mod common;`.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mdbus::wal::{ReadEvent, ReadFrom, ReadOptions, WalReader};

use super::common::{Proc, WATCHDOG};

pub const MDBUS: &str = env!("CARGO_BIN_EXE_mdbus");

/// One test at a time: each runs a publisher and two or three bridges,
/// and the kill points need them to make progress on a small, shared
/// machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether a child has exited (reaped).
pub fn exited(proc: &mut Proc) -> bool {
    proc.0.try_wait().unwrap().is_some()
}

/// A feed name unique to this test process and `test`.
pub fn feed(test: &str) -> String {
    format!("br{}{test}", std::process::id())
}

/// A free TCP port on 127.0.0.1 (bound once to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `mdbus ARGS` on this host (`netns` None) or in a network namespace.
pub fn mdbus(netns: Option<&str>) -> Command {
    match netns {
        None => Command::new(MDBUS),
        Some(ns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", ns, MDBUS]);
            command
        }
    }
}

/// Spawns `mdbus ARGS`, its stderr in `log`.
pub fn spawn(netns: Option<&str>, args: &[&str], log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc(
        mdbus(netns)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// `mdbus publish` of a synthetic feed into `<dir>/src`.
pub fn publish(netns: Option<&str>, dir: &Path, feed: &str, rate: &str, seconds: &str, segment_bytes: &str) -> Proc {
    let (wal, board) = (dir.join("src"), dir.join("board-src"));
    std::fs::create_dir_all(&board).unwrap();
    spawn(
        netns,
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

/// `mdbus bridge out` of `feed` (WAL `<dir>/src`) listening on `endpoint`;
/// its status file in `dir`; log `out-<n>.log`.
pub fn bridge_out(netns: Option<&str>, dir: &Path, feed: &str, endpoint: &str, n: u32) -> Proc {
    spawn(
        netns,
        &[
            "bridge",
            "out",
            "--feed",
            feed,
            "--listen",
            endpoint,
            "--wal",
            dir.join("src").to_str().unwrap(),
            "--status-dir",
            dir.to_str().unwrap(),
        ],
        &dir.join(format!("out-{n}.log")),
    )
}

/// `mdbus bridge in` of `feed` from `endpoint` as `as_feed` (WAL
/// `<dir>/dst/<as_feed>/`, board `<dir>/board-dst`); its status file in
/// `dir`; log `in-<as_feed>-<n>.log`.
pub fn bridge_in(netns: Option<&str>, dir: &Path, feed: &str, as_feed: &str, endpoint: &str, n: u32) -> Proc {
    let board = dir.join("board-dst");
    std::fs::create_dir_all(&board).unwrap();
    spawn(
        netns,
        &[
            "bridge",
            "in",
            "--feed",
            feed,
            "--connect",
            endpoint,
            "--as",
            as_feed,
            "--wal",
            dir.join("dst").to_str().unwrap(),
            "--board-dir",
            board.to_str().unwrap(),
            "--status-dir",
            dir.to_str().unwrap(),
        ],
        &dir.join(format!("in-{as_feed}-{n}.log")),
    )
}

/// The default replica name of `feed` in these tests.
pub fn replica(feed: &str) -> String {
    format!("{feed}G")
}

/// The WAL root of the replicas.
pub fn replica_root(dir: &Path) -> PathBuf {
    dir.join("dst")
}

/// Every record of a WAL, in order: (seq, bytes). A hole or a corrupt
/// frame fails the test (the reader does not skip).
pub fn records(root: &Path, feed: &str) -> Vec<(u64, Vec<u8>)> {
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
pub struct Tail {
    root: PathBuf,
    feed: String,
    reader: Option<WalReader>,
    last: u64,
}

impl Tail {
    pub fn new(root: &Path, feed: &str) -> Tail {
        Tail {
            root: root.to_path_buf(),
            feed: feed.to_string(),
            reader: None,
            last: 0,
        }
    }

    /// Reads what was appended since the last call; the last seq.
    pub fn last_seq(&mut self) -> u64 {
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
pub fn last_seq(root: &Path, feed: &str) -> u64 {
    Tail::new(root, feed).last_seq()
}

/// Waits until `done` holds, failing after the watchdog with `what` and
/// the logs of `dir`.
pub fn wait_for(what: &str, dir: &Path, mut done: impl FnMut() -> bool) {
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

/// The replica `as_feed` holds exactly the source's records from its
/// first seq to the source's end: dense, same bytes. Returns (first seq,
/// count).
pub fn assert_replica_equals_source(dir: &Path, feed: &str, as_feed: &str) -> (u64, usize) {
    let source = records(&dir.join("src"), feed);
    let copy = records(&replica_root(dir), as_feed);
    assert!(!copy.is_empty(), "the replica {as_feed} is empty");
    let first = copy[0].0;
    for (i, (seq, _)) in copy.iter().enumerate() {
        assert_eq!(*seq, first + i as u64, "replica {as_feed}: seq not dense at index {i}");
    }
    let start = source
        .iter()
        .position(|r| r.0 == first)
        .expect("the replica's first seq is in the source");
    assert_eq!(source.len() - start, copy.len(), "replica {as_feed}: length");
    for (a, b) in source[start..].iter().zip(&copy) {
        assert_eq!(a, b, "replica {as_feed}: record seq {} differs", a.0);
    }
    (first, copy.len())
}

/// Sends `signal` (`TERM`, `STOP`, `CONT`, ...) to a child.
pub fn signal(proc: &Proc, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &proc.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal}");
}

/// Stops a bridge with SIGTERM (a clean exit, its iceoryx2 service
/// removed) and waits for it.
pub fn stop(proc: &mut Proc, what: &str) {
    signal(proc, "TERM");
    proc.wait_ok(what);
}

/// `mdbus bridge status --feed FEED --json` with the status files of
/// `dir`: (exit success, the JSON).
pub fn status(dir: &Path, feed: &str) -> (bool, serde_json::Value) {
    let out = Command::new(MDBUS)
        .args(["bridge", "status", "--feed", feed, "--json", "--status-dir"])
        .arg(dir)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("mdbus bridge status: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.success(), json)
}
