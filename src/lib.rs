//! mdbus: a zero-copy shared-memory market-data bus.
//!
//! # Quick start
//!
//! [`Publisher`] publishes one feed (iceoryx2 shared memory, the WAL, the
//! snapshot board); [`Subscriber`] reads it in another process, replaying
//! from the WAL the publisher announces and then live, each seq once, and
//! keeps the latest book and tick of every instrument:
//!
//! ```no_run
//! use mdbus::{InstrumentId, Price, Tick};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (id, px) = (InstrumentId::new("IF2501")?, |s: &str| s.parse::<Price>());
//! let mut bus = mdbus::Publisher::builder("cffex").wal("/var/lib/mdbus").open()?;
//! bus.tick(Tick::new(id, mdbus::now_ns()).last(px("4123.4")?, 2).bid(px("4123.2")?, 10).ask(px("4123.6")?, 7))?;
//!
//! let mut sub = mdbus::Subscriber::builder("cffex").replay(true).open()?;
//! while let Some(_event) = sub.next()? {
//!     if let Some(q) = sub.quote(&id) { /* q.bid, q.ask, q.seq, q.stale: one read */ }
//! }
//! # Ok(()) }
//! ```
//!
//! The layers underneath, re-exported:
//! - [`types`]: record layouts, `Price`, `InstrumentId`, the top-10 `Book`;
//! - [`transport`]: the transport traits, the in-process crossbeam bus and
//!   the iceoryx2 transport (feature);
//! - [`wal`]: the segmented memory-mapped write-ahead log;
//! - [`board`]: the snapshot board (the latest tick and book of every
//!   instrument in a shared-memory file);
//! - [`publisher`]: the feed publisher (WAL, transport, board, snapshot
//!   policy) and the synthetic feed;
//! - [`subscriber`]: replay-merge into the live stream, gap fill, L1/L2/L3
//!   caches and history queries;
//! - `gateway`: the WebSocket gateway (event-driven push, per-client
//!   conflation, the live depth page), with the `gateway` feature;
//! - `cli`: the `mdbus` command line, with the `cli` feature.
//!
//! # Feature flags
//!
//! - `iceoryx2` (default): the iceoryx2 shared-memory transport. Without
//!   it a [`Publisher`] reaches other processes through the WAL and the
//!   board only, and a [`Subscriber`] follows the WAL's tail.
//! - `cli` (default): the `mdbus` binary (clap), and the gateway.
//! - `gateway`: the WebSocket gateway (axum, tokio).
//!
//! A strategy binary turns the defaults off and keeps `iceoryx2`.

mod error;
mod publish;
mod subscribe;

pub use error::{Error, PublishError, Result};
pub use publish::{LiveSender, Publisher, PublisherBuilder};
#[cfg(not(feature = "iceoryx2"))]
pub use subscribe::WalTail;
pub use subscribe::{LiveReceiver, Subscriber, SubscriberBuilder};

pub use mdbus_subscriber::{CatchUp, Event, EventRef, Quote, Source, StartFrom};
pub use mdbus_types::clock::now_ns;
pub use mdbus_types::{
    BookDelta, BookSnapshot, FeedName, InstrumentId, Level, Price, Qty, SeqRange, Side, Tick, WalLocation,
};

/// The README's code blocks, compiled as doctests (its two snippets are
/// the documented way in).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use mdbus_board as board;
#[cfg(feature = "cli")]
pub use mdbus_cli as cli;
#[cfg(feature = "gateway")]
pub use mdbus_gateway as gateway;
pub use mdbus_publisher as publisher;
pub use mdbus_subscriber as subscriber;
pub use mdbus_transport as transport;
pub use mdbus_types as types;
pub use mdbus_wal as wal;
