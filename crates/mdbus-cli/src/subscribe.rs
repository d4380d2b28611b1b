//! `mdbus subscribe`: the live stream of a feed over iceoryx2 shared
//! memory, one JSON object per record with `latency_ns`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// How the subscriber waits for the next record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Wait {
    /// Poll in a tight loop: lowest latency, one core busy.
    Spin,
    /// Spin, yield, then sleep with growing pauses (Aeron's backoff).
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
    /// Wait strategy.
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
    /// Print only the summary, not the records.
    #[arg(long)]
    quiet: bool,
}

fn seconds(value: f64, name: &str) -> Result<Option<Duration>, String> {
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{name} {value} is not a number of seconds >= 0"));
    }
    Ok((value > 0.0).then(|| Duration::from_secs_f64(value)))
}

pub(crate) fn run(args: &SubscribeArgs) -> ExitCode {
    let limits = seconds(args.duration, "--duration")
        .and_then(|d| Ok((d, seconds(args.wait_for_publisher, "--wait-for-publisher")?)));
    let (duration, wait_for) = match limits {
        Ok(limits) => limits,
        Err(e) => {
            eprintln!("mdbus subscribe: {e}");
            return ExitCode::from(2);
        }
    };
    imp::run(args, duration, wait_for.unwrap_or_default())
}

#[cfg(not(feature = "iceoryx2"))]
mod imp {
    use super::*;

    pub(super) fn run(_: &SubscribeArgs, _: Option<Duration>, _: Duration) -> ExitCode {
        eprintln!("mdbus subscribe: this build has no iceoryx2 transport (built without the `iceoryx2` feature)");
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
    use mdbus_transport::iceoryx::{IoxSubscriber, IoxSubscriberConfig, WaitStrategy};
    use mdbus_types::{clock, json};

    fn open(args: &SubscribeArgs, wait_for: Duration) -> mdbus_transport::Result<IoxSubscriber> {
        let strategy = match args.wait {
            Wait::Spin => WaitStrategy::BusySpin,
            Wait::Backoff => WaitStrategy::backoff(),
            Wait::Block => WaitStrategy::Block,
        };
        let config = IoxSubscriberConfig::new(args.feed.clone()).wait(strategy);
        let deadline = Instant::now() + wait_for;
        loop {
            match IoxSubscriber::open(&config) {
                Ok(subscriber) => return Ok(subscriber),
                // The feed does not exist yet: a publisher may be starting.
                Err(mdbus_transport::Error::Service { reason, .. })
                    if reason.contains("does not exist") && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) fn run(args: &SubscribeArgs, duration: Option<Duration>, wait_for: Duration) -> ExitCode {
        let mut subscriber = match open(args, wait_for) {
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
        let (mut records, mut holes, mut last_seq) = (0u64, 0u64, 0u64);
        let mut line = String::with_capacity(512);
        while (args.count == 0 || records < args.count) && duration.is_none_or(|d| start.elapsed() < d) {
            let sample = match subscriber.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(sample)) => sample,
                Ok(None) | Err(mdbus_transport::Error::Disconnected) => continue,
                Err(e) => {
                    let _ = out.flush();
                    eprintln!("mdbus subscribe: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let now = clock::now_ns();
            let h = *sample.header();
            let lat = (now - h.ts_publish).max(0) as u64;
            let _ = latency.record(lat);
            if last_seq != 0 && h.seq > last_seq + 1 {
                holes += h.seq - last_seq - 1;
            }
            last_seq = h.seq;
            records += 1;
            if !args.quiet {
                let Ok(record) = sample.record() else { continue };
                line.clear();
                json::write_record(&mut line, record);
                line.pop(); // the closing brace
                line.push_str(&format!(",\"latency_ns\":{lat}}}\n"));
                if out.write_all(line.as_bytes()).is_err() {
                    return ExitCode::SUCCESS;
                }
            }
        }
        let _ = out.flush();
        eprintln!(
            "subscribed {} records of feed {} in {:.2} s: last seq {}, {} holes (the live stream lost them; a WAL replay fills them), {} publisher restarts, latency ns p50 {} p99 {} p99.9 {} max {}",
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
}
