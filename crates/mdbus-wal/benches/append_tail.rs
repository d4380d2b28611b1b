//! The tail of one append, paced, rolls included: what a publisher that
//! writes every record to the WAL sees (criterion's `append_tick` reports
//! means, which hide the stalls this measures).
//!
//! For each sync policy (`never`, then `interval`, the default group
//! commit), appends Ticks at `MDBUS_TAIL_RATE` records/s (default 100000)
//! for `MDBUS_TAIL_SECS` (default 10) into `MDBUS_TAIL_SEGMENT_MB` MiB
//! segments (default 64, the WAL's own default; smaller ones roll more
//! often, but a file's first MiBs are cached in small folios, so they hide
//! what the page cache does in the rest of a real segment), in batches
//! every millisecond with a sleep between them (like a paced publisher),
//! and times every append. Prints one line per policy: the percentiles of
//! the append time, the number of appends over 100 us and over 1 ms, the
//! segment rolls, the page faults taken by the appending thread, and the
//! sync thread's CPU time and times on a CPU per second of the run (with
//! the writer pinned to one core, each of those is a time the sync thread
//! took the writer's core, and `sync_slice` their mean length), and the
//! sync rounds that wrote something: their number, mean time and the
//! bound of the histogram bucket that holds their 99th percentile.
//! `MDBUS_TAIL_ROUNDS` (default 1) repeats the pair, alternating.
//! `MDBUS_TAIL_POLICIES` (default `never,interval`) chooses the policies
//! (`always` too: a sync per append, so at a much lower rate).
//! `MDBUS_TAIL_SPIN=1` spins between batches instead of sleeping (a
//! publisher that keeps its core busy, as with `--wait spin` pacing).
//! Old segments are deleted between batches (untimed). Never asserts a
//! time. `MDBUS_WAL_BENCH_DIR` chooses where the WALs go.
//! `MDBUS_TAIL_ZEROS=0` turns `WalOptions::write_zeros` off,
//! `MDBUS_TAIL_FOLIOS=0` `WalOptions::large_folios` (which applies from
//! the first roll on: this bench never asks `Wal::needs_roll`, so the
//! segment live at open runs to its end in single pages; use segments a
//! few seconds long).

use std::hint::black_box;
use std::time::{Duration, Instant};

use mdbus_types::{InstrumentId, Kind, MdSample, Price, RecordHeader, Tick};
use mdbus_wal::{AppendOutcome, SyncPolicy, Wal, WalOptions};

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

/// Minor and major page faults of the calling thread so far.
fn thread_faults() -> (i64, i64) {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    if rc != 0 {
        return (-1, -1);
    }
    (usage.ru_minflt, usage.ru_majflt)
}

/// CPU time (ns) and times run on a CPU of this process's threads named
/// `name` (`/proc/self/task/*/schedstat`), summed.
fn threads_cpu(name: &str) -> (u64, u64) {
    let mut sum = (0, 0);
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("schedstat")),
        ) else {
            continue;
        };
        if comm.trim() != name {
            continue;
        }
        let fields: Vec<u64> = stat.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        if let [ns, _, slices] = fields[..] {
            sum = (sum.0 + ns, sum.1 + slices);
        }
    }
    sum
}

fn drop_old_segments(wal: &Wal) {
    for entry in std::fs::read_dir(wal.feed_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wal") && path != wal.segment_path() {
            std::fs::remove_file(path).unwrap();
        }
    }
}

fn run(name: &str, sync: SyncPolicy, rate: u64, secs: u64, segment: u64, spin: bool) {
    let dir = match std::env::var_os("MDBUS_WAL_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let options = WalOptions::default()
        .segment_bytes(segment)
        .sync(sync)
        .write_zeros(env_u64("MDBUS_TAIL_ZEROS", 1) != 0)
        .large_folios(env_u64("MDBUS_TAIL_FOLIOS", 1) != 0);
    let mut wal = Wal::open(dir.path(), "tail", options).unwrap();
    wal.wait_prepared();
    let mut sample = tick();
    let per_ms = (rate / 1000).max(1);
    let total = rate * secs;
    // Touched now, so that its page faults are not counted below.
    let mut times = vec![0u64; total as usize];
    times.fill(1);
    let mut n = 0usize;
    let mut rolls = 0u64;
    let (min0, maj0) = thread_faults();
    let sync0 = threads_cpu("mdbus-wal-sync");
    let start = Instant::now();
    let mut batch = 0u64;
    while n < times.len() {
        for _ in 0..per_ms.min((times.len() - n) as u64) {
            sample.header_mut().seq = wal.next_seq();
            let t0 = Instant::now();
            let outcome = wal.append(black_box(&sample)).unwrap();
            times[n] = t0.elapsed().as_nanos() as u64;
            n += 1;
            if let AppendOutcome::NewSegment { .. } = outcome {
                rolls += 1;
                drop_old_segments(&wal);
            }
        }
        batch += 1;
        let deadline = start + Duration::from_millis(batch);
        if spin {
            while Instant::now() < deadline {
                std::hint::spin_loop();
            }
        } else if let Some(wait) = deadline.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let (min1, maj1) = thread_faults();
    let sync1 = threads_cpu("mdbus-wal-sync");
    let elapsed = start.elapsed().as_secs_f64();
    // `Never` has no sync thread: no rounds.
    let rounds = wal.sync_stats().unwrap_or_default().snapshot();
    drop(wal);
    // The bound of the bucket that holds the 99th percentile round.
    let round_p99 = rounds
        .buckets
        .iter()
        .find(|(_, n)| *n as f64 >= rounds.rounds as f64 * 0.99)
        .map_or(0.0, |(bound, _)| bound * 1e3);
    let (sync_ns, sync_slices) = (sync1.0 - sync0.0, sync1.1 - sync0.1);
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    let over = |ns: u64| times.len() - times.partition_point(|&t| t <= ns);
    println!(
        "{name:9} n={} p50={:.3}us p99={:.3}us p99.9={:.2}us p99.99={:.1}us max={:.1}us >100us={} >1ms={} rolls={rolls} minflt={} majflt={} sync_cpu={:.2}ms/s sync_slices={:.0}/s sync_slice={:.1}us rounds={} round_mean={:.0}us round_p99<={}ms",
        times.len(),
        pct(0.5),
        pct(0.99),
        pct(0.999),
        pct(0.9999),
        *times.last().unwrap() as f64 / 1000.0,
        over(100_000),
        over(1_000_000),
        min1 - min0,
        maj1 - maj0,
        sync_ns as f64 / 1e6 / elapsed,
        sync_slices as f64 / elapsed,
        sync_ns as f64 / 1e3 / sync_slices.max(1) as f64,
        rounds.rounds,
        rounds.total_seconds * 1e6 / rounds.rounds.max(1) as f64,
        round_p99,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let rate = env_u64("MDBUS_TAIL_RATE", 100_000);
    let secs = env_u64("MDBUS_TAIL_SECS", 10);
    let segment = env_u64("MDBUS_TAIL_SEGMENT_MB", 64) << 20;
    let spin = env_u64("MDBUS_TAIL_SPIN", 0) != 0;
    let policies = std::env::var("MDBUS_TAIL_POLICIES").unwrap_or_else(|_| "never,interval".into());
    for _ in 0..env_u64("MDBUS_TAIL_ROUNDS", 1) {
        for name in policies.split(',') {
            match name {
                "never" => run("never", SyncPolicy::Never, rate, secs, segment, spin),
                "interval" => run("interval", SyncPolicy::default(), rate, secs, segment, spin),
                "always" => run("always", SyncPolicy::Always, rate, secs, segment, spin),
                other => panic!("MDBUS_TAIL_POLICIES: unknown policy {other}"),
            }
        }
    }
}
