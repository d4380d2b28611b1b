//! The snapshot board of mdbus (docs/spec.md, "Snapshot board"): the
//! latest `Tick` and top-10 book of every instrument in a shared-memory
//! file, readable by any process at any time without subscribing, never
//! torn, never blocked by a stalled or killed writer. The spec's section is
//! the byte layout; C and Python read it with `mmap` alone (see
//! `scripts/board_reader.py`). The board is a file format, not a
//! transport: it needs neither iceoryx2 nor a running publisher.
//!
//! A file `<dir>/mdbus.<feed>.board` ([`board_path`], `dir` by default
//! [`DEFAULT_BOARD_DIR`]) holds a 128-byte header, an index of
//! instruments (FNV-1a 64, linear probing) and one 1024-byte slot per
//! instrument with a tick cell and a book cell. The one [`BoardWriter`]
//! (the publisher, holding an flock on the file) adds instruments and
//! updates cells; any number of [`BoardReader`]s map the file read-only.
//!
//! Each cell is a seqcount latch with two copies (as in the Linux
//! kernel's `write_seqcount_latch`): the writer makes `seq` odd, writes
//! copy 0, makes `seq` even, writes copy 1; a reader copies `copy[seq & 1]`
//! (the one not being written) and retries only if `seq` moved meanwhile.
//! All shared words are accessed through `AtomicU64`/`AtomicU32` (a racing
//! plain `memcpy` would be undefined behaviour in Rust).
//!
//! Modules: `layout` (constants, header, sizes), `words` (atomic access
//! to the mapping, one bounds check per field or cell), `latch` (the
//! seqcount latch of a cell), `index` (hash, probe, entries), `writer`,
//! `reader`.
//!
//! # Quick start
//!
//! ```
//! use bytemuck::Zeroable;
//! use mdbus_board::{BoardReader, BoardWriter};
//! use mdbus_types::{InstrumentId, Kind, RecordHeader, Tick};
//!
//! let dir = tempfile::tempdir()?;
//! let id = InstrumentId::new("IF2501")?;
//! let mut writer = BoardWriter::open(dir.path(), "demo", 64)?;
//! let mut tick = Tick::zeroed();
//! tick.header = RecordHeader::new(Kind::Tick, 1);
//! tick.header.seq = 1;
//! tick.instrument = id;
//! writer.update_tick(&tick)?;
//! writer.set_last_seq(1);
//!
//! // In any process:
//! let reader = BoardReader::open(dir.path(), "demo")?;
//! assert_eq!(reader.tick(&id), Some(tick));
//! assert_eq!(reader.book(&id), None);
//! assert_eq!(reader.status().last_seq, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! None.

use std::path::{Path, PathBuf};

mod error;
mod index;
mod latch;
mod layout;
mod reader;
mod words;
mod writer;

pub use error::{Error, Result};
pub use index::fnv1a64;
pub use layout::{
    BOARD_MAGIC, BOARD_VERSION, BoardStatus, DEFAULT_BOARD_CAPACITY, DEFAULT_BOARD_DIR, MAX_BOARD_CAPACITY,
};
pub use reader::{BoardEntry, BoardReader};
pub use writer::BoardWriter;

/// The board file of `feed` in `dir`: `<dir>/mdbus.<feed>.board`.
pub fn board_path(dir: &Path, feed: &str) -> PathBuf {
    dir.join(format!("mdbus.{feed}.board"))
}

#[cfg(test)]
mod tests;
