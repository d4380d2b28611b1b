//! The snapshot board: the latest `Tick` and top-10 book of every
//! instrument in a shared-memory file, readable by any process at any time
//! without subscribing, never torn, never blocked by a stalled or killed
//! writer. docs/spec.md's "Snapshot board" section is the byte layout; C and
//! Python read it with `mmap` alone (see `scripts/board_reader.py`).
//!
//! Each cell is a seqcount latch with two copies (as in the Linux
//! kernel's `write_seqcount_latch`): the writer makes `seq` odd, writes
//! copy 0, makes `seq` even, writes copy 1; a reader copies `copy[seq & 1]`
//! (the one not being written) and retries only if `seq` moved meanwhile.
//! All shared words are accessed through `AtomicU64`/`AtomicU32` (a racing
//! plain `memcpy` would be undefined behaviour in Rust).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use bytemuck::Pod;
use mdbus_types::{BookSnapshot, InstrumentId, Kind, Record, Tick, clock};
use memmap2::{Mmap, MmapMut};
use rustc_hash::FxHashMap;

use crate::error::{Error, Result, validate_feed_name};

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

const HEADER_LEN: usize = 128;
const ENTRY_LEN: usize = 24;
const SLOT_LEN: usize = 1024;
const TICK_CELL: usize = 0;
const BOOK_CELL: usize = 256;

// Header field offsets (docs/spec.md).
const H_MAGIC: usize = 0;
const H_VERSION: usize = 8;
const H_HEADER_LEN: usize = 12;
const H_CAPACITY: usize = 16;
const H_INDEX_LEN: usize = 20;
const H_SLOT_LEN: usize = 24;
const H_COUNT: usize = 28;
const H_EPOCH: usize = 32;
const H_WRITER_PID: usize = 40;
const H_HEARTBEAT: usize = 48;
const H_LAST_SEQ: usize = 56;
const H_FEED: usize = 64;

const TICK_WORDS: usize = size_of::<Tick>() / 8;
const BOOK_WORDS: usize = size_of::<BookSnapshot>() / 8;
const _: () = {
    assert!(8 + 2 * size_of::<Tick>() == 216);
    assert!(BOOK_CELL + 8 + 2 * size_of::<BookSnapshot>() <= SLOT_LEN);
};

/// The board file of `feed` in `dir`: `<dir>/mdbus.<feed>.board`.
pub fn board_path(dir: &Path, feed: &str) -> PathBuf {
    dir.join(format!("mdbus.{feed}.board"))
}

/// FNV-1a 64 of the 16 symbol bytes: the index hash.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Sizes derived from the capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    capacity: usize,
    index_len: usize,
    slots_offset: usize,
    file_len: usize,
}

impl Layout {
    fn new(capacity: u32) -> Layout {
        let capacity = capacity as usize;
        let index_len = (2 * capacity).next_power_of_two();
        let slots_offset = (HEADER_LEN + index_len * ENTRY_LEN).next_multiple_of(64);
        Layout {
            capacity,
            index_len,
            slots_offset,
            file_len: slots_offset + capacity * SLOT_LEN,
        }
    }

    fn entry(&self, i: usize) -> usize {
        HEADER_LEN + i * ENTRY_LEN
    }

    fn slot(&self, slot: usize) -> usize {
        self.slots_offset + slot * SLOT_LEN
    }
}

/// Atomic word access to a mapped board.
#[derive(Debug, Clone, Copy)]
struct Words {
    base: *mut u8,
    len: usize,
}

// SAFETY: `Words` only hands out atomics into a mapping that its owner
// (BoardWriter / BoardReader) keeps alive; atomics are Sync.
unsafe impl Send for Words {}
// SAFETY: as above.
unsafe impl Sync for Words {}

impl Words {
    #[inline]
    fn u64(&self, off: usize) -> &AtomicU64 {
        assert!(
            off.is_multiple_of(8) && off + 8 <= self.len,
            "board word {off} out of bounds"
        );
        // SAFETY: in bounds and 8-aligned (the map is page-aligned); the map
        // outlives `self`'s owner borrow; every process accesses the shared
        // words only atomically (readers only load, which is allowed on a
        // read-only mapping).
        unsafe { AtomicU64::from_ptr(self.base.add(off).cast::<u64>()) }
    }

    #[inline]
    fn u32(&self, off: usize) -> &AtomicU32 {
        assert!(
            off.is_multiple_of(4) && off + 4 <= self.len,
            "board word {off} out of bounds"
        );
        // SAFETY: as in `u64`, 4-aligned.
        unsafe { AtomicU32::from_ptr(self.base.add(off).cast::<u32>()) }
    }

    fn read_bytes<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, chunk) in out.chunks_mut(8).enumerate() {
            let word = self.u64(off + 8 * i).load(Ordering::Relaxed).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        out
    }

    fn write_bytes(&self, off: usize, bytes: &[u8]) {
        debug_assert!(bytes.len().is_multiple_of(8));
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
            self.u64(off + 8 * i).store(word, Ordering::Relaxed);
        }
    }

    /// Copies a record from `words` words at `off` (Relaxed loads; the
    /// caller's latch protocol orders them).
    fn read_record<R: Pod, const W: usize>(&self, off: usize) -> R {
        let mut record = R::zeroed();
        let dst: &mut [u64] = bytemuck::cast_slice_mut(bytemuck::bytes_of_mut(&mut record));
        for (i, word) in dst.iter_mut().enumerate().take(W) {
            *word = self.u64(off + 8 * i).load(Ordering::Relaxed);
        }
        record
    }

    fn write_record<R: Pod>(&self, off: usize, record: &R) {
        let src: &[u64] = bytemuck::cast_slice(bytemuck::bytes_of(record));
        for (i, word) in src.iter().enumerate() {
            self.u64(off + 8 * i).store(*word, Ordering::Relaxed);
        }
    }

    /// Writer side of the latch at `cell` holding records of `W` words.
    fn latch_write<R: Pod>(&self, cell: usize, record: &R) {
        let seq = self.u64(cell);
        let copy_len = size_of::<R>();
        let s = seq.load(Ordering::Relaxed);
        debug_assert!(s.is_multiple_of(2), "a cell is even between updates (fixed on open)");
        // SYNC: the previous update's copy-1 stores happen before `seq`
        // turns odd; pairs with the Acquire load of `seq` in `latch_read`
        // (a reader that sees the odd `seq` reads a complete copy 1).
        fence(Ordering::Release);
        seq.store(s + 1, Ordering::Relaxed);
        // SYNC: this fence orders the odd `seq` before the copy-0 stores;
        // pairs with the Acquire fence in `latch_read` (a reader that saw
        // any copy-0 word of this update then sees `seq` moved).
        fence(Ordering::Release);
        self.write_record(cell + 8, record);
        // SYNC: copy 0 is complete before `seq` turns even; pairs with the
        // Acquire load of `seq` in `latch_read`.
        fence(Ordering::Release);
        seq.store(s + 2, Ordering::Relaxed);
        // SYNC: the even `seq` before the copy-1 stores; pairs with the
        // Acquire fence in `latch_read`.
        fence(Ordering::Release);
        self.write_record(cell + 8 + copy_len, record);
    }

    /// Reader side of the latch: the copy not being written; never waits.
    fn latch_read<R: Pod, const W: usize>(&self, cell: usize) -> R {
        let seq = self.u64(cell);
        let copy_len = size_of::<R>();
        loop {
            // SYNC: pairs with the Release fences before each `seq` store in
            // `latch_write`: the copy we pick was completed before.
            let s = seq.load(Ordering::Acquire);
            let copy = if s & 1 == 0 { cell + 8 } else { cell + 8 + copy_len };
            let record = self.read_record::<R, W>(copy);
            // SYNC: pairs with the Release fences after each `seq` store in
            // `latch_write`: if any word above came from a newer update, the
            // reload below sees `seq` moved.
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) == s {
                return record;
            }
        }
    }

    /// After a writer died mid-update, make both copies the last complete
    /// value: with `seq` odd it died writing copy 0 (copy 1 is complete);
    /// with `seq` even it may have died writing copy 1 (copy 0 is
    /// complete). Readers are never exposed to the copy being repaired.
    /// Returns whether a copy was rewritten.
    fn latch_repair<R: Pod, const W: usize>(&self, cell: usize) -> bool {
        let seq = self.u64(cell);
        let s = seq.load(Ordering::Relaxed);
        let copy_len = size_of::<R>();
        let (copy0, copy1) = (cell + 8, cell + 8 + copy_len);
        if s.is_multiple_of(2) {
            // Readers read copy 0 while `seq` is even: copy 1 may be fixed.
            let complete: R = self.read_record::<R, W>(copy0);
            let other: R = self.read_record::<R, W>(copy1);
            if bytemuck::bytes_of(&complete) == bytemuck::bytes_of(&other) {
                return false;
            }
            self.write_record(copy1, &complete);
            return true;
        }
        let complete: R = self.read_record::<R, W>(copy1);
        self.write_record(copy0, &complete);
        // SYNC: copy 0 repaired before `seq` turns even; pairs with the
        // Acquire load of `seq` in `latch_read`.
        fence(Ordering::Release);
        seq.store(s + 1, Ordering::Relaxed);
        true
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn board_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Board {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Checks a mapped header and returns its layout.
fn check_header(words: &Words, path: &Path, file_len: usize) -> Result<Layout> {
    if file_len < HEADER_LEN {
        return Err(board_err(
            path,
            format!("{file_len} bytes, shorter than the 128-byte header"),
        ));
    }
    let magic: [u8; 8] = words.read_bytes(H_MAGIC);
    if magic != BOARD_MAGIC {
        return Err(board_err(path, format!("bad magic {magic:?}, expected MDBUSBRD")));
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
        return Err(board_err(
            path,
            format!("version {version}, this build reads version 1"),
        ));
    }
    if header_len as usize != HEADER_LEN || slot_len as usize != SLOT_LEN {
        return Err(board_err(
            path,
            format!("header_len {header_len} / slot_len {slot_len}, expected 128 / 1024"),
        ));
    }
    if capacity == 0 || capacity > MAX_BOARD_CAPACITY {
        return Err(board_err(
            path,
            format!("capacity {capacity} out of 1..={MAX_BOARD_CAPACITY}"),
        ));
    }
    if !index_len.is_power_of_two() || (index_len as usize) < 2 * capacity as usize {
        return Err(board_err(
            path,
            format!("index_len {index_len} is not a power of two >= 2 x {capacity}"),
        ));
    }
    let mut layout = Layout::new(capacity);
    layout.index_len = index_len as usize;
    layout.slots_offset = (HEADER_LEN + layout.index_len * ENTRY_LEN).next_multiple_of(64);
    layout.file_len = layout.slots_offset + layout.capacity * SLOT_LEN;
    if file_len < layout.file_len {
        return Err(board_err(
            path,
            format!("{file_len} bytes, the layout needs {}", layout.file_len),
        ));
    }
    Ok(layout)
}

/// Index probe: the slot of `id`, or `Err(free entry)` where it would go.
fn probe(words: &Words, layout: &Layout, id: &InstrumentId) -> std::result::Result<u32, Option<usize>> {
    let mask = layout.index_len - 1;
    let mut i = fnv1a64(id.as_bytes()) as usize & mask;
    for _ in 0..layout.index_len {
        let entry = layout.entry(i);
        // SYNC: pairs with the Release store of `ready` in
        // `BoardWriter::slot_for`: a ready entry's symbol and slot are complete.
        if words.u32(entry + 20).load(Ordering::Acquire) == 0 {
            return Err(Some(i));
        }
        let symbol: [u8; 16] = words.read_bytes(entry);
        if symbol == id.0 {
            return Ok(words.u32(entry + 16).load(Ordering::Relaxed));
        }
        i = (i + 1) & mask;
    }
    Err(None)
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

fn read_status(words: &Words, layout: &Layout) -> BoardStatus {
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

impl BoardWriter {
    /// Opens or creates `<dir>/mdbus.<feed>.board` with `capacity` slots
    /// (an existing board keeps its own capacity), takes the writer lock,
    /// repairs cells a killed writer left mid-update, bumps `epoch` and
    /// stamps `writer_pid` and `heartbeat_ns`. Values already on the board
    /// stay until overwritten. A second writer gets an error naming the
    /// holder's pid.
    pub fn open(dir: &Path, feed: &str, capacity: u32) -> Result<BoardWriter> {
        validate_feed_name(feed)?;
        let path = board_path(dir, feed);
        if capacity == 0 || capacity > MAX_BOARD_CAPACITY {
            return Err(board_err(
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
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let pid = read_pid(&path).map_or("unknown".to_string(), |p| p.to_string());
                return Err(board_err(
                    &path,
                    format!("feed {feed} already has a board writer (pid {pid})"),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        let len = file.metadata().map_err(io_err(&path))?.len() as usize;
        // Empty, or sized but without its magic yet (a writer died between
        // sizing the file and writing the header): start it afresh. We hold
        // the lock, and no reader accepts a file without the magic.
        let fresh = len == 0 || !has_magic(&file);
        if fresh {
            file.set_len(Layout::new(capacity).file_len as u64)
                .map_err(io_err(&path))?;
        }
        // SAFETY: the file is ours to write (flock held for the writer's
        // life); readers in other processes only map it read-only and load
        // atomically; nobody truncates it while mapped (the writer never
        // does, and `fresh` sizing happens before mapping).
        let mut map = unsafe { MmapMut::map_mut(&file) }.map_err(io_err(&path))?;
        let words = Words {
            base: map.as_mut_ptr(),
            len: map.len(),
        };
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
            return Err(board_err(&path, format!("holds feed {:?}, not {feed:?}", status.feed)));
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
        for i in 0..self.layout.index_len {
            let entry = self.layout.entry(i);
            if self.words.u32(entry + 20).load(Ordering::Relaxed) == 0 {
                continue;
            }
            let symbol: [u8; 16] = self.words.read_bytes(entry);
            let slot = self.words.u32(entry + 16).load(Ordering::Relaxed);
            if (slot as usize) >= self.layout.capacity {
                continue;
            }
            let base = self.layout.slot(slot as usize);
            self.repaired += usize::from(self.words.latch_repair::<Tick, TICK_WORDS>(base + TICK_CELL));
            self.repaired += usize::from(self.words.latch_repair::<BookSnapshot, BOOK_WORDS>(base + BOOK_CELL));
            self.slots.insert(InstrumentId(symbol), slot);
        }
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

    /// The slot of `id`, adding it to the index if new; a full board is an
    /// error naming the instrument and the capacity.
    fn slot_for(&mut self, id: &InstrumentId) -> Result<usize> {
        if let Some(&slot) = self.slots.get(id) {
            return Ok(self.layout.slot(slot as usize));
        }
        let full = || {
            board_err(
                &self.path,
                format!(
                    "full: {} of {} slots used, cannot add {id}",
                    self.slots.len(),
                    self.layout.capacity
                ),
            )
        };
        if self.slots.len() >= self.layout.capacity {
            return Err(full());
        }
        let free = match probe(&self.words, &self.layout, id) {
            Ok(slot) if (slot as usize) < self.layout.capacity => {
                self.slots.insert(*id, slot);
                return Ok(self.layout.slot(slot as usize));
            }
            Ok(slot) => {
                return Err(board_err(
                    &self.path,
                    format!(
                        "index entry of {id} points at slot {slot}, beyond the capacity {}",
                        self.layout.capacity
                    ),
                ));
            }
            Err(Some(free)) => free,
            Err(None) => return Err(full()),
        };
        let slot = self.slots.len() as u32;
        let entry = self.layout.entry(free);
        self.words.write_bytes(entry, id.as_bytes());
        self.words.u32(entry + 16).store(slot, Ordering::Relaxed);
        // SYNC: pairs with the Acquire load of `ready` in `probe`: symbol
        // and slot are visible before the entry is.
        self.words.u32(entry + 20).store(1, Ordering::Release);
        self.slots.insert(*id, slot);
        self.words
            .u32(H_COUNT)
            .store(self.slots.len() as u32, Ordering::Relaxed);
        Ok(self.layout.slot(slot as usize))
    }

    /// Stores `tick` as its instrument's last tick (as published).
    pub fn update_tick(&mut self, tick: &Tick) -> Result<()> {
        let slot = self.slot_for(&tick.instrument)?;
        self.words.latch_write(slot + TICK_CELL, tick);
        Ok(())
    }

    /// Stores `book` (the current top-10 book, its header carrying the last
    /// change's seq and timestamps) as its instrument's book.
    pub fn update_book(&mut self, book: &BookSnapshot) -> Result<()> {
        debug_assert_eq!(book.header.kind, BookSnapshot::KIND as u16);
        let slot = self.slot_for(&book.instrument)?;
        self.words.latch_write(slot + BOOK_CELL, book);
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

fn has_magic(file: &File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut magic = [0u8; 8];
    file.read_exact_at(&mut magic, 0).is_ok() && magic == BOARD_MAGIC
}

fn read_pid(path: &Path) -> Option<u32> {
    let bytes = std::fs::read(path).ok()?;
    Some(u32::from_le_bytes(
        bytes.get(H_WRITER_PID..H_WRITER_PID + 4)?.try_into().ok()?,
    ))
}

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
        let tick: Tick = self
            .reader
            .words
            .latch_read::<Tick, TICK_WORDS>(self.offset + TICK_CELL);
        (tick.header.seq != 0 && tick.header.kind == Kind::Tick as u16).then_some(tick)
    }

    /// The current top-10 book, `None` if none was written yet.
    pub fn book(&self) -> Option<BookSnapshot> {
        let book: BookSnapshot = self
            .reader
            .words
            .latch_read::<BookSnapshot, BOOK_WORDS>(self.offset + BOOK_CELL);
        (book.header.seq != 0 && book.header.kind == Kind::BookSnapshot as u16).then_some(book)
    }
}

impl BoardReader {
    /// Opens `<dir>/mdbus.<feed>.board` read-only.
    pub fn open(dir: &Path, feed: &str) -> Result<BoardReader> {
        validate_feed_name(feed)?;
        BoardReader::open_path(&board_path(dir, feed))
    }

    /// Opens a board file read-only.
    pub fn open_path(path: &Path) -> Result<BoardReader> {
        let file = File::open(path).map_err(io_err(path))?;
        // SAFETY: a read-only shared mapping; the writer changes it only
        // through atomic word stores, and this reader only loads atomically.
        // Boards are never truncated while in use.
        let map = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        let words = Words {
            base: map.as_ptr().cast_mut(),
            len: map.len(),
        };
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
        let slot = probe(&self.words, &self.layout, id).ok()? as usize;
        (slot < self.layout.capacity).then(|| BoardEntry {
            reader: self,
            offset: self.layout.slot(slot),
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
        let mut out: Vec<InstrumentId> = (0..self.layout.index_len)
            .map(|i| self.layout.entry(i))
            // SYNC: pairs with the Release store of `ready` in `slot_for`.
            .filter(|&entry| self.words.u32(entry + 20).load(Ordering::Acquire) != 0)
            .map(|entry| InstrumentId(self.words.read_bytes(entry)))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;
    use mdbus_types::{Book, BookDelta, Price, RecordHeader, Side};

    fn tick(symbol: &str, seq: u64) -> Tick {
        let mut t = Tick::zeroed();
        t.header = RecordHeader::new(Kind::Tick, seq as i64);
        t.header.seq = seq;
        t.instrument = InstrumentId::new(symbol).unwrap();
        t.last_px = Price(seq as i64 * 1000);
        t.last_qty = seq as i64;
        t
    }

    #[test]
    fn fnv1a64_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn layout_of_a_64_slot_board_matches_the_fixture_size() {
        let layout = Layout::new(64);
        assert_eq!(layout.index_len, 128);
        assert_eq!(layout.file_len, 68_736);
        let default = Layout::new(DEFAULT_BOARD_CAPACITY);
        assert_eq!(default.index_len, 8192);
        assert_eq!(default.slots_offset % 64, 0);
    }

    #[test]
    fn write_then_read_ticks_and_books() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = BoardWriter::open(dir.path(), "t1", 8).unwrap();
        let reader = BoardReader::open(dir.path(), "t1").unwrap();
        let id = InstrumentId::new("IF2501").unwrap();
        assert!(reader.entry(&id).is_none());
        writer.update_tick(&tick("IF2501", 5)).unwrap();
        assert_eq!(reader.tick(&id), Some(tick("IF2501", 5)));
        assert_eq!(reader.book(&id), None);
        let mut book = Book::new(id);
        let mut d = BookDelta::new(id, Side::Bid, Price(100), 3, 7);
        d.header.seq = 6;
        book.apply_delta(&d).unwrap();
        writer.update_book(&book.to_snapshot()).unwrap();
        assert_eq!(reader.book(&id), Some(book.to_snapshot()));
        writer.update_tick(&tick("IF2501", 8)).unwrap();
        assert_eq!(reader.tick(&id).unwrap().header.seq, 8);
        writer.set_last_seq(8);
        let status = reader.status();
        assert_eq!(
            (status.feed.as_str(), status.count, status.epoch, status.last_seq),
            ("t1", 1, 1, 8)
        );
        assert_eq!(status.writer_pid, std::process::id());
        assert_eq!(reader.instruments(), vec![id]);
    }

    #[test]
    fn full_board_is_a_clear_error_and_existing_entries_still_update() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = BoardWriter::open(dir.path(), "full", 3).unwrap();
        for s in ["A", "B", "C"] {
            writer.update_tick(&tick(s, 1)).unwrap();
        }
        let err = writer.update_tick(&tick("D", 2)).unwrap_err().to_string();
        assert!(
            err.contains("full") && err.contains('D') && err.contains("3 of 3"),
            "{err}"
        );
        writer.update_tick(&tick("B", 3)).unwrap();
        let reader = BoardReader::open(dir.path(), "full").unwrap();
        assert_eq!(reader.tick(&InstrumentId::new("B").unwrap()).unwrap().header.seq, 3);
        assert!(reader.entry(&InstrumentId::new("D").unwrap()).is_none());
    }

    #[test]
    fn second_writer_is_refused_naming_the_pid_and_reopen_bumps_epoch_keeping_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = BoardWriter::open(dir.path(), "lock", 8).unwrap();
        first.update_tick(&tick("X", 4)).unwrap();
        let err = BoardWriter::open(dir.path(), "lock", 8).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(err.contains("lock"), "{err}");
        drop(first);
        let second = BoardWriter::open(dir.path(), "lock", 16).unwrap();
        assert_eq!(second.epoch(), 2);
        assert_eq!(second.status().capacity, 8, "an existing board keeps its capacity");
        let reader = BoardReader::open(dir.path(), "lock").unwrap();
        assert_eq!(reader.tick(&InstrumentId::new("X").unwrap()).unwrap().header.seq, 4);
    }

    #[test]
    fn a_cell_left_odd_by_a_dead_writer_reads_the_last_complete_value_and_is_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let id = InstrumentId::new("X").unwrap();
        {
            let mut w = BoardWriter::open(dir.path(), "odd", 4).unwrap();
            w.update_tick(&tick("X", 10)).unwrap();
            // Simulate death between "seq odd" and "copy 0 complete".
            let cell = w.slot_for(&id).unwrap() + TICK_CELL;
            let seq = w.words.u64(cell);
            seq.store(seq.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            w.words.write_bytes(cell + 8, &[0xAB; 104]);
        }
        let reader = BoardReader::open(dir.path(), "odd").unwrap();
        assert_eq!(reader.tick(&id).unwrap(), tick("X", 10));
        let mut w = BoardWriter::open(dir.path(), "odd", 4).unwrap();
        assert_eq!(w.repaired_cells(), 1);
        assert_eq!(reader.tick(&id).unwrap(), tick("X", 10));
        w.update_tick(&tick("X", 11)).unwrap();
        assert_eq!(reader.tick(&id).unwrap(), tick("X", 11));
    }

    #[test]
    fn a_copy_1_torn_by_a_dead_writer_is_repaired_before_readers_can_see_it() {
        let dir = tempfile::tempdir().unwrap();
        let id = InstrumentId::new("Y").unwrap();
        {
            let mut w = BoardWriter::open(dir.path(), "even", 4).unwrap();
            w.update_tick(&tick("Y", 20)).unwrap();
            // Simulate death after `seq` turned even, while writing copy 1.
            let cell = w.slot_for(&id).unwrap() + TICK_CELL;
            w.words.write_bytes(cell + 8 + 104, &[0xCD; 104]);
        }
        let reader = BoardReader::open(dir.path(), "even").unwrap();
        assert_eq!(reader.tick(&id).unwrap(), tick("Y", 20), "even seq: readers use copy 0");
        let mut w = BoardWriter::open(dir.path(), "even", 4).unwrap();
        assert_eq!(w.repaired_cells(), 1);
        // The next update makes `seq` odd: readers then use copy 1, which
        // must be the last complete value, not the torn bytes.
        let cell = w.slot_for(&id).unwrap() + TICK_CELL;
        let seq = w.words.u64(cell);
        seq.store(seq.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        assert_eq!(reader.tick(&id).unwrap(), tick("Y", 20));
        seq.store(seq.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
        w.update_tick(&tick("Y", 21)).unwrap();
        assert_eq!(reader.tick(&id).unwrap(), tick("Y", 21));
    }

    #[test]
    fn a_board_sized_but_never_initialized_is_started_afresh() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(board_path(dir.path(), "unborn"), vec![0u8; 8192]).unwrap();
        let mut w = BoardWriter::open(dir.path(), "unborn", 8).unwrap();
        w.update_tick(&tick("Z", 1)).unwrap();
        let reader = BoardReader::open(dir.path(), "unborn").unwrap();
        assert_eq!(reader.status().capacity, 8);
        assert_eq!(reader.tick(&InstrumentId::new("Z").unwrap()).unwrap(), tick("Z", 1));
    }

    #[test]
    fn bad_files_and_names_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            BoardWriter::open(dir.path(), "a/b", 8),
            Err(Error::FeedName { .. })
        ));
        let path = board_path(dir.path(), "junk");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        let err = BoardReader::open(dir.path(), "junk").unwrap_err().to_string();
        assert!(err.contains("magic") && err.contains("mdbus.junk.board"), "{err}");
        let err = BoardReader::open(dir.path(), "missing").unwrap_err().to_string();
        assert!(err.contains("mdbus.missing.board"), "{err}");
    }
}
