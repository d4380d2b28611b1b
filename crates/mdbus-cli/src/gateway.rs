//! `mdbus gateway`: a feed to WebSocket clients and browsers
//! (crate `mdbus-gateway`), subscribed over iceoryx2 with replay-merge.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use mdbus_gateway::GatewayConfig;

/// Arguments of `mdbus gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Feed name.
    #[arg(long)]
    feed: String,
    /// Address to listen on. Loopback by default: another interface must
    /// be asked for here (and then `--token` is strongly advised). Port 0
    /// picks a free port (printed at start).
    #[arg(long, default_value = "127.0.0.1:8765")]
    listen: SocketAddr,
    /// WAL directory (the feed's segments are in `<wal>/<feed>/`) to
    /// replay from before joining the live stream; by default the folder
    /// the publisher announces, or live only if it announces none.
    #[arg(long)]
    wal: Option<PathBuf>,
    /// A token every request must carry (`?token=T`, `Authorization:
    /// Bearer T` or `X-Mdbus-Token: T`); others get 401. Characters
    /// `[A-Za-z0-9._~-]`.
    #[arg(long)]
    token: Option<String>,
    /// Events a client may have pending before its queue is conflated to
    /// the latest state per instrument and channel.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..))]
    queue: u64,
    /// Subscriptions per connection (`"*"` counts as one).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_subscriptions: u64,
    /// Another origin (`scheme://host:port`) whose pages may open `/ws`
    /// (repeatable; `*` allows any). The gateway's own page always may.
    #[arg(long)]
    allow_origin: Vec<String>,
    /// Stop after this many seconds; 0, the default, runs until SIGTERM or
    /// SIGINT (as a service). Either signal closes the connections and
    /// exits 0; a second signal exits at once (1).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Seconds to wait for a publisher to create the feed.
    #[arg(long, default_value_t = 10.0)]
    wait_for_publisher: f64,
    #[command(flatten)]
    config: crate::config::ConfigArg,
}

fn seconds(value: f64, name: &str) -> Result<Duration, String> {
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{name} {value} is not a number of seconds >= 0"));
    }
    Ok(Duration::from_secs_f64(value))
}

pub(crate) fn run(args: &GatewayArgs) -> ExitCode {
    args.config.announce("gateway");
    let (duration, wait_for) = match (
        seconds(args.duration, "--duration"),
        seconds(args.wait_for_publisher, "--wait-for-publisher"),
    ) {
        (Ok(d), Ok(w)) => (d, w),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("mdbus gateway: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(wal) = &args.wal
        && !wal.join(&args.feed).is_dir()
    {
        eprintln!(
            "mdbus gateway: no WAL of feed {} in {} (its segments would be in {})",
            args.feed,
            wal.display(),
            wal.join(&args.feed).display()
        );
        return ExitCode::from(2);
    }
    let mut config = GatewayConfig::default();
    config.listen = args.listen;
    config.token = args.token.clone();
    config.queue_capacity = args.queue as usize;
    config.max_subscriptions = args.max_subscriptions as usize;
    config.allowed_origins = args.allow_origin.clone();
    config.feed = args.feed.clone();
    if let Err(e) = config.validate() {
        eprintln!("mdbus gateway: {e}");
        return ExitCode::from(2);
    }
    if !args.listen.ip().is_loopback() && args.token.is_none() {
        eprintln!(
            "mdbus gateway: warning: listening on {} without --token: anyone who can reach this address can read the feed",
            args.listen
        );
    }
    let stop = match crate::stop_on_signals("gateway") {
        Ok(stop) => stop,
        Err(code) => return code,
    };
    let gateway = match imp::start(args, config, wait_for) {
        Ok(gateway) => gateway,
        Err(e) => {
            eprintln!("mdbus gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = gateway.local_addr();
    let query = args.token.as_ref().map_or(String::new(), |t| format!("?token={t}"));
    println!(
        "mdbus gateway: feed {} on http://{addr}/{query} (depth page), ws://{addr}/ws, http://{addr}/stats, http://{addr}/metrics",
        args.feed
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let start = Instant::now();
    // Relaxed: the flag carries no data (the signal handler's store is
    // SeqCst; seeing it one round late is harmless).
    while !stop.load(Ordering::Relaxed) && (duration.is_zero() || start.elapsed() < duration) {
        std::thread::sleep(Duration::from_millis(100).min(if duration.is_zero() {
            Duration::MAX
        } else {
            duration.saturating_sub(start.elapsed())
        }));
        if !gateway.is_running() {
            let stats = gateway.stats();
            eprintln!(
                "mdbus gateway: the feed stopped: {}",
                stats.feed_error.unwrap_or_else(|| "no reason given".into())
            );
            return ExitCode::FAILURE;
        }
    }
    let stats = gateway.stats();
    println!(
        "mdbus gateway: {} records of feed {} in {:.1} s, last seq {}, {} clients at the end, {} conflated",
        stats.records,
        args.feed,
        start.elapsed().as_secs_f64(),
        stats.last_seq.map_or("-".into(), |s| s.to_string()),
        stats.clients.len(),
        stats.clients.iter().map(|c| c.conflated).sum::<u64>(),
    );
    gateway.shutdown();
    ExitCode::SUCCESS
}

#[cfg(not(feature = "iceoryx2"))]
mod imp {
    use super::*;

    pub(super) fn start(_: &GatewayArgs, _: GatewayConfig, _: Duration) -> Result<mdbus_gateway::Gateway, String> {
        Err("this build has no iceoryx2 transport (built without the `iceoryx2` feature)".into())
    }
}

#[cfg(feature = "iceoryx2")]
mod imp {
    use super::*;
    use mdbus_gateway::{BoxError, Gateway};
    use mdbus_subscriber::{L2Config, StartFrom, Subscriber, SubscriberConfig};
    use mdbus_transport::iceoryx::{IoxReceiver, IoxReceiverConfig, WaitStrategy};

    fn open(feed: &str, wait_for: Duration) -> mdbus_transport::Result<IoxReceiver> {
        // Block: the feed thread sleeps on the event service until the
        // publisher ends a batch (event-driven, no polling interval).
        let config = IoxReceiverConfig::new(feed.to_string()).wait(WaitStrategy::Block);
        IoxReceiver::open_waiting(&config, wait_for)
    }

    pub(super) fn start(args: &GatewayArgs, config: GatewayConfig, wait_for: Duration) -> Result<Gateway, String> {
        let (feed, wal) = (args.feed.clone(), args.wal.clone());
        // iceoryx2 ports are not Send: the receiver is opened on the
        // gateway's feed thread.
        Gateway::start(config, move || -> Result<Subscriber<IoxReceiver>, BoxError> {
            let live = open(&feed, wait_for)?;
            // The gateway pushes the latest state (L1) and never answers a
            // history query: no L2 (issue 16: 256 instruments grew a
            // gateway to 835 MB with the default per-instrument history).
            let mut subscriber_config =
                SubscriberConfig::default()
                    .l2(L2Config::off())
                    .wal_found(wal.as_deref(), &feed, live.wal()?)?;
            if subscriber_config.wal.is_none() {
                subscriber_config = subscriber_config.start(StartFrom::LiveOnly);
            }
            Ok(Subscriber::new(live, subscriber_config)?)
        })
        .map_err(|e| e.to_string())
    }
}
