//! `mdbus play`: a recorded WAL published again as a live feed, paced by
//! its `ts_event` (issue 13).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use mdbus_board::DEFAULT_BOARD_DIR;
use mdbus_publisher::{FeedConfig, FeedPublisher};
use mdbus_transport::MdSender;
use mdbus_types::{
    Book, FLAG_END_OF_RECORDING, FLAG_RECOVERY_SNAPSHOT, Heartbeat, InstrumentId, MdSample, RecordRef, Tick, clock,
};
use mdbus_wal::{ReadFrom, ReadOptions, WalOptions, WalReader};

use crate::history::parse_time;

/// Arguments of `mdbus play`.
#[derive(Debug, Args)]
pub struct PlayArgs {
    /// WAL root of the recording (its segments are in `<wal>/<feed>/`).
    #[arg(long)]
    wal: PathBuf,
    /// The recorded feed.
    #[arg(long)]
    feed: String,
    /// The live feed the recording is published as: its own iceoryx2
    /// services, WAL (under `--out-wal`) and board, so every subscriber,
    /// example and the gateway work on it unchanged.
    #[arg(long = "as")]
    as_feed: String,
    /// WAL root of the played feed (default: the recording's root).
    #[arg(long)]
    out_wal: Option<PathBuf>,
    /// Playback speed against the recorded `ts_event` (1: the original
    /// pace, 10: ten times faster).
    #[arg(long, default_value_t = 1.0, conflicts_with_all = ["rate", "max"])]
    speed: f64,
    /// A steady rate instead of the recording's own pace: this many
    /// records per second, whatever their `ts_event` gaps (a load test at a
    /// known rate on real data).
    #[arg(long, conflicts_with = "max")]
    rate: Option<f64>,
    /// As fast as the bus takes it (no pacing).
    #[arg(long)]
    max: bool,
    /// Longest pause, in seconds of playback: a longer gap of the
    /// recording (a night, a halt) is cut to this (with `--speed`).
    #[arg(long, default_value_t = 5.0)]
    max_gap: f64,
    /// Start here (ns since the epoch or RFC 3339): the records before it
    /// are applied to the books without being published, then the books
    /// and last ticks go out as snapshots, then playback starts.
    #[arg(long, value_parser = parse_time)]
    from: Option<i64>,
    /// Stop after this `ts_event` (ns since the epoch or RFC 3339).
    #[arg(long, value_parser = parse_time)]
    to: Option<i64>,
    /// Only these instruments (repeatable; default all).
    #[arg(long)]
    instrument: Vec<String>,
    /// Play the recording this many times, each from fresh snapshots; a
    /// pass after the first is shifted in time to start after the previous
    /// one ended (unless `--retime`), so `ts_event` stays in order.
    #[arg(long = "loop", default_value_t = 1)]
    loops: u32,
    /// Shift `ts_event` so that playback starts now (default: as recorded).
    /// `ts_publish` is always the real send time.
    #[arg(long)]
    retime: bool,
    /// Directory of the played feed's snapshot board.
    #[arg(long, default_value = DEFAULT_BOARD_DIR)]
    board_dir: PathBuf,
    /// Do not write a snapshot board.
    #[arg(long)]
    no_board: bool,
    /// Pin the player (and its WAL threads) to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// WAL segment size of the played feed in bytes (new segments).
    #[arg(long, default_value_t = mdbus_wal::DEFAULT_SEGMENT_BYTES)]
    segment_bytes: u64,
    /// Retention of the played feed's WAL, applied at start and after each
    /// segment roll in a background thread (`--retain-bytes`,
    /// `--retain-age`; default: keep all), so that a long `--loop` does not
    /// fill the disk.
    #[command(flatten)]
    retain: crate::wal_cmd::RetainArgs,
}

/// SIGUSR1 (pause) and SIGUSR2 (resume), as flags the play loop takes.
#[derive(Debug, Default)]
struct Control {
    pause: Arc<AtomicBool>,
    resume: Arc<AtomicBool>,
}

impl Control {
    fn register() -> std::io::Result<Control> {
        let control = Control::default();
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&control.pause))?;
        signal_hook::flag::register(signal_hook::consts::SIGUSR2, Arc::clone(&control.resume))?;
        Ok(control)
    }

    /// A SIGUSR1 came and was not handled yet.
    fn pause_asked(&self) -> bool {
        // SYNC: pairs with the signal handler's store; only the flag's own
        // value matters.
        self.pause.load(Ordering::Relaxed)
    }

    /// After a SIGUSR1: publishes nothing until a SIGUSR2 (the flag is
    /// looked at every 10 ms: a pause is not a latency path); returns how
    /// long it paused.
    fn pause_if_asked(&self, mut idle: impl FnMut() -> Result<(), String>) -> Result<Duration, String> {
        // SYNC: the signal handler stores the flags (SeqCst); a swap sees
        // them whatever the ordering: only the flag's own value matters.
        if !self.pause.swap(false, Ordering::SeqCst) {
            return Ok(Duration::ZERO);
        }
        let paused = Instant::now();
        // A resume sent before the pause does not count; one sent after the
        // line below (which a controller may wait for) always does: the
        // flag is cleared before the line is printed.
        self.resume.store(false, Ordering::SeqCst);
        eprintln!("paused (SIGUSR2 resumes)");
        while !self.resume.swap(false, Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(10));
            // The feed stays alive: heartbeats while paused.
            idle()?;
        }
        eprintln!("resumed after {:.3} s", paused.elapsed().as_secs_f64());
        Ok(paused.elapsed())
    }
}

/// How the records are paced.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// The recording's `ts_event` gaps (each cut to `max_gap_ns` of the
    /// recording) divided by `speed`.
    Speed { speed: f64, max_gap_ns: f64 },
    /// `1 / rate` seconds between records.
    Rate(f64),
    /// No pacing.
    Max,
}

impl Pace {
    fn of(args: &PlayArgs) -> Pace {
        match (args.max, args.rate) {
            (true, _) => Pace::Max,
            (false, Some(rate)) => Pace::Rate(rate),
            (false, None) => Pace::Speed {
                speed: args.speed,
                max_gap_ns: args.max_gap * 1e9 * args.speed,
            },
        }
    }

    /// The time between a record at recorded time `ts` and the one
    /// before (recorded at `prev_ts`), in playback; `None` with `--max`.
    fn step(self, prev_ts: i64, ts: i64, first: bool) -> Option<Duration> {
        match self {
            Pace::Speed { speed, max_gap_ns } => {
                let gap = (ts - prev_ts).max(0) as f64;
                Some(Duration::from_secs_f64(gap.min(max_gap_ns) / speed / 1e9))
            }
            Pace::Rate(_) if first => Some(Duration::ZERO),
            Pace::Rate(rate) => Some(Duration::from_secs_f64(1.0 / rate)),
            Pace::Max => None,
        }
    }
}

/// What a playback did.
#[derive(Debug, Default)]
struct Played {
    records: u64,
    /// Largest lateness of a send against its schedule.
    worst_lag: Duration,
    /// Schedule time of the last record, from the playback start.
    scheduled: Duration,
}

/// The books and last ticks of the recording, as of the point applied.
#[derive(Debug, Default)]
struct State {
    books: BTreeMap<InstrumentId, Book>,
    ticks: BTreeMap<InstrumentId, Tick>,
}

impl State {
    fn apply(&mut self, record: RecordRef<'_>) {
        match record {
            RecordRef::BookSnapshot(s) => {
                if let Ok(book) = Book::from_snapshot(s) {
                    self.books.insert(s.instrument, book);
                }
            }
            RecordRef::BookDelta(d) => {
                if let Some(book) = self.books.get_mut(&d.instrument) {
                    // A delta that does not apply leaves the book as it
                    // was: the recording's own next snapshot repairs it.
                    let _ = book.apply_delta(d);
                }
            }
            RecordRef::Tick(t) if t.header.flags & FLAG_RECOVERY_SNAPSHOT == 0 => {
                self.ticks.insert(t.instrument, *t);
            }
            _ => {}
        }
    }

    /// The state as plain records: every book (empty for an instrument
    /// whose book subscribers hold from an earlier pass but the recording
    /// has none of here) and last tick.
    fn snapshots(&self, known_books: &HashSet<InstrumentId>, ts: i64, out: &mut Vec<MdSample>) {
        let mut ids: Vec<InstrumentId> = known_books
            .iter()
            .chain(self.books.keys())
            .chain(self.ticks.keys())
            .copied()
            .collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            let snapshot = match self.books.get(&id) {
                Some(book) => Some(book.to_snapshot()),
                None => known_books
                    .contains(&id)
                    .then(|| mdbus_types::BookSnapshot::empty(id, ts)),
            };
            if let Some(mut snapshot) = snapshot {
                snapshot.header.ts_event = ts;
                snapshot.header.flags = 0;
                out.push(snapshot.into());
            }
            if let Some(tick) = self.ticks.get(&id) {
                let mut tick = *tick;
                tick.header.ts_event = ts;
                tick.header.flags = 0;
                out.push(tick.into());
            }
        }
    }
}

pub(crate) fn run(args: &PlayArgs) -> ExitCode {
    if let Err(code) = crate::pin(args.cpu, "play") {
        return code;
    }
    if !(args.speed.is_finite() && args.speed > 0.0) {
        eprintln!("mdbus play: --speed {} is not a positive factor", args.speed);
        return ExitCode::from(2);
    }
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        eprintln!("mdbus play: --rate {rate} is not a positive number of records per second");
        return ExitCode::from(2);
    }
    if !(args.max_gap.is_finite() && args.max_gap >= 0.0) {
        eprintln!("mdbus play: --max-gap {} is not a number of seconds >= 0", args.max_gap);
        return ExitCode::from(2);
    }
    if args.loops == 0 {
        eprintln!("mdbus play: --loop 0 plays nothing");
        return ExitCode::from(2);
    }
    let filter: Result<HashSet<InstrumentId>, _> = args.instrument.iter().map(|s| InstrumentId::new(s)).collect();
    let filter = match filter {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("mdbus play: --instrument: {e}");
            return ExitCode::from(2);
        }
    };
    // The recording must be there and readable before anything is created.
    let recording = match mdbus_types::WalLocation::try_new(&args.wal, &args.feed) {
        Ok(recording) => recording,
        Err(e) => {
            eprintln!("mdbus play: --feed: {e}");
            return ExitCode::from(2);
        }
    };
    if !recording.dir().is_dir() {
        eprintln!("mdbus play: the recording {recording} does not exist");
        return ExitCode::from(2);
    }
    if let Err(e) = WalReader::open(&args.wal, &args.feed, ReadOptions::default()) {
        eprintln!("mdbus play: the recording {recording}: {e}");
        return ExitCode::from(2);
    }
    let mut config = FeedConfig::new(&args.as_feed);
    config.wal_root = Some(args.out_wal.clone().unwrap_or_else(|| args.wal.clone()));
    config.board_dir = (!args.no_board).then(|| args.board_dir.clone());
    config.wal = WalOptions::default().segment_bytes(args.segment_bytes);
    config.wal.retention = args.retain.policy();
    // Recorded time: the publisher's own heartbeats follow it too.
    config.data_clock = !args.retime;
    let wal = match config.wal_location() {
        Ok(wal) => wal.expect("a WAL root was set"),
        Err(e) => {
            eprintln!("mdbus play: {e}");
            return ExitCode::from(2);
        }
    };
    let same_root = match (std::fs::canonicalize(wal.root()), std::fs::canonicalize(&args.wal)) {
        (Ok(out), Ok(recording)) => out == recording,
        // The played feed's root does not exist yet: not the recording's.
        _ => false,
    };
    if wal.feed().as_str() == args.feed && same_root {
        eprintln!(
            "mdbus play: --as {} would write into the recording itself",
            args.as_feed
        );
        return ExitCode::from(2);
    }
    let control = match Control::register() {
        Ok(control) => control,
        Err(e) => {
            eprintln!("mdbus play: cannot take SIGUSR1/SIGUSR2 for pause and resume: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut publisher = match FeedPublisher::open_with(config, || crate::transport::publisher_sender(&wal, None)) {
        Ok(publisher) => publisher,
        Err(e) => {
            eprintln!("mdbus play: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let mut known = HashSet::new();
    let mut total = Played::default();
    let mut last_ts = 0;
    for round in 0..args.loops {
        let after = (round > 0).then_some(last_ts);
        match play_once(args, &filter, &mut publisher, &mut known, start, &control, after) {
            Ok((played, ts)) => {
                total.records += played.records;
                total.worst_lag = total.worst_lag.max(played.worst_lag);
                total.scheduled += played.scheduled;
                last_ts = ts;
            }
            Err(e) => {
                eprintln!("mdbus play: round {}: {e}", round + 1);
                return ExitCode::FAILURE;
            }
        }
    }
    // "The recording ended", not "the feed went quiet".
    let mut end = Heartbeat::new(last_ts);
    end.header.flags = FLAG_END_OF_RECORDING;
    let end_seq = publisher
        .publish(&mut end)
        .and_then(|seq| publisher.flush().map(|()| seq));
    let elapsed = start.elapsed();
    match end_seq {
        Ok(seq) => {
            eprintln!(
                "played {} records of feed {} as {} in {:.3} s ({} loop(s); scheduled {:.3} s; worst lag {:.3} ms); end of recording at seq {seq}",
                total.records,
                args.feed,
                args.as_feed,
                elapsed.as_secs_f64(),
                args.loops,
                total.scheduled.as_secs_f64(),
                total.worst_lag.as_secs_f64() * 1e3,
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mdbus play: the end marker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One pass over the recording; returns what was played and the last
/// `ts_event` published.
fn play_once<S: MdSender>(
    args: &PlayArgs,
    filter: &HashSet<InstrumentId>,
    publisher: &mut FeedPublisher<S>,
    known: &mut HashSet<InstrumentId>,
    started: Instant,
    control: &Control,
    after: Option<i64>,
) -> Result<(Played, i64), String> {
    let mut reader = WalReader::open(
        &args.wal,
        &args.feed,
        ReadOptions {
            from: ReadFrom::Start,
            skip_corrupt: true,
        },
    )
    .map_err(|e| e.to_string())?;
    let mut state = State::default();
    let mut played = Played::default();
    let mut batch: Vec<MdSample> = Vec::with_capacity(256);
    // Set at the first record played: the schedule's origin.
    let mut origin: Option<(Instant, i64)> = None;
    let (mut schedule, mut prev_ts) = (Duration::ZERO, 0i64);
    let mut shift = 0i64;
    let (mut next_progress, mut last_progress_records) = (Instant::now() + Duration::from_secs(1), 0u64);
    let pace = Pace::of(args);
    let mut last_ts = 0;
    let publish = |publisher: &mut FeedPublisher<S>, batch: &mut Vec<MdSample>| -> Result<(), String> {
        if !batch.is_empty() {
            publisher.publish_batch(batch).map_err(|e| e.to_string())?;
            batch.clear();
        }
        Ok(())
    };
    while let Some(next) = reader.next_record().map_err(|e| e.to_string())? {
        let record = next.record;
        let header = *record.header();
        if matches!(record, RecordRef::Heartbeat(_)) {
            continue;
        }
        if !filter.is_empty() && record.instrument().is_some_and(|id| !filter.contains(&id)) {
            continue;
        }
        let ts = header.ts_event;
        if args.to.is_some_and(|to| ts > to) {
            break;
        }
        let recovery = header.flags & FLAG_RECOVERY_SNAPSHOT != 0;
        if args.from.is_some_and(|from| ts < from) || recovery {
            // Before the start, or the recording's own snapshot sets (its
            // state again): books only.
            state.apply(record);
            continue;
        }
        // A pause (what was due is sent first) moves the schedule's origin
        // by its length.
        if control.pause_asked() {
            publish(publisher, &mut batch)?;
            let pause = control.pause_if_asked(|| publisher.poll().map_err(|e| e.to_string()))?;
            if let Some((at, _)) = &mut origin {
                *at += pause;
            }
        }
        let (origin_at, t0) = *origin.get_or_insert_with(|| {
            if args.retime {
                shift = clock::now_ns() - ts;
            } else if let Some(after) = after.filter(|&after| after >= ts) {
                // A later pass starts after the previous one ended: the
                // played feed's time stays in order.
                shift = after + 1 - ts;
            }
            (Instant::now(), ts)
        });
        if played.records == 0 {
            // Fresh snapshots first: subscribers start with correct books.
            state.snapshots(known, ts + shift, &mut batch);
            prev_ts = t0;
        }
        state.apply(record);
        // The schedule: the recording's gaps, each at most --max-gap, at
        // --speed (against the latest time seen, not the record before: a
        // snapshot carries its book's last change, which may be older); or
        // the steady --rate.
        let step = pace.step(prev_ts, ts, played.records == 0);
        prev_ts = prev_ts.max(ts);
        if let Some(step) = step {
            schedule += step;
            let due = origin_at + schedule;
            let now = Instant::now();
            if due > now {
                publish(publisher, &mut batch)?;
                wait_until(due, publisher)?;
            } else {
                played.worst_lag = played.worst_lag.max(now - due);
            }
        }
        let mut sample = record.to_sample();
        {
            let h = sample.header_mut();
            h.ts_event = ts + shift;
            h.flags = 0;
        }
        if let RecordRef::BookSnapshot(_) | RecordRef::BookDelta(_) = record
            && let Some(id) = record.instrument()
        {
            known.insert(id);
        }
        last_ts = ts + shift;
        batch.push(sample);
        played.records += 1;
        if batch.len() >= 256 {
            publish(publisher, &mut batch)?;
        }
        if Instant::now() >= next_progress {
            let lag = if matches!(pace, Pace::Max) {
                0.0
            } else {
                Instant::now()
                    .saturating_duration_since(origin_at + schedule)
                    .as_secs_f64()
                    * 1e3
            };
            eprintln!(
                "t={:>6.1}s  played {:.3} s of the recording  {:>9} records/s  lag {:.3} ms",
                started.elapsed().as_secs_f64(),
                (ts - t0) as f64 / 1e9,
                played.records - last_progress_records,
                lag
            );
            last_progress_records = played.records;
            next_progress += Duration::from_secs(1);
        }
    }
    publish(publisher, &mut batch)?;
    played.scheduled = schedule;
    Ok((played, last_ts))
}

/// Sleeps until shortly before `due` (in slices of at most 50 ms, the
/// publisher's housekeeping between them: heartbeats of a quiet feed,
/// the board's heartbeat), then yields until it.
fn wait_until<S: MdSender>(due: Instant, publisher: &mut FeedPublisher<S>) -> Result<(), String> {
    loop {
        let now = Instant::now();
        if now >= due {
            return Ok(());
        }
        let left = due - now;
        if left > Duration::from_millis(2) {
            thread::sleep((left - Duration::from_millis(1)).min(Duration::from_millis(50)));
            publisher.poll().map_err(|e| e.to_string())?;
        } else {
            thread::yield_now();
        }
    }
}
