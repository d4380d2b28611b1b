//! Readers: replay from a seq, a time or the recovery point, and tail a
//! live writer across segment rolls. Read-only maps; never modify a file.
//!
//! Length (~700 lines): the reader's hot path (`fast_frame`) and its slow
//! path share the cursor; the frame check is still written twice (here and
//! `format::check_frame`): merging them measured 20-45 % slower replay, so
//! they stay apart.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mdbus_types::{BookDelta, BookSnapshot, Heartbeat, Kind, RecordHeader, RecordRef, SeqRange, Tick};

use crate::error::{Error, Result};
use crate::format::{
    FRAME_HEADER_LEN, HEADER_LEN, check_frame, crc32c_record, find_resync, has_crc32_instruction, list_segments,
    load_len, validate_feed,
};
use crate::index::IndexEntry;
use crate::scan::{LazyIndex, MappedSegment};
use crate::verify::recovery_point;

/// Where a [`WalReader`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFrom {
    /// The first record of the oldest segment.
    #[default]
    Start,
    /// The record with this seq (or the first one after it).
    Seq(u64),
    /// The first record whose `ts_event` is at or after this (ns since
    /// Unix epoch); assumes `ts_event` does not decrease along the feed.
    Time(i64),
    /// The first record of the newest full snapshot set (the start when
    /// no segment holds one).
    RecoveryPoint,
}

/// How a [`WalReader`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOptions {
    /// Where to start.
    pub from: ReadFrom,
    /// On a bad frame, resync at the next plausible frame and report the
    /// skipped range ([`ReadEvent::Skipped`]) instead of stopping with an
    /// error.
    pub skip_corrupt: bool,
}

/// A byte range a skip-corrupt reader jumped over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRange {
    /// The segment file.
    pub path: PathBuf,
    /// First skipped byte (the bad frame's offset).
    pub from: u64,
    /// Where reading resumed (exclusive end of the skipped bytes).
    pub to: u64,
    /// The seqs lost, when known.
    pub seq_hole: Option<SeqRange>,
    /// What was wrong at `from`.
    pub reason: String,
}

impl fmt::Display for SkippedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: skipped bytes {}..{} ({})",
            self.path.display(),
            self.from,
            self.to,
            self.reason
        )?;
        match self.seq_hole {
            Some(hole) if hole.len() == 1 => write!(f, "; seq {} lost", hole.from),
            Some(hole) => write!(f, "; seq {hole} lost"),
            None => Ok(()),
        }
    }
}

/// One record read zero-copy from a segment map (validated: crc, rkyv
/// checked access, kind and length).
#[derive(Debug, Clone, Copy)]
pub struct WalRecord<'a> {
    /// The typed view of the frame's payload, in the map.
    pub record: RecordRef<'a>,
    /// The segment file.
    pub path: &'a Path,
    /// Byte offset of the frame in the file.
    pub offset: u64,
}

impl<'a> WalRecord<'a> {
    /// The record's header.
    #[inline]
    pub fn header(&self) -> &'a RecordHeader {
        self.record.header()
    }

    /// The record's seq.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.record.header().seq
    }
}

/// What [`WalReader::next_event`] yields.
#[derive(Debug, Clone)]
pub enum ReadEvent<'a> {
    /// A valid record.
    Record(WalRecord<'a>),
    /// Bytes skipped over a bad frame (skip-corrupt only).
    Skipped(SkippedRange),
}

#[derive(Debug)]
struct Cursor {
    segment: Arc<MappedSegment>,
    off: usize,
    /// The seq the next frame must carry (`None` right after a resync).
    expected: Option<u64>,
    last_seq: Option<u64>,
    /// The bytes before this are released from the process's RSS
    /// ([`Cursor::release_read`]); a multiple of [`RELEASE_STEP`].
    released: usize,
}

/// How many bytes a reader reads in a segment between two releases of
/// what it has read (`MADV_DONTNEED`, [`MappedSegment::release`]): a
/// multiple of any page size, few enough calls to cost nothing
/// measurable, few enough bytes that a segment's read part does not
/// count much in RSS.
const RELEASE_STEP: usize = 4 << 20;

impl Cursor {
    fn at_start(segment: Arc<MappedSegment>) -> Cursor {
        let first = segment.header.first_seq;
        Cursor {
            segment,
            off: HEADER_LEN,
            expected: Some(first),
            last_seq: first.checked_sub(1),
            released: 0,
        }
    }

    /// Releases the pages of the segment the cursor has read past, once
    /// [`RELEASE_STEP`] more bytes have been read (one compare otherwise).
    #[inline(always)]
    fn release_read(&mut self) {
        if self.off >= self.released + RELEASE_STEP {
            self.release_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn release_slow(&mut self) {
        // `off` never passes the end of the usable bytes (within the map).
        let to = self.off.min(self.segment.bytes().len()) / RELEASE_STEP * RELEASE_STEP;
        if to > self.released {
            self.segment.release(self.released, to);
            self.released = to;
        }
    }

    /// At the index entry `floor`, or the segment's start without one.
    fn at(segment: Arc<MappedSegment>, floor: Option<IndexEntry>) -> Cursor {
        let mut cursor = Cursor::at_start(segment);
        if let Some(entry) = floor {
            cursor.off = entry.offset as usize;
            cursor.expected = Some(entry.seq);
            cursor.last_seq = entry.seq.checked_sub(1);
        }
        cursor
    }
}

/// Reads the records of one feed in seq order, across segments, and
/// follows a live writer: [`WalReader::next_event`] returns `Ok(None)` at
/// the live end; call it again later. Works from any process (read-only
/// maps, no lock).
#[derive(Debug)]
pub struct WalReader {
    feed_dir: PathBuf,
    feed: String,
    skip_corrupt: bool,
    /// A damaged segment header the cursor just moved past (skip-corrupt),
    /// reported before the segment's first record.
    header_skip: Option<SkippedRange>,
    cursor: Option<Cursor>,
    /// Records below this seq are passed over (after a seek).
    min_seq: u64,
    /// Records before this time are passed over until one is yielded.
    min_ts: Option<i64>,
    /// Segments a seek opened, with their lazily built sparse index and
    /// first time, kept for later seeks (at most [`MAX_CACHED`]; entries
    /// whose file is gone or replaced are dropped at the next seek).
    cache: Vec<CachedSegment>,
}

/// Segment maps a reader keeps for seeks.
const MAX_CACHED: usize = 4;

/// A segment a seek opened.
#[derive(Debug)]
struct CachedSegment {
    first_seq: u64,
    /// `(dev, ino)` of the file mapped: a file replaced under the same
    /// name is opened again.
    file_id: (u64, u64),
    segment: Arc<MappedSegment>,
    /// `ts_event` of the first frame, once there is one.
    first_ts: Option<i64>,
    index: LazyIndex,
}

impl WalReader {
    /// A reader of `feed` under `dir` (segments in `<dir>/<feed>/`). A feed
    /// without segments yet is fine: the reader waits for the first one.
    pub fn open(dir: impl AsRef<Path>, feed: &str, options: ReadOptions) -> Result<WalReader> {
        validate_feed(feed)?;
        let feed_dir = dir.as_ref().join(feed);
        mdbus_types::access::check_access(feed, &feed_dir)?;
        let mut reader = WalReader {
            feed_dir,
            feed: feed.to_string(),
            skip_corrupt: options.skip_corrupt,
            header_skip: None,
            cursor: None,
            min_seq: 0,
            min_ts: None,
            cache: Vec::new(),
        };
        match options.from {
            ReadFrom::Start => {}
            ReadFrom::Seq(seq) => reader.seek_seq(seq)?,
            ReadFrom::Time(ts) => reader.seek_time(ts)?,
            ReadFrom::RecoveryPoint => {
                if let Some(point) = recovery_point(dir.as_ref(), feed)? {
                    reader.seek_seq(point.start_seq())?;
                }
            }
        }
        Ok(reader)
    }

    /// The seq the next record should carry, once known.
    pub fn next_seq(&self) -> Option<u64> {
        self.cursor.as_ref().and_then(|c| c.expected)
    }

    /// The segment and byte offset the reader is at.
    pub fn position(&self) -> Option<(&Path, u64)> {
        self.cursor.as_ref().map(|c| (c.segment.path.as_path(), c.off as u64))
    }

    /// Positions the reader at the record with `seq` (or the first after
    /// it): the segment by its file name (binary search), then the frame
    /// by the segment's sparse index (binary search) and a few steps.
    pub fn seek_seq(&mut self, seq: u64) -> Result<()> {
        let segments = self.list_and_prune()?;
        self.min_seq = seq;
        self.min_ts = None;
        let i = segments.partition_point(|(first, _)| *first <= seq).saturating_sub(1);
        let Some((first, path)) = segments.get(i) else {
            self.cursor = None;
            return Ok(());
        };
        let sealed = i + 1 < segments.len();
        let k = self.cached(*first, path)?;
        let entry = &mut self.cache[k];
        let segment = Arc::clone(&entry.segment);
        let floor = entry
            .index
            .extend_until(segment.bytes(), &segment.header, sealed, |s, _| s >= seq)
            .floor_seq(seq);
        self.place(Cursor::at(segment, floor));
        Ok(())
    }

    /// Positions the reader at the first record whose `ts_event >= ts`:
    /// the segment by the time of its first frame (binary search), then
    /// the frame by the sparse index.
    pub fn seek_time(&mut self, ts: i64) -> Result<()> {
        let segments = self.list_and_prune()?;
        // Segments whose first record is before `ts` form a prefix.
        let i = segments
            .partition_point(|(first, path)| self.first_ts(*first, path).is_some_and(|t| t < ts))
            .saturating_sub(1);
        self.min_seq = 0;
        self.min_ts = Some(ts);
        let Some((first, path)) = segments.get(i) else {
            self.cursor = None;
            return Ok(());
        };
        let sealed = i + 1 < segments.len();
        let k = self.cached(*first, path)?;
        let entry = &mut self.cache[k];
        let segment = Arc::clone(&entry.segment);
        let floor = entry
            .index
            .extend_until(segment.bytes(), &segment.header, sealed, |_, t| t >= ts)
            .floor_time(ts);
        self.place(Cursor::at(segment, floor));
        Ok(())
    }

    /// The feed's segments; drops cached segments no longer listed.
    fn list_and_prune(&mut self) -> Result<Vec<(u64, PathBuf)>> {
        let segments = list_segments(&self.feed_dir)?;
        self.cache
            .retain(|c| segments.binary_search_by_key(&c.first_seq, |(first, _)| *first).is_ok());
        Ok(segments)
    }

    /// The cache slot of the segment `first_seq` at `path`, opened (and
    /// cached) if it is not there or its file was replaced.
    fn cached(&mut self, first_seq: u64, path: &Path) -> Result<usize> {
        let meta = std::fs::metadata(path).map_err(crate::error::io_err("stat", path))?;
        let file_id = (meta.dev(), meta.ino());
        if let Some(k) = self.cache.iter().position(|c| c.first_seq == first_seq) {
            if self.cache[k].file_id == file_id {
                return Ok(k);
            }
            self.cache.remove(k);
        }
        let segment = Arc::new(self.open_segment(path)?);
        if self.cache.len() >= MAX_CACHED {
            self.cache.remove(0);
        }
        self.cache.push(CachedSegment {
            first_seq,
            file_id,
            index: LazyIndex::new(&segment.header),
            segment,
            first_ts: None,
        });
        Ok(self.cache.len() - 1)
    }

    /// `ts_event` of the first frame of a segment (`None`: none yet, or
    /// the segment cannot be read).
    fn first_ts(&mut self, first_seq: u64, path: &Path) -> Option<i64> {
        let k = self.cached(first_seq, path).ok()?;
        let entry = &mut self.cache[k];
        if entry.first_ts.is_none() {
            entry.first_ts = check_frame(entry.segment.bytes(), HEADER_LEN, None)
                .ok()
                .flatten()
                .map(|f| f.header.ts_event);
        }
        entry.first_ts
    }

    /// The segment after the one the cursor is in, if the writer made one.
    fn next_segment(&self, after_first_seq: u64) -> Result<Option<PathBuf>> {
        let segments = list_segments(&self.feed_dir)?;
        Ok(segments
            .into_iter()
            .find(|(first, _)| *first > after_first_seq)
            .map(|(_, p)| p))
    }

    /// Maps a segment: strictly (a bad header is an error naming the file
    /// and what is wrong), or with skip-corrupt leniently (a bad header
    /// replaced by what the file's name, size and folder say: its frames
    /// carry their own crc and are read as usual).
    fn open_segment(&self, path: &Path) -> Result<MappedSegment> {
        if self.skip_corrupt {
            MappedSegment::open_lenient(path, &self.feed)
        } else {
            MappedSegment::open(path)
        }
    }

    /// Puts the cursor at `cursor`; a segment opened with a bad header is
    /// reported (as a skipped header) before its first record.
    fn place(&mut self, cursor: Cursor) {
        if let Some(reason) = &cursor.segment.bad_header {
            self.header_skip = Some(SkippedRange {
                path: cursor.segment.path.clone(),
                from: 0,
                to: HEADER_LEN as u64,
                seq_hole: None,
                reason: format!("bad segment header ({reason}); its frames are read by the first seq of its name"),
            });
        }
        self.cursor = Some(cursor);
    }

    /// Moves to `path`; a seq that does not follow is an error (or a
    /// skipped range with skip-corrupt).
    fn enter(&mut self, path: &Path) -> Result<Option<SkippedRange>> {
        let segment = Arc::new(self.open_segment(path)?);
        let first = segment.header.first_seq;
        let prev = self.cursor.as_ref().and_then(|c| c.last_seq);
        self.place(Cursor::at_start(segment));
        match prev {
            Some(prev) if prev + 1 != first && first > self.min_seq => {
                let reason = format!("segment starts at seq {first}, expected seq {}", prev + 1);
                if !self.skip_corrupt {
                    return Err(Error::Corrupt {
                        path: path.to_path_buf(),
                        offset: HEADER_LEN as u64,
                        reason,
                    });
                }
                Ok(Some(SkippedRange {
                    path: path.to_path_buf(),
                    from: HEADER_LEN as u64,
                    to: HEADER_LEN as u64,
                    seq_hole: SeqRange::between(prev, first),
                    reason,
                }))
            }
            _ => Ok(None),
        }
    }

    /// A run of up to `max` records for a catch-up: `apply` is called on
    /// each record that follows the cursor densely (the seq
    /// [`WalReader::next_seq`] gave, then each next), checked as
    /// `next_event` checks it, and the number of records is returned. The
    /// run ends early, before the frame, at anything `next_event` treats
    /// as other than the common case: the live end, a segment's end, a
    /// bad frame, a skipped range, a seek not yet reached; 0 means "call
    /// `next_event`", which handles it as it always does.
    ///
    /// The same records `next_event` yields, without its per-record
    /// bookkeeping: the cursor stays in registers for the whole run.
    #[inline]
    pub fn read_run(&mut self, max: usize, apply: impl FnMut(RecordRef<'_>)) -> usize {
        self.read_run_where(max, |_| true, apply)
    }

    /// [`WalReader::read_run`] for a read that wants records of some kinds
    /// only: a frame whose kind (told by its length) `keep` rejects is
    /// stepped over with only its length and seq looked at, as
    /// [`WalReader::next_event_where`] steps over what it does not want (no
    /// checksum, no other check); a frame it accepts is checked as
    /// `next_event` checks it and handed to `apply`. Returns the frames
    /// the run moved past (applied and stepped over), at most `max`; it
    /// ends early where `read_run` does, and 0 means "call `next_event`
    /// (or `next_event_where`)".
    #[inline]
    pub fn read_run_where(
        &mut self,
        max: usize,
        mut keep: impl FnMut(Kind) -> bool,
        mut apply: impl FnMut(RecordRef<'_>),
    ) -> usize {
        if self.header_skip.is_some() || self.min_ts.is_some() {
            return 0;
        }
        let Some(cursor) = self.cursor.as_mut() else { return 0 };
        cursor.release_read();
        let Some(mut expected) = cursor.expected else { return 0 };
        let bytes = cursor.segment.bytes();
        let mut off = cursor.off;
        let mut count = 0;
        let crc32_instruction = has_crc32_instruction();
        let (min_seq, end) = (self.min_seq, bytes.len());
        while count < max && expected >= min_seq && off + FRAME_HEADER_LEN <= end {
            // One dispatch on the length per frame: each arm checks its
            // kind with the sizes and types known at compile time.
            macro_rules! frame {
                ($kind:expr, $ty:ty, $variant:ident) => {{
                    const N: usize = $kind.record_size();
                    let Some(payload) = bytes.get(off + FRAME_HEADER_LEN..off + FRAME_HEADER_LEN + N) else {
                        break;
                    };
                    if keep($kind) {
                        let Some(record) = check_typed::<$ty, N>(bytes, off, payload, expected, crc32_instruction)
                        else {
                            break;
                        };
                        apply(RecordRef::$variant(record));
                    } else if payload_seq(payload) != expected {
                        break;
                    }
                    N
                }};
            }
            let len = match load_len(bytes, off) as usize {
                TICK_LEN => frame!(Kind::Tick, Tick, Tick),
                DELTA_LEN => frame!(Kind::BookDelta, BookDelta, BookDelta),
                SNAPSHOT_LEN => frame!(Kind::BookSnapshot, BookSnapshot, BookSnapshot),
                HEARTBEAT_LEN => frame!(Kind::Heartbeat, Heartbeat, Heartbeat),
                _ => break,
            };
            off += FRAME_HEADER_LEN + len;
            expected += 1;
            count += 1;
        }
        if count > 0 {
            cursor.off = off;
            cursor.expected = Some(expected);
            cursor.last_seq = Some(expected - 1);
        }
        count
    }

    /// One step: the offset and kind of the next record's frame, a
    /// skipped range, or `None` at the live end. The common case (a valid
    /// frame with the expected seq) takes [`fast_frame`]; anything else
    /// goes through [`WalReader::advance_slow`], which checks the same
    /// frame again with `check_frame` and handles it as before.
    #[inline]
    fn advance(&mut self) -> Result<Option<Step>> {
        if let Some(skipped) = self.header_skip.take() {
            return Ok(Some(Step::Skipped(skipped)));
        }
        if let Some(cursor) = self.cursor.as_mut() {
            cursor.release_read();
        }
        while let Some(cursor) = self.cursor.as_mut()
            && let Some(expected) = cursor.expected
            && let Some(frame) = fast_frame(cursor.segment.bytes(), cursor.off, expected)
        {
            cursor.off = frame.next;
            cursor.expected = Some(expected + 1);
            cursor.last_seq = Some(expected);
            if expected >= self.min_seq && self.min_ts.is_none_or(|t| frame.ts_event >= t) {
                self.min_ts = None;
                return Ok(Some(Step::Record {
                    off: frame.off,
                    kind: frame.kind,
                }));
            }
        }
        self.advance_slow()
    }

    /// [`WalReader::advance`] for every case: the live end, segment rolls,
    /// bad frames, resyncs.
    #[cold]
    fn advance_slow(&mut self) -> Result<Option<Step>> {
        let (off, kind) = loop {
            let Some(cursor) = self.cursor.as_mut() else {
                match list_segments(&self.feed_dir)?.into_iter().next() {
                    Some((_, path)) => {
                        let segment = Arc::new(self.open_segment(&path)?);
                        self.place(Cursor::at_start(segment));
                        continue;
                    }
                    None => return Ok(None),
                }
            };
            let checked = check_frame(cursor.segment.bytes(), cursor.off, cursor.expected);
            match checked {
                Ok(Some(frame)) => {
                    let h = frame.header;
                    cursor.off = frame.next_off();
                    cursor.expected = Some(h.seq + 1);
                    cursor.last_seq = Some(h.seq);
                    if h.seq < self.min_seq || self.min_ts.is_some_and(|t| h.ts_event < t) {
                        continue;
                    }
                    self.min_ts = None;
                    break (frame.off, frame.kind);
                }
                Ok(None) => {
                    let first = cursor.segment.header.first_seq;
                    let Some(next) = self.next_segment(first)? else {
                        return Ok(None);
                    };
                    // The writer made a newer segment; it finished this one
                    // before, unless a frame landed meanwhile: look again.
                    let cursor = self.cursor.as_ref().expect("cursor is set");
                    let bytes = cursor.segment.bytes();
                    if cursor.off + FRAME_HEADER_LEN <= bytes.len() && load_len(bytes, cursor.off) != 0 {
                        continue;
                    }
                    if let Some(skipped) = self.enter(&next)? {
                        return Ok(Some(Step::Skipped(skipped)));
                    }
                }
                Err(bad) => {
                    let path = cursor.segment.path.clone();
                    let bad_off = cursor.off;
                    if !self.skip_corrupt {
                        return Err(Error::Corrupt {
                            path,
                            offset: bad_off as u64,
                            reason: bad.to_string(),
                        });
                    }
                    let bytes = cursor.segment.bytes();
                    let resync = if bad.is_crc_valid() {
                        Some(bad_off)
                    } else {
                        find_resync(bytes, bad_off + FRAME_HEADER_LEN)
                    };
                    let last = cursor.last_seq;
                    match resync {
                        Some(r) => {
                            let seq = crate::format::read_header(&bytes[r + FRAME_HEADER_LEN..]).seq;
                            cursor.off = r;
                            cursor.expected = None;
                            let seq_hole = last.and_then(|l| SeqRange::between(l, seq));
                            return Ok(Some(Step::Skipped(SkippedRange {
                                path,
                                from: bad_off as u64,
                                to: r as u64,
                                seq_hole,
                                reason: bad.to_string(),
                            })));
                        }
                        None => {
                            // Nothing plausible in the rest of this segment.
                            let end = bytes.len();
                            cursor.off = end;
                            let first = cursor.segment.header.first_seq;
                            let next = self.next_segment(first)?;
                            let mut skipped = SkippedRange {
                                path,
                                from: bad_off as u64,
                                to: end as u64,
                                seq_hole: None,
                                reason: bad.to_string(),
                            };
                            if let Some(next) = next {
                                let next_first = self.open_segment(&next)?.header.first_seq;
                                skipped.seq_hole = last.and_then(|l| SeqRange::between(l, next_first));
                                // The hole is reported here; do not report it twice.
                                if let Some(c) = self.cursor.as_mut() {
                                    c.last_seq = next_first.checked_sub(1);
                                }
                                self.enter(&next)?;
                            }
                            return Ok(Some(Step::Skipped(skipped)));
                        }
                    }
                }
            }
        };
        Ok(Some(Step::Record { off, kind }))
    }

    /// The record of the frame at `off`, which [`check_frame`] accepted as
    /// `kind` (no second check).
    #[inline]
    fn record_at(&self, off: usize, kind: Kind) -> WalRecord<'_> {
        let cursor = self.cursor.as_ref().expect("cursor is set");
        let bytes = cursor.segment.bytes();
        let start = off + FRAME_HEADER_LEN;
        // `check_frame` accepted this frame: its payload is in the map,
        // 8-aligned, `kind.record_size()` bytes (the archived records are
        // byte-identical to the plain Pod records). bytemuck checks the
        // length and alignment again, safely.
        let Some(record) = RecordRef::try_of_kind(kind, &bytes[start..start + kind.record_size()]) else {
            unreachable!("the frame at {off} was checked as a {kind:?}")
        };
        WalRecord {
            record,
            path: &cursor.segment.path,
            offset: off as u64,
        }
    }

    /// The next record, a skipped range (skip-corrupt), `Ok(None)` at the
    /// live end (call again later to follow the writer), or an error naming
    /// the file and offset of a bad frame (every valid record before it
    /// has been yielded; calling again returns the same error).
    pub fn next_event(&mut self) -> Result<Option<ReadEvent<'_>>> {
        match self.advance()? {
            None => Ok(None),
            Some(Step::Skipped(skipped)) => Ok(Some(ReadEvent::Skipped(skipped))),
            Some(Step::Record { off, kind }) => Ok(Some(ReadEvent::Record(self.record_at(off, kind)))),
        }
    }

    /// [`WalReader::next_event`] for a reader that needs only the records
    /// from `seq` on (a gap fill reading forward past records it has
    /// already): the frames before `seq` are stepped over as
    /// [`WalReader::next_event_where`] steps over the frames it does not
    /// want, and from `seq` on it returns what `next_event` returns. A
    /// record before `seq` may still be returned (where the reader checks
    /// anyway: a segment's first frame, after a resync): the caller drops
    /// it.
    pub fn next_event_from(&mut self, seq: u64) -> Result<Option<ReadEvent<'_>>> {
        self.step_over(|record| record.header().seq < seq);
        self.next_event()
    }

    /// [`WalReader::next_event`] for a scan that wants few of the records:
    /// yields only the records `keep` accepts (and skipped ranges). A frame
    /// whose record `keep` rejects is stepped over with only its length
    /// and seq looked at (no checksum, no other check), and a frame it
    /// accepts is checked in full and yielded as `next_event` would (a bad
    /// one handled as `next_event` handles it). A history query
    /// reading one instrument out of many thus pays the checks only for
    /// what it returns.
    ///
    /// `keep` sees the record's *unchecked* bytes: decide with it, never
    /// trust it. A corrupt frame it rejects is usually passed over
    /// unnoticed, which loses nothing the caller wanted (a corrupt record
    /// is never yielded); where the reader checks a frame anyway (the first
    /// of a segment, right after a resync, frames before a time seek's
    /// target) it is reported as `next_event` reports it. A frame whose
    /// length changed to another record's size lands the step inside the
    /// next frame, where the look fails: the reader steps back and checks
    /// the changed frame in full, so it resyncs from where `next_event`
    /// would and skips no valid frame after it.
    pub fn next_event_where(&mut self, mut keep: impl FnMut(RecordRef<'_>) -> bool) -> Result<Option<ReadEvent<'_>>> {
        loop {
            self.step_over(|record| !keep(record));
            // Segment ends, seeks, bad frames and the wanted frame itself:
            // the checked path.
            match self.advance()? {
                None => return Ok(None),
                Some(Step::Skipped(skipped)) => return Ok(Some(ReadEvent::Skipped(skipped))),
                Some(Step::Record { off, kind }) => {
                    if keep(self.record_at(off, kind).record) {
                        return Ok(Some(ReadEvent::Record(self.record_at(off, kind))));
                    }
                }
            }
        }
    }

    /// Steps over the frames `skip` passes, unchecked but for their length
    /// and seq (see [`WalReader::next_event_where`]), up to the first it
    /// refuses or the first the quick look cannot walk (segment end, the
    /// live end, a bad length or seq). When the look fails right after a
    /// step, the reader goes back to the frame it stepped over last, and
    /// the checked path reads that one in full: a length field changed to
    /// another record's size passes the look and steps into the middle of
    /// the next frame, where the look fails; the checked path then finds
    /// the bad frame itself and resyncs from it, as `next_event` does,
    /// rather than from the middle of the frame after it (which would skip
    /// valid records).
    #[inline]
    fn step_over(&mut self, mut skip: impl FnMut(RecordRef<'_>) -> bool) {
        // (off, expected, last_seq) before the last step.
        let mut before_last: Option<(usize, u64, Option<u64>)> = None;
        while self.min_ts.is_none()
            && let Some(cursor) = self.cursor.as_mut()
            && let Some(expected) = cursor.expected
            && expected >= self.min_seq
        {
            let Some((kind, len)) = peek_frame(cursor.segment.bytes(), cursor.off, expected) else {
                if let Some((off, expected, last_seq)) = before_last {
                    cursor.off = off;
                    cursor.expected = Some(expected);
                    cursor.last_seq = last_seq;
                }
                return;
            };
            let payload = &cursor.segment.bytes()[cursor.off + FRAME_HEADER_LEN..][..len];
            let record = match kind {
                Kind::Tick => RecordRef::Tick(bytemuck::from_bytes(payload)),
                Kind::BookSnapshot => RecordRef::BookSnapshot(bytemuck::from_bytes(payload)),
                Kind::BookDelta => RecordRef::BookDelta(bytemuck::from_bytes(payload)),
                Kind::Heartbeat => RecordRef::Heartbeat(bytemuck::from_bytes(payload)),
            };
            if !skip(record) {
                return;
            }
            before_last = Some((cursor.off, expected, cursor.last_seq));
            cursor.off += FRAME_HEADER_LEN + len;
            // (A step back after this may land before what it released:
            // released bytes read back as before, see `MappedSegment::release`.)
            cursor.release_read();
            cursor.expected = Some(expected + 1);
            cursor.last_seq = Some(expected);
        }
    }

    /// The next record, passing over skipped ranges (use
    /// [`WalReader::next_event`] to see them); `Ok(None)` at the live end.
    pub fn next_record(&mut self) -> Result<Option<WalRecord<'_>>> {
        loop {
            match self.advance()? {
                None => return Ok(None),
                Some(Step::Skipped(_)) => continue,
                Some(Step::Record { off, kind }) => return Ok(Some(self.record_at(off, kind))),
            }
        }
    }
}

/// A frame [`fast_frame`] accepted.
#[derive(Debug, Clone, Copy)]
struct FastFrame {
    off: usize,
    next: usize,
    kind: Kind,
    ts_event: i64,
}

/// The kind and the payload of the frame at `off` when its length (loaded
/// with Acquire, which makes the frame's bytes visible) is a record size
/// and the frame lies in bounds; nothing else is checked.
#[inline(always)]
fn frame_payload(bytes: &[u8], off: usize) -> Option<(Kind, &[u8])> {
    let header_end = off.checked_add(FRAME_HEADER_LEN)?;
    if header_end > bytes.len() {
        return None;
    }
    let len = load_len(bytes, off) as usize;
    let kind = match len {
        HEARTBEAT_LEN => Kind::Heartbeat,
        DELTA_LEN => Kind::BookDelta,
        TICK_LEN => Kind::Tick,
        SNAPSHOT_LEN => Kind::BookSnapshot,
        _ => return None,
    };
    Some((kind, bytes.get(header_end..header_end + len)?))
}

/// The record sizes a frame's `len` may hold, as match patterns: the
/// frame dispatches below go from a length to its kind with them.
const TICK_LEN: usize = Kind::Tick.record_size();
const DELTA_LEN: usize = Kind::BookDelta.record_size();
const SNAPSHOT_LEN: usize = Kind::BookSnapshot.record_size();
const HEARTBEAT_LEN: usize = Kind::Heartbeat.record_size();

/// The seq of the record whose payload is `payload` (unchecked).
#[inline(always)]
fn payload_seq(payload: &[u8]) -> u64 {
    u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"))
}

/// The kind and length of the frame at `off` when [`frame_payload`] finds
/// one and its record's seq is `expected`; nothing else is checked (see
/// [`WalReader::next_event_where`]).
#[inline(always)]
fn peek_frame(bytes: &[u8], off: usize, expected: u64) -> Option<(Kind, usize)> {
    let (kind, payload) = frame_payload(bytes, off)?;
    (payload_seq(payload) == expected).then_some((kind, payload.len()))
}

/// The frame at `off` when it is valid and carries `expected`: exactly
/// the checks of `check_frame` (`len` a record size, in bounds, crc32c,
/// kind matching `len`, rkyv checked access, zero padding, seq), without
/// building an error; `None` for anything else, which the caller hands to
/// `check_frame` for the verdict. One dispatch on the length, each kind's
/// checks monomorphised ([`check_typed`]).
#[inline(always)]
fn fast_frame(bytes: &[u8], off: usize, expected: u64) -> Option<FastFrame> {
    let header_end = off.checked_add(FRAME_HEADER_LEN)?;
    if header_end > bytes.len() {
        return None;
    }
    let crc32_instruction = has_crc32_instruction();
    macro_rules! frame {
        ($kind:expr, $ty:ty) => {{
            const N: usize = $kind.record_size();
            let payload = bytes.get(header_end..header_end + N)?;
            let record = check_typed::<$ty, N>(bytes, off, payload, expected, crc32_instruction)?;
            ($kind, N, mdbus_types::Record::header(record).ts_event)
        }};
    }
    let (kind, len, ts_event) = match load_len(bytes, off) as usize {
        TICK_LEN => frame!(Kind::Tick, Tick),
        DELTA_LEN => frame!(Kind::BookDelta, BookDelta),
        SNAPSHOT_LEN => frame!(Kind::BookSnapshot, BookSnapshot),
        HEARTBEAT_LEN => frame!(Kind::Heartbeat, Heartbeat),
        _ => return None,
    };
    Some(FastFrame {
        off,
        next: header_end + len,
        kind,
        ts_event,
    })
}

/// The checks of the frame at `off` after its length, for a record type
/// `T` of `N` bytes known at compile time (`payload` is the frame's `N`
/// bytes): crc32c, the kind field, the length, the seq and rkyv's checked
/// access (the low-level validator: the records hold no pointers, so no
/// shared pointers to track), as `check_frame` does. The record, viewed
/// in the map, when all hold. `crc32_instruction`: from
/// [`has_crc32_instruction`].
#[inline(always)]
fn check_typed<'a, T, const N: usize>(
    bytes: &[u8],
    off: usize,
    payload: &'a [u8],
    expected: u64,
    crc32_instruction: bool,
) -> Option<&'a T>
where
    T: mdbus_types::Record + bytemuck::Pod + rkyv::Archive,
    T::Archived:
        rkyv::Portable + for<'v> rkyv::bytecheck::CheckBytes<rkyv::api::low::LowValidator<'v, rkyv::rancor::Failure>>,
{
    let kind = T::KIND;
    let stored = u32::from_le_bytes(bytes[off + 4..off + FRAME_HEADER_LEN].try_into().expect("4 bytes"));
    if crc32c_record(kind, payload, crc32_instruction) != stored {
        return None;
    }
    let raw_kind = u16::from_le_bytes(payload[24..26].try_into().expect("2 bytes"));
    if raw_kind != kind as u16 || payload.len() != N || payload_seq(payload) != expected {
        return None;
    }
    rkyv::api::low::access::<T::Archived, rkyv::rancor::Failure>(payload).ok()?;
    // The payload is in the map, 8-aligned (frames are 8-aligned in a
    // page-aligned map) and `N` bytes: bytemuck checks the length and
    // alignment again, safely.
    bytemuck::try_from_bytes(payload).ok()
}

/// An owned step of the reader (no borrow of the map).
#[derive(Debug)]
enum Step {
    Record { off: usize, kind: Kind },
    Skipped(SkippedRange),
}
