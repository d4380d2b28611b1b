//! [`Subscriber`]: one feed's stream in seq order (replay from the WAL the
//! publisher announces, then live, gaps filled) and the caches it keeps.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mdbus_subscriber::{
    CachedHistory, CatchUp, Event, EventRef, L1Cache, L2Config, Quote, StartFrom, SubscriberConfig, SubscriberStats,
};
use mdbus_types::{BookSnapshot, InstrumentId, Tick, WalLocation};

use crate::error::{Error, Result};

/// The live side of a [`Subscriber`]: the feed's iceoryx2 service.
#[cfg(feature = "iceoryx2")]
pub type LiveReceiver = mdbus_transport::iceoryx::IoxReceiver;

/// The live side of a [`Subscriber`] in a build without iceoryx2: nothing
/// reaches it across processes, so the subscriber replays the WAL and
/// follows its tail.
#[cfg(not(feature = "iceoryx2"))]
pub type LiveReceiver = WalTail;

/// A receiver that never receives ("no publisher attached"): the
/// subscriber over it follows the WAL's tail.
#[cfg(not(feature = "iceoryx2"))]
#[derive(Debug, Default)]
pub struct WalTail;

#[cfg(not(feature = "iceoryx2"))]
impl mdbus_transport::MdReceiver for WalTail {
    type Held = mdbus_transport::Popped;

    fn try_recv(&mut self) -> mdbus_transport::Result<Option<mdbus_types::MdSample>> {
        Err(mdbus_transport::Error::Disconnected)
    }

    fn try_recv_held(&mut self) -> mdbus_transport::Result<Option<mdbus_transport::Popped>> {
        Err(mdbus_transport::Error::Disconnected)
    }

    /// Nothing can arrive, so the wait is the whole timeout (the
    /// transport contract: the subscriber reads the WAL's tail after it).
    fn recv_timeout(&mut self, timeout: Duration) -> mdbus_transport::Result<Option<mdbus_types::MdSample>> {
        std::thread::sleep(timeout);
        Err(mdbus_transport::Error::Disconnected)
    }

    fn dropped(&self) -> u64 {
        0
    }
}

/// Subscribes to one feed. Open it with [`Subscriber::builder`]:
///
/// ```no_run
/// use mdbus::types::InstrumentId;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let id = InstrumentId::new("IF2501")?;
/// let mut sub = mdbus::Subscriber::builder("cffex").replay(true).open()?;
/// while let Some(_event) = sub.next()? {
///     if let Some(q) = sub.quote(&id) {
///         println!("{} {} x {} / {} x {} seq {} stale {}", id, q.bid.price, q.bid.qty, q.ask.price, q.ask.qty, q.seq, q.stale);
///     }
/// }
/// # Ok(()) }
/// ```
///
/// Every record is applied to the L1 cache (latest tick and top-10 book
/// per instrument) before it is returned, so [`Subscriber::quote`] right
/// after [`Subscriber::next`] reads the book as of that record. Other
/// threads read the same cache through [`Subscriber::l1`].
#[derive(Debug)]
pub struct Subscriber {
    inner: mdbus_subscriber::Subscriber<LiveReceiver>,
    idle_timeout: Option<Duration>,
}

/// How a [`Subscriber`] opens; from [`Subscriber::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `open`"]
pub struct SubscriberBuilder {
    feed: String,
    start: StartFrom,
    wal: Option<PathBuf>,
    open_timeout: Duration,
    idle_timeout: Option<Duration>,
    l2: Option<L2Config>,
    catch_up: CatchUp,
    cpu: Option<usize>,
    #[cfg(feature = "iceoryx2")]
    wait: mdbus_transport::iceoryx::WaitStrategy,
}

impl SubscriberBuilder {
    /// `true` (the default): replay the WAL from its newest full snapshot
    /// set, so every book is whole before the first live record; `false`:
    /// start at the first live record (the WAL, if known, still fills
    /// holes and answers history queries).
    pub fn replay(mut self, on: bool) -> SubscriberBuilder {
        self.start = if on {
            StartFrom::RecoveryPoint
        } else {
            StartFrom::LiveOnly
        };
        self
    }

    /// Start at this seq, or at the first record at or after a time.
    pub fn start(mut self, start: StartFrom) -> SubscriberBuilder {
        self.start = start;
        self
    }

    /// The WAL's root (segments in `<root>/<feed>/`), instead of the
    /// folder the publisher announces in its iceoryx2 service.
    pub fn wal(mut self, root: impl Into<PathBuf>) -> SubscriberBuilder {
        self.wal = Some(root.into());
        self
    }

    /// How long `open` waits for a publisher to create the feed (default
    /// 10 s).
    pub fn open_timeout(mut self, wait: Duration) -> SubscriberBuilder {
        self.open_timeout = wait;
        self
    }

    /// [`Subscriber::next`] returns `None` after this long without an
    /// event (default: it waits for ever).
    pub fn idle_timeout(mut self, quiet: Duration) -> SubscriberBuilder {
        self.idle_timeout = Some(quiet);
        self
    }

    /// Pins the thread that calls [`SubscriberBuilder::open`] (it must be
    /// the one that reads the events) to CPU `cpu`: a busy-spinning
    /// subscriber wants a core of its own, away from the publisher's. The
    /// pin stays with the calling thread after the subscriber is dropped.
    pub fn cpu(mut self, cpu: usize) -> SubscriberBuilder {
        self.cpu = Some(cpu);
        self
    }

    /// What the replay keeps: L1 and L2 (default), the latest state only
    /// ([`CatchUp::StateOnly`]: about twice as fast; history of the
    /// replayed range then comes from the WAL), or the latest state without
    /// delivering the replayed records ([`CatchUp::Silent`]: the fastest;
    /// the first event is the switch to live).
    pub fn catch_up(mut self, catch_up: CatchUp) -> SubscriberBuilder {
        self.catch_up = catch_up;
        self
    }

    /// How much history L2 keeps in memory.
    pub fn l2(mut self, l2: L2Config) -> SubscriberBuilder {
        self.l2 = Some(l2);
        self
    }

    /// How the live receiver waits: block on the feed's event service
    /// (default), back off, or busy-spin a core for the lowest latency.
    #[cfg(feature = "iceoryx2")]
    pub fn wait(mut self, wait: mdbus_transport::iceoryx::WaitStrategy) -> SubscriberBuilder {
        self.wait = wait;
        self
    }

    /// Attaches to the live feed first (waiting up to `open_timeout` for
    /// its publisher), then opens the WAL (given, or announced by the
    /// publisher) to replay from.
    pub fn open(self) -> Result<Subscriber> {
        if let Some(cpu) = self.cpu {
            mdbus_types::affinity::pin_current_thread(cpu)?;
        }
        let (live, announced) = self.open_live()?;
        let mut config = SubscriberConfig::default().start(self.start).catch_up(self.catch_up);
        if let Some(l2) = self.l2 {
            config = config.l2(l2);
        }
        config = config.wal_found(self.wal.as_deref(), &self.feed, announced)?;
        if config.wal.is_none() && self.start != StartFrom::LiveOnly {
            return Err(Error::NoWal { feed: self.feed });
        }
        Ok(Subscriber {
            inner: mdbus_subscriber::Subscriber::new(live, config)?,
            idle_timeout: self.idle_timeout,
        })
    }

    #[cfg(feature = "iceoryx2")]
    fn open_live(&self) -> Result<(LiveReceiver, Option<WalLocation>)> {
        use mdbus_transport::iceoryx::{IoxReceiver, IoxReceiverConfig, init_logging};
        init_logging();
        let config = IoxReceiverConfig::new(self.feed.clone()).wait(self.wait);
        let live = IoxReceiver::open_waiting(&config, self.open_timeout)?;
        let announced = live.wal()?;
        Ok((live, announced))
    }

    #[cfg(not(feature = "iceoryx2"))]
    fn open_live(&self) -> Result<(LiveReceiver, Option<WalLocation>)> {
        mdbus_types::FeedName::new(&self.feed)?;
        Ok((WalTail, None))
    }
}

impl Subscriber {
    /// A builder for `feed`: replay on, WAL from the publisher's
    /// announcement, block while waiting.
    pub fn builder(feed: &str) -> SubscriberBuilder {
        SubscriberBuilder {
            feed: feed.to_string(),
            start: StartFrom::RecoveryPoint,
            wal: None,
            open_timeout: Duration::from_secs(10),
            idle_timeout: None,
            l2: None,
            catch_up: CatchUp::Full,
            cpu: None,
            #[cfg(feature = "iceoryx2")]
            wait: mdbus_transport::iceoryx::WaitStrategy::Block,
        }
    }

    /// The next event in seq order (a record, the replay-done marker, or a
    /// gap the WAL could not fill), the caches already updated; waits for
    /// it (up to the idle timeout, if one was set: then `None`). The event
    /// is copied out (at most 376 bytes) so that the caches can be read
    /// while it is held; [`Subscriber::next_ref`] copies nothing.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Event>> {
        Ok(self.next_ref()?.map(EventRef::to_event))
    }

    /// [`Subscriber::next`] by reference, valid until the next call: a live
    /// record is read in place in shared memory (no copy) when the
    /// subscriber keeps up; a replayed one was copied once from the WAL.
    pub fn next_ref(&mut self) -> Result<Option<EventRef<'_>>> {
        let deadline = self.idle_timeout.map(|quiet| Instant::now() + quiet);
        // Ask in short slices so that an idle timeout ends on time; without
        // one, wait until an event comes.
        const SLICE: Duration = Duration::from_millis(100);
        loop {
            let slice = deadline.map_or(SLICE, |d| d.saturating_duration_since(Instant::now()).min(SLICE));
            // The borrow checker cannot see that a `None` ends the borrow
            // (NLL problem case 3), so ask whether an event came first.
            if self.inner.next_event_ref(slice)?.is_some() {
                return Ok(self.inner.last_event());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    /// [`Subscriber::next`] waiting at most `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Event>> {
        Ok(self.inner.next_event(timeout)?)
    }

    /// The top of the book of `id` and whether it is stale, in one read.
    pub fn quote(&self, id: &InstrumentId) -> Option<Quote> {
        self.inner.l1().quote(id)
    }

    /// The current top-10 book of `id`.
    pub fn book(&self, id: &InstrumentId) -> Option<BookSnapshot> {
        self.inner.l1().book(id)
    }

    /// The latest tick of `id`.
    pub fn tick(&self, id: &InstrumentId) -> Option<Tick> {
        self.inner.l1().tick(id)
    }

    /// The L1 cache, to share with other threads.
    pub fn l1(&self) -> &Arc<L1Cache> {
        self.inner.l1()
    }

    /// History queries (L2 memory, then L3 WAL), from any thread.
    pub fn history(&self) -> CachedHistory {
        self.inner.history()
    }

    /// Whether replay is done and records come live.
    pub fn is_live(&self) -> bool {
        self.inner.is_live()
    }

    /// What the subscriber did.
    pub fn stats(&self) -> SubscriberStats {
        self.inner.stats()
    }

    /// The replay-merge subscriber underneath.
    pub fn inner_mut(&mut self) -> &mut mdbus_subscriber::Subscriber<LiveReceiver> {
        &mut self.inner
    }
}
