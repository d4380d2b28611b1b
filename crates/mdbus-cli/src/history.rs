//! `mdbus history` and `mdbus book-at`: questions about the past, answered
//! from the WAL (readable after the publisher has exited).

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use mdbus_subscriber::History;
use mdbus_types::{InstrumentId, RecordRef, WalLocation, json};

use crate::wal_cmd::{CSV_HEADER, Format, WalArgs, csv_line};

/// A time: ns since the Unix epoch, or RFC 3339 (`2026-11-25T14:00:00Z`,
/// fractions of a second allowed).
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ns) = text.parse::<i64>() {
        return Ok(ns);
    }
    let t = humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{text:?} is neither ns since the Unix epoch nor RFC 3339 ({e})"))?;
    let ns = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{text:?} is before the Unix epoch"))?
        .as_nanos();
    i64::try_from(ns).map_err(|_| format!("{text:?} is out of range"))
}

/// Arguments of `mdbus history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    source: WalArgs,
    /// Instrument symbol.
    #[arg(long)]
    instrument: String,
    /// From this `ts_event` (inclusive): ns since the epoch or RFC 3339.
    #[arg(long, value_parser = parse_time)]
    from: i64,
    /// To this `ts_event` (inclusive): ns since the epoch or RFC 3339.
    #[arg(long, value_parser = parse_time)]
    to: i64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
}

/// Arguments of `mdbus book-at`.
#[derive(Debug, Args)]
pub struct BookAtArgs {
    #[command(flatten)]
    source: WalArgs,
    /// Instrument symbol.
    #[arg(long)]
    instrument: String,
    /// The time: ns since the epoch or RFC 3339.
    #[arg(long, value_parser = parse_time)]
    at: i64,
    /// docs/spec.md's JSON form of the book.
    #[arg(long)]
    json: bool,
}

fn open(source: &WalArgs, instrument: &str, command: &str) -> Result<(History, InstrumentId), ExitCode> {
    let id = InstrumentId::new(instrument).map_err(|e| {
        eprintln!("mdbus {command}: {e}");
        ExitCode::from(2)
    })?;
    let wal = WalLocation::try_new(&source.wal, &source.feed).map_err(|e| {
        eprintln!("mdbus {command}: {e}");
        ExitCode::from(2)
    })?;
    let history = History::open(wal);
    Ok((history, id))
}

pub(crate) fn history(args: &HistoryArgs) -> ExitCode {
    if args.from > args.to {
        eprintln!("mdbus history: --from {} is after --to {}", args.from, args.to);
        return ExitCode::from(2);
    }
    let (history, id) = match open(&args.source, &args.instrument, "history") {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let ticks = match history.ticks(&id, args.from, args.to) {
        Ok(ticks) => ticks,
        Err(e) => {
            eprintln!("mdbus history: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = String::with_capacity(256);
    if args.format == Format::Csv {
        let _ = writeln!(out, "{CSV_HEADER}");
    }
    for tick in &ticks {
        line.clear();
        match args.format {
            Format::Json => json::write_record(&mut line, RecordRef::Tick(tick)),
            Format::Csv => csv_line(&mut line, RecordRef::Tick(tick)),
        }
        line.push('\n');
        if out.write_all(line.as_bytes()).is_err() {
            return ExitCode::SUCCESS;
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}

pub(crate) fn book_at(args: &BookAtArgs) -> ExitCode {
    let (history, id) = match open(&args.source, &args.instrument, "book-at") {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let book = match history.book_at(&id, args.at) {
        Ok(Some(book)) => book,
        Ok(None) => {
            eprintln!(
                "mdbus book-at: no book of {id} at or before {} in feed {}",
                args.at, args.source.feed
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("mdbus book-at: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        println!("{}", json::record_to_json(RecordRef::BookSnapshot(&book)));
    } else {
        println!(
            "{id} at {} (last change seq {}, ts_event {})",
            args.at, book.header.seq, book.header.ts_event
        );
        println!("  {:>20} {:>10} | {:<20} {:<10}", "bid", "qty", "ask", "qty");
        for i in 0..book.bid_levels().len().max(book.ask_levels().len()) {
            let (bid, ask) = (book.bid_levels().get(i), book.ask_levels().get(i));
            println!(
                "  {:>20} {:>10} | {:<20} {:<10}",
                bid.map_or(String::new(), |l| l.price.to_string()),
                bid.map_or(String::new(), |l| l.qty.to_string()),
                ask.map_or(String::new(), |l| l.price.to_string()),
                ask.map_or(String::new(), |l| l.qty.to_string()),
            );
        }
    }
    ExitCode::SUCCESS
}
