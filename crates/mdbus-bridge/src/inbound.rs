//! `mdbus bridge in`: a feed from Zenoh into a local replica (iceoryx2
//! service, board, WAL) that holds the source's records with their seq
//! and bytes, without a hole, a repeat or a reorder.
//!
//! Messages arrive on Zenoh's receive thread. Each is checked (its
//! checksum, whole records, known kinds, dense seq; a bad one is counted,
//! logged and dropped, and what it held comes again by gap fill). A
//! message that continues the replica is republished right there, on
//! Zenoh's thread (no hand-off, no wake-up of another thread),
//! when the replica is free and nothing is queued before it; otherwise it
//! queues for the bridge's own thread, which never lets Zenoh's thread
//! wait. A message whose first seq is past the next seq the replica needs
//! opens a hole, filled first by gap-fill queries to the source's WAL on
//! the bridge's thread; what the source answers as gone becomes a hole in
//! the replica too (its WAL skips those seqs in a new segment, and local
//! subscribers report a gap), never silence. Records the replica already
//! has are dropped. A new replica asks the source where its newest
//! snapshot set starts and begins there.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use mdbus_publisher::{FeedConfig, FeedPublisher};
use mdbus_transport::iceoryx::{IoxSender, IoxSenderConfig, IoxSharedSender};
use mdbus_types::WalLocation;
use mdbus_wal::WalOptions;
use parking_lot::Mutex;
use zenoh::query::ConsolidationMode;
use zenoh::sample::{Sample, SampleKind};
use zenoh::{Session, Wait};

use crate::error::{Error, Result, zenoh_err};
use crate::wire::{self, Records};

/// Messages queued from Zenoh beyond which new ones are dropped (and
/// fetched again by gap fill once the replica catches up).
pub const MAX_QUEUED_MESSAGES: u64 = 20_000;

/// With no message for this long, the receiver asks the source for what
/// follows its last record.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// How `mdbus bridge in` runs.
#[derive(Debug, Clone)]
pub struct InConfig {
    /// The source feed (its name on the sending host).
    pub feed: String,
    /// The local feed it is republished as.
    pub as_feed: String,
    /// Zenoh endpoints to connect to (the sending bridge, or a router).
    pub connect: Vec<String>,
    /// Zenoh endpoints to listen on (usually none).
    pub listen: Vec<String>,
    /// WAL root of the replica (`<wal_root>/<as_feed>/`).
    pub wal_root: PathBuf,
    /// WAL segment size and sync of the replica.
    pub wal: WalOptions,
    /// Directory of the replica's snapshot board; `None`: no board.
    pub board_dir: Option<PathBuf>,
    /// Records asked per gap-fill query.
    pub query_records: u64,
    /// How long a gap-fill query may take.
    pub query_timeout: Duration,
}

impl InConfig {
    /// Defaults: republished under the same name, no endpoints yet.
    pub fn new(feed: &str, wal_root: PathBuf) -> InConfig {
        InConfig {
            feed: feed.to_string(),
            as_feed: feed.to_string(),
            connect: Vec::new(),
            listen: Vec::new(),
            wal_root,
            wal: WalOptions::default(),
            board_dir: None,
            query_records: 100_000,
            query_timeout: Duration::from_secs(10),
        }
    }
}

/// What a receiving bridge did (counters since start).
#[derive(Debug, Default)]
pub struct InStats {
    /// Records republished (live and gap-filled).
    pub records: AtomicU64,
    /// Of them, records that came by gap fill.
    pub filled_records: AtomicU64,
    /// Gap-fill queries that moved the replica on (a hole of more than
    /// `query_records` takes several).
    pub gap_fills: AtomicU64,
    /// Seqs the source no longer had: holes in the replica.
    pub gone: AtomicU64,
    /// Seq of the last record republished.
    pub last_seq: AtomicU64,
    /// `ts_publish` of the last record republished (ns since the epoch).
    pub last_ts_publish: AtomicU64,
    /// The highest seq seen from the source.
    pub source_seq: AtomicU64,
    /// Payloads refused (checksum missing or not matching, not whole
    /// records, unknown kind, seq not dense).
    pub bad_messages: AtomicU64,
    /// Records already in the replica, dropped.
    pub duplicates: AtomicU64,
    /// Messages dropped because too many were queued.
    pub dropped_messages: AtomicU64,
    /// Times the link to the sending bridge came back after it was lost.
    pub reconnects: AtomicU64,
    /// Whether the sending bridge is reachable now (1) or not (0): its
    /// liveliness token is seen.
    pub link_up: AtomicU64,
}

/// Runs the receiving bridge until `stop` is set; calls `status` about
/// once a second with the counters, and once more at the end. Errors of the replica (its WAL, board
/// or transport) end it; Zenoh links that drop are retried on their own.
pub fn run(config: &InConfig, stop: &AtomicBool, mut status: impl FnMut(&InStats)) -> Result<()> {
    let mut feed_config = FeedConfig::new(&config.as_feed);
    feed_config.wal_root = Some(config.wal_root.clone());
    feed_config.wal = config.wal.clone();
    feed_config.board_dir = config.board_dir.clone();
    let location = WalLocation::try_new(&config.wal_root, &config.as_feed)?;
    let publisher = FeedPublisher::open_replica(feed_config, || {
        let location = location.absolute().unwrap_or_else(|_| location.clone());
        IoxSender::create_shared(&IoxSenderConfig::new(config.as_feed.clone()).wal(location))
    })?;
    let session = crate::session::open(&config.listen, &config.connect)?;
    let stats = Arc::new(InStats::default());
    let replica = Arc::new(Mutex::new(Replica {
        config: config.clone(),
        session: session.clone(),
        publisher,
        stats: Arc::clone(&stats),
        last_probe: Instant::now(),
        last_message: Instant::now(),
    }));
    // Messages queued for this thread (not yet republished). Relaxed: a
    // hint that keeps the callback from republishing ahead of queued
    // messages; the replica's own state, under its mutex, decides.
    let queued = Arc::new(AtomicU64::new(0));
    // Set once republishing failed on Zenoh's thread: later messages are
    // dropped there, and this thread ends the bridge with the error.
    let failed = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Inbound>();
    // The replica's mutex is held while it starts: messages queue meanwhile.
    let mut starting = replica.lock();
    let subscriber = {
        let (replica, queued, failed, stats, feed) = (
            Arc::clone(&replica),
            Arc::clone(&queued),
            Arc::clone(&failed),
            Arc::clone(&stats),
            config.feed.clone(),
        );
        session
            .declare_subscriber(wire::md_key(&config.feed))
            .callback(move |sample| {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let Some(bytes) = checked(&feed, &stats, Payload::Message, &sample) else {
                    return;
                };
                // Never waits for the replica: when it is busy (a gap
                // fill, a status, the start) the message queues.
                if queued.load(Ordering::Relaxed) == 0
                    && let Some(mut replica) = replica.try_lock()
                {
                    match replica.on_message(&bytes, false) {
                        Ok(true) => return,
                        Ok(false) => {}
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            let _ = tx.send(Inbound::Failed(e));
                            return;
                        }
                    }
                }
                // A full queue drops, and gap fill fetches the dropped
                // records again.
                if queued.load(Ordering::Relaxed) >= MAX_QUEUED_MESSAGES {
                    stats.dropped_messages.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                queued.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(Inbound::Message(bytes.into_owned()));
            })
            .wait()
            .map_err(zenoh_err("declare subscriber"))?
    };
    let _link = watch_link(&session, &config.feed, &stats)?;
    starting.start(stop)?;
    drop(starting);
    let mut last_status = Instant::now();
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            status(&stats);
            last_status = Instant::now();
        }
        if let Err(e) = replica.lock().publisher.poll() {
            break Err(e.into());
        }
        let step = match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Inbound::Message(bytes)) => {
                let mut replica = replica.lock();
                let done = replica.on_message(&bytes, true).map(|_| ());
                // After the message is in: until the queue is empty the
                // callback queues behind it.
                queued.fetch_sub(1, Ordering::Relaxed);
                done
            }
            Ok(Inbound::Failed(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => replica.lock().when_idle(),
            // The callback, which holds the sender, is gone.
            Err(mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
        };
        if let Err(e) = step {
            break Err(e);
        }
    };
    // No callback starts after this (one still running holds the
    // replica's mutex until it is done, which the flush waits for).
    subscriber
        .undeclare()
        .wait()
        .map_err(zenoh_err("undeclare subscriber"))?;
    let flushed = replica.lock().publisher.flush();
    status(&stats);
    result.and(flushed.map_err(Error::from))
}

/// A payload from the source, as [`refuse`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    /// A stream message (records).
    Message,
    /// A gap-fill reply (records).
    GapFillReply,
    /// A gap-fill error reply (`gone <a>..<b> <crc>`).
    GoneReply,
    /// The recovery point (a seq).
    RecoveryPoint,
}

impl Payload {
    fn name(self) -> &'static str {
        match self {
            Payload::Message => "message",
            Payload::GapFillReply => "gap-fill reply",
            Payload::GoneReply => "gone reply",
            Payload::RecoveryPoint => "recovery point",
        }
    }
}

/// Counts a refused payload as a bad message and logs why: each of the
/// first 10, then the 16th, 32nd, 64th and so on (a sender without
/// checksums would otherwise log every message it sends, and the fills
/// that ask again every 20 ms every reply).
fn refuse(feed: &str, stats: &InStats, what: Payload, why: &dyn std::fmt::Display) {
    let n = stats.bad_messages.fetch_add(1, Ordering::Relaxed) + 1;
    if n <= 10 || n.is_power_of_two() {
        eprintln!(
            "mdbus bridge in: feed {feed}: refused a {} (bad message {n}): {why}",
            what.name()
        );
    }
}

/// The payload of a sample from the source when it comes with its own
/// checksum (see [`wire::verify`]); one that does not is refused
/// ([`refuse`]) and the caller drops it: records come again by gap fill,
/// the recovery point is asked again.
fn checked<'s>(feed: &str, stats: &InStats, what: Payload, sample: &'s Sample) -> Option<Cow<'s, [u8]>> {
    let payload = sample.payload().to_bytes();
    let attachment = sample.attachment().map(|a| a.to_bytes());
    match wire::verify(&payload, attachment.as_deref()) {
        Ok(()) => Some(payload),
        Err(e) => {
            // Of records: whether the record checks alone (headers only)
            // would have taken them, which is what the checksum is for.
            let records = match (what, Records::parse(&payload)) {
                (Payload::RecoveryPoint | Payload::GoneReply, _) => "",
                (_, Ok(_)) => "; its records pass the record checks",
                (_, Err(_)) => "; its records fail the record checks too",
            };
            refuse(feed, stats, what, &format_args!("{e}{records}"));
            None
        }
    }
}

/// What reaches the bridge's thread from Zenoh's.
enum Inbound {
    /// A message not republished on Zenoh's thread: the replica was busy,
    /// messages were queued before it, or it opens a hole.
    Message(Vec<u8>),
    /// Republishing on Zenoh's thread failed: the bridge ends with it.
    Failed(Error),
}

/// Follows the sending bridge's liveliness token: `link_up` while it is
/// seen; each time it is seen again after it was lost (the link dropped
/// and came back, or the sending bridge restarted) counts a reconnect.
/// Events, not polling: a link that drops and comes back within a second
/// is counted too.
fn watch_link(session: &Session, feed: &str, stats: &Arc<InStats>) -> Result<zenoh::pubsub::Subscriber<()>> {
    let stats = Arc::clone(stats);
    let mut seen = false;
    session
        .liveliness()
        .declare_subscriber(wire::bridge_out_token_key(feed))
        .history(true)
        .callback_mut(move |sample| match sample.kind() {
            SampleKind::Put => {
                if stats.link_up.swap(1, Ordering::Relaxed) == 0 && seen {
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                seen = true;
            }
            SampleKind::Delete => stats.link_up.store(0, Ordering::Relaxed),
        })
        .wait()
        .map_err(zenoh_err("declare liveliness subscriber"))
}

/// One piece of a gap-fill answer.
enum Piece {
    Records(Records),
    Gone(u64, u64),
}

impl Piece {
    fn first(&self) -> u64 {
        match self {
            Piece::Records(r) => r.first_seq(),
            Piece::Gone(from, _) => *from,
        }
    }
}

struct Replica {
    config: InConfig,
    session: Session,
    /// On thread-safe ports: it runs on Zenoh's thread and the bridge's.
    publisher: FeedPublisher<IoxSharedSender>,
    stats: Arc<InStats>,
    /// When the source was last asked for what follows the replica.
    last_probe: Instant,
    /// When the last message came.
    last_message: Instant,
}

impl Replica {
    /// The seq the replica needs next.
    fn want(&self) -> u64 {
        self.publisher.next_seq()
    }

    /// A new replica starts at the source's newest snapshot set (asked
    /// until the source answers); one with records continues after them.
    fn start(&mut self, stop: &AtomicBool) -> Result<()> {
        if self.want() > 1 {
            self.stats.last_seq.store(self.want() - 1, Ordering::Relaxed);
            return Ok(());
        }
        while !stop.load(Ordering::Relaxed) {
            if let Some(start) = self.ask_recovery_point()? {
                if start > 1 {
                    self.publisher.replica_skip_to(start)?;
                }
                return Ok(());
            }
            // Not reachable yet: Zenoh keeps connecting; ask again soon.
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// The source's newest snapshot set. The source finds it by scanning
    /// its newest segment, which takes seconds in a debug build on a loaded
    /// machine: the query waits as long as a gap fill may (with 1 s, a
    /// receiver under `stress --cpu 2` asked again forever and never
    /// started). With no source reachable it returns at once.
    fn ask_recovery_point(&self) -> Result<Option<u64>> {
        let replies = self
            .session
            .get(wire::recovery_point_key(&self.config.feed))
            .consolidation(ConsolidationMode::None)
            .timeout(self.config.query_timeout)
            .wait()
            .map_err(zenoh_err("get recovery point"))?;
        let Ok(reply) = replies.recv() else {
            return Ok(None);
        };
        let Ok(sample) = reply.result() else { return Ok(None) };
        let Some(bytes) = checked(&self.config.feed, &self.stats, Payload::RecoveryPoint, sample) else {
            return Ok(None);
        };
        Ok(<[u8; 8]>::try_from(&bytes[..]).ok().map(u64::from_le_bytes))
    }

    /// Takes one message from the source; whether it is done with.
    /// A message that opens a hole is filled here with `fill` (the
    /// bridge's thread), and left alone without it (Zenoh's thread, which
    /// must not wait for a query): `false`, queue it.
    fn on_message(&mut self, bytes: &[u8], fill: bool) -> Result<bool> {
        self.last_message = Instant::now();
        let records = match Records::parse(bytes) {
            Ok(records) => records,
            Err(e) => {
                let why = format_args!("{} bytes: {e}", bytes.len());
                refuse(&self.config.feed, &self.stats, Payload::Message, &why);
                return Ok(true);
            }
        };
        let opens_hole = records.first_seq() > self.want();
        if opens_hole && !fill {
            return Ok(false);
        }
        self.stats.source_seq.fetch_max(records.last_seq(), Ordering::Relaxed);
        if opens_hole && !self.fill(records.first_seq() - 1)? {
            // The hole is still open (the source did not answer): this
            // message is fetched again by the next fill.
            return Ok(true);
        }
        self.republish(&records, false)?;
        Ok(true)
    }

    /// Republishes the records of `records` the replica does not have yet
    /// (its first must be at most the next seq).
    fn republish(&mut self, records: &Records, filled: bool) -> Result<()> {
        let want = self.want();
        let first = records.first_seq();
        debug_assert!(first <= want);
        if records.last_seq() < want {
            self.stats.duplicates.fetch_add(records.len() as u64, Ordering::Relaxed);
            return Ok(());
        }
        let refs = records.refs();
        let skip = (want - first) as usize;
        self.stats.duplicates.fetch_add(skip as u64, Ordering::Relaxed);
        let fresh = &refs[skip..];
        self.publisher.replicate(fresh)?;
        let n = fresh.len() as u64;
        self.stats.records.fetch_add(n, Ordering::Relaxed);
        if filled {
            self.stats.filled_records.fetch_add(n, Ordering::Relaxed);
        }
        let last = fresh[fresh.len() - 1].header();
        self.stats.last_seq.store(last.seq, Ordering::Relaxed);
        self.stats
            .last_ts_publish
            .store(last.ts_publish as u64, Ordering::Relaxed);
        Ok(())
    }

    /// With nothing arriving: a known hole (the source is ahead) is asked
    /// for again; otherwise, at most once per [`PROBE_EVERY`], the source
    /// is asked for what follows the replica's last record (a source that
    /// went quiet, or stopped, after a link drop or a restart of either
    /// side sends nothing that would show the hole).
    fn when_idle(&mut self) -> Result<()> {
        let source = self.stats.source_seq.load(Ordering::Relaxed);
        if source >= self.want() {
            self.fill(source)?;
        } else if self.last_message.elapsed() >= PROBE_EVERY && self.last_probe.elapsed() >= PROBE_EVERY {
            self.last_probe = Instant::now();
            let from = self.want();
            self.fill_once(from, from + self.config.query_records - 1)?;
        }
        Ok(())
    }

    /// Fills the replica up to `to` (inclusive) from the source's WAL;
    /// whether it got there.
    fn fill(&mut self, to: u64) -> Result<bool> {
        while self.want() <= to {
            let from = self.want();
            if !self.fill_once(from, to.min(from + self.config.query_records - 1))? {
                // Nothing came (link down, the source restarting): later.
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One query for `from..=to` (`from` the next seq), its answer
    /// republished; whether the replica moved on.
    fn fill_once(&mut self, from: u64, to: u64) -> Result<bool> {
        let mut pieces = self.query(from, to)?;
        pieces.sort_by_key(Piece::first);
        for piece in pieces {
            match piece {
                Piece::Records(records) => {
                    self.stats.source_seq.fetch_max(records.last_seq(), Ordering::Relaxed);
                    if records.first_seq() <= self.want() {
                        self.republish(&records, true)?;
                    }
                }
                Piece::Gone(a, b) => {
                    let want = self.want();
                    if a <= want && want <= b {
                        eprintln!(
                            "mdbus bridge in: feed {}: seq {want}..{b} no longer in the source's WAL: a gap",
                            self.config.feed
                        );
                        self.stats.gone.fetch_add(b - want + 1, Ordering::Relaxed);
                        self.publisher.replica_skip_to(b + 1)?;
                    }
                }
            }
        }
        let moved = self.want() > from;
        if moved {
            self.stats.gap_fills.fetch_add(1, Ordering::Relaxed);
        }
        Ok(moved)
    }

    /// One gap-fill query; an unreachable source gives no piece.
    fn query(&self, from: u64, to: u64) -> Result<Vec<Piece>> {
        let replies = match self
            .session
            .get(wire::wal_query(&self.config.feed, from, to))
            .consolidation(ConsolidationMode::None)
            .timeout(self.config.query_timeout)
            .wait()
        {
            Ok(replies) => replies,
            Err(e) => {
                eprintln!("mdbus bridge in: gap-fill query {from}..{to}: {e}");
                return Ok(Vec::new());
            }
        };
        let mut pieces = Vec::new();
        while let Ok(reply) = replies.recv() {
            match reply.result() {
                Ok(sample) => {
                    let Some(bytes) = checked(&self.config.feed, &self.stats, Payload::GapFillReply, sample) else {
                        continue;
                    };
                    match Records::parse(&bytes) {
                        Ok(records) => pieces.push(Piece::Records(records)),
                        Err(e) => refuse(&self.config.feed, &self.stats, Payload::GapFillReply, &e),
                    }
                }
                Err(err) => {
                    let text = err
                        .payload()
                        .try_to_string()
                        .map(|s| s.into_owned())
                        .unwrap_or_default();
                    // Acted on by leaving seqs out for good: only whole,
                    // with its checksum, and within what was asked.
                    match wire::parse_gone(&text) {
                        Ok((a, b)) if from <= a && b <= to => pieces.push(Piece::Gone(a, b)),
                        Ok((a, b)) => {
                            let why = format_args!("gone {a}..{b} is outside the query {from}..{to}");
                            refuse(&self.config.feed, &self.stats, Payload::GoneReply, &why);
                        }
                        Err(e) => {
                            let why = format_args!("to the query {from}..{to}: {e}");
                            refuse(&self.config.feed, &self.stats, Payload::GoneReply, &why);
                        }
                    }
                }
            }
        }
        Ok(pieces)
    }
}
