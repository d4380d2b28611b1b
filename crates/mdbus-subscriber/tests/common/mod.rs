//! Helpers shared by the subscriber's integration tests: an in-process
//! publisher with a WAL, a reference read of the WAL, and watchdog loops.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::time::{Duration, Instant};

use mdbus_publisher::{FeedConfig, FeedPublisher, SyntheticFeed};
use mdbus_subscriber::{Event, Subscriber};
use mdbus_transport::{InProcBus, InProcSender, MdReceiver};
use mdbus_types::{MdSample, clock::now_ns};
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
