//! Import of Databento DBN files (`.dbn`, `.dbn.zst`, versions 1 to 3) into
//! an mdbus feed: its WAL (with snapshot sets per segment, `wal verify`
//! clean), and whatever else its [`FeedPublisher`] writes to (board,
//! transport).
//!
//! | DBN schema | mdbus records |
//! |---|---|
//! | `mbp-10` | `BookSnapshot` (first record of an instrument, `SNAPSHOT`-flagged events, after a clear), else `BookDelta`s from the difference of consecutive 10-level arrays, at the end of each event (`LAST`); trades (`T`) as `Tick`s with the best bid and ask |
//! | `mbp-1`, `tbbo` | the same with one level |
//! | `trades` | `Tick`s (last price and size; no bid or ask) |
//! | `mbo` | the top 10 of a full order-by-order book (see [`mbo`](crate)) as above; trades as `Tick`s |
//!
//! `ts_event` is DBN's `ts_recv` ([`Clock::TsRecv`], default) or its
//! `ts_event`; `ts_publish` is the import's own time. `Tick::volume`
//! accumulates the trades seen in this import. Dropped: order counts
//! (`bid_ct`, `ask_ct`), order ids (kept only inside the MBO book), venue
//! `sequence`, `ts_in_delta`, `channel_id`, `publisher_id`, and levels
//! beyond the 10th.
//!
//! [`Importer::import_files`] merges several files in time order (DBN's
//! index time, `ts_recv`); [`Importer::import_file`] reads one. Either way
//! the books, MBO orders and volumes carry over, so a day's file continues
//! the previous day's book.
//!
//! [`FeedPublisher`]: mdbus_publisher::FeedPublisher

mod batch;
mod error;
mod import;
mod levels;
mod mbo;
mod records;

pub use error::{Error, Result};
pub use import::{Clock, ImportOptions, ImportStats, Importer, SymbolSource};
