//! WAL benches.
//!
//! - `append_tick/<sync>/<case>`: appends of one Tick (`Throughput::Elements`,
//!   so criterion reports records/s), default 64 MiB segments, `<sync>`
//!   `never` or `interval` (the default group commit, 2 ms):
//!   - `warm`: every timed batch runs in a segment that is live and whose
//!     successor is already prepared (nothing else runs); no roll is timed.
//!     Once per WAL (both policies fill), the rate probe of the segment
//!     live at open prepares its successor again in one timed batch, in
//!     criterion's warm-up, beside the appends (see
//!     `WalOptions::large_folios`).
//!   - `fresh`: every timed batch starts on a just-rolled segment, while the
//!     background thread prepares (allocates, pre-faults) the next one; the
//!     roll itself is not timed.
//!   - `steady`: back-to-back appends, rolls included (the sustained rate).
//!
//!   Deleting old segments (to bound the disk) is never timed.
//!   `append_tick/never/unprefaulted`: a fresh segment without pre-faulting,
//!   for comparison (every first write to a page faults).
//! - `replay/<stream>_validated`: a reader opening the WAL and reading
//!   every record, validated (crc32c, rkyv checked access, seq), of a
//!   Tick-only stream and of a mixed one (snapshot set, then 60% Tick,
//!   35% BookDelta, a heartbeat every 1000).
//! - `open_recovery/<MiB>`: a WAL of that many MiB (64 MiB segments, each
//!   starting with a snapshot set, like the publisher writes), then
//!   `writer_open` (open + recovery scan of the newest segment) and
//!   `reader_newest_state` (recovery point + replay to the live end).
//!
//! Environment: `MDBUS_WAL_BENCH_RECORDS` (default 200000) sets the replay
//! size; `MDBUS_WAL_BENCH_OPEN_MB` (default 64; e.g. 1024 for the 1 GiB
//! target) the WAL size of the open bench; `MDBUS_WAL_BENCH_DIR` where the
//! temporary WALs go (default the system temp dir).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mdbus_types::{
    BookDelta, BookSnapshot, FLAG_RECOVERY_SNAPSHOT, Heartbeat, InstrumentId, Kind, Level, MdSample, Price,
    RecordHeader, Tick,
};
use mdbus_wal::{ReadFrom, ReadOptions, SyncPolicy, Wal, WalOptions, WalReader};

const SEGMENT_BYTES: u64 = 64 << 20;
const TS0: i64 = 1_764_000_000_000_000_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn tempdir() -> tempfile::TempDir {
    match std::env::var_os("MDBUS_WAL_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn instrument(i: usize) -> InstrumentId {
    InstrumentId::new(&format!("IF25{i:02}")).unwrap()
}

fn tick() -> MdSample {
    MdSample::from(Tick {
        header: RecordHeader::new(Kind::Tick, TS0),
        instrument: instrument(1),
        last_px: Price::from_raw(4_123_400_000_000),
        last_qty: 2,
        bid_px: Price::from_raw(4_123_200_000_000),
        bid_qty: 5,
        ask_px: Price::from_raw(4_123_400_000_000),
        ask_qty: 3,
        volume: 1234,
    })
}

/// Appends `sample` with the next seq.
#[inline]
fn push(wal: &mut Wal, sample: &mut MdSample) {
    sample.header_mut().seq = wal.next_seq();
    wal.append(black_box(sample)).unwrap();
}

/// Deletes every segment but the live one (untimed: keeps the disk bounded).
fn drop_old_segments(wal: &Wal) {
    for entry in std::fs::read_dir(wal.feed_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wal") && path != wal.segment_path() {
            std::fs::remove_file(path).unwrap();
        }
    }
}

/// Tick frames that still fit in the live segment.
fn room(wal: &Wal) -> u64 {
    (SEGMENT_BYTES - wal.append_offset()) / 112
}

#[derive(Clone, Copy)]
enum Case {
    Warm,
    Fresh,
    Steady,
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_tick");
    group.throughput(Throughput::Elements(1));
    for (sync_name, sync) in [("never", SyncPolicy::Never), ("interval", SyncPolicy::default())] {
        for (case_name, case) in [("warm", Case::Warm), ("fresh", Case::Fresh), ("steady", Case::Steady)] {
            let dir = tempdir();
            let options = WalOptions::default().segment_bytes(SEGMENT_BYTES).sync(sync);
            let mut wal = Wal::open(dir.path(), "bench", options).unwrap();
            let mut sample = tick();
            group.bench_function(BenchmarkId::new(sync_name, case_name), |b| {
                b.iter_custom(|iters| {
                    let mut left = iters;
                    let mut spent = Duration::ZERO;
                    while left > 0 {
                        let n = match case {
                            Case::Steady => left,
                            Case::Warm | Case::Fresh => {
                                if matches!(case, Case::Fresh) || room(&wal) < left.min(100_000) {
                                    wal.roll().unwrap();
                                }
                                if matches!(case, Case::Warm) {
                                    wal.wait_prepared();
                                }
                                left.min(room(&wal))
                            }
                        };
                        let start = Instant::now();
                        for _ in 0..n {
                            push(&mut wal, &mut sample);
                        }
                        spent += start.elapsed();
                        left -= n;
                        drop_old_segments(&wal);
                    }
                    spent
                })
            });
            drop(wal);
        }
    }
    // A fresh segment without pre-faulting: the first touch of every page
    // faults in the appending thread.
    group.bench_function(BenchmarkId::new("never", "unprefaulted"), |b| {
        b.iter_custom(|iters| {
            let dir = tempdir();
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
                push(&mut wal, &mut sample);
            }
            start.elapsed()
        })
    });
    group.finish();
}

/// A deterministic realistic record stream: 60% Tick, 35% BookDelta, a
/// heartbeat every 1000 records, over 16 instruments.
struct Stream {
    n: u64,
    tick: MdSample,
    deltas: Vec<MdSample>,
    heartbeat: MdSample,
}

const INSTRUMENTS: usize = 16;

impl Stream {
    fn new() -> Stream {
        let deltas = (0..INSTRUMENTS)
            .map(|i| {
                MdSample::from(BookDelta {
                    header: RecordHeader::new(Kind::BookDelta, TS0),
                    instrument: instrument(i),
                    price: Price::from_raw(4_123_000_000_000 + i as i64),
                    qty: 7,
                    side: (i % 2) as u8,
                    _pad: [0; 7],
                })
            })
            .collect();
        Stream {
            n: 0,
            tick: tick(),
            deltas,
            heartbeat: MdSample::from(Heartbeat {
                header: RecordHeader::new(Kind::Heartbeat, TS0),
            }),
        }
    }

    fn next(&mut self) -> &mut MdSample {
        self.n += 1;
        let ts = TS0 + self.n as i64 * 1000;
        let sample = if self.n.is_multiple_of(1000) {
            &mut self.heartbeat
        } else if self.n % 20 < 13 {
            &mut self.tick
        } else {
            &mut self.deltas[(self.n as usize) % INSTRUMENTS]
        };
        sample.header_mut().ts_event = ts;
        sample
    }
}

/// Writes a snapshot set (one BookSnapshot per instrument, then the
/// closing heartbeat, all flagged RECOVERY_SNAPSHOT) as the publisher does
/// at the start of every segment.
fn snapshot_set(wal: &mut Wal) {
    for i in 0..INSTRUMENTS {
        let mut snap = BookSnapshot::empty(instrument(i), TS0);
        snap.bid_count = 5;
        snap.ask_count = 5;
        for l in 0..5 {
            snap.bids[l] = Level {
                price: Price::from_raw(4_123_000_000_000 - l as i64),
                qty: 3,
            };
            snap.asks[l] = Level {
                price: Price::from_raw(4_123_000_000_001 + l as i64),
                qty: 4,
            };
        }
        snap.header.flags |= FLAG_RECOVERY_SNAPSHOT;
        push(wal, &mut MdSample::from(snap));
    }
    let mut hb = RecordHeader::new(Kind::Heartbeat, TS0);
    hb.flags |= FLAG_RECOVERY_SNAPSHOT;
    push(wal, &mut MdSample::from(Heartbeat { header: hb }));
}

/// Fills a WAL: `records` of a Tick-only or mixed stream, or (`bytes`) up
/// to that many bytes of the mixed stream with a snapshot set first in
/// every segment.
fn fill(dir: &Path, feed: &str, records: u64, mixed: bool, segment_bytes: u64) {
    let options = WalOptions::default()
        .segment_bytes(segment_bytes)
        .sync(SyncPolicy::Never);
    let mut wal = Wal::open(dir, feed, options).unwrap();
    let mut stream = Stream::new();
    let mut tick = tick();
    if mixed {
        snapshot_set(&mut wal);
    }
    for _ in 0..records {
        let sample = if mixed { stream.next() } else { &mut tick };
        let len = sample.record_bytes().unwrap().len();
        if mixed && wal.needs_roll(len) {
            wal.roll().unwrap();
            snapshot_set(&mut wal);
        }
        push(&mut wal, sample);
    }
}

fn replay(c: &mut Criterion) {
    let records = env_u64("MDBUS_WAL_BENCH_RECORDS", 200_000);
    let mut group = c.benchmark_group("replay");
    for (name, mixed) in [("tick_validated", false), ("mixed_validated", true)] {
        let dir = tempdir();
        fill(dir.path(), "replay", records, mixed, SEGMENT_BYTES);
        let mut total = 0u64;
        let mut reader = WalReader::open(dir.path(), "replay", ReadOptions::default()).unwrap();
        while reader.next_record().unwrap().is_some() {
            total += 1;
        }
        group.throughput(Throughput::Elements(total));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut reader = WalReader::open(dir.path(), "replay", ReadOptions::default()).unwrap();
                let mut n = 0u64;
                while let Some(r) = reader.next_record().unwrap() {
                    n += black_box(r.seq()) & 1;
                }
                n
            })
        });
    }
    group.finish();
}

fn open_recovery(c: &mut Criterion) {
    let mb = env_u64("MDBUS_WAL_BENCH_OPEN_MB", 64).max(1);
    let mut group = c.benchmark_group("open_recovery");
    group.sample_size(10);
    let dir = tempdir();
    let total_bytes = mb << 20;
    let segment_bytes = total_bytes.min(SEGMENT_BYTES);
    // Mixed frames average ~100 bytes; stop just short of the total size.
    let records = total_bytes * 95 / 100 / 100;
    fill(dir.path(), "open", records, true, segment_bytes);
    let options = WalOptions::default()
        .segment_bytes(segment_bytes)
        .sync(SyncPolicy::Never)
        .preallocate_next(false);
    let next_seq = Wal::open(dir.path(), "open", options.clone()).unwrap().next_seq();
    group.bench_function(BenchmarkId::new("writer_open_mib", mb), |b| {
        b.iter(|| {
            let wal = Wal::open(dir.path(), "open", options.clone()).unwrap();
            assert_eq!(wal.next_seq(), next_seq);
        })
    });
    group.bench_function(BenchmarkId::new("reader_newest_state_mib", mb), |b| {
        b.iter(|| {
            let from = ReadOptions {
                from: ReadFrom::RecoveryPoint,
                ..ReadOptions::default()
            };
            let mut reader = WalReader::open(dir.path(), "open", from).unwrap();
            let mut last = 0;
            while let Some(r) = reader.next_record().unwrap() {
                last = r.seq();
            }
            assert_eq!(last + 1, next_seq);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(20);
    targets = append, replay, open_recovery
}
criterion_main!(benches);
