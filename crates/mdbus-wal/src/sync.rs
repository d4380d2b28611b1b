//! Group commit: a background thread that `msync`s the dirty range of
//! the live segment every interval (docs/spec.md's `SyncPolicy::Interval`).
//!
//! The writer publishes the end of what it wrote in `written` (one Release
//! store per append, nothing else); the thread flushes `[synced, written)`
//! of the current map (but the page the writer is filling, or the folio of
//! a segment cached in larger ones, only when the writer stayed in it for
//! a whole interval, see `Round::take`), and
//! whatever a roll left unsynced in retired maps. It never touches the
//! bytes. So a frame is on disk at most two intervals (plus the I/O) after
//! it was written.
//!
//! Before flushing, the thread unmaps (`MADV_DONTNEED`, see
//! [`release_pages`]) the writer's pages that lie wholly below `written`:
//! the writer never writes them again, and writeback of a page that is
//! still mapped writable must write-protect it, which costs a TLB
//! shoot-down IPI to the writer's CPU per page (and a write fault if the
//! writer touches it again). Unmapped, the pages are written back with no
//! interruption of the writer; their data stays in the page cache.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use memmap2::{MmapRaw, UncheckedAdvice};

use crate::error::Error;
use crate::format::HEADER_LEN;

/// The system page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf only reads a system value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|s| s.is_power_of_two())
        .unwrap_or(4096)
}

/// Drops the page table entries of `map` for the whole pages in
/// `[*released, end)` (rounded inwards to `page`), and advances `released`.
/// The data stays in the page cache (a shared file mapping: dirty bits move
/// to the page cache, nothing is discarded); a later access refaults it.
/// Only call for bytes the writer will not write again. Best effort: an
/// error leaves the pages mapped, which is only slower.
pub(crate) fn release_pages(map: &MmapRaw, released: &mut usize, end: usize, page: usize) {
    let from = released.next_multiple_of(page);
    let to = end.min(map.len()) & !(page - 1);
    if to > from {
        // SAFETY: `map` is a shared (MAP_SHARED) file mapping, so
        // MADV_DONTNEED only drops page table entries: dirty data moves to
        // the page cache and is written back as usual, and a later access
        // refaults the same bytes from the file. No reference into the
        // range is held: the writer only writes at or after `end`, which is
        // not below `to`, and readers use their own maps.
        let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, from, to - from) };
        *released = to;
    }
}

/// The most a round faults in again from the writer's page on, mapped
/// before or not (see [`populate_ahead`] and [`refault_len`]).
const REFAULT_NEAR: usize = 1 << 20;

/// The least a round faults in again from the writer's page on.
pub(crate) const REFAULT_MIN: usize = 64 << 10;

/// How far from the writer's page a round faults pages in again: twice
/// what the writer wrote since the last round (`written` against `before`,
/// the offset the last round saw), so that the pages it reaches by the next
/// round are covered unless its rate more than doubles, within
/// [`REFAULT_MIN`]..=[`REFAULT_NEAR`]. Each page mapped already still costs
/// a page-table walk: at 100 k records/s the walk of the whole
/// [`REFAULT_NEAR`] every round was about a sixth of the sync thread's CPU
/// time in `perf`. Measured with `append_tail` (the writer and the WAL's
/// threads on one core, 2026-12-03), the sync thread's CPU time went from
/// 98-109 to 77-87 ms per second at 100 k records/s (5 runs of each) and
/// from 89-92 to 65-72 at 10 k/s (3 runs), the writer's page faults
/// unchanged; at 1 M/s and above this is [`REFAULT_NEAR`] as before.
fn refault_len(written: usize, before: usize) -> usize {
    written
        .saturating_sub(before)
        .saturating_mul(2)
        .clamp(REFAULT_MIN, REFAULT_NEAR)
}

/// How far ahead of the writer the rounds keep the pages faulted in, each
/// page once per map past the ones walked every round ([`refault_len`]);
/// under `Interval` also what the preparation of a segment faults in, all
/// the writer has until the sync thread's next round. Rounds that follow a roll are the slowest (they
/// sync the retired segment's tail and the directory, and unmap the
/// retired map): measured at 1 M records/s here, one ran 25 ms, in which
/// the writer filled 3 MiB.
pub(crate) const POPULATE_AHEAD: usize = 4 << 20;

/// Faults pages in for writing, in this thread, ahead of the writer; returns
/// how far the map is now faulted in (`populated` is how far it was).
///
/// The page holding `written` and the `near` bytes after it
/// ([`refault_len`]) are faulted in every time: a round that synced the
/// block the writer is filling (a slow writer stays in it for more than a
/// round; the rest of a block is at most [`REFAULT_MIN`]) left it
/// write-protected, and the kernel's flusher may have
/// written back (write-protected) zero pages faulted in ahead of a slow
/// writer; either way the writer would take the write fault (measured at
/// 10 k records/s: about one per page). Pages already mapped writable cost a page-table
/// walk. Past that, up to [`POPULATE_AHEAD`], only the pages not yet faulted
/// in (from `populated` on), so the cost follows the write rate. Best
/// effort: a kernel without `MADV_POPULATE_WRITE` (before 5.14: EINVAL)
/// only leaves the faults to the writer. Never touches pages below the one
/// holding `written`, which `release_pages` may have unmapped.
fn populate_ahead(map: &MmapRaw, written: usize, page: usize, populated: usize, near: usize) -> usize {
    let from = written & !(page - 1);
    let near = (from + near).min(map.len());
    let far = (from + POPULATE_AHEAD).min(map.len());
    if near > from {
        let _ = map.advise_range(memmap2::Advice::PopulateWrite, from, near - from);
    }
    let rest = populated.max(near);
    if far > rest
        && map
            .advise_range(memmap2::Advice::PopulateWrite, rest, far - rest)
            .is_ok()
    {
        return far;
    }
    populated.max(near)
}

/// The least a round writes as zeros ahead of the writer (see
/// [`write_zeros_ahead`]): a larger piece means fewer extent conversions,
/// each of which makes the next `msync` write the inode (and, on a
/// journaled ext4, commit the journal).
const ZERO_PIECE: usize = 1 << 20;

/// Above this many bytes written between two rounds the rounds write no
/// zeros ahead (see [`write_zeros_ahead`]): that many bytes a round make
/// the round's fixed cost of an extent conversion small beside the cost of
/// writing every page twice. Measured at 1 M records/s (about 300 KB a
/// round) with zeros written regardless: the sync thread's CPU time
/// 229-240 -> 308-318 ms/s on ext4 without a journal, and 231-236 ->
/// 308-312 on a journaled one, whose commits fell only from 1054-1192 to
/// 412-434 in 5 s.
const ZERO_MAX_PROGRESS: usize = 256 << 10;

/// Writes the zero pages ahead of the writer to the disk, so that the
/// frames written there later land in blocks that are already *written*.
///
/// A segment is `fallocate`d: its blocks are reserved but "unwritten", and
/// every `msync` that writes frames into them splits that extent at the
/// writer's position and converts the written part, which makes the inode
/// dirty, so the sync writes the inode table block as well (ext4 without a
/// journal), or commits the journal (a journaled ext4: a second write and
/// a cache flush per round, and `page_mkwrite` in the writer may wait for
/// that commit). Zeros written once ahead of the writer, a
/// [`ZERO_PIECE`] at a time, turn that into one conversion per piece, and a
/// round that syncs frames into written blocks writes only the frames (and
/// the inode when `page_mkwrite` changed its mtime). Measured with
/// `append_tail` at 100 k records/s (README, WAL): on a journaled ext4,
/// journal commits 1639-1664 -> 55 in 5 s, disk requests -47 %, a round's
/// mean time 842-876 -> 445-474 us; XFS alike; on an ext4 without a
/// journal, as this project's machine's root, fewer inode writes and
/// shorter rounds, the sync thread's CPU time within the noise.
///
/// The pages written are those the rounds faulted in ahead of the writer
/// (dirty zero pages of the page cache), from `zeroed` (how far this has
/// gone) or past the pages walked again every round (`near` after the
/// writer's page), whichever is further, up to `populated`; the kernel
/// write-protects them, and the rounds' walk of the `near` pages faults
/// them in again before the writer gets there. Only while the writer wrote
/// at most [`ZERO_MAX_PROGRESS`] since the last round (`progress`): it
/// costs a second write of every page. The write is started, not waited
/// for (`sync_file_range(SYNC_FILE_RANGE_WRITE)`): the next round's frames
/// do not wait for the zeros' I/O; the extent is converted when it
/// completes. Returns the new `zeroed`. Best effort: an error here (the
/// disk's, which the frames' next sync reports) only leaves the
/// conversions to the rounds.
fn write_zeros_ahead(zero: ZeroAhead, map: &MmapRaw, file: &File, page: usize) -> usize {
    let ZeroAhead {
        written,
        near,
        populated,
        zeroed,
        progress,
        block,
    } = zero;
    if progress > ZERO_MAX_PROGRESS {
        return zeroed;
    }
    // Whole blocks: writeback of a folio that reached into the pages the
    // rounds walk would write-protect some of them.
    let from = zeroed.max((written & !(page - 1)) + near).next_multiple_of(block);
    let to = populated.min(map.len()) & !(block - 1);
    if to < from.saturating_add(ZERO_PIECE) {
        return zeroed;
    }
    if let (Ok(offset), Ok(len)) = (libc::off64_t::try_from(from), libc::off64_t::try_from(to - from)) {
        // SAFETY: sync_file_range on a valid descriptor owned by `file`; no
        // memory is passed. It starts the writeback of the range's dirty
        // pages (the zeros faulted in ahead of the writer) and returns.
        let _ = unsafe {
            libc::sync_file_range(
                std::os::fd::AsRawFd::as_raw_fd(file),
                offset,
                len,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
    }
    to
}

/// A round's zeros to write once its frames are synced (see
/// [`zero_round`]).
#[derive(Debug)]
struct ZeroJob {
    map: Arc<MmapRaw>,
    file: Arc<File>,
    zero: ZeroAhead,
}

/// Writes the zeros of `job` ahead of the writer ([`write_zeros_ahead`]),
/// outside the `flushing` lock, so a writer's `Wal::sync` does not wait for
/// it; returns how long it took, which the thread takes off its next wait
/// (the rounds keep their pace). Nothing when the writer moved to another
/// segment meanwhile.
fn zero_round(shared: &Shared, job: ZeroJob) -> Duration {
    let started = Instant::now();
    let zero = {
        let state = lock(&shared.state);
        if !Arc::ptr_eq(&state.current.map, &job.map) {
            return Duration::ZERO;
        }
        // Where the writer is now, not when the round started (a round
        // after a roll can take 25 ms): zeros start past the pages it
        // reaches next. Only a position is read (no bytes), and a switch
        // stores it under this lock: Relaxed.
        let written = shared.hot.written.load(Ordering::Relaxed).max(job.zero.written);
        ZeroAhead { written, ..job.zero }
    };
    let zeroed = write_zeros_ahead(zero, &job.map, &job.file, shared.page);
    if zeroed != zero.zeroed {
        let mut state = lock(&shared.state);
        if Arc::ptr_eq(&state.current.map, &job.map) {
            state.current.zeroed = state.current.zeroed.max(zeroed);
        }
    }
    started.elapsed()
}

/// What [`write_zeros_ahead`] needs of a round.
#[derive(Debug, Clone, Copy)]
struct ZeroAhead {
    /// The writer's offset.
    written: usize,
    /// The bytes after the writer's page walked again every round.
    near: usize,
    /// How far the rounds faulted the map in.
    populated: usize,
    /// How far zeros were written.
    zeroed: usize,
    /// Bytes written since the last round.
    progress: usize,
    /// See [`SegmentMap::block`].
    block: usize,
}

/// When appended records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Never sync: records survive a crash of the process (they are in the
    /// page cache) but not a power loss unless the kernel wrote them back.
    Never,
    /// Group commit: a background thread syncs what was written every
    /// interval (default 2 ms); a frame is on disk within two intervals plus
    /// the I/O time (the page the writer is filling waits one round; in a
    /// segment cached in larger folios, the folio, see
    /// [`WalOptions::large_folios`](crate::WalOptions::large_folios)).
    Interval(Duration),
    /// Sync every frame before `append` returns (one `msync` per record).
    Always,
}

impl SyncPolicy {
    /// The interval of the default group commit.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(2);
}

impl Default for SyncPolicy {
    fn default() -> SyncPolicy {
        SyncPolicy::Interval(SyncPolicy::DEFAULT_INTERVAL)
    }
}

/// Upper bounds (inclusive, ns) of the [`SyncStats`] buckets: 10 µs to
/// 1 s in 1-2.5-5 steps, then one bucket for anything slower.
const SYNC_BUCKET_BOUNDS_NS: [u64; 16] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// How long the group-commit thread's rounds took: a histogram of fixed
/// log-scale buckets, kept in atomics the thread adds to once per round
/// (never on the append path). [`Wal::sync_stats`](crate::Wal::sync_stats)
/// hands it out; [`SyncStats::snapshot`] reads it from any thread.
///
/// A round is counted when it had something to write: the dirty range of
/// the live segment, a retired segment's tail or a new directory entry
/// (`msync` of the range, then `fsync` of the directory). Rounds that
/// found nothing new are not counted. [`Wal::sync`](crate::Wal::sync)'s
/// flushes are counted too.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Total time of the counted rounds, ns.
    total_ns: AtomicU64,
    /// Rounds per bucket (not cumulative); the last one is above 1 s.
    buckets: [AtomicU64; SYNC_BUCKET_BOUNDS_NS.len() + 1],
}

/// A copy of [`SyncStats`] at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncTimes {
    /// Rounds counted.
    pub rounds: u64,
    /// Their total time, seconds.
    pub total_seconds: f64,
    /// `(upper bound in seconds, rounds that took at most that long)`,
    /// cumulative, bounds ascending; the last bound is `f64::INFINITY` and
    /// its count is `rounds`.
    pub buckets: Vec<(f64, u64)>,
}

impl SyncStats {
    /// Counts one round that took `took`.
    pub(crate) fn record(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = SYNC_BUCKET_BOUNDS_NS.partition_point(|&bound| bound < ns);
        // Independent counters: Relaxed (a reader may see a round's bucket
        // before its time, which a scrape tolerates).
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The counts now. `rounds` is the sum of the buckets read, so the
    /// cumulative counts always end at `rounds` (the total time may be one
    /// round ahead or behind under a concurrent round).
    pub fn snapshot(&self) -> SyncTimes {
        let mut cumulative = 0;
        let buckets: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, count)| {
                cumulative += count.load(Ordering::Relaxed);
                let bound = SYNC_BUCKET_BOUNDS_NS
                    .get(i)
                    .map_or(f64::INFINITY, |&ns| ns as f64 / 1e9);
                (bound, cumulative)
            })
            .collect();
        SyncTimes {
            rounds: cumulative,
            total_seconds: self.total_ns.load(Ordering::Relaxed) as f64 / 1e9,
            buckets,
        }
    }
}

/// A segment the sync thread is given: its file, the writer's map of it,
/// the end of what was written to it and how far zeros are on disk in it.
#[derive(Debug)]
pub(crate) struct SegmentMap {
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<File>,
    pub(crate) map: Arc<MmapRaw>,
    pub(crate) end: usize,
    /// See [`write_zeros_ahead`]; 0 for none.
    pub(crate) zeroed: usize,
    /// The unit the page cache writes back (a power of two, at least a
    /// page): the piece size of a segment whose zeros the preparation
    /// wrote in pieces (see
    /// [`WalOptions::large_folios`](crate::WalOptions::large_folios)), the
    /// largest piece for a segment recovered at open (a fast writer may
    /// have left it in such folios), else the page size. A round leaves
    /// the block the writer is filling for the next round.
    pub(crate) block: usize,
}

/// A map region still to sync.
#[derive(Debug)]
struct Dirty {
    path: PathBuf,
    file: Arc<File>,
    map: Arc<MmapRaw>,
    synced: usize,
    /// Pages below this are unmapped in the writer's map.
    released: usize,
    /// The block (its offset, see [`SegmentMap::block`]) the writer was
    /// filling at the last round, which that round left unsynced.
    deferred: Option<usize>,
    /// The rounds have faulted this map in for writing up to here (see
    /// [`populate_ahead`]).
    populated: usize,
    /// The writer's offset at the last round (see [`refault_len`]).
    seen: usize,
    /// Zeros were written up to here ahead of the writer, by the
    /// preparation of the segment or the rounds ([`write_zeros_ahead`]).
    zeroed: usize,
    /// See [`SegmentMap::block`].
    block: usize,
}

impl Dirty {
    fn new(segment: SegmentMap) -> Dirty {
        let SegmentMap {
            path,
            file,
            map,
            end,
            zeroed,
            block,
        } = segment;
        Dirty {
            path,
            file,
            map,
            synced: 0,
            // Recovery may have rewritten bytes up to `end`: leave those
            // pages alone, release only what is appended from now on.
            released: end,
            deferred: None,
            populated: 0,
            seen: end,
            zeroed,
            block,
        }
    }
}

#[derive(Debug)]
struct State {
    current: Dirty,
    /// Retired maps with the end of what was written to them.
    retired: Vec<(Dirty, usize)>,
    /// A directory whose new entry (a rolled segment's name) is not synced.
    dir: Option<PathBuf>,
    /// Number of [`SyncWorker::switch`]es so far: the generation of
    /// `current`.
    generation: u64,
    /// The newest generation whose map was flushed from offset 0, so its
    /// header is on disk. Equal to `generation` when the live segment's
    /// header is durable.
    header_durable: u64,
    stop: bool,
    error: Option<Error>,
}

/// The words the writer touches on every append, on their own cache line
/// (the sync thread's mutex and condvar live elsewhere).
#[derive(Debug)]
#[repr(align(128))]
struct HotWords {
    /// End offset of the last frame written to the current map.
    written: AtomicUsize,
    /// Set when `error` holds an error (checked on every append, cheaply).
    failed: AtomicBool,
}

#[derive(Debug)]
struct Shared {
    hot: HotWords,
    /// What to sync. Held only briefly, never during I/O, so that the
    /// writer's [`SyncWorker::switch`] at a roll never waits for the disk.
    state: Mutex<State>,
    /// Serialises the flushes (the thread's and [`SyncWorker::sync_now`]),
    /// held during the I/O.
    flushing: Mutex<()>,
    wake: Condvar,
    page: usize,
    /// Whether the rounds write zeros ahead of the writer.
    zero_ahead: bool,
    /// The rounds' times.
    stats: Arc<SyncStats>,
}

/// Handle of the group-commit thread.
#[derive(Debug)]
pub(crate) struct SyncWorker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn flush_map(path: &Path, map: &MmapRaw, from: usize, to: usize) -> Result<(), Error> {
    if to > from {
        map.flush_range(from, to - from).map_err(|source| Error::Sync {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// One round's work, taken out of the state lock by [`Round::take`] so that
/// the I/O runs without it.
struct Round {
    /// The current segment's path, file and map.
    path: PathBuf,
    file: Arc<File>,
    map: Arc<MmapRaw>,
    /// The current map is synced up to here before this round.
    synced: usize,
    /// Pages below this are already unmapped in the writer's map.
    released: usize,
    /// This round syncs the current map up to here.
    to: usize,
    /// The start of the block the writer is filling.
    block_start: usize,
    /// `block_start`, when this round leaves that block unsynced.
    deferred: Option<usize>,
    /// The writer's offset when the round was taken.
    written: usize,
    /// How far the rounds before this one faulted the map in.
    populated: usize,
    /// The bytes after the writer's page this round walks again
    /// ([`refault_len`]).
    near: usize,
    /// Where the zeros stand, for the job this round may hand on (its
    /// `populated` is filled in after the I/O).
    zero: ZeroAhead,
    /// Retired maps with the end of what was written to them.
    retired: Vec<(Dirty, usize)>,
    /// A directory whose new entry (a rolled segment's name) is not synced.
    dir: Option<PathBuf>,
    /// The generation of the current map.
    generation: u64,
}

impl Round {
    /// The round for a writer at `written`: everything when `everything`
    /// (a writer's `Wal::sync`, the last round), else all but the block
    /// (the page, or the folio of [`SegmentMap::block`]) the writer is
    /// filling (see below). Takes the retired maps and the directory to
    /// sync out of `state`.
    fn take(state: &mut State, written: usize, everything: bool) -> Round {
        let c = &state.current;
        // Not the block the writer is filling: writeback writes a folio
        // whole and write-protects it, and the writer's next store there
        // faults and waits for the folio lock (measured: most of the
        // appending thread's faults). It is synced once the writer has
        // left it, or at the next round if the writer is still in it then
        // (a slow writer: one fault costs it little), so a frame is on disk
        // within two intervals. The first round of a map syncs all (the
        // header, which the next roll needs).
        let block_start = written & !(c.block - 1);
        let to = if everything || c.synced < HEADER_LEN || c.deferred == Some(block_start) {
            written
        } else {
            block_start
        };
        let near = refault_len(written, c.seen);
        Round {
            path: c.path.clone(),
            file: Arc::clone(&c.file),
            map: Arc::clone(&c.map),
            synced: c.synced,
            released: c.released,
            to,
            block_start,
            deferred: (to < written).then_some(block_start),
            written,
            populated: c.populated,
            near,
            zero: ZeroAhead {
                written,
                near,
                populated: 0,
                zeroed: c.zeroed,
                progress: written.saturating_sub(c.seen),
                block: c.block,
            },
            retired: std::mem::take(&mut state.retired),
            dir: state.dir.take(),
            generation: state.generation,
        }
    }
}

/// Syncs everything written so far: the directory entry of a rolled
/// segment, retired maps to their ends, the current map to `written`.
/// The state lock is held only to take and to record the work. Returns the
/// zeros to write ahead of the writer next, if any (never for
/// `everything`: a writer's `Wal::sync`, or the last round).
fn flush_all(shared: &Shared, everything: bool) -> Option<ZeroJob> {
    let _flushing = lock(&shared.flushing);
    let Round {
        path,
        file,
        map,
        synced,
        mut released,
        to,
        block_start,
        deferred,
        written,
        populated,
        near,
        zero,
        retired,
        dir,
        generation,
    } = {
        let mut state = lock(&shared.state);
        // SYNC: pairs with the Release store in `SyncWorker::written` (and
        // `switch`, made under this lock): the frames below the loaded
        // offset are complete in the current map.
        let written = shared.hot.written.load(Ordering::Acquire);
        Round::take(&mut state, written, everything)
    };
    // Before the I/O, which may take long (a roll's round the longest).
    let mut populated = populate_ahead(&map, written, shared.page, populated, near);
    let started = (!retired.is_empty() || to > synced || dir.is_some()).then(Instant::now);
    let mut result = Ok(());
    for (d, end) in &retired {
        result = result.and(flush_map(&d.path, &d.map, d.synced, *end));
    }
    release_pages(&map, &mut released, to, shared.page);
    result = result.and(flush_map(&path, &map, synced, to));
    // The new segment's name last: once durable, it names a file whose
    // header and frames are on disk. (The writer renames before the header
    // is durable, so a journal commit may make the name durable first;
    // only the newest segment can be in that state, see
    // `SyncWorker::header_durable`, and the writer's open restores such a
    // header from the name.)
    if let Some(dir) = &dir {
        result = result.and(
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| Error::Sync {
                    path: dir.clone(),
                    source,
                }),
        );
    }
    if let Some(started) = started {
        shared.stats.record(started.elapsed());
    }
    if to > block_start {
        // This round synced the block the writer is filling
        // (write-protected).
        populated = populate_ahead(&map, written, shared.page, populated, near);
    }
    let job = (shared.zero_ahead && result.is_ok() && !everything).then(|| ZeroJob {
        map: Arc::clone(&map),
        file,
        zero: ZeroAhead { populated, ..zero },
    });
    // The retired maps are unmapped here, outside the state lock.
    drop(retired);
    let mut state = lock(&shared.state);
    match result {
        Ok(()) => {
            if Arc::ptr_eq(&state.current.map, &map) {
                state.current.synced = state.current.synced.max(to);
                state.current.released = state.current.released.max(released);
                state.current.deferred = deferred;
                state.current.populated = state.current.populated.max(populated);
                state.current.seen = state.current.seen.max(written);
            }
            // The map of `generation` is now flushed from offset 0 (its
            // first round has `synced` 0 and `to` = `written` >= HEADER_LEN,
            // a later one only repeats what an earlier success recorded):
            // its header is on disk.
            state.header_durable = state.header_durable.max(generation);
        }
        Err(e) => {
            if dir.is_some() && state.dir.is_none() {
                state.dir = dir;
            }
            state.error.get_or_insert(e);
            shared.hot.failed.store(true, Ordering::Relaxed);
        }
    }
    job
}

impl Shared {
    fn new(segment: SegmentMap, zero_ahead: bool) -> Shared {
        Shared {
            hot: HotWords {
                written: AtomicUsize::new(segment.end),
                failed: AtomicBool::new(false),
            },
            state: Mutex::new(State {
                current: Dirty::new(segment),
                retired: Vec::new(),
                dir: None,
                // The segment given at the start has a durable header
                // (recovered, or created with its header flushed).
                generation: 0,
                header_durable: 0,
                stop: false,
                error: None,
            }),
            flushing: Mutex::new(()),
            wake: Condvar::new(),
            page: page_size(),
            zero_ahead,
            stats: Arc::default(),
        }
    }
}

impl SyncWorker {
    /// Starts the thread for `segment` (the live one); the rounds write
    /// zeros ahead of the writer when `zero_ahead` (see
    /// [`write_zeros_ahead`]).
    pub(crate) fn start(segment: SegmentMap, zero_ahead: bool, every: Duration) -> std::io::Result<SyncWorker> {
        let shared = Arc::new(Shared::new(segment, zero_ahead));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("mdbus-wal-sync".into())
            .spawn(move || {
                let shared = thread_shared;
                loop {
                    // Read `stop` before the flush: the writer's last
                    // appends happen before it sets `stop`, so the flush
                    // after seeing it covers them.
                    let stop = lock(&shared.state).stop;
                    let zeros = flush_all(&shared, stop);
                    if stop {
                        break;
                    }
                    let spent = zeros.map_or(Duration::ZERO, |job| zero_round(&shared, job));
                    let state = lock(&shared.state);
                    if !state.stop {
                        drop(shared.wake.wait_timeout(state, every.saturating_sub(spent)));
                    }
                }
            })?;
        Ok(SyncWorker {
            shared,
            thread: Some(thread),
        })
    }

    /// The writer wrote frames up to `end` in the current map.
    #[inline]
    pub(crate) fn written(&self, end: usize) {
        // SYNC: pairs with the Acquire load in `flush_all`.
        self.shared.hot.written.store(end, Ordering::Release);
    }

    /// Whether the live segment's header is on disk (the thread flushed
    /// its map from offset 0 since the last [`SyncWorker::switch`]). The
    /// writer checks it before it names the next segment, and flushes the
    /// header itself when not (segments filled faster than the interval),
    /// so that at most the newest segment has a name but no durable header.
    pub(crate) fn header_durable(&self) -> bool {
        let state = lock(&self.shared.state);
        state.header_durable == state.generation
    }

    /// The writer moved to a new segment (named in directory `dir`, not
    /// yet synced) written up to its `end` (its header, not yet synced
    /// either): the thread syncs the old segment to its end, the new one
    /// from its header, then the directory, off the hot path. Never waits
    /// for I/O.
    pub(crate) fn switch(&self, dir: &Path, segment: SegmentMap) {
        let end = segment.end;
        let mut state = lock(&self.shared.state);
        state.generation += 1;
        // SYNC: pairs with the Release store in `written` (same thread,
        // but keeps the load/store pairing uniform).
        let old_end = self.shared.hot.written.load(Ordering::Acquire);
        let old = std::mem::replace(&mut state.current, Dirty::new(segment));
        state.retired.push((old, old_end));
        state.dir = Some(dir.to_path_buf());
        // SYNC: pairs with the Acquire load in `flush_all`, under the mutex.
        self.shared.hot.written.store(end, Ordering::Release);
    }

    /// The rounds' times.
    pub(crate) fn stats(&self) -> &Arc<SyncStats> {
        &self.shared.stats
    }

    /// A background sync error, once.
    #[inline]
    pub(crate) fn take_error(&self) -> Option<Error> {
        if !self.shared.hot.failed.load(Ordering::Relaxed) {
            return None;
        }
        self.shared.hot.failed.store(false, Ordering::Relaxed);
        lock(&self.shared.state).error.take()
    }

    /// Syncs everything now, in the caller's thread.
    pub(crate) fn sync_now(&self) -> Result<(), Error> {
        let _ = flush_all(&self.shared, true);
        self.shared.hot.failed.store(false, Ordering::Relaxed);
        lock(&self.shared.state).error.take().map_or(Ok(()), Err)
    }
}

impl Drop for SyncWorker {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Which pages of `map` its page table holds (`/proc/self/pagemap`, bit
/// 63 of each page's entry): the pages faulted in through this mapping,
/// whatever the page cache holds (a tmpfs file's pages are all there once
/// allocated).
#[cfg(test)]
pub(crate) fn mapped_pages(map: &MmapRaw) -> Vec<bool> {
    use std::os::unix::fs::FileExt;
    let page = page_size();
    let pages = map.len().div_ceil(page);
    let mut entries = vec![0u8; pages * 8];
    let pagemap = File::open("/proc/self/pagemap").expect("open /proc/self/pagemap");
    let offset = (map.as_ptr() as usize / page * 8) as u64;
    pagemap
        .read_exact_at(&mut entries, offset)
        .expect("read /proc/self/pagemap");
    entries
        .chunks_exact(8)
        .map(|e| u64::from_ne_bytes(e.try_into().expect("8 bytes")) >> 63 == 1)
        .collect()
}

/// The byte ranges of `file` that its filesystem holds as written blocks
/// (`FS_IOC_FIEMAP` without `FIEMAP_FLAG_SYNC`: as on disk now, dirty
/// pages not written first), or `None` where the filesystem does not say
/// (tmpfs, for one). Holes, preallocated ("unwritten") extents and dirty
/// pages not yet given blocks (delayed allocation) are left out.
#[cfg(test)]
pub(crate) fn written_extents(file: &File) -> Option<Vec<std::ops::Range<u64>>> {
    use std::os::fd::AsRawFd;
    /// `struct fiemap_extent` of linux/fiemap.h.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Extent {
        logical: u64,
        physical: u64,
        length: u64,
        reserved64: [u64; 2],
        flags: u32,
        reserved: [u32; 3],
    }
    const MAX_EXTENTS: usize = 256;
    /// `struct fiemap`, with room for `MAX_EXTENTS` extents after it.
    #[repr(C)]
    struct Fiemap {
        start: u64,
        length: u64,
        flags: u32,
        mapped_extents: u32,
        extent_count: u32,
        reserved: u32,
        extents: [Extent; MAX_EXTENTS],
    }
    // _IOWR('f', 11, struct fiemap): struct fiemap without the extents is
    // 32 bytes.
    const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
    const EXTENT_LAST: u32 = 0x1;
    const EXTENT_UNKNOWN: u32 = 0x2;
    const EXTENT_DELALLOC: u32 = 0x4;
    const EXTENT_UNWRITTEN: u32 = 0x800;
    const NONE: Extent = Extent {
        logical: 0,
        physical: 0,
        length: 0,
        reserved64: [0; 2],
        flags: 0,
        reserved: [0; 3],
    };
    let mut written = Vec::new();
    let mut start = 0u64;
    loop {
        let mut map = Box::new(Fiemap {
            start,
            length: u64::MAX - start,
            // No FIEMAP_FLAG_SYNC: as on disk now.
            flags: 0,
            mapped_extents: 0,
            extent_count: MAX_EXTENTS as u32,
            reserved: 0,
            extents: [NONE; MAX_EXTENTS],
        });
        // SAFETY: FS_IOC_FIEMAP reads the header of `map` and writes at
        // most `extent_count` extents into `map.extents`, which has room
        // for them; `map` outlives the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FIEMAP, &mut *map as *mut Fiemap) };
        if rc != 0 {
            return None;
        }
        let mapped = &map.extents[..(map.mapped_extents as usize).min(MAX_EXTENTS)];
        let mut last = mapped.is_empty();
        for e in mapped {
            if e.flags & (EXTENT_UNWRITTEN | EXTENT_DELALLOC | EXTENT_UNKNOWN) == 0 {
                written.push(e.logical..e.logical + e.length);
            }
            start = e.logical + e.length;
            last |= e.flags & EXTENT_LAST != 0;
        }
        if last {
            return Some(written);
        }
    }
}

/// Whether `extents` ([`written_extents`]) cover `range` whole.
#[cfg(test)]
pub(crate) fn covers(extents: &[std::ops::Range<u64>], range: std::ops::Range<u64>) -> bool {
    let mut at = range.start;
    for e in extents {
        if e.start <= at && e.end > at {
            at = e.end;
        }
    }
    at >= range.end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(dir: &Path, name: &str) -> (PathBuf, Arc<MmapRaw>) {
        map_of(dir, name, 1 << 16)
    }

    /// `map` of the file at `path`, written up to 128, no zeros on disk.
    fn segment(path: PathBuf, map: Arc<MmapRaw>) -> SegmentMap {
        SegmentMap {
            file: Arc::new(File::open(&path).unwrap()),
            path,
            map,
            end: 128,
            zeroed: 0,
            block: page_size(),
        }
    }

    /// A new, empty file for reading and writing.
    fn create(path: &Path) -> File {
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap()
    }

    /// A sparse file of `len` bytes, mapped.
    fn map_of(dir: &Path, name: &str, len: u64) -> (PathBuf, Arc<MmapRaw>) {
        let path = dir.join(name);
        let file = create(&path);
        file.set_len(len).unwrap();
        (
            path.clone(),
            Arc::new(memmap2::MmapOptions::new().map_raw(&file).unwrap()),
        )
    }

    /// After a switch the new segment's header is not known durable until
    /// a flush covered it: the roll after it flushes it itself otherwise.
    #[test]
    fn header_is_durable_only_after_a_flush_of_the_new_map() {
        let dir = tempfile::tempdir().unwrap();
        let (path, first) = map(dir.path(), "a");
        let worker = SyncWorker::start(segment(path, first), false, Duration::from_secs(3600)).unwrap();
        assert!(worker.header_durable());
        let (path, second) = map(dir.path(), "b");
        // The thread's first round may be running: holding `flushing` keeps
        // it from taking the new map before the check (a round that took
        // the old one records the old generation only).
        let flushing = lock(&worker.shared.flushing);
        worker.switch(dir.path(), segment(path, second));
        assert!(!worker.header_durable());
        drop(flushing);
        worker.sync_now().unwrap();
        assert!(worker.header_durable());
    }

    /// A round leaves the block the writer is filling (the page, or the
    /// folio of a filled segment) for the next round, which syncs it if the
    /// writer is still there; `sync_now` syncs all.
    #[test]
    fn the_block_being_filled_waits_one_round() {
        for block in [page_size(), 64 << 10] {
            let dir = tempfile::tempdir().unwrap();
            let (path, map) = map_of(dir.path(), "a", 4 * block as u64);
            // No thread: the rounds are these calls.
            let shared = &Shared::new(
                SegmentMap {
                    block,
                    ..segment(path, map)
                },
                false,
            );
            let synced = || lock(&shared.state).current.synced;
            let written = |end| shared.hot.written.store(end, Ordering::Relaxed);
            written(block + 40);
            flush_all(shared, false);
            assert_eq!(synced(), block + 40, "the first round of a map syncs all (its header)");
            // Pages into a folio: a page-sized round would sync up to the
            // writer's page, which writeback would write with the folio.
            let into = if block > page_size() { 2 * page_size() } else { 0 };
            written(2 * block + into + 40);
            flush_all(shared, false);
            assert_eq!(synced(), 2 * block, "block {block}: the block being filled is left");
            written(2 * block + into + 80);
            flush_all(shared, false);
            assert_eq!(
                synced(),
                2 * block + into + 80,
                "block {block}: still in it a round later: synced"
            );
            written(3 * block + 8);
            flush_all(shared, false);
            assert_eq!(synced(), 3 * block, "block {block}");
            flush_all(shared, true);
            assert_eq!(synced(), 3 * block + 8, "block {block}");
            let times = shared.stats.snapshot();
            assert_eq!(times.rounds, 5, "every round above had something to sync");
            flush_all(shared, false);
            assert_eq!(
                shared.stats.snapshot().rounds,
                5,
                "a round with nothing to sync is not counted"
            );
        }
    }

    /// The zeros ahead of the writer: written to the disk from past the
    /// pages walked every round (or from where the last piece ended) up to
    /// what the rounds faulted in, a whole [`ZERO_PIECE`] or nothing, and
    /// only while the writer is slow.
    #[test]
    fn zeros_go_to_the_disk_ahead_of_a_slow_writer_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = create(&dir.path().join("seg"));
        let len = 4 * POPULATE_AHEAD;
        // SAFETY: posix_fallocate on a valid descriptor owned by `file`.
        if unsafe { libc::posix_fallocate(std::os::fd::AsRawFd::as_raw_fd(&file), 0, len as libc::off_t) } != 0 {
            eprintln!("SKIP: the temporary directory's filesystem cannot preallocate");
            return;
        }
        let map = memmap2::MmapOptions::new().map_raw(&file).unwrap();
        // Single pages, as the writer's maps (a large folio goes out whole).
        map.advise(memmap2::Advice::Random).unwrap();
        if map
            .advise_range(memmap2::Advice::PopulateWrite, 0, page_size())
            .is_err()
        {
            eprintln!("SKIP: no MADV_POPULATE_WRITE (Linux < 5.14): the rounds fault nothing in ahead");
            return;
        }
        let Some(before) = written_extents(&file) else {
            eprintln!("SKIP: the temporary directory's filesystem does not map its extents (FIEMAP)");
            return;
        };
        if covers(&before, page_size() as u64..len as u64) {
            eprintln!("SKIP: the temporary directory's filesystem keeps no unwritten extents");
            return;
        }
        let page = page_size();
        let near = REFAULT_MIN;
        let written = 100 * page + 8;
        let populated = populate_ahead(&map, written, page, 0, near);
        assert_eq!(populated, 100 * page + POPULATE_AHEAD);
        let round = |zeroed, populated, progress| {
            let zero = ZeroAhead {
                written,
                near,
                populated,
                zeroed,
                progress,
                block: page,
            };
            write_zeros_ahead(zero, &map, &file, page)
        };
        // The zeros' write is started, not waited for: wait for every write
        // started on the file (and so its extents' conversion, which ext4
        // and XFS finish before the pages' writeback ends), start none,
        // then read the extents.
        let extents = || {
            // SAFETY: sync_file_range on a valid descriptor; no memory.
            let rc = unsafe {
                libc::sync_file_range(
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    0,
                    0,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE,
                )
            };
            assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
            written_extents(&file).unwrap()
        };
        // A fast writer: nothing written, whatever there is to write.
        assert_eq!(round(0, populated, ZERO_MAX_PROGRESS + 1), 0);
        // Less than a piece past the walked pages: nothing either.
        let from = 100 * page + near;
        assert_eq!(round(0, from + ZERO_PIECE - page, 0), 0);
        let last = populated - ZERO_PIECE + page;
        assert_eq!(round(last, populated, 0), last, "less than a piece after the last one");
        assert!(extents().is_empty(), "{:?}", extents());
        // A slow writer: a piece from past the walked pages to `populated`.
        assert_eq!(round(0, populated, ZERO_MAX_PROGRESS), populated);
        let extents_now = extents();
        assert!(covers(&extents_now, from as u64..populated as u64), "{extents_now:?}");
        assert!(
            extents_now
                .iter()
                .all(|e| e.start >= from as u64 && e.end <= populated as u64),
            "{extents_now:?}"
        );
        // The next piece starts where this one ended.
        let further = populate_ahead(&map, written + ZERO_PIECE, page, populated, near);
        assert_eq!(round(populated, further, 0), further);
        let extents_now = extents();
        assert!(covers(&extents_now, from as u64..further as u64), "{extents_now:?}");
        assert!(extents_now.iter().all(|e| e.start >= from as u64), "{extents_now:?}");
        // In a segment cached in 64 KiB folios, whole blocks only: from the
        // next block boundary on, up to the last one below `populated`.
        let block = 64 << 10;
        let start = (further + page).next_multiple_of(block);
        assert!(start > further + page, "the test needs an unaligned start");
        // Dirty zero pages from `further` on, as rounds would fault them in.
        let end = start + ZERO_PIECE + 3 * page;
        map.advise_range(memmap2::Advice::PopulateWrite, further, end - further)
            .unwrap();
        let zero = ZeroAhead {
            written,
            near,
            populated: end,
            zeroed: further + page,
            progress: 0,
            block,
        };
        assert_eq!(write_zeros_ahead(zero, &map, &file, page), start + ZERO_PIECE);
        let extents_now = extents();
        assert!(
            covers(&extents_now, start as u64..(start + ZERO_PIECE) as u64),
            "{extents_now:?}"
        );
        assert!(
            extents_now
                .iter()
                .all(|e| e.end <= further as u64 || e.start >= start as u64),
            "nothing between the last piece and the block boundary: {extents_now:?}"
        );
    }

    /// Each round faults in the page the writer is filling and the
    /// [`POPULATE_AHEAD`] bytes from there, none further (the preparation of
    /// an `Interval` segment faults only that much and counts on it); the
    /// [`refault_len`] bytes every round, the rest once.
    #[test]
    fn a_round_faults_in_the_pages_ahead_of_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (path, map) = map_of(dir.path(), "a", 4 * POPULATE_AHEAD as u64);
        let shared = &Shared::new(segment(path, Arc::clone(&map)), false);
        let page = shared.page;
        let ahead = POPULATE_AHEAD / page;
        assert!(
            mapped_pages(&map).iter().all(|m| !m),
            "nothing is mapped before a round"
        );
        if map.advise_range(memmap2::Advice::PopulateWrite, 0, page).is_err() {
            // No MADV_POPULATE_WRITE: the rounds fault nothing in.
            flush_all(shared, false);
            assert_eq!(mapped_pages(&map).iter().filter(|&&m| m).count(), 1);
            return;
        }
        let mapped_from = |first: usize| {
            let mapped = mapped_pages(&map);
            let wrong: Vec<usize> = (first..mapped.len())
                .filter(|&p| mapped[p] != (p < first + ahead))
                .collect();
            assert!(wrong.is_empty(), "pages from {first} mapped wrongly: {wrong:?}");
        };
        shared.hot.written.store(3 * page + 40, Ordering::Relaxed);
        flush_all(shared, false);
        mapped_from(3);
        shared.hot.written.store(2 * POPULATE_AHEAD + 8, Ordering::Relaxed);
        flush_all(shared, false);
        mapped_from(2 * ahead);
        // Unmaps pages ahead of the writer, runs a round with the writer
        // `moved` bytes further, and returns which of them are mapped again.
        let round = |moved: usize, ahead_of_writer: &[usize]| -> Vec<bool> {
            let written = shared.hot.written.load(Ordering::Relaxed) + moved;
            let from = written / page;
            for p in ahead_of_writer {
                // SAFETY: a shared file mapping: MADV_DONTNEED drops the
                // page table entry only (the data stays in the file);
                // nothing here holds a reference into the page.
                unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, (from + p) * page, page) }.unwrap();
            }
            shared.hot.written.store(written, Ordering::Relaxed);
            flush_all(shared, false);
            let mapped = mapped_pages(&map);
            ahead_of_writer.iter().map(|p| mapped[from + p]).collect()
        };
        // 300 KiB since the last round: the 600 KiB ahead are walked again,
        // the pages past them (faulted in by earlier rounds) are not.
        let (in_600k, past_600k) = (500 * 1024 / page, 700 * 1024 / page);
        assert_eq!(round(300 << 10, &[0, in_600k, past_600k]), [true, true, false]);
        // The writer moved by 8 bytes: the least, REFAULT_MIN, is walked.
        let (in_min, past_min) = (REFAULT_MIN / page - 1, REFAULT_MIN / page + 1);
        assert_eq!(round(8, &[0, in_min, past_min]), [true, true, false]);
        // A fast writer: at most REFAULT_NEAR.
        let (in_near, past_near) = (REFAULT_NEAR / page - 1, REFAULT_NEAR / page + 1);
        assert_eq!(round(2 << 20, &[in_near, past_near]), [true, false]);
    }

    #[test]
    fn the_pages_walked_again_follow_the_writers_pace() {
        assert_eq!(refault_len(1000, 1000), REFAULT_MIN, "a writer that stopped");
        assert_eq!(
            refault_len(100 << 10, 0),
            200 << 10,
            "twice the bytes since the last round"
        );
        assert_eq!(refault_len(usize::MAX, 0), REFAULT_NEAR, "at most");
        assert_eq!(refault_len(0, 4096), REFAULT_MIN, "a new map (offsets restart)");
    }

    #[test]
    fn sync_times_fall_in_cumulative_log_buckets() {
        let stats = SyncStats::default();
        assert_eq!(stats.snapshot().rounds, 0);
        for micros in [3, 10, 11, 700, 700, 2_000_000] {
            stats.record(Duration::from_micros(micros));
        }
        let times = stats.snapshot();
        assert_eq!(times.rounds, 6);
        assert!((times.total_seconds - 2.001424).abs() < 1e-9, "{}", times.total_seconds);
        assert_eq!(times.buckets.len(), SYNC_BUCKET_BOUNDS_NS.len() + 1);
        let count_at = |bound: f64| times.buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        // 3 µs and exactly 10 µs are in `le="1e-5"` (bounds are inclusive).
        assert_eq!(count_at(10e-6), 2);
        assert_eq!(count_at(25e-6), 3);
        assert_eq!(count_at(500e-6), 3);
        assert_eq!(count_at(1e-3), 5);
        assert_eq!(count_at(1.0), 5);
        assert_eq!(times.buckets.last(), Some(&(f64::INFINITY, 6)));
        assert!(times.buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }
}
