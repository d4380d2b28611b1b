//! The cross-process bus: `mdbus publish` in its own process, subscribers
//! and board readers here or in other processes. Unique feed names per
//! test; every wait has a watchdog; child processes are killed on drop.
#![cfg(feature = "iceoryx2")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::Proc;
use std::time::{Duration, Instant};

use mdbus::board::BoardReader;
use mdbus::transport::iceoryx::{IoxReceiver, IoxReceiverConfig, WaitStrategy, init_logging};
use mdbus::transport::{Error, MdReceiver};
use mdbus::types::{Book, InstrumentId, MdSample, RecordRef, validate_snapshot};
use mdbus::wal::{ReadOptions, WalReader};

const WATCHDOG: Duration = Duration::from_secs(60);

/// The tests of this file run one at a time: a subscriber that keeps up is
/// the premise of several of them, and on a 2-core machine six publishers
/// at once would make "keeping up" a matter of luck (safe overflow drops
/// what a descheduled subscriber cannot take).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn feed(name: &str) -> String {
    format!("{name}{}", std::process::id())
}

fn publish(feed: &str, dir: &Path, rate: u64, seconds: f64) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_mdbus"))
            .args(["publish", "--feed", feed, "--synthetic", "--instruments", "4"])
            .args(["--rate", &rate.to_string(), "--duration", &seconds.to_string()])
            .args(["--segment-bytes", "4194304"])
            .arg("--wal")
            .arg(dir)
            .arg("--board-dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn subscriber(feed: &str, wait: WaitStrategy) -> IoxReceiver {
    init_logging();
    let config = IoxReceiverConfig::new(feed.to_string()).wait(wait);
    let deadline = Instant::now() + WATCHDOG;
    loop {
        match IoxReceiver::open(&config) {
            Ok(s) => return s,
            Err(e) => {
                assert!(Instant::now() < deadline, "watchdog: feed {feed} never appeared: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Receives `n` records (or fails at the watchdog).
fn receive(sub: &mut IoxReceiver, n: usize) -> Vec<MdSample> {
    let deadline = Instant::now() + WATCHDOG;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        assert!(Instant::now() < deadline, "watchdog: {} of {n} records", out.len());
        match sub.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(s)) => out.push(s),
            Ok(None) | Err(Error::Disconnected) => {}
            Err(e) => panic!("{e}"),
        }
    }
    out
}

fn seqs(records: &[MdSample]) -> Vec<u64> {
    records.iter().map(|s| s.header().seq).collect()
}

fn wal_records(dir: &Path, feed: &str) -> Vec<MdSample> {
    let mut reader = WalReader::open(dir, feed, ReadOptions::default()).unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        out.push(r.record.to_sample());
    }
    out
}

#[test]
fn hundred_thousand_records_in_order_and_two_subscribers_get_everything() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let feed = feed("inorder");
    let mut publisher = publish(&feed, dir.path(), 12_000, 11.0);
    let feed2 = feed.clone();
    let other = std::thread::spawn(move || {
        let mut sub = subscriber(&feed2, WaitStrategy::backoff());
        receive(&mut sub, 50_000)
    });
    let mut sub = subscriber(&feed, WaitStrategy::Block);
    let mine = receive(&mut sub, 100_000);
    let theirs = other.join().unwrap();
    let s = seqs(&mine);
    assert!(s.windows(2).all(|w| w[1] == w[0] + 1), "dense, in order");
    assert!(seqs(&theirs).windows(2).all(|w| w[1] == w[0] + 1));
    // Both saw the same bytes for the seqs they share, equal to the WAL's.
    publisher.wait_ok("mdbus publish");
    let wal = wal_records(dir.path(), &feed);
    for sample in mine.iter().chain(&theirs) {
        assert_eq!(&wal[sample.header().seq as usize - 1], sample);
    }
}

#[test]
fn a_sleeping_subscriber_loses_the_oldest_and_sees_the_exact_hole() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let feed = feed("sleeper");
    let mut publisher = publish(&feed, dir.path(), 20_000, 8.0);
    let mut sub = subscriber(&feed, WaitStrategy::Block);
    let before = receive(&mut sub, 100);
    // "Sleeps" until the publisher is three 4096-sample buffers further
    // (the board says how far it got): a condition, not a duration, so a
    // slow machine only makes the wait longer.
    let board = BoardReader::open(dir.path(), &feed).unwrap();
    let far = before.last().unwrap().header().seq + 3 * 4096;
    let deadline = Instant::now() + WATCHDOG;
    while board.status().last_seq < far {
        assert!(Instant::now() < deadline, "watchdog: {:?}", board.status());
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = receive(&mut sub, 5_000);
    publisher.wait_ok("mdbus publish");
    let last_before = before.last().unwrap().header().seq;
    let s = seqs(&after);
    // Everything it got is in order. The holes are where it slept: the
    // first starts right after the last record before the sleep, and a
    // few more can follow while it drains a full buffer that the publisher
    // keeps overwriting from the oldest end. Once caught up, it is dense.
    let holes: Vec<(u64, u64)> = std::iter::once(last_before)
        .chain(s.iter().copied())
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[1] != w[0] + 1)
        .map(|w| (w[0] + 1, w[1] - 1))
        .collect();
    assert!(s.windows(2).all(|w| w[1] > w[0]), "in order");
    assert_eq!(holes[0].0, last_before + 1, "{holes:?}");
    let lost: u64 = holes.iter().map(|(from, to)| to - from + 1).sum();
    assert_eq!(
        sub.dropped(),
        lost,
        "the subscriber counts exactly the seqs it did not get"
    );
    // It kept the newest: the buffer's worth, not the oldest.
    assert!(holes[0].1 - holes[0].0 + 1 > 4096, "{holes:?}");
    let caught_up = &s[s.len() / 2..];
    assert!(caught_up.windows(2).all(|w| w[1] == w[0] + 1), "dense once caught up");
    let (from, to) = (holes[0].0, holes.last().unwrap().1);
    // The publisher was not blocked: it ran to the end, and the WAL holds
    // every seq, the hole included (a subscriber fills it from there).
    let wal = wal_records(dir.path(), &feed);
    assert!(wal.len() as u64 > to);
    assert!(seqs(&wal).windows(2).all(|w| w[1] == w[0] + 1));
    println!(
        "hole {from}..={to} ({} records), publisher wrote {}",
        to - from + 1,
        wal.len()
    );
}

#[test]
fn board_reads_from_another_process_are_never_torn_at_full_rate() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let feed = feed("boardrate");
    let mut publisher = publish(&feed, dir.path(), 0, 3.0);
    let deadline = Instant::now() + WATCHDOG;
    let board = loop {
        if let Ok(b) = BoardReader::open(dir.path(), &feed)
            && b.instruments().len() == 4
        {
            break b;
        }
        assert!(Instant::now() < deadline, "watchdog: no board");
        std::thread::sleep(Duration::from_millis(10));
    };
    let ids = board.instruments();
    let (mut reads, mut last_seq) = (0u64, 0u64);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        for id in &ids {
            let entry = board.entry(id).unwrap();
            if let Some(book) = entry.book() {
                validate_snapshot(&book).unwrap_or_else(|e| panic!("torn or invalid book: {e}"));
                let (b, a) = (book.bid_levels()[0].price, book.ask_levels()[0].price);
                assert!(b < a, "{id}: bid {b} >= ask {a}");
                reads += 1;
            }
            if let Some(tick) = entry.tick() {
                assert_eq!(tick.instrument, *id);
                assert!(tick.bid_px < tick.ask_px && tick.last_qty > 0, "torn tick {tick:?}");
                reads += 1;
            }
        }
        let seq = board.status().last_seq;
        assert!(seq >= last_seq, "last_seq went back");
        last_seq = seq;
    }
    publisher.wait_ok("mdbus publish");
    println!("{reads} board reads, publisher reached seq {last_seq}");
    assert!(reads > 1_000 && last_seq > 10_000);
}

#[test]
fn publisher_kill_9_and_restart_continue_the_seq_for_running_subscribers() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let feed = feed("pubkill");
    let mut first = publish(&feed, dir.path(), 10_000, 60.0);
    let mut sub = subscriber(&feed, WaitStrategy::Block);
    let before = receive(&mut sub, 3_000);
    first.kill_9();
    let restarts = sub.publisher_restarts();
    // The same WAL, a new process: it cleans the dead node and continues.
    let mut second = publish(&feed, dir.path(), 10_000, 1.5);
    let after = receive(&mut sub, 3_000);
    second.wait_ok("the restarted mdbus publish");
    let last_before = before.last().unwrap().header().seq;
    let first_after = after[0].header().seq;
    assert!(first_after > last_before, "{first_after} after {last_before}");
    // In order, each once. The bare transport may show a hole (a record the
    // killed publisher appended to the WAL but did not send, or one it
    // overwrote for a receiver starved under load): every such hole is
    // counted by the receiver and held by the WAL (checked below), which is
    // what a `Subscriber` fills it from.
    let after_seqs = seqs(&after);
    assert!(after_seqs.windows(2).all(|w| w[1] > w[0]), "out of order or duplicated");
    let holes: u64 = after_seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
    assert!(
        sub.dropped() >= holes,
        "{holes} missing seqs, {} counted",
        sub.dropped()
    );
    let _ = sub.poll_events();
    assert!(sub.publisher_restarts() > restarts, "the restart is seen (EventId 1)");
    // The WAL is dense across the kill: the restarted publisher continued
    // at the next seq after the last valid record.
    let wal = wal_records(dir.path(), &feed);
    assert!(seqs(&wal).windows(2).all(|w| w[1] == w[0] + 1));
    for s in before.iter().chain(&after) {
        assert_eq!(&wal[s.header().seq as usize - 1], s);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mdbus"))
        .args(["wal", "verify", "--feed", &feed, "--wal"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn subscriber_kill_9_never_stalls_the_publisher() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let feed = feed("subkill");
    let mut publisher = publish(&feed, dir.path(), 20_000, 3.0);
    let mut victim = Proc(
        Command::new(env!("CARGO_BIN_EXE_mdbus"))
            .args(["subscribe", "--feed", &feed, "--quiet", "--wait", "spin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut sub = subscriber(&feed, WaitStrategy::Block);
    receive(&mut sub, 1_000);
    victim.kill_9();
    // The publisher goes on, and this subscriber keeps receiving densely.
    let after = receive(&mut sub, 20_000);
    assert!(seqs(&after).windows(2).all(|w| w[1] == w[0] + 1));
    publisher.wait_ok("mdbus publish");
}

#[test]
fn live_books_equal_the_board_and_the_wal_after_the_publisher_ends() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let feed = feed("decode");
    let mut publisher = publish(&feed, dir.path(), 20_000, 2.0);
    let mut sub = subscriber(&feed, WaitStrategy::Block);
    // Everything until the publisher exits (then the feed goes quiet).
    let mut got = Vec::new();
    let deadline = Instant::now() + WATCHDOG;
    loop {
        assert!(Instant::now() < deadline, "watchdog");
        match sub.recv_timeout(Duration::from_millis(500)) {
            Ok(Some(s)) => got.push(s),
            Ok(None) | Err(Error::Disconnected) if publisher.0.try_wait().unwrap().is_some() => break,
            Ok(None) | Err(Error::Disconnected) => {}
            Err(e) => panic!("{e}"),
        }
    }
    publisher.wait_ok("mdbus publish");
    let wal = wal_records(dir.path(), &feed);
    // Every live record is the WAL's record of its seq, byte for byte, in
    // order, up to the WAL's last. (A receiver starved for longer than its
    // queue holds loses the oldest records, iceoryx2's safe overflow:
    // `a_sleeping_subscriber_loses_the_oldest_and_sees_the_exact_hole`
    // tests that; on a loaded machine it can happen here, so what was lost
    // is reported, not failed on. The `Subscriber` fills such holes from
    // the WAL.)
    assert!(
        got.windows(2).all(|w| w[0].header().seq < w[1].header().seq),
        "live seqs increase"
    );
    for sample in &got {
        let seq = sample.header().seq as usize;
        assert_eq!(&wal[seq - 1], sample, "live record {seq} is the WAL's, byte for byte");
    }
    assert_eq!(
        got.last(),
        wal.last(),
        "the live stream ends with the WAL's last record"
    );
    let first = got[0].header().seq as usize;
    let lost = wal.len() + 1 - first - got.len();
    if lost > 0 {
        eprintln!(
            "live_books_equal_the_board_and_the_wal_after_the_publisher_ends: the receiver, starved, lost {lost} records (safe overflow)"
        );
    }
    // A subscriber's L1 books, built from the WAL's start, equal the board.
    let mut books: std::collections::HashMap<InstrumentId, Book> = Default::default();
    for s in &wal {
        match s.record().unwrap() {
            RecordRef::BookSnapshot(b) => {
                validate_snapshot(b).unwrap();
                books
                    .entry(b.instrument)
                    .or_insert_with(|| Book::new(b.instrument))
                    .apply_snapshot(b)
                    .unwrap();
            }
            RecordRef::BookDelta(d) => {
                books.get_mut(&d.instrument).unwrap().apply_delta(d).unwrap();
            }
            _ => {}
        }
    }
    let board = BoardReader::open(dir.path(), &feed).unwrap();
    assert_eq!(board.status().last_seq, wal.len() as u64);
    assert_eq!(books.len(), 4);
    for (id, book) in &books {
        assert_eq!(board.book(id).unwrap(), book.to_snapshot(), "{id}");
    }
}
