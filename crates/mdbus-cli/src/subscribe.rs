//! `mdbus subscribe` and `mdbus stats`: the live stream of a feed over
//! iceoryx2 shared memory.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// How the subscriber waits for the next record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Wait {
    /// Poll in a tight loop: lowest latency, one core busy.
    Spin,
    /// Spin, yield, then sleep with growing pauses (Aeron's backoff).
    #[value(alias = "yield")]
    Backoff,
    /// Sleep on the feed's event service: lowest CPU.
    Block,
}

/// Arguments of `mdbus subscribe`.
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Feed name.
    #[arg(long)]
    feed: String,
    /// Pin the subscriber to this CPU (a spinning subscriber wants a core
    /// of its own, away from the publisher's).
    #[arg(long)]
    cpu: Option<usize>,
    /// Wait strategy (`yield` is an alias of `backoff`).
    #[arg(long, value_enum, default_value_t = Wait::Block)]
    wait: Wait,
    /// Stop after this many records (0: no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Stop after this many seconds (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Seconds to wait for a publisher to create the feed.
    #[arg(long, default_value_t = 10.0)]
    wait_for_publisher: f64,
    /// One JSON object a line (docs/spec.md's form plus `latency_ns`);
    /// otherwise a short human line per record.
    #[arg(long)]
    json: bool,
    /// Print only the summary, not the records.
    #[arg(long)]
    quiet: bool,
    /// Replay-merge: replay this WAL directory (the feed's segments are in
    /// `<wal>/<feed>/`) from the newest full snapshot set, then join the
    /// live stream without a gap or a duplicate; holes are filled from it.
    #[arg(long)]
    wal: Option<std::path::PathBuf>,
    /// Replay-merge from the WAL folder the publisher announces (the
    /// service attribute `mdbus.wal_dir`).
    #[arg(long, conflicts_with = "wal")]
    replay: bool,
    /// With `--wal` or `--replay`: start the replay at this seq.
    #[arg(long)]
    from_seq: Option<u64>,
}

/// Arguments of `mdbus stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Feed name.
    #[arg(long)]
    feed: String,
    /// Stop after this many seconds (0: until interrupted).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Seconds to wait for a publisher to create the feed.
    #[arg(long, default_value_t = 10.0)]
    wait_for_publisher: f64,
}

fn seconds(value: f64, name: &str) -> Result<Option<Duration>, String> {
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{name} {value} is not a number of seconds >= 0"));
    }
    Ok((value > 0.0).then(|| Duration::from_secs_f64(value)))
}

fn limits(duration: f64, wait_for: f64) -> Result<(Option<Duration>, Duration), String> {
    Ok((
        seconds(duration, "--duration")?,
        seconds(wait_for, "--wait-for-publisher")?.unwrap_or_default(),
    ))
}

pub(crate) fn run(args: &SubscribeArgs) -> ExitCode {
    if let Err(code) = crate::pin(args.cpu, "subscribe") {
        return code;
    }
    match limits(args.duration, args.wait_for_publisher) {
        Ok((duration, wait_for)) => imp::subscribe(args, duration, wait_for),
        Err(e) => {
            eprintln!("mdbus subscribe: {e}");
            ExitCode::from(2)
        }
    }
}

pub(crate) fn stats(args: &StatsArgs) -> ExitCode {
    match limits(args.duration, args.wait_for_publisher) {
        Ok((duration, wait_for)) => imp::stats(args, duration, wait_for),
        Err(e) => {
            eprintln!("mdbus stats: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(not(feature = "iceoryx2"))]
mod imp {
    use super::*;

    const NO_IOX: &str = "this build has no iceoryx2 transport (built without the `iceoryx2` feature)";

    pub(super) fn subscribe(_: &SubscribeArgs, _: Option<Duration>, _: Duration) -> ExitCode {
        eprintln!("mdbus subscribe: {NO_IOX}");
        ExitCode::FAILURE
    }

    pub(super) fn stats(_: &StatsArgs, _: Option<Duration>, _: Duration) -> ExitCode {
        eprintln!("mdbus stats: {NO_IOX}");
        ExitCode::FAILURE
    }
}

#[cfg(feature = "iceoryx2")]
mod imp {
    use super::*;
    use std::io::Write;
    use std::time::Instant;

    use hdrhistogram::Histogram;
    use mdbus_transport::MdReceiver;
    use mdbus_transport::iceoryx::{IoxReceiver, IoxReceiverConfig, WaitStrategy};
    use mdbus_types::{RecordRef, clock, json};

    fn open(feed: &str, strategy: WaitStrategy, wait_for: Duration) -> mdbus_transport::Result<IoxReceiver> {
        let config = IoxReceiverConfig::new(feed.to_string()).wait(strategy);
        IoxReceiver::open_waiting(&config, wait_for)
    }

    fn human(record: RecordRef<'_>, latency: u64) -> String {
        let h = record.header();
        let what = match record {
            RecordRef::Tick(t) => format!(
                "tick  {} last {} x {} bid {} x {} ask {} x {}",
                t.instrument, t.last_px, t.last_qty, t.bid_px, t.bid_qty, t.ask_px, t.ask_qty
            ),
            RecordRef::BookSnapshot(s) => format!(
                "book  {} {} bids {} asks, best {} / {}",
                s.instrument,
                s.bid_count,
                s.ask_count,
                s.bid_levels().first().map_or("-".into(), |l| l.price.to_string()),
                s.ask_levels().first().map_or("-".into(), |l| l.price.to_string())
            ),
            RecordRef::BookDelta(d) => format!(
                "delta {} {} {} -> {}",
                d.instrument,
                if d.side == 0 { "bid" } else { "ask" },
                d.price,
                d.qty
            ),
            RecordRef::Heartbeat(_) => "heartbeat".to_string(),
        };
        format!("{:>10}  {what}  ({} ns)\n", h.seq, latency)
    }

    pub(super) fn subscribe(args: &SubscribeArgs, duration: Option<Duration>, wait_for: Duration) -> ExitCode {
        let strategy = match args.wait {
            Wait::Spin => WaitStrategy::BusySpin,
            Wait::Backoff => WaitStrategy::backoff(),
            Wait::Block => WaitStrategy::Block,
        };
        let mut subscriber = match open(&args.feed, strategy, wait_for) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mdbus subscribe: {e}");
                return ExitCode::FAILURE;
            }
        };
        if args.wal.is_some() || args.replay || args.from_seq.is_some() {
            return merged(args, subscriber, duration);
        }
        let start = Instant::now();
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut latency = Histogram::<u64>::new(3).expect("3 significant digits is valid");
        let (mut records, mut holes, mut last_seq) = (0u64, 0u64, 0u64);
        let mut line = String::with_capacity(512);
        while (args.count == 0 || records < args.count) && duration.is_none_or(|d| start.elapsed() < d) {
            let sample = match subscriber.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(sample)) => sample,
                // No publisher attached after the wait: one may start.
                Ok(None) | Err(mdbus_transport::Error::Disconnected) => continue,
                Err(e) => {
                    let _ = out.flush();
                    eprintln!("mdbus subscribe: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let now = clock::now_ns();
            let h = *sample.header();
            let lat = now.saturating_sub(h.ts_publish).max(0) as u64;
            let _ = latency.record(lat);
            if last_seq != 0 && h.seq > last_seq + 1 {
                holes += h.seq - last_seq - 1;
            }
            last_seq = h.seq;
            records += 1;
            if args.quiet {
                continue;
            }
            let Ok(record) = sample.record() else { continue };
            line.clear();
            if args.json {
                json::write_record(&mut line, record);
                line.pop(); // the closing brace
                line.push_str(&format!(",\"latency_ns\":{lat}}}\n"));
            } else {
                line.push_str(&human(record, lat));
            }
            if out.write_all(line.as_bytes()).is_err() {
                return ExitCode::SUCCESS;
            }
        }
        let _ = out.flush();
        eprintln!(
            "subscribed {} records of feed {} in {:.2} s: last seq {}, {} holes (records the live stream lost), {} publisher restarts, latency ns p50 {} p99 {} p99.9 {} max {}",
            records,
            args.feed,
            start.elapsed().as_secs_f64(),
            last_seq,
            holes,
            subscriber.publisher_restarts(),
            latency.value_at_quantile(0.5),
            latency.value_at_quantile(0.99),
            latency.value_at_quantile(0.999),
            latency.max(),
        );
        ExitCode::SUCCESS
    }

    /// Replay-merge through `mdbus-subscriber`: one stream in seq order,
    /// each record once, with a marker where replay ended and live began,
    /// and explicit gaps.
    fn merged(args: &SubscribeArgs, live: IoxReceiver, duration: Option<Duration>) -> ExitCode {
        use mdbus_subscriber::{EventRef, Source, StartFrom, Subscriber, SubscriberConfig};
        let found = live
            .wal()
            .map_err(mdbus_subscriber::Error::from)
            .and_then(|announced| SubscriberConfig::default().wal_found(args.wal.as_deref(), &args.feed, announced));
        let mut config = match found {
            Ok(config) => config,
            Err(e) => {
                eprintln!("mdbus subscribe: the feed's WAL: {e}");
                return ExitCode::FAILURE;
            }
        };
        if config.wal.is_none() {
            eprintln!(
                "mdbus subscribe: feed {} announces no WAL folder: pass --wal DIR",
                args.feed
            );
            return ExitCode::from(2);
        }
        if let Some(seq) = args.from_seq {
            config = config.start(StartFrom::Seq(seq));
        }
        let mut subscriber = match Subscriber::new(live, config) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mdbus subscribe: {e}");
                return ExitCode::FAILURE;
            }
        };
        let start = Instant::now();
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut latency = Histogram::<u64>::new(3).expect("3 significant digits is valid");
        let mut records = 0u64;
        let mut line = String::with_capacity(512);
        let over = |start: Instant| duration.is_some_and(|d| start.elapsed() >= d);
        // The end as wall-clock ns, for the clock reading a live record's
        // latency takes anyway.
        let end_ns = duration.map(|d| clock::now_ns().saturating_add(d.as_nanos() as i64));
        let mut live_over = false;
        let mut events = 0u32;
        while (args.count == 0 || records < args.count) && !live_over {
            // The clock is read every 256 events (and when idle, and with
            // every live record's latency), not per replayed record: at a
            // million records/s it was 4 % of the time.
            events = events.wrapping_add(1);
            if events.is_multiple_of(256) && over(start) {
                break;
            }
            // In place: a live record is read in shared memory, no copy.
            let event = match subscriber.next_event_ref(Duration::from_millis(100)) {
                Ok(Some(event)) => event,
                Ok(None) if over(start) => break,
                Ok(None) => continue,
                Err(e) => {
                    let _ = out.flush();
                    eprintln!("mdbus subscribe: {e}");
                    return ExitCode::FAILURE;
                }
            };
            line.clear();
            match event {
                EventRef::Record { sample, source } => {
                    records += 1;
                    let Ok(record) = sample.record() else { continue };
                    // After the switch to live, a record read from the WAL
                    // (a hole, or the catch-up of a subscriber that fell
                    // behind) is a late live record: its latency counts.
                    let (source, lat) = match source {
                        Source::Replay => ("replay", None),
                        Source::GapFill | Source::Live => {
                            let now = clock::now_ns();
                            live_over = end_ns.is_some_and(|end| now >= end);
                            let lat = now.saturating_sub(sample.header().ts_publish).max(0) as u64;
                            let _ = latency.record(lat);
                            let name = if source == Source::Live { "live" } else { "gap_fill" };
                            (name, Some(lat))
                        }
                        _ => ("other", None),
                    };
                    if args.quiet {
                        continue;
                    }
                    if args.json {
                        json::write_record(&mut line, record);
                        line.pop();
                        line.push_str(&format!(",\"source\":\"{source}\""));
                        if let Some(lat) = lat {
                            line.push_str(&format!(",\"latency_ns\":{lat}"));
                        }
                        line.push_str("}\n");
                    } else {
                        line.push_str(&format!("{source:>8} "));
                        line.push_str(&human(record, lat.unwrap_or(0)));
                    }
                }
                EventRef::ReplayDone { last_replayed_seq } => {
                    let seq = last_replayed_seq.map_or("null".to_string(), |s| s.to_string());
                    if args.json {
                        line.push_str(&format!("{{\"type\":\"replay_done\",\"last_replayed_seq\":{seq}}}\n"));
                    } else {
                        line.push_str(&format!(
                            "---- replay done (last replayed seq {seq}); live from here ----\n"
                        ));
                    }
                }
                EventRef::Gap(mdbus_types::SeqRange { from, to }) => {
                    if args.json {
                        line.push_str(&format!("{{\"type\":\"gap\",\"from\":{from},\"to\":{to}}}\n"));
                    } else {
                        line.push_str(&format!(
                            "---- gap: seq {from}..={to} are in neither the stream nor the WAL ----\n"
                        ));
                    }
                }
                // A kind of event this build does not know: nothing to print.
                _ => continue,
            }
            if out.write_all(line.as_bytes()).is_err() {
                return ExitCode::SUCCESS;
            }
        }
        let _ = out.flush();
        let stats = subscriber.stats();
        eprintln!(
            "subscribed {records} records of feed {} with replay-merge in {:.2} s: {stats:?}, latency ns (live and gap-filled records) p50 {} p99 {}",
            args.feed,
            start.elapsed().as_secs_f64(),
            latency.value_at_quantile(0.5),
            latency.value_at_quantile(0.99),
        );
        ExitCode::SUCCESS
    }

    /// A live view, one line per second: records/s, publishers and
    /// subscribers on the service, holes, latency p50/p99 of the second.
    pub(super) fn stats(args: &StatsArgs, duration: Option<Duration>, wait_for: Duration) -> ExitCode {
        let mut subscriber = match open(&args.feed, WaitStrategy::backoff(), wait_for) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mdbus stats: {e}");
                return ExitCode::FAILURE;
            }
        };
        let start = Instant::now();
        let mut latency = Histogram::<u64>::new(3).expect("3 significant digits is valid");
        let (mut records, mut holes, mut total_holes, mut last_seq) = (0u64, 0u64, 0u64, 0u64);
        let mut next = start + Duration::from_secs(1);
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        if tty {
            println!(
                "{:>8} {:>12} {:>5} {:>5} {:>8} {:>10} {:>10} {:>12}",
                "t", "records/s", "pubs", "subs", "holes", "p50 ns", "p99 ns", "last seq"
            );
        }
        while duration.is_none_or(|d| start.elapsed() < d) {
            match subscriber.recv_timeout(Duration::from_millis(20)) {
                Ok(Some(sample)) => {
                    let h = sample.header();
                    let _ = latency.record(clock::now_ns().saturating_sub(h.ts_publish).max(0) as u64);
                    if last_seq != 0 && h.seq > last_seq + 1 {
                        holes += h.seq - last_seq - 1;
                    }
                    last_seq = h.seq;
                    records += 1;
                }
                // No publisher attached after the wait: one may start.
                Ok(None) | Err(mdbus_transport::Error::Disconnected) => {}
                Err(e) => {
                    eprintln!("mdbus stats: {e}");
                    return ExitCode::FAILURE;
                }
            }
            if Instant::now() >= next {
                total_holes += holes;
                let line = format!(
                    "{:>7.0}s {:>12} {:>5} {:>5} {:>8} {:>10} {:>10} {:>12}",
                    start.elapsed().as_secs_f64(),
                    records,
                    subscriber.publisher_count(),
                    subscriber.subscriber_count(),
                    total_holes,
                    latency.value_at_quantile(0.5),
                    latency.value_at_quantile(0.99),
                    last_seq
                );
                if tty {
                    print!("\r{line}");
                    let _ = std::io::stdout().flush();
                } else {
                    println!(
                        "stats feed {}: {} records/s, {} publishers, {} subscribers, {} holes, latency p50 {} ns p99 {} ns, last seq {}",
                        args.feed,
                        records,
                        subscriber.publisher_count(),
                        subscriber.subscriber_count(),
                        total_holes,
                        latency.value_at_quantile(0.5),
                        latency.value_at_quantile(0.99),
                        last_seq
                    );
                }
                latency.reset();
                records = 0;
                holes = 0;
                next += Duration::from_secs(1);
            }
        }
        if tty {
            println!();
        }
        ExitCode::SUCCESS
    }
}
