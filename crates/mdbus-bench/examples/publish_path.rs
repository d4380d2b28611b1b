//! The publish path per record, for `valgrind --tool=callgrind` and `perf`
//! as much as for a quick number: N synthetic records (16 instruments,
//! generated first, not timed) go through one [`FeedPublisher`] in batches
//! of 64, as the criterion bench `publish_path/wal_interval_board_*` sends
//! them, but in one long run instead of many short ones.
//!
//! `cargo run --release -p mdbus-bench --example publish_path -- [RECORDS] [iceoryx2|inproc|raw-iceoryx2|raw-fdatasync] [board|no-board] [synthetic|ticks]`
//! (defaults 1 000 000, iceoryx2, board, synthetic; WAL `Interval` in a
//! temporary folder). `ticks` publishes the latency harness's own record
//! instead (one instrument's ticks, `mdbus_bench::payload::tick`), as its
//! unpaced rows do. The batches are stamped where they were generated (no
//! copy per batch). `raw-iceoryx2` sends the same batches through the bare
//! `IoxSender`, the baseline; `raw-fdatasync` does too, and first copies
//! each batch's records, framed as the WAL frames them, for the harness's
//! bare journaller (`mdbus_bench::endpoints::fsync::FsyncLoop`: `write`
//! and `fdatasync` every 2 ms on another thread), the least a durable
//! publisher does.
//!
//! Prints ns per record of wall clock, and of CPU time for each thread of
//! the process over the same span (the publishing thread, the WAL's or the
//! journaller's threads; threads that started or ended in between as one
//! line). Pinned to one core (`taskset -c 0`), as the harness pins a
//! publisher with its WAL threads, the wall clock is about their sum. For
//! instruction counts:
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
    let mut pool = match args.next().as_deref() {
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
            run(FeedPublisher::open(config, bus.sender())?, &mut pool, "inproc", board)
        }
        #[cfg(feature = "iceoryx2")]
        "iceoryx2" => {
            use mdbus_transport::iceoryx::{IoxSender, IoxSenderConfig, init_logging};
            init_logging();
            let sender = IoxSender::create(&IoxSenderConfig::new(config.feed.clone()))?;
            run(FeedPublisher::open(config, sender)?, &mut pool, "iceoryx2", board)
        }
        #[cfg(feature = "iceoryx2")]
        "raw-iceoryx2" => {
            use mdbus_transport::iceoryx::{IoxSender, IoxSenderConfig, init_logging};
            init_logging();
            raw(
                IoxSender::create(&IoxSenderConfig::new(config.feed.clone()))?,
                &pool,
                None,
            )
        }
        #[cfg(feature = "iceoryx2")]
        "raw-fdatasync" => {
            use mdbus_bench::endpoints::fsync::FsyncLoop;
            use mdbus_transport::iceoryx::{IoxSender, IoxSenderConfig, init_logging};
            init_logging();
            let journal = FsyncLoop::create(&dir.path().join("journal.bin"))?;
            let sender = IoxSender::create(&IoxSenderConfig::new(config.feed.clone()))?;
            raw(sender, &pool, Some(journal))
        }
        other => Err(format!("{other:?}: expected iceoryx2, raw-iceoryx2, raw-fdatasync or inproc").into()),
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
    pool: &mut [Vec<MdSample>],
    transport: &str,
    board: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let records: usize = pool.iter().map(Vec::len).sum();
    let span = CpuSpan::start();
    for batch in pool.iter_mut() {
        publisher.publish_batch(batch)?;
    }
    let used = span.end();
    println!(
        "{transport}, WAL Interval, board {}: {records} records ({} published with the policy's own records)",
        if board { "on" } else { "off" },
        publisher.stats().records,
    );
    used.print(records);
    Ok(())
}

/// The baseline: the same batches through the sender alone (a send per
/// record, `end_batch` per batch; no seq, WAL, book or board), each batch
/// first copied for the bare journaller when there is one.
#[cfg(feature = "iceoryx2")]
fn raw<S: MdSender>(
    mut sender: S,
    pool: &[Vec<MdSample>],
    mut journal: Option<mdbus_bench::endpoints::fsync::FsyncLoop>,
) -> Result<(), Box<dyn std::error::Error>> {
    let records: usize = pool.iter().map(Vec::len).sum();
    let span = CpuSpan::start();
    for batch in pool {
        if let Some(journal) = &mut journal {
            journal.append_samples(batch)?;
        }
        for sample in batch {
            sender.send(std::hint::black_box(sample))?;
        }
        sender.end_batch()?;
    }
    let used = span.end();
    let with = if journal.is_some() {
        " + journaller (write, fdatasync)"
    } else {
        ""
    };
    println!("raw sender{with}: {records} records");
    used.print(records);
    Ok(())
}

/// Wall clock and CPU time over a span: the process's (`getrusage`, which
/// counts threads that ended) and each live thread's (`schedstat`).
struct CpuSpan {
    started: Instant,
    process: f64,
    written: Option<u64>,
    threads: Vec<(u64, String, u64)>,
}

/// What a [`CpuSpan`] measured, in seconds.
struct CpuUsed {
    wall: f64,
    /// Each thread alive at both ends: its name and CPU time.
    threads: Vec<(String, f64)>,
    /// The process's CPU time outside `threads` (threads that started or
    /// ended within the span).
    others: f64,
    /// Bytes this process sent to the disk (`write_bytes` of
    /// `/proc/self/io`: its own writeback, not the kernel flusher's).
    written: Option<u64>,
}

impl CpuSpan {
    fn start() -> CpuSpan {
        CpuSpan {
            threads: threads_cpu(),
            process: process_cpu(),
            written: disk_written(),
            started: Instant::now(),
        }
    }

    fn end(self) -> CpuUsed {
        let wall = self.started.elapsed().as_secs_f64();
        let process = process_cpu() - self.process;
        let threads: Vec<(String, f64)> = threads_cpu()
            .into_iter()
            .filter_map(|(tid, name, ns)| {
                let (.., before) = self.threads.iter().find(|(t, ..)| *t == tid)?;
                Some((name, ns.saturating_sub(*before) as f64 * 1e-9))
            })
            .collect();
        let others = (process - threads.iter().map(|(_, s)| s).sum::<f64>()).max(0.0);
        let written = disk_written()
            .zip(self.written)
            .map(|(now, then)| now.saturating_sub(then));
        CpuUsed {
            wall,
            threads,
            others,
            written,
        }
    }
}

impl CpuUsed {
    fn print(&self, records: usize) {
        let per = |seconds: f64| seconds * 1e9 / records as f64;
        let all = self.threads.iter().map(|(_, s)| s).sum::<f64>() + self.others;
        println!(
            "  ns per record: wall {:.1}, CPU {:.1} in all",
            per(self.wall),
            per(all)
        );
        for (name, seconds) in self.threads.iter().filter(|(_, s)| *s > 0.0) {
            println!("    {name:<22} {:>7.1}", per(*seconds));
        }
        println!("    {:<22} {:>7.1}", "(threads that ended)", per(self.others));
        if let Some(bytes) = self.written {
            println!("  bytes to disk per record: {:.1}", bytes as f64 / records as f64);
        }
    }
}

/// Each live thread of this process: tid, name and CPU time in ns
/// (`/proc/self/task/*/schedstat`); a thread that ends while this reads is
/// left out.
fn threads_cpu() -> Vec<(u64, String, u64)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let tid = task.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            let ns = stat.split_whitespace().next()?.parse().ok()?;
            Some((tid, name.trim().to_string(), ns))
        })
        .collect()
}

/// `write_bytes` of `/proc/self/io`, if it can be read.
fn disk_written() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let line = io.lines().find(|l| l.starts_with("write_bytes:"))?;
    line["write_bytes:".len()..].trim().parse().ok()
}

/// This process's CPU time in seconds (user + kernel, every thread, those
/// that ended too): on a loaded machine the wall clock counts the time
/// other processes ran, this does not.
fn process_cpu() -> f64 {
    // SAFETY: an all-zero rusage is a valid value for the call to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage for the call to fill in.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_SELF)");
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
