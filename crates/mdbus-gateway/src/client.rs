//! One WebSocket client's side of the fan-out: its subscriptions and its
//! bounded queue, conflated on overflow.
//!
//! The feed thread [`Client::offer`]s every record; the client's connection
//! task [`Client::take`]s everything pending when it can write. A queue
//! that reaches its capacity is folded into the latest state per
//! instrument and channel (the last tick; the current book, copied from the
//! L1 cache as of the record being offered) and stays folded until the
//! connection task takes it: a slow client gets fewer, newer updates, never
//! an unbounded queue and never a state older than what it was sent last.
//!
//! Length (~730 lines): the queue and its conflation are one data structure;
//! a third of the file is its unit tests.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use mdbus_subscriber::L1Cache;
use mdbus_types::{BookSnapshot, InstrumentId, SeqRange};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::sync::Notify;

/// A subscription channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Channel {
    /// `tick` records.
    Tick,
    /// `book_snapshot` and `book_delta` records.
    Book,
}

impl Channel {
    pub(crate) const ALL: [Channel; 2] = [Channel::Tick, Channel::Book];

    pub(crate) fn bit(self) -> u8 {
        match self {
            Channel::Tick => 1,
            Channel::Book => 2,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Channel::Tick => "tick",
            Channel::Book => "orderbook",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == name)
    }

    pub(crate) fn names(mask: u8) -> Vec<&'static str> {
        Channel::ALL
            .into_iter()
            .filter(|c| mask & c.bit() != 0)
            .map(Channel::name)
            .collect()
    }
}

/// A record waiting for a client, its JSON shared by every client.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) seq: u64,
    pub(crate) ts_publish: i64,
    pub(crate) instrument: InstrumentId,
    pub(crate) channel: Channel,
    pub(crate) json: Arc<str>,
}

/// The records of one wake-up of the feed thread, made once for every
/// client: each record's JSON, and the events part of a batch (the
/// records' JSON joined by commas) that a client taking the whole feed
/// writes as it is.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The records' JSON joined by commas.
    pub(crate) body: String,
    /// The records in seq order.
    pub(crate) records: Vec<Pending>,
    /// The smallest `ts_publish` of `records` (`i64::MAX` when empty).
    oldest_ts_publish: i64,
}

impl Default for Chunk {
    fn default() -> Chunk {
        Chunk {
            body: String::new(),
            records: Vec::new(),
            oldest_ts_publish: i64::MAX,
        }
    }
}

impl Chunk {
    /// Adds a record (its JSON made by `write`), in seq order.
    pub(crate) fn push(
        &mut self,
        seq: u64,
        ts_publish: i64,
        instrument: InstrumentId,
        channel: Channel,
        write: impl FnOnce(&mut String),
    ) {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        let at = self.body.len();
        write(&mut self.body);
        // Its own copy, for the queues that take records one by one.
        let json: Arc<str> = Arc::from(&self.body[at..]);
        self.oldest_ts_publish = self.oldest_ts_publish.min(ts_publish);
        self.records.push(Pending {
            seq,
            ts_publish,
            instrument,
            channel,
            json,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The smallest `ts_publish` (the oldest record's).
    pub(crate) fn oldest_ts_publish(&self) -> i64 {
        self.oldest_ts_publish
    }

    pub(crate) fn first_seq(&self) -> u64 {
        self.records.first().map_or(0, |p| p.seq)
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.records.last().map_or(0, |p| p.seq)
    }
}

/// Books copied from L1 for folded queues while one chunk is offered,
/// once per instrument for every client (L1 does not change meanwhile:
/// the feed thread, which advances it, is the one offering).
pub(crate) type BookCache = FxHashMap<InstrumentId, Option<Arc<BookSnapshot>>>;

fn cached_book(books: &mut BookCache, instrument: &InstrumentId, l1: &L1Cache) -> Option<Arc<BookSnapshot>> {
    books
        .entry(*instrument)
        .or_insert_with(|| l1.book(instrument).map(Arc::new))
        .clone()
}

/// What a client subscribed to: channels for every instrument (`"*"`),
/// channels of `"*"` taken back for one instrument (unsubscribing one
/// instrument after `"*"`), and per instrument, as bit masks of
/// [`Channel::bit`].
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    pub(crate) all: u8,
    /// Channels of `all` not wanted for an instrument; subscribing the
    /// instrument (or `"*"`) again clears them.
    pub(crate) excluded: FxHashMap<InstrumentId, u8>,
    pub(crate) by_instrument: FxHashMap<InstrumentId, u8>,
}

impl Subscriptions {
    #[inline]
    pub(crate) fn mask(&self, id: &InstrumentId) -> u8 {
        if self.by_instrument.is_empty() && self.excluded.is_empty() {
            return self.all;
        }
        let excluded = self.excluded.get(id).copied().unwrap_or(0);
        (self.all & !excluded) | self.by_instrument.get(id).copied().unwrap_or(0)
    }

    /// Every channel of every instrument (`"*"`, nothing taken out): the
    /// client can be given a whole [`Chunk`].
    #[inline]
    pub(crate) fn takes_everything(&self) -> bool {
        self.all == Channel::Tick.bit() | Channel::Book.bit() && self.excluded.is_empty()
    }

    /// Subscriptions counted against the limit (`"*"` is one).
    pub(crate) fn count(&self) -> usize {
        self.by_instrument.len() + usize::from(self.all != 0)
    }

    /// Takes `mask` back for every instrument (unsubscribing `"*"`).
    pub(crate) fn remove_all(&mut self, mask: u8) {
        self.all &= !mask;
        for m in self.by_instrument.values_mut() {
            *m &= !mask;
        }
        self.tidy();
    }

    /// Takes `mask` back for `id`; `false` when that needs a new exclusion
    /// of `"*"` and `max_excluded` are already kept (the caller refuses it).
    pub(crate) fn remove(&mut self, id: &InstrumentId, mask: u8, max_excluded: usize) -> bool {
        if let Some(m) = self.by_instrument.get_mut(id) {
            *m &= !mask;
        }
        let from_all = self.all & mask;
        let mut kept = true;
        if from_all != 0 {
            let room = self.excluded.len() < max_excluded;
            match self.excluded.get_mut(id) {
                Some(m) => *m |= from_all,
                None if room => {
                    self.excluded.insert(*id, from_all);
                }
                None => kept = false,
            }
        }
        self.tidy();
        kept
    }

    /// Subscribes `mask` for `"*"` (clearing those exclusions).
    pub(crate) fn add_all(&mut self, mask: u8) {
        self.all |= mask;
        for m in self.excluded.values_mut() {
            *m &= !mask;
        }
        self.tidy();
    }

    /// Subscribes `mask` for `id` (clearing its exclusion of those
    /// channels); `false` when `id` is new and `limit` subscriptions are
    /// already held.
    pub(crate) fn add(&mut self, id: InstrumentId, mask: u8, limit: usize) -> bool {
        if let Some(m) = self.by_instrument.get_mut(&id) {
            *m |= mask;
        } else if self.count() < limit {
            self.by_instrument.insert(id, mask);
        } else {
            return false;
        }
        if let Some(m) = self.excluded.get_mut(&id) {
            *m &= !mask;
        }
        self.tidy();
        true
    }

    /// Drops empty entries and exclusions of channels `"*"` lacks.
    fn tidy(&mut self) {
        let all = self.all;
        self.by_instrument.retain(|_, m| *m != 0);
        self.excluded.retain(|_, m| {
            *m &= all;
            *m != 0
        });
    }
}

/// Gaps a folded queue keeps apart; past this the two oldest are merged
/// into one span (which may then cover records that were delivered, as
/// folded states between them: a client reads a gap as "some of
/// `from..=to` may be missing").
pub(crate) const MAX_FOLDED_GAPS: usize = 64;

/// One entry of a client's queue, in seq order.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    /// A record as published.
    Record(Pending),
    /// Every record of a wake-up (the client takes the whole feed).
    Chunk(Arc<Chunk>),
    /// Records lost upstream (neither the stream nor the WAL had them).
    Gap(SeqRange),
}

/// A queue folded to the latest state per instrument and channel.
#[derive(Debug, Default)]
pub(crate) struct Conflated {
    pub(crate) ticks: FxHashMap<InstrumentId, Pending>,
    pub(crate) books: FxHashMap<InstrumentId, Arc<BookSnapshot>>,
    /// Records lost upstream while folded, in seq order; overlapping or
    /// adjacent ones merged, at most [`MAX_FOLDED_GAPS`].
    pub(crate) gaps: Vec<SeqRange>,
}

/// One event of a folded queue, as [`Conflated::into_ordered`] lists it.
#[derive(Debug)]
pub(crate) enum Folded {
    /// The latest tick of an instrument.
    Tick(Pending),
    /// The latest book of an instrument.
    Book(InstrumentId, Arc<BookSnapshot>),
    /// Records lost upstream.
    Gap(SeqRange),
}

impl Folded {
    /// Where it stands in seq order (a gap: its first lost seq).
    pub(crate) fn seq(&self) -> u64 {
        match self {
            Folded::Tick(p) => p.seq,
            Folded::Book(_, b) => b.header.seq,
            Folded::Gap(gap) => gap.from,
        }
    }
}

impl Conflated {
    fn len(&self) -> usize {
        self.ticks.len() + self.books.len() + self.gaps.len()
    }

    /// Notes a gap, merging it with the last one only when they overlap or
    /// touch; the list stays at most [`MAX_FOLDED_GAPS`] long.
    fn push_gap(&mut self, gap: SeqRange) {
        match self.gaps.last_mut() {
            Some(last) if gap.from <= last.to.saturating_add(1) && gap.to.saturating_add(1) >= last.from => {
                *last = SeqRange {
                    from: last.from.min(gap.from),
                    to: last.to.max(gap.to),
                };
            }
            _ => self.gaps.push(gap),
        }
        if self.gaps.len() > MAX_FOLDED_GAPS {
            let oldest = self.gaps.remove(0);
            self.gaps[0].from = self.gaps[0].from.min(oldest.from);
        }
    }

    /// Every state and gap, in seq order.
    pub(crate) fn into_ordered(self) -> Vec<Folded> {
        let mut out: Vec<Folded> = self
            .ticks
            .into_values()
            .map(Folded::Tick)
            .chain(self.books.into_iter().map(|(id, b)| Folded::Book(id, b)))
            .chain(self.gaps.into_iter().map(Folded::Gap))
            .collect();
        out.sort_unstable_by_key(Folded::seq);
        out
    }
}

/// What [`Client::take`] hands to the connection task.
#[derive(Debug)]
pub(crate) enum Drained {
    /// Records and gaps in seq order, each as it came.
    Events(VecDeque<Entry>),
    /// The latest state per instrument and channel, and the gaps.
    Conflated(Conflated),
}

#[derive(Debug, Default)]
struct Queue {
    subs: Subscriptions,
    /// Records, chunks and gaps in seq order.
    entries: VecDeque<Entry>,
    /// Events in `entries` (a chunk counts its records, a gap one): what
    /// counts against the capacity.
    queued: usize,
    conflated: Option<Conflated>,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.conflated.is_none()
    }

    fn depth(&self) -> usize {
        self.queued + self.conflated.as_ref().map_or(0, Conflated::len)
    }
}

/// Counters of one client, for `/stats`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Connection id (counts up from 1).
    pub id: u64,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Events (or folded states) waiting to be written.
    pub queue_depth: usize,
    /// Events merged into a newer state of the same instrument and channel
    /// because the client's queue was full.
    pub conflated: u64,
    /// Times the queue overflowed and was folded.
    pub conflations: u64,
    /// Events written to the client.
    pub events_sent: u64,
    /// Batches written to the client.
    pub batches_sent: u64,
    /// Subscriptions (`"*"` counts as one).
    pub subscriptions: usize,
    /// Push latency, `ts_publish` to the batch being handed to the socket,
    /// of the oldest event of each batch written (the batch's worst; ns,
    /// p50 and p99; 0 before any).
    pub latency_ns: (u64, u64),
}

/// One client: subscriptions, queue, counters and the doorbell of its
/// connection task.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    capacity: usize,
    queue: Mutex<Queue>,
    /// Rung by the feed thread at the end of a wake-up in which the queue
    /// went from empty to non-empty.
    pub(crate) doorbell: Notify,
    conflated: AtomicU64,
    conflations: AtomicU64,
    pub(crate) events_sent: AtomicU64,
    pub(crate) batches_sent: AtomicU64,
    pub(crate) latency: Mutex<Histogram<u64>>,
}

impl Client {
    pub(crate) fn new(id: u64, peer: SocketAddr, capacity: usize) -> Client {
        Client {
            id,
            peer,
            capacity,
            queue: Mutex::new(Queue::default()),
            doorbell: Notify::new(),
            conflated: AtomicU64::new(0),
            conflations: AtomicU64::new(0),
            events_sent: AtomicU64::new(0),
            batches_sent: AtomicU64::new(0),
            latency: Mutex::new(Histogram::new(3).expect("3 significant digits is valid")),
        }
    }

    /// Offers the records of one feed wake-up to this client: the whole
    /// chunk as one entry when the client takes the whole feed and it fits
    /// in the queue, otherwise each record it subscribed to, as they come
    /// (folding the queue when it is full). `l1` is current as of the
    /// chunk's last record; `books` caches what is copied from it.
    /// `true`: the queue went from empty to non-empty, and the caller
    /// rings [`Client::doorbell`] once it has offered everything of its
    /// wake-up (one ring and one batch per wake-up, not per record).
    pub(crate) fn offer_chunk(&self, chunk: &Arc<Chunk>, books: &mut BookCache, l1: &L1Cache) -> bool {
        let mut queue = self.queue.lock();
        let was_empty = queue.is_empty();
        let n = chunk.records.len();
        if queue.subs.takes_everything() && queue.conflated.is_none() && queue.queued + n <= self.capacity {
            queue.entries.push_back(Entry::Chunk(Arc::clone(chunk)));
            queue.queued += n;
        } else {
            for pending in &chunk.records {
                if queue.subs.mask(&pending.instrument) & pending.channel.bit() != 0 {
                    self.push_record(&mut queue, pending, books, l1);
                }
            }
        }
        was_empty && !queue.is_empty()
    }

    /// Queues one record the client subscribed to, folding a full queue.
    fn push_record(&self, queue: &mut Queue, pending: &Pending, books: &mut BookCache, l1: &L1Cache) {
        if queue.conflated.is_none() && queue.queued >= self.capacity {
            self.fold(queue, books, l1);
        }
        match queue.conflated.as_mut() {
            Some(folded) => {
                let replaced = match pending.channel {
                    Channel::Tick => folded.ticks.insert(pending.instrument, pending.clone()).is_some(),
                    Channel::Book => match cached_book(books, &pending.instrument, l1) {
                        Some(book) => folded.books.insert(pending.instrument, book).is_some(),
                        None => false,
                    },
                };
                if replaced {
                    self.conflated.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                queue.entries.push_back(Entry::Record(pending.clone()));
                queue.queued += 1;
            }
        }
    }

    /// Folds the full queue into the latest state per instrument and
    /// channel (books as of now, from `l1`), gaps kept in order.
    fn fold(&self, queue: &mut Queue, books: &mut BookCache, l1: &L1Cache) {
        let mut folded = Conflated::default();
        let mut merged = 0u64;
        let mut fold_one = |pending: &Pending| match pending.channel {
            Channel::Tick => folded.ticks.insert(pending.instrument, pending.clone()).is_some(),
            Channel::Book => match folded.books.entry(pending.instrument) {
                std::collections::hash_map::Entry::Occupied(_) => true,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    if let Some(book) = cached_book(books, &pending.instrument, l1) {
                        slot.insert(book);
                    }
                    false
                }
            },
        };
        let mut gaps = Vec::new();
        for entry in queue.entries.drain(..) {
            match entry {
                // Gaps go in after: `push_gap` keeps them in seq order.
                Entry::Gap(gap) => gaps.push(gap),
                Entry::Record(pending) => merged += u64::from(fold_one(&pending)),
                Entry::Chunk(chunk) => {
                    for pending in &chunk.records {
                        merged += u64::from(fold_one(pending));
                    }
                }
            }
        }
        for gap in gaps {
            folded.push_gap(gap);
        }
        queue.queued = 0;
        queue.conflated = Some(folded);
        self.conflated.fetch_add(merged, Ordering::Relaxed);
        self.conflations.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that `gap` was lost upstream (every client hears it, after
    /// what was queued before). `l1` is current as of now. `true`: ring
    /// the doorbell, as for [`Client::offer_chunk`].
    pub(crate) fn offer_gap(&self, gap: SeqRange, l1: &L1Cache) -> bool {
        let mut queue = self.queue.lock();
        let was_empty = queue.is_empty();
        if queue.conflated.is_none() && queue.queued >= self.capacity {
            self.fold(&mut queue, &mut BookCache::default(), l1);
        }
        match queue.conflated.as_mut() {
            Some(folded) => folded.push_gap(gap),
            None => {
                queue.entries.push_back(Entry::Gap(gap));
                queue.queued += 1;
            }
        }
        was_empty
    }

    /// Takes everything pending; `spare` becomes the new empty queue.
    pub(crate) fn take(&self, spare: VecDeque<Entry>) -> Option<Drained> {
        let mut queue = self.queue.lock();
        if let Some(folded) = queue.conflated.take() {
            Some(Drained::Conflated(folded))
        } else if queue.entries.is_empty() {
            None
        } else {
            queue.queued = 0;
            Some(Drained::Events(std::mem::replace(&mut queue.entries, spare)))
        }
    }

    /// Changes the subscriptions under the queue's lock; `f` returns what
    /// the caller needs. Pending records no longer subscribed are dropped.
    pub(crate) fn update_subscriptions<T>(&self, f: impl FnOnce(&mut Subscriptions) -> T) -> T {
        let mut queue = self.queue.lock();
        let out = f(&mut queue.subs);
        let Queue {
            subs,
            entries,
            queued,
            conflated,
        } = &mut *queue;
        let wanted = |p: &Pending| subs.mask(&p.instrument) & p.channel.bit() != 0;
        let mut kept = VecDeque::with_capacity(entries.len());
        *queued = 0;
        for entry in entries.drain(..) {
            match entry {
                Entry::Record(p) if !wanted(&p) => {}
                // Still the whole feed: the chunk stays whole.
                Entry::Chunk(chunk) if !subs.takes_everything() => {
                    for p in chunk.records.iter().filter(|p| wanted(p)) {
                        kept.push_back(Entry::Record(p.clone()));
                        *queued += 1;
                    }
                }
                Entry::Chunk(chunk) => {
                    *queued += chunk.records.len();
                    kept.push_back(Entry::Chunk(chunk));
                }
                other => {
                    kept.push_back(other);
                    *queued += 1;
                }
            }
        }
        *entries = kept;
        if let Some(folded) = conflated {
            folded.ticks.retain(|id, _| subs.mask(id) & Channel::Tick.bit() != 0);
            folded.books.retain(|id, _| subs.mask(id) & Channel::Book.bit() != 0);
        }
        out
    }

    /// Events merged so far (see [`ClientStats::conflated`]).
    pub(crate) fn conflated(&self) -> u64 {
        self.conflated.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> ClientStats {
        let (queue_depth, subscriptions) = {
            let queue = self.queue.lock();
            (queue.depth(), queue.subs.count())
        };
        let latency = self.latency.lock();
        let latency_ns = if latency.is_empty() {
            (0, 0)
        } else {
            (latency.value_at_quantile(0.5), latency.value_at_quantile(0.99))
        };
        ClientStats {
            id: self.id,
            peer: self.peer,
            queue_depth,
            conflated: self.conflated.load(Ordering::Relaxed),
            conflations: self.conflations.load(Ordering::Relaxed),
            events_sent: self.events_sent.load(Ordering::Relaxed),
            batches_sent: self.batches_sent.load(Ordering::Relaxed),
            subscriptions,
            latency_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> InstrumentId {
        InstrumentId::new(s).unwrap()
    }

    fn range(from: u64, to: u64) -> SeqRange {
        SeqRange::new(from, to).unwrap()
    }

    #[test]
    fn overflow_folds_to_the_latest_tick_per_instrument_and_counts() {
        let client = Client::new(1, "127.0.0.1:1".parse().unwrap(), 4);
        client.update_subscriptions(|s| s.add_all(Channel::Tick.bit()));
        let l1 = L1Cache::new();
        for seq in 1..=10u64 {
            let instrument = if seq % 2 == 0 { id("A") } else { id("B") };
            offer(&client, seq, &instrument, Channel::Tick, &l1);
        }
        let stats = client.stats();
        assert_eq!(stats.conflations, 1);
        assert_eq!(stats.queue_depth, 2);
        // 4 queued + 6 more = 10 offered, 2 states left.
        assert_eq!(stats.conflated, 8);
        let Some(Drained::Conflated(folded)) = client.take(VecDeque::new()) else {
            panic!("expected a folded queue")
        };
        assert_eq!(folded.ticks[&id("A")].seq, 10);
        assert_eq!(folded.ticks[&id("B")].seq, 9);
        // Taken: the queue is empty and unfolded again.
        offer(&client, 11, &id("A"), Channel::Tick, &l1);
        assert!(matches!(client.take(VecDeque::new()), Some(Drained::Events(e)) if e.len() == 1));
    }

    fn offer(client: &Client, seq: u64, instrument: &InstrumentId, channel: Channel, l1: &L1Cache) {
        let mut chunk = Chunk::default();
        chunk.push(seq, 0, *instrument, channel, |out| {
            out.push_str(&format!("{{\"seq\":{seq}}}"))
        });
        let _ = client.offer_chunk(&Arc::new(chunk), &mut BookCache::default(), l1);
    }

    fn tick(client: &Client, seq: u64, instrument: &str, l1: &L1Cache) {
        offer(client, seq, &id(instrument), Channel::Tick, l1);
    }

    #[test]
    fn a_chunk_is_shared_by_every_client_taking_the_whole_feed() {
        let l1 = L1Cache::new();
        let everything = Channel::Tick.bit() | Channel::Book.bit();
        let clients: Vec<Client> = (0..3)
            .map(|n| {
                let client = Client::new(n, "127.0.0.1:1".parse().unwrap(), 16);
                client.update_subscriptions(|s| s.add_all(everything));
                client
            })
            .collect();
        let ticks_only = Client::new(9, "127.0.0.1:1".parse().unwrap(), 16);
        ticks_only.update_subscriptions(|s| s.add_all(Channel::Tick.bit()));
        let mut chunk = Chunk::default();
        for (seq, channel) in [(1, Channel::Tick), (2, Channel::Book), (3, Channel::Tick)] {
            chunk.push(seq, 10 * seq as i64, id("A"), channel, |out| {
                out.push_str(&format!("{{\"seq\":{seq}}}"))
            });
        }
        assert_eq!(chunk.body, r#"{"seq":1},{"seq":2},{"seq":3}"#);
        assert_eq!(
            (chunk.first_seq(), chunk.last_seq(), chunk.oldest_ts_publish()),
            (1, 3, 10)
        );
        let chunk = Arc::new(chunk);
        let mut books = BookCache::default();
        for client in clients.iter().chain([&ticks_only]) {
            assert!(client.offer_chunk(&chunk, &mut books, &l1), "the queue was empty");
        }
        for client in &clients {
            assert_eq!(client.stats().queue_depth, 3);
            let Some(Drained::Events(entries)) = client.take(VecDeque::new()) else {
                panic!("expected events")
            };
            assert!(matches!(&entries[0], Entry::Chunk(c) if Arc::ptr_eq(c, &chunk)));
            assert_eq!(entries.len(), 1);
        }
        // The others get the records they subscribed to, one by one.
        let Some(Drained::Events(entries)) = ticks_only.take(VecDeque::new()) else {
            panic!("expected events")
        };
        let seqs: Vec<u64> = entries
            .iter()
            .map(|e| match e {
                Entry::Record(p) => p.seq,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, [1, 3]);
        // Taking a whole chunk out of the whole feed splits it.
        let client = &clients[0];
        assert!(client.offer_chunk(&chunk, &mut books, &l1));
        client.update_subscriptions(|s| {
            assert!(s.remove(&id("A"), Channel::Book.bit(), 8));
        });
        assert_eq!(client.stats().queue_depth, 2);
    }

    #[test]
    fn a_chunk_that_does_not_fit_is_queued_record_by_record_and_folds() {
        let l1 = L1Cache::new();
        let client = Client::new(1, "127.0.0.1:1".parse().unwrap(), 2);
        client.update_subscriptions(|s| s.add_all(Channel::Tick.bit() | Channel::Book.bit()));
        let mut chunk = Chunk::default();
        for seq in 1..=3u64 {
            let instrument = if seq == 2 { id("B") } else { id("A") };
            chunk.push(seq, 0, instrument, Channel::Tick, |out| {
                out.push_str(&format!("{{\"seq\":{seq}}}"))
            });
        }
        assert!(client.offer_chunk(&Arc::new(chunk), &mut BookCache::default(), &l1));
        let stats = client.stats();
        assert_eq!((stats.conflations, stats.conflated, stats.queue_depth), (1, 1, 2));
        let Some(Drained::Conflated(folded)) = client.take(VecDeque::new()) else {
            panic!("expected a folded queue")
        };
        assert_eq!(folded.ticks[&id("A")].seq, 3);
        assert_eq!(&*folded.ticks[&id("A")].json, r#"{"seq":3}"#);
        assert_eq!(folded.ticks[&id("B")].seq, 2);
    }

    #[test]
    fn a_gap_after_records_stays_after_them() {
        let client = Client::new(1, "127.0.0.1:1".parse().unwrap(), 16);
        client.update_subscriptions(|s| s.add_all(Channel::Tick.bit()));
        let l1 = L1Cache::new();
        tick(&client, 1, "A", &l1);
        tick(&client, 2, "B", &l1);
        client.offer_gap(range(3, 4), &l1);
        tick(&client, 5, "A", &l1);
        let Some(Drained::Events(entries)) = client.take(VecDeque::new()) else {
            panic!("expected events")
        };
        let order: Vec<(u64, bool)> = entries
            .iter()
            .map(|e| match e {
                Entry::Record(p) => (p.seq, false),
                Entry::Gap(gap) => (gap.from, true),
                Entry::Chunk(chunk) => panic!("a ticks-only client got a chunk: {chunk:?}"),
            })
            .collect();
        assert_eq!(order, [(1, false), (2, false), (3, true), (5, false)]);
    }

    #[test]
    fn folded_gaps_stay_apart_and_in_order_merging_only_touching_ones() {
        let client = Client::new(1, "127.0.0.1:1".parse().unwrap(), 2);
        client.update_subscriptions(|s| s.add_all(Channel::Tick.bit()));
        let l1 = L1Cache::new();
        tick(&client, 1, "A", &l1);
        client.offer_gap(range(2, 3), &l1);
        // Full: this folds.
        tick(&client, 4, "A", &l1);
        client.offer_gap(range(10, 11), &l1);
        client.offer_gap(range(12, 12), &l1);
        tick(&client, 13, "B", &l1);
        client.offer_gap(range(20, 21), &l1);
        let Some(Drained::Conflated(folded)) = client.take(VecDeque::new()) else {
            panic!("expected a folded queue")
        };
        assert_eq!(folded.gaps, [range(2, 3), range(10, 12), range(20, 21)]);
        let order: Vec<u64> = folded.into_ordered().iter().map(Folded::seq).collect();
        // A's tick 4 (1 was folded into it), the gaps, B's 13, in seq order.
        assert_eq!(order, [2, 4, 10, 13, 20]);
    }

    #[test]
    fn folded_gaps_are_bounded_by_merging_the_oldest() {
        let client = Client::new(1, "127.0.0.1:1".parse().unwrap(), 1);
        let l1 = L1Cache::new();
        for k in 0..(MAX_FOLDED_GAPS as u64 + 10) {
            client.offer_gap(range(10 * k, 10 * k + 1), &l1);
        }
        let Some(Drained::Conflated(folded)) = client.take(VecDeque::new()) else {
            panic!("expected a folded queue")
        };
        assert_eq!(folded.gaps.len(), MAX_FOLDED_GAPS);
        assert_eq!(folded.gaps[0].from, 0);
        assert!(folded.gaps.windows(2).all(|w| w[0].to < w[1].from), "{:?}", folded.gaps);
        let last = MAX_FOLDED_GAPS as u64 + 9;
        assert_eq!(*folded.gaps.last().unwrap(), range(10 * last, 10 * last + 1));
    }

    #[test]
    fn star_minus_one_instrument_excludes_it_until_it_is_subscribed_again() {
        let (tick, book) = (Channel::Tick.bit(), Channel::Book.bit());
        let mut subs = Subscriptions::default();
        subs.add_all(tick | book);
        assert!(subs.remove(&id("A"), tick | book, 8));
        assert_eq!(subs.mask(&id("A")), 0);
        assert_eq!(subs.mask(&id("B")), tick | book);
        // Only the book channel back for A.
        assert!(subs.add(id("A"), book, 8));
        assert_eq!(subs.mask(&id("A")), book);
        // Removing the tick of B; `"*"` again brings everything back.
        assert!(subs.remove(&id("B"), tick, 8));
        assert_eq!(subs.mask(&id("B")), book);
        subs.add_all(tick);
        assert_eq!(subs.mask(&id("B")), tick | book);
        assert!(subs.excluded.is_empty());
        // Exclusions are bounded.
        assert!(subs.remove(&id("C"), tick, 1));
        assert!(!subs.remove(&id("D"), tick, 1));
        assert_eq!(subs.mask(&id("D")), tick | book);
        // Unsubscribing `"*"` leaves only explicit subscriptions.
        subs.remove_all(tick | book);
        assert_eq!(subs.mask(&id("A")), 0);
        assert!(subs.excluded.is_empty());
    }

    #[test]
    fn unsubscribed_records_are_not_queued_and_unsubscribe_drops_pending() {
        let client = Client::new(1, "127.0.0.1:1".parse().unwrap(), 16);
        let l1 = L1Cache::new();
        offer(&client, 1, &id("A"), Channel::Tick, &l1);
        assert_eq!(client.stats().queue_depth, 0);
        client.update_subscriptions(|s| {
            s.by_instrument
                .insert(id("A"), Channel::Tick.bit() | Channel::Book.bit());
        });
        offer(&client, 2, &id("A"), Channel::Tick, &l1);
        offer(&client, 3, &id("A"), Channel::Book, &l1);
        offer(&client, 4, &id("B"), Channel::Book, &l1);
        assert_eq!(client.stats().queue_depth, 2);
        client.update_subscriptions(|s| {
            s.by_instrument.insert(id("A"), Channel::Book.bit());
        });
        assert_eq!(client.stats().queue_depth, 1);
    }
}
