//! Subscriber benches.
//!
//! - `l1/tick_get`, `l1/book_get`: one read of an instrument's latest tick
//!   and current book (`BookSnapshot` copy) from the L1 `DashMap`, after a
//!   full replay (criterion's median is the p50).
//! - `replay/subscriber`: a new subscriber replaying the whole WAL from seq
//!   1 through replay-merge, L1 and L2 (`Throughput::Elements`: records/s),
//!   with `next_event_ref`; `replay/subscriber_by_value` with `next_event`.
//! - `replay/subscriber_without_l2`: the same with L2 off (what keeping
//!   history in memory costs); `replay/subscriber_state_only` with L2 on
//!   but not kept while replaying (`CatchUp::StateOnly`);
//!   `replay/subscriber_silent` with the replayed records applied to L1 and
//!   not delivered (`CatchUp::Silent`).
//! - `history/ticks_l3_1000`: `History::ticks` of a range holding 1000
//!   trades of one instrument, straight from the WAL (open, seek by time
//!   through the sparse index, read).
//!
//! - `restart/to_live_<N>mb`: a subscriber started on a WAL of N MiB
//!   (64 MiB segments, as the publisher's default) from its default start
//!   point (the newest full snapshot set) until it has delivered the WAL's
//!   last record: what a restart costs before it is live, whatever the
//!   history's length.
//!
//! Environment: `MDBUS_SUB_BENCH_EVENTS` (default 100000) market events in
//! the WAL (4 instruments, 16 MiB segments); `MDBUS_SUB_BENCH_RESTART_MB`
//! (default 128) the WAL size of `restart`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mdbus_publisher::{FeedConfig, FeedPublisher, SyntheticFeed};
use mdbus_subscriber::{CatchUp, History, L2Config, StartFrom, Subscriber, SubscriberConfig};
use mdbus_transport::InProcBus;
use mdbus_types::WalLocation;
use mdbus_types::{FLAG_RECOVERY_SNAPSHOT, RecordRef, clock::now_ns};
use mdbus_wal::{ReadOptions, WalOptions, WalReader};

const FEED: &str = "bench";

fn events() -> usize {
    std::env::var("MDBUS_SUB_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// A WAL of `events` market events; returns its last seq.
fn write_wal(dir: &std::path::Path, events: usize) -> u64 {
    write_wal_until(dir, 16 << 20, 4, |written| written >= events as u64)
}

/// A WAL of at least `mb` MiB in 64 MiB segments; returns its last seq.
fn write_wal_mb(dir: &std::path::Path, mb: u64) -> u64 {
    let bytes = |dir: &std::path::Path| -> u64 {
        let feed_dir = dir.join(FEED);
        std::fs::read_dir(feed_dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    // Segments are preallocated: the last one is full once the one after
    // it exists. The size is looked at every 100 000 events.
    write_wal_until(dir, 64 << 20, 16, |written| {
        written.is_multiple_of(100_000) && bytes(dir) >= (mb + 64) << 20
    })
}

/// Publishes the synthetic market of `instruments` into a WAL of
/// `segment_bytes` segments until `done(events written)`; the last seq.
fn write_wal_until(dir: &std::path::Path, segment_bytes: u64, instruments: usize, done: impl Fn(u64) -> bool) -> u64 {
    let bus = InProcBus::new(16);
    let mut config = FeedConfig::new(FEED);
    config.wal_root = Some(dir.to_path_buf());
    config.wal = WalOptions::default().segment_bytes(segment_bytes);
    let mut publisher = FeedPublisher::open(config, bus.sender()).unwrap();
    let mut feed = SyntheticFeed::new(instruments, 1).unwrap();
    let mut batch = Vec::new();
    let mut written = 0;
    while !done(written) {
        batch.clear();
        feed.next_event(now_ns(), &mut batch);
        publisher.publish_batch(&mut batch).unwrap();
        written += 1;
    }
    publisher.flush().unwrap();
    publisher.next_seq() - 1
}

fn replay(dir: &std::path::Path, last: u64) -> Subscriber<mdbus_transport::InProcReceiver> {
    catch_up(dir, last, StartFrom::Seq(1), L2Config::default(), CatchUp::Full)
}

/// A new subscriber from `start` until it delivered `last`.
fn catch_up(
    dir: &std::path::Path,
    last: u64,
    start: StartFrom,
    l2: L2Config,
    mode: CatchUp,
) -> Subscriber<mdbus_transport::InProcReceiver> {
    let bus = InProcBus::new(16);
    let config = SubscriberConfig::default()
        .wal(WalLocation::try_new(dir, FEED).unwrap())
        .start(start)
        .l2(l2)
        .catch_up(mode);
    let mut subscriber = Subscriber::new(bus.subscribe(), config).unwrap();
    while subscriber.stats().last_seq != Some(last) {
        // A silent catch-up delivers nothing: the call applies the WAL.
        let delivered = subscriber.next_event_ref(Duration::ZERO).unwrap().is_some();
        assert!(
            delivered || subscriber.stats().last_seq == Some(last),
            "the WAL ended early"
        );
    }
    subscriber
}

/// [`replay`] with `next_event` (each event copied out).
fn replay_by_value(dir: &std::path::Path, last: u64) -> Subscriber<mdbus_transport::InProcReceiver> {
    let bus = InProcBus::new(16);
    let config = SubscriberConfig::default()
        .wal(WalLocation::try_new(dir, FEED).unwrap())
        .start(StartFrom::Seq(1));
    let mut subscriber = Subscriber::new(bus.subscribe(), config).unwrap();
    while subscriber.stats().last_seq != Some(last) {
        black_box(
            subscriber
                .next_event(Duration::from_secs(1))
                .unwrap()
                .expect("WAL record"),
        );
    }
    subscriber
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let last = write_wal(dir.path(), events());
    let subscriber = replay(dir.path(), last);
    let l1 = subscriber.l1().clone();
    let id = l1.instruments()[0];

    let mut group = c.benchmark_group("l1");
    group.bench_function("tick_get", |b| b.iter(|| black_box(l1.tick(black_box(&id)))));
    group.bench_function("book_get", |b| b.iter(|| black_box(l1.book(black_box(&id)))));
    // The top of book and staleness in one read (no 376-byte rebuild).
    group.bench_function("quote_get", |b| b.iter(|| black_box(l1.quote(black_box(&id)))));
    group.finish();

    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(last));
    group.sample_size(10);
    group.bench_function("subscriber", |b| b.iter(|| black_box(replay(dir.path(), last).stats())));
    group.bench_function("subscriber_by_value", |b| {
        b.iter(|| black_box(replay_by_value(dir.path(), last).stats()))
    });
    let no_l2 = L2Config::default().max_ticks(0).max_book_records(0);
    group.bench_function("subscriber_without_l2", |b| {
        b.iter(|| black_box(catch_up(dir.path(), last, StartFrom::Seq(1), no_l2, CatchUp::Full).stats()))
    });
    // L2 on, but not kept while replaying (CatchUp::StateOnly).
    group.bench_function("subscriber_state_only", |b| {
        b.iter(|| {
            let l2 = L2Config::default();
            black_box(catch_up(dir.path(), last, StartFrom::Seq(1), l2, CatchUp::StateOnly).stats())
        })
    });
    // L1 only, the replayed records applied and not delivered.
    group.bench_function("subscriber_silent", |b| {
        b.iter(|| {
            let l2 = L2Config::default();
            black_box(catch_up(dir.path(), last, StartFrom::Seq(1), l2, CatchUp::Silent).stats())
        })
    });
    group.finish();

    // A range of 1000 trades of `id` in the middle of the WAL.
    let mut reader = WalReader::open(dir.path(), FEED, ReadOptions::default()).unwrap();
    let mut trades = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        if let RecordRef::Tick(t) = r.record
            && t.instrument == id
            && t.header.flags & FLAG_RECOVERY_SNAPSHOT == 0
        {
            trades.push(t.header.ts_event);
        }
    }
    let start = trades.len() / 2;
    let end = (start + 999).min(trades.len() - 1);
    let (from, to) = (trades[start], trades[end]);
    let history = History::open(WalLocation::try_new(dir.path(), FEED).unwrap());
    let n = history.ticks(&id, from, to).unwrap().len();
    eprintln!("history/ticks_l3_1000: {n} ticks in range");
    let mut group = c.benchmark_group("history");
    group.bench_function("ticks_l3_1000", |b| {
        b.iter(|| black_box(history.ticks(&id, from, to).unwrap()))
    });
    group.finish();

    let mb: u64 = std::env::var("MDBUS_SUB_BENCH_RESTART_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let mut group = c.benchmark_group("restart");
    group.sample_size(10);
    // Written on first use (criterion calls the closure once per sample),
    // so a run that filters this bench out writes nothing.
    let wal = std::cell::OnceCell::new();
    group.bench_function(format!("to_live_{mb}mb"), |b| {
        let (dir, last) = wal.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let last = write_wal_mb(dir.path(), mb);
            let replayed = catch_up(
                dir.path(),
                last,
                StartFrom::RecoveryPoint,
                L2Config::default(),
                CatchUp::Full,
            )
            .stats()
            .replayed;
            eprintln!("restart/to_live_{mb}mb: {last} records in the WAL, {replayed} replayed from the recovery point");
            (dir, last)
        });
        b.iter(|| {
            black_box(
                catch_up(
                    dir.path(),
                    *last,
                    StartFrom::RecoveryPoint,
                    L2Config::default(),
                    CatchUp::Full,
                )
                .stats(),
            )
        })
    });
    group.finish();
}

criterion_group! {
    name = cache;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(cache);
