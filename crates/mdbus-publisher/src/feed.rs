//! The feed publisher: docs/spec.md's publish path.
//!
//! Per record: assign `seq` and stamp `ts_publish` -> append to the WAL (a
//! map write) -> send on the transport (iceoryx2: write into a loaned
//! sample) ; per batch: end the batch (notify) -> update the snapshot board.
//! Around that it keeps the publisher's own view of every instrument (top-10
//! `Book` + last `Tick`), from which it writes
//! - the snapshot set at the start of each WAL segment (every instrument's
//!   `BookSnapshot` and last `Tick` flagged `RECOVERY_SNAPSHOT`, closed by a
//!   `RECOVERY_SNAPSHOT` heartbeat), so recovery reads one segment;
//! - policy snapshots: every instrument at least every `snapshot_interval`,
//!   and at once when its top-10 depth (the total quantity of both sides'
//!   ten levels) changed by more than `snapshot_threshold` since its last
//!   snapshot;
//! - heartbeats when the feed is quiet, so gaps are seen without traffic.
//!
//! A restarted publisher replays its WAL from the newest full snapshot set
//! to rebuild that view and continues `seq` after the last valid record.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mdbus_board::{BoardWriter, DEFAULT_BOARD_CAPACITY};
use mdbus_transport::MdSender;
use mdbus_types::{
    Book, BookSnapshot, FLAG_END_OF_BATCH, FLAG_RECOVERY_SNAPSHOT, FeedGroup, Heartbeat, InstrumentId, Kind, MdSample,
    Record, RecordHeader, RecordRef, Side, Tick, WalLocation, clock, validate_snapshot,
};
use mdbus_wal::{AppendOutcome, ReadEvent, ReadFrom, ReadOptions, RecoveryReport, Wal, WalOptions, WalReader};
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// How often the housekeeping of [`FeedPublisher::poll`] runs when it is
/// folded into [`FeedPublisher::publish_batch`].
pub const POLL_EVERY: Duration = Duration::from_millis(1);

/// How a [`FeedPublisher`] runs.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Feed name (`[A-Za-z0-9_-]{1,32}`).
    pub feed: String,
    /// WAL root: the feed's segments go in `<wal_root>/<feed>/`
    /// ([`FeedConfig::wal_location`]); `None` publishes without a WAL
    /// (tests, the in-process demo).
    pub wal_root: Option<PathBuf>,
    /// WAL segment size and sync policy.
    pub wal: WalOptions,
    /// Directory of the snapshot board; `None`: no board.
    pub board_dir: Option<PathBuf>,
    /// Board slots for a new board.
    pub board_capacity: u32,
    /// Every instrument gets a snapshot at least this often.
    pub snapshot_interval: Duration,
    /// A snapshot at once when the top-10 depth quantity (both sides)
    /// changed by more than this fraction since the last snapshot.
    pub snapshot_threshold: f64,
    /// A heartbeat when nothing was sent for this long.
    pub heartbeat_interval: Duration,
    /// Recorded data: the publisher's own heartbeats (quiet feed, the end
    /// of a snapshot set) carry the latest `ts_event` published instead of
    /// the wall clock, so the WAL's time stays the data's (its time index
    /// and history queries need `ts_event` in order). Off for live feeds.
    pub data_clock: bool,
    /// One clock reading per send batch: every record of a batch gets the
    /// `ts_publish` of the moment the batch was sequenced, not its own (an
    /// import of recorded data saves a clock read per record). Off for
    /// live feeds, whose `ts_publish` is each record's own time.
    pub batch_clock: bool,
    /// The Unix group that may read the feed (`mdbus publish --group`):
    /// the WAL folder `<wal_root>/<feed>` becomes mode 2750 and its files
    /// 0640, the board 0640, all of the group; nobody else may read them.
    /// The transport is given the same group by its own config
    /// (`IoxSenderConfig::group`). `None`: the modes the process's umask
    /// gives.
    pub group: Option<FeedGroup>,
}

impl FeedConfig {
    /// docs/spec.md's defaults for `feed`: 1 s snapshots, 5 % threshold, 100 ms
    /// heartbeats, no WAL and no board until set.
    pub fn new(feed: &str) -> FeedConfig {
        FeedConfig {
            feed: feed.to_string(),
            wal_root: None,
            wal: WalOptions::default(),
            board_dir: None,
            board_capacity: DEFAULT_BOARD_CAPACITY,
            snapshot_interval: Duration::from_secs(1),
            snapshot_threshold: 0.05,
            heartbeat_interval: Duration::from_millis(100),
            data_clock: false,
            batch_clock: false,
            group: None,
        }
    }
}

impl FeedConfig {
    /// Where the feed's WAL is, when it has one.
    ///
    /// Errors: [`Error::Record`] when the feed name is invalid.
    pub fn wal_location(&self) -> Result<Option<WalLocation>> {
        Ok(match &self.wal_root {
            Some(root) => Some(WalLocation::try_new(root, &self.feed)?),
            None => None,
        })
    }
}

fn access(feed: &str, reason: String) -> Error {
    Error::Access {
        feed: feed.to_string(),
        reason,
    }
}

/// Only the owner of a feed's WAL folder or board publishes the feed (root
/// may too): another user is refused with the owner named.
fn check_owner(feed: &str, path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = std::fs::metadata(path) else {
        return Ok(());
    };
    let euid = mdbus_types::access::effective_uid();
    if euid == 0 || metadata.uid() == euid {
        return Ok(());
    }
    Err(access(
        feed,
        format!(
            "permission denied: {} belongs to uid {} (group {}): only the user who owns a feed publishes it, and this is uid {euid}",
            path.display(),
            metadata.uid(),
            FeedGroup::of_gid(metadata.gid()),
        ),
    ))
}

/// The WAL folder of a grouped feed (made 2750 before the WAL opened):
/// its files 0640 of the group, those of an earlier run included.
fn share_wal(feed: &str, group: &FeedGroup, dir: &std::path::Path) -> Result<()> {
    group.share(dir, 0o2750).map_err(|e| access(feed, e.to_string()))?;
    let entries = std::fs::read_dir(dir).map_err(|e| access(feed, format!("cannot list {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            group
                .share(&entry.path(), 0o640)
                .map_err(|e| access(feed, e.to_string()))?;
        }
    }
    Ok(())
}

/// What a [`FeedPublisher`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Records published (all kinds, snapshot sets and heartbeats included).
    pub records: u64,
    /// Send batches.
    pub batches: u64,
    /// Heartbeats sent because the feed was quiet.
    pub heartbeats: u64,
    /// Snapshots sent by the policy (interval or depth change).
    pub policy_snapshots: u64,
    /// Snapshot sets written (one per WAL segment).
    pub snapshot_sets: u64,
    /// Records replayed from the WAL on open to rebuild the state.
    pub recovered_records: u64,
}

/// The publisher's view of one instrument.
#[derive(Debug, Clone)]
struct InstrumentState {
    book: Book,
    has_book: bool,
    last_tick: Option<Tick>,
    /// Book levels when the last snapshot was sent.
    at_snapshot: BookSnapshot,
    snapshot_at: Instant,
    /// The tick changed since the last board flush.
    tick_dirty: bool,
    /// The book changed since the last board flush. The instrument is in
    /// `FeedPublisher::dirty` while either flag is set.
    book_dirty: bool,
}

impl InstrumentState {
    fn new(id: InstrumentId, now: Instant) -> InstrumentState {
        InstrumentState {
            book: Book::new(id),
            has_book: false,
            last_tick: None,
            at_snapshot: BookSnapshot::empty(id, 0),
            snapshot_at: now,
            tick_dirty: false,
            book_dirty: false,
        }
    }

    /// Notes what changed (the tick, the book) for the next board flush;
    /// whether the instrument just became dirty, for the caller to add it
    /// to `FeedPublisher::dirty`.
    fn mark_changed(&mut self, tick: bool, book: bool) -> bool {
        let was_clean = !self.tick_dirty && !self.book_dirty;
        self.tick_dirty |= tick;
        self.book_dirty |= book;
        was_clean && (tick || book)
    }
}

/// Writes what changed of an instrument (its last tick, its current book)
/// to the board.
fn write_board(board: &mut BoardWriter, state: &InstrumentState) -> Result<()> {
    if state.tick_dirty
        && let Some(tick) = &state.last_tick
    {
        board.update_tick(tick)?;
    }
    if state.book_dirty && state.has_book {
        board.update_book(&state.book.to_snapshot())?;
    }
    Ok(())
}

/// WAL bytes of `records` as frames (8-byte frame header, 8-aligned).
fn frame_bytes(records: &[MdSample]) -> Result<usize> {
    let mut bytes = 0;
    for sample in records {
        bytes += mdbus_wal::FRAME_HEADER_LEN + sample.record_bytes()?.len().next_multiple_of(8);
    }
    Ok(bytes)
}

fn depth(snapshot: &BookSnapshot) -> i64 {
    snapshot
        .bid_levels()
        .iter()
        .chain(snapshot.ask_levels())
        .map(|l| l.qty)
        .sum()
}

/// Stamps a record's header as it is sequenced: `seq`, `ts_publish` (now,
/// before the WAL append and the send), and `END_OF_BATCH` on the batch's
/// last record only (other flags are kept).
#[inline]
pub(crate) fn stamp_header(header: &mut RecordHeader, seq: u64, last_of_batch: bool) {
    stamp_header_at(header, seq, last_of_batch, clock::now_ns());
}

/// [`stamp_header`] with `ts_publish` read by the caller.
#[inline]
fn stamp_header_at(header: &mut RecordHeader, seq: u64, last_of_batch: bool, ts_publish: i64) {
    header.seq = seq;
    header.ts_publish = ts_publish;
    header.flags &= !FLAG_END_OF_BATCH;
    if last_of_batch {
        header.flags |= FLAG_END_OF_BATCH;
    }
}

/// Publishes one feed: WAL, transport, board, snapshot policy, heartbeats.
#[derive(Debug)]
pub struct FeedPublisher<S> {
    config: FeedConfig,
    sender: S,
    wal: Option<Wal>,
    board: Option<BoardWriter>,
    next_seq: u64,
    /// FxHash: the key is a 16-byte symbol we write ourselves, not
    /// attacker-chosen input, and SipHash was a fifth of the publish path.
    instruments: FxHashMap<InstrumentId, InstrumentState>,
    /// Instruments in the order they became known (snapshot sets, sweeps).
    order: Vec<InstrumentId>,
    sweep_cursor: usize,
    last_send: Instant,
    /// The last time `poll_at` ran (from `poll` or folded into a send).
    last_poll: Instant,
    last_board_heartbeat: Instant,
    stats: FeedStats,
    recovery: Option<RecoveryReport>,
    recovery_failures: Vec<Error>,
    scratch: Vec<MdSample>,
    /// The latest `ts_event` published (the data clock).
    last_ts_event: i64,
    /// Instruments changed since the last board flush (each once, while
    /// `InstrumentState::tick_dirty` or `book_dirty` is set): the board
    /// flush and the depth snapshot policy visit these, not the whole
    /// universe, per batch.
    dirty: Vec<InstrumentId>,
    /// A replica of another host's feed ([`FeedPublisher::open_replica`]):
    /// records keep their source's seq and bytes, and the publisher writes
    /// nothing of its own.
    replica: bool,
    /// Replica: the last record replicated was part of a snapshot set.
    in_snapshot_set: bool,
}

impl<S: MdSender> FeedPublisher<S> {
    /// Opens the feed: the WAL (recovering a torn tail, reporting
    /// corruption), the state replayed from its newest full snapshot set,
    /// the board; `seq` continues after the last valid record. A fresh or
    /// new live segment starts with a snapshot set.
    pub fn open(config: FeedConfig, sender: S) -> Result<FeedPublisher<S>> {
        FeedPublisher::open_with(config, || Ok::<S, Error>(sender))
    }

    /// Like [`FeedPublisher::open`], but creates the transport only once
    /// the WAL's writer lock is held, so a second publisher of the same
    /// feed is refused before it touches the transport (an iceoryx2
    /// publisher would announce itself to the subscribers on creation).
    pub fn open_with<E>(config: FeedConfig, make_sender: impl FnOnce() -> std::result::Result<S, E>) -> Result<Self>
    where
        Error: From<E>,
    {
        FeedPublisher::open_inner(config, make_sender, false)
    }

    /// Opens the feed as a replica of a feed published on another host
    /// (`mdbus bridge in`): WAL, transport and board as with
    /// [`FeedPublisher::open_with`], but the publisher never sequences a
    /// record nor writes one of its own (no snapshot sets, policy
    /// snapshots or heartbeats: the source's come through
    /// [`FeedPublisher::replicate`]). Its WAL holds the source's records,
    /// same seq and same bytes.
    pub fn open_replica<E>(config: FeedConfig, make_sender: impl FnOnce() -> std::result::Result<S, E>) -> Result<Self>
    where
        Error: From<E>,
    {
        FeedPublisher::open_inner(config, make_sender, true)
    }

    fn open_inner<E>(
        config: FeedConfig,
        make_sender: impl FnOnce() -> std::result::Result<S, E>,
        replica: bool,
    ) -> Result<Self>
    where
        Error: From<E>,
    {
        mdbus_types::FeedName::new(&config.feed)?;
        if config.snapshot_threshold.is_nan() || config.snapshot_threshold <= 0.0 {
            return Err(Error::Config(format!(
                "snapshot threshold {} must be > 0",
                config.snapshot_threshold
            )));
        }
        if let Some(group) = &config.group {
            group.check_member().map_err(|e| access(&config.feed, e.to_string()))?;
        }
        if let Some(location) = config.wal_location()? {
            check_owner(&config.feed, location.dir().as_path())?;
            if let Some(group) = &config.group {
                // The folder is the group's before any file is made in it:
                // nobody else ever opens one.
                let dir = location.dir();
                std::fs::create_dir_all(&dir)
                    .map_err(|e| access(&config.feed, format!("cannot create {}: {e}", dir.display())))?;
                group
                    .share(&dir, 0o2750)
                    .map_err(|e| access(&config.feed, e.to_string()))?;
            }
        }
        let wal = match &config.wal_root {
            Some(dir) => Some(Wal::open(dir, &config.feed, config.wal.clone())?),
            None => None,
        };
        if let (Some(group), Some(location)) = (&config.group, config.wal_location()?) {
            share_wal(&config.feed, group, &location.dir())?;
        }
        let sender = make_sender()?;
        let now = Instant::now();
        let mut publisher = FeedPublisher {
            sender,
            next_seq: wal.as_ref().map_or(1, Wal::next_seq),
            recovery: wal.as_ref().map(|w| w.recovery_report().clone()),
            recovery_failures: Vec::new(),
            wal,
            board: None,
            instruments: FxHashMap::default(),
            order: Vec::new(),
            sweep_cursor: 0,
            last_send: now,
            last_poll: now,
            last_board_heartbeat: now,
            stats: FeedStats::default(),
            scratch: Vec::new(),
            dirty: Vec::new(),
            last_ts_event: 0,
            replica,
            in_snapshot_set: false,
            config,
        };
        if let Some(dir) = publisher.config.wal_root.clone() {
            // Found once (it scans the newest segment, 64 MiB by default)
            // for the recovery and the snapshot set below.
            let point = mdbus_wal::recovery_point(&dir, &publisher.config.feed)?;
            // Rebuild the view from the WAL (a reader never needs the lock).
            publisher.recover_state(&dir, point.as_ref())?;
            if let Some(dir) = publisher.config.board_dir.clone() {
                publisher.open_board(&dir)?;
            }
            // The live segment must hold a full snapshot set: it is new, or
            // the previous writer died before finishing the set.
            let live = publisher.wal.as_ref().map(|w| w.segment_path().to_path_buf());
            if !replica
                && point.map(|p| p.path.file_name().map(ToOwned::to_owned))
                    != live.map(|l| l.file_name().map(ToOwned::to_owned))
            {
                publisher.publish_snapshot_set()?;
            }
        } else if let Some(dir) = publisher.config.board_dir.clone() {
            publisher.open_board(&dir)?;
        }
        Ok(publisher)
    }

    fn open_board(&mut self, dir: &std::path::Path) -> Result<()> {
        let path = mdbus_board::board_path(dir, &self.config.feed);
        check_owner(&self.config.feed, &path)?;
        if let Some(group) = &self.config.group {
            // Made 0640 of the group before the board opens it: nobody
            // else ever holds it open (an open file stays readable).
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o640)
                .open(&path)
                .map_err(|e| access(&self.config.feed, format!("cannot create {}: {e}", path.display())))?;
            group
                .share(&path, 0o640)
                .map_err(|e| access(&self.config.feed, e.to_string()))?;
        }
        let board = BoardWriter::open(dir, &self.config.feed, self.config.board_capacity)?;
        self.board = Some(board);
        for id in &self.order {
            let state = self.instruments.get_mut(id).expect("known");
            if state.mark_changed(true, true) {
                self.dirty.push(*id);
            }
        }
        self.flush_board()
    }

    /// Replays the WAL from `point` (from its start without one, as
    /// `ReadFrom::RecoveryPoint` does) into the books.
    fn recover_state(&mut self, dir: &std::path::Path, point: Option<&mdbus_wal::RecoveryPoint>) -> Result<()> {
        let options = ReadOptions {
            from: point.map_or(ReadFrom::Start, |p| ReadFrom::Seq(p.start_seq())),
            skip_corrupt: true,
        };
        let mut reader = match WalReader::open(dir, &self.config.feed, options) {
            Ok(reader) => reader,
            Err(mdbus_wal::Error::NoSegments { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let now = Instant::now();
        while let Some(event) = reader.next_event()? {
            if let ReadEvent::Record(record) = event {
                let record = record.record;
                self.stats.recovered_records += 1;
                // A record the WAL holds was valid when published: one that
                // does not pass the publish checks now (a delta whose
                // snapshot was in a corrupt stretch the reader skipped) or
                // does not apply is kept for the caller, and its book is
                // forgotten (its deltas are refused until a snapshot comes).
                let checked = self.check_record(record, &mut Vec::new());
                self.last_ts_event = self.last_ts_event.max(record.header().ts_event);
                if let Err(e) = checked.and_then(|()| self.apply(record, now)) {
                    if let Some(id) = record.instrument()
                        && let Some(state) = self.instruments.get_mut(&id)
                    {
                        state.has_book = false;
                    }
                    self.recovery_failures.push(Error::Recovery {
                        seq: record.header().seq,
                        source: Box::new(e),
                    });
                }
            }
        }
        Ok(())
    }

    /// Records of the WAL that did not apply while the publisher rebuilt
    /// its books on open (each an [`Error::Recovery`] naming its seq); the
    /// books concerned were dropped until their next snapshot. Empty for a
    /// consistent WAL.
    pub fn recovery_failures(&self) -> &[Error] {
        &self.recovery_failures
    }

    /// The WAL's recovery report from [`FeedPublisher::open`], if a WAL is used.
    pub fn recovery_report(&self) -> Option<&RecoveryReport> {
        self.recovery.as_ref()
    }

    /// The seq the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// What has been published.
    pub fn stats(&self) -> FeedStats {
        self.stats
    }

    /// Instruments known to the publisher.
    pub fn instrument_count(&self) -> usize {
        self.order.len()
    }

    /// The publisher's current book of `id`.
    pub fn book(&self, id: &InstrumentId) -> Option<&Book> {
        self.instruments.get(id).filter(|s| s.has_book).map(|s| &s.book)
    }

    /// The transport.
    pub fn sender_mut(&mut self) -> &mut S {
        &mut self.sender
    }

    /// The WAL, if used.
    pub fn wal(&self) -> Option<&Wal> {
        self.wal.as_ref()
    }

    /// Waits until the WAL's background preparation of its next segment
    /// (started at open and after every roll: allocation and, by default,
    /// the pages faulted in) has finished ([`Wal::wait_prepared`]). With
    /// large folios, a fast writer's rate has that first one prepared
    /// again, in the run (see `WalOptions::large_folios`): one more
    /// preparation beside the publisher, its first few MiB in.
    /// For a publisher that wants nothing beside it on its core from the
    /// first record on; returns at once without a WAL or a preparation.
    pub fn wait_wal_prepared(&mut self) {
        if let Some(wal) = &mut self.wal {
            wal.wait_prepared();
        }
    }

    /// Applies a published record to the publisher's view.
    fn apply(&mut self, record: RecordRef<'_>, now: Instant) -> Result<()> {
        let Some(id) = record.instrument() else { return Ok(()) };
        let state = match self.instruments.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                self.order.push(id);
                e.insert(InstrumentState::new(id, now))
            }
        };
        let (tick, book) = match record {
            RecordRef::Tick(t) => {
                state.last_tick = Some(*t);
                (true, false)
            }
            RecordRef::BookSnapshot(s) => {
                state.book.apply_snapshot(s)?;
                state.has_book = true;
                state.at_snapshot = *s;
                state.snapshot_at = now;
                (false, true)
            }
            RecordRef::BookDelta(d) => (false, state.book.apply_delta(d)?),
            RecordRef::Heartbeat(_) => (false, false),
        };
        if state.mark_changed(tick, book) {
            self.dirty.push(id);
        }
        Ok(())
    }

    /// Checks a batch before any of it takes a seq: known kinds, valid
    /// snapshots and deltas, deltas only for instruments with a book.
    fn check_batch(&self, batch: &[MdSample]) -> Result<()> {
        let mut booked: Vec<InstrumentId> = Vec::new();
        for sample in batch {
            self.check_record(sample.record()?, &mut booked)?;
        }
        Ok(())
    }

    /// Checks one record; `booked` holds the instruments whose snapshot
    /// came earlier in the same batch.
    fn check_record(&self, record: RecordRef<'_>, booked: &mut Vec<InstrumentId>) -> Result<()> {
        match record {
            RecordRef::Tick(t) => {
                InstrumentId::from_bytes(t.instrument.0)?;
            }
            RecordRef::BookSnapshot(s) => {
                validate_snapshot(s)?;
                booked.push(s.instrument);
            }
            RecordRef::BookDelta(d) => {
                let known =
                    self.instruments.get(&d.instrument).is_some_and(|s| s.has_book) || booked.contains(&d.instrument);
                if !known {
                    return Err(Error::DeltaBeforeSnapshot {
                        instrument: d.instrument,
                    });
                }
                let reason = if Side::from_u8(d.side).is_none() {
                    Some(format!("side {} is neither 0 (bid) nor 1 (ask)", d.side))
                } else if d.price.is_null() {
                    Some("price is NULL".to_string())
                } else if d.qty < 0 {
                    Some(format!("negative qty {}", d.qty))
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(Error::BadDelta {
                        instrument: d.instrument,
                        reason,
                    });
                }
            }
            RecordRef::Heartbeat(_) => {}
        }
        Ok(())
    }

    /// Publishes a batch (records of any kinds, `seq` and `ts_publish` are
    /// set here; the caller's buffer holds what was sent). The whole batch
    /// is checked first: an invalid record is an error and nothing is
    /// published. Then the policy snapshots that became due are published
    /// as a batch of their own. Returns the seqs the batch took.
    ///
    /// The housekeeping of [`FeedPublisher::poll`] runs here too, at most
    /// once per [`POLL_EVERY`]: a feed that publishes needs no `poll` call;
    /// one that goes quiet calls `poll` from its idle loop so that
    /// heartbeats go out.
    pub fn publish_batch(&mut self, batch: &mut [MdSample]) -> Result<RangeInclusive<u64>> {
        self.check_batch(batch)?;
        let range = self.send_batch(batch, true)?;
        self.after_publish()?;
        Ok(range)
    }

    /// After a caller's batch or record: the policy snapshots it made due,
    /// the board, and the folded `poll` (at most once per [`POLL_EVERY`],
    /// on the clock the send just read into `last_send`).
    fn after_publish(&mut self) -> Result<()> {
        if self.replica {
            return self.flush_board();
        }
        self.policy_snapshots_for_dirty()?;
        self.flush_board()?;
        if self.last_send - self.last_poll >= POLL_EVERY {
            self.poll_at(self.last_send)?;
        }
        Ok(())
    }

    /// Ends a send batch sent at `now` (wakes blocked receivers).
    fn end_send_batch(&mut self, now: Instant) -> Result<()> {
        self.sender.end_batch()?;
        self.stats.batches += 1;
        self.last_send = now;
        Ok(())
    }

    /// Publishes one record (a [`Tick`], [`BookSnapshot`], [`BookDelta`](mdbus_types::BookDelta) or
    /// heartbeat) as a batch of its own; returns its seq. See
    /// [`FeedPublisher::publish_batch`].
    ///
    /// The record is stamped in place (`seq`, `ts_publish`, `flags`), then
    /// its own bytes are appended to the WAL and written once into the
    /// transport's shared-memory sample: no `MdSample` is built on the way.
    /// A record refused by the checks is left as it was.
    pub fn publish<R: Record>(&mut self, record: &mut R) -> Result<u64> {
        self.check_record(record.to_ref()?, &mut Vec::new())?;
        if let Some(wal) = &self.wal
            && wal.needs_roll(size_of::<R>().next_multiple_of(8))
        {
            self.roll_with_snapshot_set()?;
        }
        let now = Instant::now();
        let seq = self.next_seq;
        stamp_header(record.header_mut(), seq, true);
        let stamped = record.to_ref()?;
        let rolled = self.log_one(stamped, now)?;
        // Straight from the caller's record into the loan: one copy.
        self.sender.send_record(stamped)?;
        self.end_send_batch(now)?;
        if rolled {
            self.write_snapshot_set()?;
        }
        self.after_publish()?;
        Ok(seq)
    }

    /// Logs and applies one stamped record (the caller sends it next);
    /// whether the WAL started a new segment for it.
    #[inline]
    fn log_one(&mut self, record: RecordRef<'_>, now: Instant) -> Result<bool> {
        let mut rolled = false;
        if let Some(wal) = &mut self.wal {
            rolled = matches!(wal.append_record(record)?, AppendOutcome::NewSegment { .. });
        }
        // The seq is taken once the record is in the WAL: if the send
        // fails, subscribers see a hole that the WAL fills.
        self.next_seq += 1;
        self.stats.records += 1;
        self.last_ts_event = self.last_ts_event.max(record.header().ts_event);
        self.apply(record, now)?;
        Ok(rolled)
    }

    /// Sequences, logs and sends `batch` (already checked) as one send
    /// batch. With `may_roll`, a batch that does not fit in the live WAL
    /// segment starts a new segment, which begins with the snapshot set; if
    /// a batch is larger than a whole segment and the WAL rolled inside it,
    /// the set follows the batch in the new segment.
    fn send_batch(&mut self, batch: &mut [MdSample], may_roll: bool) -> Result<RangeInclusive<u64>> {
        let first = self.next_seq;
        let Some(last_index) = batch.len().checked_sub(1) else {
            return Ok(first..=first - 1);
        };
        if may_roll && let Some(wal) = &self.wal {
            let bytes = frame_bytes(batch)?;
            if wal.needs_roll(bytes - mdbus_wal::FRAME_HEADER_LEN) {
                self.roll_with_snapshot_set()?;
            }
        }
        let now = Instant::now();
        let batch_ts = self.config.batch_clock.then(clock::now_ns);
        let mut rolled_inside = false;
        for (i, sample) in batch.iter_mut().enumerate() {
            let ts_publish = batch_ts.unwrap_or_else(clock::now_ns);
            stamp_header_at(sample.header_mut(), self.next_seq, i == last_index, ts_publish);
            rolled_inside |= self.log_one(sample.record()?, now)?;
            // The caller's sample as it is: one copy into the loan.
            self.sender.send(sample)?;
        }
        self.end_send_batch(now)?;
        if rolled_inside {
            if !may_roll {
                return Err(Error::SnapshotSetTooLarge {
                    instruments: self.order.len(),
                    bytes: frame_bytes(batch)? as u64,
                    segment_bytes: self.config.wal.segment_bytes,
                });
            }
            self.write_snapshot_set()?;
        }
        Ok(first..=self.next_seq - 1)
    }

    fn roll_with_snapshot_set(&mut self) -> Result<()> {
        if let Some(wal) = &mut self.wal {
            wal.roll()?;
        }
        if let Some(board) = &mut self.board {
            // A roll may have prepared the segment in this thread.
            board.heartbeat();
        }
        self.write_snapshot_set()
    }

    /// Writes the current tick and book of every instrument changed since
    /// the last flush to the board, then `last_seq`.
    fn flush_board(&mut self) -> Result<()> {
        let mut dirty = std::mem::take(&mut self.dirty);
        let mut result = Ok(());
        for id in &dirty {
            let state = self.instruments.get_mut(id).expect("known");
            if let Some(board) = &mut self.board
                && result.is_ok()
            {
                result = write_board(board, state);
            }
            (state.tick_dirty, state.book_dirty) = (false, false);
        }
        dirty.clear();
        self.dirty = dirty;
        if let Some(board) = &mut self.board {
            board.set_last_seq(self.next_seq - 1);
        }
        result
    }

    /// A snapshot of `id`'s current book, ready to publish.
    fn snapshot_of(&self, id: &InstrumentId, flags: u16) -> Option<MdSample> {
        let state = self.instruments.get(id).filter(|s| s.has_book)?;
        let mut snapshot = state.book.to_snapshot();
        snapshot.header = RecordHeader::new(Kind::BookSnapshot, state.book.last_change().ts_event);
        snapshot.header.flags = flags;
        Some(snapshot.into())
    }

    /// Publishes a snapshot of every instrument changed since the last
    /// board flush whose top-10 depth moved past the threshold.
    fn policy_snapshots_for_dirty(&mut self) -> Result<()> {
        let threshold = self.config.snapshot_threshold;
        let mut due = std::mem::take(&mut self.scratch);
        due.clear();
        for id in &self.dirty {
            let state = &self.instruments[id];
            if !state.has_book || state.book.last_change().seq <= state.at_snapshot.header.seq {
                continue;
            }
            // "Top-10 depth changed by more than the threshold": the total
            // quantity of both sides' top 10 against the last snapshot's.
            let then = depth(&state.at_snapshot);
            let moved = (state.book.depth_qty() - then).abs() as f64;
            if moved > threshold * then.max(1) as f64 {
                due.extend(self.snapshot_of(id, 0));
            }
        }
        if !due.is_empty() {
            self.stats.policy_snapshots += due.len() as u64;
            self.send_batch(&mut due, true)?;
        }
        self.scratch = due;
        Ok(())
    }

    /// Writes the snapshot set (RECOVERY_SNAPSHOT records closed by a
    /// RECOVERY_SNAPSHOT heartbeat) into the current segment.
    fn write_snapshot_set(&mut self) -> Result<()> {
        let mut set = Vec::with_capacity(2 * self.order.len() + 1);
        for id in &self.order {
            set.extend(self.snapshot_of(id, FLAG_RECOVERY_SNAPSHOT));
            if let Some(tick) = self.instruments[id].last_tick {
                let mut tick = tick;
                tick.header.flags = FLAG_RECOVERY_SNAPSHOT;
                set.push(tick.into());
            }
        }
        let mut heartbeat = RecordHeader::new(Kind::Heartbeat, self.heartbeat_ts());
        heartbeat.flags = FLAG_RECOVERY_SNAPSHOT;
        set.push(Heartbeat { header: heartbeat }.into());
        // The set must not be split across segments: it goes where it fits
        // whole, and a segment that cannot hold it at all is an error.
        if let Some(wal) = &mut self.wal {
            let bytes = frame_bytes(&set)?;
            let room = self
                .config
                .wal
                .segment_bytes
                .saturating_sub(mdbus_wal::HEADER_LEN as u64);
            if bytes as u64 > room {
                return Err(Error::SnapshotSetTooLarge {
                    instruments: self.order.len(),
                    bytes: bytes as u64,
                    segment_bytes: self.config.wal.segment_bytes,
                });
            }
            if wal.needs_roll(bytes - mdbus_wal::FRAME_HEADER_LEN) {
                wal.roll()?;
            }
        }
        self.send_batch(&mut set, false)?;
        self.stats.snapshot_sets += 1;
        self.flush_board()
    }

    /// Starts a new WAL segment now and writes the snapshot set first (on
    /// request; rolls happen by themselves when a segment is full, or when
    /// the WAL's rate probe ends a fast writer's first segment early: see
    /// `WalOptions::large_folios`). Without a WAL, publishes the snapshot
    /// set alone.
    pub fn publish_snapshot_set(&mut self) -> Result<()> {
        self.roll_with_snapshot_set()
    }

    /// Call regularly from the publishing loop: sends a heartbeat when the
    /// feed was quiet for `heartbeat_interval`, refreshes the board's
    /// heartbeat, and sends the interval snapshots that are due (a bounded
    /// number per call, so a large universe is spread over calls).
    pub fn poll(&mut self) -> Result<()> {
        self.poll_at(Instant::now())
    }

    /// The `ts_event` of the publisher's own heartbeats: the wall clock, or
    /// with [`FeedConfig::data_clock`] the latest `ts_event` published (0
    /// before the first record: the data's time has not started).
    fn heartbeat_ts(&self) -> i64 {
        if self.config.data_clock {
            self.last_ts_event
        } else {
            clock::now_ns()
        }
    }

    /// [`FeedPublisher::poll`] as of `now` (a test's clock, or the caller's
    /// reading of it when it has one at hand).
    pub fn poll_at(&mut self, now: Instant) -> Result<()> {
        self.last_poll = now;
        if !self.replica && now - self.last_send >= self.config.heartbeat_interval {
            let mut heartbeat: [MdSample; 1] = [Heartbeat {
                header: RecordHeader::new(Kind::Heartbeat, self.heartbeat_ts()),
            }
            .into()];
            self.send_batch(&mut heartbeat, true)?;
            self.stats.heartbeats += 1;
            if let Some(board) = &mut self.board {
                board.set_last_seq(self.next_seq - 1);
            }
        }
        if let Some(board) = &mut self.board
            && now - self.last_board_heartbeat >= Duration::from_millis(50)
        {
            board.heartbeat();
            self.last_board_heartbeat = now;
        }
        if self.replica {
            return Ok(());
        }
        const SWEEP_PER_POLL: usize = 256;
        let mut due = std::mem::take(&mut self.scratch);
        due.clear();
        let n = self.order.len();
        for _ in 0..n.min(SWEEP_PER_POLL) {
            self.sweep_cursor = (self.sweep_cursor + 1) % n;
            let id = self.order[self.sweep_cursor];
            let state = &self.instruments[&id];
            if state.has_book && now - state.snapshot_at >= self.config.snapshot_interval {
                due.extend(self.snapshot_of(&id, 0));
            }
        }
        if !due.is_empty() {
            self.stats.policy_snapshots += due.len() as u64;
            self.send_batch(&mut due, true)?;
            self.flush_board()?;
        }
        self.scratch = due;
        Ok(())
    }

    /// Replica ([`FeedPublisher::open_replica`]): republishes records of
    /// the source feed as they are (seq, `ts_publish`, flags: the same
    /// bytes) into the WAL, the transport (one send batch) and the board.
    /// The first record's seq must be [`FeedPublisher::next_seq`] and each
    /// one after it the next: otherwise [`Error::ReplicaSeq`] and nothing
    /// is published. A snapshot set (a `RECOVERY_SNAPSHOT` record after
    /// one that is not) starts a new WAL segment, as at the source, so the
    /// replica's own recovery point is a set too. A record that does not
    /// apply to the replica's books is still published; that book is
    /// dropped until its next snapshot (as on recovery).
    pub fn replicate(&mut self, records: &[RecordRef<'_>]) -> Result<()> {
        if !self.replica {
            return Err(Error::Config(
                "replicate needs a publisher opened with open_replica".into(),
            ));
        }
        for (i, record) in records.iter().enumerate() {
            let expected = self.next_seq + i as u64;
            if record.header().seq != expected {
                return Err(Error::ReplicaSeq {
                    expected,
                    got: record.header().seq,
                });
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        for record in records {
            let set = record.header().flags & FLAG_RECOVERY_SNAPSHOT != 0;
            if set
                && !self.in_snapshot_set
                && let Some(wal) = &mut self.wal
            {
                wal.roll()?;
            }
            self.in_snapshot_set = set;
            if let Some(wal) = &mut self.wal {
                wal.append_record(*record)?;
            }
            self.next_seq += 1;
            self.stats.records += 1;
            self.last_ts_event = self.last_ts_event.max(record.header().ts_event);
            if self.apply(*record, now).is_err()
                && let Some(id) = record.instrument()
                && let Some(state) = self.instruments.get_mut(&id)
            {
                state.has_book = false;
            }
            self.sender.send_record(*record)?;
        }
        self.end_send_batch(now)?;
        self.after_publish()
    }

    /// Replica: leaves the seqs from [`FeedPublisher::next_seq`] to
    /// `seq - 1` out, because the source no longer has them (or the replica
    /// starts later than seq 1): the WAL continues at `seq` in a new
    /// segment, a hole its readers and the subscribers report as a gap.
    /// The next record replicated must carry `seq`.
    pub fn replica_skip_to(&mut self, seq: u64) -> Result<()> {
        if !self.replica {
            return Err(Error::Config(
                "replica_skip_to needs a publisher opened with open_replica".into(),
            ));
        }
        if seq < self.next_seq {
            return Err(Error::ReplicaSeq {
                expected: self.next_seq,
                got: seq,
            });
        }
        if let Some(wal) = &mut self.wal {
            wal.skip_to(seq)?;
        }
        self.next_seq = seq;
        self.in_snapshot_set = false;
        Ok(())
    }

    /// Syncs the WAL (whatever the policy) and ends the last batch.
    pub fn flush(&mut self) -> Result<()> {
        if let Some(wal) = &self.wal {
            wal.sync()?;
        }
        self.sender.end_batch()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdbus_types::{Level, Price};

    fn snap(levels: &[(i64, i64)], asks: &[(i64, i64)]) -> BookSnapshot {
        let mut s = BookSnapshot::empty(InstrumentId::new("X").unwrap(), 0);
        s.bid_count = levels.len() as u16;
        s.ask_count = asks.len() as u16;
        for (i, &(p, q)) in levels.iter().enumerate() {
            s.bids[i] = Level {
                price: Price(p),
                qty: q,
            };
        }
        for (i, &(p, q)) in asks.iter().enumerate() {
            s.asks[i] = Level {
                price: Price(p),
                qty: q,
            };
        }
        s
    }

    #[test]
    fn depth_sums_both_sides_valid_levels() {
        let then = snap(&[(10, 5), (9, 5)], &[(11, 4)]);
        assert_eq!(depth(&then), 14);
        assert_eq!(depth(&snap(&[], &[])), 0);
    }
}
