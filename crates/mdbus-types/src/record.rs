//! The fixed-layout records of docs/spec.md, byte for byte.
//!
//! Every record is `#[repr(C)]`, little-endian, 8-byte aligned, with explicit
//! padding fields, and starts with a [`RecordHeader`]. Sizes and every field
//! offset are asserted at compile time below each record; [`layout_table`]
//! prints the same table docs/spec.md holds.

use std::mem::{align_of, offset_of, size_of};

use bytemuck::{Pod, Zeroable};
#[cfg(feature = "iceoryx2")]
use iceoryx2::prelude::ZeroCopySend;

use crate::error::{Error, Result};
use crate::instrument::InstrumentId;
use crate::price::{Price, Qty};

/// Number of book levels per side in snapshots and in the top-10 view.
pub const BOOK_DEPTH: usize = 10;

/// Header flag: the last record of a send batch.
pub const FLAG_END_OF_BATCH: u16 = 1 << 0;
/// Header flag: part of a snapshot set (segment start or on request).
pub const FLAG_RECOVERY_SNAPSHOT: u16 = 1 << 1;
/// All flag bits defined by docs/spec.md; the others are zero.
pub const FLAGS_KNOWN: u16 = FLAG_END_OF_BATCH | FLAG_RECOVERY_SNAPSHOT;

/// The record kinds, as `RecordHeader::kind` holds them. New kinds are
/// appended, never renumbered.
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// [`Tick`].
    Tick = 1,
    /// [`BookSnapshot`].
    BookSnapshot = 2,
    /// [`BookDelta`].
    BookDelta = 3,
    /// [`Heartbeat`].
    Heartbeat = 4,
}

impl Kind {
    /// The kind for a raw `kind` field, `None` when unknown.
    pub const fn from_u16(raw: u16) -> Option<Kind> {
        match raw {
            1 => Some(Kind::Tick),
            2 => Some(Kind::BookSnapshot),
            3 => Some(Kind::BookDelta),
            4 => Some(Kind::Heartbeat),
            _ => None,
        }
    }

    /// The name used in the JSON form: `tick`, `book_snapshot`, ...
    pub const fn json_name(self) -> &'static str {
        match self {
            Kind::Tick => "tick",
            Kind::BookSnapshot => "book_snapshot",
            Kind::BookDelta => "book_delta",
            Kind::Heartbeat => "heartbeat",
        }
    }

    /// The kind for a JSON name.
    pub fn from_json_name(name: &str) -> Option<Kind> {
        [Kind::Tick, Kind::BookSnapshot, Kind::BookDelta, Kind::Heartbeat]
            .into_iter()
            .find(|k| k.json_name() == name)
    }

    /// The size in bytes of a record of this kind.
    pub const fn record_size(self) -> usize {
        match self {
            Kind::Tick => size_of::<Tick>(),
            Kind::BookSnapshot => size_of::<BookSnapshot>(),
            Kind::BookDelta => size_of::<BookDelta>(),
            Kind::Heartbeat => size_of::<Heartbeat>(),
        }
    }
}

/// The common 32-byte header of every record.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct RecordHeader {
    /// Per feed, starts at 1, +1 per record, no holes.
    pub seq: u64,
    /// When the market event happened, ns since Unix epoch.
    pub ts_event: i64,
    /// Set by the publisher just before send (before the WAL append), ns since Unix epoch.
    pub ts_publish: i64,
    /// [`Kind`] as `u16`.
    pub kind: u16,
    /// [`FLAG_END_OF_BATCH`], [`FLAG_RECOVERY_SNAPSHOT`]; other bits 0.
    pub flags: u16,
    /// Zero.
    pub _pad: [u8; 4],
}

impl RecordHeader {
    /// A header of `kind` with `ts_event`; `seq` and `ts_publish` are set
    /// by the publisher.
    pub const fn new(kind: Kind, ts_event: i64) -> RecordHeader {
        RecordHeader {
            seq: 0,
            ts_event,
            ts_publish: 0,
            kind: kind as u16,
            flags: 0,
            _pad: [0; 4],
        }
    }

    /// The kind, or an error naming the raw value.
    pub fn kind(&self) -> Result<Kind> {
        Kind::from_u16(self.kind).ok_or(Error::UnknownKind {
            kind: self.kind,
            seq: self.seq,
        })
    }
}

const _: () = {
    assert!(size_of::<RecordHeader>() == 32);
    assert!(align_of::<RecordHeader>() == 8);
    assert!(offset_of!(RecordHeader, seq) == 0);
    assert!(offset_of!(RecordHeader, ts_event) == 8);
    assert!(offset_of!(RecordHeader, ts_publish) == 16);
    assert!(offset_of!(RecordHeader, kind) == 24);
    assert!(offset_of!(RecordHeader, flags) == 26);
    assert!(offset_of!(RecordHeader, _pad) == 28);
};

/// A trade with the top of book after it (104 bytes, kind 1).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Tick {
    /// Header, kind 1.
    pub header: RecordHeader,
    /// ASCII symbol, NUL-padded.
    pub instrument: InstrumentId,
    /// Last trade price, 1e-9 units.
    pub last_px: Price,
    /// Last trade quantity.
    pub last_qty: Qty,
    /// Best bid after the trade, 1e-9 units; `Price::NULL` when empty.
    pub bid_px: Price,
    /// Quantity at the best bid; 0 when empty.
    pub bid_qty: Qty,
    /// Best ask after the trade, 1e-9 units; `Price::NULL` when empty.
    pub ask_px: Price,
    /// Quantity at the best ask; 0 when empty.
    pub ask_qty: Qty,
    /// Cumulative traded quantity of the session.
    pub volume: Qty,
}

const _: () = {
    assert!(size_of::<Tick>() == 104);
    assert!(align_of::<Tick>() == 8);
    assert!(offset_of!(Tick, header) == 0);
    assert!(offset_of!(Tick, instrument) == 32);
    assert!(offset_of!(Tick, last_px) == 48);
    assert!(offset_of!(Tick, last_qty) == 56);
    assert!(offset_of!(Tick, bid_px) == 64);
    assert!(offset_of!(Tick, bid_qty) == 72);
    assert!(offset_of!(Tick, ask_px) == 80);
    assert!(offset_of!(Tick, ask_qty) == 88);
    assert!(offset_of!(Tick, volume) == 96);
};

impl Tick {
    /// A tick of `instrument` at `ts_event` (ns since Unix epoch) with
    /// nothing known yet: every price `Price::NULL`, every quantity 0. Fill
    /// it with [`Tick::last`], [`Tick::bid`], [`Tick::ask`] and
    /// [`Tick::volume`]; `seq` and `ts_publish` are the publisher's.
    ///
    /// ```
    /// use mdbus_types::{InstrumentId, Price, Tick};
    /// let id = InstrumentId::new("IF2501")?;
    /// let px = |s: &str| s.parse::<Price>();
    /// let tick = Tick::new(id, 1_764_000_000_000_000_000)
    ///     .last(px("4123.4")?, 2)
    ///     .bid(px("4123.2")?, 10)
    ///     .ask(px("4123.6")?, 7);
    /// assert_eq!(tick.bid_px.to_string(), "4123.2");
    /// assert!(Tick::new(id, 0).last_px.is_null());
    /// # Ok::<(), mdbus_types::Error>(())
    /// ```
    pub const fn new(instrument: InstrumentId, ts_event: i64) -> Tick {
        Tick {
            header: RecordHeader::new(Kind::Tick, ts_event),
            instrument,
            last_px: Price::NULL,
            last_qty: 0,
            bid_px: Price::NULL,
            bid_qty: 0,
            ask_px: Price::NULL,
            ask_qty: 0,
            volume: 0,
        }
    }

    /// Sets the last trade's price and quantity.
    #[must_use]
    pub const fn last(mut self, price: Price, qty: Qty) -> Tick {
        self.last_px = price;
        self.last_qty = qty;
        self
    }

    /// Sets the best bid after the trade.
    #[must_use]
    pub const fn bid(mut self, price: Price, qty: Qty) -> Tick {
        self.bid_px = price;
        self.bid_qty = qty;
        self
    }

    /// Sets the best ask after the trade.
    #[must_use]
    pub const fn ask(mut self, price: Price, qty: Qty) -> Tick {
        self.ask_px = price;
        self.ask_qty = qty;
        self
    }

    /// Sets the session's cumulative traded quantity.
    #[must_use]
    pub const fn volume(mut self, volume: Qty) -> Tick {
        self.volume = volume;
        self
    }
}

/// A tick with an empty (all-NUL) symbol, `ts_event` 0, and "nothing
/// known": prices `Price::NULL`, quantities 0. A publisher refuses it until
/// the symbol is set.
impl Default for Tick {
    fn default() -> Tick {
        Tick::new(InstrumentId::EMPTY, 0)
    }
}

/// One price level of a book side (16 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Level {
    /// Level price, 1e-9 units; `Price::NULL` for an empty level.
    pub price: Price,
    /// Total quantity at the price; 0 for an empty level.
    pub qty: Qty,
}

impl Level {
    /// An empty level: `(Price::NULL, 0)`.
    pub const EMPTY: Level = Level {
        price: Price::NULL,
        qty: 0,
    };
}

const _: () = {
    assert!(size_of::<Level>() == 16);
    assert!(offset_of!(Level, price) == 0);
    assert!(offset_of!(Level, qty) == 8);
};

/// Top 10 levels of both sides (376 bytes, kind 2).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct BookSnapshot {
    /// Header, kind 2.
    pub header: RecordHeader,
    /// ASCII symbol, NUL-padded.
    pub instrument: InstrumentId,
    /// Valid bid levels, 0..=10.
    pub bid_count: u16,
    /// Valid ask levels, 0..=10.
    pub ask_count: u16,
    /// Zero.
    pub _pad: [u8; 4],
    /// Bids, best (highest) first; `count..10` are [`Level::EMPTY`].
    pub bids: [Level; BOOK_DEPTH],
    /// Asks, best (lowest) first; `count..10` are [`Level::EMPTY`].
    pub asks: [Level; BOOK_DEPTH],
}

const _: () = {
    assert!(size_of::<BookSnapshot>() == 376);
    assert!(align_of::<BookSnapshot>() == 8);
    assert!(offset_of!(BookSnapshot, header) == 0);
    assert!(offset_of!(BookSnapshot, instrument) == 32);
    assert!(offset_of!(BookSnapshot, bid_count) == 48);
    assert!(offset_of!(BookSnapshot, ask_count) == 50);
    assert!(offset_of!(BookSnapshot, _pad) == 52);
    assert!(offset_of!(BookSnapshot, bids) == 56);
    assert!(offset_of!(BookSnapshot, asks) == 216);
};

impl BookSnapshot {
    /// An empty book of `instrument` (both sides count 0, levels NULL).
    pub fn empty(instrument: InstrumentId, ts_event: i64) -> BookSnapshot {
        BookSnapshot {
            header: RecordHeader::new(Kind::BookSnapshot, ts_event),
            instrument,
            bid_count: 0,
            ask_count: 0,
            _pad: [0; 4],
            bids: [Level::EMPTY; BOOK_DEPTH],
            asks: [Level::EMPTY; BOOK_DEPTH],
        }
    }

    /// The valid bid levels, best first.
    pub fn bid_levels(&self) -> &[Level] {
        &self.bids[..usize::from(self.bid_count).min(BOOK_DEPTH)]
    }

    /// The valid ask levels, best first.
    pub fn ask_levels(&self) -> &[Level] {
        &self.asks[..usize::from(self.ask_count).min(BOOK_DEPTH)]
    }
}

/// An empty book with an empty (all-NUL) symbol: both counts 0, every
/// level [`Level::EMPTY`] (`Price::NULL`, 0).
impl Default for BookSnapshot {
    fn default() -> BookSnapshot {
        BookSnapshot::empty(InstrumentId::EMPTY, 0)
    }
}

impl Default for Level {
    fn default() -> Level {
        Level::EMPTY
    }
}

/// Book side of a [`BookDelta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bids (`side` 0).
    Bid,
    /// Asks (`side` 1).
    Ask,
}

impl Side {
    /// The raw `side` byte.
    pub const fn as_u8(self) -> u8 {
        match self {
            Side::Bid => 0,
            Side::Ask => 1,
        }
    }

    /// The side for a raw byte, `None` for anything but 0 and 1.
    pub const fn from_u8(raw: u8) -> Option<Side> {
        match raw {
            0 => Some(Side::Bid),
            1 => Some(Side::Ask),
            _ => None,
        }
    }
}

/// One level change of the top-10 view (72 bytes, kind 3).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct BookDelta {
    /// Header, kind 3.
    pub header: RecordHeader,
    /// ASCII symbol, NUL-padded.
    pub instrument: InstrumentId,
    /// Level price, 1e-9 units.
    pub price: Price,
    /// New total quantity at that price; 0 removes the level.
    pub qty: Qty,
    /// 0 bid, 1 ask.
    pub side: u8,
    /// Zero.
    pub _pad: [u8; 7],
}

const _: () = {
    assert!(size_of::<BookDelta>() == 72);
    assert!(align_of::<BookDelta>() == 8);
    assert!(offset_of!(BookDelta, header) == 0);
    assert!(offset_of!(BookDelta, instrument) == 32);
    assert!(offset_of!(BookDelta, price) == 48);
    assert!(offset_of!(BookDelta, qty) == 56);
    assert!(offset_of!(BookDelta, side) == 64);
    assert!(offset_of!(BookDelta, _pad) == 65);
};

impl BookDelta {
    /// A delta of `instrument` at `price` on `side`.
    pub fn new(instrument: InstrumentId, side: Side, price: Price, qty: Qty, ts_event: i64) -> BookDelta {
        BookDelta {
            header: RecordHeader::new(Kind::BookDelta, ts_event),
            instrument,
            price,
            qty,
            side: side.as_u8(),
            _pad: [0; 7],
        }
    }
}

/// A bid delta of an empty symbol at `Price::NULL`, qty 0: a publisher
/// refuses it until the symbol and the price are set.
impl Default for BookDelta {
    fn default() -> BookDelta {
        BookDelta::new(InstrumentId::EMPTY, Side::Bid, Price::NULL, 0, 0)
    }
}

/// Sent when a feed is quiet so that gaps are seen without traffic
/// (32 bytes, kind 4); also closes a snapshot set.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Heartbeat {
    /// Header, kind 4.
    pub header: RecordHeader,
}

impl Heartbeat {
    /// A heartbeat at `ts_event` (ns since Unix epoch).
    pub const fn new(ts_event: i64) -> Heartbeat {
        Heartbeat {
            header: RecordHeader::new(Kind::Heartbeat, ts_event),
        }
    }
}

impl Default for Heartbeat {
    fn default() -> Heartbeat {
        Heartbeat::new(0)
    }
}

const _: () = {
    assert!(size_of::<Heartbeat>() == 32);
    assert!(offset_of!(Heartbeat, header) == 0);
};

/// Size of [`MdSample`] in bytes: the largest record.
pub const SAMPLE_SIZE: usize = 376;
const SAMPLE_WORDS: usize = SAMPLE_SIZE / 8;

/// The one shared-memory payload of a feed: any one record at offset 0
/// (`header.kind` says which), the tail zeroed. 376 bytes, align 8.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[cfg_attr(feature = "iceoryx2", derive(ZeroCopySend))]
#[cfg_attr(feature = "iceoryx2", type_name("mdbus::v1::MdSample"))]
pub struct MdSample {
    /// The record's bytes as little-endian words.
    pub words: [u64; SAMPLE_WORDS],
}

const _: () = {
    assert!(size_of::<MdSample>() == SAMPLE_SIZE);
    assert!(align_of::<MdSample>() == 8);
    assert!(offset_of!(MdSample, words) == 0);
};

/// Implemented by the four record types.
pub trait Record: Pod + std::fmt::Debug {
    /// The record's kind.
    const KIND: Kind;
    /// The record's type name, as in docs/spec.md.
    const NAME: &'static str;
    /// The header at offset 0.
    fn header(&self) -> &RecordHeader;
    /// The header at offset 0, mutable.
    fn header_mut(&mut self) -> &mut RecordHeader;

    /// The record as a [`RecordRef`], checked as a reader checks it: an
    /// error when `header.kind` is not this type's kind.
    fn to_ref(&self) -> Result<RecordRef<'_>> {
        RecordRef::from_bytes(bytemuck::bytes_of(self))
    }
}

macro_rules! impl_record {
    ($ty:ident, $kind:expr) => {
        impl Record for $ty {
            const KIND: Kind = $kind;
            const NAME: &'static str = stringify!($ty);
            #[inline]
            fn header(&self) -> &RecordHeader {
                &self.header
            }
            #[inline]
            fn header_mut(&mut self) -> &mut RecordHeader {
                &mut self.header
            }
        }

        impl From<$ty> for MdSample {
            #[inline]
            fn from(record: $ty) -> MdSample {
                MdSample::from_record(&record)
            }
        }
    };
}

impl_record!(Tick, Kind::Tick);
impl_record!(BookSnapshot, Kind::BookSnapshot);
impl_record!(BookDelta, Kind::BookDelta);
impl_record!(Heartbeat, Kind::Heartbeat);

/// A typed borrowed view of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordRef<'a> {
    /// A [`Tick`].
    Tick(&'a Tick),
    /// A [`BookSnapshot`].
    BookSnapshot(&'a BookSnapshot),
    /// A [`BookDelta`].
    BookDelta(&'a BookDelta),
    /// A [`Heartbeat`].
    Heartbeat(&'a Heartbeat),
}

fn cast_exact<T: Record>(bytes: &[u8]) -> Result<&T> {
    bytemuck::try_from_bytes(bytes).map_err(|_| Error::Size {
        record: T::NAME,
        expected: size_of::<T>(),
        actual: bytes.len(),
    })
}

impl<'a> RecordRef<'a> {
    /// Reads a record from exactly its bytes (8-aligned, little-endian),
    /// e.g. a WAL payload. The kind comes from the header; an unknown kind
    /// or a length that is not the kind's size is an error.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<RecordRef<'a>> {
        let header: &RecordHeader = bytes
            .get(..size_of::<RecordHeader>())
            .and_then(|h| bytemuck::try_from_bytes(h).ok())
            .ok_or(Error::Size {
                record: "RecordHeader",
                expected: size_of::<RecordHeader>(),
                actual: bytes.len(),
            })?;
        RecordRef::of_kind(header.kind()?, bytes)
    }

    /// Reads exactly the bytes of a record of `kind` (8-aligned), whose
    /// kind the caller already knows (a checked WAL frame): the one place
    /// where a kind becomes a typed reference. A length that is not the
    /// kind's size, or misaligned bytes, is an error.
    #[inline]
    pub fn of_kind(kind: Kind, bytes: &'a [u8]) -> Result<RecordRef<'a>> {
        Ok(match kind {
            Kind::Tick => RecordRef::Tick(cast_exact(bytes)?),
            Kind::BookSnapshot => RecordRef::BookSnapshot(cast_exact(bytes)?),
            Kind::BookDelta => RecordRef::BookDelta(cast_exact(bytes)?),
            Kind::Heartbeat => RecordRef::Heartbeat(cast_exact(bytes)?),
        })
    }

    /// The header.
    pub fn header(&self) -> &'a RecordHeader {
        match *self {
            RecordRef::Tick(r) => &r.header,
            RecordRef::BookSnapshot(r) => &r.header,
            RecordRef::BookDelta(r) => &r.header,
            RecordRef::Heartbeat(r) => &r.header,
        }
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            RecordRef::Tick(_) => Kind::Tick,
            RecordRef::BookSnapshot(_) => Kind::BookSnapshot,
            RecordRef::BookDelta(_) => Kind::BookDelta,
            RecordRef::Heartbeat(_) => Kind::Heartbeat,
        }
    }

    /// The instrument, `None` for a heartbeat.
    pub fn instrument(&self) -> Option<InstrumentId> {
        match *self {
            RecordRef::Tick(r) => Some(r.instrument),
            RecordRef::BookSnapshot(r) => Some(r.instrument),
            RecordRef::BookDelta(r) => Some(r.instrument),
            RecordRef::Heartbeat(_) => None,
        }
    }

    /// The record's own bytes (its size, not the sample's).
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            RecordRef::Tick(r) => bytemuck::bytes_of(r),
            RecordRef::BookSnapshot(r) => bytemuck::bytes_of(r),
            RecordRef::BookDelta(r) => bytemuck::bytes_of(r),
            RecordRef::Heartbeat(r) => bytemuck::bytes_of(r),
        }
    }

    /// The record copied into an [`MdSample`].
    pub fn to_sample(&self) -> MdSample {
        MdSample::from_bytes_unchecked_kind(self.as_bytes())
    }
}

impl MdSample {
    /// A sample holding `record` at offset 0, the tail zeroed.
    #[inline]
    pub fn from_record<R: Record>(record: &R) -> MdSample {
        MdSample::from_bytes_unchecked_kind(bytemuck::bytes_of(record))
    }

    #[inline]
    fn from_bytes_unchecked_kind(bytes: &[u8]) -> MdSample {
        crate::copies::note();
        let mut sample = MdSample::zeroed();
        bytemuck::bytes_of_mut(&mut sample)[..bytes.len()].copy_from_slice(bytes);
        sample
    }

    /// The header at offset 0 (whatever the kind).
    #[inline]
    pub fn header(&self) -> &RecordHeader {
        bytemuck::from_bytes(&bytemuck::bytes_of(self)[..size_of::<RecordHeader>()])
    }

    /// The header at offset 0, mutable (the publisher stamps `seq`,
    /// `ts_publish` and `flags` here).
    #[inline]
    pub fn header_mut(&mut self) -> &mut RecordHeader {
        bytemuck::from_bytes_mut(&mut bytemuck::bytes_of_mut(self)[..size_of::<RecordHeader>()])
    }

    /// The typed record; an unknown `kind` is an error, never a panic.
    pub fn record(&self) -> Result<RecordRef<'_>> {
        let kind = self.header().kind()?;
        RecordRef::from_bytes(&bytemuck::bytes_of(self)[..kind.record_size()])
    }

    /// The record's own bytes (`len` of its kind); an unknown kind is an error.
    pub fn record_bytes(&self) -> Result<&[u8]> {
        let kind = self.header().kind()?;
        Ok(&bytemuck::bytes_of(self)[..kind.record_size()])
    }

    /// All 376 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::bytes_of(self)
    }
}

impl std::fmt::Debug for MdSample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.record() {
            Ok(record) => f.debug_tuple("MdSample").field(&record).finish(),
            Err(_) => f
                .debug_struct("MdSample")
                .field("header", self.header())
                .finish_non_exhaustive(),
        }
    }
}

impl Default for MdSample {
    fn default() -> MdSample {
        MdSample::zeroed()
    }
}

/// One row of the layout table: a field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRow {
    /// Record type name.
    pub record: &'static str,
    /// Size of the record.
    pub record_size: usize,
    /// Field offset in bytes.
    pub offset: usize,
    /// Field size in bytes.
    pub size: usize,
    /// Field name.
    pub field: &'static str,
    /// Field type as docs/spec.md writes it.
    pub ty: &'static str,
}

macro_rules! rows {
    ($out:ident, $rec:ty, $name:literal, $( $field:ident : $ty:literal ),+ $(,)?) => {{
        let zero = <$rec as Zeroable>::zeroed();
        $(
            $out.push(LayoutRow {
                record: $name,
                record_size: size_of::<$rec>(),
                offset: offset_of!($rec, $field),
                size: std::mem::size_of_val(&zero.$field),
                field: stringify!($field),
                ty: $ty,
            });
        )+
    }};
}

/// The layout table of every record, from the code (offsets from
/// `offset_of!`, sizes from `size_of`), in docs/spec.md's order.
pub fn layout_table() -> Vec<LayoutRow> {
    let mut out = Vec::new();
    rows!(out, RecordHeader, "RecordHeader",
        seq: "u64", ts_event: "i64", ts_publish: "i64", kind: "u16", flags: "u16", _pad: "[u8; 4]");
    rows!(out, Tick, "Tick",
        header: "RecordHeader", instrument: "[u8; 16]", last_px: "Price", last_qty: "Qty",
        bid_px: "Price", bid_qty: "Qty", ask_px: "Price", ask_qty: "Qty", volume: "Qty");
    rows!(out, Level, "Level", price: "Price", qty: "Qty");
    rows!(out, BookSnapshot, "BookSnapshot",
        header: "RecordHeader", instrument: "[u8; 16]", bid_count: "u16", ask_count: "u16",
        _pad: "[u8; 4]", bids: "[Level; 10]", asks: "[Level; 10]");
    rows!(out, BookDelta, "BookDelta",
        header: "RecordHeader", instrument: "[u8; 16]", price: "Price", qty: "Qty",
        side: "u8", _pad: "[u8; 7]");
    rows!(out, Heartbeat, "Heartbeat", header: "RecordHeader");
    rows!(out, MdSample, "MdSample", words: "[u64; 47]");
    out
}

/// The layout table as docs/spec.md's markdown rows:
/// `| Tick (104) | 0 | 32 | header | RecordHeader |` (record name on a
/// record's first row only; the meaning column is left out).
pub fn layout_table_markdown() -> String {
    let mut out = String::from("| record | off | size | field | type |\n|---|---|---|---|---|\n");
    let mut last = "";
    for row in layout_table() {
        let name = if row.record != last {
            format!("{} ({})", row.record, row.record_size)
        } else {
            String::new()
        };
        last = row.record;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            name, row.offset, row.size, row.field, row.ty
        ));
    }
    out
}

// The rkyv archive of each record is its plain bytes (docs/spec.md's WAL
// frames hold it): same size and alignment, no relative pointers.
const _: () = {
    assert!(size_of::<ArchivedRecordHeader>() == 32);
    assert!(size_of::<ArchivedTick>() == 104);
    assert!(size_of::<ArchivedLevel>() == 16);
    assert!(size_of::<ArchivedBookSnapshot>() == 376);
    assert!(size_of::<ArchivedBookDelta>() == 72);
    assert!(size_of::<ArchivedHeartbeat>() == 32);
    assert!(align_of::<ArchivedTick>() == 8);
    assert!(align_of::<ArchivedBookSnapshot>() == 8);
    assert!(offset_of!(ArchivedBookSnapshot, bids) == 56);
    assert!(offset_of!(ArchivedBookDelta, side) == 64);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_implicit_padding_field_sizes_sum_to_record_size() {
        let table = layout_table();
        for record in [
            "RecordHeader",
            "Tick",
            "Level",
            "BookSnapshot",
            "BookDelta",
            "Heartbeat",
            "MdSample",
        ] {
            let rows: Vec<_> = table.iter().filter(|r| r.record == record).collect();
            let mut next = 0;
            for r in &rows {
                assert_eq!(r.offset, next, "{record}.{} leaves a gap", r.field);
                next += r.size;
            }
            assert_eq!(next, rows[0].record_size, "{record} has trailing padding");
        }
    }

    #[test]
    fn unknown_kind_is_an_error_not_a_panic() {
        let mut sample = MdSample::from(Heartbeat {
            header: RecordHeader::new(Kind::Heartbeat, 5),
        });
        sample.header_mut().kind = 9;
        sample.header_mut().seq = 77;
        let err = sample.record().unwrap_err();
        assert_eq!(err, Error::UnknownKind { kind: 9, seq: 77 });
        assert!(format!("{sample:?}").contains("MdSample"));
    }

    #[test]
    fn record_from_bytes_checks_length() {
        let tick = Tick::zeroed();
        let mut tick = tick;
        tick.header.kind = Kind::Tick as u16;
        let bytes = bytemuck::bytes_of(&tick);
        assert!(RecordRef::from_bytes(bytes).is_ok());
        // A tick header on 376 bytes is not a tick.
        let sample = MdSample::from(tick);
        assert!(matches!(
            RecordRef::from_bytes(sample.as_bytes()),
            Err(Error::Size {
                record: "Tick",
                expected: 104,
                actual: 376
            })
        ));
        assert!(RecordRef::from_bytes(&bytes[..16]).is_err());
    }
}
