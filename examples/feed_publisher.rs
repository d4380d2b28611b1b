//! A feed publisher: the synthetic market into the WAL, the transport and
//! the snapshot board, with heartbeats and the snapshot policy.
//!
//! ```sh
//! cargo run --release --example feed_publisher -- [FEED] [WAL_DIR] [BOARD_DIR] [SECONDS]
//! ```
//! Defaults: feed `example`, WAL `./target/example-wal`, board `/dev/shm`, 5 s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mdbus::publisher::{FeedConfig, FeedPublisher, SyntheticFeed};
use mdbus::transport::MdSender;
use mdbus::types::clock;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let feed_name = args.first().cloned().unwrap_or_else(|| "example".into());
    let wal_dir = PathBuf::from(args.get(1).cloned().unwrap_or_else(|| "target/example-wal".into()));
    let board_dir = PathBuf::from(args.get(2).cloned().unwrap_or_else(|| "/dev/shm".into()));
    let seconds: f64 = args.get(3).map_or(Ok(5.0), |s| s.parse())?;

    let mut config = FeedConfig::new(&feed_name);
    config.wal_dir = Some(wal_dir.clone());
    config.board_dir = Some(board_dir.clone());
    run(config, sender(&feed_name, &wal_dir)?, seconds, &board_dir)
}

/// The feed's iceoryx2 service (the default build): other processes
/// (`strategy_engine`, `mdbus subscribe`) receive the stream.
#[cfg(feature = "iceoryx2")]
fn sender(feed: &str, wal_dir: &std::path::Path) -> Result<impl MdSender, Box<dyn std::error::Error>> {
    use mdbus::transport::iceoryx::{IoxPublisher, IoxPublisherConfig, init_logging};
    init_logging();
    Ok(IoxPublisher::create(
        &IoxPublisherConfig::new(feed).wal_dir(wal_dir.join(feed)),
    )?)
}

/// Without iceoryx2, an in-process bus nobody else can reach: the WAL and
/// the board still carry the feed to other processes.
#[cfg(not(feature = "iceoryx2"))]
fn sender(_feed: &str, _wal_dir: &std::path::Path) -> Result<impl MdSender, Box<dyn std::error::Error>> {
    Ok(mdbus::transport::InProcBus::new(1).sender())
}

fn run<S: MdSender>(
    config: FeedConfig,
    sender: S,
    seconds: f64,
    board_dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let feed_name = config.feed.clone();
    let wal_dir = config.wal_dir.clone().expect("set above");
    let mut publisher = FeedPublisher::open(config, sender)?;
    if let Some(report) = publisher.recovery_report() {
        println!("WAL: {report}");
    }
    let mut market = SyntheticFeed::new(8, 7)?;
    let start = Instant::now();
    let mut batch = Vec::new();
    let rate = 50_000.0; // records/s
    let mut generated = 0u64;
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        publisher.poll()?;
        let due = (rate * start.elapsed().as_secs_f64()) as u64;
        if generated >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        batch.clear();
        let ts = clock::now_ns();
        while batch.len() < (due - generated).min(256) as usize {
            market.next_event(ts, &mut batch);
        }
        generated += batch.len() as u64;
        publisher.publish_batch(&mut batch)?;
    }
    publisher.flush()?;
    let stats = publisher.stats();
    println!(
        "feed {feed_name}: {} records up to seq {}, {} instruments; WAL {}, board {}",
        stats.records,
        publisher.next_seq() - 1,
        publisher.instrument_count(),
        wal_dir.join(&feed_name).display(),
        mdbus::transport::board_path(board_dir, &feed_name).display()
    );
    Ok(())
}
