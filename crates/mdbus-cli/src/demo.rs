//! `mdbus demo`: publisher -> in-process bus -> subscriber with an L1 cache.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use dashmap::DashMap;
use mdbus_publisher::{FeedConfig, FeedPublisher, FeedStats, SyntheticFeed};
use mdbus_transport::{InProcBus, MdReceiver};
use mdbus_types::{Book, InstrumentId, RecordRef, Tick, clock};

/// Arguments of `mdbus demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of synthetic instruments (1..=4096).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    instruments: u32,
    /// Records per second in total; 0 publishes as fast as possible.
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// How long to run, in seconds (fractions allowed).
    #[arg(long, default_value_t = 10.0, value_parser = parse_duration)]
    duration: f64,
    /// Seed of the synthetic market.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Queue capacity of the subscriber, in records.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    queue: u64,
}

fn parse_duration(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!("{text:?} is not a duration in seconds (0 < S <= 86400)")),
    }
}

/// The latest tick and top-10 book of one instrument.
#[derive(Debug, Clone)]
struct CacheEntry {
    book: Book,
    tick: Option<Tick>,
    /// A hole was seen since the last snapshot: deltas may be missing.
    stale: bool,
}

#[derive(Debug, Default)]
struct SubscriberCounters {
    records: AtomicU64,
    holes: AtomicU64,
    last_seq: AtomicU64,
    book_errors: AtomicU64,
}

/// Runs the demo; prints a status line per second and a summary.
pub(crate) fn run(args: &DemoArgs) -> ExitCode {
    let feed = match SyntheticFeed::new(args.instruments as usize, args.seed) {
        Ok(feed) => feed,
        Err(e) => {
            eprintln!("mdbus demo: {e}");
            return ExitCode::from(2);
        }
    };
    let symbols: Vec<InstrumentId> = feed.instruments().collect();
    let bus = InProcBus::new(args.queue as usize);
    let receiver = bus.subscribe();
    let sender = bus.sender();
    let cache: Arc<DashMap<InstrumentId, CacheEntry>> = Arc::new(DashMap::new());
    let counters = Arc::new(SubscriberCounters::default());
    let duration = Duration::from_secs_f64(args.duration);
    let stop = Arc::new(AtomicBool::new(false));

    let subscriber = {
        let cache = Arc::clone(&cache);
        let counters = Arc::clone(&counters);
        thread::Builder::new()
            .name("demo-subscriber".into())
            .spawn(move || subscribe(receiver, &cache, &counters))
            .expect("spawn subscriber thread")
    };
    // The one publisher of mdbus, without a WAL or a board here: it
    // sequences, sends, snapshots every instrument each second (so a
    // subscriber that lost records repairs its books) and sends heartbeats
    // when the feed is quiet.
    let publisher = match FeedPublisher::open(FeedConfig::new("demo"), sender) {
        Ok(publisher) => publisher,
        Err(e) => {
            eprintln!("mdbus demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let publisher = {
        let rate = args.rate;
        let stop = Arc::clone(&stop);
        thread::Builder::new()
            .name("demo-publisher".into())
            .spawn(move || publish(feed, publisher, rate, duration, &stop))
            .expect("spawn publisher thread")
    };

    println!(
        "mdbus demo: {} instruments, rate {}, {:.1} s, in-process bus (queue {})",
        symbols.len(),
        if args.rate == 0 {
            "unpaced".to_string()
        } else {
            format!("{} records/s", args.rate)
        },
        args.duration,
        args.queue
    );
    let start = Instant::now();
    let mut last_records = 0;
    let mut next_status = start + Duration::from_secs(1);
    while !publisher.is_finished() {
        thread::sleep(Duration::from_millis(20));
        if Instant::now() >= next_status {
            let records = counters.records.load(Ordering::Relaxed);
            print_status(start, records - last_records, &symbols, &cache, &counters);
            last_records = records;
            next_status += Duration::from_secs(1);
        }
    }
    let stats = publisher.join().expect("publisher thread panicked");
    let elapsed = start.elapsed();
    let received = subscriber.join().expect("subscriber thread panicked");
    stop.store(true, Ordering::Relaxed);
    let stats = match stats {
        Ok(stats) => stats,
        Err(e) => {
            eprintln!("mdbus demo: publisher failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let holes = counters.holes.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64();
    println!(
        "summary: {} records in {:.2} s ({:.0} records/s), {} instruments, {} received, {} holes ({} dropped by the queue), last seq {}, {} book errors",
        stats.records,
        secs,
        stats.records as f64 / secs,
        cache.len(),
        counters.records.load(Ordering::Relaxed),
        holes,
        received.dropped,
        counters.last_seq.load(Ordering::Relaxed),
        counters.book_errors.load(Ordering::Relaxed),
    );
    let consistent = counters.records.load(Ordering::Relaxed) + holes == stats.records
        && counters.last_seq.load(Ordering::Relaxed) == stats.records;
    if !consistent {
        eprintln!("mdbus demo: subscriber saw an inconsistent stream");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn print_status(
    start: Instant,
    records: u64,
    symbols: &[InstrumentId],
    cache: &DashMap<InstrumentId, CacheEntry>,
    counters: &SubscriberCounters,
) {
    let stale = cache.iter().filter(|e| e.stale).count();
    let mut line = format!(
        "t={:>4.1}s  {:>9} records/s  {} instruments  holes {}  stale books {}",
        start.elapsed().as_secs_f64(),
        records,
        cache.len(),
        counters.holes.load(Ordering::Relaxed),
        stale
    );
    for id in symbols.iter().take(3) {
        if let Some(entry) = cache.get(id) {
            let bid = entry.book.best_bid().map_or("-".into(), |l| l.price.to_string());
            let ask = entry.book.best_ask().map_or("-".into(), |l| l.price.to_string());
            line.push_str(&format!("  {id} {bid}/{ask}"));
        }
    }
    println!("{line}");
    let _ = std::io::stdout().flush();
}

#[derive(Debug, Default)]
struct Received {
    dropped: u64,
}

/// The subscriber loop: keeps the L1 cache until the bus disconnects.
fn subscribe(
    mut receiver: mdbus_transport::InProcReceiver,
    cache: &DashMap<InstrumentId, CacheEntry>,
    counters: &SubscriberCounters,
) -> Received {
    let mut last_seq = 0;
    loop {
        let sample = match receiver.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(sample)) => sample,
            Ok(None) => continue,
            Err(_) => break,
        };
        let seq = sample.header().seq;
        if seq > last_seq + 1 {
            counters.holes.fetch_add(seq - last_seq - 1, Ordering::Relaxed);
            // Lost deltas: every book is stale until its next snapshot.
            cache.iter_mut().for_each(|mut e| e.stale = true);
        }
        last_seq = seq;
        counters.last_seq.store(seq, Ordering::Relaxed);
        counters.records.fetch_add(1, Ordering::Relaxed);
        let ok = match sample.record() {
            Ok(RecordRef::BookSnapshot(s)) => match Book::from_snapshot(s) {
                Ok(book) => {
                    cache
                        .entry(s.instrument)
                        .and_modify(|e| {
                            e.book = book.clone();
                            e.stale = false;
                        })
                        .or_insert(CacheEntry {
                            book,
                            tick: None,
                            stale: false,
                        });
                    true
                }
                Err(_) => false,
            },
            // A delta of an instrument whose snapshot was lost waits for
            // the next snapshot (not an error); a stale book skips deltas.
            Ok(RecordRef::BookDelta(d)) => cache
                .get_mut(&d.instrument)
                .is_none_or(|mut e| e.stale || e.book.apply_delta(d).is_ok()),
            Ok(RecordRef::Tick(t)) => {
                if let Some(mut e) = cache.get_mut(&t.instrument) {
                    e.tick = Some(*t);
                }
                true
            }
            Ok(RecordRef::Heartbeat(_)) => true,
            Err(_) => false,
        };
        if !ok {
            counters.book_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    Received {
        dropped: receiver.dropped(),
    }
}

/// The publisher loop: paced at `rate` records/s (0: unpaced) for
/// `duration`. Snapshots and heartbeats are the publisher's own policy
/// (every instrument each second; a heartbeat after 100 ms of quiet),
/// run inside every publish and, while the loop waits, by `poll`.
fn publish(
    mut feed: SyntheticFeed,
    mut publisher: FeedPublisher<mdbus_transport::InProcSender>,
    rate: u64,
    duration: Duration,
    stop: &AtomicBool,
) -> mdbus_publisher::Result<FeedStats> {
    const MAX_BATCH: usize = 256;
    let start = Instant::now();
    let mut batch = Vec::with_capacity(MAX_BATCH + 16);
    let mut events = 0u64;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration || stop.load(Ordering::Relaxed) {
            break;
        }
        let due = if rate == 0 {
            u64::MAX
        } else {
            (rate as f64 * elapsed.as_secs_f64()) as u64
        };
        if events >= due {
            publisher.poll()?;
            thread::sleep(Duration::from_micros(200));
            continue;
        }
        let want = (due - events).min(MAX_BATCH as u64) as usize;
        batch.clear();
        let ts = clock::now_ns();
        while batch.len() < want {
            feed.next_event(ts, &mut batch);
        }
        events += batch.len() as u64;
        publisher.publish_batch(&mut batch)?;
    }
    Ok(publisher.stats())
}
