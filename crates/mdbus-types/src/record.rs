//! The fixed-layout records of docs/spec.md, byte for byte.
//!
//! Every record is `#[repr(C)]`, little-endian, 8-byte aligned, with explicit
//! padding fields, and starts with a [`RecordHeader`]. Sizes and every field
//! offset are asserted at compile time below each record;
//! [`layout_table`](crate::layout_table) prints the same table docs/spec.md
//! holds. [`MdSample`] and [`RecordRef`] are in `sample.rs`.

use std::mem::{align_of, offset_of, size_of};

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::instrument::InstrumentId;
use crate::price::{Price, Qty};
use crate::sample::{MdSample, RecordRef};

/// Number of book levels per side in snapshots and in the top-10 view.
pub const BOOK_DEPTH: usize = 10;

/// Header flag: the last record of a send batch.
pub const FLAG_END_OF_BATCH: u16 = 1 << 0;
/// Header flag: part of a snapshot set (segment start or on request).
pub const FLAG_RECOVERY_SNAPSHOT: u16 = 1 << 1;
/// Header flag, on a heartbeat: a played recording ended (`mdbus play`):
/// "the recording ended", not "the feed went quiet".
pub const FLAG_END_OF_RECORDING: u16 = 1 << 2;
/// All flag bits defined by docs/spec.md; the others are zero.
pub const FLAGS_KNOWN: u16 = FLAG_END_OF_BATCH | FLAG_RECOVERY_SNAPSHOT | FLAG_END_OF_RECORDING;

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
    /// [`FLAG_END_OF_BATCH`], [`FLAG_RECOVERY_SNAPSHOT`],
    /// [`FLAG_END_OF_RECORDING`]; other bits 0.
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
        // A match, not `ok_or`: that built the error and dropped it again
        // (a call to the whole enum's drop) on every record of the hot path.
        match Kind::from_u16(self.kind) {
            Some(kind) => Ok(kind),
            None => Err(Error::UnknownKind {
                kind: self.kind,
                seq: self.seq,
            }),
        }
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
