//! A feed publisher: the synthetic market into the WAL, iceoryx2 shared
//! memory and the snapshot board through `mdbus::Publisher`, with
//! heartbeats and the snapshot policy running inside it.
//!
//! ```sh
//! cargo run --release --example feed_publisher -- [FEED] [WAL_DIR] [BOARD_DIR] [SECONDS]
//! ```
//! Defaults: feed `example`, WAL `./target/example-wal`, board `/dev/shm`, 5 s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mdbus::publisher::SyntheticFeed;
use mdbus::types::clock;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let feed_name = args.first().cloned().unwrap_or_else(|| "example".into());
    let wal_dir = PathBuf::from(args.get(1).cloned().unwrap_or_else(|| "target/example-wal".into()));
    let board_dir = PathBuf::from(args.get(2).cloned().unwrap_or_else(|| "/dev/shm".into()));
    let seconds: f64 = args.get(3).map_or(Ok(5.0), |s| s.parse())?;

    let mut bus = mdbus::Publisher::builder(&feed_name)
        .wal(&wal_dir)
        .board(&board_dir)
        .open()?;
    if let Some(report) = bus.inner_mut().recovery_report() {
        println!("WAL: {report}");
    }
    let mut market = SyntheticFeed::new(8, 7)?;
    let start = Instant::now();
    let mut batch = Vec::new();
    let rate = 50_000.0; // records/s
    let mut generated = 0u64;
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        let due = (rate * start.elapsed().as_secs_f64()) as u64;
        if generated >= due {
            // Nothing to publish: heartbeats go out while the feed is quiet.
            bus.idle()?;
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        batch.clear();
        let ts = clock::now_ns();
        while batch.len() < (due - generated).min(256) as usize {
            market.next_event(ts, &mut batch);
        }
        generated += batch.len() as u64;
        bus.publish_batch(&mut batch)?;
    }
    bus.flush()?;
    let stats = bus.stats();
    println!(
        "feed {feed_name}: {} records up to seq {}, {} instruments; WAL {}, board {}",
        stats.records,
        bus.next_seq() - 1,
        bus.inner_mut().instrument_count(),
        wal_dir.join(&feed_name).display(),
        mdbus::board::board_path(&board_dir, &feed_name).display()
    );
    Ok(())
}
