//! [`Publisher`]: one feed's publish path (WAL, iceoryx2 shared memory,
//! snapshot board, snapshot policy, heartbeats) behind a builder.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use mdbus_publisher::{FeedConfig, FeedPublisher, FeedStats};
use mdbus_types::{Book, BookDelta, BookSnapshot, InstrumentId, MdSample, Record, Tick, WalLocation};
use mdbus_wal::{SyncPolicy, WalOptions};

use crate::error::{PublishError, Result};

/// The transport of a [`Publisher`]: the feed's iceoryx2 service, whose
/// `mdbus.wal_dir` attribute announces the WAL folder to subscribers.
#[cfg(feature = "iceoryx2")]
pub type LiveSender = mdbus_transport::iceoryx::IoxSender;

/// The transport of a [`Publisher`] in a build without iceoryx2: an
/// in-process bus nobody else reaches, so records go to the WAL and the
/// board only (other processes read those).
#[cfg(not(feature = "iceoryx2"))]
pub type LiveSender = mdbus_transport::InProcSender;

/// Publishes one feed. Open it with [`Publisher::builder`]:
///
/// ```no_run
/// use mdbus::types::{InstrumentId, Price, Tick};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut bus = mdbus::Publisher::builder("cffex").wal("/var/lib/mdbus").open()?;
/// let id = InstrumentId::new("IF2501")?;
/// let px = |s: &str| s.parse::<Price>();
/// bus.tick(Tick::new(id, 1_764_000_000_000_000_000).last(px("4123.4")?, 2).bid(px("4123.2")?, 10).ask(px("4123.6")?, 7))?;
/// # Ok(()) }
/// ```
///
/// Every record gets its `seq` and `ts_publish` here, goes into the WAL
/// (when one is set), then to shared memory, then to the board. The
/// housekeeping (policy snapshots every second and on a 5 % depth change,
/// the board's heartbeat) runs inside every publish; when the feed goes
/// quiet, call [`Publisher::idle`] from the idle loop so that heartbeats
/// (every 100 ms of silence) tell subscribers the feed is alive.
#[derive(Debug)]
pub struct Publisher {
    inner: FeedPublisher<LiveSender>,
}

/// How a [`Publisher`] opens; from [`Publisher::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `open`"]
pub struct PublisherBuilder {
    config: FeedConfig,
    cpu: Option<usize>,
    /// The group's name, looked up by `open`.
    group: Option<String>,
}

impl PublisherBuilder {
    /// Logs the feed into the WAL under `root` (segments in
    /// `<root>/<feed>/`). Without it the feed has no WAL: no replay, no gap
    /// fill, nothing survives the process.
    pub fn wal(mut self, root: impl Into<PathBuf>) -> PublisherBuilder {
        self.config.wal_root = Some(root.into());
        self
    }

    /// The WAL's sync policy (default: a background sync every 2 ms).
    pub fn sync(mut self, sync: SyncPolicy) -> PublisherBuilder {
        self.config.wal = self.config.wal.sync(sync);
        self
    }

    /// The WAL's options, whole (segment size, sync, preallocation).
    pub fn wal_options(mut self, options: WalOptions) -> PublisherBuilder {
        self.config.wal = options;
        self
    }

    /// The snapshot board's folder (default `/dev/shm`).
    pub fn board(mut self, dir: impl Into<PathBuf>) -> PublisherBuilder {
        self.config.board_dir = Some(dir.into());
        self
    }

    /// No snapshot board.
    pub fn no_board(mut self) -> PublisherBuilder {
        self.config.board_dir = None;
        self
    }

    /// A heartbeat when nothing was published for this long (default 100 ms).
    pub fn heartbeat_interval(mut self, every: Duration) -> PublisherBuilder {
        self.config.heartbeat_interval = every;
        self
    }

    /// Every instrument gets a book snapshot at least this often (default 1 s).
    pub fn snapshot_interval(mut self, every: Duration) -> PublisherBuilder {
        self.config.snapshot_interval = every;
        self
    }

    /// Pins the thread that calls [`PublisherBuilder::open`] (it must be
    /// the one that publishes) to CPU `cpu`, before the WAL starts its
    /// threads, which inherit the pin: the publish path on one core, each
    /// spinning subscriber on another ([`SubscriberBuilder::cpu`](crate::SubscriberBuilder::cpu)).
    /// The pin stays with the calling thread (and the threads it starts
    /// later) after the publisher is dropped.
    pub fn cpu(mut self, cpu: usize) -> PublisherBuilder {
        self.cpu = Some(cpu);
        self
    }

    /// Lets the members of the Unix group `group` read the feed (the
    /// library form of `mdbus publish --group`): the WAL folder, the board
    /// and the iceoryx2 files get the group and nothing for others; only
    /// this user publishes the feed. The calling user must be a member.
    /// `open` looks the group up (an unknown group is an error naming it).
    pub fn group(mut self, group: &str) -> PublisherBuilder {
        self.group = Some(group.to_string());
        self
    }

    /// The whole configuration, for what the builder does not name.
    pub fn config(&self) -> &FeedConfig {
        &self.config
    }

    /// Opens the feed: takes the WAL's writer lock (a second publisher of
    /// the feed is refused before it touches shared memory), recovers the
    /// WAL and the books in it, creates the iceoryx2 service and the board.
    pub fn open(mut self) -> Result<Publisher> {
        if let Some(cpu) = self.cpu {
            mdbus_types::affinity::pin_current_thread(cpu)?;
        }
        if let Some(name) = &self.group {
            self.config.group = Some(mdbus_types::FeedGroup::by_name(name)?);
        }
        let feed = self.config.feed.clone();
        let wal = self.config.wal_location()?;
        let group = self.config.group.clone();
        let inner = FeedPublisher::open_with(self.config, || live_sender(&feed, wal, group))?;
        Ok(Publisher { inner })
    }
}

#[cfg(feature = "iceoryx2")]
fn live_sender(
    feed: &str,
    wal: Option<WalLocation>,
    group: Option<mdbus_types::FeedGroup>,
) -> mdbus_transport::Result<LiveSender> {
    use mdbus_transport::iceoryx::{IoxSender, IoxSenderConfig, init_logging};
    init_logging();
    let mut config = IoxSenderConfig::new(feed);
    // The sender announces the root made absolute: subscribers run in
    // other folders.
    config.wal = wal;
    config.group = group;
    IoxSender::create(&config)
}

#[cfg(not(feature = "iceoryx2"))]
fn live_sender(
    feed: &str,
    _wal: Option<WalLocation>,
    _group: Option<mdbus_types::FeedGroup>,
) -> mdbus_transport::Result<LiveSender> {
    mdbus_types::FeedName::new(feed)?;
    Ok(mdbus_transport::InProcBus::new(1).sender())
}

// The refused record comes back by value (crossbeam's `TrySendError<T>`
// shape): the `Err` is as large as the record, and on `Ok` only the seq is
// written, so nothing is boxed.
#[allow(clippy::result_large_err)]
impl Publisher {
    /// A builder for `feed` (`[A-Za-z0-9_-]{1,32}`, checked by `open`) with
    /// docs/spec.md's defaults: iceoryx2 service `mdbus/<feed>/md`, board in
    /// `/dev/shm`, snapshots every 1 s and on a 5 % depth change,
    /// heartbeats after 100 ms of silence, no WAL until [`PublisherBuilder::wal`].
    pub fn builder(feed: &str) -> PublisherBuilder {
        let mut config = FeedConfig::new(feed);
        config.board_dir = Some(PathBuf::from(mdbus_board::DEFAULT_BOARD_DIR));
        PublisherBuilder {
            config,
            cpu: None,
            group: None,
        }
    }

    /// Publishes any record; returns its seq. A record that was not
    /// published comes back in the error.
    pub fn publish<R: Record>(&mut self, mut record: R) -> Result<u64, PublishError<R>> {
        // The publisher stamps the seq (seqs start at 1) just before the
        // WAL append, and takes it only once the append succeeded: a
        // stamped seq below the next one reached the WAL.
        record.header_mut().seq = 0;
        self.inner.publish(&mut record).map_err(|error| {
            let seq = record.header().seq;
            let logged = seq != 0 && seq < self.inner.next_seq();
            PublishError {
                record,
                seq: logged.then_some(seq),
                error,
            }
        })
    }

    /// Publishes a trade (with the top of book after it); returns its seq.
    pub fn tick(&mut self, tick: Tick) -> Result<u64, PublishError<Tick>> {
        self.publish(tick)
    }

    /// Publishes a full top-10 book of an instrument; returns its seq.
    pub fn book(&mut self, snapshot: BookSnapshot) -> Result<u64, PublishError<BookSnapshot>> {
        self.publish(snapshot)
    }

    /// Publishes a change of one level (after a snapshot of that book);
    /// returns its seq.
    pub fn delta(&mut self, delta: BookDelta) -> Result<u64, PublishError<BookDelta>> {
        self.publish(delta)
    }

    /// Publishes records of any kinds as one batch (one wake-up for
    /// blocked subscribers); `seq` and `ts_publish` are written into the
    /// caller's buffer. The whole batch is checked first: one bad record
    /// and nothing is published.
    pub fn publish_batch(&mut self, batch: &mut [MdSample]) -> Result<RangeInclusive<u64>> {
        Ok(self.inner.publish_batch(batch)?)
    }

    /// Call when there is nothing to publish (a quiet feed): sends a
    /// heartbeat after `heartbeat_interval` of silence, keeps the board's
    /// heartbeat fresh, sends the interval snapshots that are due.
    pub fn idle(&mut self) -> Result<()> {
        Ok(self.inner.poll()?)
    }

    /// Syncs the WAL whatever its policy.
    pub fn flush(&mut self) -> Result<()> {
        Ok(self.inner.flush()?)
    }

    /// The seq the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.inner.next_seq()
    }

    /// The publisher's own current book of `id`.
    pub fn current_book(&self, id: &InstrumentId) -> Option<&Book> {
        self.inner.book(id)
    }

    /// What has been published.
    pub fn stats(&self) -> FeedStats {
        self.inner.stats()
    }

    /// The publish path underneath, for what this type does not name.
    pub fn inner_mut(&mut self) -> &mut FeedPublisher<LiveSender> {
        &mut self.inner
    }
}
