//! `mdbus import dbn`: recorded Databento DBN files into a feed's WAL.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use mdbus_dbn::{Clock, ImportOptions, Importer, SymbolSource};
use mdbus_publisher::{FeedConfig, FeedPublisher};
use mdbus_types::InstrumentId;
use mdbus_wal::WalOptions;

/// `mdbus import ...`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Databento DBN files (`.dbn`, `.dbn.zst`; DBN 1 to 3; mbp-10, mbp-1,
    /// tbbo, trades, mbo), merged in time order, into the WAL of a feed.
    /// Exit 0 when every file
    /// was imported, 1 when one could not be (what came before it is in
    /// the WAL, which stays valid), 2 on bad arguments.
    Dbn(DbnArgs),
}

/// Which DBN timestamp becomes `ts_event`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ClockArg {
    /// `ts_recv`, the capture server's receive time (in order in a file).
    TsRecv,
    /// `ts_event`, the venue's time.
    TsEvent,
}

/// Where symbols come from.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum SymbolArg {
    /// The file's symbology (instrument_id -> symbol by date).
    Metadata,
    /// The instrument id in decimal.
    InstrumentId,
}

/// Arguments of `mdbus import dbn`.
#[derive(Debug, Args)]
pub struct DbnArgs {
    /// The DBN files, merged in time order (`ts_recv`) as one recording:
    /// the books, MBO orders and volumes carry over from file to file.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Feed name (`[A-Za-z0-9_-]{1,32}`).
    #[arg(long)]
    feed: String,
    /// WAL root (segments go in `<wal>/<feed>/`).
    #[arg(long)]
    wal: PathBuf,
    /// Append to the feed's WAL when it already holds records (without it
    /// an existing WAL is refused: importing twice would double the data).
    #[arg(long)]
    append: bool,
    /// Which DBN timestamp is the records' `ts_event`.
    #[arg(long, value_enum, default_value_t = ClockArg::TsRecv)]
    clock: ClockArg,
    /// Where mdbus symbols (16 bytes at most) come from.
    #[arg(long, value_enum, default_value_t = SymbolArg::Metadata)]
    symbol_from: SymbolArg,
    /// The symbol of an instrument id, before any other source:
    /// `--alias 5482=ESH1` (repeatable).
    #[arg(long, value_parser = parse_alias)]
    alias: Vec<(u32, InstrumentId)>,
    /// WAL segment size in bytes (new segments).
    #[arg(long, default_value_t = mdbus_wal::DEFAULT_SEGMENT_BYTES)]
    segment_bytes: u64,
    /// Retention of the feed's WAL, applied at start and after each
    /// segment roll in a background thread (`--retain-bytes`,
    /// `--retain-age`; default: keep all), so that a big import does not
    /// fill the disk: the oldest segments go, the one holding the newest
    /// full snapshot set stays.
    #[command(flatten)]
    retain: crate::wal_cmd::RetainArgs,
}

fn parse_alias(text: &str) -> Result<(u32, InstrumentId), String> {
    let (id, symbol) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not ID=SYMBOL"))?;
    let id = id
        .trim()
        .parse::<u32>()
        .map_err(|e| format!("{id:?} in {text:?} is not an instrument id: {e}"))?;
    let symbol = InstrumentId::new(symbol.trim()).map_err(|e| e.to_string())?;
    Ok((id, symbol))
}

/// Runs `mdbus import ...`.
pub(crate) fn run(command: &ImportCommand) -> ExitCode {
    match command {
        ImportCommand::Dbn(args) => dbn(args),
    }
}

fn dbn(args: &DbnArgs) -> ExitCode {
    let location = match mdbus_types::WalLocation::try_new(&args.wal, &args.feed) {
        Ok(location) => location,
        Err(e) => {
            eprintln!("mdbus import dbn: --feed: {e}");
            return ExitCode::from(2);
        }
    };
    let has_segments = std::fs::read_dir(location.dir())
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "wal"))
        })
        .unwrap_or(false);
    if has_segments && !args.append {
        eprintln!(
            "mdbus import dbn: the WAL {location} already holds records: importing again would add them twice \
             (pass --append to add to it, or choose another --feed or --wal)"
        );
        return ExitCode::from(2);
    }
    let mut config = FeedConfig::new(&args.feed);
    config.wal_root = Some(args.wal.clone());
    config.wal = WalOptions::default().segment_bytes(args.segment_bytes);
    config.wal.retention = args.retain.policy();
    // The WAL keeps the data's time: its own heartbeats too.
    config.data_clock = true;
    // One clock reading per batch of records for their `ts_publish`.
    config.batch_clock = true;
    // No live subscriber: records go to the WAL alone.
    let publisher = match FeedPublisher::open(config, mdbus_transport::InProcBus::new(1).sender()) {
        Ok(publisher) => publisher,
        Err(e) => {
            // Another writer, permissions, the disk: not the arguments.
            eprintln!("mdbus import dbn: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = ImportOptions {
        clock: match args.clock {
            ClockArg::TsRecv => Clock::TsRecv,
            ClockArg::TsEvent => Clock::TsEvent,
        },
        symbols: match args.symbol_from {
            SymbolArg::Metadata => SymbolSource::Metadata,
            SymbolArg::InstrumentId => SymbolSource::InstrumentId,
        },
        aliases: args.alias.iter().copied().collect(),
    };
    let mut import = Importer::new(publisher, options);
    let start = Instant::now();
    let failed = import.import_files(&args.files).err();
    let seconds = start.elapsed().as_secs_f64();
    let (stats, publisher) = match import.finish() {
        Ok(done) => done,
        Err(e) => {
            eprintln!("mdbus import dbn: {e}");
            return ExitCode::FAILURE;
        }
    };
    let published = publisher.stats();
    drop(publisher);
    eprintln!(
        "imported {} DBN records from {} of {} files in {seconds:.2} s ({:.0} records/s) into feed {} (WAL {}): \
         {} ticks, {} snapshots, {} deltas, {} instruments ({} ids mapped to a new symbol on a later date), {} unknown MBO orders, {} orders resting; \
         {} records in the WAL with the publisher's snapshot sets and policy snapshots",
        stats.dbn_records,
        stats.files,
        args.files.len(),
        stats.dbn_records as f64 / seconds.max(1e-9),
        args.feed,
        args.wal.join(&args.feed).display(),
        stats.ticks,
        stats.snapshots,
        stats.deltas,
        stats.instruments,
        stats.remapped,
        stats.unknown_orders,
        stats.resting_orders,
        published.records,
    );
    match failed {
        Some(e) => {
            eprintln!("mdbus import dbn: {e}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}
