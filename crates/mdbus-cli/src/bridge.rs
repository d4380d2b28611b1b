//! `mdbus bridge`: a feed replicated to another host over Zenoh (issue 15).
//! `out` on the source host, `in` on each receiving host; a status line
//! per second on stderr and in a status file (`mdbus bridge status`
//! reads it); SIGINT or SIGTERM stops either.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Args, Subcommand};
use mdbus_board::DEFAULT_BOARD_DIR;
use mdbus_bridge::inbound::{self, InConfig, InStats};
use mdbus_bridge::out::{self, OutConfig, OutStats};
use mdbus_bridge::status::{self, InStatus, OutStatus, Rate, Side};
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
    /// The status of the bridges of a feed on this host (from the files
    /// they rewrite each second): link state, lag behind the source (seq
    /// and time), records/s, gap fills, reconnects. Exit code 0 when a
    /// bridge of the feed is running, 1 when none is.
    Status(StatusArgs),
}

/// Arguments of `mdbus bridge status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The feed: the local (`--as`) name of a `bridge in`, the source name
    /// of a `bridge out`.
    #[arg(long)]
    feed: String,
    /// Where the bridges write their status files.
    #[arg(long, default_value = DEFAULT_BOARD_DIR)]
    status_dir: PathBuf,
    /// One JSON object `{"in": .., "out": ..}` (each `null` when absent),
    /// each with `running`.
    #[arg(long)]
    json: bool,
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
    /// Where to rewrite the status file each second
    /// (`mdbus.<feed>.bridge-out.json`).
    #[arg(long, default_value = DEFAULT_BOARD_DIR)]
    status_dir: PathBuf,
    /// Microseconds a Zenoh message may wait for more records after its
    /// first (0: sent once the burst at hand is drained). Fewer, larger
    /// messages cost both bridges less CPU and add up to this much
    /// latency.
    #[arg(long, default_value_t = 0, value_name = "US")]
    linger_us: u64,
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
    /// Where to rewrite the status file each second
    /// (`mdbus.<as>.bridge-in.json`).
    #[arg(long, default_value = DEFAULT_BOARD_DIR)]
    status_dir: PathBuf,
}

/// Runs `mdbus bridge ...`.
pub(crate) fn run(command: &BridgeCommand) -> ExitCode {
    if let BridgeCommand::Status(args) = command {
        return show_status(args);
    }
    if std::env::var_os("ZENOH_RUNTIME").is_none() {
        // SAFETY: `set_var` is unsafe only while another thread may read
        // or write the environment. None runs yet: `crate::main`, called
        // first in the process's `main` (its documented contract), parsed
        // the arguments and set iceoryx2's log level on this thread,
        // neither starts a thread, and Zenoh's runtimes (which read the variable),
        // the bridge's own and the WAL's threads all start below.
        unsafe { std::env::set_var("ZENOH_RUNTIME", mdbus_bridge::ZENOH_RUNTIME) };
    }
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
        BridgeCommand::Status(_) => unreachable!("handled above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mdbus bridge: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reports a failed write of a status file once, not each second.
fn status_written(path: &Path, written: std::io::Result<()>, warned: &mut bool) {
    if let Err(e) = written
        && !std::mem::replace(warned, true)
    {
        eprintln!("mdbus bridge: cannot write the status file {}: {e}", path.display());
    }
}

fn run_out(args: &OutArgs, stop: &AtomicBool) -> Result<(), mdbus_bridge::Error> {
    let mut config = OutConfig::new(&args.feed);
    config.listen = args.listen.clone();
    config.connect = args.connect.clone();
    config.wal_root = args.wal.clone();
    config.linger = Duration::from_micros(args.linger_us);
    eprintln!(
        "mdbus bridge out: feed {} on listen {:?} connect {:?}",
        args.feed, args.listen, args.connect
    );
    let path = status::status_path(&args.status_dir, &args.feed, Side::Out);
    let (mut rate, mut warned, mut last) = (Rate::default(), false, None);
    let result = out::run(&config, stop, |s: &OutStats| {
        let now = OutStatus::new(&args.feed, s, &mut rate);
        eprintln!("{}", now.line());
        status_written(&path, status::write(&path, &now), &mut warned);
        last = Some(now);
    });
    if let Some(mut last) = last {
        last.stopped = true;
        status_written(&path, status::write(&path, &last), &mut warned);
    }
    result
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
    let path = status::status_path(&args.status_dir, &config.as_feed, Side::In);
    let (mut rate, mut warned, mut last) = (Rate::default(), false, None);
    let result = inbound::run(&config, stop, |s: &InStats| {
        let now = InStatus::new(&config.feed, &config.as_feed, s, &mut rate);
        eprintln!("{}", now.line());
        status_written(&path, status::write(&path, &now), &mut warned);
        last = Some(now);
    });
    if let Some(mut last) = last {
        last.stopped = true;
        status_written(&path, status::write(&path, &last), &mut warned);
    }
    result
}

/// `mdbus bridge status`.
fn show_status(args: &StatusArgs) -> ExitCode {
    let in_path = status::status_path(&args.status_dir, &args.feed, Side::In);
    let out_path = status::status_path(&args.status_dir, &args.feed, Side::Out);
    let (inbound, outbound) = match (status::read::<InStatus>(&in_path), status::read::<OutStatus>(&out_path)) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("mdbus bridge status: {e}");
            return ExitCode::FAILURE;
        }
    };
    let in_running = inbound
        .as_ref()
        .is_some_and(|s| status::running(s.pid, s.updated_ns, s.stopped));
    let out_running = outbound
        .as_ref()
        .is_some_and(|s| status::running(s.pid, s.updated_ns, s.stopped));
    if args.json {
        let with_running = |value: serde_json::Value, running: bool| match value {
            serde_json::Value::Object(mut map) => {
                map.insert("running".into(), running.into());
                serde_json::Value::Object(map)
            }
            other => other,
        };
        let json = serde_json::json!({
            "in": inbound.as_ref().map(|s| with_running(serde_json::to_value(s).unwrap_or_default(), in_running)),
            "out": outbound.as_ref().map(|s| with_running(serde_json::to_value(s).unwrap_or_default(), out_running)),
        });
        println!("{json}");
    } else {
        let state = |running: bool, pid: u32, updated_ns: i64, stopped: bool| {
            let ago = (mdbus_types::clock::now_ns() - updated_ns) as f64 / 1e9;
            match (running, stopped) {
                (true, _) => format!("running (pid {pid}, updated {ago:.1} s ago)"),
                (false, true) => format!("stopped (pid {pid}, {ago:.1} s ago)"),
                (false, false) => format!("not running (pid {pid} last updated {ago:.1} s ago)"),
            }
        };
        if let Some(s) = &inbound {
            println!("{}\n  {}", state(in_running, s.pid, s.updated_ns, s.stopped), s.line());
        }
        if let Some(s) = &outbound {
            println!("{}\n  {}", state(out_running, s.pid, s.updated_ns, s.stopped), s.line());
        }
        if inbound.is_none() && outbound.is_none() {
            println!(
                "no bridge status for feed {} in {}",
                args.feed,
                args.status_dir.display()
            );
        }
    }
    if in_running || out_running {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
