//! The publish path per record: sequencing + WAL append + send (+ board
//! update per batch), against its parts measured in the same run.
//!
//! `cargo bench --bench publish`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mdbus::publisher::{FeedConfig, FeedPublisher, SyntheticFeed};
use mdbus::transport::{InProcBus, MdSender};
use mdbus::types::{MdSample, clock};
use mdbus::wal::{RetentionPolicy, SyncPolicy, WalOptions};

const BATCH: usize = 64;

/// A pool of synthetic market events to publish in batches: the initial
/// snapshot of each of 16 instruments (in the first batch), then deltas
/// and ticks.
fn records(n: usize) -> Vec<Vec<MdSample>> {
    let mut feed = SyntheticFeed::new(16, 1).unwrap();
    let mut all = Vec::new();
    let mut out = Vec::new();
    while all.len() < n {
        out.clear();
        feed.next_event(clock::now_ns(), &mut out);
        all.extend_from_slice(&out);
    }
    all.chunks(BATCH).map(<[MdSample]>::to_vec).collect()
}

fn publisher<S: MdSender>(sender: S, sync: Option<SyncPolicy>, board: bool) -> (tempfile::TempDir, FeedPublisher<S>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = FeedConfig::new("bench");
    if let Some(sync) = sync {
        config.wal_root = Some(dir.path().join("wal"));
        // The bench writes gigabytes: the newest 1 GiB stays.
        let retention = RetentionPolicy {
            max_bytes: Some(1 << 30),
            max_age: None,
        };
        config.wal = WalOptions::default().sync(sync).retention(retention);
    }
    if board {
        config.board_dir = Some(dir.path().to_path_buf());
    }
    (dir, FeedPublisher::open(config, sender).unwrap())
}

fn bench_path<S: MdSender>(c: &mut Criterion, name: &str, sender: S, sync: Option<SyncPolicy>, board: bool) {
    let mut batches = records(200_000);
    let mut group = c.benchmark_group("publish_path");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(3)).sample_size(20);
    // One publisher for the whole run, as a feed runs: its WAL rolls to
    // segments its background thread prepared while it wrote the last one,
    // retention deletes the old ones. The pool is replayed in a cycle: its
    // first batch starts with the initial snapshots, which put every book
    // back where the pool's deltas were generated against. Each batch is
    // published where it lies, as a publisher publishes the batch it
    // built and as the raw row sends from the pool: stamping (seq,
    // `ts_publish`, the end-of-batch flag) overwrites an earlier pass's.
    let (_dir, mut publisher) = publisher(sender, sync, board);
    let mut next = 0;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                publisher.publish_batch(black_box(&mut batches[next])).unwrap();
                next = (next + 1) % batches.len();
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn inproc(c: &mut Criterion) {
    let bus = InProcBus::new(1);
    bench_path(c, "seq_only_inproc", bus.sender(), None, false);
    bench_path(c, "wal_never_inproc", bus.sender(), Some(SyncPolicy::Never), false);
    bench_path(
        c,
        "wal_interval_inproc",
        bus.sender(),
        Some(SyncPolicy::default()),
        false,
    );
    bench_path(
        c,
        "wal_interval_board_inproc",
        bus.sender(),
        Some(SyncPolicy::default()),
        true,
    );
}

#[cfg(feature = "iceoryx2")]
fn iceoryx(c: &mut Criterion) {
    use mdbus::transport::iceoryx::{IoxSender, IoxSenderConfig, init_logging};
    init_logging();
    let feed = format!("benchpub{}", std::process::id());
    // Raw iceoryx2: loan + write + send of the same 376-byte samples.
    let batches = records(200_000);
    let mut group = c.benchmark_group("publish_path");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(3)).sample_size(20);
    {
        let mut raw = IoxSender::create(&IoxSenderConfig::new(feed.clone())).unwrap();
        group.bench_function("raw_iceoryx2_send", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for i in 0..iters as usize {
                    for s in &batches[i % batches.len()] {
                        raw.send(black_box(s)).unwrap();
                    }
                    raw.end_batch().unwrap();
                }
                start.elapsed()
            })
        });
    }
    group.finish();
    bench_path(
        c,
        "wal_interval_board_iceoryx2",
        IoxSender::create(&IoxSenderConfig::new(feed)).unwrap(),
        Some(SyncPolicy::default()),
        true,
    );
}

/// One tick per publish over iceoryx2 with the WAL (`Never`): the record
/// stamped in place and copied once into the loan (`publish`), against the
/// same tick wrapped in an `MdSample` first and sent as a batch of one
/// (`publish_batch`, the path before `publish` existed: two copies).
#[cfg(feature = "iceoryx2")]
fn one_record(c: &mut Criterion) {
    use mdbus::transport::iceoryx::{IoxSender, IoxSenderConfig, init_logging};
    use mdbus::types::{InstrumentId, Price, Tick};
    init_logging();
    let feed = format!("benchone{}", std::process::id());
    let id = InstrumentId::new("IF2501").unwrap();
    let tick = |i: u64| {
        let px = Price::from_raw(4_000_000_000_000 + (i % 1000) as i64);
        Tick::new(id, i as i64)
            .last(px, 1)
            .bid(px, 2)
            .ask(Price::from_raw(px.raw() + 1), 3)
    };
    let mut group = c.benchmark_group("publish_one");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3)).sample_size(20);
    let make = || IoxSender::create(&IoxSenderConfig::new(feed.clone())).unwrap();
    group.bench_function("tick_in_place_iceoryx2", |b| {
        let (_dir, mut publisher) = publisher(make(), Some(SyncPolicy::Never), false);
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let mut record = tick(i);
            publisher.publish(black_box(&mut record)).unwrap()
        })
    });
    group.bench_function("tick_as_sample_batch_iceoryx2", |b| {
        let (_dir, mut publisher) = publisher(make(), Some(SyncPolicy::Never), false);
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let mut one = [MdSample::from(tick(i))];
            *publisher.publish_batch(black_box(&mut one)).unwrap().start()
        })
    });
    group.finish();
}

#[cfg(not(feature = "iceoryx2"))]
fn iceoryx(_: &mut Criterion) {}

#[cfg(not(feature = "iceoryx2"))]
fn one_record(_: &mut Criterion) {}

criterion_group!(benches, inproc, iceoryx, one_record);
criterion_main!(benches);
