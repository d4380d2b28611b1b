//! The records of an uncompressed DBN file of the current version (3),
//! read in 1 MiB blocks and lent in place: no per-record state machine.
//!
//! `dbn`'s decoder reads the file through its 64 KiB buffer and decodes
//! one record per call through a state machine that also upgrades old
//! versions: ~190 instructions per 56-byte MBO record (callgrind), more
//! than the MBO book's own work. A DBN 3 file needs no upgrade: its
//! records are used where they lie. Compressed files and older versions
//! still go through the decoder.

use std::fs::File;
use std::io::{self, Read as _};
use std::path::Path;

use dbn::decode::DbnMetadata;
use dbn::{Metadata, RecordHeader, VersionUpgradePolicy};

/// Bytes read per `read` call (and the most a record may be, which DBN's
/// one-byte length in 4-byte words keeps at 1020).
const BLOCK: usize = 1 << 20;

/// What [`Records::next`] found.
#[derive(Debug)]
pub(crate) enum Next<'a> {
    /// A whole record.
    Record(dbn::RecordRef<'a>),
    /// The end of the file, after a whole record.
    End,
    /// The file ends `left` bytes into a record.
    Cut {
        /// The bytes of the cut record that the file holds.
        left: u64,
    },
    /// A record whose length is shorter than its header.
    Corrupt(dbn::Error),
}

/// An uncompressed DBN 3 file's records.
pub(crate) struct Records {
    file: File,
    /// 8-byte aligned (DBN records are, in memory); `[start..end)` read,
    /// not yet lent.
    block: Vec<u64>,
    start: usize,
    end: usize,
    /// The file has no more bytes.
    eof: bool,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("start", &self.start)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl Records {
    /// The file's records and metadata when it is an uncompressed DBN
    /// file of version 3 whose metadata decodes; `None` for anything else
    /// (the decoder then reads it, and names what is wrong).
    pub(crate) fn open(path: &Path) -> io::Result<Option<(Records, Metadata)>> {
        let mut file = File::open(path)?;
        let mut prelude = [0u8; 8];
        if read_full(&mut file, &mut prelude)? < prelude.len()
            || &prelude[..3] != b"DBN"
            || prelude[3] != dbn::DBN_VERSION
        {
            return Ok(None);
        }
        let metadata_len = u32::from_le_bytes([prelude[4], prelude[5], prelude[6], prelude[7]]) as usize;
        let mut head = prelude.to_vec();
        head.resize(8 + metadata_len, 0);
        if read_full(&mut file, &mut head[8..])? < metadata_len {
            return Ok(None);
        }
        let Ok(decoder) = dbn::decode::dbn::Decoder::with_upgrade_policy(&head[..], VersionUpgradePolicy::UpgradeToV3)
        else {
            return Ok(None);
        };
        let metadata = decoder.metadata().clone();
        Ok(Some((
            Records {
                file,
                block: vec![0; BLOCK / 8],
                start: 0,
                end: 0,
                eof: false,
            },
            metadata,
        )))
    }

    /// The next record.
    #[inline]
    pub(crate) fn next(&mut self) -> io::Result<Next<'_>> {
        let at = loop {
            let available = self.end - self.start;
            if available > 0 {
                let length = bytemuck::cast_slice::<u64, u8>(&self.block)[self.start];
                let len = usize::from(length) * RecordHeader::LENGTH_MULTIPLIER;
                if len < size_of::<RecordHeader>() {
                    return Ok(Next::Corrupt(dbn::Error::decode(format!(
                        "invalid record with impossible length {len} which is shorter than the header"
                    ))));
                }
                if len <= available {
                    if self.start.is_multiple_of(8) {
                        let at = self.start;
                        self.start += len;
                        break at..at + len;
                    }
                    // After a record of 4 bytes more than a multiple of 8
                    // (none of the imported types is one).
                    self.shift();
                    continue;
                }
            }
            if self.eof {
                return Ok(match available {
                    0 => Next::End,
                    left => Next::Cut { left: left as u64 },
                });
            }
            self.refill()?;
        };
        let record = &bytemuck::cast_slice::<u64, u8>(&self.block)[at];
        // SAFETY: `record` is 8-byte aligned (`block` is u64s and its
        // start a multiple of 8), at least a header long, and holds all
        // the bytes its header's `length` gives, as `RecordRef` requires;
        // which type of record it is, `RecordRef::has` and `get` check by
        // its `rtype`, and the importer checks the length against the type
        // before `get` (`import::typed`).
        Ok(Next::Record(unsafe { dbn::RecordRef::new(record) }))
    }

    /// Moves the unread bytes to the front of the block (aligned again).
    #[cold]
    fn shift(&mut self) {
        bytemuck::cast_slice_mut::<u64, u8>(&mut self.block).copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    /// Moves the unread bytes to the front and reads more after them.
    #[cold]
    fn refill(&mut self) -> io::Result<()> {
        self.shift();
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut self.block);
        let read = read_full(&mut self.file, &mut bytes[self.end..])?;
        self.end += read;
        self.eof = read == 0;
        Ok(())
    }
}

/// Reads until `buf` is full or the file ends; the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut read = 0;
    while read < buf.len() {
        match file.read(&mut buf[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbn::decode::DecodeRecordRef;
    use dbn::encode::{DbnEncoder, EncodeRecord};
    use dbn::{FlagSet, MboMsg, RecordHeader, Schema, rtype};

    /// A DBN 3 file of `n` MBO records; its bytes.
    fn mbo_file(path: &Path, n: u64) -> Vec<u8> {
        let metadata = Metadata::builder()
            .dataset("TEST".to_string())
            .schema(Some(Schema::Mbo))
            .start(0)
            .stype_in(Some(dbn::SType::RawSymbol))
            .stype_out(dbn::SType::InstrumentId)
            .build();
        let mut encoder = DbnEncoder::new(File::create(path).unwrap(), &metadata).unwrap();
        for i in 0..n {
            let msg = MboMsg {
                hd: RecordHeader::new::<MboMsg>(rtype::MBO, 1, 7, i),
                order_id: i,
                price: 100 + i as i64,
                size: 1,
                flags: FlagSet::default(),
                channel_id: 0,
                action: b'A' as std::ffi::c_char,
                side: b'B' as std::ffi::c_char,
                ts_recv: i,
                ts_in_delta: 0,
                sequence: 0,
            };
            encoder.encode_record(&msg).unwrap();
        }
        drop(encoder);
        std::fs::read(path).unwrap()
    }

    /// The records `dbn`'s decoder reads, and then a cut record and a
    /// record shorter than its header.
    #[test]
    fn reads_what_the_decoder_reads_and_tells_a_cut_and_a_bad_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mbo.dbn");
        // More than one block, so the refill runs mid-record.
        let n = (2 * BLOCK / size_of::<MboMsg>()) as u64 + 3;
        let bytes = mbo_file(&path, n);
        let (mut records, metadata) = Records::open(&path).unwrap().expect("a DBN 3 file");
        assert_eq!(metadata.schema, Some(Schema::Mbo));
        let mut decoder = dbn::decode::dbn::Decoder::from_file(&path).unwrap();
        let mut seen = 0;
        while let Some(expected) = decoder.decode_record_ref().unwrap() {
            let Next::Record(record) = records.next().unwrap() else {
                panic!("record {seen}")
            };
            assert_eq!(record.get::<MboMsg>(), expected.get::<MboMsg>());
            seen += 1;
        }
        assert!(matches!(records.next().unwrap(), Next::End));
        assert_eq!(seen, n);

        let cut = dir.path().join("cut.mbo.dbn");
        std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
        let (mut records, _) = Records::open(&cut).unwrap().unwrap();
        for _ in 0..n - 1 {
            assert!(matches!(records.next().unwrap(), Next::Record(_)));
        }
        assert!(matches!(records.next().unwrap(), Next::Cut { left } if left == size_of::<MboMsg>() as u64 - 10));

        let mut bad = bytes.clone();
        let second = bytes.len() - (n as usize - 1) * size_of::<MboMsg>();
        bad[second] = 1; // 4 bytes: shorter than a header
        std::fs::write(&cut, &bad).unwrap();
        let (mut records, _) = Records::open(&cut).unwrap().unwrap();
        assert!(matches!(records.next().unwrap(), Next::Record(_)));
        assert!(matches!(records.next().unwrap(), Next::Corrupt(_)));

        // Not DBN 3 (nor DBN): left to the decoder.
        bad[3] = 2;
        std::fs::write(&cut, &bad).unwrap();
        assert!(Records::open(&cut).unwrap().is_none());
        std::fs::write(&cut, "not dbn").unwrap();
        assert!(Records::open(&cut).unwrap().is_none());
    }
}
