//! WAL benches: append throughput (Tick; SyncPolicy Never and Interval;
//! warm preallocated segments and a fresh, un-prefaulted segment), replay
//! throughput with validation, and writer open (recovery scan) time
//! against the size of the newest segment.
//!
//! `MDBUS_WAL_BENCH_RECORDS` (default 200000) sets the replay size;
//! `MDBUS_WAL_BENCH_BIG_MB` (default 16) the large segment of the open
//! bench.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mdbus_types::{InstrumentId, Kind, MdSample, Price, RecordHeader, Tick};
use mdbus_wal::{AppendOutcome, ReadOptions, SyncPolicy, Wal, WalOptions, WalReader};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn tick() -> MdSample {
    MdSample::from(Tick {
        header: RecordHeader::new(Kind::Tick, 1_764_000_000_000_000_000),
        instrument: InstrumentId::new("IF2501").unwrap(),
        last_px: Price::from_raw(4_123_400_000_000),
        last_qty: 2,
        bid_px: Price::from_raw(4_123_200_000_000),
        bid_qty: 5,
        ask_px: Price::from_raw(4_123_400_000_000),
        ask_qty: 3,
        volume: 1234,
    })
}

fn drop_old_segments(feed_dir: &Path, live: &Path) {
    for entry in std::fs::read_dir(feed_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wal") && path != live {
            std::fs::remove_file(path).unwrap();
        }
    }
}

fn fill(dir: &Path, feed: &str, records: u64, segment_bytes: u64) {
    let options = WalOptions::default()
        .segment_bytes(segment_bytes)
        .sync(SyncPolicy::Never)
        .preallocate_next(false);
    let mut wal = Wal::open(dir, feed, options).unwrap();
    let mut sample = tick();
    for _ in 0..records {
        sample.header_mut().seq = wal.next_seq();
        wal.append(&sample).unwrap();
    }
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_tick");
    group.throughput(Throughput::Elements(1));
    for (name, sync) in [("never", SyncPolicy::Never), ("interval_2ms", SyncPolicy::default())] {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions::default().segment_bytes(16 << 20).sync(sync);
        let mut wal = Wal::open(dir.path(), "bench", options).unwrap();
        let mut sample = tick();
        group.bench_function(name, |b| {
            b.iter(|| {
                sample.header_mut().seq = wal.next_seq();
                if let AppendOutcome::NewSegment { .. } = wal.append(black_box(&sample)).unwrap() {
                    // Keep the disk bounded: only the live segment stays
                    // (cheaper than `apply_retention`, which scans segments
                    // for snapshot sets).
                    drop_old_segments(dir.path().join("bench").as_path(), wal.segment_path());
                }
            })
        });
    }
    // A fresh segment: first touch of every page (no prefault).
    group.bench_function("fresh_segment_never", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().unwrap();
            let bytes = ((iters * 112 + 4096) / 8 * 8).max(1 << 16);
            let options = WalOptions {
                prefault: false,
                ..WalOptions::default()
            }
            .segment_bytes(bytes)
            .sync(SyncPolicy::Never)
            .preallocate_next(false);
            let mut wal = Wal::open(dir.path(), "fresh", options).unwrap();
            let mut sample = tick();
            let start = Instant::now();
            for _ in 0..iters {
                sample.header_mut().seq = wal.next_seq();
                wal.append(black_box(&sample)).unwrap();
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn replay(c: &mut Criterion) {
    let records = env_u64("MDBUS_WAL_BENCH_RECORDS", 200_000);
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), "replay", records, 64 << 20);
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(records));
    group.bench_function("tick_validated", |b| {
        b.iter(|| {
            let mut reader = WalReader::open(dir.path(), "replay", ReadOptions::default()).unwrap();
            let mut n = 0u64;
            while let Some(r) = reader.next_record().unwrap() {
                n += black_box(r.seq()) & 1;
            }
            n
        })
    });
    group.finish();
}

fn open_recovery(c: &mut Criterion) {
    let big_mb = env_u64("MDBUS_WAL_BENCH_BIG_MB", 16);
    let mut group = c.benchmark_group("open_recovery");
    for mb in [1, big_mb] {
        let dir = tempfile::tempdir().unwrap();
        let segment_bytes = mb << 20;
        let records = (segment_bytes - 4096) / 112;
        fill(dir.path(), "open", records, segment_bytes);
        group.throughput(Throughput::Bytes(segment_bytes));
        group.bench_with_input(BenchmarkId::new("newest_segment_mib", mb), &mb, |b, _| {
            let options = WalOptions::default()
                .segment_bytes(segment_bytes)
                .sync(SyncPolicy::Never)
                .preallocate_next(false);
            b.iter(|| {
                let wal = Wal::open(dir.path(), "open", options.clone()).unwrap();
                assert_eq!(wal.next_seq(), records + 1);
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(20);
    targets = append, replay, open_recovery
}
criterion_main!(benches);
