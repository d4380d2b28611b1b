//! mdbus: a zero-copy shared-memory market-data bus.
//!
//! This facade re-exports the workspace crates:
//! - [`types`]: record layouts, `Price`, `InstrumentId`, the top-10 `Book`;
//! - [`transport`]: the transport traits, the in-process crossbeam bus and
//!   the snapshot board;
//! - [`wal`]: the segmented memory-mapped write-ahead log;
//! - [`publisher`]: the feed publisher (WAL, transport, board, snapshot
//!   policy) and the synthetic feed;
//! - [`subscriber`]: replay-merge into the live stream, gap fill, L1/L2/L3
//!   caches and history queries;
//! - [`gateway`]: the WebSocket gateway (event-driven push, per-client
//!   conflation, the live depth page);
//! - [`cli`]: the `mdbus` command line.
//!
//! # Feature flags
//!
//! - `iceoryx2`: the iceoryx2 shared-memory payload marker on `MdSample`.

pub use mdbus_cli as cli;
pub use mdbus_gateway as gateway;
pub use mdbus_publisher as publisher;
pub use mdbus_subscriber as subscriber;
pub use mdbus_transport as transport;
pub use mdbus_types as types;
pub use mdbus_wal as wal;
