//! `mdbus snapshot`: the latest tick and book of instruments, read from the
//! snapshot board without subscribing.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mdbus_board::{BoardReader, DEFAULT_BOARD_DIR};
use mdbus_types::{BookSnapshot, InstrumentId, RecordRef, Tick, clock, json};

/// Arguments of `mdbus snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Feed name.
    #[arg(long)]
    feed: String,
    /// Instrument symbol; every instrument on the board when omitted.
    #[arg(long)]
    instrument: Option<String>,
    /// Print docs/spec.md's JSON form, one object per instrument.
    #[arg(long)]
    json: bool,
    /// Directory of the board file `mdbus.<feed>.board`.
    #[arg(long, default_value = DEFAULT_BOARD_DIR)]
    board_dir: PathBuf,
}

/// `{"instrument":..,"book":{..}|null,"tick":{..}|null}`.
pub(crate) fn entry_json(id: &InstrumentId, book: Option<&BookSnapshot>, tick: Option<&Tick>) -> String {
    let mut out = String::from("{\"instrument\":");
    out.push_str(&serde_json::Value::from(id.as_str()).to_string());
    out.push_str(",\"book\":");
    match book {
        Some(b) => json::write_record(&mut out, RecordRef::BookSnapshot(b)),
        None => out.push_str("null"),
    }
    out.push_str(",\"tick\":");
    match tick {
        Some(t) => json::write_record(&mut out, RecordRef::Tick(t)),
        None => out.push_str("null"),
    }
    out.push('}');
    out
}

fn print_human(id: &InstrumentId, book: Option<&BookSnapshot>, tick: Option<&Tick>) {
    println!("{id}");
    match tick {
        Some(t) => println!(
            "  last {} x {}  bid {} x {}  ask {} x {}  volume {}  (seq {})",
            t.last_px, t.last_qty, t.bid_px, t.bid_qty, t.ask_px, t.ask_qty, t.volume, t.header.seq
        ),
        None => println!("  no tick yet"),
    }
    match book {
        Some(b) => {
            println!("  book (seq {}):", b.header.seq);
            println!("  {:>20} {:>10} | {:<20} {:<10}", "bid", "qty", "ask", "qty");
            for i in 0..b.bid_levels().len().max(b.ask_levels().len()) {
                let bid = b.bid_levels().get(i);
                let ask = b.ask_levels().get(i);
                println!(
                    "  {:>20} {:>10} | {:<20} {:<10}",
                    bid.map_or(String::new(), |l| l.price.to_string()),
                    bid.map_or(String::new(), |l| l.qty.to_string()),
                    ask.map_or(String::new(), |l| l.price.to_string()),
                    ask.map_or(String::new(), |l| l.qty.to_string()),
                );
            }
        }
        None => println!("  no book yet"),
    }
}

pub(crate) fn run(args: &SnapshotArgs) -> ExitCode {
    let ids = match &args.instrument {
        Some(symbol) => match InstrumentId::new(symbol) {
            Ok(id) => Some(vec![id]),
            Err(e) => {
                eprintln!("mdbus snapshot: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let reader = match BoardReader::open(&args.board_dir, &args.feed) {
        Ok(reader) => reader,
        Err(e) => {
            eprintln!("mdbus snapshot: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.json {
        let status = reader.status();
        let age_ms = clock::now_ns().saturating_sub(status.heartbeat_ns) / 1_000_000;
        println!(
            "board {} feed {} epoch {} writer pid {} last seq {} heartbeat {} ms ago, {} of {} instruments",
            reader.path().display(),
            status.feed,
            status.epoch,
            status.writer_pid,
            status.last_seq,
            age_ms,
            status.count,
            status.capacity
        );
    }
    let ids = ids.unwrap_or_else(|| reader.instruments());
    for id in &ids {
        let Some(entry) = reader.entry(id) else {
            eprintln!(
                "mdbus snapshot: instrument {id} is not on the board of feed {} ({})",
                args.feed,
                reader.path().display()
            );
            return ExitCode::FAILURE;
        };
        let (book, tick) = (entry.book(), entry.tick());
        if args.json {
            println!("{}", entry_json(id, book.as_ref(), tick.as_ref()));
        } else {
            print_human(id, book.as_ref(), tick.as_ref());
        }
    }
    ExitCode::SUCCESS
}
