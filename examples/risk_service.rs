//! A risk service: reads the latest book and tick of every instrument from
//! the snapshot board, without subscribing, and judges staleness by the
//! writer's heartbeat. A publisher that stalls or dies never blocks it.
//!
//! ```sh
//! cargo run --release --example risk_service -- [FEED] [BOARD_DIR] [ROUNDS]
//! ```
//! Defaults: feed `example`, board `/dev/shm`, 3 rounds one second apart.

use std::path::PathBuf;
use std::time::Duration;

use mdbus::transport::BoardReader;
use mdbus::types::clock;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let feed = args.first().cloned().unwrap_or_else(|| "example".into());
    let dir = PathBuf::from(args.get(1).cloned().unwrap_or_else(|| "/dev/shm".into()));
    let rounds: u32 = args.get(2).map_or(Ok(3), |s| s.parse())?;
    let board = BoardReader::open(&dir, &feed)?;
    for round in 0..rounds {
        if round > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        let status = board.status();
        let age_ms = clock::now_ns().saturating_sub(status.heartbeat_ns) / 1_000_000;
        let state = if age_ms > 500 { "STALE" } else { "live" };
        println!(
            "board {feed}: {state} (heartbeat {age_ms} ms ago, writer pid {}, epoch {}), last seq {}, {} instruments",
            status.writer_pid, status.epoch, status.last_seq, status.count
        );
        let mut gross = 0i128;
        for id in board.instruments() {
            let Some(entry) = board.entry(&id) else { continue };
            let book = entry.book();
            let (bid, ask) = book.map_or((None, None), |b| {
                (b.bid_levels().first().copied(), b.ask_levels().first().copied())
            });
            let mid = match (bid, ask) {
                (Some(b), Some(a)) => Some((b.price.raw() as i128 + a.price.raw() as i128) / 2),
                _ => None,
            };
            // A toy exposure: one lot of every instrument at its mid.
            gross += mid.unwrap_or(0);
            println!(
                "  {id:<10} bid {:>12} ask {:>12} last {:>12} (book seq {})",
                bid.map_or("-".into(), |l| l.price.to_string()),
                ask.map_or("-".into(), |l| l.price.to_string()),
                entry.tick().map_or("-".into(), |t| t.last_px.to_string()),
                book.map_or(0, |b| b.header.seq),
            );
        }
        println!("  gross one-lot exposure at mid: {}", mdbus::types::Price(gross as i64));
    }
    Ok(())
}
