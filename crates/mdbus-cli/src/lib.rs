//! The `mdbus` command line (clap derive).
//!
//! Every subcommand has `--help`; bad arguments get a clear message and
//! exit code 2.

#[cfg(all(feature = "bridge", feature = "iceoryx2"))]
mod bridge;
mod config;
mod demo;
mod gateway;
mod history;
#[cfg(feature = "dbn")]
mod import;
mod metrics;
mod play;
mod publish;
mod snapshot;
mod subscribe;
mod transport;
mod wal_cmd;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Parser, Subcommand};

/// mdbus: a zero-copy shared-memory market-data bus.
#[derive(Debug, Parser)]
#[command(name = "mdbus", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One process: synthetic publisher -> in-process bus -> a subscriber
    /// keeping a latest-value cache; a status line per second.
    Demo(demo::DemoArgs),
    /// Publishes a feed into its WAL, the transport and the snapshot board.
    #[command(args_override_self = true)]
    Publish(publish::PublishArgs),
    /// Prints the live stream of a feed (iceoryx2), a line or a JSON object
    /// per record with its latency, and a latency summary.
    Subscribe(subscribe::SubscribeArgs),
    /// A live view of a feed, refreshed each second: records/s,
    /// publishers, subscribers, holes, latency p50/p99 (iceoryx2).
    Stats(subscribe::StatsArgs),
    /// The latest tick and top-10 book of instruments, from the snapshot
    /// board (no subscription).
    Snapshot(snapshot::SnapshotArgs),
    /// Write-ahead log tools.
    #[command(subcommand)]
    Wal(wal_cmd::WalCommand),
    /// Prints the records of a feed's WAL, one per line (JSON or CSV).
    Replay(wal_cmd::ReplayArgs),
    /// Ticks of an instrument in a time range, from the WAL.
    History(history::HistoryArgs),
    /// The top-10 book of an instrument as it was at a time, from the WAL.
    BookAt(history::BookAtArgs),
    /// Imports recorded market data into a feed's WAL.
    #[cfg(feature = "dbn")]
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Publishes a recorded WAL again as a live feed, paced by its
    /// `ts_event` (1x, Nx or as fast as possible), ending with an
    /// end-of-recording heartbeat.
    Play(play::PlayArgs),
    /// Replicates a feed to another host over Zenoh: `out` on the source
    /// host, `in` on each receiving host.
    #[cfg(all(feature = "bridge", feature = "iceoryx2"))]
    #[command(subcommand)]
    Bridge(bridge::BridgeCommand),
    /// Serves a feed over WebSocket (`/ws`) with a live depth page (`/`)
    /// and counters (`/stats`); replay-merge from the WAL, then live.
    #[command(args_override_self = true)]
    Gateway(gateway::GatewayArgs),
}

/// `--cpu N` of a subcommand: pins the calling thread (before it starts
/// other threads, which inherit the pin); a CPU this process may not use
/// is a bad argument (exit 2), named.
fn pin(cpu: Option<usize>, command: &str) -> Result<(), ExitCode> {
    match cpu.map(mdbus_types::affinity::pin_current_thread) {
        Some(Err(e)) => {
            eprintln!("mdbus {command}: --cpu: {e}");
            Err(ExitCode::from(2))
        }
        _ => Ok(()),
    }
}

/// SIGINT and SIGTERM of a command that runs until stopped (`publish`,
/// `gateway`; a service manager stops it with SIGTERM): the first one sets
/// the returned flag, which the command's loop checks between two pieces
/// of work to end cleanly and exit 0; a second one while the flag is set
/// ends the process at once with status 1 (a shutdown that hangs, an
/// operator's second Ctrl-C). `Err` is the exit code when a handler cannot
/// be installed (the message is printed).
fn stop_on_signals(command: &str) -> Result<Arc<AtomicBool>, ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The shutdown goes first: the actions of a signal run in the order
        // registered, so only a signal that finds the flag already set by
        // an earlier one exits.
        let registered = signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)));
        if let Err(e) = registered {
            eprintln!("mdbus {command}: cannot handle signal {signal}: {e}");
            return Err(ExitCode::FAILURE);
        }
    }
    Ok(stop)
}

/// Parses the process arguments and runs the subcommand; the exit code is
/// 0 on success, 1 on a runtime error, 2 on bad arguments. Call it first
/// in a process's `main`, before any thread starts: `mdbus bridge` sets
/// `ZENOH_RUNTIME` in the environment.
pub fn main() -> ExitCode {
    // `--config FILE` (publish, gateway): the file's settings go in front
    // of the command line's flags, which override them.
    let args = match config::expand(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(e) => {
            let command = std::env::args().nth(1).unwrap_or_default();
            eprintln!("mdbus {command}: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            return ExitCode::from(code.clamp(0, 255) as u8);
        }
    };
    #[cfg(feature = "iceoryx2")]
    mdbus_transport::iceoryx::init_logging();
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Publish(args) => publish::run(&args),
        Command::Snapshot(args) => snapshot::run(&args),
        Command::Subscribe(args) => subscribe::run(&args),
        Command::Stats(args) => subscribe::stats(&args),
        Command::Wal(command) => wal_cmd::run_wal(&command),
        Command::Replay(args) => wal_cmd::replay(&args),
        Command::History(args) => history::history(&args),
        Command::BookAt(args) => history::book_at(&args),
        Command::Gateway(args) => gateway::run(&args),
        Command::Play(args) => play::run(&args),
        #[cfg(feature = "dbn")]
        Command::Import(command) => import::run(&command),
        #[cfg(all(feature = "bridge", feature = "iceoryx2"))]
        Command::Bridge(command) => bridge::run(&command),
    }
}
