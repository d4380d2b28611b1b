//! `mdbus publish`: a feed into the WAL, the transport and the board.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use mdbus_board::DEFAULT_BOARD_DIR;
use mdbus_publisher::{FeedConfig, FeedPublisher, SyntheticFeed};
use mdbus_transport::MdSender;
use mdbus_types::clock;
use mdbus_wal::{SyncPolicy, WalOptions};

/// WAL durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Sync {
    /// Never sync explicitly (the OS writes back; survives kill -9).
    Never,
    /// Group commit from a background thread every few ms (default).
    Interval,
    /// Sync every append (slow; survives power loss record by record).
    Always,
}

/// Arguments of `mdbus publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Feed name (`[A-Za-z0-9_-]{1,32}`).
    #[arg(long)]
    feed: String,
    /// WAL directory (segments go in `<wal>/<feed>/`).
    #[arg(long)]
    wal: PathBuf,
    /// Publish the synthetic market (the only source so far; required).
    #[arg(long)]
    synthetic: bool,
    /// Synthetic instruments (1..=4096).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    instruments: u32,
    /// Records per second in total; 0 publishes as fast as possible.
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Seconds to run (fractions allowed); 0, the default, runs until
    /// SIGTERM or SIGINT (as a service). Either signal stops it cleanly:
    /// the batch in hand is published, the WAL synced, exit 0; a restart
    /// continues at the next seq. A second signal exits at once (1).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Seed of the synthetic market.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Directory of the snapshot board `mdbus.<feed>.board`.
    #[arg(long, default_value = DEFAULT_BOARD_DIR)]
    board_dir: PathBuf,
    /// Do not write a snapshot board.
    #[arg(long)]
    no_board: bool,
    /// WAL segment size in bytes (new segments).
    #[arg(long, default_value_t = mdbus_wal::DEFAULT_SEGMENT_BYTES)]
    segment_bytes: u64,
    /// WAL durability.
    #[arg(long, value_enum, default_value_t = Sync::Interval)]
    sync: Sync,
    /// Do not write the WAL's new segments with zeros ahead of the frames
    /// (done by default: on a journaled filesystem it saves the journal a
    /// commit per sync round, at the price of writing a slow feed's blocks
    /// twice; see the README's WAL section).
    #[arg(long)]
    no_write_zeros: bool,
    /// Keep every WAL segment in single pages of the page cache (by
    /// default, once the feed fills 16 KiB or more per sync interval, the
    /// next segments are cached in folios of up to 64 KiB, which took half
    /// of the WAL sync thread's CPU time per record off an unpaced feed, a
    /// third at 300 k records/s; see the README's WAL section).
    #[arg(long)]
    no_large_folios: bool,
    /// Pin the publisher, and the WAL threads it starts, to this CPU (give
    /// each spinning subscriber another one with `mdbus subscribe --cpu`).
    #[arg(long)]
    cpu: Option<usize>,
    /// WAL retention, applied at start and after each segment roll in a
    /// background thread (`--retain-bytes`, `--retain-age`; default: keep
    /// all).
    #[command(flatten)]
    retain: crate::wal_cmd::RetainArgs,
    /// Serve `GET /metrics` (Prometheus / OpenMetrics text) on this
    /// address, e.g. `127.0.0.1:9464`; port 0 picks a free port, printed
    /// on stderr at the start.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Let this Unix group read the feed: its WAL folder, board and
    /// iceoryx2 files get the group and no access for others, so members
    /// subscribe, read the board, replay and run the gateway, and other
    /// users get "permission denied". Only this user publishes the feed.
    /// The publishing user must be a member.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    #[command(flatten)]
    config: crate::config::ConfigArg,
}

pub(crate) fn run(args: &PublishArgs) -> ExitCode {
    args.config.announce("publish");
    // Before the WAL opens: its threads inherit the pin.
    if let Err(code) = crate::pin(args.cpu, "publish") {
        return code;
    }
    if !args.synthetic {
        eprintln!("mdbus publish: no input: pass --synthetic (the synthetic market is the only source so far)");
        return ExitCode::from(2);
    }
    if !(args.duration.is_finite() && args.duration >= 0.0) {
        eprintln!(
            "mdbus publish: --duration {} is not a number of seconds >= 0",
            args.duration
        );
        return ExitCode::from(2);
    }
    let group = match args.group.as_deref().map(mdbus_types::FeedGroup::by_name).transpose() {
        Ok(group) => group,
        Err(e) => {
            eprintln!("mdbus publish: --group: {e}");
            return ExitCode::from(2);
        }
    };
    // Before the WAL opens: a SIGTERM while it recovers stops the
    // publisher as soon as it is open, cleanly.
    let stop = match crate::stop_on_signals("publish") {
        Ok(stop) => stop,
        Err(code) => return code,
    };
    let mut config = FeedConfig::new(&args.feed);
    config.group = group.clone();
    config.wal_root = Some(args.wal.clone());
    config.wal = WalOptions::default()
        .segment_bytes(args.segment_bytes)
        .sync(match args.sync {
            Sync::Never => SyncPolicy::Never,
            Sync::Interval => SyncPolicy::default(),
            Sync::Always => SyncPolicy::Always,
        })
        .write_zeros(!args.no_write_zeros)
        .large_folios(!args.no_large_folios);
    config.wal.retention = args.retain.policy();
    config.board_dir = (!args.no_board).then(|| args.board_dir.clone());
    // The WAL's writer lock is taken before the transport is created: a
    // second publisher of a running feed is refused without disturbing it.
    let wal = match config.wal_location() {
        Ok(Some(wal)) => wal,
        Ok(None) => unreachable!("mdbus publish always has a WAL root"),
        Err(e) => {
            eprintln!("mdbus publish: {e}");
            return ExitCode::from(2);
        }
    };
    match FeedPublisher::open_with(config, || crate::transport::publisher_sender(&wal, group)) {
        Ok(publisher) => publish(args, publisher, &stop),
        Err(e) => {
            eprintln!("mdbus publish: {e}");
            ExitCode::FAILURE
        }
    }
}

fn publish<S: MdSender>(args: &PublishArgs, mut publisher: FeedPublisher<S>, stop: &AtomicBool) -> ExitCode {
    let mut feed = match SyntheticFeed::new(args.instruments as usize, args.seed) {
        Ok(feed) => feed,
        Err(e) => {
            eprintln!("mdbus publish: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(report) = publisher.recovery_report()
        && !report.is_clean()
    {
        eprintln!("mdbus publish: WAL recovery: {report}");
    }
    let first_seq = publisher.recovery_report().map_or(1, |r| r.next_seq);
    let metrics = match args.metrics {
        None => None,
        Some(listen) => {
            let values = Arc::new(crate::metrics::PublishValues::default());
            values.update(&publisher);
            let sync = publisher.wal().and_then(mdbus_wal::Wal::sync_stats);
            let feed_dir = args.wal.join(&args.feed);
            match crate::metrics::MetricsServer::start(listen, &args.feed, feed_dir, Arc::clone(&values), sync) {
                Ok(server) => {
                    eprintln!(
                        "mdbus publish: metrics of feed {} on http://{}/metrics",
                        args.feed,
                        server.local_addr()
                    );
                    Some((server, values))
                }
                Err(e) => {
                    eprintln!("mdbus publish: --metrics {listen}: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let mut metrics_due = crate::metrics::TICK;
    // Zero: until stopped by a signal.
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let mut batch = Vec::with_capacity(300);
    let mut generated = 0u64;
    let result = (|| -> mdbus_publisher::Result<()> {
        loop {
            let elapsed = start.elapsed();
            // Between two batches: the one in hand was published whole.
            // Relaxed: the flag carries no data (the signal handler's
            // store is SeqCst; seeing it one batch late is harmless).
            if stop.load(Ordering::Relaxed) {
                eprintln!("mdbus publish: stopping (SIGTERM or SIGINT)");
                return Ok(());
            }
            if !duration.is_zero() && elapsed >= duration {
                return Ok(());
            }
            // Once per tick, never per record.
            if let Some((_, values)) = &metrics
                && elapsed >= metrics_due
            {
                values.update(&publisher);
                metrics_due = elapsed + crate::metrics::TICK;
            }
            publisher.poll()?;
            let due = if args.rate == 0 {
                u64::MAX
            } else {
                (args.rate as f64 * elapsed.as_secs_f64()) as u64
            };
            if generated >= due {
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
            let want = (due - generated).min(256) as usize;
            batch.clear();
            let ts = clock::now_ns();
            while batch.len() < want {
                feed.next_event(ts, &mut batch);
            }
            generated += batch.len() as u64;
            publisher.publish_batch(&mut batch)?;
        }
    })();
    // The WAL synced whatever the policy, and the transport's last batch
    // ended: everything published is on disk, and a restart continues at
    // `next_seq` (the WAL is the state). Dropping the publisher at the end
    // joins the WAL's sync and retention threads.
    let flushed = publisher.flush();
    if let Some((_, values)) = &metrics {
        values.update(&publisher);
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = publisher.stats();
    let last_seq = publisher.next_seq() - 1;
    if let Err(e) = result.and(flushed) {
        eprintln!("mdbus publish: stopped at seq {last_seq}: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "published {} records in {:.2} s ({:.0} records/s) to feed {}: seq {}..={}, {} instruments, {} policy snapshots, {} snapshot sets, {} heartbeats, WAL {}",
        stats.records,
        secs,
        stats.records as f64 / secs,
        args.feed,
        first_seq,
        last_seq,
        publisher.instrument_count(),
        stats.policy_snapshots,
        stats.snapshot_sets,
        stats.heartbeats,
        args.wal.join(&args.feed).display(),
    );
    ExitCode::SUCCESS
}
