//! The publish path per record, for `valgrind --tool=callgrind` and `perf`
//! as much as for a quick number: N synthetic records (16 instruments,
//! generated first, not timed) go through one [`FeedPublisher`] in batches
//! of 64, as the criterion bench `publish_path/wal_interval_board_*` sends
//! them, but in one long run instead of many short ones.
//!
//! `cargo run --release -p mdbus-bench --example publish_path -- [RECORDS] [iceoryx2|inproc] [board|no-board] [synthetic|ticks]`
//! (defaults 1 000 000, iceoryx2, board, synthetic; WAL `Interval` in a
//! temporary folder). `ticks` publishes the latency harness's own record
//! instead (one instrument's ticks, `mdbus_bench::payload::tick`), as its
//! unpaced rows do. Prints ns per record of wall clock and of the publishing
//! thread's CPU time. `raw-iceoryx2` sends the same batches through the
//! bare `IoxSender`, the baseline. For instruction counts:
//! `valgrind --tool=callgrind --toggle-collect='*FeedPublisher*publish_batch*' target/release/examples/publish_path 200000`.

use std::time::Instant;

use mdbus_publisher::{FeedConfig, FeedPublisher, SyntheticFeed};
use mdbus_transport::{InProcBus, MdSender};
use mdbus_types::MdSample;
use mdbus_types::clock::now_ns;
use mdbus_wal::{SyncPolicy, WalOptions};

const BATCH: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let records: usize = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("RECORDS {n:?}: {e}"))?,
        None => 1_000_000,
    };
    let transport = args.next().unwrap_or_else(|| "iceoryx2".to_string());
    let board = match args.next().as_deref() {
        None | Some("board") => true,
        Some("no-board") => false,
        Some(other) => return Err(format!("{other:?}: expected board or no-board").into()),
    };
    let pool = match args.next().as_deref() {
        None | Some("synthetic") => pool(records)?,
        Some("ticks") => ticks(records),
        Some(other) => return Err(format!("{other:?}: expected synthetic or ticks").into()),
    };
    let dir = tempfile::tempdir()?;
    let mut config = FeedConfig::new(&format!("pubpath{}", std::process::id()));
    config.wal_root = Some(dir.path().join("wal"));
    config.wal = WalOptions::default().sync(SyncPolicy::default());
    if board {
        config.board_dir = Some(dir.path().to_path_buf());
    }
    match transport.as_str() {
        "inproc" => {
            let bus = InProcBus::new(1);
            run(FeedPublisher::open(config, bus.sender())?, &pool, "inproc", board)
        }
        #[cfg(feature = "iceoryx2")]
        "iceoryx2" => {
            use mdbus_transport::iceoryx::{IoxSender, IoxSenderConfig, init_logging};
            init_logging();
            let sender = IoxSender::create(&IoxSenderConfig::new(config.feed.clone()))?;
            run(FeedPublisher::open(config, sender)?, &pool, "iceoryx2", board)
        }
        #[cfg(feature = "iceoryx2")]
        "raw-iceoryx2" => {
            use mdbus_transport::iceoryx::{IoxSender, IoxSenderConfig, init_logging};
            init_logging();
            raw(IoxSender::create(&IoxSenderConfig::new(config.feed.clone()))?, &pool)
        }
        other => Err(format!("{other:?}: expected iceoryx2, raw-iceoryx2 or inproc").into()),
    }
}

/// `records` synthetic records (deltas, ticks, the initial snapshots) in
/// batches of [`BATCH`].
fn pool(records: usize) -> Result<Vec<Vec<MdSample>>, Box<dyn std::error::Error>> {
    let mut feed = SyntheticFeed::new(16, 1)?;
    let (mut all, mut event) = (Vec::with_capacity(records), Vec::new());
    while all.len() < records {
        event.clear();
        feed.next_event(now_ns(), &mut event);
        all.extend_from_slice(&event);
    }
    all.truncate(records);
    Ok(all.chunks(BATCH).map(<[MdSample]>::to_vec).collect())
}

/// `records` of the latency harness's ticks in batches of [`BATCH`].
fn ticks(records: usize) -> Vec<Vec<MdSample>> {
    let all: Vec<MdSample> = (1..=records as u64)
        .map(|i| mdbus_bench::payload::tick(i, true))
        .collect();
    all.chunks(BATCH).map(<[MdSample]>::to_vec).collect()
}

fn run<S: MdSender>(
    mut publisher: FeedPublisher<S>,
    pool: &[Vec<MdSample>],
    transport: &str,
    board: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let records: usize = pool.iter().map(Vec::len).sum();
    let mut batch = Vec::with_capacity(BATCH);
    let (started, cpu_started) = (Instant::now(), thread_cpu());
    for pooled in pool {
        batch.clear();
        batch.extend_from_slice(pooled);
        publisher.publish_batch(&mut batch)?;
    }
    let (wall, cpu) = (started.elapsed().as_secs_f64(), thread_cpu() - cpu_started);
    let stats = publisher.stats();
    println!(
        "{transport}, WAL Interval, board {}: {records} records in {wall:.3} s: {:.1} ns per record ({:.1} ns of CPU; {} published with the policy's own records)",
        if board { "on" } else { "off" },
        wall * 1e9 / records as f64,
        cpu * 1e9 / records as f64,
        stats.records,
    );
    Ok(())
}

/// The baseline: the same batches through the sender alone (a send per
/// record, `end_batch` per batch; no seq, WAL, book or board).
#[cfg(feature = "iceoryx2")]
fn raw<S: MdSender>(mut sender: S, pool: &[Vec<MdSample>]) -> Result<(), Box<dyn std::error::Error>> {
    let records: usize = pool.iter().map(Vec::len).sum();
    let (started, cpu_started) = (Instant::now(), thread_cpu());
    for batch in pool {
        for sample in batch {
            sender.send(std::hint::black_box(sample))?;
        }
        sender.end_batch()?;
    }
    let (wall, cpu) = (started.elapsed().as_secs_f64(), thread_cpu() - cpu_started);
    println!(
        "raw sender: {records} records in {wall:.3} s: {:.1} ns per record ({:.1} ns of CPU)",
        wall * 1e9 / records as f64,
        cpu * 1e9 / records as f64,
    );
    Ok(())
}

/// This thread's CPU time in seconds (user + kernel): on a loaded machine
/// the wall clock counts the time other processes ran, this does not.
fn thread_cpu() -> f64 {
    // SAFETY: an all-zero rusage is a valid value for the call to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage for the call to fill in.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_THREAD)");
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
