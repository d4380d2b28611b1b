//! The import: DBN records in, mdbus records out through a `FeedPublisher`.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;

use dbn::Record as _;
use dbn::decode::{DbnMetadata, DecodeRecordRef};
use dbn::{
    BidAskPair, FlagSet, HasRType, MboMsg, Mbp1Msg, Mbp10Msg, Schema, SymbolIndex, TradeMsg, TsSymbolMap, UNDEF_PRICE,
    VersionUpgradePolicy,
};
use mdbus_publisher::FeedPublisher;
use mdbus_transport::MdSender;
use mdbus_types::{BOOK_DEPTH, InstrumentId, Kind, Level, Price, Side, Tick};
use rustc_hash::FxHashMap;

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::levels::{Levels, Published};
use crate::mbo::{Applied, OrderBook, Sides, Touched};
use crate::records::{Next, Records};

/// Which DBN timestamp becomes the record's `ts_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// `ts_recv`, when the capture server received it (monotonic within a
    /// file; DBN's own index time). Where it is undefined, `ts_event`.
    #[default]
    TsRecv,
    /// `ts_event`, the venue's time.
    TsEvent,
}

/// Where an instrument's mdbus symbol comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SymbolSource {
    /// The file's symbology (instrument_id -> symbol by date); a symbol
    /// longer than 16 bytes is an error unless an alias names it.
    #[default]
    Metadata,
    /// The instrument id in decimal (`5482`).
    InstrumentId,
}

/// How an import maps DBN to mdbus.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Which timestamp is `ts_event`.
    pub clock: Clock,
    /// Where symbols come from.
    pub symbols: SymbolSource,
    /// Symbols by instrument id, before any other source.
    pub aliases: HashMap<u32, InstrumentId>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportStats {
    /// Files read to their end.
    pub files: u64,
    /// DBN records read.
    pub dbn_records: u64,
    /// mdbus ticks written.
    pub ticks: u64,
    /// mdbus book snapshots written (the import's; the publisher adds its
    /// own snapshot sets and policy snapshots).
    pub snapshots: u64,
    /// mdbus book deltas written.
    pub deltas: u64,
    /// MBO cancels of orders the book did not hold, and adds or modifies
    /// without a side: counted, the book unchanged.
    pub unknown_orders: u64,
    /// Instruments seen (an instrument id the symbology maps to another
    /// symbol on a later date counts again).
    pub instruments: u64,
    /// Instrument ids the file's symbology mapped to a new symbol on a
    /// later date: each started a new instrument, with a fresh book.
    pub remapped: u64,
    /// MBO orders resting in the books at the end (they carry over into
    /// the next file of the same import).
    pub resting_orders: u64,
}

/// One instrument's import state.
#[derive(Debug)]
struct Instrument {
    id: InstrumentId,
    /// The UTC day (of the record's index time) its symbol was last
    /// looked up for, as the ns range [start, end) of that day; `None`:
    /// the symbol is not dated (an alias, the instrument id).
    day: Option<(u64, u64)>,
    published: Published,
    orders: OrderBook,
    /// The sides of the MBO book whose top 10 changed since the last
    /// publish.
    dirty: Sides,
    /// The next publish is a snapshot (a clear, a `SNAPSHOT` event).
    snapshot: bool,
    /// Traded quantity in this import.
    volume: i64,
}

/// Imports DBN files into a feed, one after another; the books carry over
/// from file to file. An import call reads on a thread of its own while
/// the caller's thread publishes, batch by batch: the two halves of the
/// work on two cores, the same records and batches as on one thread.
#[derive(Debug)]
pub struct Importer<S: MdSender> {
    publisher: FeedPublisher<S>,
    /// Everything but the publisher (books, options, counts).
    build: Build,
    /// Batches kept between import calls (their slots are reused).
    spare: Vec<Batch>,
}

/// What a [`Counted`] reader saw: bytes in all, and the first 8 (DBN's
/// prelude: magic, version, metadata length).
#[derive(Debug, Default)]
struct Read {
    total: Cell<u64>,
    head: Cell<[u8; 8]>,
}

/// The decompressed DBN stream, counted.
struct Counted {
    inner: Box<dyn io::Read>,
    read: Rc<Read>,
}

impl io::Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.read.total.get();
        if total < 8 {
            let mut head = self.read.head.get();
            for (i, byte) in buf[..n].iter().take(8 - total as usize).enumerate() {
                head[total as usize + i] = *byte;
            }
            self.read.head.set(head);
        }
        self.read.total.set(total + n as u64);
        Ok(n)
    }
}

/// The file's DBN stream (decompressed when it starts with zstd's magic),
/// counted.
fn open_stream(path: &Path) -> io::Result<(Counted, Rc<Read>)> {
    let mut file = io::BufReader::new(File::open(path)?);
    let zstd = io::BufRead::fill_buf(&mut file)?.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    let inner: Box<dyn io::Read> = if zstd {
        Box::new(zstd::stream::read::Decoder::with_buffer(file)?)
    } else {
        Box::new(file)
    };
    let read = Rc::new(Read::default());
    Ok((
        Counted {
            inner,
            read: Rc::clone(&read),
        },
        read,
    ))
}

/// The fields of an MBP record (MBP-10, MBP-1, TBBO) that the import uses.
#[derive(Debug, Clone, Copy)]
struct Mbp<'a> {
    /// DBN's instrument id.
    key: u32,
    /// The chosen `ts_event`.
    ts: i64,
    action: u8,
    flags: FlagSet,
    /// Price and size of the event's order (the trade, for `T`).
    trade: (i64, u32),
    /// The book after the event, best first.
    levels: &'a [BidAskPair],
}

/// Records written per `publish_batch`.
const BATCH: usize = 512;

/// The valid levels of `pairs` (a price, a size > 0), best first, into
/// `bids` and `asks`; how many of each. Fixed arrays, no branch per level.
fn levels(pairs: &[BidAskPair], bids: &mut [Level; BOOK_DEPTH], asks: &mut [Level; BOOK_DEPTH]) -> (usize, usize) {
    let (mut nb, mut na) = (0, 0);
    for pair in pairs.iter().take(BOOK_DEPTH) {
        bids[nb] = Level {
            price: Price(pair.bid_px),
            qty: i64::from(pair.bid_sz),
        };
        nb += usize::from(pair.bid_px != UNDEF_PRICE && pair.bid_sz > 0);
        asks[na] = Level {
            price: Price(pair.ask_px),
            qty: i64::from(pair.ask_sz),
        };
        na += usize::from(pair.ask_px != UNDEF_PRICE && pair.ask_sz > 0);
    }
    (nb, na)
}

/// The record as `T`, `None` when it is another type; a record shorter
/// than `T` (a corrupt length) is an error, not the decoder's panic.
fn typed<'a, T: HasRType<Header = dbn::RecordHeader>>(record: &dbn::RecordRef<'a>) -> Result<Option<&'a T>, String> {
    if !record.has::<T>() {
        return Ok(None);
    }
    if record.record_size() < size_of::<T>() {
        return Err(format!(
            "a record of type {} is {} bytes, shorter than its {} bytes",
            std::any::type_name::<T>(),
            record.record_size(),
            size_of::<T>()
        ));
    }
    Ok(record.get::<T>())
}

const NS_PER_DAY: u64 = 86_400_000_000_000;

/// Where an import keeps its instruments: the index of each DBN id, and
/// their states.
#[derive(Debug)]
struct Instruments<'a> {
    index: &'a mut FxHashMap<u32, usize>,
    states: &'a mut Vec<Instrument>,
}

/// The state of DBN instrument `key`, its symbol looked up in the file's
/// symbology once per UTC day (DBN maps ids to symbols by date: an id the
/// venue gives to another instrument on a later day starts a new
/// instrument); a free function: it borrows the maps alone, not the whole
/// importer. One hash lookup per record: the day's range is kept, so a
/// record of the day looked up last is one comparison more.
#[allow(clippy::too_many_arguments)]
#[inline]
fn instrument<'m, R: dbn::Record>(
    instruments: Instruments<'m>,
    options: &ImportOptions,
    stats: &mut ImportStats,
    file: &Path,
    key: u32,
    record: &R,
    symbols: &TsSymbolMap,
    index: u64,
) -> Result<&'m mut Instrument> {
    let at = instruments.index.get(&key).copied();
    if let Some(at) = at {
        let ts = record.raw_index_ts();
        let same_day = match instruments.states[at].day {
            None => true,
            Some((start, end)) => (start..end).contains(&ts),
        };
        if same_day {
            return Ok(&mut instruments.states[at]);
        }
    }
    instrument_slow(instruments, at, options, stats, file, key, record, symbols, index)
}

/// [`instrument`] for an id not seen yet or a new day of it.
#[allow(clippy::too_many_arguments)]
#[cold]
fn instrument_slow<'m, R: dbn::Record>(
    instruments: Instruments<'m>,
    at: Option<usize>,
    options: &ImportOptions,
    stats: &mut ImportStats,
    file: &Path,
    key: u32,
    record: &R,
    symbols: &TsSymbolMap,
    index: u64,
) -> Result<&'m mut Instrument> {
    let day = record.raw_index_ts() / NS_PER_DAY;
    let day_range = (day * NS_PER_DAY, (day + 1).saturating_mul(NS_PER_DAY));
    let known = at.map(|at| instruments.states[at].id);
    let bad = |reason: String| Error::Symbol {
        file: file.to_path_buf(),
        index,
        instrument_id: key,
        reason,
    };
    let (id, dated) = match (options.aliases.get(&key), options.symbols) {
        (Some(id), _) => (*id, false),
        (None, SymbolSource::InstrumentId) => (
            InstrumentId::new(&key.to_string()).map_err(|e| bad(e.to_string()))?,
            false,
        ),
        (None, SymbolSource::Metadata) => match (symbols.get_for_rec(record), known) {
            (Some(symbol), _) => (
                InstrumentId::new(symbol).map_err(|e| {
                    bad(format!(
                        "{e}: pass --alias {key}=SYMBOL (16 bytes at most) or --symbol-from instrument-id"
                    ))
                })?,
                true,
            ),
            // A later day the symbology does not cover: the symbol stays.
            (None, Some(id)) => (id, true),
            (None, None) => {
                return Err(bad(
                    "the file's metadata maps it to no symbol at this time: pass --alias ID=SYMBOL or --symbol-from instrument-id"
                        .into(),
                ));
            }
        },
    };
    match (at, known) {
        (Some(at), Some(known_id)) if known_id == id => {
            let same = &mut instruments.states[at];
            same.day = Some(day_range);
            return Ok(same);
        }
        (Some(_), _) => stats.remapped += 1,
        (None, _) => {}
    }
    stats.instruments += 1;
    let fresh = Instrument {
        id,
        day: dated.then_some(day_range),
        published: Published::default(),
        orders: OrderBook::default(),
        dirty: Sides::default(),
        snapshot: false,
        volume: 0,
    };
    Ok(match at {
        Some(at) => {
            instruments.states[at] = fresh;
            &mut instruments.states[at]
        }
        None => {
            instruments.index.insert(key, instruments.states.len());
            instruments.states.push(fresh);
            instruments.states.last_mut().expect("pushed")
        }
    })
}

/// One DBN file being read: its records, symbology and position.
struct Source {
    path: PathBuf,
    records: Reader,
    symbols: TsSymbolMap,
    /// Records read so far (the next one's index).
    index: u64,
}

/// Where a [`Source`]'s records come from.
enum Reader {
    /// An uncompressed DBN 3 file: records read in place.
    InPlace(Records),
    /// Anything else (compressed, DBN 1 or 2): `dbn`'s decoder, which
    /// upgrades to DBN 3.
    Decoder {
        decoder: Box<dbn::decode::dbn::Decoder<Counted>>,
        read: Rc<Read>,
        /// The bytes of the records decoded, to tell a file cut inside a
        /// record from its end.
        record_bytes: u64,
    },
}

/// A record of `file` that cannot be read.
fn decode_error(file: &Path, index: u64, source: dbn::Error) -> Error {
    Error::Decode {
        file: file.to_path_buf(),
        index,
        source,
    }
}

/// A file cut `left` bytes into record `index`.
fn cut(file: &Path, index: u64, left: u64) -> Error {
    decode_error(
        file,
        index,
        dbn::Error::decode(format!("the file ends {left} bytes into this record")),
    )
}

impl Reader {
    /// The next record of `file` (record `index`), `None` at a clean end.
    #[inline]
    fn next(&mut self, file: &Path, index: u64) -> Result<Option<dbn::RecordRef<'_>>> {
        match self {
            Reader::InPlace(records) => match records.next() {
                Ok(Next::Record(record)) => Ok(Some(record)),
                Ok(Next::End) => Ok(None),
                Ok(Next::Cut { left }) => Err(cut(file, index, left)),
                Ok(Next::Corrupt(e)) => Err(decode_error(file, index, e)),
                Err(e) => Err(decode_error(file, index, dbn::Error::io(e, "reading the file"))),
            },
            Reader::Decoder {
                decoder,
                read,
                record_bytes,
            } => match decoder.decode_record_ref() {
                Ok(Some(record)) => {
                    *record_bytes += record.record_size() as u64;
                    Ok(Some(record))
                }
                // The decoder takes a record cut by the end of the file for
                // the end, so what was read must be whole records.
                Ok(None) => {
                    let (total, head) = (read.total.get(), read.head.get());
                    let metadata = 8 + u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
                    match total.saturating_sub(metadata + *record_bytes) {
                        0 => Ok(None),
                        left => Err(cut(file, index, left)),
                    }
                }
                Err(e) => Err(decode_error(file, index, e)),
            },
        }
    }
}

impl Source {
    /// Opens `path` and checks its schema.
    fn open(path: &Path) -> Result<Source> {
        let open = |source| Error::Open {
            file: path.to_path_buf(),
            source,
        };
        let (records, metadata) = match Records::open(path).map_err(|e| open(dbn::Error::io(e, "opening the file")))? {
            Some((records, metadata)) => (Reader::InPlace(records), metadata),
            None => {
                let (counted, read) = open_stream(path).map_err(|e| open(dbn::Error::io(e, "opening the file")))?;
                let decoder =
                    dbn::decode::dbn::Decoder::with_upgrade_policy(counted, VersionUpgradePolicy::UpgradeToV3)
                        .map_err(open)?;
                let metadata = decoder.metadata().clone();
                let reader = Reader::Decoder {
                    decoder: Box::new(decoder),
                    read,
                    record_bytes: 0,
                };
                (reader, metadata)
            }
        };
        match metadata.schema {
            Some(Schema::Mbp10 | Schema::Mbp1 | Schema::Tbbo | Schema::Trades | Schema::Mbo) => {}
            other => {
                return Err(Error::Schema {
                    file: path.to_path_buf(),
                    schema: other.map_or_else(|| "none".to_string(), |s| s.to_string()),
                });
            }
        }
        let symbols = metadata.symbol_map().map_err(open)?;
        Ok(Source {
            path: path.to_path_buf(),
            records,
            symbols,
            index: 0,
        })
    }

    /// The next record, copied out (for a merge), `None` at a clean end.
    fn next_owned(&mut self) -> Result<Option<dbn::RecordBuf>> {
        let Some(record) = self.records.next(&self.path, self.index)? else {
            return Ok(None);
        };
        let owned = dbn::RecordBuf::try_from(record).map_err(|e| decode_error(&self.path, self.index, e))?;
        self.index += 1;
        Ok(Some(owned))
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// Full batches in flight from the reading thread to the publishing one
/// (the reader runs at most this many batches ahead of the WAL).
const PIPE_DEPTH: usize = 2;

/// What the reading thread hands over: a batch, the file it came from
/// (a publish error names it), and the import's counts as of that batch.
type Handoff = (Batch, PathBuf, ImportStats);

/// The reading thread's ends of the pipe: full batches out, published
/// (empty) batches back.
#[derive(Debug)]
struct Pipe {
    full: mpsc::SyncSender<Handoff>,
    empty: mpsc::Receiver<Batch>,
}

impl<S: MdSender> Importer<S> {
    /// An import into `publisher`'s feed.
    pub fn new(publisher: FeedPublisher<S>, options: ImportOptions) -> Importer<S> {
        Importer {
            publisher,
            build: Build {
                options,
                instruments: FxHashMap::default(),
                states: Vec::new(),
                out: Batch::with_capacity(BATCH + 64),
                bids: Vec::with_capacity(10),
                asks: Vec::with_capacity(10),
                stats: ImportStats::default(),
                file: PathBuf::new(),
                pipe: None,
            },
            spare: Vec::new(),
        }
    }

    /// What was imported so far.
    pub fn stats(&self) -> ImportStats {
        ImportStats {
            resting_orders: self.build.states.iter().map(|i| i.orders.orders() as u64).sum(),
            ..self.build.stats
        }
    }

    /// Imports one file to its end. On an error, every record before the
    /// one named was published and the WAL is valid.
    pub fn import_file(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.pipelined(|build| build.read_file(path))?;
        self.build.stats.files += 1;
        Ok(())
    }

    /// Imports several files merged in time order (DBN's index time,
    /// `ts_recv`; a tie goes to the file given first), as one recording:
    /// the days of one instrument, or instruments recorded apart. On an
    /// error (naming its file and record), everything merged before it was
    /// published and the WAL is valid.
    pub fn import_files<P: AsRef<Path>>(&mut self, paths: &[P]) -> Result<()> {
        if let [one] = paths {
            return self.import_file(one);
        }
        let paths: Vec<&Path> = paths.iter().map(AsRef::as_ref).collect();
        self.pipelined(|build| build.read_files(&paths))
    }

    /// Runs `read` (the DBN side: decoding, books, the records to write)
    /// on a thread of its own while this thread publishes the batches it
    /// hands over, in order: the two halves of the import on two cores.
    /// The batches, their order and their bounds are those of an import
    /// on one thread (a batch is handed over where that import published
    /// it), so the publisher writes the same WAL. A publish error stops
    /// the reader (its next hand-over fails) and is the error returned,
    /// with the counts as of the batch that failed; otherwise the reader's
    /// error, after everything before it was published.
    fn pipelined(&mut self, read: impl FnOnce(&mut Build) -> Result<()> + Send) -> Result<()> {
        let (full_tx, full_rx) = mpsc::sync_channel::<Handoff>(PIPE_DEPTH);
        let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
        // One batch being filled, PIPE_DEPTH waiting, one being published.
        while self.spare.len() < PIPE_DEPTH + 1 {
            self.spare.push(Batch::with_capacity(BATCH + 64));
        }
        for batch in self.spare.drain(..) {
            empty_tx.send(batch).expect("the receiver is held here");
        }
        let (build, publisher, spare) = (&mut self.build, &mut self.publisher, &mut self.spare);
        let (result, failed) = std::thread::scope(|scope| {
            let reader = std::thread::Builder::new()
                .name("mdbus-dbn-read".into())
                .spawn_scoped(scope, move || {
                    build.pipe = Some(Pipe {
                        full: full_tx,
                        empty: empty_rx,
                    });
                    // A panic must drop the pipe too (it lives in
                    // `build`, which outlives this thread), or the loop
                    // below would wait for batches forever.
                    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let result = read(&mut *build);
                        // Everything before an error is published either way.
                        build.hand_over();
                        result
                    }));
                    let pipe = build.pipe.take().expect("set above");
                    // Dropping `full` ends the publishing loop below.
                    drop(pipe.full);
                    match read {
                        Ok(result) => (result, pipe.empty),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                })
                .map_err(|source| Error::Thread { source })?;
            let mut failed = None;
            for (mut batch, file, stats) in full_rx.iter() {
                let published = publisher.publish_batch(batch.samples_mut());
                batch.clear();
                if let Err(source) = published {
                    failed = Some((Error::Publish { file, source }, stats));
                    spare.push(batch);
                    break;
                }
                // The reader has stopped when this fails: the batch is
                // collected below either way.
                if let Err(mpsc::SendError(batch)) = empty_tx.send(batch) {
                    spare.push(batch);
                }
            }
            // A reader waiting to hand over or for an empty batch wakes
            // and stops.
            drop(full_rx);
            drop(empty_tx);
            let (result, empty_rx) = reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            spare.extend(empty_rx.try_iter());
            Ok((result, failed))
        })?;
        match failed {
            Some((error, stats)) => {
                self.build.stats = stats;
                Err(error)
            }
            None => result,
        }
    }

    /// Publishes what is pending and flushes the WAL; returns the publisher.
    pub fn finish(mut self) -> Result<(ImportStats, FeedPublisher<S>)> {
        // Every import call hands over and publishes its last batch.
        debug_assert!(self.build.out.is_empty());
        self.publisher.flush().map_err(|source| Error::Publish {
            file: self.build.file.clone(),
            source,
        })?;
        Ok((self.stats(), self.publisher))
    }
}

/// The DBN side of an import, everything but the publisher: it reads the
/// files, keeps the books and writes the records into batches, on the
/// import's reading thread (`Importer::pipelined`).
#[derive(Debug)]
struct Build {
    options: ImportOptions,
    /// The index in `states` of each DBN instrument id (FxHash: a u32 key
    /// looked up once per record).
    instruments: FxHashMap<u32, usize>,
    states: Vec<Instrument>,
    out: Batch,
    bids: Levels,
    asks: Levels,
    stats: ImportStats,
    /// The file being read (errors name it).
    file: PathBuf,
    /// Where full batches go, during an import call.
    pipe: Option<Pipe>,
}

impl Build {
    /// Reads one file to its end or its first bad record.
    fn read_file(&mut self, path: &Path) -> Result<()> {
        self.file = path.to_path_buf();
        let mut source = Source::open(path)?;
        loop {
            // In place: the record is read where the reader holds it.
            let record = match source.records.next(&source.path, source.index) {
                Ok(Some(record)) => record,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            };
            self.record(&record, &source.symbols, source.index)?;
            source.index += 1;
            self.stats.dbn_records += 1;
            if self.out.len() >= BATCH && !self.hand_over() {
                // The publisher failed: its error is the import's.
                return Ok(());
            }
        }
    }

    /// Reads several files merged in time order.
    fn read_files(&mut self, paths: &[&Path]) -> Result<()> {
        let mut sources = Vec::with_capacity(paths.len());
        for path in paths {
            self.file = path.to_path_buf();
            sources.push((Source::open(path)?, None::<dbn::RecordBuf>));
        }
        self.merge(&mut sources)
    }

    fn merge(&mut self, sources: &mut [(Source, Option<dbn::RecordBuf>)]) -> Result<()> {
        let mut open = sources.len();
        // Each file's next record, copied out of its decoder (the decoders
        // lend one record at a time).
        for (source, next) in sources.iter_mut() {
            *next = source.next_owned()?;
            if next.is_none() {
                open -= 1;
                self.stats.files += 1;
            }
        }
        while open > 0 {
            let (i, _) = sources
                .iter()
                .enumerate()
                .filter_map(|(i, (_, next))| next.as_ref().map(|r| (i, r.as_rec_ref().raw_index_ts())))
                .min_by_key(|&(i, ts)| (ts, i))
                .expect("a file with a record is left");
            let (source, next) = &mut sources[i];
            let record = next.take().expect("chosen for its record");
            self.file = source.path.clone();
            self.record(&record.as_rec_ref(), &source.symbols, source.index - 1)?;
            self.stats.dbn_records += 1;
            if self.out.len() >= BATCH && !self.hand_over() {
                // The publisher failed: its error is the import's.
                return Ok(());
            }
            *next = source.next_owned()?;
            if next.is_none() {
                open -= 1;
                self.stats.files += 1;
            }
        }
        Ok(())
    }

    /// Hands the pending records to the publishing thread (counting them)
    /// and takes an empty batch for the next; `false` when the publisher
    /// stopped (it failed: its error is the import's).
    fn hand_over(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        for sample in self.out.samples() {
            // The importer wrote these: the kind is enough.
            match sample.header().kind {
                k if k == Kind::Tick as u16 => self.stats.ticks += 1,
                k if k == Kind::BookSnapshot as u16 => self.stats.snapshots += 1,
                k if k == Kind::BookDelta as u16 => self.stats.deltas += 1,
                _ => {}
            }
        }
        let pipe = self
            .pipe
            .as_ref()
            .expect("batches are handed over during an import call");
        let Ok(empty) = pipe.empty.recv() else {
            self.out.clear();
            return false;
        };
        let full = std::mem::replace(&mut self.out, empty);
        pipe.full.send((full, self.file.clone(), self.stats)).is_ok()
    }

    fn ts(&self, ts_event: u64, ts_recv: u64) -> i64 {
        let ts = match self.options.clock {
            Clock::TsRecv if ts_recv != dbn::UNDEF_TIMESTAMP => ts_recv,
            _ => ts_event,
        };
        ts.min(i64::MAX as u64) as i64
    }

    fn record(&mut self, record: &dbn::RecordRef<'_>, symbols: &TsSymbolMap, index: u64) -> Result<()> {
        let corrupt = |reason: String| Error::Decode {
            file: self.file.clone(),
            index,
            source: dbn::Error::decode(reason),
        };
        // MBP-10 and MBP-1/TBBO have the same fields but their depth.
        macro_rules! mbp {
            ($m:expr) => {
                Mbp {
                    key: $m.hd.instrument_id,
                    ts: self.ts($m.hd.ts_event, $m.ts_recv),
                    action: $m.action as u8,
                    flags: $m.flags,
                    trade: ($m.price, $m.size),
                    levels: &$m.levels,
                }
            };
        }
        if let Some(m) = typed::<Mbp10Msg>(record).map_err(corrupt)? {
            return self.book_event(record, mbp!(m), symbols, index);
        }
        if let Some(m) = typed::<Mbp1Msg>(record).map_err(corrupt)? {
            return self.book_event(record, mbp!(m), symbols, index);
        }
        if let Some(m) = typed::<TradeMsg>(record).map_err(corrupt)? {
            let ts = self.ts(m.hd.ts_event, m.ts_recv);
            let instrument = instrument(
                Instruments {
                    index: &mut self.instruments,
                    states: &mut self.states,
                },
                &self.options,
                &mut self.stats,
                &self.file,
                m.hd.instrument_id,
                m,
                symbols,
                index,
            )?;
            instrument.volume += i64::from(m.size);
            let tick = Tick::new(instrument.id, ts)
                .last(Price(m.price), i64::from(m.size))
                .volume(instrument.volume);
            self.out.push(&tick);
            return Ok(());
        }
        if let Some(m) = typed::<MboMsg>(record).map_err(corrupt)? {
            let ts = self.ts(m.hd.ts_event, m.ts_recv);
            return self.mbo_event(m, ts, symbols, index);
        }
        // Other record types in a file of an imported schema (system or
        // symbol-mapping messages of a live capture) carry no market data.
        Ok(())
    }

    /// An MBP record: its levels are the book after the event; published
    /// at the event's last record.
    fn book_event(
        &mut self,
        record: &dbn::RecordRef<'_>,
        event: Mbp<'_>,
        symbols: &TsSymbolMap,
        index: u64,
    ) -> Result<()> {
        let Mbp {
            key,
            ts,
            action,
            flags,
            trade: (price, size),
            levels: pairs,
        } = event;
        let (mut bids, mut asks) = ([Level::EMPTY; BOOK_DEPTH], [Level::EMPTY; BOOK_DEPTH]);
        let (nb, na) = levels(pairs, &mut bids, &mut asks);
        let instrument = instrument(
            Instruments {
                index: &mut self.instruments,
                states: &mut self.states,
            },
            &self.options,
            &mut self.stats,
            &self.file,
            key,
            record,
            symbols,
            index,
        )?;
        let (bids, asks) = (&bids[..nb], &asks[..na]);
        if action == b'T' && price != UNDEF_PRICE {
            instrument.volume += i64::from(size);
            let mut tick = Tick::new(instrument.id, ts)
                .last(Price(price), i64::from(size))
                .volume(instrument.volume);
            if let Some(bid) = bids.first() {
                tick = tick.bid(bid.price, bid.qty);
            }
            if let Some(ask) = asks.first() {
                tick = tick.ask(ask.price, ask.qty);
            }
            self.out.push(&tick);
        }
        if action == b'R' || flags.is_snapshot() {
            instrument.snapshot = true;
        }
        if flags.is_last() {
            let snapshot = std::mem::take(&mut instrument.snapshot);
            instrument
                .published
                .update(instrument.id, ts, bids, asks, snapshot, &mut self.out);
        }
        Ok(())
    }

    fn mbo_event(&mut self, m: &MboMsg, ts: i64, symbols: &TsSymbolMap, index: u64) -> Result<()> {
        let instrument = instrument(
            Instruments {
                index: &mut self.instruments,
                states: &mut self.states,
            },
            &self.options,
            &mut self.stats,
            &self.file,
            m.hd.instrument_id,
            m,
            symbols,
            index,
        )?;
        let action = m.action as u8;
        match instrument
            .orders
            .apply(action, m.side as u8, m.order_id, m.price, m.size)
        {
            // A change below the top 10 publishes nothing: unless nothing
            // was published yet (the first publish is a snapshot, even of
            // an unchanged book).
            Applied::Changed { top } => {
                instrument.dirty |= if instrument.published.known() { top } else { Sides::BOTH };
            }
            Applied::Unchanged => {}
            Applied::Unknown => self.stats.unknown_orders += 1,
        }
        if action == b'R' || m.flags.is_snapshot() {
            instrument.snapshot = true;
        }
        if action == b'T' && m.price != UNDEF_PRICE {
            instrument.volume += i64::from(m.size);
            let mut tick = Tick::new(instrument.id, ts)
                .last(Price(m.price), i64::from(m.size))
                .volume(instrument.volume);
            if let Some(bid) = instrument.orders.best(Side::Bid) {
                tick = tick.bid(bid.price, bid.qty);
            }
            if let Some(ask) = instrument.orders.best(Side::Ask) {
                tick = tick.ask(ask.price, ask.qty);
            }
            self.out.push(&tick);
        }
        if m.flags.is_last() && (instrument.dirty.any() || instrument.snapshot) {
            let snapshot = std::mem::take(&mut instrument.snapshot);
            let dirty = std::mem::take(&mut instrument.dirty);
            if snapshot || !instrument.published.known() {
                instrument.orders.take_touched(Side::Bid);
                instrument.orders.take_touched(Side::Ask);
                instrument.orders.top_into(Side::Bid, &mut self.bids);
                instrument.orders.top_into(Side::Ask, &mut self.asks);
                instrument
                    .published
                    .update(instrument.id, ts, &self.bids, &self.asks, snapshot, &mut self.out);
            } else {
                // Only the sides whose top 10 changed (the deltas of a
                // side that did not would be none), bids first as above.
                for (side, changed) in [(Side::Bid, dirty.bid), (Side::Ask, dirty.ask)] {
                    if changed {
                        // Only one level's quantity changed (most events):
                        // its one delta, without copying and diffing the
                        // side's top 10 (~150 instructions, callgrind).
                        if let Touched::Qty(depth) = instrument.orders.take_touched(side)
                            && let Some(level) = instrument.orders.at_depth(side, depth)
                            && instrument
                                .published
                                .update_level(instrument.id, ts, side, depth, level, &mut self.out)
                        {
                            continue;
                        }
                        instrument.orders.top_into(side, &mut self.bids);
                        instrument
                            .published
                            .update_side(instrument.id, ts, side, &self.bids, &mut self.out);
                    }
                }
            }
        }
        Ok(())
    }
}
