//! The segmented, memory-mapped write-ahead log of mdbus (docs/spec.md,
//! "WAL (crate mdbus-wal)").
//!
//! A feed's WAL lives in `<dir>/<feed>/` as preallocated segment files
//! `<first_seq:020>.wal`: a 128-byte header, then frames
//! `len: u32 | crc32c: u32 | payload | zero padding to 8`, where the
//! payload is the rkyv archive of the record (byte-identical to its plain
//! `#[repr(C)]` layout). The one writer ([`Wal`], holding the feed's lock
//! file) appends by writing into the map and storing `len` last with
//! release ordering, so any number of readers in other processes
//! ([`WalReader`], read-only maps) can tail the live segment and never see
//! a half-written frame.
//!
//! - [`Wal::open`] recovers the newest segment: a torn tail (a bad last
//!   frame, or an unfinished frame after the live end) is zeroed and
//!   reported; corruption (a bad frame followed by crc-valid ones) is left
//!   in place, reported, and appends continue in a new segment. See
//!   [`RecoveryReport`].
//! - [`WalReader`] replays from a seq, a time or the [`recovery_point`]
//!   (newest full snapshot set) through a sparse index, zero-copy with
//!   rkyv validation, and follows the writer across segment rolls.
//! - [`verify`] checks every frame (exit codes 0, 1, 3 of docs/spec.md),
//!   [`inspect`] summarises each segment, [`apply_retention`] deletes old
//!   segments by size and age.
//! - [`SyncPolicy`]: never, group commit every few milliseconds (default),
//!   or every append.
//!
//! # Quick start
//!
//! ```
//! use mdbus_types::{Heartbeat, Kind, MdSample, RecordHeader};
//! use mdbus_wal::{ReadOptions, Wal, WalOptions, WalReader, verify};
//!
//! let dir = tempfile::tempdir()?;
//! let mut wal = Wal::open(dir.path(), "demo", WalOptions::default().segment_bytes(1 << 16))?;
//! for _ in 0..3 {
//!     let mut sample = MdSample::from(Heartbeat { header: RecordHeader::new(Kind::Heartbeat, 1_764_000_000_000_000_000) });
//!     sample.header_mut().seq = wal.next_seq();
//!     wal.append(&sample)?;
//! }
//! drop(wal);
//!
//! let mut reader = WalReader::open(dir.path(), "demo", ReadOptions::default())?;
//! let mut seqs = Vec::new();
//! while let Some(record) = reader.next_record()? {
//!     seqs.push(record.seq());
//! }
//! assert_eq!(seqs, [1, 2, 3]);
//! assert_eq!(verify(dir.path(), "demo")?.exit_code(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! None.

mod c_header;
mod error;
mod format;
mod index;
mod lock;
mod reader;
mod recovery;
mod retention;
mod scan;
mod sync;
mod verify;
mod writer;

pub use c_header::c_header;
pub use error::{Error, Result};
pub use format::{
    DEFAULT_SEGMENT_BYTES, FRAME_HEADER_LEN, HEADER_LEN, MAGIC, MIN_SEGMENT_BYTES, SegmentHeader, VERSION,
    segment_file_name, validate_feed,
};
pub use index::{INDEX_STRIDE, IndexEntry, SparseIndex};
pub use lock::LOCK_FILE;
pub use reader::{ReadEvent, ReadFrom, ReadOptions, SkippedRange, WalReader, WalRecord};
pub use recovery::{RecoveryEvent, RecoveryReport};
pub use retention::{RetentionPolicy, RetentionReport, RetentionTotals, apply_retention};
pub use scan::SnapshotSet;
pub use sync::{SyncPolicy, SyncStats, SyncTimes};
pub use verify::{Problem, ProblemKind, RecoveryPoint, SegmentInfo, VerifyReport, inspect, recovery_point, verify};
pub use writer::{AppendOutcome, Wal, WalOptions};
