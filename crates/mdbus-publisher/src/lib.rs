//! The mdbus publisher: sequencing (dense `seq` from 1), `ts_publish`
//! stamping, batch marking, and a deterministic synthetic market feed.
//!
//! The write-ahead log and the iceoryx2 shared-memory path join this
//! pipeline in their own issues: assign seq -> append to the WAL -> write
//! into a loaned sample -> send -> notify per batch -> update the board.
//!
//! # Quick start
//!
//! ```
//! use mdbus_publisher::{Publisher, SyntheticFeed};
//! use mdbus_transport::{InProcBus, MdReceiver};
//!
//! let bus = InProcBus::new(4096);
//! let mut rx = bus.subscribe();
//! let mut publisher = Publisher::new(bus.sender());
//! let mut feed = SyntheticFeed::new(4, 42)?;
//! let mut batch = Vec::new();
//! feed.next_event(mdbus_types::clock::now_ns(), &mut batch);
//! publisher.publish_batch(&mut batch)?;
//! assert_eq!(rx.try_recv()?.unwrap().header().seq, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod feed;
mod publisher;
mod synthetic;

pub use error::{Error, Result};
pub use feed::{FeedConfig, FeedPublisher, FeedStats, POLL_EVERY};
pub use publisher::{Publisher, PublisherStats};
pub use synthetic::{MAX_INSTRUMENTS, SyntheticFeed, synthetic_symbol};
