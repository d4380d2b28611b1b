//! The one writer of a feed: appends frames into the memory-mapped live
//! segment, rolls to a new segment when a frame does not fit (or, by
//! [`Wal::needs_roll`], when the rate probe at open ends the first segment
//! early), and recovers the newest segment on open.
//!
//! Length (~1600 lines before the tests): append, roll, preallocation, the
//! rate probe and open-time recovery of the newest segment all move the
//! same live-segment state.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use mdbus_types::{MdSample, RecordRef};
use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result, io_err};
use crate::format::{
    DEFAULT_SEGMENT_BYTES, FRAME_HEADER_LEN, HEADER_LEN, MIN_SEGMENT_BYTES, SegmentHeader, crc32c_words,
    is_record_size, list_segments, padded, segment_file_name, validate_feed,
};
use crate::index::SparseIndex;
use crate::lock::FeedLock;
use crate::recovery::{RecoveryEvent, RecoveryReport};
use crate::retention::{BackgroundRetention, RetentionPolicy, RetentionReport, RetentionTotals, apply_retention};
use crate::scan::scan;
use crate::sync::{POPULATE_AHEAD, SegmentMap, SyncPolicy, SyncStats, SyncWorker};

/// Name of the file the next segment is preallocated in, before it is
/// renamed to `<first_seq:020>.wal` at the roll.
const PREALLOC_FILE: &str = ".next-segment.prealloc";

/// How a [`Wal`] writes.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Preallocated size of new segments (default 64 MiB; at least 512).
    /// An existing segment keeps its own size.
    pub segment_bytes: u64,
    /// When appended records are synced to disk.
    pub sync: SyncPolicy,
    /// Preallocate (and pre-fault) the next segment in a background thread
    /// as soon as a segment becomes live (at open too; with
    /// [`WalOptions::large_folios`], once a fast writer has shown its rate,
    /// that one is prepared again for it), so the roll only writes a
    /// header and renames a file (default true).
    /// When false, the roll preallocates in the appending thread.
    pub preallocate_next: bool,
    /// Pre-fault the pages of a new segment for writing before the writer
    /// reaches them (default true): `MADV_POPULATE_WRITE` (Linux 5.14+; a
    /// write of zero to each page otherwise), the whole segment, in the
    /// preparation thread when `preallocate_next` is on. Except under
    /// [`SyncPolicy::Interval`] with the writer's thread on one CPU (pinned,
    /// or a one-CPU machine), where the WAL's threads share its core: there
    /// the preparation faults the first 4 MiB, and the sync thread, each
    /// round, the pages up to 4 MiB ahead of the writer, so the work comes
    /// in pieces of a round's worth of pages, not in one burst of tens of
    /// milliseconds that takes the core from the publisher. And under
    /// [`SyncPolicy::Always`] with [`WalOptions::write_zeros`], whose
    /// preparation writes the whole segment with zeros: the first 4 MiB
    /// too (faulted in again after the zeros' sync, the pages are dirty
    /// again; past them the writer's first store to a page takes a fault
    /// that allocates nothing, beside an `msync` per append). Without it
    /// the first write to each page of a shared file mapping takes a fault
    /// (page cache allocation, filesystem `page_mkwrite`) in the appending
    /// thread, about halving the append rate of a fresh segment. The zero
    /// pages become dirty in the page cache, so the kernel may write them
    /// out once.
    pub prefault: bool,
    /// Write a new segment's blocks with zeros before the frames get there
    /// (default true), so that syncing frames does not convert a
    /// preallocated ("unwritten") extent, which makes a sync write the
    /// file's inode too, and on a journaled ext4 commit the journal (XFS:
    /// force its log). Under [`SyncPolicy::Interval`] the preparation
    /// writes the first 4 MiB and the sync thread, while the writer writes
    /// at most 256 KiB between two of its rounds, 1 MiB or more at a time
    /// ahead of it (a faster writer's frames convert the extents as
    /// before); under [`SyncPolicy::Always`] the preparation writes the
    /// whole segment; under [`SyncPolicy::Never`] only the first page, as
    /// without it. A segment recovered at open gets zeros only from the
    /// sync thread, ahead of the writer. The price is a second write of
    /// those blocks.
    pub write_zeros: bool,
    /// Let a fast writer's segments sit in the page cache in folios of up
    /// to 64 KiB instead of single pages (default true; needs `prefault`
    /// and `write_zeros`, not under [`SyncPolicy::Always`]): when the
    /// writer filled its last segment at 16 KiB or more per sync interval
    /// (2 ms under `Never`), the preparation of the next one writes its
    /// zeros with `pwrite`, in pieces of the largest power of two up to 64
    /// KiB that the writer fills within an interval, before it is mapped,
    /// and the sync rounds leave the piece the writer is filling, not just
    /// its page, for the next round. Linux 6.x then caches the segment in
    /// folios of that size, and faulting a page in finds it cached: on this
    /// project's machine a fresh page took ~3.5 us to fault in and ~2.4 us
    /// to sync, a page of a 64 KiB folio ~0.7 us to write, ~0.3 us to fault
    /// in, ~1.3 us to sync (`examples/page_cost.rs`, README, WAL). Not on a
    /// system whose pages are larger than half of 64 KiB. What it costs: a
    /// folio is written back whole, so a writer that slows down inside such
    /// a segment has up to 64 KiB written every other round instead of a
    /// page (its rate decides the next segments again); and the zeros are
    /// dirty in the page cache from the preparation on, where the kernel
    /// may write them out once, as it may the pages `prefault` dirties.
    ///
    /// The segment live at open (no rate known) and the one prepared at
    /// open are in single pages; the writer's rate is measured over its
    /// first MiB (a sixteenth of a smaller segment) after a few sync
    /// intervals, and when that rate asks for a
    /// fill the next segment is prepared again with it and the live one
    /// ends early, as soon as the filled one is ready (a fast writer's
    /// first segment then holds a few MiB). The end comes through
    /// [`Wal::needs_roll`], which a publisher asks before each batch (a
    /// `Wal` used alone that never asks keeps the segment to its end). Not
    /// for a segment recovered at open more than a quarter full, nor for
    /// segments under 2 MiB. With the option off, or where it does not
    /// apply, every segment is prepared in single pages.
    pub large_folios: bool,
    /// Also scan every older segment on open and report corruption there
    /// (never cut). Default false: open reads only the newest segment, so
    /// recovery time is bounded by the segment size. `verify` checks all.
    pub check_all_segments: bool,
    /// Delete old segments by total size and age (see
    /// [`apply_retention`]: never the newest full snapshot set's segment
    /// or a newer one), at open and after each roll, in a thread of its
    /// own (default none: the WAL grows), and once more when the writer is
    /// dropped, after that thread's pass (a roll's pass can run before the
    /// new segment's snapshot set is written: the WAL a clean close leaves
    /// is within the budget). [`Wal::retention_totals`] says what was
    /// deleted.
    pub retention: Option<RetentionPolicy>,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            sync: SyncPolicy::default(),
            preallocate_next: true,
            prefault: true,
            write_zeros: true,
            large_folios: true,
            check_all_segments: false,
            retention: None,
        }
    }
}

impl WalOptions {
    /// Sets `segment_bytes`.
    pub fn segment_bytes(mut self, bytes: u64) -> WalOptions {
        self.segment_bytes = bytes;
        self
    }

    /// Sets `sync`.
    pub fn sync(mut self, sync: SyncPolicy) -> WalOptions {
        self.sync = sync;
        self
    }

    /// Sets `retention`.
    pub fn retention(mut self, policy: RetentionPolicy) -> WalOptions {
        self.retention = Some(policy);
        self
    }

    /// Sets `preallocate_next`.
    pub fn preallocate_next(mut self, on: bool) -> WalOptions {
        self.preallocate_next = on;
        self
    }

    /// How much of a new segment its preparation faults in for writing,
    /// decided on the thread that prepares it (the writer's, or one it
    /// started, which begins with the writer's CPUs): see
    /// [`WalOptions::prefault_len_on`].
    fn prefault_len(&self) -> usize {
        self.prefault_len_on(mdbus_types::affinity::available_cpus().len())
    }

    /// [`WalOptions::prefault_len`] for a thread that may run on `cpus`
    /// CPUs: none without [`WalOptions::prefault`]; the first
    /// [`POPULATE_AHEAD`] bytes under [`SyncPolicy::Always`] with
    /// [`WalOptions::write_zeros`], and under [`SyncPolicy::Interval`] on one CPU
    /// (the writer pinned, as `--cpu` pins, or a one-CPU machine: the
    /// preparation can only take the writer's core from it, and the sync
    /// thread faults the pages ahead of the writer every round); the whole
    /// segment otherwise (on another core it costs the writer nothing, and
    /// a writer at GB/s outruns what the rounds fault in: measured, the
    /// MBP-10 import, unpinned, at 3.75 M records/s against 4.21, medians
    /// of 5 runs, when it applied to every `Interval` writer).
    fn prefault_len_on(&self, cpus: usize) -> usize {
        match self.sync {
            _ if !self.prefault => 0,
            SyncPolicy::Interval(_) if cpus <= 1 => POPULATE_AHEAD,
            // Faulting in again the zeros the preparation synced would make
            // them dirty again, for the flusher to write a third time.
            SyncPolicy::Always if self.write_zeros => POPULATE_AHEAD,
            SyncPolicy::Interval(_) | SyncPolicy::Never | SyncPolicy::Always => usize::MAX,
        }
    }

    /// Sets `write_zeros`.
    pub fn write_zeros(mut self, on: bool) -> WalOptions {
        self.write_zeros = on;
        self
    }

    /// Sets `large_folios`.
    pub fn large_folios(mut self, on: bool) -> WalOptions {
        self.large_folios = on;
        self
    }

    /// The sync interval a writer's rate is measured against for
    /// [`WalOptions::large_folios`] (the default one under `Never`), or
    /// `None` where its segments are never filled: the option off, or the
    /// `prefault` or `write_zeros` it builds on; under `Always` (a sync per
    /// append writes a folio whole); pages larger than half of [`FILL_MAX`].
    fn fill_interval(&self) -> Option<std::time::Duration> {
        if !(self.large_folios && self.prefault && self.write_zeros) || 2 * crate::sync::page_size() > FILL_MAX {
            return None;
        }
        match self.sync {
            SyncPolicy::Interval(every) => Some(every),
            SyncPolicy::Never => Some(SyncPolicy::DEFAULT_INTERVAL),
            SyncPolicy::Always => None,
        }
    }

    /// The piece size in which the preparation of the next segment writes
    /// its zeros ([`WalOptions::large_folios`]), for a writer that wrote
    /// `bytes` to its last segment in `took`: the largest power of two up
    /// to [`FILL_MAX`] that it wrote per sync interval on average, or 0
    /// (single pages, no zeros written) below [`FILL_MIN`] or two pages, or
    /// when the options rule it out ([`WalOptions::fill_interval`]). A
    /// segment that was quiet for a while averages low, which errs towards
    /// single pages.
    fn fill_for(&self, bytes: u64, took: std::time::Duration) -> usize {
        let Some(interval) = self.fill_interval() else {
            return 0;
        };
        let per_interval = bytes as f64 * interval.as_secs_f64() / took.as_secs_f64().max(1e-9);
        let piece = (per_interval as usize).min(FILL_MAX);
        let least = FILL_MIN.max(2 * crate::sync::page_size());
        if piece < least {
            return 0;
        }
        1 << piece.ilog2()
    }

    /// The block the sync rounds leave for the next round in a segment
    /// recovered at open ([`SegmentMap::block`](crate::sync::SegmentMap)):
    /// [`FILL_MAX`] where this writer's segments may be filled (a fast
    /// writer's last run may have left it cached in such folios, which a
    /// page-sized deferral would write whole every round; in single pages
    /// the larger deferral only syncs some frames a round later, still
    /// within two), else 0 (the page).
    fn recovered_fill(&self) -> usize {
        if self.fill_interval().is_some() { FILL_MAX } else { 0 }
    }

    /// Whether the segment live at open has a rate [`Probe`]: where
    /// segments may be filled and are prepared in the background, and are
    /// large enough for the probe's checkpoints ([`PROBE_MIN_SEGMENT`]).
    fn probes_at_open(&self) -> bool {
        self.preallocate_next && self.fill_interval().is_some() && self.segment_bytes >= PROBE_MIN_SEGMENT as u64
    }

    /// The bytes the [`Probe`] measures the writer's rate over: 1 MiB, or a
    /// sixteenth of a smaller segment.
    fn probe_bytes(&self) -> usize {
        usize::try_from(self.segment_bytes / 16)
            .unwrap_or(usize::MAX)
            .min(1 << 20)
    }

    /// How much of a new segment its preparation writes with zeros and
    /// syncs (see [`WalOptions::write_zeros`]).
    fn zero_len(&self) -> usize {
        match self.sync {
            _ if !self.write_zeros => 0,
            SyncPolicy::Never => 0,
            SyncPolicy::Interval(_) => POPULATE_AHEAD,
            SyncPolicy::Always => usize::MAX,
        }
    }

    fn check(&self) -> Result<()> {
        if self.segment_bytes < MIN_SEGMENT_BYTES || !self.segment_bytes.is_multiple_of(8) {
            return Err(Error::Options(format!(
                "segment_bytes {} must be a multiple of 8 and at least {MIN_SEGMENT_BYTES}",
                self.segment_bytes
            )));
        }
        if self.sync == SyncPolicy::Interval(std::time::Duration::ZERO) {
            return Err(Error::Options("SyncPolicy::Interval needs a non-zero interval".into()));
        }
        Ok(())
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The record went into the live segment.
    Appended,
    /// The record did not fit: a new segment was started and the record is
    /// its first frame. (Call [`Wal::needs_roll`] and [`Wal::roll`] before
    /// the append to put a snapshot set first instead.)
    NewSegment {
        /// The new segment's first seq (the record's).
        first_seq: u64,
    },
}

/// A preallocated, mapped, not yet named segment file.
#[derive(Debug)]
struct PreparedSegment {
    tmp_path: PathBuf,
    file: File,
    map: MmapRaw,
    bytes: u64,
    /// Zeros are on disk up to here (the first page at least).
    zeroed: usize,
    /// The piece size its zeros were written in (the page cache's folios,
    /// [`WalOptions::large_folios`]); 0 for single pages.
    fill: usize,
}

/// The live segment.
#[derive(Debug)]
struct LiveSegment {
    path: PathBuf,
    file: Arc<File>,
    map: Arc<MmapRaw>,
    first_seq: u64,
    frames: u64,
    write_off: usize,
    limit: usize,
    /// Zeros were on disk up to here when the segment went live.
    zeroed: usize,
    /// The piece its zeros were written in ([`PreparedSegment::fill`]), or
    /// for a segment recovered at open [`WalOptions::recovered_fill`]: the
    /// block the sync rounds leave for the next round (the page for 0).
    fill: usize,
    /// When this writer started appending to it (the rate of a segment
    /// decides the next one's `fill`).
    since: std::time::Instant,
    index: SparseIndex,
    /// [`SyncPolicy::Never`]: pages below this are unmapped in our map.
    released: usize,
    /// [`SyncPolicy::Never`]: the write offset at which to release the
    /// pages passed (every [`RELEASE_STRIDE`] bytes).
    release_at: usize,
    /// The write offset at which the appending thread next looks at the
    /// rate probe of the segment live at open ([`Probe`]); `usize::MAX`
    /// when there is none.
    probe_at: usize,
    /// The probe ended this segment early: [`Wal::needs_roll`] says so.
    ends_early: bool,
}

impl LiveSegment {
    /// What the sync thread needs of this segment.
    fn sync_map(&self) -> SegmentMap {
        SegmentMap {
            path: self.path.clone(),
            file: Arc::clone(&self.file),
            map: Arc::clone(&self.map),
            end: self.write_off,
            zeroed: self.zeroed,
            block: self.fill.max(crate::sync::page_size()),
        }
    }

    /// Unmaps the whole pages below the write offset (never written again)
    /// so that their writeback does not interrupt this thread.
    #[cold]
    fn release_passed(&mut self) {
        crate::sync::release_pages(&self.map, &mut self.released, self.write_off, crate::sync::page_size());
        self.release_at = self.write_off + RELEASE_STRIDE;
    }
}

/// With [`SyncPolicy::Never`] the appending thread unmaps the pages it has
/// passed every this many bytes (one `madvise`; the sync thread does it
/// for `Interval`): see [`crate::sync`] for why.
const RELEASE_STRIDE: usize = 4 << 20;

fn map_raw(file: &File, path: &Path, len: u64) -> Result<MmapRaw> {
    let len = usize::try_from(len).map_err(|_| Error::Options(format!("segment size {len} too large")))?;
    MmapOptions::new().len(len).map_raw(file).map_err(io_err("map", path))
}

/// Keeps the page cache of the writer's segment map in single pages
/// (`MADV_RANDOM`: a fault maps one page, no readahead).
///
/// Linux 6.x builds the page cache of an ext4 file from large folios (up
/// to 2 MiB) when faults read ahead, and a folio is dirty, written back and
/// write-protected as a whole. The sync thread flushes the frames written
/// since its last round, but the folio holding the writer's position goes
/// out whole every round, and the writer's next store faults on it and
/// waits for that I/O. Measured on this project's machine (Linux 6.18,
/// ext4): `mdbus publish --synthetic` at 100 k records/s for 6 s caused
/// 1341-1479 MB of disk writes (the same 2 MiB issued round after round),
/// and 74-77 MB with this advice. It costs the preparation thread more (about 3.5x the CPU time to
/// prefault a segment in pages, off the writer's thread). Best effort: a
/// kernel that refuses the advice keeps its folios.
fn small_folios(map: &MmapRaw) {
    let _ = map.advise(memmap2::Advice::Random);
}

/// [`small_folios`] for a recovered segment written up to `end`: the scan
/// read the file ahead in large folios, so the cached pages past `end`'s
/// largest possible folio (2 MiB) are unmapped and dropped from the page
/// cache (clean ones; dirty ones are written back first, by the kernel), to
/// come back as single pages when the writer gets there. The folio holding
/// `end` stays as it is. Best effort, like [`small_folios`].
fn small_folios_after(file: &File, map: &MmapRaw, end: usize) {
    const LARGEST_FOLIO: usize = 2 << 20;
    small_folios(map);
    let from = end.next_multiple_of(LARGEST_FOLIO);
    if from >= map.len() {
        return;
    }
    let len = map.len() - from;
    // SAFETY: `map` is a shared file mapping, so MADV_DONTNEED only drops
    // page table entries (the data stays in the file and the page cache).
    // No reference into `[from, len)` is held: the writer has not written
    // past `end` yet, and readers use their own maps.
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, len) };
    if let (Ok(offset), Ok(len)) = (libc::off_t::try_from(from), libc::off_t::try_from(len)) {
        // SAFETY: posix_fadvise on a valid descriptor owned by `file`; no
        // memory is passed.
        let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED) };
    }
}

/// Faults the pages of a fresh (all-zero) segment map below `len` in for
/// writing, so the appending thread takes no page faults there:
/// `MADV_POPULATE_WRITE`. Where the kernel lacks it, a zero written to
/// every page of the map, whatever `len` (the sync thread's faulting ahead
/// needs the advice too). Best effort.
fn prefault_write(map: &MmapRaw, len: usize) {
    if map
        .advise_range(memmap2::Advice::PopulateWrite, 0, len.min(map.len()))
        .is_ok()
    {
        return;
    }
    let base = map.as_mut_ptr();
    for off in (0..map.len()).step_by(crate::sync::page_size()) {
        // SAFETY: `off < map.len()`, inside the live mapping. The segment is
        // freshly allocated (all zero) and not yet visible under a segment
        // name, so writing a zero changes nothing anyone can observe; the
        // volatile write makes the kernel fault the page in for writing.
        unsafe { base.add(off).write_volatile(0) };
    }
}

/// Allocates `bytes` disk blocks for `file` (so a full disk is an error
/// here, never a SIGBUS on a later page fault).
fn allocate(file: &File, path: &Path, bytes: u64) -> Result<()> {
    let prealloc_err = |source| Error::Preallocate {
        path: path.to_path_buf(),
        bytes,
        source,
    };
    let len = libc::off_t::try_from(bytes).map_err(|_| prealloc_err(std::io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: posix_fallocate on a valid descriptor owned by `file`; no
    // memory is passed.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    match rc {
        0 => Ok(()),
        libc::EOPNOTSUPP => file.set_len(bytes).map_err(prealloc_err),
        errno => Err(prealloc_err(std::io::Error::from_raw_os_error(errno))),
    }
}

/// The least piece [`WalOptions::fill_for`] writes zeros in (a smaller one
/// saves little over single pages).
const FILL_MIN: usize = 16 << 10;

/// The largest piece [`WalOptions::fill_for`] writes zeros in: what a
/// writer that slows down inside the segment has written back every other
/// round. With it the sync thread's time per tick in `publish_path` went
/// from 97-104 to 47-50 ns (README, WAL); 256 KiB pieces cost a page
/// little less again in `examples/page_cost.rs`. The sync rounds fault in
/// again at least [`crate::sync::REFAULT_MIN`] from the writer's page on,
/// which must cover the rest of the writer's block after a round that
/// synced it.
const FILL_MAX: usize = 64 << 10;
const _: () = assert!(FILL_MAX <= crate::sync::REFAULT_MIN);

/// The rate probe of the segment live at open, where the writer's rate is
/// not known yet ([`WalOptions::large_folios`]). Without it that segment
/// and the one prepared at open were in single pages: the first 128 MiB of
/// a fast writer, the whole of a short run. The next segment is still
/// prepared at open in single pages (a roll soon after open, a snapshot
/// set's, finds it ready), and the probe measures the writer's rate: from
/// its first append, [`PROBE_SETTLE_INTERVALS`] sync intervals pass (a
/// burst at open, such as a large snapshot set, does not count), then it
/// measures [`WalOptions::probe_bytes`] over as many intervals at least
/// (a writer that passes half the segment first keeps the one prepared at
/// open). A rate that asks for a fill replaces the segment prepared at
/// open with one prepared for it (the preparation thread deletes the old
/// one first), and ends the live segment early once that one is ready
/// ([`Wal::needs_roll`] says so; a publisher asks before each batch): the
/// rest of a fast writer's first segment is not written in single pages.
/// A roll before the verdict starts the probe over in the new segment. The
/// appending thread looks at it every [`PROBE_STRIDE`] bytes (one clock
/// read; a thread joined and one spawned at the replacement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Before the first append.
    First,
    /// Since the first append, at `at`.
    Settling { at: std::time::Instant },
    /// The rate from `off` at `at` on.
    Measuring { at: std::time::Instant, off: usize },
    /// The rate asks for a fill: the segment prepared at open is dropped
    /// once its preparation is done, and the next one prepared with it.
    Replacing,
    /// The next segment is being prepared with a fill: the live one ends
    /// once it is ready.
    Ending,
}

/// How often (in bytes written) the appending thread looks at the
/// [`Probe`].
const PROBE_STRIDE: usize = 64 << 10;

/// The least segment the [`Probe`] runs in: room for 16 checkpoints before
/// its verdict at half the segment, at the latest.
const PROBE_MIN_SEGMENT: usize = 32 * PROBE_STRIDE;

/// The sync intervals the [`Probe`] lets pass after the first append, and
/// the least it measures over.
const PROBE_SETTLE_INTERVALS: u32 = 4;

/// [`prepare_segment`] as `options` ask (its size, what to fault in, what
/// to write with zeros), its zeros written in pieces of `fill` bytes (0:
/// none, see [`WalOptions::fill_for`]).
fn prepare_with(feed_dir: &Path, options: &WalOptions, fill: usize) -> Result<PreparedSegment> {
    prepare_segment(
        feed_dir,
        options.segment_bytes,
        options.prefault_len(),
        options.zero_len(),
        fill,
    )
}

/// Writes zeros into `file` over `range` with `pwrite`, in pieces of
/// `piece` bytes aligned to `piece` (the first one up to the first
/// boundary), not synced: Linux caches each piece in one folio where the
/// filesystem allows (ext4 since 6.x), so a later fault of a page finds it
/// cached, and writeback writes the piece whole.
fn write_zeros_in_pieces(file: &File, range: std::ops::Range<usize>, piece: usize) -> std::io::Result<()> {
    let zeros = vec![0u8; piece];
    let mut off = range.start;
    while off < range.end {
        let end = (off + 1).next_multiple_of(piece).min(range.end);
        file.write_all_at(&zeros[..end - off], off as u64)?;
        off = end;
    }
    Ok(())
}

/// Creates, allocates and maps the next segment under a temporary name,
/// its first `zero` bytes (at least its first page) written with zeros and
/// synced, its first `prefault` bytes faulted in for writing. With `fill`
/// (a power of two, 0 for none), the whole segment is written with zeros
/// first, in pieces of `fill` bytes ([`write_zeros_in_pieces`]; only the
/// first `zero` bytes synced).
fn prepare_segment(feed_dir: &Path, bytes: u64, prefault: usize, zero: usize, fill: usize) -> Result<PreparedSegment> {
    let tmp_path = feed_dir.join(PREALLOC_FILE);
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp_path)
        .map_err(io_err("create", &tmp_path))?;
    if let Err(e) = allocate(&file, &tmp_path, bytes) {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(e);
    }
    let fail = |source| {
        let _ = std::fs::remove_file(&tmp_path);
        Error::Preallocate {
            path: tmp_path.clone(),
            bytes,
            source,
        }
    };
    let page = crate::sync::page_size();
    // Write the first page and commit the allocation now, in the background,
    // so that the header's flush at the roll writes one data block and
    // needs no journal commit (fallocated blocks are "unwritten" extents
    // until written). The same for the first `zero` bytes: without `fill`
    // through the map (its pages stay single, see `small_folios`), faulted
    // in and synced, then those below `prefault` faulted in again (the sync
    // write-protected them) and the others dropped from this map's page
    // table, so that they stay clean in the page cache; with `fill` by the
    // `pwrite`s of the whole segment, of which only they are synced.
    let first_page = page.min(bytes as usize);
    let zero = zero.min(bytes as usize).max(first_page);
    if zero == first_page {
        file.write_all_at(&vec![0u8; first_page], 0)
            .and_then(|()| file.sync_data())
            .map_err(fail)?;
    }
    // After the first page's `sync_data`, which would write them all.
    if fill > 0 {
        let from = if zero == first_page { first_page } else { 0 };
        write_zeros_in_pieces(&file, from..bytes as usize, fill).map_err(fail)?;
    }
    let map = map_raw(&file, &tmp_path, bytes)?;
    small_folios(&map);
    if zero > first_page {
        if fill == 0 {
            prefault_write(&map, zero);
        }
        map.flush_range(0, zero).map_err(fail)?;
        let keep = prefault.min(zero).next_multiple_of(page);
        // With `fill` the zeros were written, not faulted in: nothing is
        // mapped to drop.
        if keep < zero && fill == 0 {
            // SAFETY: a shared file mapping not yet visible to anyone (its
            // temporary name, no reference into it): MADV_DONTNEED only
            // drops page table entries, the synced zeros stay in the file.
            let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, keep, zero - keep) };
        }
    }
    if prefault > 0 {
        prefault_write(&map, prefault);
    }
    Ok(PreparedSegment {
        tmp_path,
        file,
        map,
        bytes,
        zeroed: zero,
        fill,
    })
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

/// The writer of one feed's WAL. See the crate docs.
#[derive(Debug)]
pub struct Wal {
    feed: String,
    feed_dir: PathBuf,
    options: WalOptions,
    live: LiveSegment,
    next_seq: u64,
    sync: Option<SyncWorker>,
    prepared: Option<JoinHandle<Result<PreparedSegment>>>,
    /// The next segment, when [`Wal::wait_prepared`] collected it.
    ready: Option<PreparedSegment>,
    recovery: RecoveryReport,
    lock: FeedLock,
    retention: Arc<BackgroundRetention>,
    /// Bytes this writer wrote to the segments before the live one.
    bytes_before_live: u64,
    /// The live segment's offset when this writer took it over (recovered
    /// bytes: not written by this writer); 0 for a segment it started.
    live_start: u64,
    /// The piece size the next segment's preparation writes its zeros in
    /// ([`WalOptions::fill_for`] of the last segment this writer filled).
    fill: usize,
    /// Where the rate probe of the segment live at open stands (`None`:
    /// no probe, or it ended).
    probe: Option<Probe>,
    /// The probe's clock in tests (`None`: the real one).
    #[cfg(test)]
    clock: Option<std::time::Instant>,
}

impl Wal {
    /// Opens (or creates) the WAL of `feed` under `dir` (segments in
    /// `<dir>/<feed>/`) for writing: takes the feed's writer lock, recovers
    /// the newest segment (see [`RecoveryReport`]) and starts the sync and
    /// preallocation threads.
    pub fn open(dir: impl AsRef<Path>, feed: &str, options: WalOptions) -> Result<Wal> {
        validate_feed(feed)?;
        options.check()?;
        let feed_dir = dir.as_ref().join(feed);
        std::fs::create_dir_all(&feed_dir).map_err(io_err("create directory", &feed_dir))?;
        let lock = FeedLock::acquire(&feed_dir, feed)?;
        let _ = std::fs::remove_file(feed_dir.join(PREALLOC_FILE));

        let segments = list_segments(&feed_dir)?;
        let mut events = Vec::new();
        if options.check_all_segments && segments.len() > 1 {
            let older = &segments[..segments.len() - 1];
            for problem in crate::verify::check_segments(older, false)? {
                events.push(RecoveryEvent::Corruption {
                    path: problem.path,
                    offset: problem.offset,
                    reason: problem.what,
                });
            }
        }
        let (live, next_seq) = match segments.last() {
            None => (Self::create_segment(&feed_dir, feed, &options, 1, &mut events)?, 1),
            Some((first_seq, path)) => Self::recover_newest(&feed_dir, feed, &options, *first_seq, path, &mut events)?,
        };
        let sync = match options.sync {
            SyncPolicy::Interval(every) => Some(
                SyncWorker::start(live.sync_map(), options.write_zeros, every)
                    .map_err(io_err("spawn sync thread", &feed_dir))?,
            ),
            SyncPolicy::Never | SyncPolicy::Always => None,
        };
        let recovery = RecoveryReport {
            feed_dir: feed_dir.clone(),
            segments: list_segments(&feed_dir)?.len(),
            live_segment: live.path.clone(),
            next_seq,
            append_offset: live.write_off as u64,
            events,
        };
        // A recovered segment's bytes are not this writer's; a segment it
        // created (its header) is.
        let live_start = if segments.is_empty() { 0 } else { live.write_off as u64 };
        let mut wal = Wal {
            feed: feed.to_string(),
            feed_dir,
            options,
            live,
            next_seq,
            sync,
            prepared: None,
            ready: None,
            recovery,
            lock,
            retention: Arc::default(),
            bytes_before_live: 0,
            live_start,
            fill: 0,
            probe: None,
            #[cfg(test)]
            clock: None,
        };
        if wal.options.probes_at_open() && wal.live.write_off < wal.live.limit / 4 {
            // The writer's rate decides what follows (see `Probe`).
            wal.start_probe();
        }
        wal.spawn_prepare();
        wal.start_retention();
        Ok(wal)
    }

    /// Maps the newest segment read-write and repairs its tail, or starts
    /// a new segment after it when it is corrupt.
    fn recover_newest(
        feed_dir: &Path,
        feed: &str,
        options: &WalOptions,
        named_first_seq: u64,
        path: &Path,
        events: &mut Vec<RecoveryEvent>,
    ) -> Result<(LiveSegment, u64)> {
        let file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err("open", path))?;
        let file_len = file.metadata().map_err(io_err("stat", path))?.len();
        let map = map_raw(&file, path, file_len)?;
        // SAFETY: `map` is a live mapping of `file_len` bytes; we hold the
        // feed's writer lock, so no other writer changes it while this
        // shared view exists (readers never write).
        let bytes = unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) };
        let header = match SegmentHeader::decode(bytes) {
            Ok(header) => header,
            Err(reason) => match Self::restore_header(feed, options, named_first_seq, path, file_len, &map) {
                Some(restored) => {
                    let header = restored?;
                    events.push(RecoveryEvent::HeaderRestored {
                        path: path.to_path_buf(),
                        first_seq: header.first_seq,
                    });
                    header
                }
                None => {
                    // Damaged, not all zero: the feed goes on in a new
                    // segment after the frames it holds (read by readers
                    // with skip-corrupt), never down and never hiding them.
                    let stand_in = SegmentHeader::from_name(named_first_seq, file_len, feed);
                    let reason = SegmentHeader::diagnose(bytes, &stand_in, reason);
                    let max_seq = scan(bytes, &stand_in).max_seq;
                    drop(map);
                    return Self::after_bad_header(feed_dir, options, &stand_in, path, reason, max_seq, events);
                }
            },
        };
        let limit = bytes
            .len()
            .min(usize::try_from(header.segment_bytes).unwrap_or(usize::MAX));
        let result = scan(&bytes[..limit], &header);

        if result.is_corrupt() {
            for bad in &result.bad {
                events.push(RecoveryEvent::Corruption {
                    path: path.to_path_buf(),
                    offset: bad.off as u64,
                    reason: bad.reason.to_string(),
                });
            }
            let first_seq = result.max_seq.map_or(header.first_seq, |m| m + 1);
            let live = Self::create_segment(feed_dir, feed, options, first_seq, events)?;
            events.push(RecoveryEvent::NewSegment {
                path: live.path.clone(),
                first_seq,
            });
            return Ok((live, first_seq));
        }

        // Clean, torn or with stray bytes: zero what is not a frame.
        let mut cut = None;
        if let Some(torn) = result.torn_tail() {
            cut = Some((torn.off, torn.nonzero_end.max(torn.off)));
            events.push(RecoveryEvent::TornTailCut {
                path: path.to_path_buf(),
                offset: torn.off as u64,
                bytes: (torn.nonzero_end.max(torn.off) - torn.off) as u64,
                reason: torn.reason.to_string(),
            });
        } else if let Some((from, to)) = result.stray {
            cut = Some((from, to));
            events.push(RecoveryEvent::StrayBytesZeroed {
                path: path.to_path_buf(),
                offset: from as u64,
                bytes: (to - from) as u64,
            });
        }
        if let Some((from, to)) = cut
            && to > from
        {
            // SAFETY: `from..to` lies inside the mapping (scan offsets are
            // bounded by `limit <= map.len()`); no reference into the map
            // is used after this point except re-reads below.
            unsafe { std::ptr::write_bytes(map.as_mut_ptr().add(from), 0, to - from) };
            if options.sync != SyncPolicy::Never {
                map.flush_range(from, to - from).map_err(|source| Error::Sync {
                    path: path.to_path_buf(),
                    source,
                })?;
            }
        }
        let map = if file_len < header.segment_bytes {
            // A file shorter than its header says (truncated): give it its
            // space back so appends can continue in it.
            allocate(&file, path, header.segment_bytes)?;
            events.push(RecoveryEvent::Extended {
                path: path.to_path_buf(),
                from: file_len,
                to: header.segment_bytes,
            });
            drop(map);
            map_raw(&file, path, header.segment_bytes)?
        } else {
            map
        };
        let limit = map
            .len()
            .min(usize::try_from(header.segment_bytes).unwrap_or(usize::MAX));
        let next_seq = result.last.map_or(header.first_seq, |f| f.header.seq + 1);
        small_folios_after(&file, &map, result.end);
        let live = LiveSegment {
            path: path.to_path_buf(),
            file: Arc::new(file),
            map: Arc::new(map),
            first_seq: header.first_seq,
            frames: result.frames,
            write_off: result.end,
            limit,
            // Unknown: the rounds write zeros from the writer on.
            zeroed: 0,
            // Unknown: the folios a fast writer's last run left, maybe.
            fill: options.recovered_fill(),
            since: std::time::Instant::now(),
            index: result.index,
            released: result.end,
            release_at: result.end + RELEASE_STRIDE,
            probe_at: usize::MAX,
            ends_early: false,
        };
        Ok((live, next_seq))
    }

    /// The newest segment `path` has a damaged header (`reason`; `stand_in`
    /// is what its name, size and folder say): appends continue in a new
    /// segment after its highest crc-valid seq (`max_seq`), the segment
    /// left in place for readers; one without a valid frame holds nothing
    /// readable and is renamed aside so that the new segment can take its
    /// name.
    fn after_bad_header(
        feed_dir: &Path,
        options: &WalOptions,
        stand_in: &SegmentHeader,
        path: &Path,
        reason: String,
        max_seq: Option<u64>,
        events: &mut Vec<RecoveryEvent>,
    ) -> Result<(LiveSegment, u64)> {
        events.push(RecoveryEvent::BadHeader {
            path: path.to_path_buf(),
            reason,
        });
        let first_seq = match max_seq {
            Some(max) => max + 1,
            None => {
                let mut to = path.as_os_str().to_owned();
                to.push(".bad-header");
                let to = PathBuf::from(to);
                std::fs::rename(path, &to).map_err(io_err("rename", path))?;
                events.push(RecoveryEvent::SetAside {
                    path: path.to_path_buf(),
                    to,
                });
                stand_in.first_seq
            }
        };
        let live = Self::create_segment(feed_dir, &stand_in.feed, options, first_seq, events)?;
        events.push(RecoveryEvent::NewSegment {
            path: live.path.clone(),
            first_seq,
        });
        Ok((live, first_seq))
    }

    /// A newest segment whose header is all zero is a roll cut by a power
    /// loss before the sync thread made the header durable (the name was
    /// already): writes the header again from the name (`first_seq`) and
    /// the file's size, and syncs it (unless `Never`). `None` when the
    /// header is not all zero (a bad header stays an error) or the size
    /// cannot be a segment's.
    fn restore_header(
        feed: &str,
        options: &WalOptions,
        first_seq: u64,
        path: &Path,
        file_len: u64,
        map: &MmapRaw,
    ) -> Option<Result<SegmentHeader>> {
        if map.len() < HEADER_LEN || file_len < MIN_SEGMENT_BYTES || !file_len.is_multiple_of(8) {
            return None;
        }
        // SAFETY: the map is at least HEADER_LEN bytes long; we hold the
        // feed's writer lock, so nobody writes it meanwhile.
        let head = unsafe { std::slice::from_raw_parts(map.as_ptr(), HEADER_LEN) };
        if head.iter().any(|&b| b != 0) {
            return None;
        }
        let header = SegmentHeader {
            first_seq,
            created_ns: mdbus_types::clock::now_ns(),
            segment_bytes: file_len,
            feed: feed.to_string(),
        };
        let bytes = header.encode();
        // SAFETY: the first HEADER_LEN bytes are inside the map, and no
        // reference into them is held (`head` is not used after this).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), map.as_mut_ptr(), HEADER_LEN) };
        if options.sync != SyncPolicy::Never
            && let Err(source) = map.flush_range(0, HEADER_LEN)
        {
            return Some(Err(Error::Sync {
                path: path.to_path_buf(),
                source,
            }));
        }
        Some(Ok(header))
    }

    /// Creates a segment starting at `first_seq` synchronously.
    fn create_segment(
        feed_dir: &Path,
        feed: &str,
        options: &WalOptions,
        first_seq: u64,
        _events: &mut Vec<RecoveryEvent>,
    ) -> Result<LiveSegment> {
        // No rate known yet: single pages.
        let prepared = prepare_with(feed_dir, options, 0)?;
        Self::activate(feed_dir, feed, options, prepared, first_seq, false)
    }

    /// Writes the header of a prepared segment and gives it its name.
    fn activate(
        feed_dir: &Path,
        feed: &str,
        options: &WalOptions,
        prepared: PreparedSegment,
        first_seq: u64,
        background_sync: bool,
    ) -> Result<LiveSegment> {
        let header = SegmentHeader {
            first_seq,
            created_ns: mdbus_types::clock::now_ns(),
            segment_bytes: prepared.bytes,
            feed: feed.to_string(),
        }
        .encode();
        // SAFETY: the map is at least MIN_SEGMENT_BYTES > 128 bytes long
        // and nobody else can see this file yet (it has its temporary name).
        unsafe { std::ptr::copy_nonoverlapping(header.as_ptr(), prepared.map.as_mut_ptr(), HEADER_LEN) };
        let path = feed_dir.join(segment_file_name(first_seq));
        if path.exists() {
            return Err(Error::Io {
                op: "create segment",
                path,
                source: std::io::ErrorKind::AlreadyExists.into(),
            });
        }
        // With group commit (`background_sync`) the sync thread makes the
        // header, then the new name durable (see `SyncWorker::switch`): the
        // roll neither flushes (a disk-cache flush, 0.4-0.7 ms measured) nor
        // waits for a journal commit. Until then a power loss may leave the
        // name without the header, only for the newest segment (the roll
        // flushes the previous header first when the thread has not), and
        // open restores it from the name (`Wal::restore_header`).
        // `Always`, and a segment created at open, keep the order
        // header, rename, directory in this thread.
        let inline_sync = options.sync != SyncPolicy::Never && !background_sync;
        if inline_sync {
            prepared.map.flush_range(0, HEADER_LEN).map_err(|source| Error::Sync {
                path: prepared.tmp_path.clone(),
                source,
            })?;
        }
        std::fs::rename(&prepared.tmp_path, &path).map_err(io_err("rename", &path))?;
        if inline_sync {
            sync_dir(feed_dir)?;
        }
        let limit = prepared.map.len();
        Ok(LiveSegment {
            path,
            file: Arc::new(prepared.file),
            map: Arc::new(prepared.map),
            first_seq,
            frames: 0,
            write_off: HEADER_LEN,
            limit,
            zeroed: prepared.zeroed,
            fill: prepared.fill,
            since: std::time::Instant::now(),
            index: SparseIndex::default(),
            released: 0,
            release_at: RELEASE_STRIDE,
            probe_at: usize::MAX,
            ends_early: false,
        })
    }

    fn spawn_prepare(&mut self) {
        self.spawn_prepare_after(None);
    }

    /// [`Wal::spawn_prepare`], the thread first deleting `old`, a prepared
    /// segment under the same temporary name (its unmap and the release of
    /// its page cache are milliseconds, not for the appending thread).
    fn spawn_prepare_after(&mut self, old: Option<PreparedSegment>) {
        if !self.options.preallocate_next || self.prepared.is_some() || self.ready.is_some() {
            return;
        }
        let dir = self.feed_dir.clone();
        let options = self.options.clone();
        let fill = self.fill;
        // A failed spawn only means the roll preallocates synchronously
        // (over `old`'s file, which `create` truncates).
        self.prepared = std::thread::Builder::new()
            .name("mdbus-wal-prealloc".into())
            .spawn(move || {
                if let Some(old) = old {
                    let _ = std::fs::remove_file(&old.tmp_path);
                    drop(old);
                }
                prepare_with(&dir, &options, fill)
            })
            .ok();
    }

    /// Appends the record held by `sample` (its kind's length, not 376
    /// bytes). Its `header.seq` must be [`Wal::next_seq`]. A map write, no
    /// syscall (unless [`SyncPolicy::Always`] or a roll).
    #[inline]
    pub fn append(&mut self, sample: &MdSample) -> Result<AppendOutcome> {
        let bytes = sample.record_bytes().map_err(|source| Error::Record {
            feed: self.feed.clone(),
            source,
        })?;
        self.append_bytes(sample.header().seq, bytes)
    }

    /// Appends one record; its `header.seq` must be [`Wal::next_seq`].
    #[inline]
    pub fn append_record(&mut self, record: RecordRef<'_>) -> Result<AppendOutcome> {
        self.append_bytes(record.header().seq, record.as_bytes())
    }

    fn append_bytes(&mut self, seq: u64, bytes: &[u8]) -> Result<AppendOutcome> {
        if seq != self.next_seq {
            return Err(Error::SeqOutOfOrder {
                feed: self.feed.clone(),
                expected: self.next_seq,
                got: seq,
            });
        }
        debug_assert!(is_record_size(bytes.len()));
        if let Some(e) = self.sync.as_ref().and_then(SyncWorker::take_error) {
            return Err(e);
        }
        let mut outcome = AppendOutcome::Appended;
        if self.is_full(bytes.len()) {
            self.start_segment()?;
            outcome = AppendOutcome::NewSegment { first_seq: seq };
        }
        self.write_frame(bytes)?;
        Ok(outcome)
    }

    /// Writes one frame at the live end. The payload is the record's
    /// plain bytes, copied: the records' rkyv archives are byte-identical
    /// to them (mdbus-types proves it in a test, and this crate's
    /// `archive_equals_frame_payload` test checks it again), so a copy is
    /// the archive, ~4x cheaper than running rkyv's serializer for a Tick.
    /// Readers validate with rkyv's checked access.
    ///
    /// With [`SyncPolicy::Always`] an `Err(Sync)` means the record is in
    /// the map (it survives a crash of this process) but is not known to be
    /// on disk.
    #[inline]
    fn write_frame(&mut self, bytes: &[u8]) -> Result<()> {
        let live = &mut self.live;
        let off = live.write_off;
        let len = bytes.len();
        let frame_len = FRAME_HEADER_LEN + padded(len);
        debug_assert!(off + frame_len <= live.limit);
        let crc = crc32c_words(bytes);
        let base = live.map.as_mut_ptr();
        // SAFETY: `off + frame_len <= limit <= map.len()` (checked by
        // `is_full`), `off` is 8-aligned in a page-aligned map, and we are
        // the only writer (feed lock). The bytes are beyond the live end, so
        // no reader dereferences them until it sees the non-zero `len`
        // stored below. Padding is already zero (preallocated zeroes, and
        // recovery zeroes anything after the live end).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(off + FRAME_HEADER_LEN), len);
            base.add(off + 4).cast::<u32>().write(crc.to_le());
            let len_word = AtomicU32::from_ptr(base.add(off).cast::<u32>());
            // SYNC: pairs with the Acquire load in `format::load_len`: a
            // reader that sees this len sees the crc and payload above.
            len_word.store((len as u32).to_le(), Ordering::Release);
        }
        // `append_bytes` checked that the record's seq is `next_seq`.
        live.index
            .note_with(self.next_seq, off as u64, || crate::format::read_header(bytes).ts_event);
        live.write_off = off + frame_len;
        live.frames += 1;
        self.next_seq += 1;
        match self.options.sync {
            SyncPolicy::Never => {
                if live.write_off >= live.release_at {
                    live.release_passed();
                }
            }
            SyncPolicy::Interval(_) => {
                if let Some(sync) = &self.sync {
                    sync.written(live.write_off);
                }
            }
            SyncPolicy::Always => {
                live.map.flush_range(off, frame_len).map_err(|source| Error::Sync {
                    path: live.path.clone(),
                    source,
                })?;
            }
        }
        if live.write_off >= live.probe_at {
            self.advance_probe();
        }
        Ok(())
    }

    /// The probe's clock.
    fn probe_now(&self) -> std::time::Instant {
        #[cfg(test)]
        if let Some(now) = self.clock {
            return now;
        }
        std::time::Instant::now()
    }

    /// One step of the rate probe of the segment live at open, at
    /// [`LiveSegment::probe_at`] (see [`Probe`]).
    #[cold]
    fn advance_probe(&mut self) {
        let now = self.probe_now();
        let off = self.live.write_off;
        let interval = self.options.fill_interval().unwrap_or(SyncPolicy::DEFAULT_INTERVAL);
        let settle = PROBE_SETTLE_INTERVALS * interval;
        let window = self.options.probe_bytes();
        // Past half the segment before a verdict (a writer at GB/s, or a
        // burst at open), the one prepared at open stands: a replacement
        // might not be ready by the roll. The rule of this segment decides
        // the next.
        let half = self.live.limit / 2;
        let next = match self.probe {
            None => None,
            Some(Probe::First) => {
                self.live.since = now;
                Some(Probe::Settling { at: now })
            }
            Some(Probe::Settling { at }) => {
                let took = now.saturating_duration_since(at);
                if off >= half {
                    None
                } else if took >= settle {
                    Some(Probe::Measuring { at: now, off })
                } else {
                    self.probe
                }
            }
            Some(Probe::Measuring { at, off: from }) => {
                let took = now.saturating_duration_since(at);
                if off >= half {
                    None
                } else if off - from >= window && took >= settle {
                    self.probe_verdict(off - from, took)
                } else {
                    self.probe
                }
            }
            Some(Probe::Replacing) => self.replace_prepared(),
            Some(Probe::Ending) if self.preparing() => self.probe,
            Some(Probe::Ending) => {
                self.wait_prepared();
                // A writer that rolls by `needs_roll` starts the segment
                // prepared for its rate at its next check (not if that
                // preparation failed: the roll retries it).
                self.live.ends_early = self.ready.is_some();
                None
            }
        };
        self.probe = next;
        self.live.probe_at = match next {
            Some(_) => off.saturating_add(PROBE_STRIDE),
            None => usize::MAX,
        };
    }

    /// The probe measured `bytes` in `took`: a rate that asks for a fill
    /// has the segment prepared at open replaced by one prepared with it;
    /// otherwise that one stands.
    fn probe_verdict(&mut self, bytes: usize, took: std::time::Duration) -> Option<Probe> {
        self.fill = self.options.fill_for(bytes as u64, took);
        if self.fill == 0 {
            return None;
        }
        self.replace_prepared()
    }

    /// Drops the segment prepared at open, once its preparation is done
    /// (they share the temporary file), and prepares the next one with
    /// [`Wal::fill`] instead: [`Probe::Ending`].
    fn replace_prepared(&mut self) -> Option<Probe> {
        if self.preparing() {
            return Some(Probe::Replacing);
        }
        self.wait_prepared();
        let old = self.ready.take();
        self.spawn_prepare_after(old);
        self.prepared.is_some().then_some(Probe::Ending)
    }

    /// Whether a preparation of the next segment is running.
    fn preparing(&self) -> bool {
        self.prepared.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Starts the [`Probe`] in the live segment, at its next append.
    fn start_probe(&mut self) {
        self.probe = Some(Probe::First);
        self.live.probe_at = self.live.write_off;
    }

    /// Whether the writer should start a new segment before it appends a
    /// record of `len` bytes ([`Wal::roll`]): the record would not fit in
    /// the live segment, whose append would start one anyway, or the rate
    /// probe ended the segment live at open early for a fast writer (see
    /// [`WalOptions::large_folios`]), which appends alone never do. A
    /// publisher asks before each batch, so that a batch, a snapshot set
    /// above all, is never split by an early end.
    #[inline]
    pub fn needs_roll(&self, len: usize) -> bool {
        self.live.ends_early || self.is_full(len)
    }

    /// Whether a record of `len` bytes does not fit in the live segment.
    #[inline]
    fn is_full(&self, len: usize) -> bool {
        self.live.write_off + FRAME_HEADER_LEN + padded(len) > self.live.limit
    }

    /// Starts a new segment at [`Wal::next_seq`] now (the publisher then
    /// writes its snapshot set first). No-op when the live segment has no
    /// frame yet. Returns the live segment's path.
    pub fn roll(&mut self) -> Result<&Path> {
        if self.live.frames > 0 {
            self.start_segment()?;
        }
        Ok(&self.live.path)
    }

    /// Moves the live end forward to `seq`, leaving the seqs from
    /// [`Wal::next_seq`] to `seq - 1` out: a new segment starts at `seq`,
    /// and readers report the hole like any other lost range (a skipped
    /// range, a subscriber's `Gap`). For a replica of another host's feed
    /// (`mdbus bridge in`) whose copy starts after seq 1, or whose source
    /// no longer has those records. A live segment without a frame is
    /// removed, so a replica that starts at `seq` has no empty segment
    /// before it. `seq == next_seq` is a no-op; a smaller seq is
    /// [`Error::SeqOutOfOrder`].
    pub fn skip_to(&mut self, seq: u64) -> Result<()> {
        if seq < self.next_seq {
            return Err(Error::SeqOutOfOrder {
                feed: self.feed.clone(),
                expected: self.next_seq,
                got: seq,
            });
        }
        if seq == self.next_seq {
            return Ok(());
        }
        let empty = (self.live.frames == 0).then(|| self.live.path.clone());
        let before = self.next_seq;
        self.next_seq = seq;
        if let Err(e) = self.start_segment() {
            self.next_seq = before;
            return Err(e);
        }
        if let Some(path) = empty {
            std::fs::remove_file(&path).map_err(io_err("remove empty segment", &path))?;
        }
        Ok(())
    }

    fn start_segment(&mut self) -> Result<()> {
        let first_seq = self.next_seq;
        self.wait_prepared();
        let prepared = self.ready.take();
        let prepared = match prepared {
            Some(p) => p,
            // No prepared file (disabled, or its preallocation failed):
            // try again here; an error leaves the live segment as it is.
            // In single pages: the zeros of a whole segment are not
            // written on the appending thread.
            None => prepare_with(&self.feed_dir, &self.options, 0)?,
        };
        if let Some(sync) = &self.sync
            && !sync.header_durable()
        {
            // The live segment filled before the sync thread flushed its
            // header (segments rolling faster than the interval): flush it
            // here, so that no segment but the newest lacks one on disk.
            self.live.map.flush_range(0, HEADER_LEN).map_err(|source| Error::Sync {
                path: self.live.path.clone(),
                source,
            })?;
        }
        let background = self.sync.is_some();
        let live = Self::activate(
            &self.feed_dir,
            &self.feed,
            &self.options,
            prepared,
            first_seq,
            background,
        )?;
        if let Some(sync) = &self.sync {
            sync.switch(&self.feed_dir, live.sync_map());
        }
        let filled = self.live.write_off as u64 - self.live_start;
        self.bytes_before_live += filled;
        // A roll before the probe's verdict (an explicit one, such as a
        // snapshot set's soon after open) starts it over in the new
        // segment; after it, the next segments follow the rule of the
        // segment before.
        let measured = !matches!(
            self.probe,
            Some(Probe::First | Probe::Settling { .. } | Probe::Measuring { .. })
        );
        self.fill = if measured {
            self.options.fill_for(filled, self.live.since.elapsed())
        } else {
            0
        };
        self.live_start = 0;
        self.live = live;
        self.probe = None;
        if !measured {
            self.start_probe();
        }
        self.spawn_prepare();
        self.start_retention();
        Ok(())
    }

    /// A background retention pass, when [`WalOptions::retention`] is set.
    fn start_retention(&self) {
        if let Some(policy) = &self.options.retention
            && let Some(root) = self.feed_dir.parent()
        {
            self.retention
                .start(root.to_path_buf(), self.feed.clone(), policy.clone());
        }
    }

    /// What background retention ([`WalOptions::retention`]) deleted so
    /// far, and whether a pass is running now.
    pub fn retention_totals(&self) -> (RetentionTotals, bool) {
        self.retention.totals()
    }

    /// Waits until the background preparation of the next segment (see
    /// [`WalOptions::preallocate_next`]) has finished, so that nothing
    /// competes with the appending thread for a CPU and the next roll does
    /// not wait. Returns at once when there is none. With
    /// [`WalOptions::large_folios`], the rate probe at open may start a
    /// second one later, for a fast writer (see `large_folios`). A failed
    /// preparation is retried by the roll itself.
    pub fn wait_prepared(&mut self) {
        if let Some(handle) = self.prepared.take()
            && let Ok(Ok(p)) = handle.join()
        {
            if p.bytes == self.options.segment_bytes {
                self.ready = Some(p);
            } else {
                let _ = std::fs::remove_file(&p.tmp_path);
            }
        }
    }

    /// The seq the next append must carry.
    #[inline]
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The feed name.
    pub fn feed(&self) -> &str {
        &self.feed
    }

    /// The feed directory `<dir>/<feed>`.
    pub fn feed_dir(&self) -> &Path {
        &self.feed_dir
    }

    /// The live segment file.
    pub fn segment_path(&self) -> &Path {
        &self.live.path
    }

    /// The live segment's first seq.
    pub fn segment_first_seq(&self) -> u64 {
        self.live.first_seq
    }

    /// Byte offset in the live segment where the next frame goes.
    pub fn append_offset(&self) -> u64 {
        self.live.write_off as u64
    }

    /// Bytes this writer has written to the WAL since it opened it: frames
    /// and the headers of the segments it started (bytes recovered at open
    /// not included). Read from the live segment's offset, so it costs the
    /// append nothing.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_before_live + self.live.write_off as u64 - self.live_start
    }

    /// How long the group-commit thread's sync rounds took (shared: the
    /// thread keeps adding to it), when the policy is
    /// [`SyncPolicy::Interval`]; `None` otherwise (no thread).
    pub fn sync_stats(&self) -> Option<Arc<SyncStats>> {
        self.sync.as_ref().map(|sync| Arc::clone(sync.stats()))
    }

    /// The sparse index of the live segment, built while appending.
    pub fn index(&self) -> &SparseIndex {
        &self.live.index
    }

    /// What open found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The lock file held.
    pub fn lock_path(&self) -> &Path {
        self.lock.path()
    }

    /// Syncs everything written so far to disk now (whatever the policy).
    pub fn sync(&self) -> Result<()> {
        if let Some(sync) = &self.sync {
            return sync.sync_now();
        }
        self.live
            .map
            .flush_range(0, self.live.write_off)
            .map_err(|source| Error::Sync {
                path: self.live.path.clone(),
                source,
            })
    }

    /// Deletes old segments per `policy` (see [`apply_retention`]).
    pub fn retain(&self, policy: &RetentionPolicy) -> Result<RetentionReport> {
        apply_retention(self.feed_dir.parent().unwrap_or(Path::new(".")), &self.feed, policy)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // The sync worker's drop does the final flush of Interval.
        self.sync = None;
        self.wait_prepared();
        if let Some(p) = self.ready.take() {
            let _ = std::fs::remove_file(&p.tmp_path);
        }
        // A retention pass under way ends (and the last roll's pass runs),
        // then one more pass runs here, on the WAL as it is left (the last
        // roll's pass may have run before that segment's snapshot set was
        // written): a clean close leaves the WAL within its budget.
        if let Some(policy) = &self.options.retention
            && let Some(root) = self.feed_dir.parent()
        {
            self.retention.finish(root, &self.feed, policy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{mapped_pages, page_size};

    /// What a preparation faults in, by policy and by the CPUs its thread
    /// may use.
    #[test]
    fn the_prefault_length_follows_the_policy_and_the_cpus() {
        let interval = WalOptions::default();
        assert_eq!(interval.prefault_len_on(1), POPULATE_AHEAD, "Interval, one CPU");
        assert_eq!(interval.prefault_len_on(2), usize::MAX, "Interval, two CPUs");
        for cpus in [1, 2] {
            let never = WalOptions::default().sync(SyncPolicy::Never);
            assert_eq!(never.prefault_len_on(cpus), usize::MAX, "Never");
            let always = WalOptions::default().sync(SyncPolicy::Always);
            assert_eq!(always.prefault_len_on(cpus), POPULATE_AHEAD, "Always, zeros written");
            let always = always.write_zeros(false);
            assert_eq!(always.prefault_len_on(cpus), usize::MAX, "Always, no zeros written");
        }
        let off = WalOptions {
            prefault: false,
            ..WalOptions::default()
        };
        assert_eq!(off.prefault_len_on(1), 0);
        assert_eq!(off.prefault_len_on(2), 0);
    }

    /// On a thread pinned to one CPU, under `Interval`, a new segment comes
    /// with its first [`POPULATE_AHEAD`] bytes faulted in (the sync thread
    /// faults the rest ahead of the writer), under the other policies
    /// whole, without `prefault` not at all. A kernel without
    /// `MADV_POPULATE_WRITE` gets every page written instead.
    #[test]
    fn the_preparation_faults_in_what_the_policy_needs() {
        let cpu = mdbus_types::affinity::available_cpus()[0];
        mdbus_types::affinity::pin_current_thread(cpu).unwrap();
        let bytes = 4 * POPULATE_AHEAD as u64;
        let page = page_size();
        let pages = bytes as usize / page;
        let mapped = |options: WalOptions| {
            let dir = tempfile::tempdir().unwrap();
            let prepared = prepare_with(dir.path(), &options.segment_bytes(bytes), 0).unwrap();
            mapped_pages(&prepared.map).iter().filter(|&&m| m).count()
        };
        let probe = tempfile::tempdir().unwrap();
        let probe = prepare_segment(probe.path(), bytes, 0, 0, 0).unwrap();
        assert_eq!(mapped_pages(&probe.map).iter().filter(|&&m| m).count(), 0);
        let advice_works = probe.map.advise_range(memmap2::Advice::PopulateWrite, 0, page).is_ok();
        let interval = if advice_works { POPULATE_AHEAD / page } else { pages };
        assert_eq!(mapped(WalOptions::default()), interval, "Interval (the default)");
        assert_eq!(mapped(WalOptions::default().sync(SyncPolicy::Never)), pages, "Never");
        assert_eq!(
            mapped(WalOptions::default().sync(SyncPolicy::Always)),
            interval,
            "Always"
        );
        let no_zeros = WalOptions::default().sync(SyncPolicy::Always).write_zeros(false);
        assert_eq!(mapped(no_zeros), pages, "Always without zeros");
        let off = WalOptions {
            prefault: false,
            ..WalOptions::default()
        };
        assert_eq!(mapped(off), 0, "prefault off");
    }

    /// Which bytes of a prepared segment are written blocks on disk, or
    /// `None` (with the reason printed) where the filesystem of the
    /// temporary directory keeps no unwritten extents or does not map them.
    fn written_on_disk(dir: &Path, bytes: u64, options: &WalOptions) -> Option<Vec<std::ops::Range<u64>>> {
        let prepared = prepare_with(dir, &options.clone().segment_bytes(bytes), 0).unwrap();
        let extents = crate::sync::written_extents(&prepared.file);
        let _ = std::fs::remove_file(&prepared.tmp_path);
        extents
    }

    /// A new segment comes with zeros on disk where its policy's frames
    /// would otherwise convert preallocated extents: its first
    /// [`POPULATE_AHEAD`] bytes under `Interval`, all of it under `Always`,
    /// only the first page under `Never` or without `write_zeros`.
    #[test]
    fn the_preparation_writes_the_zeros_the_policy_needs() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = 4 * POPULATE_AHEAD as u64;
        let page = page_size() as u64;
        let off = WalOptions::default().write_zeros(false);
        let Some(probe) = written_on_disk(dir.path(), bytes, &off) else {
            eprintln!("SKIP: the temporary directory's filesystem does not map its extents (FIEMAP)");
            return;
        };
        if crate::sync::covers(&probe, page..bytes) {
            eprintln!("SKIP: the temporary directory's filesystem keeps no unwritten extents");
            return;
        }
        let only = |extents: &[std::ops::Range<u64>], end: u64| {
            crate::sync::covers(extents, 0..end) && extents.iter().all(|e| e.end <= end)
        };
        assert!(only(&probe, page), "write_zeros off: {probe:?}");
        let interval = written_on_disk(dir.path(), bytes, &WalOptions::default()).unwrap();
        assert!(only(&interval, POPULATE_AHEAD as u64), "Interval: {interval:?}");
        let always = written_on_disk(dir.path(), bytes, &WalOptions::default().sync(SyncPolicy::Always)).unwrap();
        assert!(only(&always, bytes), "Always: {always:?}");
        let never = written_on_disk(dir.path(), bytes, &WalOptions::default().sync(SyncPolicy::Never)).unwrap();
        assert!(only(&never, page), "Never: {never:?}");
    }

    /// Under `Interval` the sync thread's rounds write zeros ahead of a slow
    /// writer, past what the preparation wrote, and the frames read back
    /// as written.
    #[test]
    fn the_rounds_write_zeros_ahead_of_a_slow_writer() {
        use mdbus_types::{Heartbeat, Kind, RecordHeader};
        let dir = tempfile::tempdir().unwrap();
        let bytes = 4 * POPULATE_AHEAD as u64;
        // Only the rounds fault pages in ahead (not the whole segment, whose
        // dirty zeros the kernel's flusher could write instead).
        let options = WalOptions {
            prefault: false,
            ..WalOptions::default()
                .segment_bytes(bytes)
                .sync(SyncPolicy::Interval(std::time::Duration::from_millis(1)))
        };
        let mut wal = Wal::open(dir.path(), "z", options).unwrap();
        let file = File::open(wal.segment_path()).unwrap();
        if wal
            .live
            .map
            .advise_range(memmap2::Advice::PopulateWrite, 0, page_size())
            .is_err()
        {
            eprintln!("SKIP: no MADV_POPULATE_WRITE (Linux < 5.14): the rounds fault nothing in ahead");
            return;
        }
        let Some(at_open) = crate::sync::written_extents(&file) else {
            eprintln!("SKIP: the temporary directory's filesystem does not map its extents (FIEMAP)");
            return;
        };
        if crate::sync::covers(&at_open, POPULATE_AHEAD as u64..bytes) {
            eprintln!("SKIP: the temporary directory's filesystem keeps no unwritten extents");
            return;
        }
        // 1.5 MiB of heartbeats (24-byte frames): the rounds fault in up to
        // 5.5 MiB, and write the zeros from 4 MiB on.
        let mut seq = wal.next_seq();
        while wal.append_offset() < 3 << 19 {
            let mut sample = MdSample::from(Heartbeat {
                header: RecordHeader::new(Kind::Heartbeat, seq as i64),
            });
            sample.header_mut().seq = seq;
            wal.append(&sample).unwrap();
            seq += 1;
        }
        let last = seq - 1;
        // Past the preparation's zeros by at least a piece: the rounds'. A
        // watchdog well under the flusher's 30 s (which would write dirty
        // zeros by itself), and long for a loaded machine's rounds.
        let want = POPULATE_AHEAD as u64 + (1 << 20);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let extents = crate::sync::written_extents(&file).unwrap();
            if crate::sync::covers(&extents, 0..want) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "watchdog: no zeros written up to {want} in 15 s: {extents:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(wal);
        let mut reader = crate::WalReader::open(dir.path(), "z", crate::ReadOptions::default()).unwrap();
        let mut count = 0u64;
        while let Some(record) = reader.next_record().unwrap() {
            count += 1;
            assert_eq!(record.seq(), count);
        }
        assert_eq!(count, last);
    }

    /// The piece a next segment's zeros are written in: the largest power
    /// of two up to 64 KiB that the writer filled per sync interval, none
    /// below 16 KiB or where the options rule it out.
    #[test]
    fn the_fill_follows_the_writers_rate() {
        use std::time::Duration;
        let interval = WalOptions::default();
        let ms = Duration::from_millis;
        if 2 * page_size() > FILL_MAX {
            assert_eq!(interval.fill_for(1 << 30, ms(1)), 0, "pages too large to gain");
            assert_eq!(interval.recovered_fill(), 0);
            return;
        }
        if page_size() != 4096 {
            eprintln!("SKIP: the values below are for 4 KiB pages, not {}", page_size());
            return;
        }
        assert_eq!(interval.recovered_fill(), FILL_MAX);
        // 1 MiB in 16 ms: 128 KiB per 2 ms interval, capped.
        assert_eq!(interval.fill_for(1 << 20, ms(16)), FILL_MAX);
        // 40 KB per interval: 32 KiB.
        assert_eq!(interval.fill_for(20_000_000, Duration::from_secs(1)), 32 << 10);
        // 16 KiB exactly, and just under it.
        assert_eq!(interval.fill_for(16 << 10, ms(2)), 16 << 10);
        assert_eq!(interval.fill_for((16 << 10) - 8, ms(2)), 0);
        // A slow or quiet writer: single pages.
        assert_eq!(interval.fill_for(100_000, Duration::from_secs(1)), 0);
        assert_eq!(interval.fill_for(0, ms(1)), 0);
        // A longer interval has more written per round.
        let slow_rounds = WalOptions::default().sync(SyncPolicy::Interval(ms(8)));
        assert_eq!(slow_rounds.fill_for(20_000_000, Duration::from_secs(1)), FILL_MAX);
        // Never: as the default interval.
        let never = WalOptions::default().sync(SyncPolicy::Never);
        assert_eq!(never.fill_for(20_000_000, Duration::from_secs(1)), 32 << 10);
        // Ruled out: a sync per append writes a folio whole; and without
        // the options it builds on.
        for options in [
            WalOptions::default().sync(SyncPolicy::Always),
            WalOptions::default().large_folios(false),
            WalOptions::default().write_zeros(false),
            WalOptions {
                prefault: false,
                ..WalOptions::default()
            },
        ] {
            assert_eq!(options.fill_for(1 << 30, ms(1)), 0, "{options:?}");
            assert_eq!(options.recovered_fill(), 0, "{options:?}");
        }
    }

    /// The pages of `map` in the page cache (`mincore`), mapped or not.
    fn resident_pages(map: &MmapRaw) -> usize {
        let mut pages = vec![0u8; map.len().div_ceil(page_size())];
        // SAFETY: mincore of the live mapping `map` (page-aligned, its own
        // length), writing one byte per page into `pages`, which has that
        // many.
        let rc = unsafe { libc::mincore(map.as_mut_ptr().cast(), map.len(), pages.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        pages.iter().filter(|&&p| p & 1 == 1).count()
    }

    /// A segment prepared with a fill is in the page cache whole (where
    /// the zeros were written, not faulted in: only what its policy faults
    /// in is mapped), reads as zeros, and has on disk only the zeros its
    /// policy syncs; without a fill, under `Interval` on one CPU, nothing
    /// past what the preparation faulted in is cached.
    #[test]
    fn a_filled_segment_is_cached_whole_and_syncs_only_its_policys_zeros() {
        let cpu = mdbus_types::affinity::available_cpus()[0];
        mdbus_types::affinity::pin_current_thread(cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bytes = 4 * POPULATE_AHEAD as u64 + 4096;
        let page = page_size();
        let pages = (bytes as usize).div_ceil(page);
        // What this kernel and filesystem can show.
        let probe = prepare_segment(dir.path(), bytes, 0, 0, 0).unwrap();
        let advice_works = probe.map.advise_range(memmap2::Advice::PopulateWrite, 0, page).is_ok();
        let unwritten_extents = match crate::sync::written_extents(&probe.file) {
            None => false,
            Some(extents) => !crate::sync::covers(&extents, page as u64..bytes),
        };
        if !unwritten_extents {
            eprintln!(
                "SKIP extents: the temporary directory's filesystem keeps no unwritten extents, or does not map them"
            );
        }
        drop(probe);
        let unfilled = prepare_with(dir.path(), &WalOptions::default().segment_bytes(bytes), 0).unwrap();
        assert!(
            !advice_works || resident_pages(&unfilled.map) < pages,
            "without a fill the rounds fault in past the first {POPULATE_AHEAD} bytes: {} of {pages} pages cached",
            resident_pages(&unfilled.map)
        );
        drop(unfilled);
        for (options, what) in [
            (WalOptions::default(), "Interval"),
            (WalOptions::default().sync(SyncPolicy::Never), "Never"),
        ] {
            let prepared = prepare_with(dir.path(), &options.clone().segment_bytes(bytes), FILL_MAX).unwrap();
            assert_eq!(prepared.fill, FILL_MAX);
            assert_eq!(prepared.file.metadata().unwrap().len(), bytes, "{what}: size");
            assert_eq!(resident_pages(&prepared.map), pages, "{what}: the whole segment cached");
            let content = std::fs::read(&prepared.tmp_path).unwrap();
            assert_eq!(content.len() as u64, bytes, "{what}");
            assert!(content.iter().all(|&b| b == 0), "{what}: not all zeros");
            let mapped = mapped_pages(&prepared.map).iter().filter(|&&m| m).count();
            let want = if advice_works {
                options.prefault_len().min(bytes as usize).div_ceil(page)
            } else {
                pages
            };
            assert_eq!(mapped, want, "{what}: pages mapped");
            if unwritten_extents {
                let extents = crate::sync::written_extents(&prepared.file).unwrap();
                let synced = options.zero_len().max(page) as u64;
                assert!(crate::sync::covers(&extents, 0..synced), "{what}: {extents:?}");
                assert!(
                    extents.iter().all(|e| e.end <= synced),
                    "{what}: zeros past the first {synced} bytes on disk: {extents:?}"
                );
            }
            std::fs::remove_file(&prepared.tmp_path).unwrap();
        }
    }

    /// Records written into filled segments read back in order, after a
    /// reopen too, under each policy that fills. Every segment after the
    /// one live at open is filled whatever this machine's speed: the
    /// preparation at open is replaced as the probe's verdict for a fill
    /// replaces it, and each
    /// segment's clock is restarted just before the append that rolls
    /// (the rate rule is `the_fill_follows_the_writers_rate`, the probe
    /// `a_fast_writer_leaves_the_segment_live_at_open_early`).
    #[test]
    fn records_written_into_filled_segments_read_back() {
        for sync in [
            SyncPolicy::default(),
            SyncPolicy::Never,
            SyncPolicy::Interval(std::time::Duration::from_millis(1)),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let options = WalOptions::default().segment_bytes(1 << 20).sync(sync);
            let mut wal = Wal::open(dir.path(), "f", options.clone()).unwrap();
            // Prepared at open in single pages (no probe in 1 MiB
            // segments): replaced as a probe's verdict for a fill does.
            wal.wait_prepared();
            assert_eq!(wal.ready.as_ref().map(|p| p.fill), Some(0), "{sync:?}");
            assert_eq!(wal.probe, None, "{sync:?}");
            wal.fill = FILL_MAX;
            assert_eq!(wal.replace_prepared(), Some(Probe::Ending), "{sync:?}");
            let mut fills = Vec::new();
            let mut seq = wal.next_seq();
            let tick = probe_tick;
            // About 5.3 segments of 112-byte frames.
            while seq <= 50_000 {
                let sample = tick(seq);
                if wal.needs_roll(sample.record_bytes().unwrap().len()) {
                    wal.live.since = std::time::Instant::now();
                }
                if let AppendOutcome::NewSegment { .. } = wal.append(&sample).unwrap() {
                    fills.push(wal.live.fill);
                }
                seq += 1;
            }
            assert!(fills.len() >= 4, "{sync:?}: rolls {fills:?}");
            assert!(fills.iter().all(|&f| f == FILL_MAX), "{sync:?}: {fills:?}");
            wal.sync().unwrap();
            drop(wal);
            let read_all = || read_ticks(dir.path(), &format!("{sync:?}"));
            assert_eq!(read_all(), seq - 1, "{sync:?}");
            let mut wal = Wal::open(dir.path(), "f", options).unwrap();
            assert_eq!(wal.next_seq(), seq, "{sync:?}: reopened");
            wal.append(&tick(seq)).unwrap();
            drop(wal);
            assert_eq!(read_all(), seq, "{sync:?}: after the reopen");
        }
    }

    /// A tick with `seq`, as the probe tests append them.
    fn probe_tick(seq: u64) -> MdSample {
        use mdbus_types::{Kind, RecordHeader, Tick};
        let mut sample = MdSample::from(Tick {
            header: RecordHeader::new(Kind::Tick, seq as i64),
            ..Tick::default()
        });
        sample.header_mut().seq = seq;
        sample
    }

    /// Reads feed `f` under `dir` back: every record the [`probe_tick`] of
    /// the next seq from 1. How many there were.
    fn read_ticks(dir: &Path, what: &str) -> u64 {
        let mut reader = crate::WalReader::open(dir, "f", crate::ReadOptions::default()).unwrap();
        let mut count = 0u64;
        while let Some(record) = reader.next_record().unwrap() {
            count += 1;
            assert_eq!(record.seq(), count, "{what}");
            assert_eq!(
                record.record.as_bytes(),
                probe_tick(count).record_bytes().unwrap(),
                "{what}: seq {count}"
            );
        }
        count
    }

    /// Appends ticks until `done` holds (at most `most`, a test failure
    /// beyond), rolling first when [`Wal::needs_roll`] says so, as a
    /// publisher does; the seqs that went first into a new segment.
    fn append_until(wal: &mut Wal, most: usize, mut done: impl FnMut(&Wal) -> bool) -> Vec<u64> {
        let mut firsts = Vec::new();
        for _ in 0..most {
            if done(wal) {
                return firsts;
            }
            let sample = probe_tick(wal.next_seq());
            if wal.needs_roll(sample.record_bytes().unwrap().len()) {
                wal.roll().unwrap();
                firsts.push(wal.next_seq());
            }
            if let AppendOutcome::NewSegment { first_seq } = wal.append(&sample).unwrap() {
                firsts.push(first_seq);
            }
        }
        assert!(done(wal), "not done after {most} appends: {:?}", wal.probe);
        firsts
    }

    /// Where segments may be filled, the segment live at open has a rate
    /// probe; elsewhere it has none. Either way the next segment is
    /// prepared at open in single pages. A segment recovered at open with
    /// less than three quarters of its room left gets no probe, nor does a
    /// segment too small for the probe's checkpoints.
    #[test]
    fn the_segment_live_at_open_probes_the_writers_rate() {
        let base = WalOptions::default().segment_bytes(4 << 20);
        for options in [base.clone(), base.clone().sync(SyncPolicy::Never)] {
            let dir = tempfile::tempdir().unwrap();
            let mut wal = Wal::open(dir.path(), "f", options.clone()).unwrap();
            assert_eq!(wal.probe, Some(Probe::First));
            assert_eq!(wal.live.probe_at, wal.live.write_off);
            wal.wait_prepared();
            assert_eq!(wal.ready.as_ref().map(|p| p.fill), Some(0), "{options:?}");
            wal.append(&probe_tick(1)).unwrap();
            assert!(matches!(wal.probe, Some(Probe::Settling { .. })), "{:?}", wal.probe);
            assert_eq!(wal.live.probe_at, wal.live.write_off + PROBE_STRIDE);
        }
        for options in [
            base.clone().sync(SyncPolicy::Always),
            base.clone().large_folios(false),
            base.clone().write_zeros(false),
            base.clone().segment_bytes(PROBE_MIN_SEGMENT as u64 - 8),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut wal = Wal::open(dir.path(), "f", options.clone()).unwrap();
            assert_eq!(wal.probe, None, "{options:?}");
            assert_eq!(wal.live.probe_at, usize::MAX);
            wal.wait_prepared();
            assert_eq!(wal.ready.as_ref().map(|p| p.fill), Some(0), "{options:?}");
        }
        // Reopened three quarters full: no probe (none in the first run
        // either, whose rate this machine decides).
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), "f", base.clone()).unwrap();
        wal.probe = None;
        wal.live.probe_at = usize::MAX;
        append_until(&mut wal, 1 << 20, |w| w.live.write_off >= 3 << 20);
        assert_eq!(wal.live.first_seq, 1);
        drop(wal);
        let mut wal = Wal::open(dir.path(), "f", base).unwrap();
        assert_eq!(wal.probe, None);
        wal.wait_prepared();
        assert_eq!(wal.ready.as_ref().map(|p| p.fill), Some(0));
    }

    /// The probe on its own clock: after the settling intervals it
    /// measures the probe's bytes; a writer fast enough for a fill has the
    /// next segment prepared with it, and its segment ends at the first
    /// checkpoint after that preparation is done, well before it is full.
    /// The records read back across the early roll, after a reopen too. A
    /// writer that passes half the segment while settling gets its verdict
    /// there.
    #[test]
    fn a_fast_writer_leaves_the_segment_live_at_open_early() {
        for sync in [SyncPolicy::default(), SyncPolicy::Never] {
            let dir = tempfile::tempdir().unwrap();
            let options = WalOptions::default().segment_bytes(4 << 20).sync(sync);
            let window = options.probe_bytes();
            let settle = PROBE_SETTLE_INTERVALS * options.fill_interval().unwrap();
            let mut wal = Wal::open(dir.path(), "f", options.clone()).unwrap();
            // The preparation at open is done before the verdict, which
            // drops it at once (`the_preparation_at_open_is_replaced_once_done`).
            wal.wait_prepared();
            let t0 = std::time::Instant::now();
            wal.clock = Some(t0);
            wal.append(&probe_tick(1)).unwrap();
            assert_eq!(wal.probe, Some(Probe::Settling { at: t0 }));
            // Still settling while the clock stands.
            append_until(&mut wal, 1 << 20, |w| w.live.write_off >= HEADER_LEN + 2 * PROBE_STRIDE);
            assert!(matches!(wal.probe, Some(Probe::Settling { .. })), "{:?}", wal.probe);
            wal.clock = Some(t0 + settle);
            append_until(&mut wal, 1 << 20, |w| matches!(w.probe, Some(Probe::Measuring { .. })));
            let Some(Probe::Measuring { off: from, .. }) = wal.probe else {
                unreachable!()
            };
            // The window's bytes in the least time it takes: 64 KiB or more
            // per 2 ms.
            wal.clock = Some(t0 + 2 * settle);
            append_until(&mut wal, 1 << 20, |w| w.probe != wal_probe_measuring(w));
            assert_eq!(wal.probe, Some(Probe::Ending), "{sync:?}");
            assert!(wal.live.write_off - from >= window);
            assert_eq!(wal.fill, FILL_MAX, "{sync:?}");
            let full = wal.live.limit;
            // The end waits for the preparation.
            assert!(wal.prepared.is_some());
            wait_preparation_done(&wal, "the preparation");
            // At the next checkpoint `needs_roll` says to roll; appends
            // alone keep filling the segment.
            let mut appends = 0;
            while !wal.live.ends_early {
                assert!(appends <= PROBE_STRIDE, "no end after {appends} appends");
                let seq = wal.next_seq();
                assert_eq!(wal.append(&probe_tick(seq)).unwrap(), AppendOutcome::Appended);
                appends += 1;
            }
            assert!(wal.needs_roll(0));
            let seq = wal.next_seq();
            assert_eq!(wal.append(&probe_tick(seq)).unwrap(), AppendOutcome::Appended);
            assert_eq!(wal.live.first_seq, 1);
            let ended_at = wal.live.write_off;
            let firsts = append_until(&mut wal, 10, |w| w.live.first_seq > 1);
            assert_eq!(firsts, [seq + 1], "{sync:?}");
            assert_eq!(wal.live.fill, FILL_MAX, "{sync:?}");
            assert_eq!(wal.probe, None);
            assert_eq!(wal.live.probe_at, usize::MAX);
            assert!(!wal.live.ends_early);
            assert!(
                ended_at < full / 2,
                "{sync:?}: the first segment ended at {ended_at} of {full}"
            );
            let last = wal.next_seq() - 1;
            drop(wal);
            let read_all = || read_ticks(dir.path(), &format!("{sync:?}"));
            assert_eq!(read_all(), last, "{sync:?}");
            let mut wal = Wal::open(dir.path(), "f", options.clone()).unwrap();
            assert_eq!(wal.next_seq(), last + 1);
            wal.append(&probe_tick(last + 1)).unwrap();
            drop(wal);
            assert_eq!(read_all(), last + 1, "{sync:?}: after the reopen");
        }
        // Half the segment while the clock stands still in settling: the
        // probe ends there and the segment prepared at open stands (a
        // replacement might not be ready by the roll).
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), "f", WalOptions::default().segment_bytes(4 << 20)).unwrap();
        wal.wait_prepared();
        wal.clock = Some(std::time::Instant::now());
        append_until(&mut wal, 1 << 20, |w| w.probe.is_none());
        assert!(wal.live.write_off >= wal.live.limit / 2);
        assert!(!wal.live.ends_early);
        assert_eq!(wal.ready.as_ref().map(|p| p.fill), Some(0));
        let firsts = append_until(&mut wal, 1 << 20, |w| w.live.first_seq > 1);
        assert_eq!(firsts.len(), 1);
        assert_eq!(wal.live.fill, 0, "the segment prepared at open");
    }

    /// The probe's state while measuring (the same one, whatever it holds).
    fn wal_probe_measuring(wal: &Wal) -> Option<Probe> {
        match wal.probe {
            p @ Some(Probe::Measuring { .. }) => p,
            _ => None,
        }
    }

    /// A writer too slow for a fill keeps the segment live at open to its
    /// end, and the next segment is prepared in single pages once the probe
    /// has measured it.
    #[test]
    fn a_slow_writer_keeps_the_segment_live_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions::default().segment_bytes(4 << 20);
        let settle = PROBE_SETTLE_INTERVALS * options.fill_interval().unwrap();
        let mut wal = Wal::open(dir.path(), "f", options).unwrap();
        let t0 = std::time::Instant::now();
        wal.clock = Some(t0);
        wal.append(&probe_tick(1)).unwrap();
        wal.clock = Some(t0 + settle);
        append_until(&mut wal, 1 << 20, |w| matches!(w.probe, Some(Probe::Measuring { .. })));
        // The window's bytes in 10 s: ~26 KB/s.
        wal.clock = Some(t0 + settle + std::time::Duration::from_secs(10));
        append_until(&mut wal, 1 << 20, |w| !matches!(w.probe, Some(Probe::Measuring { .. })));
        assert_eq!(wal.probe, None);
        assert_eq!(wal.fill, 0);
        assert_eq!(wal.live.probe_at, usize::MAX);
        assert!(!wal.live.ends_early && !wal.needs_roll(0), "the segment keeps its room");
        wal.wait_prepared();
        assert_eq!(wal.ready.as_ref().map(|p| p.fill), Some(0));
    }

    /// Takes the finished preparation of the next segment and hands it
    /// back through a preparation that runs until the sender is used or
    /// dropped: a preparation as slow as a test needs.
    fn hold_preparation(wal: &mut Wal) -> std::sync::mpsc::Sender<()> {
        wal.wait_prepared();
        let prepared = wal.ready.take().expect("a prepared segment");
        let (release, held) = std::sync::mpsc::channel::<()>();
        wal.prepared = Some(std::thread::spawn(move || {
            let _ = held.recv();
            Ok(prepared)
        }));
        release
    }

    /// Waits until the running preparation of the next segment (`what`)
    /// has ended, under a 60 s watchdog (not a sleep).
    fn wait_preparation_done(wal: &Wal, what: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while wal.preparing() {
            assert!(
                std::time::Instant::now() < deadline,
                "watchdog: {what} did not end in 60 s"
            );
            std::thread::yield_now();
        }
    }

    /// Appends until the probe has its verdict: a fast writer's, on the
    /// probe's clock.
    fn fast_verdict(wal: &mut Wal) {
        let settle = PROBE_SETTLE_INTERVALS * wal.options.fill_interval().unwrap();
        let t0 = std::time::Instant::now();
        wal.clock = Some(t0);
        let seq = wal.next_seq();
        wal.append(&probe_tick(seq)).unwrap();
        wal.clock = Some(t0 + settle);
        append_until(wal, 1 << 20, |w| matches!(w.probe, Some(Probe::Measuring { .. })));
        wal.clock = Some(t0 + 2 * settle);
        append_until(wal, 1 << 20, |w| w.probe != wal_probe_measuring(w));
        assert_eq!(wal.fill, FILL_MAX);
    }

    /// A verdict for a fill while the preparation at open still runs waits
    /// for it (they share the temporary file): the probe checks again at
    /// each checkpoint, and once it is done, drops it and prepares the next
    /// segment with the fill, which the live segment then ends early for.
    #[test]
    fn the_preparation_at_open_is_replaced_once_done() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), "f", WalOptions::default().segment_bytes(4 << 20)).unwrap();
        let release = hold_preparation(&mut wal);
        fast_verdict(&mut wal);
        assert_eq!(wal.probe, Some(Probe::Replacing));
        let at = wal.live.write_off;
        append_until(&mut wal, 1 << 20, |w| w.live.write_off >= at + 2 * PROBE_STRIDE);
        assert_eq!(wal.probe, Some(Probe::Replacing), "still running");
        release.send(()).unwrap();
        wait_preparation_done(&wal, "the held preparation");
        append_until(&mut wal, 1 << 20, |w| w.probe == Some(Probe::Ending));
        assert!(wal.prepared.is_some(), "the filled preparation runs");
        // `wait_prepared` meanwhile (a publisher's) collects it: the end
        // early still comes, into the filled segment.
        wal.wait_prepared();
        assert_eq!(wal.ready.as_ref().map(|p| p.fill), Some(FILL_MAX));
        assert_early_end(&mut wal);
        let segments = list_segments(&dir.path().join("f")).unwrap();
        assert_eq!(segments.len(), 2, "{segments:?}");
    }

    /// A filled preparation that fails leaves the live segment to its end
    /// (the roll then retries the preparation on the appending thread).
    #[test]
    fn a_failed_preparation_does_not_end_the_segment_early() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), "f", WalOptions::default().segment_bytes(4 << 20)).unwrap();
        wal.wait_prepared();
        fast_verdict(&mut wal);
        assert_eq!(wal.probe, Some(Probe::Ending));
        if let Ok(Ok(p)) = wal.prepared.take().unwrap().join() {
            std::fs::remove_file(&p.tmp_path).unwrap();
        }
        wal.prepared = Some(std::thread::spawn(|| {
            Err(Error::Options("a failed preparation".into()))
        }));
        wait_preparation_done(&wal, "the failing preparation");
        let at = wal.live.write_off;
        append_until(&mut wal, 1 << 20, |w| w.probe.is_none());
        assert!(wal.live.write_off <= at + PROBE_STRIDE + 512, "at the next checkpoint");
        assert_eq!(wal.live.first_seq, 1);
        assert!(!wal.live.ends_early && !wal.needs_roll(0));
        assert!(wal.ready.is_none());
        // Full, the roll prepares the next segment itself.
        let firsts = append_until(&mut wal, 1 << 20, |w| w.live.first_seq > 1);
        assert_eq!(firsts.len(), 1);
    }

    /// An explicit roll before the verdict (a snapshot set's soon after
    /// open) finds the segment prepared at open ready, and the probe starts
    /// over in the new segment, whose verdict then decides as at open.
    #[test]
    fn a_roll_before_the_verdict_starts_the_probe_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), "f", WalOptions::default().segment_bytes(4 << 20)).unwrap();
        wal.wait_prepared();
        wal.append(&probe_tick(1)).unwrap();
        assert!(matches!(wal.probe, Some(Probe::Settling { .. })));
        wal.roll().unwrap();
        assert_eq!(wal.live.first_seq, 2);
        assert_eq!(wal.live.fill, 0, "the segment prepared at open");
        assert_eq!(wal.fill, 0);
        assert_eq!(wal.probe, Some(Probe::First));
        assert_eq!(wal.live.probe_at, wal.live.write_off);
        wal.wait_prepared();
        fast_verdict(&mut wal);
        assert_eq!(wal.probe, Some(Probe::Ending));
        wal.wait_prepared();
        assert_early_end(&mut wal);
    }

    /// Appends until the live segment ends early (a watchdog on the
    /// appends; its preparation is done), well before its half, and rolls
    /// into the filled segment as a publisher does.
    fn assert_early_end(wal: &mut Wal) {
        let first = wal.live.first_seq;
        append_until(wal, 1 << 20, |w| w.live.ends_early || w.live.first_seq != first);
        assert!(wal.live.ends_early, "the segment filled instead");
        assert_eq!(wal.live.first_seq, first);
        let ended_at = wal.live.write_off;
        assert!(ended_at < wal.live.limit / 2, "ended at {ended_at}");
        let firsts = append_until(wal, 10, |w| w.live.first_seq != first);
        assert_eq!(firsts.len(), 1);
        assert_eq!(wal.live.fill, FILL_MAX);
        assert!(!wal.live.ends_early);
    }
}
