//! Record layouts, instrument symbols, fixed-point prices and the top-10
//! order book of mdbus, a zero-copy shared-memory market-data bus.
//!
//! Every record is `#[repr(C)]`, little-endian, 8-byte aligned, with
//! explicit padding, `bytemuck::Pod`, and starts with a [`RecordHeader`].
//! The byte layouts are docs/spec.md's contract: external clients in C, C++,
//! Python or another Rust build are written from that table, and
//! [`layout_table`] prints it from the code.
//!
//! # Quick start
//!
//! ```
//! use mdbus_types::{Book, BookDelta, InstrumentId, MdSample, Price, RecordRef, Side};
//!
//! let id = InstrumentId::new("IF2501")?;
//! let px: Price = "4123.4".parse()?;
//! let delta = BookDelta::new(id, Side::Bid, px, 5, 1_764_000_000_000_000_000);
//!
//! // Any record travels in the one shared-memory payload type.
//! let sample = MdSample::from(delta);
//! let RecordRef::BookDelta(d) = sample.record()? else { unreachable!() };
//!
//! let mut book = Book::new(id);
//! book.apply_delta(d)?;
//! assert_eq!(book.best_bid().unwrap().price.to_string(), "4123.4");
//! # Ok::<(), mdbus_types::Error>(())
//! ```
//!
//! # Feature flags
//!
//! - `iceoryx2`: derives iceoryx2's `ZeroCopySend` for [`MdSample`] with the
//!   type name `mdbus::v1::MdSample`, so independently compiled clients can
//!   open the same shared-memory service.

#[cfg(unix)]
pub mod access;
pub mod affinity;
mod book;
pub mod clock;
pub mod copies;
mod error;
mod instrument;
pub mod json;
mod layout;
mod location;
mod price;
mod record;
mod sample;
mod seq;
#[doc(hidden)]
pub mod test_support;

#[cfg(unix)]
pub use access::{AccessDenied, FeedGroup};
pub use book::{Book, validate_snapshot};
pub use error::{Error, Result};
pub use instrument::{FeedName, InstrumentId, SYMBOL_LEN};
pub use layout::{LayoutRow, layout_table, layout_table_markdown};
pub use location::WalLocation;
pub use price::{PRICE_SCALE, Price, Qty};
pub use record::{
    BOOK_DEPTH, BookDelta, BookSnapshot, FLAG_END_OF_BATCH, FLAG_END_OF_RECORDING, FLAG_RECOVERY_SNAPSHOT, FLAGS_KNOWN,
    Heartbeat, Kind, Level, Record, RecordHeader, Side, Tick,
};
pub use sample::{MdSample, RecordRef, SAMPLE_SIZE};
pub use seq::SeqRange;
