//! mdbus: a zero-copy shared-memory market-data bus.
//!
//! This facade re-exports the workspace crates:
//! - [`types`]: record layouts, `Price`, `InstrumentId`, the top-10 `Book`;
//! - [`transport`]: the transport traits and the in-process crossbeam bus;
//! - [`publisher`]: sequencing publisher and the synthetic feed;
//! - [`cli`]: the `mdbus` command line.
//!
//! # Feature flags
//!
//! - `iceoryx2`: the iceoryx2 shared-memory payload marker on `MdSample`.

pub use mdbus_cli as cli;
pub use mdbus_publisher as publisher;
pub use mdbus_transport as transport;
pub use mdbus_types as types;
