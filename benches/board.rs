//! Snapshot board reads: one instrument's book and tick, with the writer
//! idle and with the writer updating in another thread.
//!
//! `cargo bench --bench board`

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mdbus::board::{BoardReader, BoardWriter};
use mdbus::publisher::SyntheticFeed;
use mdbus::types::{InstrumentId, RecordRef};

fn board(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = BoardWriter::open(dir.path(), "bench", 4096).unwrap();
    let feed = SyntheticFeed::new(64, 3).unwrap();
    let mut snapshots = Vec::new();
    feed.snapshots(1, &mut snapshots);
    for s in &snapshots {
        if let RecordRef::BookSnapshot(b) = s.record().unwrap() {
            let mut b = *b;
            b.header.seq = 1;
            writer.update_book(&b).unwrap();
        }
    }
    let ids: Vec<InstrumentId> = feed.instruments().collect();
    let reader = BoardReader::open(dir.path(), "bench").unwrap();
    let id = ids[7];
    let mut group = c.benchmark_group("board_read");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("book_writer_idle", |b| {
        b.iter(|| black_box(reader.book(black_box(&id))))
    });
    let entry = reader.entry(&id).unwrap();
    group.bench_function("book_entry_cached_writer_idle", |b| b.iter(|| black_box(entry.book())));

    // A writer thread updating every instrument's book in a loop.
    let stop = Arc::new(AtomicBool::new(false));
    let writer_thread = {
        let stop = Arc::clone(&stop);
        let books: Vec<_> = snapshots
            .iter()
            .filter_map(|s| match s.record().unwrap() {
                RecordRef::BookSnapshot(b) => Some(*b),
                _ => None,
            })
            .collect();
        std::thread::spawn(move || {
            let mut seq = 2;
            while !stop.load(Ordering::Relaxed) {
                for b in &books {
                    let mut b = *b;
                    b.header.seq = seq;
                    writer.update_book(&b).unwrap();
                    seq += 1;
                }
            }
        })
    };
    group.bench_function("book_writer_busy", |b| {
        b.iter(|| black_box(reader.book(black_box(&id))))
    });
    group.finish();
    stop.store(true, Ordering::Relaxed);
    writer_thread.join().unwrap();
}

criterion_group!(benches, board);
criterion_main!(benches);
