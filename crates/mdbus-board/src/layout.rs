//! The byte layout of a board file (docs/spec.md, "Snapshot board"): the
//! constants, the header fields, the sizes derived from the capacity, and
//! the header check every opener runs.

use std::path::Path;
use std::sync::atomic::Ordering;

use mdbus_types::{BookSnapshot, Tick};

use crate::error::{Error, Result};
use crate::words::Words;

/// Magic at offset 0.
pub const BOARD_MAGIC: [u8; 8] = *b"MDBUSBRD";
/// Format version.
pub const BOARD_VERSION: u32 = 1;
/// Default number of instrument slots.
pub const DEFAULT_BOARD_CAPACITY: u32 = 4096;
/// Most slots a board may have.
pub const MAX_BOARD_CAPACITY: u32 = 1 << 20;
/// Directory of boards unless configured.
pub const DEFAULT_BOARD_DIR: &str = "/dev/shm";

pub(crate) const HEADER_LEN: usize = 128;
pub(crate) const ENTRY_LEN: usize = 24;
pub(crate) const SLOT_LEN: usize = 1024;
/// Offset of the tick cell in a slot.
pub(crate) const TICK_CELL: usize = 0;
/// Offset of the book cell in a slot.
pub(crate) const BOOK_CELL: usize = 256;

// Header field offsets (docs/spec.md).
pub(crate) const H_MAGIC: usize = 0;
pub(crate) const H_VERSION: usize = 8;
pub(crate) const H_HEADER_LEN: usize = 12;
pub(crate) const H_CAPACITY: usize = 16;
pub(crate) const H_INDEX_LEN: usize = 20;
pub(crate) const H_SLOT_LEN: usize = 24;
pub(crate) const H_COUNT: usize = 28;
pub(crate) const H_EPOCH: usize = 32;
pub(crate) const H_WRITER_PID: usize = 40;
pub(crate) const H_HEARTBEAT: usize = 48;
pub(crate) const H_LAST_SEQ: usize = 56;
pub(crate) const H_FEED: usize = 64;

const _: () = {
    assert!(8 + 2 * size_of::<Tick>() == 216);
    assert!(TICK_CELL + 8 + 2 * size_of::<Tick>() <= BOOK_CELL);
    assert!(BOOK_CELL + 8 + 2 * size_of::<BookSnapshot>() <= SLOT_LEN);
    assert!(H_FEED + 32 <= HEADER_LEN);
};

/// Sizes derived from the capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) capacity: usize,
    pub(crate) index_len: usize,
    pub(crate) slots_offset: usize,
    pub(crate) file_len: usize,
}

impl Layout {
    /// The layout a new board of `capacity` slots gets.
    pub(crate) fn new(capacity: u32) -> Layout {
        Layout::with_index_len(capacity, (2 * capacity as usize).next_power_of_two())
    }

    /// The layout of `capacity` slots and `index_len` index entries.
    fn with_index_len(capacity: u32, index_len: usize) -> Layout {
        let capacity = capacity as usize;
        let slots_offset = (HEADER_LEN + index_len * ENTRY_LEN).next_multiple_of(64);
        Layout {
            capacity,
            index_len,
            slots_offset,
            file_len: slots_offset + capacity * SLOT_LEN,
        }
    }

    /// Offset of index entry `i`.
    pub(crate) fn entry(&self, i: usize) -> usize {
        HEADER_LEN + i * ENTRY_LEN
    }

    /// Offset of slot `slot`.
    pub(crate) fn slot(&self, slot: usize) -> usize {
        self.slots_offset + slot * SLOT_LEN
    }
}

/// Checks a mapped header and returns its layout.
pub(crate) fn check_header(words: &Words, path: &Path, file_len: usize) -> Result<Layout> {
    if file_len < HEADER_LEN {
        return Err(Error::invalid(
            path,
            format!("{file_len} bytes, shorter than the 128-byte header"),
        ));
    }
    let magic: [u8; 8] = words.read_bytes(H_MAGIC);
    if magic != BOARD_MAGIC {
        return Err(Error::invalid(path, format!("bad magic {magic:?}, expected MDBUSBRD")));
    }
    let field = |off| words.u32(off).load(Ordering::Relaxed);
    let (version, header_len, capacity, index_len, slot_len) = (
        field(H_VERSION),
        field(H_HEADER_LEN),
        field(H_CAPACITY),
        field(H_INDEX_LEN),
        field(H_SLOT_LEN),
    );
    if version != BOARD_VERSION {
        return Err(Error::invalid(
            path,
            format!("version {version}, this build reads version 1"),
        ));
    }
    if header_len as usize != HEADER_LEN || slot_len as usize != SLOT_LEN {
        return Err(Error::invalid(
            path,
            format!("header_len {header_len} / slot_len {slot_len}, expected 128 / 1024"),
        ));
    }
    if capacity == 0 || capacity > MAX_BOARD_CAPACITY {
        return Err(Error::invalid(
            path,
            format!("capacity {capacity} out of 1..={MAX_BOARD_CAPACITY}"),
        ));
    }
    if !index_len.is_power_of_two() || (index_len as usize) < 2 * capacity as usize {
        return Err(Error::invalid(
            path,
            format!("index_len {index_len} is not a power of two >= 2 x {capacity}"),
        ));
    }
    let layout = Layout::with_index_len(capacity, index_len as usize);
    if file_len < layout.file_len {
        return Err(Error::invalid(
            path,
            format!("{file_len} bytes, the layout needs {}", layout.file_len),
        ));
    }
    Ok(layout)
}

/// What a board's header says about its writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardStatus {
    /// Feed name.
    pub feed: String,
    /// Slots.
    pub capacity: u32,
    /// Slots in use.
    pub count: u32,
    /// +1 each time a publisher opened the board.
    pub epoch: u64,
    /// pid of the last writer.
    pub writer_pid: u32,
    /// Wall clock of the writer's last heartbeat, ns since Unix epoch.
    pub heartbeat_ns: i64,
    /// seq of the last record applied.
    pub last_seq: u64,
}

/// The header's status fields (Relaxed loads: each is a value on its own).
pub(crate) fn read_status(words: &Words, layout: &Layout) -> BoardStatus {
    let feed: [u8; 32] = words.read_bytes(H_FEED);
    let len = feed.iter().position(|&b| b == 0).unwrap_or(32);
    BoardStatus {
        feed: String::from_utf8_lossy(&feed[..len]).into_owned(),
        capacity: layout.capacity as u32,
        count: words.u32(H_COUNT).load(Ordering::Relaxed),
        epoch: words.u64(H_EPOCH).load(Ordering::Relaxed),
        writer_pid: words.u32(H_WRITER_PID).load(Ordering::Relaxed),
        heartbeat_ns: words.u64(H_HEARTBEAT).load(Ordering::Relaxed) as i64,
        last_seq: words.u64(H_LAST_SEQ).load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_a_64_slot_board_matches_the_fixture_size() {
        let layout = Layout::new(64);
        assert_eq!(layout.index_len, 128);
        assert_eq!(layout.file_len, 68_736);
        let default = Layout::new(DEFAULT_BOARD_CAPACITY);
        assert_eq!(default.index_len, 8192);
        assert_eq!(default.slots_offset % 64, 0);
    }
}
