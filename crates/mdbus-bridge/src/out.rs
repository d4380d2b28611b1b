//! `mdbus bridge out`: the local feed onto Zenoh, and its WAL behind
//! gap-fill queries.
//!
//! A [`Subscriber`] (replay-merge from the WAL, then live) reads the feed
//! from its newest snapshot set, so the stream never starts with a hole;
//! records are drained from iceoryx2 in bursts and go out several per
//! Zenoh message (Block, batched, not express). A second thread answers
//! `mdbus/<feed>/wal/<from>..<to>` from the WAL, one concatenated reply per
//! [`RECORDS_PER_REPLY`] records and an error reply `gone <a>..<b> <crc>`
//! for seqs the WAL no longer has, and `mdbus/<feed>/recovery_point` with
//! the first seq of the newest snapshot set (8 bytes, little-endian). Every
//! payload with data carries its CRC-32C as the attachment
//! ([`wire::checksum`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mdbus_subscriber::{EventRef, L2Config, StartFrom, Subscriber, SubscriberConfig};
use mdbus_transport::iceoryx::{IoxReceiver, IoxReceiverConfig, WaitStrategy};
use mdbus_types::WalLocation;
use mdbus_wal::{ReadEvent, ReadFrom, ReadOptions, WalReader};
use zenoh::qos::{CongestionControl, Priority};
use zenoh::query::Query;
use zenoh::{Session, Wait};

use crate::error::{Error, Result, zenoh_err};
use crate::wire;

/// Records per gap-fill reply.
pub const RECORDS_PER_REPLY: usize = 1000;

/// A Zenoh message is sent once it holds this many bytes (or the burst
/// drained from iceoryx2 ended): under one 64 KiB Zenoh batch.
pub const MESSAGE_BYTES: usize = 60_000;

/// How `mdbus bridge out` runs.
#[derive(Debug, Clone)]
pub struct OutConfig {
    /// The local feed.
    pub feed: String,
    /// Zenoh endpoints to listen on (`tcp/ADDR:PORT`).
    pub listen: Vec<String>,
    /// Zenoh endpoints to connect to (a router).
    pub connect: Vec<String>,
    /// WAL root of the feed; `None`: the one its publisher announces.
    pub wal_root: Option<PathBuf>,
    /// Where the stream starts (default: the newest snapshot set).
    pub start: StartFrom,
    /// How long to wait for the feed's publisher at start.
    pub wait_for_feed: Duration,
    /// How long a message may wait for more records after its first one
    /// (`Duration::ZERO`, the default: it goes once the burst drained from
    /// iceoryx2 ends). A longer linger makes fewer, larger Zenoh messages,
    /// so both bridges wake up less often, and adds up to that much
    /// latency.
    pub linger: Duration,
}

impl OutConfig {
    /// Defaults for `feed`: start at the newest snapshot set, wait 10 s for
    /// the feed, no endpoints yet.
    pub fn new(feed: &str) -> OutConfig {
        OutConfig {
            feed: feed.to_string(),
            listen: Vec::new(),
            connect: Vec::new(),
            wal_root: None,
            start: StartFrom::RecoveryPoint,
            wait_for_feed: Duration::from_secs(10),
            linger: Duration::ZERO,
        }
    }
}

/// What a sending bridge did (counters since start).
#[derive(Debug, Default)]
pub struct OutStats {
    /// Records put on Zenoh.
    pub records: AtomicU64,
    /// Zenoh messages put.
    pub messages: AtomicU64,
    /// Seq of the last record put.
    pub last_seq: AtomicU64,
    /// `ts_publish` of the last record put.
    pub last_ts_publish: AtomicU64,
    /// Gap-fill queries answered.
    pub queries: AtomicU64,
    /// Records sent in gap-fill replies.
    pub filled_records: AtomicU64,
    /// Seqs answered as gone (no longer in the WAL).
    pub gone: AtomicU64,
    /// Holes the local subscriber reported (the source's own WAL lost them).
    pub local_gaps: AtomicU64,
}

/// Runs the sending bridge until `stop` is set; calls `status` about once a
/// second with the counters, and once more at the end.
///
/// With `wal_root` given, gap-fill queries are answered from the start,
/// also while the feed's publisher is down (the bridge waits for it, as
/// long as it takes); without, the WAL is the one the publisher announces,
/// and a feed that does not appear within `wait_for_feed` is an error.
pub fn run(config: &OutConfig, stop: &AtomicBool, mut status: impl FnMut(&OutStats)) -> Result<()> {
    let session = crate::session::open(&config.listen, &config.connect)?;
    // Held while the bridge runs: receivers see the link come and go.
    let _token = session
        .liveliness()
        .declare_token(wire::bridge_out_token_key(&config.feed))
        .wait()
        .map_err(zenoh_err("declare liveliness token"))?;
    let stats = Arc::new(OutStats::default());
    let mut queries = match &config.wal_root {
        Some(root) => Some(Queries::start(
            &session,
            &config.feed,
            WalLocation::try_new(root, &config.feed)?,
            &stats,
        )?),
        None => None,
    };
    let receiver_config = IoxReceiverConfig::new(config.feed.clone()).wait(WaitStrategy::Block);
    let started = Instant::now();
    let live = loop {
        match IoxReceiver::open_waiting(&receiver_config, Duration::from_millis(500)) {
            Ok(live) => break live,
            Err(e) if queries.is_none() && started.elapsed() >= config.wait_for_feed => return Err(e.into()),
            Err(_) if stop.load(Ordering::Relaxed) => return queries.map_or(Ok(()), Queries::stop),
            Err(_) => {}
        }
    };
    let wal = match (&config.wal_root, live.wal()?) {
        (Some(root), _) => WalLocation::try_new(root, &config.feed)?,
        (None, Some(announced)) => announced,
        (None, None) => {
            return Err(Error::NoWal {
                feed: config.feed.clone(),
            });
        }
    };
    let queries = match queries.take() {
        Some(queries) => queries,
        None => Queries::start(&session, &config.feed, wal.clone(), &stats)?,
    };
    let result = match stream(config, &session, live, &wal, stop, &stats, &mut status) {
        // A signal that stops the bridge also interrupts iceoryx2's wait.
        Err(_) if stop.load(Ordering::Relaxed) => Ok(()),
        other => other,
    };
    let answered = queries.stop();
    status(&stats);
    result.and(answered)
}

/// The thread that answers queries.
struct Queries {
    handle: std::thread::JoinHandle<Result<()>>,
    done: Arc<AtomicBool>,
}

impl Queries {
    fn start(session: &Session, feed: &str, wal: WalLocation, stats: &Arc<OutStats>) -> Result<Queries> {
        let (session, stats, feed) = (session.clone(), Arc::clone(stats), feed.to_string());
        let done = Arc::new(AtomicBool::new(false));
        let done_in_thread = Arc::clone(&done);
        let handle = std::thread::Builder::new()
            .name("mdbus-bridge-wal".into())
            .spawn(move || answer_queries(&session, &feed, &wal, &stats, &done_in_thread))
            .map_err(|e| Error::Zenoh {
                what: "spawn query thread",
                message: e.to_string(),
            })?;
        Ok(Queries { handle, done })
    }

    fn stop(self) -> Result<()> {
        self.done.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(Ok(()))
    }
}

/// The record stream: subscriber -> Zenoh messages.
fn stream(
    config: &OutConfig,
    session: &Session,
    live: IoxReceiver,
    wal: &WalLocation,
    stop: &AtomicBool,
    stats: &OutStats,
    status: &mut impl FnMut(&OutStats),
) -> Result<()> {
    let publisher = session
        .declare_publisher(wire::md_key(&config.feed))
        .congestion_control(CongestionControl::Block)
        .priority(Priority::DataHigh)
        .express(false)
        .wait()
        .map_err(zenoh_err("declare publisher"))?;
    let mut subscriber = Subscriber::new(
        live,
        SubscriberConfig::default()
            .l2(L2Config::off())
            .wal(wal.clone())
            .start(config.start),
    )?;
    let mut message: Vec<u8> = Vec::with_capacity(MESSAGE_BYTES + 512);
    let mut last_status = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if last_status.elapsed() >= Duration::from_secs(1) {
            status(stats);
            last_status = Instant::now();
        }
        // Wait for the first record of a burst, then drain what is there
        // (and, with a linger, what comes until the first record is that
        // old).
        let mut timeout = Duration::from_millis(100);
        let mut first_at = None;
        while message.len() < MESSAGE_BYTES {
            match subscriber.next_event_ref(timeout)? {
                Some(EventRef::Record { sample, .. }) => {
                    if first_at.is_none() && !config.linger.is_zero() {
                        first_at = Some(Instant::now());
                    }
                    let record = sample.record()?;
                    message.extend_from_slice(record.as_bytes());
                    let header = record.header();
                    stats.records.fetch_add(1, Ordering::Relaxed);
                    stats.last_seq.store(header.seq, Ordering::Relaxed);
                    stats.last_ts_publish.store(header.ts_publish as u64, Ordering::Relaxed);
                }
                Some(EventRef::Gap(_)) => {
                    // The receivers see the hole in seq, ask, and are told
                    // it is gone.
                    stats.local_gaps.fetch_add(1, Ordering::Relaxed);
                }
                Some(_) => {}
                // A wait that ended early does not cut the linger short.
                None if first_at.is_some_and(|at: Instant| at.elapsed() < config.linger) => {}
                None => break,
            }
            timeout = first_at.map_or(Duration::ZERO, |at: Instant| config.linger.saturating_sub(at.elapsed()));
        }
        if !message.is_empty() {
            let bytes = std::mem::replace(&mut message, Vec::with_capacity(MESSAGE_BYTES + 512));
            let sum = wire::checksum(&bytes);
            publisher
                .put(bytes)
                .attachment(sum.to_vec())
                .wait()
                .map_err(zenoh_err("put"))?;
            stats.messages.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// The gap-fill and recovery-point queryables, answered on this thread
/// until `done`.
fn answer_queries(session: &Session, feed: &str, wal: &WalLocation, stats: &OutStats, done: &AtomicBool) -> Result<()> {
    let ranges = session
        .declare_queryable(wire::wal_keys(feed))
        .wait()
        .map_err(zenoh_err("declare gap-fill queryable"))?;
    let points = session
        .declare_queryable(wire::recovery_point_key(feed))
        .wait()
        .map_err(zenoh_err("declare recovery-point queryable"))?;
    // A query that cannot be answered (a WAL error, a reply refused) is
    // logged and left unanswered: the asker retries.
    while !done.load(Ordering::Relaxed) {
        while let Ok(Some(query)) = points.try_recv() {
            if let Err(e) = answer_recovery_point(&query, wal) {
                eprintln!("mdbus bridge out: feed {feed}: recovery point query: {e}");
            }
        }
        match ranges.recv_timeout(Duration::from_millis(20)) {
            Ok(Some(query)) => {
                stats.queries.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = answer_range(&query, wal, stats) {
                    eprintln!(
                        "mdbus bridge out: feed {feed}: gap-fill query {}: {e}",
                        query.key_expr()
                    );
                }
            }
            Ok(None) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

fn answer_recovery_point(query: &Query, wal: &WalLocation) -> Result<()> {
    let point = mdbus_wal::recovery_point(wal.root(), wal.feed().as_str())?;
    let start = point.map_or(1, |p| p.start_seq()).to_le_bytes();
    query
        .reply(query.key_expr().clone(), start.to_vec())
        .attachment(wire::checksum(&start).to_vec())
        .wait()
        .map_err(zenoh_err("reply recovery point"))
}

/// Answers `<from>..<to>`: the records the WAL has, [`RECORDS_PER_REPLY`]
/// per reply, and `gone a..b` for each stretch it no longer has. Records
/// not written yet are not answered (the asker gets them live, or asks
/// again).
fn answer_range(query: &Query, wal: &WalLocation, stats: &OutStats) -> Result<()> {
    let (from, to) = match wire::parse_range(query.key_expr().as_str()) {
        Ok(range) => range,
        Err(e) => {
            return query.reply_err(e.to_string()).wait().map_err(zenoh_err("reply error"));
        }
    };
    let reply = |bytes: Vec<u8>| {
        let sum = wire::checksum(&bytes);
        query
            .reply(query.key_expr().clone(), bytes)
            .attachment(sum.to_vec())
            .wait()
            .map_err(zenoh_err("reply records"))
    };
    let gone = |a: u64, b: u64| {
        stats.gone.fetch_add(b - a + 1, Ordering::Relaxed);
        query
            .reply_err(wire::gone_reply(a, b))
            .wait()
            .map_err(zenoh_err("reply gone"))
    };
    let options = ReadOptions {
        from: ReadFrom::Seq(from),
        skip_corrupt: true,
    };
    let mut reader = match WalReader::open(wal.root(), wal.feed().as_str(), options) {
        Ok(reader) => reader,
        Err(mdbus_wal::Error::NoSegments { .. }) => return gone(from, to),
        Err(e) => return Err(e.into()),
    };
    let mut next = from;
    let mut chunk = Vec::new();
    let mut in_chunk = 0;
    while next <= to {
        let Some(event) = reader.next_event()? else { break };
        let ReadEvent::Record(record) = event else { continue };
        let seq = record.seq();
        if seq < next {
            continue;
        }
        if seq > next {
            if !chunk.is_empty() {
                reply(std::mem::take(&mut chunk))?;
                in_chunk = 0;
            }
            gone(next, (seq - 1).min(to))?;
        }
        if seq > to {
            break;
        }
        chunk.extend_from_slice(record.record.as_bytes());
        in_chunk += 1;
        stats.filled_records.fetch_add(1, Ordering::Relaxed);
        next = seq + 1;
        if in_chunk == RECORDS_PER_REPLY {
            reply(std::mem::take(&mut chunk))?;
            in_chunk = 0;
        }
    }
    if !chunk.is_empty() {
        reply(chunk)?;
    }
    Ok(())
}
