//! The subscriber: replay-merge (Aeron's ReplayMerge), gap fill from the
//! WAL, and the caches it keeps current.
//!
//! One stream, in seq order, each seq once:
//!
//! 1. The live receiver is attached first (the caller passes it open) and
//!    whatever it receives is buffered.
//! 2. The WAL is replayed from the start point ([`StartFrom`]) up to the
//!    first buffered live seq; live records at or below what was already
//!    delivered are dropped as duplicates.
//! 3. [`Event::ReplayDone`] marks the switch, then live records follow.
//! 4. A hole in live seq (the receiver's queue overflowed, a publisher
//!    restarted) is filled from the WAL ([`Source::GapFill`]) before any
//!    later record; what the WAL no longer has is an explicit
//!    [`Event::Gap`], never silence.
//! 5. After such a hole (most often the receiver fell behind and its queue
//!    dropped the oldest) the subscriber reads the WAL on, past the hole,
//!    to its end, and only then takes records from the receiver again (its
//!    copies up to there are duplicates, dropped where they lie). Through
//!    the receiver, each record behind would cost a receive and a copy into
//!    the live buffer, and the WAL holds every published record (the
//!    README's Performance section has the harness runs: the unpaced p90
//!    and p99 fell 4-6x). Where the WAL lacks one during that catch-up (a
//!    corrupt frame, retention), the catch-up stops there and the receiver
//!    is looked at: a record its queue still holds is delivered live; one
//!    the queue dropped meanwhile is a [`Event::Gap`] (draining the queue
//!    all along, as before, might have kept it: the price of not taking
//!    every record through the receiver).
//!
//! With no publisher running, the subscriber replays the WAL, follows its
//! tail, and switches to live when a publisher appears.
//!
//! Length (~650 lines): the replay-merge state machine (replay, live, gap
//! fill) is read as one; its nine fields are not yet one state enum (open in
//! issue 11).

use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mdbus_transport::MdReceiver;
use mdbus_types::{BookSnapshot, InstrumentId, MdSample, RecordRef, SeqRange, Tick, WalLocation};
use mdbus_wal::{ReadEvent, ReadFrom, ReadOptions, WalReader};
use parking_lot::Mutex;

use crate::cached::CachedHistory;
use crate::error::{Error, Result};
use crate::history::History;
use crate::l1::{Batched, L1Batch, L1Cache, L1Writer, SnapshotCheck};
use crate::l2::{CacheLevel, L2Cache, L2Config};

/// Records the live buffer keeps room for once drained (the size of
/// iceoryx2's own subscriber queue): a larger buffer, left by a lag, is
/// shrunk to this.
const KEEP_LIVE_BUFFER: usize = 4096;

/// Records a silent replay applies between two looks at the live stream.
const SILENT_RUN: u64 = 64;

/// Where the subscriber's stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartFrom {
    /// The newest full snapshot set in the WAL (the oldest record when no
    /// segment holds one): the smallest replay that rebuilds every book.
    #[default]
    RecoveryPoint,
    /// This seq (a [`Event::Gap`] first if the WAL no longer has it).
    Seq(u64),
    /// The first record whose `ts_event` is at or after this (ns since
    /// Unix epoch).
    Time(i64),
    /// No replay: the first live record. The WAL, if given, still fills
    /// holes and answers history queries.
    LiveOnly,
}

/// Where a record delivered by [`Subscriber::next_event`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// Replayed from the WAL before the switch to live.
    Replay,
    /// Received live.
    Live,
    /// Read from the WAL to fill a hole in the live stream, or after one,
    /// up to the WAL's end, while the subscriber catches up (its receiver
    /// fell behind).
    GapFill,
}

/// What [`Subscriber::next_event`] yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
// A record travels by value (376 bytes) on purpose: boxing it would cost an
// allocation per record on the replay and live paths.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// The next record, in seq order.
    Record {
        /// The record.
        sample: MdSample,
        /// Where it came from.
        source: Source,
    },
    /// Replay ended and live begins: every later record is live or a gap
    /// fill. Yielded once, right before the first live record.
    ReplayDone {
        /// The last seq delivered before the switch (`None`: nothing was
        /// replayed).
        last_replayed_seq: Option<u64>,
    },
    /// These records were published but neither the live stream nor the
    /// WAL has them any more (retention, corruption, no WAL). Every book is
    /// stale until its next snapshot.
    Gap(SeqRange),
}

impl Event {
    /// The record's seq, for [`Event::Record`].
    pub fn seq(&self) -> Option<u64> {
        self.to_ref().seq()
    }

    /// The event by reference.
    #[inline]
    pub fn to_ref(&self) -> EventRef<'_> {
        match self {
            Event::Record { sample, source } => EventRef::Record {
                sample,
                source: *source,
            },
            Event::ReplayDone { last_replayed_seq } => EventRef::ReplayDone {
                last_replayed_seq: *last_replayed_seq,
            },
            Event::Gap(lost) => EventRef::Gap(*lost),
        }
    }
}

/// What [`Subscriber::next_event_ref`] yields: an [`Event`] by reference.
/// A live record is read where the transport holds it (iceoryx2: in shared
/// memory, no copy), valid until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventRef<'a> {
    /// The next record, in seq order.
    Record {
        /// The record.
        sample: &'a MdSample,
        /// Where it came from.
        source: Source,
    },
    /// [`Event::ReplayDone`].
    ReplayDone {
        /// The last seq delivered before the switch (`None`: nothing was
        /// replayed).
        last_replayed_seq: Option<u64>,
    },
    /// [`Event::Gap`].
    Gap(SeqRange),
}

impl EventRef<'_> {
    /// The record's seq, for [`EventRef::Record`].
    pub fn seq(&self) -> Option<u64> {
        match self {
            EventRef::Record { sample, .. } => Some(sample.header().seq),
            _ => None,
        }
    }

    /// The event copied out (at most one record, 376 bytes).
    #[inline]
    pub fn to_event(self) -> Event {
        match self {
            EventRef::Record { sample, source } => Event::Record {
                sample: *sample,
                source,
            },
            EventRef::ReplayDone { last_replayed_seq } => Event::ReplayDone { last_replayed_seq },
            EventRef::Gap(lost) => Event::Gap(lost),
        }
    }
}

/// Which slot holds the event the last `next_event_ref` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Nothing,
    Ready,
    Held,
    /// The front of `pending`, taken off at the next call.
    Front,
}

/// How a [`Subscriber`] runs. Start from `SubscriberConfig::default()` and
/// the builder methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberConfig {
    /// The feed's WAL (replay, gap fill, L3); `None`: live only, holes
    /// become [`Event::Gap`]s.
    pub wal: Option<WalLocation>,
    /// Where the stream starts.
    pub start: StartFrom,
    /// How much history L2 keeps.
    pub l2: L2Config,
    /// Live records buffered while the WAL is read (beyond this the
    /// transport's own queue holds them, and then drops the oldest, which
    /// the WAL fills in again).
    pub live_buffer: usize,
    /// A gap fill reads the WAL forward when it is fewer than this many
    /// records behind, and seeks (through the sparse index) otherwise.
    pub seek_distance: u64,
    /// What the replay before the switch to live keeps.
    pub catch_up: CatchUp,
}

/// What a [`Subscriber`]'s replay (before the switch to live) keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CatchUp {
    /// L1 and L2: history queries over the replayed range answer from
    /// memory.
    #[default]
    Full,
    /// L1 only (the latest state): L2 starts at the switch to live, and
    /// history queries over the replayed range go to the WAL (L3). About
    /// twice the replay rate (`cargo bench -p mdbus-subscriber --bench
    /// cache -- replay`): for a restart that must be live soon.
    StateOnly,
    /// L1 only, and the replayed records are not delivered: the replay
    /// applies them to L1 inside the call, and the first event is
    /// [`Event::ReplayDone`] (its `last_replayed_seq` is the record L1 is
    /// at; [`SubscriberStats::replayed`] counts them), or an [`Event::Gap`]
    /// where the WAL lost records. For a process that wants the latest
    /// state and then the live stream (a risk service, a gateway): the
    /// fastest catch-up (`cargo run --release -p mdbus-subscriber --example
    /// catch_up -- 1000000 silent`). The call that replays does not return
    /// before the replay reaches the live stream or the WAL's end, whatever
    /// its timeout. History over the replayed range comes from the WAL.
    Silent,
}

impl Default for SubscriberConfig {
    fn default() -> SubscriberConfig {
        SubscriberConfig {
            wal: None,
            start: StartFrom::RecoveryPoint,
            l2: L2Config::default(),
            live_buffer: 1 << 20,
            seek_distance: 1 << 16,
            catch_up: CatchUp::Full,
        }
    }
}

impl SubscriberConfig {
    /// Uses the feed's WAL at `wal`.
    pub fn wal(mut self, wal: WalLocation) -> SubscriberConfig {
        self.wal = Some(wal);
        self
    }

    /// The WAL to use, found the one way every mdbus program finds it: the
    /// root the user gave (`<root>/<feed>`) first, else the WAL the
    /// publisher announces (the iceoryx2 service attribute `mdbus.wal_dir`,
    /// `IoxReceiver::wal()`), else none (the config is unchanged: check
    /// [`SubscriberConfig::wal`] to tell).
    pub fn wal_found(
        self,
        root: Option<&Path>,
        feed: &str,
        announced: Option<WalLocation>,
    ) -> Result<SubscriberConfig> {
        Ok(match (root, announced) {
            (Some(root), _) => self.wal(WalLocation::try_new(root, feed)?),
            (None, Some(wal)) => self.wal(wal),
            (None, None) => self,
        })
    }

    /// Sets the start point.
    pub fn start(mut self, start: StartFrom) -> SubscriberConfig {
        self.start = start;
        self
    }

    /// Sets the L2 limits.
    pub fn l2(mut self, l2: L2Config) -> SubscriberConfig {
        self.l2 = l2;
        self
    }

    /// Sets [`SubscriberConfig::catch_up`].
    pub fn catch_up(mut self, catch_up: CatchUp) -> SubscriberConfig {
        self.catch_up = catch_up;
        self
    }

    /// Sets [`SubscriberConfig::live_buffer`].
    pub fn live_buffer(mut self, records: usize) -> SubscriberConfig {
        self.live_buffer = records;
        self
    }
}

/// What a [`Subscriber`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// Records delivered from the WAL before the switch to live.
    pub replayed: u64,
    /// Records delivered live.
    pub live: u64,
    /// Records delivered from the WAL after the switch to live
    /// ([`Source::GapFill`]: holes in the live stream, and the catch-up
    /// after one).
    pub gap_filled: u64,
    /// Holes in the live stream that were filled from the WAL (a catch-up
    /// that stopped at a hole in the WAL counts again when the receiver
    /// shows the hole).
    pub gap_fills: u64,
    /// [`Event::Gap`]s delivered.
    pub gaps: u64,
    /// Records lost in those gaps.
    pub gap_records: u64,
    /// Live records dropped because their seq was already delivered.
    pub duplicates: u64,
    /// Snapshots that differed from the book kept by deltas (a bug or a
    /// lost delta); the book was reset from the snapshot. Per instrument:
    /// [`L1Cache::mismatches`].
    pub mismatches: u64,
    /// Records the caches could not apply (invalid snapshot or delta,
    /// unknown kind).
    pub bad_records: u64,
    /// The seq of the last record delivered.
    pub last_seq: Option<u64>,
}

/// How long a replay waits for a live record before it reads the WAL's
/// tail again (the WAL has no notification; the live stream does).
pub const WAL_TAIL_POLL: Duration = Duration::from_millis(5);

/// Where the merge is: one state instead of flags that must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the WAL from the start point while live records wait in
    /// `pending` (without a WAL: waiting for the first live record). Ends
    /// with [`Event::ReplayDone`] when the next seq is the oldest live one.
    Replay {
        /// The last seq delivered from the WAL.
        last_replayed: Option<u64>,
    },
    /// Delivering live records.
    Live {
        /// Inside a hole of the live stream being filled from the WAL
        /// (counted once per hole in [`SubscriberStats::gap_fills`]).
        filling: bool,
        /// The receiver fell behind (its queue dropped records, a hole
        /// showed it): the buffered records and the WAL supply the stream,
        /// up to the WAL's end, and the receiver is not drained meanwhile
        /// (what its queue drops is in the WAL; see the module's point 5).
        behind: bool,
    },
}

impl State {
    /// Live, no hole open, not behind.
    const KEEPING_UP: State = State::Live {
        filling: false,
        behind: false,
    };

    /// Live, no hole open, keeping whether the subscriber is behind.
    #[inline]
    fn hole_closed(self) -> State {
        match self {
            State::Live { behind, .. } => State::Live { filling: false, behind },
            State::Replay { .. } => State::KEEPING_UP,
        }
    }
}

/// Replay-merge subscriber over any live receiver: `InProcReceiver` in
/// tests and in-process use, `IoxReceiver` (iceoryx2) across processes.
/// Create it, and call [`Subscriber::next_event`], in the thread that owns
/// the receiver; read the caches from anywhere ([`Subscriber::l1`],
/// [`Subscriber::history`]).
pub struct Subscriber<R: MdReceiver> {
    /// The live sample the last event lent (returned to the transport at
    /// the next call).
    held: Option<R::Held>,
    last: Last,
    receiver: R,
    wal: Option<WalLocation>,
    reader: Option<WalReader>,
    /// Seq of the last record the reader yielded (`None` right after a seek).
    reader_last: Option<u64>,
    live_buffer: usize,
    seek_distance: u64,
    /// L2 is kept while replaying ([`CatchUp::Full`]).
    l2_in_replay: bool,
    /// Replayed records are applied, not delivered ([`CatchUp::Silent`]).
    silent_replay: bool,
    /// A silent replay's L1 updates, flushed into `l1` before `read_wal`
    /// returns.
    l1_batch: L1Batch,
    state: State,
    /// The seq the next delivered record must carry (`None`: the first one
    /// decides).
    next_seq: Option<u64>,
    pending: VecDeque<MdSample>,
    stash: Option<Event>,
    /// The event `step` produced (built in place: a record is ~380 bytes,
    /// and every move of it is a copy).
    ready: Option<Event>,
    drain_tick: u32,
    /// The event `step` just returned already updated the caches (a WAL
    /// record applied straight from the map).
    applied: bool,
    l1: Arc<L1Cache>,
    l2: Arc<Mutex<L2Cache>>,
    history: CachedHistory,
    stats: SubscriberStats,
}

impl<R: MdReceiver + fmt::Debug> fmt::Debug for Subscriber<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("receiver", &self.receiver)
            .field("state", &self.state)
            .field("next_seq", &self.next_seq)
            .field("pending", &self.pending.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<R: MdReceiver> Subscriber<R> {
    /// A subscriber over `receiver`, which must already be attached (so
    /// nothing published from now on is missed), replaying `config.wal`
    /// from `config.start`.
    pub fn new(receiver: R, config: SubscriberConfig) -> Result<Subscriber<R>> {
        if config.live_buffer == 0 {
            return Err(Error::Config("live_buffer must be at least 1".into()));
        }
        let l3 = config.wal.clone().map(History::open);
        let (reader, next_seq) = match (&config.wal, config.start) {
            (None, StartFrom::Seq(seq)) => (None, Some(seq)),
            (None, _) | (Some(_), StartFrom::LiveOnly) => (None, None),
            (Some(w), start) => {
                let (from, next_seq) = match start {
                    StartFrom::Seq(seq) => (ReadFrom::Seq(seq), Some(seq)),
                    StartFrom::Time(ts) => (ReadFrom::Time(ts), None),
                    _ => (ReadFrom::RecoveryPoint, None),
                };
                let options = ReadOptions {
                    from,
                    skip_corrupt: true,
                };
                (Some(WalReader::open(w.root(), w.feed().as_str(), options)?), next_seq)
            }
        };
        let l2 = Arc::new(Mutex::new(L2Cache::new(config.l2)));
        Ok(Subscriber {
            held: None,
            last: Last::Nothing,
            receiver,
            wal: config.wal,
            reader,
            reader_last: None,
            live_buffer: config.live_buffer,
            seek_distance: config.seek_distance,
            l2_in_replay: config.catch_up == CatchUp::Full,
            silent_replay: config.catch_up == CatchUp::Silent,
            l1_batch: L1Batch::default(),
            state: State::Replay { last_replayed: None },
            next_seq,
            pending: VecDeque::new(),
            stash: None,
            ready: None,
            drain_tick: 0,
            applied: false,
            l1: Arc::new(L1Cache::new()),
            history: CachedHistory {
                l2: Arc::clone(&l2),
                l3,
            },
            l2,
            stats: SubscriberStats::default(),
        })
    }

    /// The next event, waiting up to `timeout` for one; `Ok(None)` when
    /// nothing came (call again: a stopped publisher may come back). The
    /// caches are updated before the event is returned.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>> {
        Ok(self.next_event_ref(timeout)?.map(EventRef::to_event))
    }

    /// [`Subscriber::next_event`] without copying the event out, valid
    /// until the next call. Live, with nothing buffered (the subscriber
    /// keeps up), a record is read where the transport holds it: in
    /// iceoryx2's shared memory, not copied at all; a replayed or
    /// gap-filled record is copied once, from the WAL's map. Use it where
    /// every nanosecond counts (a busy feed, replay of a long WAL).
    pub fn next_event_ref(&mut self, timeout: Duration) -> Result<Option<EventRef<'_>>> {
        // The sample the previous event lent goes back to the transport.
        self.held = None;
        if self.last == Last::Front {
            self.pop_delivered_front();
        }
        self.last = Last::Nothing;
        let mut deadline = None;
        loop {
            // (`is_some` first: `take` would move the whole ~390-byte
            // option on every call, stash or not.)
            if self.stash.is_some() {
                self.ready = self.stash.take();
                return Ok(self.deliver());
            }
            // Live, keeping up and nothing buffered: the next record, in
            // place.
            let polled = self.pending.is_empty() && matches!(self.state, State::Live { behind: false, .. });
            if polled {
                match self.receiver.try_recv_held() {
                    Ok(Some(held)) if Some(held.header().seq) == self.next_seq => {
                        return Ok(Some(self.deliver_held(held)));
                    }
                    // Delivered already (from the WAL, while behind):
                    // dropped where it lies, not buffered first.
                    Ok(Some(held)) if self.next_seq.is_some_and(|n| held.header().seq < n) => {
                        self.stats.duplicates += 1;
                        continue;
                    }
                    // The first after a hole: the merge below sorts it
                    // out, from the buffer.
                    Ok(Some(held)) => self.pending.push_back(*held),
                    Ok(None) | Err(mdbus_transport::Error::Disconnected) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.drain_tick = self.drain_tick.wrapping_add(1);
            // While replaying, the receiver is drained every 64 records (the
            // WAL supplies the records meanwhile; a live record that came
            // is a duplicate by the time it is seen, or the switch point).
            // Behind, it waits: what its queue drops is in the WAL.
            if ((self.pending.is_empty() && !self.replaying() && !polled) || self.drain_tick.is_multiple_of(64))
                && !self.behind()
            {
                self.drain_live()?;
            }
            // Live and behind: the next record is the buffer's front, lent
            // where it lies (not moved out into an event first).
            if matches!(self.state, State::Live { .. })
                && let Some(front) = self.pending.front()
                && Some(front.header().seq) == self.next_seq
            {
                return Ok(Some(self.deliver_front()));
            }
            let was_behind = self.behind();
            if self.step()? {
                return Ok(self.deliver());
            }
            if was_behind && !self.behind() {
                // The catch-up just ended (the WAL's end, or a hole in it
                // that the receiver's queue may fill): the receiver next,
                // before any wait.
                continue;
            }
            let now = Instant::now();
            let deadline = *deadline.get_or_insert(now + timeout);
            if now >= deadline {
                return Ok(None);
            }
            let mut wait = deadline - now;
            if self.replaying() {
                // The WAL has no wake-up of its own: its tail is read again
                // after at most this long while no live record came.
                wait = wait.min(WAL_TAIL_POLL);
            }
            // The receiver waits the whole `wait`, with or without a
            // publisher attached (one may start meanwhile).
            match self.receiver.recv_timeout(wait) {
                Ok(Some(sample)) => self.pending.push_back(sample),
                Ok(None) | Err(mdbus_transport::Error::Disconnected) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Replaying with a WAL to read (the receiver is then only drained
    /// every 64 records: the WAL supplies them meanwhile).
    #[inline]
    fn replaying(&self) -> bool {
        matches!(self.state, State::Replay { .. }) && self.reader.is_some()
    }

    /// Live and behind ([`State::Live`]'s `behind`): the receiver waits
    /// while the buffer and the WAL supply the records.
    #[inline]
    fn behind(&self) -> bool {
        matches!(self.state, State::Live { behind: true, .. })
    }

    /// The event the last [`Subscriber::next_event_ref`] returned, again
    /// (`None` when it returned `None`): for a caller that looped on
    /// `is_some()`.
    pub fn last_event(&self) -> Option<EventRef<'_>> {
        match self.last {
            Last::Nothing => None,
            Last::Ready => self.ready.as_ref().map(Event::to_ref),
            Last::Held => self.held.as_deref().map(|sample| EventRef::Record {
                sample,
                source: Source::Live,
            }),
            Last::Front => self.pending.front().map(|sample| EventRef::Record {
                sample,
                source: Source::Live,
            }),
        }
    }

    /// Delivers the live record at the front of `pending` (its seq is the
    /// next one) where it lies: the caches updated from it, then lent to the
    /// caller; it leaves the buffer at the next call.
    fn deliver_front(&mut self) -> EventRef<'_> {
        let sample = self.pending.front().expect("a live record is buffered");
        let seq = apply_live(&self.l1, &self.l2, &mut self.stats, sample);
        self.next_seq = Some(seq + 1);
        self.state = self.state.hole_closed();
        self.last = Last::Front;
        EventRef::Record {
            sample,
            source: Source::Live,
        }
    }

    /// Takes the record [`Subscriber::deliver_front`] lent off the buffer.
    fn pop_delivered_front(&mut self) {
        self.pending.pop_front();
        self.shrink_drained_buffer();
    }

    /// A lag filled the buffer far beyond its usual size (up to
    /// `live_buffer` records, 376 bytes each): once it is drained, its
    /// memory goes back instead of staying at the high-water mark.
    #[inline]
    fn shrink_drained_buffer(&mut self) {
        if self.pending.is_empty() && self.pending.capacity() > KEEP_LIVE_BUFFER {
            self.pending.shrink_to(KEEP_LIVE_BUFFER);
        }
    }

    /// Delivers the live record `held` (its seq is the next one) in place:
    /// the caches updated from it, then lent to the caller.
    fn deliver_held(&mut self, held: R::Held) -> EventRef<'_> {
        let seq = apply_live(&self.l1, &self.l2, &mut self.stats, &held);
        self.next_seq = Some(seq + 1);
        self.state = State::KEEPING_UP;
        self.last = Last::Held;
        EventRef::Record {
            sample: self.held.insert(held),
            source: Source::Live,
        }
    }

    /// Moves what the receiver has into the live buffer.
    fn drain_live(&mut self) -> Result<()> {
        while self.pending.len() < self.live_buffer {
            match self.receiver.try_recv() {
                Ok(Some(sample)) => self.pending.push_back(sample),
                Ok(None) | Err(mdbus_transport::Error::Disconnected) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The next event the merge can produce now, without waiting.
    fn step(&mut self) -> Result<bool> {
        loop {
            let Some(front) = self.pending.front() else {
                if self.replaying() {
                    return self.read_wal(u64::MAX);
                }
                if self.behind() {
                    if self.read_wal(u64::MAX)? {
                        return Ok(true);
                    }
                    // At the WAL's end (or a hole in it): caught up, the
                    // receiver next.
                    self.state = State::KEEPING_UP;
                }
                return Ok(false);
            };
            let live_seq = front.header().seq;
            match self.next_seq {
                Some(n) if live_seq < n => {
                    self.pending.pop_front();
                    self.stats.duplicates += 1;
                }
                Some(n) if live_seq == n => return Ok(self.take_live()),
                None if self.reader.is_none() => return Ok(self.take_live()),
                _ => {
                    if let State::Live {
                        filling: filling @ false,
                        behind,
                    } = &mut self.state
                    {
                        *filling = true;
                        // Most often the receiver's queue overflowed:
                        // with a WAL, catch up from it.
                        *behind = self.wal.is_some();
                        self.stats.gap_fills += 1;
                    }
                    if self.read_wal(live_seq)? {
                        return Ok(true);
                    }
                    // The WAL has nothing more below the live record.
                    match self.next_seq {
                        None => return Ok(self.take_live()),
                        // A silent replay applied the WAL up to it.
                        Some(n) if n >= live_seq => continue,
                        Some(n) => {
                            self.next_seq = Some(live_seq);
                            self.ready = Some(Event::Gap(SeqRange {
                                from: n,
                                to: live_seq - 1,
                            }));
                            return Ok(true);
                        }
                    }
                }
            }
        }
    }

    /// Takes the front live record (its seq is the next one) into `ready`;
    /// [`Event::ReplayDone`] first at the switch. Always `true`.
    fn take_live(&mut self) -> bool {
        self.ready = Some(self.live_event());
        true
    }

    fn live_event(&mut self) -> Event {
        let sample = self.pending.pop_front().expect("a live record is buffered");
        self.shrink_drained_buffer();
        self.next_seq = Some(sample.header().seq + 1);
        let event = Event::Record {
            sample,
            source: Source::Live,
        };
        let State::Replay { last_replayed } = self.state else {
            self.state = self.state.hole_closed();
            return event;
        };
        self.state = self.state.hole_closed();
        self.stash = Some(event);
        Event::ReplayDone {
            last_replayed_seq: last_replayed,
        }
    }

    /// The WAL record with the next seq (below `limit`), a [`Event::Gap`]
    /// when the WAL skips seqs, or `false` at the WAL's live end. A silent
    /// replay ([`CatchUp::Silent`]) applies the records it reads and goes
    /// on: `false` also when it reached `limit`.
    fn read_wal(&mut self, limit: u64) -> Result<bool> {
        let read = self.read_wal_batched(limit);
        // What a silent replay applied is in L1 before anything is
        // delivered (a gap marks it stale) and whatever it returns.
        if self.silent_replay {
            self.l1_batch.flush(&self.l1);
        }
        read
    }

    /// [`Subscriber::read_wal`], a silent replay's L1 updates kept in
    /// `l1_batch`.
    #[inline]
    fn read_wal_batched(&mut self, mut limit: u64) -> Result<bool> {
        if !self.position_reader()? {
            return Ok(false);
        }
        let source = match self.state {
            State::Replay { .. } => Source::Replay,
            State::Live { .. } => Source::GapFill,
        };
        let silent = source == Source::Replay && self.silent_replay;
        // Whether a record delivered from here goes into L2 too.
        let keeps_l2 = source != Source::Replay || self.l2_in_replay;
        loop {
            let reader = self.reader.as_mut().expect("positioned");
            if silent
                && let Some(first) = self.next_seq
                && reader.next_seq() == Some(first)
            {
                // The common case: a dense run of records, applied straight
                // from the map, up to the next look at the live stream.
                let max = limit.saturating_sub(first).min(SILENT_RUN) as usize;
                let (batch, l1, stats) = (&mut self.l1_batch, &*self.l1, &mut self.stats);
                let n = reader.read_run(max, |record| {
                    apply_record(Batched { batch: &mut *batch, l1 }, None, stats, record);
                });
                if n > 0 {
                    let last = first + n as u64 - 1;
                    self.reader_last = Some(last);
                    if self.silent_applied(last, &mut limit)? {
                        return Ok(false);
                    }
                    continue;
                }
            }
            let reader = self.reader.as_mut().expect("positioned");
            if !silent
                && let Some(n) = self.next_seq
                && n < limit
                && reader.next_seq() == Some(n)
            {
                // The common case of a delivering read: the next record
                // follows densely. Read as a run of one (checked as
                // `next_event` checks it, each kind's checks and copy
                // monomorphised), applied to the caches and copied into
                // `ready` from the map; 0 read sends it the long way.
                let l2 = keeps_l2.then_some(&*self.l2);
                let (l1, stats, ready) = (&*self.l1, &mut self.stats, &mut self.ready);
                let read = reader.read_run(1, |record| {
                    apply_record(l1, l2, stats, record);
                    record.copy_into(record_slot(ready, source));
                });
                if read == 1 {
                    self.reader_last = Some(n);
                    self.delivered_from_wal(n);
                    return Ok(true);
                }
            }
            // Records before the next seq were delivered already (a gap
            // fill reads forward from where the last one ended, past what
            // came live meanwhile): stepped over on their length and seq
            // (`next_event_from`, which checks in full a frame whose step
            // leads nowhere); from the next seq on, every check.
            let event = match self.next_seq {
                Some(n) => reader.next_event_from(n)?,
                None => reader.next_event()?,
            };
            let record = match event {
                None => return Ok(false),
                // The seq check below sees the hole a skipped range leaves.
                Some(ReadEvent::Skipped(_)) => continue,
                Some(ReadEvent::Record(record)) => record.record,
            };
            let seq = record.header().seq;
            self.reader_last = Some(seq);
            match self.next_seq {
                Some(n) if seq < n => continue,
                Some(n) if seq > n && source == Source::GapFill && limit == u64::MAX => {
                    // Catching up past the buffer (`step`, behind), the
                    // WAL lost n..seq: the receiver's queue may still hold
                    // them. The catch-up ends here as at the WAL's end (the
                    // reader goes back to n when next asked): the receiver
                    // is drained, and a hole it shows is filled, or
                    // reported, up to the live record that bounds it.
                    return Ok(false);
                }
                Some(n) if seq > n => {
                    // The WAL lost n..seq (retention, corruption).
                    let to = seq.min(limit) - 1;
                    if silent {
                        // The gap first (it marks L1 stale), then the
                        // record after it is read again (a seek) and
                        // applied like the others.
                        self.next_seq = Some(seq.min(limit));
                    } else if seq < limit {
                        self.stash = Some(Event::Record {
                            sample: record.to_sample(),
                            source,
                        });
                        self.next_seq = Some(seq + 1);
                        if let State::Replay { last_replayed } = &mut self.state {
                            *last_replayed = Some(seq);
                        }
                    } else {
                        self.next_seq = Some(limit);
                    }
                    self.ready = Some(Event::Gap(SeqRange { from: n, to }));
                    return Ok(true);
                }
                _ => {
                    if silent {
                        // Applied, not delivered: on to the next record,
                        // up to the live record that bounds the replay.
                        let batched = Batched {
                            batch: &mut self.l1_batch,
                            l1: &self.l1,
                        };
                        apply_record(batched, None, &mut self.stats, record);
                        if self.silent_applied(seq, &mut limit)? {
                            return Ok(false);
                        }
                        continue;
                    }
                    // Delivered now: update the caches from the map, and
                    // copy the record straight into `ready`.
                    apply_record(&*self.l1, keeps_l2.then_some(&*self.l2), &mut self.stats, record);
                    record.copy_into(record_slot(&mut self.ready, source));
                    self.delivered_from_wal(seq);
                    return Ok(true);
                }
            }
        }
    }

    /// The bookkeeping after the WAL's record `seq` went into `ready`,
    /// applied to the caches already.
    #[inline]
    fn delivered_from_wal(&mut self, seq: u64) {
        self.next_seq = Some(seq + 1);
        if let State::Replay { last_replayed } = &mut self.state {
            *last_replayed = Some(seq);
        }
        self.applied = true;
    }

    /// The bookkeeping after a silent replay applied the records from
    /// `next_seq` to `last`: seqs and counts, L1 flushed at every 65,536th
    /// seq (readers of L1 follow a long replay), and a look at the live
    /// stream, whose oldest record not yet applied lowers `limit` (those
    /// already applied are duplicates). `true` when the replay has
    /// reached `limit`.
    fn silent_applied(&mut self, last: u64, limit: &mut u64) -> Result<bool> {
        let first = self.next_seq.unwrap_or(last);
        self.next_seq = Some(last + 1);
        if let State::Replay { last_replayed } = &mut self.state {
            *last_replayed = Some(last);
        }
        self.stats.replayed += last + 1 - first;
        self.stats.last_seq = Some(last);
        if first.saturating_sub(1) >> 16 != last >> 16 {
            self.l1_batch.flush(&self.l1);
        }
        // At most every SILENT_RUN records (a single step may come more
        // often, only where the WAL is not dense).
        if self.pending.is_empty() {
            loop {
                match self.receiver.try_recv() {
                    Ok(Some(sample)) if sample.header().seq <= last => self.stats.duplicates += 1,
                    Ok(Some(sample)) => {
                        *limit = (*limit).min(sample.header().seq);
                        self.pending.push_back(sample);
                        break;
                    }
                    Ok(None) | Err(mdbus_transport::Error::Disconnected) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(last + 1 >= *limit)
    }

    /// The reader, positioned to yield `next_seq` soon: opened or sought
    /// when it is missing, past it, or far behind it.
    fn position_reader(&mut self) -> Result<bool> {
        let Some(wal) = &self.wal else { return Ok(false) };
        match (self.next_seq, self.reader.as_mut()) {
            (Some(n), None) => {
                let options = ReadOptions {
                    from: ReadFrom::Seq(n),
                    skip_corrupt: true,
                };
                self.reader = Some(WalReader::open(wal.root(), wal.feed().as_str(), options)?);
                self.reader_last = None;
            }
            (Some(n), Some(reader)) => {
                if let Some(last) = self.reader_last
                    && (last >= n || n - last > self.seek_distance)
                {
                    reader.seek_seq(n)?;
                    self.reader_last = None;
                }
            }
            (None, _) => {}
        }
        Ok(self.reader.is_some())
    }

    /// The event `step` (or the stash) put in `ready`, with the caches and
    /// the statistics updated.
    fn deliver(&mut self) -> Option<EventRef<'_>> {
        let event = self.ready.as_ref()?;
        let stats = &mut self.stats;
        match event {
            Event::Record { sample, source } => {
                match source {
                    Source::Replay => stats.replayed += 1,
                    Source::Live => stats.live += 1,
                    Source::GapFill => stats.gap_filled += 1,
                }
                stats.last_seq = Some(sample.header().seq);
                if !std::mem::take(&mut self.applied) {
                    let l2 = (*source != Source::Replay || self.l2_in_replay).then_some(&*self.l2);
                    match sample.record() {
                        Ok(record) => apply_record(&*self.l1, l2, stats, record),
                        Err(_) => stats.bad_records += 1,
                    }
                }
            }
            Event::Gap(lost) => {
                stats.gaps += 1;
                stats.gap_records += lost.len();
                self.l1.mark_all_stale();
                self.l2.lock().reset();
            }
            Event::ReplayDone { .. } => {}
        }
        self.last = Last::Ready;
        Some(event.to_ref())
    }

    /// The L1 cache (latest tick and book per instrument), for any thread.
    pub fn l1(&self) -> &Arc<L1Cache> {
        &self.l1
    }

    /// History queries (L2 then L3), for any thread.
    pub fn history(&self) -> CachedHistory {
        self.history.clone()
    }

    /// The trades of `instrument` with `from <= ts_event <= to` (L2, else L3).
    pub fn ticks(&self, instrument: &InstrumentId, from: i64, to: i64) -> Result<Vec<Tick>> {
        self.history.ticks(instrument, from, to)
    }

    /// The book of `instrument` at `ts` (L2, else L3).
    pub fn book_at(&self, instrument: &InstrumentId, ts: i64) -> Result<Option<BookSnapshot>> {
        self.history.book_at(instrument, ts)
    }

    /// [`Subscriber::book_at`], and which level answered.
    pub fn book_at_traced(&self, instrument: &InstrumentId, ts: i64) -> Result<(Option<BookSnapshot>, CacheLevel)> {
        self.history.book_at_traced(instrument, ts)
    }

    /// What the subscriber did so far.
    pub fn stats(&self) -> SubscriberStats {
        self.stats
    }

    /// Memory the L2 history holds now (within [`L2Config::max_bytes`]).
    pub fn l2_bytes(&self) -> usize {
        self.l2.lock().allocated_bytes()
    }

    /// Whether the switch to live happened.
    pub fn is_live(&self) -> bool {
        matches!(self.state, State::Live { .. })
    }

    /// The seq the next record will carry, once known.
    pub fn next_seq(&self) -> Option<u64> {
        self.next_seq
    }

    /// The live receiver (e.g. for its `dropped()` count).
    pub fn receiver(&self) -> &R {
        &self.receiver
    }

    /// The live receiver, mutable.
    pub fn receiver_mut(&mut self) -> &mut R {
        &mut self.receiver
    }
}

/// The record slot of `ready` for a record from `source`: the one it
/// holds (no new zeroed sample), or a new one.
#[inline]
fn record_slot(ready: &mut Option<Event>, source: Source) -> &mut MdSample {
    match ready {
        Some(Event::Record { sample, source: s }) => {
            *s = source;
            sample
        }
        ready => match ready.insert(Event::Record {
            sample: MdSample::default(),
            source,
        }) {
            Event::Record { sample, .. } => sample,
            _ => unreachable!("a record was just inserted"),
        },
    }
}

/// A live record delivered in place (its seq is the next one): counted and
/// applied to the caches. Returns its seq.
#[inline]
fn apply_live(l1: &L1Cache, l2: &Mutex<L2Cache>, stats: &mut SubscriberStats, sample: &MdSample) -> u64 {
    let seq = sample.header().seq;
    stats.live += 1;
    stats.last_seq = Some(seq);
    match sample.record() {
        Ok(record) => apply_record(l1, Some(l2), stats, record),
        Err(_) => stats.bad_records += 1,
    }
    seq
}

/// Updates L1 and L2 with a delivered record (and the statistics with what
/// they found).
#[inline]
/// Applies a delivered record to L1 and, unless `l2` is `None` (a
/// state-only catch-up), to L2.
fn apply_record(
    mut l1: impl L1Writer,
    l2: Option<&Mutex<L2Cache>>,
    stats: &mut SubscriberStats,
    record: RecordRef<'_>,
) {
    let applied = match record {
        RecordRef::Tick(t) => {
            l1.set_tick(t);
            Ok(())
        }
        RecordRef::BookSnapshot(s) => l1.apply_snapshot(s).map(|check| {
            if check == SnapshotCheck::Mismatch {
                stats.mismatches += 1;
            }
        }),
        RecordRef::BookDelta(d) => l1.apply_delta(d),
        RecordRef::Heartbeat(_) => Ok(()),
    };
    if applied.is_err() {
        stats.bad_records += 1;
    }
    if let Some(l2) = l2 {
        l2.lock().push(record);
    }
}

#[cfg(test)]
mod tests {
    use mdbus_transport::{InProcBus, MdSender};
    use mdbus_types::{Heartbeat, Kind, RecordHeader};

    use super::*;

    /// A lag's worth of live records fills the buffer far past
    /// [`KEEP_LIVE_BUFFER`]; once they are all delivered, in order, its
    /// memory is given back.
    #[test]
    fn a_drained_live_buffer_gives_its_memory_back() {
        let records = 4 * KEEP_LIVE_BUFFER as u64;
        let bus = InProcBus::new(records as usize);
        let receiver = bus.subscribe();
        let mut sender = bus.sender();
        for seq in 1..=records {
            let mut header = RecordHeader::new(Kind::Heartbeat, 1);
            header.seq = seq;
            sender.send(&Heartbeat { header }.into()).unwrap();
        }
        let config = SubscriberConfig::default().start(StartFrom::LiveOnly);
        let mut subscriber = Subscriber::new(receiver, config).unwrap();
        let mut high_water = 0;
        let mut next = 1;
        while next <= records {
            // The records are all there: a wait here is a failure.
            match subscriber.next_event(Duration::from_secs(10)).unwrap() {
                Some(Event::Record { sample, .. }) => {
                    assert_eq!(sample.header().seq, next);
                    // Lent from the buffer's front, and still there.
                    assert_eq!(subscriber.last_event().and_then(|e| e.seq()), Some(next));
                    next += 1;
                }
                Some(Event::ReplayDone { .. }) => assert_eq!(next, 1),
                other => panic!("seq {next}: {other:?}"),
            }
            high_water = high_water.max(subscriber.pending.capacity());
        }
        // The last record delivered leaves the buffer at the next call.
        assert_eq!(subscriber.next_event(Duration::ZERO).unwrap(), None);
        assert!(high_water > KEEP_LIVE_BUFFER, "the buffer held {high_water} at most");
        assert!(subscriber.pending.is_empty());
        assert!(
            subscriber.pending.capacity() <= KEEP_LIVE_BUFFER,
            "{} records of room kept",
            subscriber.pending.capacity()
        );
    }
}
