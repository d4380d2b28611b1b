//! One validating pass over a segment: its frames, bad frames (with where
//! a plausible frame follows, if any), stray bytes after the live end,
//! the sparse index and the last complete snapshot set.

use std::fs::File;
use std::path::{Path, PathBuf};

use mdbus_types::{FLAG_RECOVERY_SNAPSHOT, Kind, RecordHeader};
use memmap2::{Mmap, UncheckedAdvice};

use crate::error::{Error, Result, io_err};
use crate::format::{
    BadFrame, FRAME_HEADER_LEN, Frame, HEADER_LEN, SegmentHeader, check_frame, find_resync, nonzero_extent,
};
use crate::index::SparseIndex;

/// A read-only map of a segment file with its checked header.
#[derive(Debug)]
pub(crate) struct MappedSegment {
    pub path: PathBuf,
    pub header: SegmentHeader,
    /// Opened by [`MappedSegment::open_lenient`] with a damaged header:
    /// what is wrong with it (`header` is then the stand-in from the
    /// file's name, size and folder).
    pub bad_header: Option<String>,
    map: Mmap,
    limit: usize,
}

impl MappedSegment {
    /// Maps `path` read-only and checks its header. Never writes.
    pub(crate) fn open(path: &Path) -> Result<MappedSegment> {
        let map = Self::map(path)?;
        let header = SegmentHeader::decode(&map).map_err(|reason| Error::BadHeader {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(Self::with_header(path, map, header, None))
    }

    /// [`MappedSegment::open`] for a reader that skips what is damaged: a
    /// bad header is replaced by what the file's name (`first_seq`), size
    /// and folder (`feed`) say, and reported in `bad_header`; its frames,
    /// which carry their own crc, are read as usual. A file whose name is
    /// not a segment's is still an error.
    pub(crate) fn open_lenient(path: &Path, feed: &str) -> Result<MappedSegment> {
        let map = Self::map(path)?;
        match SegmentHeader::decode(&map) {
            Ok(header) => Ok(Self::with_header(path, map, header, None)),
            Err(reason) => {
                let Some(first_seq) = crate::format::named_first_seq(path) else {
                    return Err(Error::BadHeader {
                        path: path.to_path_buf(),
                        reason,
                    });
                };
                let header = SegmentHeader::from_name(first_seq, map.len() as u64, feed);
                let reason = SegmentHeader::diagnose(&map, &header, reason);
                Ok(Self::with_header(path, map, header, Some(reason)))
            }
        }
    }

    fn map(path: &Path) -> Result<Mmap> {
        let file = File::open(path).map_err(io_err("open", path))?;
        // SAFETY: the map is read-only; the one writer only appends frames
        // beyond the live end (whose `len` is stored last, Release), and
        // segments are never truncated while mapped by our code. Bytes
        // past the live end may change under us; they are only read to
        // look for plausible frames and every frame is crc-checked.
        unsafe { Mmap::map(&file) }.map_err(io_err("map", path))
    }

    fn with_header(path: &Path, map: Mmap, header: SegmentHeader, bad_header: Option<String>) -> MappedSegment {
        let limit = map
            .len()
            .min(usize::try_from(header.segment_bytes).unwrap_or(usize::MAX));
        MappedSegment {
            path: path.to_path_buf(),
            header,
            bad_header,
            map,
            limit,
        }
    }

    /// The usable bytes: the file up to the header's `segment_bytes`.
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map[..self.limit]
    }

    /// Drops this process's mapping of the bytes `from..to` (both
    /// multiples of the page size; `to` within the map) with
    /// `MADV_DONTNEED`: their pages leave the process's RSS, while the
    /// bytes stay in the page cache and a later read faults the same
    /// pages in again. A reader calls it on what it has read, so that
    /// reading a 64 MiB segment does not keep 64 MiB of file pages in its
    /// RSS. Best effort: a refusal changes nothing.
    pub(crate) fn release(&self, from: usize, to: usize) {
        debug_assert!(from <= to && to <= self.map.len());
        if from < to {
            // SAFETY: `map` is a shared (MAP_SHARED), read-only map of the
            // file: MADV_DONTNEED only unmaps its pages from this process,
            // and the next access of those bytes maps the same page-cache
            // pages again, so any byte read later, through a borrow alive
            // now or not, is the file's byte as before (no zero-filled or
            // reverted pages, which only private and anonymous maps get).
            // The range lies within the map.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, from, to - from)
            };
        }
    }
}

/// A bad frame found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadSpot {
    /// Offset of the bad frame.
    pub off: usize,
    /// What is wrong.
    pub reason: BadFrame,
    /// Where the next plausible frame is (`None`: nothing crc-valid follows).
    pub resync: Option<usize>,
    /// End of the non-zero bytes from `off` (what a cut zeroes).
    pub nonzero_end: usize,
}

/// A complete snapshot set: `RECOVERY_SNAPSHOT` records closed by a
/// `RECOVERY_SNAPSHOT` heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSet {
    /// Seq of the set's first record (where recovery starts).
    pub first_seq: u64,
    /// Seq of the closing heartbeat.
    pub last_seq: u64,
}

/// The result of [`scan`].
#[derive(Debug, Clone, Default)]
pub(crate) struct SegmentScan {
    pub frames: u64,
    pub first: Option<Frame>,
    pub last: Option<Frame>,
    /// Highest seq among the valid frames (after resyncs too).
    pub max_seq: Option<u64>,
    /// Offset after the last valid frame of the scan (where an append goes
    /// when the segment is clean or only torn).
    pub end: usize,
    pub bad: Vec<BadSpot>,
    /// Non-zero bytes after the live end (`len` 0) with nothing plausible
    /// after them: `(from, to)`.
    pub stray: Option<(usize, usize)>,
    pub index: SparseIndex,
    pub snapshot_set: Option<SnapshotSet>,
}

impl SegmentScan {
    /// A bad frame followed by a crc-valid frame, or a crc-valid frame
    /// out of seq order: corruption.
    pub(crate) fn is_corrupt(&self) -> bool {
        self.bad.iter().any(|b| b.resync.is_some() || b.reason.is_crc_valid())
    }

    /// The torn tail, if the only problem is a bad last frame with
    /// nothing crc-valid after it.
    pub(crate) fn torn_tail(&self) -> Option<&BadSpot> {
        if self.is_corrupt() { None } else { self.bad.last() }
    }
}

/// Scans a whole segment. Never modifies it.
pub(crate) fn scan(bytes: &[u8], header: &SegmentHeader) -> SegmentScan {
    let mut out = SegmentScan {
        end: HEADER_LEN,
        ..SegmentScan::default()
    };
    let mut off = HEADER_LEN;
    let mut expected = Some(header.first_seq);
    let mut run_start: Option<u64> = None;
    loop {
        match check_frame(bytes, off, expected) {
            Ok(Some(frame)) => {
                let h = frame.header;
                out.frames += 1;
                out.first.get_or_insert(frame);
                out.last = Some(frame);
                out.max_seq = Some(out.max_seq.map_or(h.seq, |m| m.max(h.seq)));
                out.index.note(h.seq, h.ts_event, off as u64);
                if h.flags & FLAG_RECOVERY_SNAPSHOT != 0 {
                    let start = *run_start.get_or_insert(h.seq);
                    if closes_snapshot_set(&h) {
                        out.snapshot_set = Some(SnapshotSet {
                            first_seq: start,
                            last_seq: h.seq,
                        });
                        run_start = None;
                    }
                } else {
                    run_start = None;
                }
                off = frame.next_off();
                out.end = off;
                expected = Some(h.seq + 1);
            }
            Ok(None) => {
                // The live end. Anything plausible after it means a zeroed
                // `len` in the middle: corruption, not an end.
                if off + 8 > bytes.len() {
                    break;
                }
                match find_resync(bytes, off + 8) {
                    Some(r) => {
                        out.bad.push(BadSpot {
                            off,
                            reason: BadFrame::ZeroLen,
                            resync: Some(r),
                            nonzero_end: r,
                        });
                        off = r;
                        expected = None;
                        run_start = None;
                    }
                    None => {
                        if let Some(to) = nonzero_extent(bytes, off) {
                            out.stray = Some((off, to));
                        }
                        break;
                    }
                }
            }
            Err(reason) => {
                // A crc-valid frame with the wrong seq is kept: resync on it.
                let resync = if reason.is_crc_valid() {
                    Some(off)
                } else {
                    find_resync(bytes, off + 8)
                };
                let nonzero_end = nonzero_extent(bytes, off).unwrap_or(off);
                out.bad.push(BadSpot {
                    off,
                    reason: reason.clone(),
                    resync,
                    nonzero_end,
                });
                run_start = None;
                match resync {
                    Some(r) if r == off => {
                        // Accept the seq found; the frame itself is valid.
                        expected = None;
                    }
                    Some(r) => {
                        off = r;
                        expected = None;
                    }
                    None => break,
                }
            }
        }
    }
    out
}

/// A `RECOVERY_SNAPSHOT` heartbeat: it closes a snapshot set, whatever ran
/// before it (a lone one is the set of a WAL without instruments).
fn closes_snapshot_set(h: &RecordHeader) -> bool {
    h.flags & FLAG_RECOVERY_SNAPSHOT != 0 && h.kind == Kind::Heartbeat as u16
}

/// Whether the segment's frames, walked from the start, close a complete
/// snapshot set before they end: the first set settles it, so a segment
/// with its set near the start (a publisher writes one there in every
/// segment it rolls to) is read only that far. `false` at the live end
/// (`len` 0) or at the first bad frame, without looking past them as
/// [`scan`] does: a set behind a zeroed `len` or a resync is not seen here
/// (a caller that must not miss one falls back to [`scan`]). A `true` is
/// exact: [`scan`] finds that set too, or a later one of the same segment.
pub(crate) fn opens_with_snapshot_set(bytes: &[u8], header: &SegmentHeader) -> bool {
    let mut off = HEADER_LEN;
    let mut expected = header.first_seq;
    while let Ok(Some(frame)) = check_frame(bytes, off, Some(expected)) {
        let h = frame.header;
        if closes_snapshot_set(&h) {
            return true;
        }
        off = frame.next_off();
        expected = h.seq + 1;
    }
    false
}

/// A segment's sparse index built lazily: frames are walked (validated as
/// [`scan`] does) only as far as a seek needs, and the walk resumes where
/// it stopped on the next seek (a live segment keeps growing). A segment
/// with a bad frame falls back to a full [`scan`] on every extension, as
/// before.
#[derive(Debug, Clone)]
pub(crate) struct LazyIndex {
    index: SparseIndex,
    /// Offset of the next frame to walk.
    next_off: usize,
    /// Seq that frame must carry.
    next_seq: u64,
    /// Seq and time of the last frame walked.
    last: Option<(u64, i64)>,
    /// The walk met the end of a sealed segment (nothing more will come).
    ended: bool,
    /// A bad frame was met: `index` comes from a full scan.
    scanned: bool,
}

impl LazyIndex {
    pub(crate) fn new(header: &SegmentHeader) -> LazyIndex {
        LazyIndex {
            index: SparseIndex::default(),
            next_off: HEADER_LEN,
            next_seq: header.first_seq,
            last: None,
            ended: false,
            scanned: false,
        }
    }

    /// The index, walked until a frame for which `reached(seq, ts_event)`
    /// holds, or to the live end. `sealed`: a newer segment exists, so
    /// this one is complete (a `len` 0 followed by plausible frames is then
    /// corruption, and the full scan takes over).
    pub(crate) fn extend_until(
        &mut self,
        bytes: &[u8],
        header: &SegmentHeader,
        sealed: bool,
        mut reached: impl FnMut(u64, i64) -> bool,
    ) -> &SparseIndex {
        if self.scanned {
            if !self.ended {
                self.index = scan(bytes, header).index;
                self.ended = sealed;
            }
            return &self.index;
        }
        if self.ended || self.last.is_some_and(|(seq, ts)| reached(seq, ts)) {
            return &self.index;
        }
        loop {
            match check_frame(bytes, self.next_off, Some(self.next_seq)) {
                Ok(Some(frame)) => {
                    let h = frame.header;
                    self.index.note(h.seq, h.ts_event, self.next_off as u64);
                    self.next_off = frame.next_off();
                    self.next_seq = h.seq + 1;
                    self.last = Some((h.seq, h.ts_event));
                    if reached(h.seq, h.ts_event) {
                        break;
                    }
                }
                Ok(None) => {
                    if sealed {
                        if self.next_off + FRAME_HEADER_LEN <= bytes.len()
                            && find_resync(bytes, self.next_off + FRAME_HEADER_LEN).is_some()
                        {
                            self.scanned = true;
                            self.index = scan(bytes, header).index;
                        }
                        self.ended = true;
                    }
                    break;
                }
                Err(_) => {
                    self.scanned = true;
                    self.index = scan(bytes, header).index;
                    self.ended = sealed;
                    break;
                }
            }
        }
        &self.index
    }
}
