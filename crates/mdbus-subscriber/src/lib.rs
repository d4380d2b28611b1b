//! The mdbus subscriber (docs/spec.md, "Subscribe path"): one stream of a
//! feed in seq order, each record once, whether the subscriber starts
//! late, restarts after a crash, or falls behind; and the caches a strategy
//! or risk service reads.
//!
//! ```text
//!  live receiver ──► buffer ─┐
//!  (attached first)          ├─► merge by seq ──► Event stream ──► L1 (DashMap: tick + book)
//!  WAL replay ───────────────┘   (dups dropped,                └─► L2 (recent ticks, book log)
//!  (start point .. first live)    holes filled        history queries: L2, else L3 = WAL
//!                                  from the WAL)
//! ```
//!
//! - **Replay-merge** ([`Subscriber`], as Aeron's ReplayMerge): the live
//!   receiver is attached and buffered, the WAL replayed from the newest
//!   full snapshot set (or a seq or a time, [`StartFrom`]) up to the first
//!   live seq, duplicates dropped by seq, then [`Event::ReplayDone`] and
//!   live. Without a running publisher it replays, follows the WAL's tail
//!   and switches when live records appear.
//! - **Gap fill**: a hole in live seq (overflow of a slow subscriber, a
//!   publisher restart) is read from the WAL ([`Source::GapFill`]) before
//!   later records; what the WAL no longer has is an explicit
//!   [`Event::Gap`].
//! - **Caches**: [`L1Cache`] holds the latest tick and the current book of
//!   every instrument (deltas applied to the last snapshot), read from any
//!   thread; L2 keeps recent ticks and book records per instrument
//!   ([`L2Config`]); [`History`] (L3) answers from the WAL, also on its own
//!   after the publisher exited. [`CachedHistory`] goes L2 then L3.
//! - **Consistency check**: each snapshot is compared with the book kept by
//!   deltas; a difference is counted ([`SubscriberStats::mismatches`]) and
//!   the book reset from the snapshot. After a gap the books are stale
//!   until their next snapshot (not counted).
//!
//! # Quick start
//!
//! ```
//! use std::time::Duration;
//! use mdbus_publisher::{FeedConfig, FeedPublisher, SyntheticFeed};
//! use mdbus_subscriber::{Event, Subscriber, SubscriberConfig};
//! use mdbus_transport::InProcBus;
//! use mdbus_types::{WalLocation, clock::now_ns};
//!
//! let dir = tempfile::tempdir()?;
//! let bus = InProcBus::new(4096);
//! let mut config = FeedConfig::new("quick");
//! config.wal_root = Some(dir.path().to_path_buf());
//! config.wal = mdbus_wal::WalOptions::default().segment_bytes(1 << 20);
//! let mut publisher = FeedPublisher::open(config, bus.sender())?;
//! let mut feed = SyntheticFeed::new(2, 7)?;
//! let mut publish = |publisher: &mut FeedPublisher<_>, n| -> Result<(), mdbus_publisher::Error> {
//!     let mut batch = Vec::new();
//!     for _ in 0..n {
//!         batch.clear();
//!         feed.next_event(now_ns(), &mut batch);
//!         publisher.publish_batch(&mut batch)?;
//!     }
//!     Ok(())
//! };
//! publish(&mut publisher, 100)?;
//!
//! // A late subscriber: attach live first, then replay the WAL up to it.
//! let receiver = bus.subscribe();
//! publish(&mut publisher, 100)?;
//! let wal = WalLocation::try_new(dir.path(), "quick")?;
//! let mut subscriber = Subscriber::new(receiver, SubscriberConfig::default().wal(wal))?;
//! let last = publisher.next_seq() - 1;
//! let mut replay_done = false;
//! while subscriber.stats().last_seq != Some(last) {
//!     match subscriber.next_event(Duration::from_secs(5))? {
//!         Some(Event::ReplayDone { .. }) => replay_done = true,
//!         Some(Event::Gap(lost)) => panic!("lost {lost}"),
//!         Some(_) => {}
//!         None => panic!("no record within 5 s"),
//!     }
//! }
//! assert!(replay_done);
//! let id = mdbus_types::InstrumentId::new(&mdbus_publisher::synthetic_symbol(0))?;
//! assert_eq!(subscriber.l1().book(&id), publisher.book(&id).map(|b| b.to_snapshot()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! None: the subscriber is generic over `mdbus_transport::MdReceiver`, so
//! it works with `mdbus_transport::iceoryx::IoxReceiver` when that crate
//! is built with its `iceoryx2` feature (create the `Subscriber` in the
//! thread that owns the receiver; iceoryx2 ports are not `Send`).
//! [`SubscriberConfig::wal`] takes the `WalLocation` the service announces
//! in `mdbus.wal_dir` (`IoxReceiver::wal()`).

mod cached;
mod error;
mod hash;
mod history;
mod l1;
mod l2;
mod subscriber;

pub use cached::CachedHistory;
pub use error::{Error, Result};
pub use history::History;
pub use l1::{L1Cache, L1Entry, Quote};
pub use l2::{CacheLevel, DEFAULT_L2_BYTES, L2Config};
pub use subscriber::{
    CatchUp, Event, EventRef, Source, StartFrom, Subscriber, SubscriberConfig, SubscriberStats, WAL_TAIL_POLL,
};
