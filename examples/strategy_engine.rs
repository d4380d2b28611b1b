//! A strategy engine: subscribes to a feed across processes over iceoryx2
//! shared memory, keeps its own L1 cache (top-10 book + last tick per
//! instrument), computes the microprice and the top-of-book imbalance on
//! every book change, and prints a latency histogram (from `ts_publish`)
//! at the end. Holes in `seq` (records the live stream lost) are counted
//! and make the instrument's book stale until its next snapshot.
//!
//! ```sh
//! cargo run --release --example feed_publisher -- demo-feed target/example-wal /dev/shm 10 &
//! cargo run --release --example strategy_engine -- demo-feed 5 spin
//! ```
//! Arguments: FEED (default `example`), SECONDS (default 5), WAIT
//! (`spin`, `backoff` or `block`; default `spin`).

#[cfg(feature = "iceoryx2")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    engine::run()
}

#[cfg(not(feature = "iceoryx2"))]
fn main() {
    eprintln!("strategy_engine needs the iceoryx2 transport: build with the default features");
}

#[cfg(feature = "iceoryx2")]
mod engine {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use hdrhistogram::Histogram;
    use mdbus::transport::MdReceiver;
    use mdbus::transport::iceoryx::{IoxSubscriber, IoxSubscriberConfig, WaitStrategy, init_logging};
    use mdbus::types::{Book, InstrumentId, RecordRef, Tick, clock};

    struct Instrument {
        book: Book,
        last_tick: Option<Tick>,
        stale: bool,
        microprice: f64,
        imbalance: f64,
    }

    /// Microprice (the mid weighted towards the thinner side) and
    /// imbalance (bid qty - ask qty) / (bid qty + ask qty) at the top.
    fn signal(book: &Book) -> Option<(f64, f64)> {
        let (bid, ask) = (book.best_bid()?, book.best_ask()?);
        let (bq, aq) = (bid.qty as f64, ask.qty as f64);
        let (bp, ap) = (bid.price.to_f64()?, ask.price.to_f64()?);
        Some(((bp * aq + ap * bq) / (bq + aq), (bq - aq) / (bq + aq)))
    }

    pub(super) fn run() -> Result<(), Box<dyn std::error::Error>> {
        init_logging();
        let args: Vec<String> = std::env::args().skip(1).collect();
        let feed = args.first().cloned().unwrap_or_else(|| "example".into());
        let seconds: f64 = args.get(1).map_or(Ok(5.0), |s| s.parse())?;
        let wait = match args.get(2).map_or("spin", String::as_str) {
            "spin" => WaitStrategy::BusySpin,
            "backoff" => WaitStrategy::backoff(),
            "block" => WaitStrategy::Block,
            other => return Err(format!("unknown wait strategy {other:?}: spin, backoff or block").into()),
        };
        let config = IoxSubscriberConfig::new(feed.clone()).wait(wait);
        // The publisher may still be starting: retry for up to 10 s.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut subscriber = loop {
            match IoxSubscriber::open(&config) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        };
        println!(
            "strategy_engine: subscribed to {feed} ({wait:?}), WAL at {:?}",
            subscriber.wal_dir()
        );
        let mut instruments: HashMap<InstrumentId, Instrument> = HashMap::new();
        let mut latency = Histogram::<u64>::new(3)?;
        let (mut records, mut holes, mut last_seq, mut signals) = (0u64, 0u64, 0u64, 0u64);
        let start = Instant::now();
        let mut next_report = start + Duration::from_secs(1);
        while start.elapsed() < Duration::from_secs_f64(seconds) {
            let sample = match subscriber.recv_timeout(Duration::from_millis(50)) {
                Ok(Some(sample)) => sample,
                Ok(None) => continue,
                // No publisher attached (yet, or any more): pause, then retry.
                Err(mdbus::transport::Error::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let header = *sample.header();
            latency.record(clock::now_ns().saturating_sub(header.ts_publish).max(0) as u64)?;
            records += 1;
            if last_seq != 0 && header.seq > last_seq + 1 {
                holes += header.seq - last_seq - 1;
                instruments.values_mut().for_each(|i| i.stale = true);
            }
            last_seq = header.seq;
            let changed = match sample.record()? {
                RecordRef::BookSnapshot(s) => {
                    let entry = instruments.entry(s.instrument).or_insert_with(|| Instrument {
                        book: Book::new(s.instrument),
                        last_tick: None,
                        stale: false,
                        microprice: f64::NAN,
                        imbalance: 0.0,
                    });
                    entry.book.apply_snapshot(s)?;
                    entry.stale = false;
                    Some(s.instrument)
                }
                RecordRef::BookDelta(d) => match instruments.get_mut(&d.instrument) {
                    Some(i) if !i.stale => i.book.apply_delta(d)?.then_some(d.instrument),
                    _ => None,
                },
                RecordRef::Tick(t) => {
                    if let Some(i) = instruments.get_mut(&t.instrument) {
                        i.last_tick = Some(*t);
                    }
                    None
                }
                RecordRef::Heartbeat(_) => None,
            };
            if let Some(id) = changed {
                let i = instruments.get_mut(&id).expect("present");
                if let Some((microprice, imbalance)) = signal(&i.book) {
                    i.microprice = microprice;
                    i.imbalance = imbalance;
                    signals += 1;
                }
            }
            if Instant::now() >= next_report {
                next_report += Duration::from_secs(1);
                let mut ids: Vec<_> = instruments.keys().copied().collect();
                ids.sort();
                let top: Vec<String> = ids
                    .iter()
                    .take(3)
                    .map(|id| {
                        let i = &instruments[id];
                        let last = i.last_tick.map_or("-".into(), |t| t.last_px.to_string());
                        format!("{id} micro {:.3} imb {:+.2} last {last}", i.microprice, i.imbalance)
                    })
                    .collect();
                println!(
                    "  {records} records, {holes} holes, {signals} signals | {}",
                    top.join(" | ")
                );
            }
        }
        println!(
            "strategy_engine: {records} records, last seq {last_seq}, {holes} holes, {signals} signal updates, {} instruments",
            instruments.len()
        );
        println!("latency from ts_publish (ns):");
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            println!("  p{:<6} {:>10}", q * 100.0, latency.value_at_quantile(q));
        }
        if records == 0 {
            return Err(format!("no record received from feed {feed}").into());
        }
        Ok(())
    }
}
