//! `mdbus bridge`: a feed replicated to another host over Zenoh (issue 15).
//! `out` on the source host, `in` on each receiving host; a status line
//! per second on stderr; SIGINT or SIGTERM stops either.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use clap::{Args, Subcommand};
use mdbus_board::DEFAULT_BOARD_DIR;
use mdbus_bridge::inbound::{self, InConfig, InStats};
use mdbus_bridge::out::{self, OutConfig, OutStats};
use mdbus_wal::WalOptions;

/// `mdbus bridge` subcommands.
#[derive(Debug, Subcommand)]
pub enum BridgeCommand {
    /// Puts a local feed on Zenoh (`mdbus/<feed>/md`) and answers gap-fill
    /// queries from its WAL.
    Out(OutArgs),
    /// Republishes a feed from Zenoh into a local replica (iceoryx2
    /// service, board, WAL) with the source's seq and bytes.
    In(InArgs),
}

/// Arguments of `mdbus bridge out`.
#[derive(Debug, Args)]
pub struct OutArgs {
    /// The local feed.
    #[arg(long)]
    feed: String,
    /// Zenoh endpoint to listen on (`tcp/ADDR:PORT`; repeatable).
    #[arg(long, required_unless_present = "connect")]
    listen: Vec<String>,
    /// Zenoh endpoint to connect to, e.g. a router (repeatable).
    #[arg(long)]
    connect: Vec<String>,
    /// WAL root of the feed (default: the one its publisher announces).
    #[arg(long)]
    wal: Option<PathBuf>,
}

/// Arguments of `mdbus bridge in`.
#[derive(Debug, Args)]
pub struct InArgs {
    /// The source feed.
    #[arg(long)]
    feed: String,
    /// Zenoh endpoint of the sending bridge or a router (repeatable).
    #[arg(long, required = true)]
    connect: Vec<String>,
    /// The local feed name (default: the source's).
    #[arg(long = "as")]
    as_feed: Option<String>,
    /// WAL root of the replica (its segments go in `<wal>/<as>/`).
    #[arg(long)]
    wal: PathBuf,
    /// Directory of the replica's snapshot board.
    #[arg(long, default_value = DEFAULT_BOARD_DIR)]
    board_dir: PathBuf,
    /// Do not write a snapshot board.
    #[arg(long)]
    no_board: bool,
    /// WAL segment size in bytes (new segments); use the source's so the
    /// replica's segments start where the source's do.
    #[arg(long, default_value_t = mdbus_wal::DEFAULT_SEGMENT_BYTES)]
    segment_bytes: u64,
}

/// Runs `mdbus bridge ...`.
pub(crate) fn run(command: &BridgeCommand) -> ExitCode {
    mdbus_bridge::init_logging();
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("mdbus bridge: cannot handle signal {signal}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match command {
        BridgeCommand::Out(args) => run_out(args, &stop),
        BridgeCommand::In(args) => run_in(args, &stop),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mdbus bridge: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Records per second from a counter, between two calls.
struct Rate {
    at: Instant,
    count: u64,
}

impl Rate {
    fn per_sec(&mut self, counter: &AtomicU64) -> f64 {
        let now = Instant::now();
        let count = counter.load(Ordering::Relaxed);
        let rate = (count - self.count) as f64 / (now - self.at).as_secs_f64().max(1e-9);
        (self.at, self.count) = (now, count);
        rate
    }
}

fn run_out(args: &OutArgs, stop: &AtomicBool) -> Result<(), mdbus_bridge::Error> {
    let mut config = OutConfig::new(&args.feed);
    config.listen = args.listen.clone();
    config.connect = args.connect.clone();
    config.wal_root = args.wal.clone();
    eprintln!(
        "mdbus bridge out: feed {} on listen {:?} connect {:?}",
        args.feed, args.listen, args.connect
    );
    let mut rate = Rate {
        at: Instant::now(),
        count: 0,
    };
    out::run(&config, stop, |s: &OutStats| {
        eprintln!(
            "out {}: {:.0} rec/s, last seq {}, {} queries ({} records filled, {} gone), {} local gaps",
            args.feed,
            rate.per_sec(&s.records),
            s.last_seq.load(Ordering::Relaxed),
            s.queries.load(Ordering::Relaxed),
            s.filled_records.load(Ordering::Relaxed),
            s.gone.load(Ordering::Relaxed),
            s.local_gaps.load(Ordering::Relaxed),
        );
    })
}

fn run_in(args: &InArgs, stop: &AtomicBool) -> Result<(), mdbus_bridge::Error> {
    let mut config = InConfig::new(&args.feed, args.wal.clone());
    config.as_feed = args.as_feed.clone().unwrap_or_else(|| args.feed.clone());
    config.connect = args.connect.clone();
    config.wal = WalOptions::default().segment_bytes(args.segment_bytes);
    config.board_dir = (!args.no_board).then(|| args.board_dir.clone());
    eprintln!(
        "mdbus bridge in: feed {} from {:?} as {} (WAL {})",
        args.feed,
        args.connect,
        config.as_feed,
        args.wal.display()
    );
    let mut rate = Rate {
        at: Instant::now(),
        count: 0,
    };
    let as_feed = config.as_feed.clone();
    inbound::run(&config, stop, |s: &InStats| {
        let (lag_seq, lag_ns) = inbound::lag(s);
        eprintln!(
            "in {as_feed}: link {}, {:.0} rec/s, last seq {}, lag {lag_seq} seq / {:.3} ms, {} gap fills ({} records), {} gone, {} reconnects, {} bad messages, {} dropped",
            if s.link_up.load(Ordering::Relaxed) == 1 {
                "up"
            } else {
                "down"
            },
            rate.per_sec(&s.records),
            s.last_seq.load(Ordering::Relaxed),
            lag_ns as f64 / 1e6,
            s.gap_fills.load(Ordering::Relaxed),
            s.filled_records.load(Ordering::Relaxed),
            s.gone.load(Ordering::Relaxed),
            s.reconnects.load(Ordering::Relaxed),
            s.bad_messages.load(Ordering::Relaxed),
            s.dropped_messages.load(Ordering::Relaxed),
        );
    })
}
