//! An mdbus feed subscriber written from docs/spec.md alone ("Records", "Wire names (iceoryx2)",
//! "JSON form"), compiled outside the mdbus workspace and without any mdbus crate.
//!
//! Usage: `mdbus-external-client <feed> <count> [--open-timeout SECS] [--recv-timeout SECS] [--allow-gaps]`
//!
//! Opens the iceoryx2 service `mdbus/<feed>/md` (retrying until `--open-timeout` while it does not
//! exist yet), receives `count` samples, decodes and checks each record, and prints one JSON object
//! per record on stdout in docs/spec.md's JSON form. Exit 0 when all `count` records were good; any
//! rule violation, a lost record (unless `--allow-gaps`) or a timeout prints a message on stderr
//! and exits 1. Usage errors exit 2.
//!
//! Length (~550 lines): one file on purpose, so an outsider reads the whole
//! client written from the spec in one place.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use iceoryx2::prelude::*;
use iceoryx2::service::builder::publish_subscribe::PublishSubscribeOpenError;

/// docs/spec.md: `MdSample (376) | 0 | 376 | words | [u64; 47]`, type name `mdbus::v1::MdSample`.
#[repr(C)]
#[derive(Debug, ZeroCopySend)]
#[type_name("mdbus::v1::MdSample")]
struct MdSample {
    words: [u64; 47],
}

const SAMPLE_SIZE: usize = 376;
const _: () = assert!(size_of::<MdSample>() == SAMPLE_SIZE && align_of::<MdSample>() == 8);

// Settings the publisher creates the service with; an opener asks for no more (they are minimums).
const SUBSCRIBER_MAX_BUFFER_SIZE: usize = 4096;
const SUBSCRIBER_MAX_BORROWED_SAMPLES: usize = 8;
const MAX_SUBSCRIBERS: usize = 16;
const MAX_PUBLISHERS: usize = 2;
const MAX_NODES: usize = 64;
const HISTORY_SIZE: usize = 0;

const PRICE_NULL: i64 = i64::MAX;
const LEVELS: usize = 10;

const KIND_TICK: u16 = 1;
const KIND_BOOK_SNAPSHOT: u16 = 2;
const KIND_BOOK_DELTA: u16 = 3;
const KIND_HEARTBEAT: u16 = 4;

const FLAG_END_OF_BATCH: u16 = 1 << 0;
const FLAG_RECOVERY_SNAPSHOT: u16 = 1 << 1;

// Record sizes (docs/spec.md's table).
const TICK_SIZE: usize = 104;
const BOOK_SNAPSHOT_SIZE: usize = 376;
const BOOK_DELTA_SIZE: usize = 72;
const HEARTBEAT_SIZE: usize = 32;

struct Args {
    feed: String,
    count: u64,
    open_timeout: Duration,
    recv_timeout: Duration,
    allow_gaps: bool,
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("mdbus-external-client: {msg}");
    eprintln!("usage: mdbus-external-client <feed> <count> [--open-timeout SECS] [--recv-timeout SECS] [--allow-gaps]");
    ExitCode::from(2)
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut open_timeout = Duration::from_secs(30);
    let mut recv_timeout = Duration::from_secs(10);
    let mut allow_gaps = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--open-timeout" | "--recv-timeout" => {
                let v = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
                let secs: f64 = v.parse().map_err(|_| format!("{arg}: not a number: {v:?}"))?;
                let d = Duration::try_from_secs_f64(secs).map_err(|e| format!("{arg}: {e}"))?;
                if arg == "--open-timeout" {
                    open_timeout = d;
                } else {
                    recv_timeout = d;
                }
            }
            "--allow-gaps" => allow_gaps = true,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => positional.push(arg),
        }
    }
    let [feed, count] = <[String; 2]>::try_from(positional).map_err(|_| "expected <feed> <count>".to_string())?;
    let feed_ok = (1..=32).contains(&feed.len())
        && feed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !feed_ok {
        return Err(format!(
            "invalid feed name {feed:?}: 1 to 32 characters of [A-Za-z0-9_-]"
        ));
    }
    let count = count.parse().map_err(|_| format!("invalid count {count:?}"))?;
    Ok(Args {
        feed,
        count,
        open_timeout,
        recv_timeout,
        allow_gaps,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    set_log_level(LogLevel::Error);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mdbus-external-client: feed {}: {e}", args.feed);
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let node = NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(|e| format!("cannot create iceoryx2 node: {e:?}"))?;
    let service_name = format!("mdbus/{}/md", args.feed);
    let name: ServiceName = service_name
        .as_str()
        .try_into()
        .map_err(|e| format!("invalid service name {service_name}: {e:?}"))?;

    let deadline = Instant::now() + args.open_timeout;
    let service = loop {
        let opened = node
            .service_builder(&name)
            .publish_subscribe::<MdSample>()
            .user_header::<()>()
            .enable_safe_overflow(true)
            .subscriber_max_buffer_size(SUBSCRIBER_MAX_BUFFER_SIZE)
            .subscriber_max_borrowed_samples(SUBSCRIBER_MAX_BORROWED_SAMPLES)
            .max_subscribers(MAX_SUBSCRIBERS)
            .max_publishers(MAX_PUBLISHERS)
            .max_nodes(MAX_NODES)
            .history_size(HISTORY_SIZE)
            .open();
        match opened {
            Ok(s) => break s,
            Err(
                e @ (PublishSubscribeOpenError::DoesNotExist
                | PublishSubscribeOpenError::HangsInCreation
                | PublishSubscribeOpenError::ServiceInCorruptedState),
            ) => {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "cannot open service {service_name} within {:?}: {e:?}",
                        args.open_timeout
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("cannot open service {service_name}: {e:?}")),
        }
    };
    let subscriber = service
        .subscriber_builder()
        .create()
        .map_err(|e| format!("cannot create a subscriber on {service_name}: {e:?}"))?;

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut checker = Checker::default();
    let mut line = String::with_capacity(1024);
    let mut received = 0u64;
    let mut last_progress = Instant::now();
    while received < args.count {
        let sample = subscriber
            .receive()
            .map_err(|e| format!("receive on {service_name}: {e:?}"))?;
        let Some(sample) = sample else {
            out.flush().map_err(|e| format!("stdout: {e}"))?;
            if last_progress.elapsed() > args.recv_timeout {
                return Err(format!(
                    "received {received} of {} records; nothing for {:?}",
                    args.count, args.recv_timeout
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
            continue;
        };
        last_progress = Instant::now();
        let mut bytes = [0u8; SAMPLE_SIZE];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(sample.payload().words.iter()) {
            // The words hold the record's bytes as they are in memory.
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        drop(sample);
        line.clear();
        let seq =
            decode(&bytes, &mut line).map_err(|e| format!("record #{} (0-based) of the stream: {e}", received))?;
        checker.next(seq, args.allow_gaps)?;
        line.push('\n');
        out.write_all(line.as_bytes()).map_err(|e| format!("stdout: {e}"))?;
        received += 1;
    }
    out.flush().map_err(|e| format!("stdout: {e}"))?;
    if checker.lost > 0 {
        eprintln!(
            "mdbus-external-client: feed {}: {} records lost (seq holes)",
            args.feed, checker.lost
        );
    }
    Ok(())
}

/// Seq rules: starts at 1, +1 per record; with safe overflow a slow subscriber may lose records
/// (a hole), but seq never repeats or goes back.
#[derive(Default)]
struct Checker {
    last: Option<u64>,
    lost: u64,
}

impl Checker {
    fn next(&mut self, seq: u64, allow_gaps: bool) -> Result<(), String> {
        if let Some(last) = self.last {
            if seq <= last {
                return Err(format!("seq {seq} after seq {last}: seq must increase"));
            }
            if seq != last + 1 {
                if !allow_gaps {
                    return Err(format!("seq {seq} after seq {last}: {} records lost", seq - last - 1));
                }
                self.lost += seq - last - 1;
            }
        }
        self.last = Some(seq);
        Ok(())
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

fn i64_at(b: &[u8], off: usize) -> i64 {
    i64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

fn check_zero(b: &[u8], from: usize, to: usize, what: &str) -> Result<(), String> {
    match b[from..to].iter().position(|&x| x != 0) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}: byte at offset {} is {:#04x}, must be zero",
            from + i,
            b[from + i]
        )),
    }
}

/// Decodes the record at offset 0 of `b` (a whole sample), checks the rules, appends its JSON
/// object to `out` and returns its seq.
fn decode(b: &[u8; SAMPLE_SIZE], out: &mut String) -> Result<u64, String> {
    // RecordHeader (32)
    let seq = u64_at(b, 0);
    let ts_event = i64_at(b, 8);
    let ts_publish = i64_at(b, 16);
    let kind = u16_at(b, 24);
    let flags = u16_at(b, 26);
    let ctx = |m: String| format!("seq {seq} kind {kind}: {m}");
    if seq == 0 {
        return Err(ctx("seq 0 (seqs start at 1)".into()));
    }
    if flags & !(FLAG_END_OF_BATCH | FLAG_RECOVERY_SNAPSHOT) != 0 {
        return Err(ctx(format!("flags {flags:#06x} has unknown bits")));
    }
    check_zero(b, 28, 32, "header _pad").map_err(ctx)?;

    let (size, kind_name) = match kind {
        KIND_TICK => (TICK_SIZE, "tick"),
        KIND_BOOK_SNAPSHOT => (BOOK_SNAPSHOT_SIZE, "book_snapshot"),
        KIND_BOOK_DELTA => (BOOK_DELTA_SIZE, "book_delta"),
        KIND_HEARTBEAT => (HEARTBEAT_SIZE, "heartbeat"),
        _ => return Err(ctx("unknown kind".into())),
    };
    check_zero(b, size, SAMPLE_SIZE, "sample tail after the record").map_err(ctx)?;

    let _ = write!(out, "{{\"seq\":{seq},\"kind\":\"{kind_name}\"");
    if kind != KIND_HEARTBEAT {
        let sym = symbol(&b[32..48]).map_err(ctx)?;
        out.push_str(",\"instrument\":");
        json_str(out, sym);
    }
    let _ = write!(
        out,
        ",\"ts_event\":{ts_event},\"ts_publish\":{ts_publish},\"flags\":{flags}"
    );

    match kind {
        KIND_TICK => {
            let last_px = i64_at(b, 48);
            let last_qty = i64_at(b, 56);
            let bid_px = i64_at(b, 64);
            let bid_qty = i64_at(b, 72);
            let ask_px = i64_at(b, 80);
            let ask_qty = i64_at(b, 88);
            let volume = i64_at(b, 96);
            if bid_px == PRICE_NULL && bid_qty != 0 {
                return Err(ctx(format!(
                    "tick with an empty bid side has bid_qty {bid_qty}, must be 0"
                )));
            }
            if ask_px == PRICE_NULL && ask_qty != 0 {
                return Err(ctx(format!(
                    "tick with an empty ask side has ask_qty {ask_qty}, must be 0"
                )));
            }
            out.push_str(",\"last_px\":");
            price(out, last_px);
            let _ = write!(out, ",\"last_qty\":{last_qty},\"bid_px\":");
            price(out, bid_px);
            let _ = write!(out, ",\"bid_qty\":{bid_qty},\"ask_px\":");
            price(out, ask_px);
            let _ = write!(out, ",\"ask_qty\":{ask_qty},\"volume\":{volume}");
        }
        KIND_BOOK_SNAPSHOT => {
            let bid_count = usize::from(u16_at(b, 48));
            let ask_count = usize::from(u16_at(b, 50));
            if bid_count > LEVELS || ask_count > LEVELS {
                return Err(ctx(format!(
                    "bid_count {bid_count} / ask_count {ask_count}: at most {LEVELS}"
                )));
            }
            check_zero(b, 52, 56, "book_snapshot _pad").map_err(ctx)?;
            for (side, base, count) in [("bids", 56usize, bid_count), ("asks", 216usize, ask_count)] {
                let _ = write!(out, ",\"{side}\":[");
                let mut prev: Option<i64> = None;
                for i in 0..LEVELS {
                    let px = i64_at(b, base + 16 * i);
                    let qty = i64_at(b, base + 16 * i + 8);
                    if i < count {
                        if px == PRICE_NULL || qty <= 0 {
                            return Err(ctx(format!("{side}[{i}] = ({px}, {qty}) within count {count}")));
                        }
                        if let Some(p) = prev {
                            let worse = if side == "bids" { px < p } else { px > p };
                            if !worse {
                                return Err(ctx(format!("{side}[{i}] price {px} does not worsen on {p}")));
                            }
                        }
                        prev = Some(px);
                        if i > 0 {
                            out.push(',');
                        }
                        out.push('[');
                        price(out, px);
                        let _ = write!(out, ",{qty}]");
                    } else if px != PRICE_NULL || qty != 0 {
                        return Err(ctx(format!(
                            "{side}[{i}] = ({px}, {qty}) beyond count {count}, must be (Price::NULL, 0)"
                        )));
                    }
                }
                out.push(']');
            }
        }
        KIND_BOOK_DELTA => {
            let px = i64_at(b, 48);
            let qty = i64_at(b, 56);
            let side = match b[64] {
                0 => "bid",
                1 => "ask",
                s => return Err(ctx(format!("side {s}, must be 0 (bid) or 1 (ask)"))),
            };
            check_zero(b, 65, 72, "book_delta _pad").map_err(ctx)?;
            let _ = write!(out, ",\"side\":\"{side}\",\"price\":");
            price(out, px);
            let _ = write!(out, ",\"qty\":{qty}");
        }
        _ => {} // heartbeat: header fields only
    }
    out.push('}');
    Ok(seq)
}

/// Instrument: 1 to 16 bytes of printable ASCII without space (0x21..=0x7E), NUL-padded.
fn symbol(raw: &[u8]) -> Result<&str, String> {
    let len = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let (sym, pad) = raw.split_at(len);
    if sym.is_empty() || !sym.iter().all(|c| (0x21..=0x7E).contains(c)) || pad.iter().any(|&c| c != 0) {
        return Err(format!(
            "bad instrument bytes {raw:02x?}: 1-16 printable ASCII, NUL-padded"
        ));
    }
    Ok(std::str::from_utf8(sym).expect("ASCII"))
}

/// JSON string of printable ASCII (only `"` and `\` need escaping).
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// A price (i64, 1 unit = 1e-9) as an exact decimal; `Price::NULL` as `null`.
fn price(out: &mut String, px: i64) {
    if px == PRICE_NULL {
        out.push_str("null");
        return;
    }
    let sign = if px < 0 { "-" } else { "" };
    let abs = px.unsigned_abs();
    let (int, frac) = (abs / 1_000_000_000, abs % 1_000_000_000);
    if frac == 0 {
        let _ = write!(out, "{sign}{int}");
    } else {
        let digits = format!("{frac:09}");
        let _ = write!(out, "{sign}{int}.{}", digits.trim_end_matches('0'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(px: i64) -> String {
        let mut s = String::new();
        price(&mut s, px);
        s
    }

    #[test]
    fn prices_are_exact_decimals() {
        assert_eq!(p(4_123_400_000_000), "4123.4");
        assert_eq!(p(4_123_000_000_000), "4123");
        assert_eq!(p(1), "0.000000001");
        assert_eq!(p(-500_000_000), "-0.5");
        assert_eq!(p(i64::MIN), "-9223372036.854775808");
        assert_eq!(p(PRICE_NULL), "null");
    }

    fn tick() -> [u8; SAMPLE_SIZE] {
        let mut b = [0u8; SAMPLE_SIZE];
        let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
        put(0, &17u64.to_le_bytes());
        put(8, &1_764_000_000_000_000_000i64.to_le_bytes());
        put(16, &1_764_000_000_000_001_000i64.to_le_bytes());
        put(24, &KIND_TICK.to_le_bytes());
        put(32, b"IF2501");
        put(48, &4_123_400_000_000i64.to_le_bytes());
        put(56, &2i64.to_le_bytes());
        put(64, &4_123_200_000_000i64.to_le_bytes());
        put(72, &5i64.to_le_bytes());
        put(80, &4_123_400_000_000i64.to_le_bytes());
        put(88, &3i64.to_le_bytes());
        put(96, &1234i64.to_le_bytes());
        b
    }

    #[test]
    fn decodes_design_md_example_tick() {
        let mut s = String::new();
        assert_eq!(decode(&tick(), &mut s), Ok(17));
        assert_eq!(
            s,
            r#"{"seq":17,"kind":"tick","instrument":"IF2501","ts_event":1764000000000000000,"ts_publish":1764000000000001000,"flags":0,"last_px":4123.4,"last_qty":2,"bid_px":4123.2,"bid_qty":5,"ask_px":4123.4,"ask_qty":3,"volume":1234}"#
        );
    }

    #[test]
    fn rejects_rule_violations() {
        let bad = |edit: &dyn Fn(&mut [u8; SAMPLE_SIZE])| {
            let mut b = tick();
            edit(&mut b);
            decode(&b, &mut String::new()).unwrap_err()
        };
        assert!(bad(&|b| b[24] = 9).contains("unknown kind"));
        assert!(bad(&|b| b[200] = 1).contains("tail"));
        assert!(bad(&|b| b[26] = 4).contains("unknown bits"));
        assert!(bad(&|b| b[29] = 1).contains("_pad"));
        assert!(bad(&|b| b[32] = b' ').contains("instrument"));
        assert!(bad(&|b| b[64..72].copy_from_slice(&PRICE_NULL.to_le_bytes())).contains("bid_qty"));
        // A snapshot with one bid and a non-empty level beyond the count.
        let snap = |b: &mut [u8; SAMPLE_SIZE]| {
            b[48..].fill(0);
            b[24..26].copy_from_slice(&KIND_BOOK_SNAPSHOT.to_le_bytes());
            b[48] = 1; // bid_count 1, ask_count 0
            for i in 0..LEVELS {
                for base in [56, 216] {
                    b[base + 16 * i..base + 16 * i + 8].copy_from_slice(&PRICE_NULL.to_le_bytes());
                }
            }
            b[56..64].copy_from_slice(&100i64.to_le_bytes());
            b[64..72].copy_from_slice(&1i64.to_le_bytes());
        };
        let mut ok = tick();
        snap(&mut ok);
        let mut s = String::new();
        assert_eq!(decode(&ok, &mut s), Ok(17));
        assert!(s.ends_with(r#""bids":[[0.0000001,1]],"asks":[]}"#), "{s}");
        assert!(
            bad(&|b| {
                snap(b);
                b[80..88].copy_from_slice(&1i64.to_le_bytes()); // bids[1].qty
            })
            .contains("beyond count")
        );
        assert!(
            bad(&|b| {
                snap(b);
                b[50] = 11;
            })
            .contains("at most")
        );
    }

    #[test]
    fn seq_must_increase() {
        let mut c = Checker::default();
        assert!(c.next(5, false).is_ok() && c.next(6, false).is_ok());
        assert!(c.next(8, false).unwrap_err().contains("1 records lost"));
        let mut c = Checker::default();
        assert!(c.next(5, true).is_ok() && c.next(8, true).is_ok() && c.lost == 2);
        assert!(c.next(8, true).unwrap_err().contains("must increase"));
    }

    #[test]
    fn symbols() {
        assert_eq!(symbol(b"IF2501\0\0\0\0\0\0\0\0\0\0"), Ok("IF2501"));
        assert!(symbol(&[0; 16]).is_err());
        assert!(symbol(b"IF 2501\0\0\0\0\0\0\0\0\0").is_err());
        assert!(symbol(b"IF2501\0X\0\0\0\0\0\0\0\0").is_err());
    }
}
