//! `mdbus wal verify`, `mdbus wal inspect` and `mdbus replay`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use mdbus_types::{InstrumentId, RecordRef, json};
use mdbus_wal::{ReadEvent, ReadFrom, ReadOptions, WalReader};

/// `mdbus wal ...`.
#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// Checks every frame of a feed's WAL. Exit 0 clean, 1 corruption,
    /// 3 only a torn tail in the newest segment (the next writer open cuts
    /// it), 2 usage error. One line per problem: file, offset, what.
    Verify(WalArgs),
    /// One line per segment: file, seq and ts_event ranges, frames, bytes
    /// used/allocated, whether it holds a full snapshot set.
    Inspect(InspectArgs),
    /// Deletes a feed's oldest segments while the WAL is over
    /// `--retain-bytes` or they are older than `--retain-age`; never the segment holding the
    /// newest full snapshot set, nor any newer one. Safe while the
    /// publisher and readers run.
    Prune(PruneArgs),
}

/// Arguments of `mdbus wal prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    wal: WalArgs,
    #[command(flatten)]
    retain: RetainArgs,
}

/// How much WAL to keep (`mdbus publish`, `mdbus play`, `mdbus import
/// dbn`, `mdbus wal prune`).
#[derive(Debug, Clone, Args)]
pub(crate) struct RetainArgs {
    /// Keep the feed's WAL under this size ("2GiB", "500MB", bytes):
    /// whole segments are deleted, oldest first.
    #[arg(long = "retain-bytes", alias = "max-bytes", value_parser = parse_size)]
    pub(crate) max_bytes: Option<u64>,
    /// Delete segments whose records are all older than this ("7d",
    /// "12h 30m").
    #[arg(long = "retain-age", alias = "max-age", value_parser = humantime::parse_duration)]
    pub(crate) max_age: Option<std::time::Duration>,
}

impl RetainArgs {
    /// The policy, `None` when neither limit is given.
    pub(crate) fn policy(&self) -> Option<mdbus_wal::RetentionPolicy> {
        (self.max_bytes.is_some() || self.max_age.is_some()).then_some(mdbus_wal::RetentionPolicy {
            max_bytes: self.max_bytes,
            max_age: self.max_age,
        })
    }
}

/// A size: bytes, or with a unit ("2GiB", "500MB", "64 MiB").
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("{text:?} is not a size (bytes, or e.g. 2GiB, 500MB): {e}"))
}

/// Where a feed's WAL is.
#[derive(Debug, Args)]
pub struct WalArgs {
    /// WAL directory (the feed's segments are in `<wal>/<feed>/`).
    #[arg(long)]
    pub(crate) wal: PathBuf,
    /// Feed name.
    #[arg(long)]
    pub(crate) feed: String,
}

/// Arguments of `mdbus wal inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    wal: WalArgs,
    /// One JSON object per segment.
    #[arg(long)]
    json: bool,
}

/// Output format of `mdbus replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// docs/spec.md's JSON form, one object per line.
    Json,
    /// CSV with a header line; book levels as JSON arrays in quoted cells.
    Csv,
}

/// Arguments of `mdbus replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    wal: WalArgs,
    /// Start at this seq.
    #[arg(long, conflicts_with = "from_ts")]
    from_seq: Option<u64>,
    /// Start at the first record with ts_event at or after this (ns since
    /// the Unix epoch).
    #[arg(long)]
    from_ts: Option<i64>,
    /// Only records of this instrument (heartbeats are left out).
    #[arg(long)]
    instrument: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// On a bad frame, resync at the next plausible frame and report the
    /// skipped bytes and seqs on stderr instead of stopping.
    #[arg(long)]
    skip_corrupt: bool,
}

pub(crate) fn run_wal(command: &WalCommand) -> ExitCode {
    match command {
        WalCommand::Verify(args) => verify(args),
        WalCommand::Inspect(args) => inspect(args),
        WalCommand::Prune(args) => prune(args),
    }
}

fn prune(args: &PruneArgs) -> ExitCode {
    let Some(policy) = args.retain.policy() else {
        eprintln!("mdbus wal prune: nothing to do: pass --retain-bytes or --retain-age");
        return ExitCode::from(2);
    };
    match mdbus_wal::apply_retention(&args.wal.wal, &args.wal.feed, &policy) {
        Ok(report) => {
            for path in &report.deleted {
                println!("deleted {}", path.display());
            }
            println!(
                "{} segments deleted ({} bytes freed); {} segments kept ({} bytes){}",
                report.deleted.len(),
                report.freed_bytes,
                report.kept,
                report.kept_bytes,
                report
                    .protected_from
                    .as_ref()
                    .map(|p| format!("; {} and newer are kept (where recovery starts)", p.display()))
                    .unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mdbus wal prune: {e}");
            ExitCode::FAILURE
        }
    }
}

fn verify(args: &WalArgs) -> ExitCode {
    let report = match mdbus_wal::verify(&args.wal, &args.feed) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("mdbus wal verify: {e}");
            return ExitCode::from(2);
        }
    };
    for problem in &report.problems {
        println!("{problem}");
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    let code = report.exit_code();
    println!(
        "{}: {} segments, {} records, {}",
        report.feed_dir.display(),
        report.segments.len(),
        report.records,
        match code {
            0 => "clean",
            3 => "torn tail in the newest segment (the next writer open cuts it)",
            _ => "CORRUPT",
        }
    );
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn inspect(args: &InspectArgs) -> ExitCode {
    let segments = match mdbus_wal::inspect(&args.wal.wal, &args.wal.feed) {
        Ok(segments) => segments,
        Err(e) => {
            eprintln!("mdbus wal inspect: {e}");
            return ExitCode::from(2);
        }
    };
    for seg in &segments {
        if args.json {
            let value = serde_json::json!({
                "file": seg.path.display().to_string(),
                "first_seq": seg.first_seq,
                "last_seq": seg.last_seq,
                "first_ts_event": seg.first_ts_event,
                "last_ts_event": seg.last_ts_event,
                "frames": seg.frames,
                "bytes_used": seg.bytes_used,
                "bytes_allocated": seg.bytes_allocated,
                "full_snapshot_set": seg.has_full_snapshot_set(),
                "problems": seg.problems,
            });
            println!("{value}");
        } else {
            println!("{seg}");
        }
    }
    ExitCode::SUCCESS
}

pub(crate) const CSV_HEADER: &str = "seq,kind,instrument,ts_event,ts_publish,flags,last_px,last_qty,bid_px,bid_qty,ask_px,ask_qty,volume,side,price,qty,bids,asks";

/// One CSV line of a record (prices as exact decimals, NULL empty).
pub(crate) fn csv_line(out: &mut String, record: RecordRef<'_>) {
    use std::fmt::Write as _;
    let h = record.header();
    let px = |p: mdbus_types::Price| if p.is_null() { String::new() } else { p.to_string() };
    let instrument = record.instrument().map_or(String::new(), |i| {
        let s = i.as_str();
        if s.contains([',', '"']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    });
    let _ = write!(
        out,
        "{},{},{},{},{},{}",
        h.seq,
        record.kind().json_name(),
        instrument,
        h.ts_event,
        h.ts_publish,
        h.flags
    );
    match record {
        RecordRef::Tick(t) => {
            let _ = write!(
                out,
                ",{},{},{},{},{},{},{},,,,,",
                px(t.last_px),
                t.last_qty,
                px(t.bid_px),
                t.bid_qty,
                px(t.ask_px),
                t.ask_qty,
                t.volume
            );
        }
        RecordRef::BookSnapshot(s) => {
            let levels = |ls: &[mdbus_types::Level]| {
                let inner: Vec<String> = ls.iter().map(|l| format!("[{},{}]", l.price, l.qty)).collect();
                format!("\"[{}]\"", inner.join(","))
            };
            let _ = write!(out, ",,,,,,,,,,,{},{}", levels(s.bid_levels()), levels(s.ask_levels()));
        }
        RecordRef::BookDelta(d) => {
            let side = if d.side == 0 { "bid" } else { "ask" };
            let _ = write!(out, ",,,,,,,,{side},{},{},,", px(d.price), d.qty);
        }
        RecordRef::Heartbeat(_) => out.push_str(",,,,,,,,,,,,"),
    }
}

/// A torn tail of the newest segment (what a crashed writer leaves; the
/// next writer open cuts it) is reported and exits 0: every valid record
/// was printed. Corruption exits 1. Both name the file and offset.
fn replay_error(args: &ReplayArgs, error: &mdbus_wal::Error) -> ExitCode {
    let torn_tail_only = matches!(error, mdbus_wal::Error::Corrupt { .. })
        && mdbus_wal::verify(&args.wal.wal, &args.wal.feed).is_ok_and(|r| r.exit_code() == 3);
    if torn_tail_only {
        eprintln!("mdbus replay: stopped at a torn tail (the next writer open cuts it): {error}");
        ExitCode::SUCCESS
    } else {
        eprintln!("mdbus replay: {error}");
        ExitCode::FAILURE
    }
}

pub(crate) fn replay(args: &ReplayArgs) -> ExitCode {
    let instrument = match args.instrument.as_deref().map(InstrumentId::new).transpose() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("mdbus replay: {e}");
            return ExitCode::from(2);
        }
    };
    let from = match (args.from_seq, args.from_ts) {
        (Some(seq), _) => ReadFrom::Seq(seq),
        (None, Some(ts)) => ReadFrom::Time(ts),
        (None, None) => ReadFrom::Start,
    };
    let options = ReadOptions {
        from,
        skip_corrupt: args.skip_corrupt,
    };
    let mut reader = match WalReader::open(&args.wal.wal, &args.wal.feed, options) {
        Ok(reader) => reader,
        Err(e) => {
            eprintln!("mdbus replay: {e}");
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut line = String::with_capacity(512);
    if args.format == Format::Csv {
        let _ = writeln!(out, "{CSV_HEADER}");
    }
    let mut skipped = 0;
    loop {
        let event = match reader.next_event() {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(e) => {
                let _ = out.flush();
                return replay_error(args, &e);
            }
        };
        let record = match event {
            ReadEvent::Record(r) => r.record,
            ReadEvent::Skipped(range) => {
                skipped += 1;
                let _ = out.flush();
                eprintln!("mdbus replay: {range}");
                continue;
            }
        };
        if instrument.is_some() && record.instrument() != instrument {
            continue;
        }
        line.clear();
        match args.format {
            Format::Json => json::write_record(&mut line, record),
            Format::Csv => csv_line(&mut line, record),
        }
        line.push('\n');
        if out.write_all(line.as_bytes()).is_err() {
            // A closed pipe (`| head`): stop quietly.
            return ExitCode::SUCCESS;
        }
    }
    let _ = out.flush();
    if skipped > 0 {
        eprintln!("mdbus replay: skipped {skipped} corrupt range(s)");
    }
    ExitCode::SUCCESS
}
