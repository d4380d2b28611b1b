//! Helpers shared by the subscriber's integration tests: an in-process
//! publisher with a WAL, a reference read of the WAL, and watchdog loops.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mdbus_publisher::{FeedConfig, FeedPublisher, SyntheticFeed};
use mdbus_subscriber::{Event, Subscriber};
use mdbus_transport::{InProcBus, InProcSender, MdReceiver};
use mdbus_types::{BookSnapshot, InstrumentId, MdSample, clock::now_ns};
use mdbus_wal::{ReadOptions, WalOptions, WalReader};

/// Every wait in these tests ends by this deadline or fails.
pub const WATCHDOG: Duration = Duration::from_secs(60);

pub type Pub = FeedPublisher<InProcSender>;

/// A publisher of `feed` with its WAL in `dir` (small segments, so rolls
/// and snapshot sets happen).
pub fn publisher(dir: &Path, feed: &str, bus: &InProcBus, segment_bytes: u64) -> Pub {
    let mut config = FeedConfig::new(feed);
    config.wal_root = Some(dir.to_path_buf());
    config.wal = WalOptions::default().segment_bytes(segment_bytes);
    FeedPublisher::open(config, bus.sender()).unwrap()
}

/// Publishes `n` market events (ts_event = wall clock, so it never goes back).
pub fn publish(publisher: &mut Pub, feed: &mut SyntheticFeed, n: usize) {
    let mut batch = Vec::new();
    for _ in 0..n {
        batch.clear();
        feed.next_event(now_ns(), &mut batch);
        publisher.publish_batch(&mut batch).unwrap();
    }
}

/// Every record of the WAL, oldest first.
pub fn wal_records(dir: &Path, feed: &str) -> Vec<MdSample> {
    let mut reader = WalReader::open(dir, feed, ReadOptions::default()).unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        out.push(r.record.to_sample());
    }
    out
}

/// Events until the record with `last_seq` was delivered (watchdog: panics
/// after [`WATCHDOG`]). `each` runs after every event.
pub fn events_until<R: MdReceiver>(
    subscriber: &mut Subscriber<R>,
    last_seq: u64,
    mut each: impl FnMut(&Event),
) -> Vec<Event> {
    let deadline = Instant::now() + WATCHDOG;
    let mut events = Vec::new();
    while subscriber.stats().last_seq.is_none_or(|s| s < last_seq) {
        assert!(
            Instant::now() < deadline,
            "watchdog: seq {last_seq} not reached; stats {:?}",
            subscriber.stats()
        );
        if let Some(event) = subscriber.next_event(Duration::from_millis(100)).unwrap() {
            each(&event);
            events.push(event);
        }
    }
    events
}

/// The seqs of the record events.
pub fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().filter_map(Event::seq).collect()
}

/// Asserts `seqs` is `first..=last` without holes or repeats.
pub fn assert_dense(seqs: &[u64], first: u64, last: u64) {
    assert_eq!(seqs.first(), Some(&first), "first seq");
    assert_eq!(seqs.last(), Some(&last), "last seq");
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "seq {} follows {}", w[1], w[0]);
    }
}

/// A publisher thread of `feed` (1 MiB segments, `instruments` synthetic
/// instruments of `seed`) publishing `events` market events in batches of
/// 100 at full rate; returns once it has published `started` events. The
/// thread ends with the last seq and every instrument's book.
pub fn running_publisher(
    dir: &Path,
    feed: &str,
    bus: &InProcBus,
    (instruments, seed): (usize, u64),
    events: usize,
    started: u64,
) -> JoinHandle<(u64, HashMap<InstrumentId, BookSnapshot>)> {
    let published = Arc::new(AtomicU64::new(0));
    let thread = {
        let (dir, feed, bus, published) = (dir.to_path_buf(), feed.to_string(), bus.clone(), Arc::clone(&published));
        std::thread::spawn(move || {
            let mut p = publisher(&dir, &feed, &bus, 1 << 20);
            let mut synthetic = SyntheticFeed::new(instruments, seed).unwrap();
            for _ in 0..events / 100 {
                publish(&mut p, &mut synthetic, 100);
                published.store(p.next_seq() - 1, Ordering::Relaxed);
            }
            p.flush().unwrap();
            let books = synthetic
                .instruments()
                .map(|id| (id, p.book(&id).unwrap().to_snapshot()))
                .collect();
            (p.next_seq() - 1, books)
        })
    };
    let deadline = Instant::now() + WATCHDOG;
    while published.load(Ordering::Relaxed) < started.min(events as u64) {
        assert!(Instant::now() < deadline, "watchdog: publisher did not start");
        assert!(!thread.is_finished(), "the publisher thread ended early");
        std::thread::sleep(Duration::from_millis(1));
    }
    thread
}
