//! The one writer of a board (the publisher).

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{Ordering, fence};

use mdbus_types::{BookSnapshot, InstrumentId, Record, Tick, clock};
use memmap2::MmapMut;
use rustc_hash::FxHashMap;

use crate::board_path;
use crate::error::{Error, Result};
use crate::index::{self, Probe};
use crate::latch::Latch;
use crate::layout::{
    BOARD_MAGIC, BOARD_VERSION, BOOK_CELL, BoardStatus, H_CAPACITY, H_COUNT, H_EPOCH, H_FEED, H_HEADER_LEN,
    H_HEARTBEAT, H_INDEX_LEN, H_LAST_SEQ, H_MAGIC, H_SLOT_LEN, H_VERSION, H_WRITER_PID, HEADER_LEN, Layout,
    MAX_BOARD_CAPACITY, SLOT_LEN, TICK_CELL, check_header, read_status,
};
use crate::words::Words;

/// The one writer of a board (the publisher), holding an flock on the file.
#[derive(Debug)]
pub struct BoardWriter {
    path: PathBuf,
    _file: File,
    _map: MmapMut,
    words: Words,
    layout: Layout,
    slots: FxHashMap<InstrumentId, u32>,
    epoch: u64,
    repaired: usize,
}

/// `N` bytes of `file` at `offset`, read with one positioned read (`None`:
/// the file is shorter or unreadable). Never reads more than the header.
fn read_header_bytes<const N: usize>(file: &File, offset: usize) -> Option<[u8; N]> {
    debug_assert!(offset + N <= HEADER_LEN);
    let mut bytes = [0u8; N];
    file.read_exact_at(&mut bytes, offset as u64).ok()?;
    Some(bytes)
}

/// Whether `file` starts with the board magic.
fn has_magic(file: &File) -> bool {
    read_header_bytes::<8>(file, H_MAGIC) == Some(BOARD_MAGIC)
}

/// The `writer_pid` field of `file`'s header: 4 bytes, not the whole file.
fn read_pid(file: &File) -> Option<u32> {
    read_header_bytes::<4>(file, H_WRITER_PID).map(u32::from_le_bytes)
}

impl BoardWriter {
    /// Opens or creates `<dir>/mdbus.<feed>.board` with `capacity` slots
    /// (an existing board keeps its own capacity), takes the writer lock,
    /// repairs cells a killed writer left mid-update, bumps `epoch` and
    /// stamps `writer_pid` and `heartbeat_ns`. Values already on the board
    /// stay until overwritten. A second writer gets an error naming the
    /// holder's pid.
    pub fn open(dir: &Path, feed: &str, capacity: u32) -> Result<BoardWriter> {
        mdbus_types::FeedName::new(feed)?;
        let path = board_path(dir, feed);
        if capacity == 0 || capacity > MAX_BOARD_CAPACITY {
            return Err(Error::invalid(
                &path,
                format!("capacity {capacity} out of 1..={MAX_BOARD_CAPACITY}"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    pid: read_pid(&file),
                    path,
                    feed: feed.to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path)(e)),
        }
        let len = file.metadata().map_err(Error::io(&path))?.len() as usize;
        // Empty, or sized but without its magic yet (a writer died between
        // sizing the file and writing the header): start it afresh. We hold
        // the lock, and no reader accepts a file without the magic.
        let fresh = len == 0 || !has_magic(&file);
        if fresh {
            file.set_len(Layout::new(capacity).file_len as u64)
                .map_err(Error::io(&path))?;
        }
        // SAFETY: the file is ours to write (flock held for the writer's
        // life); readers in other processes only map it read-only and load
        // atomically; nobody truncates it while mapped (the writer never
        // does, and `fresh` sizing happens before mapping).
        let mut map = unsafe { MmapMut::map_mut(&file) }.map_err(Error::io(&path))?;
        // SAFETY: the map is page-aligned and moves into the writer with
        // `words`, so it outlives every use of them; all shared bytes are
        // accessed atomically (see above).
        let words = unsafe { Words::new(map.as_mut_ptr(), map.len()) };
        if fresh {
            let layout = Layout::new(capacity);
            words.u32(H_VERSION).store(BOARD_VERSION, Ordering::Relaxed);
            words.u32(H_HEADER_LEN).store(HEADER_LEN as u32, Ordering::Relaxed);
            words.u32(H_CAPACITY).store(capacity, Ordering::Relaxed);
            words.u32(H_INDEX_LEN).store(layout.index_len as u32, Ordering::Relaxed);
            words.u32(H_SLOT_LEN).store(SLOT_LEN as u32, Ordering::Relaxed);
            let mut feed_bytes = [0u8; 32];
            feed_bytes[..feed.len()].copy_from_slice(feed.as_bytes());
            words.write_bytes(H_FEED, &feed_bytes);
            // SYNC: the header is complete before the magic appears; pairs
            // with readers that check the magic first.
            fence(Ordering::Release);
            words.write_bytes(H_MAGIC, &BOARD_MAGIC);
        }
        let layout = check_header(&words, &path, map.len())?;
        let status = read_status(&words, &layout);
        if status.feed != feed {
            return Err(Error::invalid(
                &path,
                format!("holds feed {:?}, not {feed:?}", status.feed),
            ));
        }
        let mut writer = BoardWriter {
            path,
            _file: file,
            words,
            _map: map,
            layout,
            slots: FxHashMap::default(),
            epoch: status.epoch + 1,
            repaired: 0,
        };
        writer.load_index_and_repair();
        writer.words.u64(H_EPOCH).store(writer.epoch, Ordering::Relaxed);
        writer
            .words
            .u32(H_WRITER_PID)
            .store(std::process::id(), Ordering::Relaxed);
        writer.heartbeat();
        Ok(writer)
    }

    fn load_index_and_repair(&mut self) {
        let Self { words, layout, .. } = &*self;
        let mut slots = FxHashMap::default();
        let mut repaired = 0;
        for (id, slot) in index::entries(words, layout) {
            if (slot as usize) >= layout.capacity {
                continue;
            }
            let base = layout.slot(slot as usize);
            repaired += usize::from(Latch::<Tick>::at(words, base + TICK_CELL).repair());
            repaired += usize::from(Latch::<BookSnapshot>::at(words, base + BOOK_CELL).repair());
            slots.insert(id, slot);
        }
        self.slots = slots;
        self.repaired += repaired;
    }

    /// The board file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This writer's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Cells a previous writer left mid-update, repaired on open.
    pub fn repaired_cells(&self) -> usize {
        self.repaired
    }

    /// Instruments on the board.
    pub fn count(&self) -> usize {
        self.slots.len()
    }

    /// The header as readers see it.
    pub fn status(&self) -> BoardStatus {
        read_status(&self.words, &self.layout)
    }

    /// The words of the board (tests simulate a writer's death with them).
    #[cfg(test)]
    pub(crate) fn words(&self) -> &Words {
        &self.words
    }

    /// The slot offset of `id`, adding it to the index if new; a full
    /// board is an error naming the instrument and the capacity.
    pub(crate) fn slot_for(&mut self, id: &InstrumentId) -> Result<usize> {
        if let Some(&slot) = self.slots.get(id) {
            return Ok(self.layout.slot(slot as usize));
        }
        let full = || Error::Full {
            path: self.path.clone(),
            instrument: *id,
            used: self.slots.len(),
            capacity: self.layout.capacity,
        };
        if self.slots.len() >= self.layout.capacity {
            return Err(full());
        }
        let vacant = match index::probe(&self.words, &self.layout, id) {
            Probe::Found(slot) if (slot as usize) < self.layout.capacity => {
                self.slots.insert(*id, slot);
                return Ok(self.layout.slot(slot as usize));
            }
            Probe::Found(slot) => {
                return Err(Error::invalid(
                    &self.path,
                    format!(
                        "index entry of {id} points at slot {slot}, beyond the capacity {}",
                        self.layout.capacity
                    ),
                ));
            }
            Probe::Vacant(i) => i,
            Probe::Full => return Err(full()),
        };
        let slot = self.slots.len() as u32;
        index::publish_entry(&self.words, &self.layout, vacant, id, slot);
        self.slots.insert(*id, slot);
        self.words
            .u32(H_COUNT)
            .store(self.slots.len() as u32, Ordering::Relaxed);
        Ok(self.layout.slot(slot as usize))
    }

    /// Stores `tick` as its instrument's last tick (as published).
    pub fn update_tick(&mut self, tick: &Tick) -> Result<()> {
        let slot = self.slot_for(&tick.instrument)?;
        Latch::at(&self.words, slot + TICK_CELL).write(tick);
        Ok(())
    }

    /// Stores `book` (the current top-10 book, its header carrying the last
    /// change's seq and timestamps) as its instrument's book.
    pub fn update_book(&mut self, book: &BookSnapshot) -> Result<()> {
        debug_assert_eq!(book.header.kind, BookSnapshot::KIND as u16);
        let slot = self.slot_for(&book.instrument)?;
        Latch::at(&self.words, slot + BOOK_CELL).write(book);
        Ok(())
    }

    /// Records the seq of the last record applied.
    pub fn set_last_seq(&mut self, seq: u64) {
        self.words.u64(H_LAST_SEQ).store(seq, Ordering::Relaxed);
    }

    /// Refreshes `heartbeat_ns` (call at least every 100 ms).
    pub fn heartbeat(&mut self) {
        self.words
            .u64(H_HEARTBEAT)
            .store(clock::now_ns() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_and_magic_are_read_from_header_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let writer = BoardWriter::open(dir.path(), "pid", 8).unwrap();
        let file = File::open(writer.path()).unwrap();
        assert_eq!(read_pid(&file), Some(std::process::id()));
        assert!(has_magic(&file));
        // A file too short for the field has no pid (and no magic).
        let short = dir.path().join("short");
        std::fs::write(&short, [0u8; 43]).unwrap();
        let file = File::open(&short).unwrap();
        assert_eq!(read_pid(&file), None);
        assert!(!has_magic(&file));
    }
}
