//! A strategy engine: subscribes to a feed across processes over iceoryx2
//! shared memory through the mdbus subscriber (replay-merge from the WAL,
//! gap fill), computes the microprice and the top-of-book imbalance on
//! every book change from the subscriber's L1 cache, and prints a latency
//! histogram (from `ts_publish`, live records only) at the end.
//!
//! Restart-safe: killed and started again, it replays the WAL from the
//! newest full snapshot set, so every book is whole before the first live
//! record, and joins the live stream without a gap or a duplicate.
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
    use mdbus::transport::iceoryx::WaitStrategy;
    use mdbus::types::{RecordRef, clock};
    use mdbus::{Event, InstrumentId, Quote, Source};

    #[derive(Default)]
    struct Signal {
        microprice: f64,
        imbalance: f64,
    }

    /// Microprice (the mid weighted towards the thinner side) and
    /// imbalance (bid qty - ask qty) / (bid qty + ask qty) at the top.
    fn signal(q: &Quote) -> Option<Signal> {
        let (bq, aq) = (q.bid.qty as f64, q.ask.qty as f64);
        let (bp, ap) = (q.bid.price.to_f64()?, q.ask.price.to_f64()?);
        Some(Signal {
            microprice: (bp * aq + ap * bq) / (bq + aq),
            imbalance: (bq - aq) / (bq + aq),
        })
    }

    pub(super) fn run() -> Result<(), Box<dyn std::error::Error>> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let feed = args.first().cloned().unwrap_or_else(|| "example".into());
        let seconds: f64 = args.get(1).map_or(Ok(5.0), |s| s.parse())?;
        let wait = match args.get(2).map_or("spin", String::as_str) {
            "spin" => WaitStrategy::BusySpin,
            "backoff" => WaitStrategy::backoff(),
            "block" => WaitStrategy::Block,
            other => return Err(format!("unknown wait strategy {other:?}: spin, backoff or block").into()),
        };
        // Replay from the WAL the publisher announces, then live; the
        // publisher may still be starting: wait for up to 10 s.
        let mut subscriber = mdbus::Subscriber::builder(&feed)
            .replay(true)
            .wait(wait)
            .open_timeout(Duration::from_secs(10))
            .open()?;
        println!("strategy_engine: subscribed to {feed} ({wait:?})");
        let l1 = std::sync::Arc::clone(subscriber.l1());

        let mut signals: HashMap<InstrumentId, Signal> = HashMap::new();
        let mut latency = Histogram::<u64>::new(3)?;
        let (mut records, mut updates) = (0u64, 0u64);
        let start = Instant::now();
        let mut next_report = start + Duration::from_secs(1);
        while start.elapsed() < Duration::from_secs_f64(seconds) {
            let (sample, source) = match subscriber.next_timeout(Duration::from_millis(50))? {
                Some(Event::Record { sample, source }) => (sample, source),
                Some(Event::ReplayDone { last_replayed_seq }) => {
                    println!(
                        "  replayed {} records from the WAL (to seq {last_replayed_seq:?}), {} books; live from here",
                        subscriber.stats().replayed,
                        l1.len()
                    );
                    continue;
                }
                Some(Event::Gap(lost)) => {
                    println!("  GAP: seq {lost} lost (not in the WAL): books stale until their next snapshot");
                    continue;
                }
                Some(_) | None => continue,
            };
            let header = *sample.header();
            if source == Source::Live {
                latency.record(clock::now_ns().saturating_sub(header.ts_publish).max(0) as u64)?;
            }
            records += 1;
            // The subscriber applied the record to its L1 book already.
            let changed = match sample.record()? {
                RecordRef::BookSnapshot(s) => Some(s.instrument),
                RecordRef::BookDelta(d) => Some(d.instrument),
                RecordRef::Tick(_) | RecordRef::Heartbeat(_) => None,
            };
            // Top of book and staleness in one read of the L1 cache.
            if let Some(id) = changed
                && let Some(quote) = subscriber.quote(&id)
                && !quote.stale
                && let Some(s) = signal(&quote)
            {
                signals.insert(id, s);
                updates += 1;
            }
            if Instant::now() >= next_report {
                next_report += Duration::from_secs(1);
                let top: Vec<String> = l1
                    .instruments()
                    .iter()
                    .take(3)
                    .map(|id| {
                        let s = signals.get(id);
                        let last = l1.tick(id).map_or("-".into(), |t| t.last_px.to_string());
                        format!(
                            "{id} micro {:.3} imb {:+.2} last {last}",
                            s.map_or(f64::NAN, |s| s.microprice),
                            s.map_or(0.0, |s| s.imbalance)
                        )
                    })
                    .collect();
                let stats = subscriber.stats();
                println!(
                    "  {records} records ({} live, {} gap-filled), {} gaps, {updates} signal updates | {}",
                    stats.live,
                    stats.gap_filled,
                    stats.gaps,
                    top.join(" | ")
                );
            }
        }
        let stats = subscriber.stats();
        println!(
            "strategy_engine: {records} records ({} replayed, {} live, {} gap-filled), last seq {:?}, {} gaps, \
             {} book mismatches, {updates} signal updates, {} instruments",
            stats.replayed,
            stats.live,
            stats.gap_filled,
            stats.last_seq,
            stats.gaps,
            stats.mismatches,
            l1.len()
        );
        println!("latency of live records from ts_publish (ns):");
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            println!("  p{:<6} {:>10}", q * 100.0, latency.value_at_quantile(q));
        }
        if records == 0 {
            return Err(format!("no record received from feed {feed}").into());
        }
        Ok(())
    }
}
