//! The wire format: a Zenoh message is records in the documented layout
//! (docs/spec.md, the WAL payload and the iceoryx2 sample's bytes),
//! concatenated, in seq order, nothing else. Every record size is a
//! multiple of 8, so each record of a message copied to an 8-aligned
//! buffer is 8-aligned too. Keys: `mdbus/<feed>/md` (the stream),
//! `mdbus/<feed>/wal/<from>..<to>` (gap fill, inclusive),
//! `mdbus/<feed>/recovery_point` (where a new replica starts), and the
//! liveliness token `mdbus/<feed>/bridge_out` (a sending bridge is up).
//!
//! Every payload a bridge sends with data in it (a stream message, a
//! gap-fill reply, the recovery point) carries its CRC-32C in the Zenoh
//! attachment ([`checksum`]), a gone reply in its text ([`gone_reply`]),
//! and a receiver uses none whose checksum does not match ([`verify`]). A
//! record's body has no check of its own on the wire, and after the veth
//! test's 6 s link cut a replica once held a record with the source's seq
//! and other bytes (CI, 2026-12-03). The likely path, read in Zenoh 1.10's
//! source: Zenoh closes a link whose Block put waited 5 s by cancelling a
//! socket write that may have sent half a batch, and a link that comes
//! back within the close delivers the rest of another batch in its place
//! (docs/spec.md, "Bridge across hosts").

use mdbus_types::{Kind, RecordHeader, RecordRef};

use crate::error::{Error, Result};

/// Byte offset of `kind` (u16, little-endian) in a record.
const KIND_OFFSET: usize = 24;

/// The key of a feed's record stream.
pub fn md_key(feed: &str) -> String {
    format!("mdbus/{feed}/md")
}

/// The key expression of a feed's gap-fill queryable.
pub fn wal_keys(feed: &str) -> String {
    format!("mdbus/{feed}/wal/*")
}

/// The selector of a gap-fill query for `from..=to`.
pub fn wal_query(feed: &str, from: u64, to: u64) -> String {
    format!("mdbus/{feed}/wal/{from}..{to}")
}

/// The key of a feed's recovery-point queryable.
pub fn recovery_point_key(feed: &str) -> String {
    format!("mdbus/{feed}/recovery_point")
}

/// The liveliness token a sending bridge holds while it runs: receivers
/// see the link to it come and go (link state, reconnects).
pub fn bridge_out_token_key(feed: &str) -> String {
    format!("mdbus/{feed}/bridge_out")
}

/// The range `from..=to` of a gap-fill key (its last chunk `<from>..<to>`).
pub fn parse_range(key: &str) -> Result<(u64, u64)> {
    let bad = || Error::BadQuery {
        what: "range",
        text: key.to_string(),
    };
    let last = key.rsplit('/').next().ok_or_else(bad)?;
    let (from, to) = last.split_once("..").ok_or_else(bad)?;
    let (from, to) = (from.parse().map_err(|_| bad())?, to.parse().map_err(|_| bad())?);
    if from > to || from == 0 {
        return Err(bad());
    }
    Ok((from, to))
}

/// The attachment of a payload: its CRC-32C (Castagnoli, the WAL's
/// checksum), 4 bytes, little-endian.
pub fn checksum(payload: &[u8]) -> [u8; 4] {
    crc32c::crc32c(payload).to_le_bytes()
}

/// Checks a payload against its attachment (see [`checksum`]): a payload
/// without one, or whose bytes do not give it, is an error that says which.
pub fn verify(payload: &[u8], attachment: Option<&[u8]>) -> Result<()> {
    let computed = crc32c::crc32c(payload);
    match attachment {
        None => Err(Error::NoChecksum { len: payload.len() }),
        Some(bytes) => match <[u8; 4]>::try_from(bytes) {
            Ok(word) if u32::from_le_bytes(word) == computed => Ok(()),
            Ok(word) => Err(Error::ChecksumMismatch {
                len: payload.len(),
                attached: u32::from_le_bytes(word),
                computed,
            }),
            Err(_) => Err(Error::BadChecksumLength { len: bytes.len() }),
        },
    }
}

/// The error reply of a gap-fill query for seqs the WAL no longer has
/// (retention removed them, or a corrupt stretch was skipped):
/// `gone <from>..<to> <crc>`, `<crc>` the CRC-32C of the text before the
/// space, 8 hex digits. Zenoh's error replies carry no attachment, and a
/// receiver acts on this one by leaving those seqs out for good: the text
/// carries its own checksum.
pub fn gone_reply(from: u64, to: u64) -> String {
    let range = format!("gone {from}..{to}");
    let crc = crc32c::crc32c(range.as_bytes());
    format!("{range} {crc:08x}")
}

/// The range of a [`gone_reply`], whose checksum must match.
pub fn parse_gone(text: &str) -> Result<(u64, u64)> {
    let bad = || Error::BadQuery {
        what: "error reply",
        text: text.to_string(),
    };
    let (range, crc) = text.rsplit_once(' ').ok_or_else(bad)?;
    if crc.len() != 8 {
        return Err(bad());
    }
    let crc = u32::from_str_radix(crc, 16).map_err(|_| bad())?;
    let (from, to) = range
        .strip_prefix("gone ")
        .and_then(|r| parse_range(r).ok())
        .ok_or_else(bad)?;
    let computed = crc32c::crc32c(range.as_bytes());
    if computed != crc {
        return Err(Error::ChecksumMismatch {
            len: range.len(),
            attached: crc,
            computed,
        });
    }
    Ok((from, to))
}

/// The records of one message, copied once into an 8-aligned buffer and
/// checked: whole records, known kinds, valid sizes, dense seq.
#[derive(Debug, Default)]
pub struct Records {
    words: Vec<u64>,
    /// (offset, kind) of each record.
    spans: Vec<(usize, Kind)>,
}

impl Records {
    /// Parses a message. An error names what is wrong; nothing of a bad
    /// message is kept.
    pub fn parse(bytes: &[u8]) -> Result<Records> {
        if bytes.is_empty() {
            return Err(Error::Empty);
        }
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        let mut spans = Vec::new();
        let mut offset = 0;
        let mut expected = None;
        while offset < bytes.len() {
            if offset + size_of::<RecordHeader>() > bytes.len() {
                return Err(Error::Truncated {
                    offset,
                    len: bytes.len(),
                });
            }
            let raw = u16::from_le_bytes([bytes[offset + KIND_OFFSET], bytes[offset + KIND_OFFSET + 1]]);
            let kind = Kind::from_u16(raw).ok_or(Error::UnknownKind { offset, kind: raw })?;
            let end = offset + kind.record_size();
            if end > bytes.len() {
                return Err(Error::Truncated {
                    offset,
                    len: bytes.len(),
                });
            }
            let all = bytemuck::cast_slice::<u64, u8>(&words);
            let record = RecordRef::of_kind(kind, &all[offset..end])?;
            let seq = record.header().seq;
            if let Some(expected) = expected
                && seq != expected
            {
                return Err(Error::SeqNotDense {
                    offset,
                    expected,
                    got: seq,
                });
            }
            expected = Some(seq + 1);
            spans.push((offset, kind));
            offset = end;
        }
        Ok(Records { words, spans })
    }

    /// The records, in seq order.
    pub fn refs(&self) -> Vec<RecordRef<'_>> {
        let all = bytemuck::cast_slice::<u64, u8>(&self.words);
        self.spans
            .iter()
            .map(|&(offset, kind)| {
                RecordRef::of_kind(kind, &all[offset..offset + kind.record_size()]).expect("checked in parse")
            })
            .collect()
    }

    /// Seq of the first record.
    pub fn first_seq(&self) -> u64 {
        self.refs()[0].header().seq
    }

    /// Seq of the last record.
    pub fn last_seq(&self) -> u64 {
        self.first_seq() + self.spans.len() as u64 - 1
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there is no record (never, for a parsed message).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdbus_types::{Heartbeat, InstrumentId, MdSample, Price, Tick};

    fn message(seqs: &[u64]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for &seq in seqs {
            let sample: MdSample = if seq % 2 == 0 {
                let mut tick = Tick::new(InstrumentId::new("IF2501").unwrap(), 7).last(Price(5), 1);
                tick.header.seq = seq;
                tick.into()
            } else {
                let mut heartbeat = Heartbeat::new(7);
                heartbeat.header.seq = seq;
                heartbeat.into()
            };
            bytes.extend_from_slice(sample.record_bytes().unwrap());
        }
        bytes
    }

    #[test]
    fn a_message_of_whole_dense_records_parses() {
        let bytes = message(&[4, 5, 6, 7]);
        let records = Records::parse(&bytes).unwrap();
        assert_eq!((records.first_seq(), records.last_seq(), records.len()), (4, 7, 4));
        let again: Vec<u8> = records.refs().iter().flat_map(|r| r.as_bytes().to_vec()).collect();
        assert_eq!(again, bytes);
    }

    #[test]
    fn bad_messages_are_refused_naming_what_is_wrong() {
        let bytes = message(&[4, 5]);
        let cut = &bytes[..bytes.len() - 8];
        assert!(matches!(Records::parse(cut), Err(Error::Truncated { offset: 104, .. })));
        assert!(matches!(
            Records::parse(&bytes[..20]),
            Err(Error::Truncated { offset: 0, .. })
        ));
        let mut bad_kind = bytes.clone();
        bad_kind[104 + KIND_OFFSET] = 9;
        assert!(matches!(
            Records::parse(&bad_kind),
            Err(Error::UnknownKind { offset: 104, kind: 9 })
        ));
        assert!(matches!(
            Records::parse(&message(&[4, 6])),
            Err(Error::SeqNotDense {
                expected: 5,
                got: 6,
                ..
            })
        ));
        assert!(matches!(Records::parse(&[]), Err(Error::Empty)));
    }

    #[test]
    fn a_payload_is_used_only_with_its_own_checksum() {
        let bytes = message(&[4, 5, 6]);
        let sum = checksum(&bytes);
        assert!(verify(&bytes, Some(&sum)).is_ok());
        // One bit of the last record's body, where no record check looks:
        // the records still parse, the checksum refuses them.
        let mut flipped = bytes.clone();
        let at = bytes.len() - 40;
        flipped[at] ^= 0x10;
        assert!(Records::parse(&flipped).is_ok());
        let refused = verify(&flipped, Some(&sum)).unwrap_err();
        assert!(
            matches!(refused, Error::ChecksumMismatch { len, attached, computed }
                if len == bytes.len() && attached == u32::from_le_bytes(sum) && computed != attached),
            "{refused}"
        );
        assert!(refused.to_string().contains("does not match"), "{refused}");
        assert!(matches!(verify(&bytes, None), Err(Error::NoChecksum { len }) if len == bytes.len()));
        assert!(matches!(
            verify(&bytes, Some(&sum[..3])),
            Err(Error::BadChecksumLength { len: 3 })
        ));
        // The known CRC-32C check value: the attachment is the standard one.
        assert_eq!(checksum(b"123456789"), 0xE306_9283u32.to_le_bytes());
    }

    #[test]
    fn ranges_and_gone_replies_round_trip() {
        assert_eq!(parse_range(&wal_query("md", 10, 19)).unwrap(), (10, 19));
        assert!(parse_range("mdbus/md/wal/9..3").is_err());
        assert!(parse_range("mdbus/md/wal/0..3").is_err());
        assert!(parse_range("mdbus/md/wal/x..3").is_err());
        assert_eq!(parse_gone(&gone_reply(3, 8)).unwrap(), (3, 8));
        assert!(parse_gone("gone").is_err());
        assert!(parse_gone("gone 3..8").is_err(), "no checksum");
        assert!(
            parse_gone(&format!("{} 0", gone_reply(3, 8))).is_err(),
            "not 8 hex digits"
        );
        // One digit of the range changed: the checksum no longer matches.
        let changed = gone_reply(3, 8).replacen("..8", "..9", 1);
        assert!(
            matches!(parse_gone(&changed), Err(Error::ChecksumMismatch { .. })),
            "{changed}"
        );
    }
}
