//! The iceoryx2 shared-memory transport (feature `iceoryx2`).
//!
//! One feed is two iceoryx2 services, named and configured exactly as
//! docs/spec.md's "Wire names (iceoryx2)" says, so that independently built
//! clients (other languages, other builds) open the same services:
//!
//! - `mdbus/<feed>/md`: publish-subscribe of [`MdSample`](mdbus_types::MdSample),
//!   user header `()`, safe overflow on, the settings in [`settings`]; the
//!   service attribute [`WAL_DIR_ATTRIBUTE`] holds the feed's WAL folder;
//! - `mdbus/<feed>/md/ev`: event service; the publisher notifies
//!   [`EVENT_END_OF_BATCH`] after each send batch and
//!   [`EVENT_PUBLISHER_STARTED`] when it starts.
//!
//! [`IoxSender`] implements [`MdSender`](crate::MdSender), [`IoxReceiver`]
//! implements [`MdReceiver`](crate::MdReceiver); a subscriber waits with
//! the [`WaitStrategy`] its user picks (busy spin, backoff, or block on
//! the event service).
//!
//! A feed published with a Unix group ([`IoxSenderConfig::group`]) lives
//! in an iceoryx2 configuration of its own ([`group_root`],
//! [`group_prefix`]) whose files the group may use; a receiver finds it by
//! its root folder, and a user outside the group gets
//! [`Error::AccessDenied`](crate::Error::AccessDenied).
//!
//! Ports of iceoryx2's `ipc` service are single-threaded: both types are
//! neither `Send` nor `Sync`, so create each in the thread that uses it.
//! [`IoxSharedSender`] is a sender on `ipc_threadsafe` ports, which may
//! move between threads.
//!
//! ```no_run
//! use std::time::Duration;
//! use mdbus_transport::iceoryx::{IoxSender, IoxSenderConfig, IoxReceiver, IoxReceiverConfig, WaitStrategy};
//! use mdbus_transport::{MdReceiver, MdSender};
//! use mdbus_types::{FeedName, Heartbeat, Kind, MdSample, RecordHeader, WalLocation};
//!
//! let wal = WalLocation::new("/var/lib/mdbus", FeedName::new("golden")?);
//! let mut publisher = IoxSender::create(&IoxSenderConfig::new("golden").wal(wal.clone()))?;
//! let mut subscriber = IoxReceiver::open(&IoxReceiverConfig::new("golden").wait(WaitStrategy::Block))?;
//! assert_eq!(subscriber.wal()?, Some(wal));
//!
//! let mut sample = MdSample::from(Heartbeat { header: RecordHeader::new(Kind::Heartbeat, 0) });
//! sample.header_mut().seq = 1;
//! publisher.send(&sample)?;
//! publisher.end_batch()?;
//! let received = subscriber.recv_timeout(Duration::from_secs(1))?.expect("a sample");
//! assert_eq!(received.header().seq, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod names;
mod namespace;
mod receiver;
mod sender;
mod wait;

pub use names::{
    EVENT_END_OF_BATCH, EVENT_PUBLISHER_STARTED, WAL_DIR_ATTRIBUTE, event_service_name, feed_exists, md_service_name,
    settings,
};
pub use namespace::{group_prefix, group_root};
pub use receiver::{IoxHeld, IoxReceiver, IoxReceiverConfig};
pub use sender::{IoxSender, IoxSenderConfig, IoxSharedSender};
pub use wait::WaitStrategy;

/// Sets iceoryx2's log level to errors only, unless the environment
/// variable `IOX2_LOG_LEVEL` says otherwise. (iceoryx2 warns in every
/// process that no config file was loaded; mdbus uses the defaults on
/// purpose, as docs/spec.md says.) Call once at process start.
pub fn init_logging() {
    iceoryx2::prelude::set_log_level_from_env_or(iceoryx2::prelude::LogLevel::Error);
}
