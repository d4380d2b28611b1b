//! `mdbus._mdbus`: the native half of the Python package `mdbus`.
//!
//! The records leave Rust as flat byte buffers (a `Vec<u64>` handed to
//! numpy without a copy, so 8-byte aligned); the pure-Python half views
//! them with a structured dtype built from `layout_table()`, the same
//! table docs/spec.md holds. rust-numpy cannot build structured dtypes,
//! so the dtype is made in Python, from this table, never retyped.
//!
//! - `WalCursor`: reads a feed's WAL in batches, one copy out of the
//!   segment maps, with the GIL released while it reads.
//! - `Board`: the snapshot board through `mdbus_board::BoardReader`.
//! - `Subscriber`: the live feed through `mdbus::Subscriber` (replay-merge,
//!   gap fill, L1), polled in batches with the GIL released.
//! - `instrument_codes`: symbols of a record buffer as categorical codes
//!   (one hash look-up per record, no Python object per record).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mdbus_types::{InstrumentId, Kind, PRICE_SCALE, Price, RecordRef, SYMBOL_LEN};
use mdbus_wal::{ReadEvent, ReadFrom, ReadOptions, SkippedRange, WalReader};
use numpy::{IntoPyArray, PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

mod subscriber;

/// The kinds in the order of the Python names (`tick`, `book`, `delta`,
/// `heartbeat`); a record's slot is `kind as u16 - 1`.
const KIND_NAMES: [&str; 4] = ["tick", "book", "delta", "heartbeat"];

fn slot(kind: Kind) -> usize {
    usize::from(kind as u16) - 1
}

/// The layout table of the records (`mdbus_types::layout_table`): a list
/// of `(record, record_size, offset, size, field, type)`.
#[pyfunction]
fn layout_table() -> Vec<(&'static str, usize, usize, usize, &'static str, &'static str)> {
    mdbus_types::layout_table()
        .into_iter()
        .map(|r| (r.record, r.record_size, r.offset, r.size, r.field, r.ty))
        .collect()
}

/// A growing buffer of records, one copy out of the segment maps into
/// memory numpy takes over (no copy): reserved at once for the most
/// records the read can return (a large allocation is address space
/// only: a page costs memory once a record is written to it), grown only
/// if the WAL grew meanwhile, the unused rest given back at the end.
///
/// The pages of a large buffer are faulted in ahead of the records by a
/// thread of its own ([`Populator`], `MADV_POPULATE_WRITE` in
/// [`POPULATE_STEP`] pieces, at most [`POPULATE_AHEAD`] past the records):
/// the kernel's allocating and zeroing of the result (a third of a tick
/// read's time) runs on another core while this one copies, instead of a
/// page fault per 4 KiB page in the copy. (Transparent huge pages,
/// `MADV_HUGEPAGE`, read 312 MB of ticks in 120-135 ms when the kernel had
/// free huge pages and 1.5-2.9 s when it compacted memory for them: not
/// used.)
#[derive(Default)]
struct OutBuf {
    words: Vec<u64>,
    /// Bytes written at which the populator is told the position next
    /// (`usize::MAX`: never, a small buffer).
    report_at: usize,
    populator: Option<Populator>,
}

/// How much a populator faults in at a time.
const POPULATE_STEP: usize = 2 << 20;

/// How far past the records a populator may fault in: what a read can
/// hold in memory beyond its result.
const POPULATE_AHEAD: usize = 16 << 20;

/// Buffers at least this large are faulted in ahead ([`OutBuf`]); the
/// allocator gives them their own map.
const POPULATE_MIN: usize = 64 << 20;

impl OutBuf {
    /// Appends one record's bytes (`N`: its size, a constant per kind so
    /// the copy is a few inlined moves); `reserve`: the bytes to reserve
    /// when nothing is yet.
    #[inline(always)]
    fn push<const N: usize>(&mut self, bytes: &[u8], reserve: usize) {
        let bytes: &[u8; N] = bytes.try_into().expect("a record of its kind's size");
        if self.words.len() * 8 + N > self.report_at {
            self.grow(reserve, N);
        }
        // Records are 8-aligned in the map and a multiple of 8 long.
        self.words.extend_from_slice(bytemuck::cast_slice::<u8, u64>(bytes));
    }

    /// Before a record that would pass `report_at`: reserves `reserve`
    /// bytes when nothing is yet (or, when the allocator refuses that
    /// much, lets the buffer grow as it goes), grows a large buffer that
    /// is full (its populator stopped first), starts a populator for a
    /// large buffer (again if the buffer moved), and tells it where the
    /// records are.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, reserve: usize, n: usize) {
        if self.words.capacity() == 0 {
            let _ = self.words.try_reserve_exact(reserve / 8);
        }
        let written = self.words.len() * 8;
        if self.words.capacity() * 8 < written + n {
            // The WAL grew past the reserve: the buffer moves.
            self.stop_populator();
            self.words.reserve(n / 8);
        }
        let cap = self.words.capacity() * 8;
        if cap < POPULATE_MIN {
            // Small (or growing as it goes): page faults as it is written.
            self.report_at = usize::MAX;
            return;
        }
        let base = self.words.as_mut_ptr() as usize;
        if self.populator.as_ref().is_none_or(|p| p.base != base) {
            self.stop_populator();
            self.populator = Populator::start(base, cap, written);
        }
        match &self.populator {
            Some(p) => p.written.store(written, Ordering::Relaxed),
            None => {
                self.report_at = usize::MAX;
                return;
            }
        }
        // Also called before the buffer would have to move.
        self.report_at = (written + POPULATE_STEP).min(cap);
    }

    fn stop_populator(&mut self) {
        if let Some(populator) = self.populator.take() {
            populator.stop();
        }
    }

    /// The records as a `uint64` numpy array that owns them (no copy).
    fn into_pyarray<'py>(mut self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        // Before the buffer shrinks (and may move).
        self.stop_populator();
        let mut words = std::mem::take(&mut self.words);
        words.shrink_to_fit();
        words.into_pyarray(py)
    }
}

impl Drop for OutBuf {
    fn drop(&mut self) {
        self.stop_populator();
    }
}

/// The thread that faults in a large [`OutBuf`] ahead of its records.
struct Populator {
    /// The buffer's address when it started (a moved buffer gets a new
    /// populator).
    base: usize,
    /// Bytes the buffer's owner has written (Relaxed both ways: a pacing
    /// hint; faulting a page in changes no contents, so nothing is
    /// ordered by it).
    written: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Populator {
    /// Starts faulting in `[base + written, base + cap)`, at most
    /// [`POPULATE_AHEAD`] past what is written; `None` when no thread can
    /// be started (the copies then fault the pages in themselves).
    fn start(base: usize, cap: usize, written: usize) -> Option<Populator> {
        let (progress, done) = (Arc::new(AtomicUsize::new(written)), Arc::new(AtomicBool::new(false)));
        let (progress_in, done_in) = (Arc::clone(&progress), Arc::clone(&done));
        let handle = std::thread::Builder::new()
            .name("mdbus-py-populate".into())
            .spawn(move || {
                let page = 4096;
                let mut from = written;
                while from < cap && !done_in.load(Ordering::Relaxed) {
                    if from >= progress_in.load(Ordering::Relaxed) + POPULATE_AHEAD {
                        // Far enough ahead: the copies catch up.
                        std::thread::sleep(Duration::from_micros(200));
                        continue;
                    }
                    let to = (from + POPULATE_STEP).min(cap);
                    let (start, end) = ((base + from).next_multiple_of(page), (base + to) / page * page);
                    if end > start {
                        // SAFETY: madvise(MADV_POPULATE_WRITE) changes no
                        // memory contents: it only faults pages in
                        // writable, as the copies that follow would. The
                        // range lies in the buffer's allocation, which
                        // lives until its owner has stopped and joined
                        // this thread (`OutBuf::stop_populator`, before it
                        // shrinks, moves or frees the buffer). A failure
                        // (an old kernel: EINVAL) leaves the faults to the
                        // copies.
                        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_POPULATE_WRITE) };
                    }
                    from = to;
                }
            })
            .ok()?;
        Some(Populator {
            base,
            written: progress,
            done,
            handle,
        })
    }

    /// Stops the thread and waits for it.
    fn stop(self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

/// What a batch read ended with, besides its records.
struct Batch {
    bufs: [OutBuf; 4],
    skipped: Vec<SkippedRange>,
    /// `(message, file, byte offset)` of the error that stopped the read.
    error: Option<(String, Option<String>, Option<u64>)>,
}

/// How far `ts_event` may go back along a feed: a segment's recovery
/// snapshots and heartbeats carry the publisher's clock, a little ahead of
/// the market events around them. A time-bounded read seeks this much
/// before `start` and reads on this much past `end`, keeping exactly the
/// records with `start <= ts_event < end`.
const TIME_SLACK_NS: i64 = 1_000_000_000;

/// What a read keeps: kinds, a time range, instruments.
#[derive(Debug, Clone)]
struct Filter {
    kinds: [bool; 4],
    start: Option<i64>,
    end: Option<i64>,
    instruments: Option<Vec<InstrumentId>>,
}

impl Filter {
    /// Whether the read must look at every record (no filter at all).
    fn is_all(&self) -> bool {
        self.start.is_none() && self.end.is_none() && self.instruments.is_none() && !self.kinds.contains(&false)
    }

    /// Whether the read keeps records by their kind alone (no time bounds,
    /// no instruments): a record's length tells whether it is wanted.
    fn by_kind_only(&self) -> bool {
        self.start.is_none() && self.end.is_none() && self.instruments.is_none()
    }

    /// Whether a record this far in time ends the read.
    #[inline]
    fn past_end(&self, ts_event: i64) -> bool {
        self.end.is_some_and(|e| ts_event >= e.saturating_add(TIME_SLACK_NS))
    }

    /// Whether `record` is wanted.
    #[inline]
    fn wants(&self, record: RecordRef<'_>) -> bool {
        let ts = record.header().ts_event;
        self.kinds[slot(record.kind())]
            && self.start.is_none_or(|s| ts >= s)
            && self.end.is_none_or(|e| ts < e)
            && match &self.instruments {
                None => true,
                Some(ids) => record.instrument().is_some_and(|id| ids.contains(&id)),
            }
    }
}

/// The reader and the filter of one `read_wal`/`iter_wal` call.
struct CursorState {
    reader: WalReader,
    /// The WAL directory and feed (to tell a torn tail from corruption).
    wal: PathBuf,
    feed: String,
    filter: Filter,
    done: bool,
    /// The size of the feed's segment files when the read began.
    wal_bytes: u64,
}

impl CursorState {
    /// Reads up to `limit` more records into `batch`'s buffers (one per
    /// kind); stops early at the live end, past `end`, at an error (the
    /// records before it are kept), or once `until` has passed (checked
    /// every [`CLOCK_EVERY`] records kept or frames passed). Returns the records kept.
    fn read_into(&mut self, batch: &mut Batch, limit: usize, until: Instant) -> usize {
        if self.done || batch.error.is_some() {
            return 0;
        }
        let CursorState {
            reader,
            wal,
            feed,
            filter,
            done,
            wal_bytes,
        } = self;
        let filtering = !filter.is_all();
        let filter = &*filter;
        // The most bytes of `kind` this read can return: at most `limit`
        // records, and at most one per frame in the WAL's files.
        let reserve = [Kind::Tick, Kind::BookSnapshot, Kind::BookDelta, Kind::Heartbeat].map(|kind| {
            let size = kind.record_size();
            let frames = *wal_bytes / (mdbus_wal::FRAME_HEADER_LEN + size) as u64 + 1;
            usize::try_from(frames)
                .unwrap_or(usize::MAX)
                .min(limit)
                .saturating_mul(size)
        });
        let kinds_only = filter.by_kind_only();
        let mut n = 0;
        let mut since_clock = 0;
        while n < limit {
            if since_clock >= CLOCK_EVERY {
                since_clock = 0;
                if Instant::now() >= until {
                    break;
                }
            }
            if kinds_only {
                // The common case, a run of frames straight from the map:
                // those of the kinds asked for checked in full and copied,
                // the others stepped over by their length (as
                // `next_event_where` does). Anything else (a segment's
                // end, a bad frame, the live end) ends the run and is
                // handled below by `next_event_where`.
                let (bufs, r, kinds) = (&mut batch.bufs, &reserve, &filter.kinds);
                let mut kept = 0;
                let frames = reader.read_run_where(
                    (limit - n).min(CLOCK_EVERY),
                    |kind| kinds[slot(kind)],
                    |record| {
                        push_record(bufs, r, record);
                        kept += 1;
                    },
                );
                n += kept;
                since_clock += frames;
                if frames > 0 {
                    continue;
                }
            }
            since_clock += 1;
            let event = if filtering {
                // Sees unchecked bytes: only decides; what it keeps is
                // checked in full by the reader.
                reader.next_event_where(|r| filter.past_end(r.header().ts_event) || filter.wants(r))
            } else {
                reader.next_event()
            };
            match event {
                Ok(None) => {
                    *done = true;
                    break;
                }
                Ok(Some(ReadEvent::Skipped(range))) => batch.skipped.push(range),
                Ok(Some(ReadEvent::Record(rec))) => {
                    let record = rec.record;
                    if filter.past_end(record.header().ts_event) {
                        *done = true;
                        break;
                    }
                    if filtering && !filter.wants(record) {
                        continue;
                    }
                    push_record(&mut batch.bufs, &reserve, record);
                    n += 1;
                }
                Err(e) => {
                    *done = true;
                    // A torn tail of the newest segment (what a crashed
                    // writer leaves, cut by the next writer open) is the
                    // live end, as for `mdbus replay`: every valid record
                    // was read.
                    let torn_tail_only = matches!(e, mdbus_wal::Error::Corrupt { .. })
                        && mdbus_wal::verify(&*wal, &*feed).is_ok_and(|r| r.exit_code() == 3);
                    if torn_tail_only {
                        break;
                    }
                    let (path, offset) = match &e {
                        mdbus_wal::Error::Corrupt { path, offset, .. } => {
                            (Some(path.to_string_lossy().into_owned()), Some(*offset))
                        }
                        _ => (None, None),
                    };
                    batch.error = Some((e.to_string(), path, offset));
                    break;
                }
            }
        }
        n
    }
}

/// Copies `record` into its kind's buffer (`reserve`: the bytes each
/// buffer reserves at its first record).
#[inline(always)]
fn push_record(bufs: &mut [OutBuf; 4], reserve: &[usize; 4], record: RecordRef<'_>) {
    let bytes = record.as_bytes();
    match record.kind() {
        Kind::Tick => bufs[0].push::<{ Kind::Tick.record_size() }>(bytes, reserve[0]),
        Kind::BookSnapshot => bufs[1].push::<{ Kind::BookSnapshot.record_size() }>(bytes, reserve[1]),
        Kind::BookDelta => bufs[2].push::<{ Kind::BookDelta.record_size() }>(bytes, reserve[2]),
        Kind::Heartbeat => bufs[3].push::<{ Kind::Heartbeat.record_size() }>(bytes, reserve[3]),
    }
}

/// How often (in records kept or frames stepped over) a read looks at the
/// clock.
const CLOCK_EVERY: usize = 1024;

/// The longest a read runs without looking at Python's signals (Ctrl-C).
const SIGNAL_SLICE: Duration = Duration::from_millis(20);

/// A reader of one feed's WAL with its filters: `read(limit)` returns the
/// next batch. Built by `mdbus.read_wal` and `mdbus.iter_wal`.
#[pyclass(module = "mdbus._mdbus")]
struct WalCursor {
    state: Mutex<CursorState>,
}

/// The `ValueError` for a bad argument, named.
fn bad_arg(name: &str, message: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{name}: {message}"))
}

#[pymethods]
impl WalCursor {
    /// `kinds`: names among `tick`, `book`, `delta`, `heartbeat`; `start`
    /// and `end` in ns since the Unix epoch (`start <= ts_event < end`);
    /// `instruments`: symbols (heartbeats are then left out).
    #[new]
    // The arguments of `mdbus.read_wal`, one for one.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (wal, feed, kinds, start=None, end=None, instruments=None, skip_corrupt=false))]
    fn new(
        py: Python<'_>,
        wal: PathBuf,
        feed: &str,
        kinds: Vec<String>,
        start: Option<i64>,
        end: Option<i64>,
        instruments: Option<Vec<String>>,
        skip_corrupt: bool,
    ) -> PyResult<WalCursor> {
        let mut mask = [false; 4];
        for kind in &kinds {
            let Some(i) = KIND_NAMES.iter().position(|k| k == kind) else {
                return Err(bad_arg(
                    "kind",
                    format!("{kind:?} is not one of {KIND_NAMES:?} or \"all\""),
                ));
            };
            mask[i] = true;
        }
        let instruments = instruments
            .map(|symbols| {
                symbols
                    .iter()
                    .map(|s| InstrumentId::new(s).map_err(|e| bad_arg("instruments", e)))
                    .collect::<PyResult<Vec<_>>>()
            })
            .transpose()?;
        if let Some(reason) = mdbus_types::FeedName::reason(feed) {
            return Err(bad_arg("feed", format!("{feed:?}: {reason}")));
        }
        if !wal.is_dir() {
            return Err(PyFileNotFoundError::new_err(format!(
                "wal: no such directory: {}",
                wal.display()
            )));
        }
        let options = ReadOptions {
            from: start.map_or(ReadFrom::Start, |s| ReadFrom::Time(s.saturating_sub(TIME_SLACK_NS))),
            skip_corrupt,
        };
        let reader = py
            .detach(|| WalReader::open(&wal, feed, options))
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        let wal_bytes = std::fs::read_dir(wal.join(feed))
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        Ok(WalCursor {
            state: Mutex::new(CursorState {
                wal_bytes,
                reader,
                wal,
                feed: feed.to_string(),
                filter: Filter {
                    kinds: mask,
                    start,
                    end,
                    instruments,
                },
                done: false,
            }),
        })
    }

    /// The next batch of at most `limit` records (all with `None`):
    /// `(arrays, skipped, error, done)`. `arrays` maps each asked kind to
    /// a `uint64` array of its records' bytes; `skipped` lists the ranges
    /// a skip-corrupt read jumped over as dicts; `error` is
    /// `(message, file, offset)` when a bad frame stopped the read (the
    /// arrays then hold every valid record before it); `done` is true at
    /// the end of the WAL, at `end`, or after an error.
    #[pyo3(signature = (limit=None))]
    fn read<'py>(&self, py: Python<'py>, limit: Option<usize>) -> PyResult<Bound<'py, PyAny>> {
        if limit == Some(0) {
            return Err(bad_arg("batch", "must be at least 1"));
        }
        let mut guard = self
            .state
            .lock()
            .map_err(|_| PyRuntimeError::new_err("a previous read of this cursor panicked"))?;
        let state: &mut CursorState = &mut guard;
        let mut batch = Batch {
            bufs: Default::default(),
            skipped: Vec::new(),
            error: None,
        };
        // In slices of at most SIGNAL_SLICE with the GIL released, Python's
        // signal handlers run in between: Ctrl-C interrupts a long read
        // (its records are dropped).
        let mut left = limit.unwrap_or(usize::MAX);
        loop {
            let until = Instant::now() + SIGNAL_SLICE;
            let (st, b) = (&mut *state, &mut batch);
            left -= py.detach(move || st.read_into(b, left, until));
            if left == 0 || state.done || batch.error.is_some() {
                break;
            }
            py.check_signals()?;
        }
        let arrays = PyDict::new(py);
        for (i, buf) in batch.bufs.into_iter().enumerate() {
            if guard.filter.kinds[i] {
                arrays.set_item(KIND_NAMES[i], buf.into_pyarray(py))?;
            }
        }
        let skipped = batch
            .skipped
            .iter()
            .map(|s| {
                let d = PyDict::new(py);
                d.set_item("path", s.path.to_string_lossy())?;
                d.set_item("from", s.from)?;
                d.set_item("to", s.to)?;
                d.set_item("seq_hole", s.seq_hole.map(|h| (h.from, h.to)))?;
                d.set_item("reason", &s.reason)?;
                d.set_item("message", s.to_string())?;
                Ok(d)
            })
            .collect::<PyResult<Vec<_>>>()?;
        (arrays, skipped, batch.error, guard.done)
            .into_pyobject(py)
            .map(Bound::into_any)
    }
}

/// The symbols of `n` records in `buf` (`itemsize` bytes each, the symbol
/// at `offset`) as `(codes, names)`: `names[codes[i]]` is record `i`'s
/// symbol, names in first-seen order. One hash look-up per record, the
/// GIL released.
#[pyfunction]
fn instrument_codes<'py>(
    py: Python<'py>,
    buf: PyReadonlyArray1<'py, u8>,
    itemsize: usize,
    offset: usize,
) -> PyResult<(Bound<'py, PyArray1<i32>>, Vec<String>)> {
    if itemsize == 0 || offset + SYMBOL_LEN > itemsize {
        return Err(bad_arg("itemsize", format!("{itemsize} with the symbol at {offset}")));
    }
    let bytes = buf.as_slice().map_err(|e| bad_arg("buf", e))?;
    if !bytes.len().is_multiple_of(itemsize) {
        return Err(bad_arg(
            "buf",
            format!("{} bytes is not a multiple of {itemsize}", bytes.len()),
        ));
    }
    let (codes, names) = py.detach(|| {
        let mut symbols = SymbolCodes::default();
        let codes: Vec<i32> = bytes
            .chunks_exact(itemsize)
            .map(|rec| symbols.code(&rec[offset..offset + SYMBOL_LEN]))
            .collect();
        (codes, symbols.names)
    });
    Ok((codes.into_pyarray(py), names))
}

/// Symbols as categorical codes in first-seen order: `names[code]`.
#[derive(Default)]
struct SymbolCodes {
    seen: HashMap<u128, i32, BuildHasherDefault<SymbolHasher>>,
    names: Vec<String>,
    /// The last symbol and its code (records of one instrument come in runs).
    last: Option<(u128, i32)>,
}

impl SymbolCodes {
    /// The code of the symbol `raw` (`SYMBOL_LEN` bytes).
    #[inline]
    fn code(&mut self, raw: &[u8]) -> i32 {
        let raw: [u8; SYMBOL_LEN] = raw.try_into().expect("a symbol's 16 bytes");
        let key = u128::from_le_bytes(raw);
        if let Some((last, code)) = self.last
            && last == key
        {
            return code;
        }
        let names = &mut self.names;
        let code = *self.seen.entry(key).or_insert_with(|| {
            names.push(InstrumentId(raw).as_str().to_string());
            (names.len() - 1) as i32
        });
        self.last = Some((key, code));
        code
    }

    /// Takes in the symbols `other` numbered (as if its records came
    /// after this one's): what each of `other`'s codes is here.
    fn absorb(&mut self, other: SymbolCodes) -> Vec<i32> {
        let mut keys = vec![0u128; other.names.len()];
        for (&key, &code) in &other.seen {
            keys[code as usize] = key;
        }
        self.last = None;
        keys.into_iter()
            .zip(other.names)
            .map(|(key, name)| {
                let names = &mut self.names;
                *self.seen.entry(key).or_insert_with(|| {
                    names.push(name);
                    (names.len() - 1) as i32
                })
            })
            .collect()
    }
}

/// The hash of a symbol's 16 bytes (a `u128`) for [`SymbolCodes`]: two
/// multiplications instead of SipHash, which took a sixth of a
/// `to_pandas` of ticks. The keys are symbols from the WAL (at most a few
/// thousand), not an attacker's choice.
#[derive(Default)]
struct SymbolHasher(u64);

impl Hasher for SymbolHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    #[inline]
    fn write_u128(&mut self, v: u128) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let h = ((v as u64).wrapping_mul(K) ^ ((v >> 64) as u64)).wrapping_mul(K);
        self.0 = h ^ (h >> 32);
    }
}

/// How many records `gather` takes at a time (their bytes stay in the
/// L1/L2 cache while each column is written).
const GATHER_BLOCK: usize = 512;

/// Records of at least this many bytes in all are gathered by two
/// threads, half each.
const GATHER_SPLIT_MIN: usize = 4 << 20;

/// Columns of `n` records in `buf` (`itemsize` bytes each), in one pass
/// over the records with the GIL released: for each `(offset, size,
/// float)`, the `size`-byte field at `offset` of every record, as raw
/// bytes (`uint8` arrays the caller views with the field's dtype); with
/// `float`, an 8-byte price converted to `float64` (`raw / PRICE_SCALE`,
/// `PRICE_NULL` as NaN). numpy's field views would read the records once
/// per column. With `symbol` (the symbol's offset), also the records'
/// symbols as `instrument_codes` gives them, in the same pass: `(columns,
/// (codes, names) or None)`.
#[pyfunction]
#[pyo3(signature = (buf, itemsize, fields, symbol=None))]
fn gather<'py>(
    py: Python<'py>,
    buf: PyReadonlyArray1<'py, u8>,
    itemsize: usize,
    fields: Vec<(usize, usize, bool)>,
    symbol: Option<usize>,
) -> PyResult<Gathered<'py>> {
    let bytes = buf.as_slice().map_err(|e| bad_arg("buf", e))?;
    if itemsize == 0 || !bytes.len().is_multiple_of(itemsize) {
        return Err(bad_arg("itemsize", format!("{itemsize} for {} bytes", bytes.len())));
    }
    for &(offset, size, float) in &fields {
        if offset + size > itemsize || !matches!(size, 1 | 2 | 4 | 8) || (float && size != 8) {
            return Err(bad_arg(
                "fields",
                format!("({offset}, {size}, {float}) in a {itemsize}-byte record"),
            ));
        }
    }
    if let Some(offset) = symbol
        && offset + SYMBOL_LEN > itemsize
    {
        return Err(bad_arg("symbol", format!("{offset} in a {itemsize}-byte record")));
    }
    let n = bytes.len() / itemsize;
    let (columns, symbols) = py.detach(|| {
        let mut columns: Vec<Vec<u8>> = fields.iter().map(|&(_, size, _)| vec![0u8; n * size]).collect();
        let mut codes = symbol.map(|_| vec![0i32; n]);
        // Two halves on two threads when there is enough to share: the
        // copies and the kernel's zero-filling of the fresh columns (a
        // third of a book frame's time) on both cores.
        let split = if bytes.len() >= GATHER_SPLIT_MIN { n / 2 } else { n };
        let (heads, tails): (Vec<&mut [u8]>, Vec<&mut [u8]>) = columns
            .iter_mut()
            .zip(&fields)
            .map(|(column, &(_, size, _))| column.split_at_mut(split * size))
            .unzip();
        let (codes_head, codes_tail) = match codes.as_mut() {
            Some(codes) => {
                let (head, tail) = codes.split_at_mut(split);
                (Some(head), Some(tail))
            }
            None => (None, None),
        };
        let (bytes_head, bytes_tail) = bytes.split_at(split * itemsize);
        let names = if split == n {
            gather_into(bytes_head, itemsize, &fields, heads, symbol.zip(codes_head))
        } else {
            // The tail's work, for the thread or (when none can be
            // started) for this one afterwards.
            let tail_work = Mutex::new(Some((tails, codes_tail)));
            // `None` once taken (the other place does nothing then).
            let gather_tail = || {
                let (outs, codes) = tail_work.lock().expect("never poisoned: taken whole").take()?;
                Some(gather_into(bytes_tail, itemsize, &fields, outs, symbol.zip(codes)))
            };
            let (names, remap) = std::thread::scope(|scope| {
                let spawned = std::thread::Builder::new()
                    .name("mdbus-py-gather".into())
                    .spawn_scoped(scope, gather_tail);
                let mut names = gather_into(bytes_head, itemsize, &fields, heads, symbol.zip(codes_head));
                let tail_names = match spawned {
                    Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    Err(_) => None,
                }
                .or_else(gather_tail)
                .flatten();
                // The tail's codes in the head's numbering (first-seen
                // order over the whole).
                let remap = names.as_mut().zip(tail_names).map(|(head, tail)| head.absorb(tail));
                (names, remap)
            });
            if let (Some(remap), Some(codes)) = (remap, codes.as_mut()) {
                for code in &mut codes[split..] {
                    *code = remap[*code as usize];
                }
            }
            names
        };
        (columns, names.map(|names| (codes.unwrap_or_default(), names.names)))
    });
    Ok((
        columns.into_iter().map(|c| c.into_pyarray(py)).collect(),
        symbols.map(|(codes, names)| (codes.into_pyarray(py), names)),
    ))
}

/// What `gather` returns: the columns, and the symbols' codes and names.
type Gathered<'py> = (
    Vec<Bound<'py, PyArray1<u8>>>,
    Option<(Bound<'py, PyArray1<i32>>, Vec<String>)>,
);

/// `gather`'s pass over the records in `bytes`: field `k` of each into
/// `outs[k]`, and with `symbol` (the symbol's offset, the codes' output)
/// each record's symbol code, numbered from 0 in first-seen order (the
/// names returned).
fn gather_into(
    bytes: &[u8],
    itemsize: usize,
    fields: &[(usize, usize, bool)],
    mut outs: Vec<&mut [u8]>,
    symbol: Option<(usize, &mut [i32])>,
) -> Option<SymbolCodes> {
    let mut symbols = symbol.map(|(offset, out)| (offset, SymbolCodes::default(), out));
    for (b, block) in bytes.chunks(GATHER_BLOCK * itemsize).enumerate() {
        let first = b * GATHER_BLOCK;
        let count = block.len() / itemsize;
        if let Some((offset, codes, out)) = &mut symbols {
            let offset = *offset;
            for (o, r) in out[first..first + count].iter_mut().zip(block.chunks_exact(itemsize)) {
                *o = codes.code(&r[offset..offset + SYMBOL_LEN]);
            }
        }
        for (column, &(offset, size, float)) in outs.iter_mut().zip(fields) {
            let out = &mut column[first * size..(first + count) * size];
            let records = block.chunks_exact(itemsize);
            match (size, float) {
                (8, true) => {
                    for (o, r) in out.chunks_exact_mut(8).zip(records) {
                        let raw = i64::from_le_bytes(r[offset..offset + 8].try_into().expect("8 bytes"));
                        let px = if raw == Price::NULL.raw() {
                            f64::NAN
                        } else {
                            raw as f64 / PRICE_SCALE as f64
                        };
                        o.copy_from_slice(&px.to_le_bytes());
                    }
                }
                (8, _) => copy_field::<8>(out, records, offset),
                (4, _) => copy_field::<4>(out, records, offset),
                (2, _) => copy_field::<2>(out, records, offset),
                _ => copy_field::<1>(out, records, offset),
            }
        }
    }
    symbols.map(|(_, codes, _)| codes)
}

/// The `N`-byte field at `offset` of each record, into `out`.
#[inline(always)]
fn copy_field<const N: usize>(out: &mut [u8], records: std::slice::ChunksExact<'_, u8>, offset: usize) {
    for (o, r) in out.chunks_exact_mut(N).zip(records) {
        o.copy_from_slice(&r[offset..offset + N]);
    }
}

/// A read-only view of a feed's snapshot board, through
/// `mdbus_board::BoardReader` (the seqcount latch: never torn).
#[pyclass(module = "mdbus._mdbus")]
struct Board {
    reader: mdbus_board::BoardReader,
}

/// The symbol argument as an id, or a `ValueError` naming `symbol`.
fn symbol(sym: &str) -> PyResult<InstrumentId> {
    InstrumentId::new(sym).map_err(|e| bad_arg("symbol", e))
}

#[pymethods]
impl Board {
    /// Opens `<dir>/mdbus.<feed>.board` read-only.
    #[new]
    #[pyo3(signature = (feed, dir))]
    fn new(feed: &str, dir: PathBuf) -> PyResult<Board> {
        if let Some(reason) = mdbus_types::FeedName::reason(feed) {
            return Err(bad_arg("feed", format!("{feed:?}: {reason}")));
        }
        let path = mdbus_board::board_path(&dir, feed);
        if !path.exists() {
            return Err(PyFileNotFoundError::new_err(format!("no board: {}", path.display())));
        }
        let reader = mdbus_board::BoardReader::open(&dir, feed).map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(Board { reader })
    }

    /// The latest tick's bytes (`None`: not on the board, or no tick yet).
    fn tick<'py>(&self, py: Python<'py>, sym: &str) -> PyResult<Option<Bound<'py, PyArray1<u64>>>> {
        let id = symbol(sym)?;
        Ok(self.reader.tick(&id).map(|t| {
            bytemuck::cast_slice::<_, u64>(std::slice::from_ref(&t))
                .to_vec()
                .into_pyarray(py)
        }))
    }

    /// The current book's bytes (`None`: not on the board, or no book yet).
    fn book<'py>(&self, py: Python<'py>, sym: &str) -> PyResult<Option<Bound<'py, PyArray1<u64>>>> {
        let id = symbol(sym)?;
        Ok(self.reader.book(&id).map(|b| {
            bytemuck::cast_slice::<_, u64>(std::slice::from_ref(&b))
                .to_vec()
                .into_pyarray(py)
        }))
    }

    /// Every instrument on the board, sorted by symbol.
    fn instruments(&self) -> Vec<String> {
        self.reader
            .instruments()
            .iter()
            .map(|id| id.as_str().to_string())
            .collect()
    }

    /// The board's last published seq (header).
    fn last_seq(&self) -> u64 {
        self.reader.status().last_seq
    }

    /// The board file.
    fn path(&self) -> PathBuf {
        self.reader.path().to_path_buf()
    }
}

/// The native module.
#[pymodule]
fn _mdbus(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The numpy crate looks numpy's C API up on first use, running Python
    // code (numpy's version check), and panics if that raises: at a
    // read's first array, a SIGINT arriving there gave a PanicException
    // ("Failed to access NumPy array API capsule") instead of
    // KeyboardInterrupt. Looked up here, once, at import: the fallible
    // part (importing numpy's core module) as an exception, then the
    // capsule, then the crate's borrow checking (its own capsule, made at
    // the first array argument borrowed: `gather`, `instrument_codes`).
    numpy::get_array_module(m.py())?;
    numpy::npyffi::is_numpy_2(m.py());
    drop(PyArray1::<u8>::zeros(m.py(), 0, false).readonly());
    m.add_function(wrap_pyfunction!(layout_table, m)?)?;
    m.add_function(wrap_pyfunction!(instrument_codes, m)?)?;
    m.add_function(wrap_pyfunction!(gather, m)?)?;
    m.add_class::<WalCursor>()?;
    m.add_class::<Board>()?;
    m.add_class::<subscriber::Subscriber>()?;
    m.add("PRICE_NULL", Price::NULL.raw())?;
    m.add("PRICE_SCALE", PRICE_SCALE)?;
    m.add("KINDS", KIND_NAMES.to_vec())?;
    Ok(())
}
