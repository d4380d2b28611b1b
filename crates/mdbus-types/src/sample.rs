//! [`MdSample`], the one shared-memory payload of a feed, and
//! [`RecordRef`], the typed borrowed view of any record (from a sample, a
//! WAL frame or a record's own bytes).

use std::mem::{align_of, offset_of, size_of};

use bytemuck::{Pod, Zeroable};
#[cfg(feature = "iceoryx2")]
use iceoryx2::prelude::ZeroCopySend;

use crate::error::{Error, Result};
use crate::instrument::InstrumentId;
use crate::record::{BookDelta, BookSnapshot, Heartbeat, Kind, Record, RecordHeader, Tick};

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

/// `bytes` as a `T` when they are exactly its size and aligned.
#[inline(always)]
fn cast<T: Record>(bytes: &[u8]) -> Option<&T> {
    bytemuck::try_from_bytes(bytes).ok()
}

/// The error of bytes that are not a record of `kind`.
#[cold]
fn size_error(kind: Kind, actual: usize) -> Error {
    let record = match kind {
        Kind::Tick => Tick::NAME,
        Kind::BookSnapshot => BookSnapshot::NAME,
        Kind::BookDelta => BookDelta::NAME,
        Kind::Heartbeat => Heartbeat::NAME,
    };
    Error::Size {
        record,
        expected: kind.record_size(),
        actual,
    }
}

impl<'a> RecordRef<'a> {
    /// Reads a record from exactly its bytes (8-aligned, little-endian),
    /// e.g. a WAL payload. The kind comes from the header; an unknown kind
    /// or a length that is not the kind's size is an error.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<RecordRef<'a>> {
        // A match, not `ok_or`: that built and dropped the error on every
        // record.
        let header: &RecordHeader = match bytes
            .get(..size_of::<RecordHeader>())
            .and_then(|h| bytemuck::try_from_bytes(h).ok())
        {
            Some(header) => header,
            None => {
                return Err(Error::Size {
                    record: "RecordHeader",
                    expected: size_of::<RecordHeader>(),
                    actual: bytes.len(),
                });
            }
        };
        RecordRef::of_kind(header.kind()?, bytes)
    }

    /// Reads exactly the bytes of a record of `kind` (8-aligned), whose
    /// kind the caller already knows (a checked WAL frame): the one place
    /// where a kind becomes a typed reference. A length that is not the
    /// kind's size, or misaligned bytes, is an error.
    #[inline]
    pub fn of_kind(kind: Kind, bytes: &'a [u8]) -> Result<RecordRef<'a>> {
        RecordRef::try_of_kind(kind, bytes).ok_or_else(|| size_error(kind, bytes.len()))
    }

    /// [`RecordRef::of_kind`] without the error (`None`): small enough to
    /// stay in registers on a replay hot path.
    #[inline(always)]
    pub fn try_of_kind(kind: Kind, bytes: &'a [u8]) -> Option<RecordRef<'a>> {
        Some(match kind {
            Kind::Tick => RecordRef::Tick(cast(bytes)?),
            Kind::BookSnapshot => RecordRef::BookSnapshot(cast(bytes)?),
            Kind::BookDelta => RecordRef::BookDelta(cast(bytes)?),
            Kind::Heartbeat => RecordRef::Heartbeat(cast(bytes)?),
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

    /// The record copied into `sample` in place, its tail zeroed: what
    /// [`RecordRef::to_sample`] makes, without a new sample. Each kind's
    /// copy has its size known at compile time.
    #[inline]
    pub fn copy_into(&self, sample: &mut MdSample) {
        #[inline(always)]
        fn copy<T: Pod>(record: &T, sample: &mut MdSample) {
            crate::copies::note();
            let bytes = bytemuck::bytes_of_mut(sample);
            bytes[..size_of::<T>()].copy_from_slice(bytemuck::bytes_of(record));
            bytes[size_of::<T>()..].fill(0);
        }
        match *self {
            RecordRef::Tick(r) => copy(r, sample),
            RecordRef::BookSnapshot(r) => copy(r, sample),
            RecordRef::BookDelta(r) => copy(r, sample),
            RecordRef::Heartbeat(r) => copy(r, sample),
        }
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
    #[inline]
    pub fn record(&self) -> Result<RecordRef<'_>> {
        let kind = self.header().kind()?;
        RecordRef::of_kind(kind, &bytemuck::bytes_of(self)[..kind.record_size()])
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// In place over a sample whose every byte is set, each kind leaves
    /// what `to_sample` makes: its bytes, then zeros to the end.
    #[test]
    fn copy_into_leaves_what_to_sample_makes() {
        let id = InstrumentId::new("IF2501").unwrap();
        let mut tick = Tick::zeroed();
        tick.header = RecordHeader::new(Kind::Tick, 3);
        tick.instrument = id;
        let snapshot = BookSnapshot::empty(id, 4);
        let delta = BookDelta::new(id, crate::Side::Bid, crate::Price::from_raw(7), 2, 5);
        let heartbeat = Heartbeat {
            header: RecordHeader::new(Kind::Heartbeat, 6),
        };
        let records = [
            RecordRef::Tick(&tick),
            RecordRef::BookSnapshot(&snapshot),
            RecordRef::BookDelta(&delta),
            RecordRef::Heartbeat(&heartbeat),
        ];
        for record in records {
            let mut sample = MdSample {
                words: [u64::MAX; SAMPLE_WORDS],
            };
            record.copy_into(&mut sample);
            assert_eq!(sample, record.to_sample(), "{record:?}");
            assert_eq!(sample.record().unwrap(), record);
            assert!(sample.as_bytes()[record.as_bytes().len()..].iter().all(|&b| b == 0));
        }
    }
}
