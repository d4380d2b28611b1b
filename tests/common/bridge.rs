//! Helpers of the bridge tests (tests/bridge.rs, tests/bridge_hosts.rs):
//! `mdbus publish`, `mdbus bridge out|in|status` as real processes, on
//! this host or inside a network namespace (`ip netns exec`, which execs
//! the command: the child's pid is mdbus's, so signals reach it), and
//! readers of the WALs they leave. Included with `#[path]` beside
//! `mod common;`.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
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
    bridge_out_with(netns, dir, feed, endpoint, n, &[])
}

/// [`bridge_out`] with more arguments.
pub fn bridge_out_with(netns: Option<&str>, dir: &Path, feed: &str, endpoint: &str, n: u32, more: &[&str]) -> Proc {
    let (wal, dir_text) = (dir.join("src"), dir.to_str().unwrap());
    let mut args = vec![
        "bridge",
        "out",
        "--feed",
        feed,
        "--listen",
        endpoint,
        "--wal",
        wal.to_str().unwrap(),
        "--status-dir",
        dir_text,
    ];
    args.extend_from_slice(more);
    spawn(netns, &args, &dir.join(format!("out-{n}.log")))
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

/// The bytes of the records in `<root>/<feed>` (the WAL's payloads, not
/// its preallocated files).
pub fn record_bytes(root: &Path, feed: &str) -> u64 {
    records(root, feed).iter().map(|(_, bytes)| bytes.len() as u64).sum()
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
    wait_for_deadline(what, dir, &mut || (done(), deadline));
}

/// Waits until `check` says done, failing once its deadline (the second
/// of the pair, which it may move) has passed, with `what` and the logs of
/// `dir`.
fn wait_for_deadline(what: &str, dir: &Path, check: &mut dyn FnMut() -> (bool, Instant)) {
    loop {
        let (done, deadline) = check();
        if done {
            return;
        }
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

/// The next record of a WAL reader (a corrupt frame or a hole fails the
/// test: the reader does not skip); `None` at its end.
fn next_record<'a>(reader: &'a mut WalReader, what: &str) -> Option<mdbus::wal::WalRecord<'a>> {
    match reader.next_event() {
        Ok(Some(ReadEvent::Record(record))) => Some(record),
        Ok(Some(ReadEvent::Skipped(range))) => panic!("{what}: the reader skipped {range:?}"),
        Ok(None) => None,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// The replica `as_feed` holds exactly the source's records from its
/// first seq to the source's end: dense, same bytes. Both WALs are read
/// side by side, record by record (a million records are not held in
/// memory); the first difference fails the test, with the byte offsets
/// that differ and both headers. Returns (first seq,
/// count).
pub fn assert_replica_equals_source(dir: &Path, feed: &str, as_feed: &str) -> (u64, usize) {
    let open = |root: &Path, name: &str, from: ReadFrom| {
        let options = ReadOptions {
            from,
            skip_corrupt: false,
        };
        WalReader::open(root, name, options).unwrap_or_else(|e| panic!("open the WAL of {name}: {e}"))
    };
    let mut copy = open(&replica_root(dir), as_feed, ReadFrom::Start);
    let first = next_record(&mut copy, as_feed)
        .unwrap_or_else(|| panic!("the replica {as_feed} is empty"))
        .seq();
    let mut copy = open(&replica_root(dir), as_feed, ReadFrom::Seq(first));
    let mut source = open(&dir.join("src"), feed, ReadFrom::Seq(first));
    let mut count = 0usize;
    loop {
        let expected = first + count as u64;
        match (next_record(&mut source, feed), next_record(&mut copy, as_feed)) {
            (None, None) => break,
            (Some(s), None) => panic!(
                "replica {as_feed}: ends at seq {} before the source's seq {}",
                expected - 1,
                s.seq()
            ),
            (None, Some(c)) => panic!("replica {as_feed}: seq {} past the source's end", c.seq()),
            (Some(s), Some(c)) => {
                assert_eq!(
                    c.seq(),
                    expected,
                    "replica {as_feed}: seq not dense after {count} records"
                );
                assert_eq!(s.seq(), expected, "source {feed}: seq {expected} missing");
                let (sb, cb) = (s.record.as_bytes(), c.record.as_bytes());
                if sb != cb {
                    let offsets: Vec<usize> = (0..sb.len().max(cb.len()))
                        .filter(|&i| sb.get(i) != cb.get(i))
                        .take(16)
                        .collect();
                    panic!(
                        "replica {as_feed}: record seq {expected} differs from the source's \
                         (byte offsets {offsets:?} of {} / {})\n source:  {:?}\n replica: {:?}",
                        sb.len(),
                        cb.len(),
                        s.record.header(),
                        c.record.header()
                    );
                }
            }
        }
        count += 1;
    }
    (first, count)
}

/// The lines of `mdbus replay` of a WAL from `from_seq`, read on a thread
/// and handed over in chunks through a bounded channel (the two replays
/// of a comparison advance together; neither is held whole).
fn replay_lines(root: &Path, feed: &str, from_seq: u64) -> (Proc, mpsc::Receiver<Vec<String>>) {
    let mut child = Command::new(MDBUS)
        .args(["replay", "--feed", feed, "--from-seq", &from_seq.to_string(), "--wal"])
        .arg(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::sync_channel(4);
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let chunk: Vec<String> = lines
                .by_ref()
                .take(4096)
                .map(|line| line.expect("read mdbus replay"))
                .collect();
            let end = chunk.len() < 4096;
            if tx.send(chunk).is_err() || end {
                return;
            }
        }
    });
    (Proc(child), rx)
}

/// `mdbus replay` of the source and of the replica `as_feed` from seq
/// `first` print the same lines: compared line by line as both stream
/// (under the watchdog), the first difference named; both exit 0.
/// Returns the number of lines.
pub fn assert_same_replay(dir: &Path, feed: &str, as_feed: &str, first: u64) -> usize {
    let (mut source_proc, source) = replay_lines(&dir.join("src"), feed, first);
    let (mut copy_proc, copy) = replay_lines(&replica_root(dir), as_feed, first);
    let next = |rx: &mpsc::Receiver<Vec<String>>, what: &str| {
        rx.recv_timeout(WATCHDOG)
            .unwrap_or_else(|e| panic!("watchdog: mdbus replay of {what}: {e}"))
    };
    let mut n = 0;
    loop {
        let (a, b) = (next(&source, feed), next(&copy, as_feed));
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x, y, "mdbus replay: line {} differs (source, replica)", n + i + 1);
        }
        assert_eq!(
            a.len(),
            b.len(),
            "mdbus replay: the source has {} lines, the replica {}",
            n + a.len(),
            n + b.len()
        );
        n += a.len();
        if a.len() < 4096 {
            break;
        }
    }
    source_proc.wait_ok("mdbus replay of the source");
    copy_proc.wait_ok("mdbus replay of the replica");
    n
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

/// Records the throughput test moves across.
pub const A_MILLION: u64 = 1_000_000;

/// The throughput test, on loopback or across the veth pair:
/// `bridge in` (in `netns_b`) waits for the source; `mdbus publish --rate
/// 0` (in `netns_a`, as fast as it goes) and `bridge out` start; once the
/// source holds [`A_MILLION`] records from the replica's first seq the
/// publisher is killed (the WAL keeps what it published), and the replica
/// must reach the source's last seq. Then both WALs are compared record by
/// record and by `mdbus replay`. Every wait is a condition under the
/// watchdog, each measured from progress (the replica moving on), so a
/// slow machine is slow, not failed. Returns the records compared.
pub fn a_million_across(
    dir: &Path,
    feed: &str,
    as_feed: &str,
    endpoint: &str,
    netns_a: Option<&str>,
    netns_b: Option<&str>,
) -> usize {
    let started = Instant::now();
    let mut receiver = bridge_in(netns_b, dir, feed, as_feed, endpoint, 1);
    let mut publisher = publish(netns_a, dir, feed, "0", "600", "67108864");
    let mut sender = bridge_out(netns_a, dir, feed, endpoint, 1);
    let mut source = Tail::new(&dir.join("src"), feed);
    let mut copy = Tail::new(&replica_root(dir), as_feed);
    wait_for("the replica gets its first record", dir, || copy.last_seq() > 0);
    let first = first_seq(&replica_root(dir), as_feed);
    let want = first + A_MILLION - 1;
    wait_for_progress(
        "the source holds a million records",
        dir,
        &mut || source.last_seq(),
        want,
    );
    publisher.kill_9();
    let end = last_seq(&dir.join("src"), feed);
    let published = started.elapsed();
    wait_for_progress(
        "the replica reaches the source's last seq",
        dir,
        &mut || copy.last_seq(),
        end,
    );
    let across = started.elapsed();
    stop(&mut receiver, "bridge in");
    stop(&mut sender, "bridge out");
    let (first_copy, count) = assert_replica_equals_source(dir, feed, as_feed);
    assert_eq!(first_copy, first);
    assert!(count as u64 >= A_MILLION, "{count} records compared");
    let lines = assert_same_replay(dir, feed, as_feed, first);
    assert_eq!(lines, count, "mdbus replay prints one line per record");
    println!(
        "{count} records (seq {first}..={end}): published in {:.1} s, across in {:.1} s, compared in {:.1} s",
        published.as_secs_f64(),
        across.as_secs_f64(),
        (started.elapsed() - across).as_secs_f64()
    );
    count
}

/// The first seq of a WAL (its first record).
pub fn first_seq(root: &Path, feed: &str) -> u64 {
    let options = ReadOptions {
        from: ReadFrom::Start,
        skip_corrupt: false,
    };
    let mut reader = WalReader::open(root, feed, options).unwrap();
    next_record(&mut reader, feed).expect("a record").seq()
}

/// Waits until `seq()` reaches `target`; fails when it has not moved for
/// the watchdog's time (a long run on a slow machine is allowed while it
/// makes progress), with `what` and the logs of `dir`.
pub fn wait_for_progress(what: &str, dir: &Path, seq: &mut dyn FnMut() -> u64, target: u64) {
    let mut last = seq();
    let mut moved = Instant::now();
    wait_for_deadline(what, dir, &mut || {
        let now = seq();
        if now != last {
            last = now;
            moved = Instant::now();
        }
        (now >= target, moved + WATCHDOG)
    });
}
