//! A read-only view of a board, in any process.

use std::fs::File;
use std::path::{Path, PathBuf};

use mdbus_types::{BookSnapshot, InstrumentId, Kind, Tick};
use memmap2::Mmap;

use crate::board_path;
use crate::error::{Error, Result};
use crate::index::{self, Probe};
use crate::latch::Latch;
use crate::layout::{BOOK_CELL, BoardStatus, Layout, TICK_CELL, check_header, read_status};
use crate::words::Words;

/// A read-only view of a board, in any process.
#[derive(Debug)]
pub struct BoardReader {
    path: PathBuf,
    _map: Mmap,
    words: Words,
    layout: Layout,
}

/// One instrument's slot on a board.
#[derive(Debug, Clone, Copy)]
pub struct BoardEntry<'a> {
    reader: &'a BoardReader,
    offset: usize,
}

impl BoardEntry<'_> {
    /// The last tick, `None` if none was written yet.
    pub fn tick(&self) -> Option<Tick> {
        let tick: Tick = Latch::at(&self.reader.words, self.offset + TICK_CELL).read();
        (tick.header.seq != 0 && tick.header.kind == Kind::Tick as u16).then_some(tick)
    }

    /// The current top-10 book, `None` if none was written yet.
    pub fn book(&self) -> Option<BookSnapshot> {
        let book: BookSnapshot = Latch::at(&self.reader.words, self.offset + BOOK_CELL).read();
        (book.header.seq != 0 && book.header.kind == Kind::BookSnapshot as u16).then_some(book)
    }
}

impl BoardReader {
    /// Opens `<dir>/mdbus.<feed>.board` read-only.
    pub fn open(dir: &Path, feed: &str) -> Result<BoardReader> {
        mdbus_types::FeedName::new(feed)?;
        let path = board_path(dir, feed);
        BoardReader::open_path(&path).map_err(|e| match e {
            Error::Io { source, path } => match mdbus_types::access::denied_by_group(feed, &path, &source) {
                Some(denied) => Error::AccessDenied(denied),
                None => Error::Io { path, source },
            },
            other => other,
        })
    }

    /// Opens a board file read-only.
    pub fn open_path(path: &Path) -> Result<BoardReader> {
        let file = File::open(path).map_err(Error::io(path))?;
        // SAFETY: a read-only shared mapping; the writer changes it only
        // through atomic word stores, and this reader only loads atomically.
        // Boards are never truncated while in use.
        let map = unsafe { Mmap::map(&file) }.map_err(Error::io(path))?;
        // SAFETY: the map is page-aligned and moves into the reader with
        // `words`, so it outlives every use of them; this reader only loads
        // (the mapping is read-only), atomically.
        let words = unsafe { Words::new(map.as_ptr().cast_mut(), map.len()) };
        let layout = check_header(&words, path, map.len())?;
        Ok(BoardReader {
            path: path.to_path_buf(),
            _map: map,
            words,
            layout,
        })
    }

    /// The board file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header: feed, counts, epoch, writer pid, heartbeat, last seq.
    pub fn status(&self) -> BoardStatus {
        read_status(&self.words, &self.layout)
    }

    /// The slot of `id`, `None` if the instrument is not on the board.
    pub fn entry(&self, id: &InstrumentId) -> Option<BoardEntry<'_>> {
        let Probe::Found(slot) = index::probe(&self.words, &self.layout, id) else {
            return None;
        };
        ((slot as usize) < self.layout.capacity).then(|| BoardEntry {
            reader: self,
            offset: self.layout.slot(slot as usize),
        })
    }

    /// The last tick of `id` (`None`: not on the board, or no tick yet).
    pub fn tick(&self, id: &InstrumentId) -> Option<Tick> {
        self.entry(id)?.tick()
    }

    /// The current book of `id` (`None`: not on the board, or no book yet).
    pub fn book(&self, id: &InstrumentId) -> Option<BookSnapshot> {
        self.entry(id)?.book()
    }

    /// Every instrument on the board, sorted by symbol.
    pub fn instruments(&self) -> Vec<InstrumentId> {
        let mut out: Vec<InstrumentId> = index::entries(&self.words, &self.layout)
            .map(|(id, _slot)| id)
            .collect();
        out.sort();
        out
    }
}
