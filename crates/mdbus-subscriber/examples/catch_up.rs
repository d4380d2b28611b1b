//! Subscriber catch-up speed: a new subscriber replays a synthetic WAL from
//! seq 1 into its caches, and the records/s is printed (wall clock), for
//! `valgrind --tool=callgrind` and `perf` as much as for a quick number.
//!
//! `cargo run --release -p mdbus-subscriber --example catch_up [EVENTS] [MODE]`
//! with MODE `full` (L1 + L2, the default), `state-only`
//! ([`CatchUp::StateOnly`]), `no-l2` (L2 off), `silent`
//! ([`CatchUp::Silent`]: the records are applied, not delivered) or
//! `gap-fill` (not a catch-up: the WAL's records come as a live stream
//! that loses [`HOLE_LEN`] records of every [`HOLE_EVERY`], as a receiver
//! that fell behind its transport's buffer does, and the subscriber fills
//! each hole from the WAL); EVENTS market events
//! (default 1 000 000) over 4 instruments, written first by a
//! [`FeedPublisher`] into a temporary WAL (not timed). The replay's wall
//! clock and its thread's CPU time are both printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mdbus_publisher::{FeedConfig, FeedPublisher, SyntheticFeed};
use mdbus_subscriber::{CatchUp, L2Config, StartFrom, Subscriber, SubscriberConfig};
use mdbus_transport::{InProcBus, MdReceiver};
use mdbus_types::clock::now_ns;
use mdbus_types::{MdSample, WalLocation};
use mdbus_wal::{ReadFrom, ReadOptions, WalOptions, WalReader};

const FEED: &str = "catchup";

/// `gap-fill`: of every `HOLE_EVERY` live records the last `HOLE_LEN` are lost.
const HOLE_EVERY: u64 = 4096;
/// See [`HOLE_EVERY`].
const HOLE_LEN: u64 = 256;

/// A live stream of `records` that loses `HOLE_LEN` of every `HOLE_EVERY`.
struct Holey {
    records: Arc<Vec<MdSample>>,
    next: usize,
    dropped: u64,
}

impl Holey {
    /// The index of the next record the stream delivers. The last
    /// `HOLE_EVERY` records lose none: a hole at the very end would show
    /// only with a later record, and there is none.
    fn advance(&mut self) -> Option<usize> {
        let tail = self.records.len().saturating_sub(HOLE_EVERY as usize);
        while let Some(sample) = self.records.get(self.next) {
            self.next += 1;
            if self.next <= tail && sample.header().seq % HOLE_EVERY >= HOLE_EVERY - HOLE_LEN {
                self.dropped += 1;
                continue;
            }
            return Some(self.next - 1);
        }
        None
    }
}

/// A record [`Holey`] lends: a handle, as iceoryx2's sample is (a
/// reference count, no copy of the record).
struct Held {
    records: Arc<Vec<MdSample>>,
    index: usize,
}

impl std::ops::Deref for Held {
    type Target = MdSample;
    fn deref(&self) -> &MdSample {
        &self.records[self.index]
    }
}

impl MdReceiver for Holey {
    type Held = Held;

    fn try_recv(&mut self) -> mdbus_transport::Result<Option<MdSample>> {
        Ok(self.advance().map(|i| self.records[i]))
    }

    fn try_recv_held(&mut self) -> mdbus_transport::Result<Option<Held>> {
        Ok(self.advance().map(|index| Held {
            records: Arc::clone(&self.records),
            index,
        }))
    }

    fn recv_timeout(&mut self, _timeout: Duration) -> mdbus_transport::Result<Option<MdSample>> {
        self.try_recv()
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: u64 = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("EVENTS {n:?}: {e}"))?,
        None => 1_000_000,
    };
    let mode = args.next().unwrap_or_else(|| "full".to_string());
    let (l2, catch_up) = match mode.as_str() {
        "full" => (L2Config::default(), CatchUp::Full),
        "state-only" => (L2Config::default(), CatchUp::StateOnly),
        "no-l2" => (L2Config::off(), CatchUp::Full),
        "silent" => (L2Config::default(), CatchUp::Silent),
        "gap-fill" => (L2Config::default(), CatchUp::Full),
        other => return Err(format!("MODE {other:?}: expected full, state-only, no-l2, silent or gap-fill").into()),
    };

    let dir = tempfile::tempdir()?;
    let last = {
        let bus = InProcBus::new(16);
        let mut config = FeedConfig::new(FEED);
        config.wal_root = Some(dir.path().to_path_buf());
        config.wal = WalOptions::default().segment_bytes(64 << 20);
        let mut publisher = FeedPublisher::open(config, bus.sender())?;
        let mut feed = SyntheticFeed::new(4, 1)?;
        let mut batch = Vec::new();
        for _ in 0..events {
            batch.clear();
            feed.next_event(now_ns(), &mut batch);
            publisher.publish_batch(&mut batch)?;
        }
        publisher.flush()?;
        publisher.next_seq() - 1
    };

    if mode == "gap-fill" {
        return gap_fill(&dir, last);
    }

    let bus = InProcBus::new(16);
    let config = SubscriberConfig::default()
        .wal(WalLocation::try_new(dir.path(), FEED)?)
        .start(StartFrom::Seq(1))
        .l2(l2)
        .catch_up(catch_up);
    let started = Instant::now();
    let cpu_started = thread_usage();
    let mut subscriber = Subscriber::new(bus.subscribe(), config)?;
    // No publisher is live: the replay ends at the WAL's end, where the
    // calls return `None` (a silent replay returns nothing before).
    let watchdog = started + Duration::from_secs(60);
    while subscriber.stats().last_seq != Some(last) {
        if subscriber.next_event_ref(Duration::ZERO)?.is_none() && Instant::now() > watchdog {
            return Err(format!("the replay did not reach seq {last} in 60 s").into());
        }
    }
    let took = started.elapsed();
    let usage = thread_usage();
    let cpu = usage.0 - cpu_started.0;
    let (sys, faults) = (usage.1 - cpu_started.1, usage.2 - cpu_started.2);
    let stats = subscriber.stats();
    println!(
        "{mode}: {} records replayed in {:.3} s: {:.2} M records/s ({:.3} s of CPU, {:.3} s of it in the kernel, {} page faults: {:.2} M records per CPU-second)",
        stats.replayed,
        took.as_secs_f64(),
        stats.replayed as f64 / took.as_secs_f64() / 1e6,
        cpu,
        sys,
        faults,
        stats.replayed as f64 / cpu / 1e6
    );
    Ok(())
}

/// The `gap-fill` mode: the WAL's records (read back first, not timed) as
/// a live stream with holes, through a subscriber that fills them from the
/// WAL.
fn gap_fill(dir: &tempfile::TempDir, last: u64) -> Result<(), Box<dyn std::error::Error>> {
    let options = ReadOptions {
        from: ReadFrom::Seq(1),
        skip_corrupt: false,
    };
    let mut reader = WalReader::open(dir.path(), FEED, options)?;
    let mut records = Vec::new();
    while let Some(record) = reader.next_record()? {
        records.push(record.record.to_sample());
    }
    let live = Holey {
        records: Arc::new(records),
        next: 0,
        dropped: 0,
    };
    let config = SubscriberConfig::default()
        .wal(WalLocation::try_new(dir.path(), FEED)?)
        .start(StartFrom::LiveOnly);
    let started = Instant::now();
    let cpu_started = thread_usage();
    let mut subscriber = Subscriber::new(live, config)?;
    let watchdog = started + Duration::from_secs(60);
    while subscriber.stats().last_seq != Some(last) {
        if subscriber.next_event_ref(Duration::ZERO)?.is_none() && Instant::now() > watchdog {
            return Err(format!("the subscriber did not reach seq {last} in 60 s").into());
        }
    }
    let took = started.elapsed();
    let cpu = thread_usage().0 - cpu_started.0;
    let stats = subscriber.stats();
    let delivered = stats.live + stats.gap_filled;
    println!(
        "gap-fill: {delivered} records delivered ({} live, {} from the WAL in {} holes, {} gaps) in {:.3} s: {:.2} M records/s ({:.3} s of CPU: {:.2} M records per CPU-second)",
        stats.live,
        stats.gap_filled,
        stats.gap_fills,
        stats.gaps,
        took.as_secs_f64(),
        delivered as f64 / took.as_secs_f64() / 1e6,
        cpu,
        delivered as f64 / cpu / 1e6
    );
    Ok(())
}

/// This thread's CPU time and the kernel's part of it, in seconds, and its
/// page faults: on a loaded machine the wall clock counts the time other
/// processes ran, these do not.
fn thread_usage() -> (f64, f64, i64) {
    // SAFETY: an all-zero rusage is a valid value for the call to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage for the call to fill in.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_THREAD)");
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    let sys = seconds(usage.ru_stime);
    (seconds(usage.ru_utime) + sys, sys, usage.ru_minflt + usage.ru_majflt)
}
