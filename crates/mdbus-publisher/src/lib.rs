//! The mdbus publisher, [`FeedPublisher`]: the one publisher of a feed
//! (dense `seq` from 1, `ts_publish` stamping, batch marking, WAL append,
//! send, snapshot board, snapshot policy, heartbeats), and a deterministic
//! synthetic market feed. Per record: assign seq -> append to the WAL ->
//! write into a loaned sample -> send; per batch: notify -> update the
//! board.
//!
//! # Quick start
//!
//! Without a WAL or a board (the in-process demo); `mdbus::Publisher`
//! wraps the same type with iceoryx2, a WAL and a board.
//!
//! ```
//! use mdbus_publisher::{FeedConfig, FeedPublisher, SyntheticFeed};
//! use mdbus_transport::{InProcBus, MdReceiver};
//!
//! let bus = InProcBus::new(4096);
//! let mut rx = bus.subscribe();
//! let mut publisher = FeedPublisher::open(FeedConfig::new("quick"), bus.sender())?;
//! let mut feed = SyntheticFeed::new(4, 42)?;
//! let mut batch = Vec::new();
//! feed.next_event(mdbus_types::clock::now_ns(), &mut batch);
//! publisher.publish_batch(&mut batch)?;
//! assert_eq!(rx.try_recv()?.unwrap().header().seq, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod feed;
mod synthetic;

pub use error::{Error, Result};
pub use feed::{FeedConfig, FeedPublisher, FeedStats, POLL_EVERY};
pub use synthetic::{MAX_INSTRUMENTS, SyntheticFeed, synthetic_symbol};
