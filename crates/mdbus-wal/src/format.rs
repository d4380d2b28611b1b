//! The on-disk format of docs/spec.md: segment header, frames, file names.
//!
//! Segment header (128 bytes, little-endian): `MDBUSWAL`, version 1,
//! header_len 128, first_seq, created_ns, segment_bytes, feed (32 bytes,
//! NUL-padded), 52 reserved zero bytes, crc32c of bytes 0..124 at 124.
//! Frame: `len: u32 | crc32c(payload): u32 | payload | zero padding to 8`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use mdbus_types::{BookDelta, BookSnapshot, Heartbeat, Kind, RecordHeader, Tick};
use rkyv::rancor;

use crate::error::{Error, Result, io_err};

/// Segment magic, bytes 0..8.
pub const MAGIC: &[u8; 8] = b"MDBUSWAL";
/// Format version, bytes 8..12.
pub const VERSION: u32 = 1;
/// Header length; the first frame starts here.
pub const HEADER_LEN: usize = 128;
/// Frame header: `len: u32 | crc32c: u32`.
pub const FRAME_HEADER_LEN: usize = 8;
/// The largest frame (a `BookSnapshot`: 8 + 376).
pub(crate) const MAX_FRAME_LEN: usize = FRAME_HEADER_LEN + 376;
/// Segment file extension.
pub(crate) const SEGMENT_EXT: &str = "wal";
/// Default preallocated segment size: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Smallest segment accepted: the header and one largest frame.
pub const MIN_SEGMENT_BYTES: u64 = (HEADER_LEN + MAX_FRAME_LEN) as u64;

/// Checks a feed name: 1 to 32 characters of `[A-Za-z0-9_-]`.
pub fn validate_feed(feed: &str) -> Result<()> {
    match mdbus_types::FeedName::reason(feed) {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidFeed {
            feed: feed.to_string(),
            reason,
        }),
    }
}

/// `<first_seq:020>.wal`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{SEGMENT_EXT}")
}

/// The segments of a feed directory, oldest first, as `(first_seq from the
/// name, path)`. A missing directory has no segments.
pub(crate) fn list_segments(feed_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(feed_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read directory", feed_dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("read directory", feed_dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".wal") else {
            continue;
        };
        if stem.len() == 20
            && let Ok(seq) = stem.parse::<u64>()
        {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The first seq a segment's file name carries (`<first_seq:020>.wal`).
pub(crate) fn named_first_seq(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".wal")
        .filter(|stem| stem.len() == 20)?
        .parse()
        .ok()
}

/// A decoded segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Seq of the first frame.
    pub first_seq: u64,
    /// When the segment was created, ns since Unix epoch.
    pub created_ns: i64,
    /// The file's preallocated size.
    pub segment_bytes: u64,
    /// The feed name.
    pub feed: String,
}

impl SegmentHeader {
    /// The 128 header bytes, crc included.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        h[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        h[24..32].copy_from_slice(&self.created_ns.to_le_bytes());
        h[32..40].copy_from_slice(&self.segment_bytes.to_le_bytes());
        let feed = self.feed.as_bytes();
        h[40..40 + feed.len().min(32)].copy_from_slice(&feed[..feed.len().min(32)]);
        let crc = crc32c::crc32c(&h[..124]);
        h[124..128].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// What a segment's name, size and folder say its header holds: the
    /// stand-in for a damaged header (`created_ns` cannot be known: 0).
    pub(crate) fn from_name(first_seq: u64, file_len: u64, feed: &str) -> SegmentHeader {
        SegmentHeader {
            first_seq,
            created_ns: 0,
            segment_bytes: file_len,
            feed: feed.to_string(),
        }
    }

    /// Why `bytes` is not a valid header, naming the damaged field where
    /// it can be told: `decode`'s `reason`, and on a crc mismatch the field
    /// that differs from what the segment's name, size and folder say
    /// (`expected`, from [`SegmentHeader::from_name`]).
    pub(crate) fn diagnose(bytes: &[u8], expected: &SegmentHeader, reason: String) -> String {
        if bytes.len() < HEADER_LEN || &bytes[0..8] != MAGIC {
            return reason;
        }
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        let mut feed = [0u8; 32];
        let name = expected.feed.as_bytes();
        feed[..name.len().min(32)].copy_from_slice(&name[..name.len().min(32)]);
        let field = if u32_at(8) != VERSION {
            format!("version is {}, not {VERSION}", u32_at(8))
        } else if u32_at(12) as usize != HEADER_LEN {
            format!("header_len is {}, not {HEADER_LEN}", u32_at(12))
        } else if bytes[72..124].iter().any(|&b| b != 0) {
            "reserved bytes 72..124 are not zero".to_string()
        } else if u64_at(16) != expected.first_seq {
            format!("first_seq is {}, the file name says {}", u64_at(16), expected.first_seq)
        } else if u64_at(32) != expected.segment_bytes {
            format!(
                "segment_bytes is {}, the file has {}",
                u64_at(32),
                expected.segment_bytes
            )
        } else if bytes[40..72] != feed {
            format!(
                "feed is {:?}, the folder says {:?}",
                String::from_utf8_lossy(&bytes[40..72]).trim_end_matches('\0'),
                expected.feed
            )
        } else if reason.starts_with("header crc32c") {
            "created_ns or the stored crc32c".to_string()
        } else {
            return reason;
        };
        format!("{field} ({reason})")
    }

    /// Decodes and checks a header; the error says what is wrong.
    pub fn decode(bytes: &[u8]) -> std::result::Result<SegmentHeader, String> {
        if bytes.len() < HEADER_LEN {
            return Err(format!(
                "file is {} bytes, shorter than the 128-byte header",
                bytes.len()
            ));
        }
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        if &bytes[0..8] != MAGIC {
            return Err(format!(
                "magic is {:?}, not MDBUSWAL",
                String::from_utf8_lossy(&bytes[0..8])
            ));
        }
        let crc = crc32c::crc32c(&bytes[..124]);
        if crc != u32_at(124) {
            return Err(format!(
                "header crc32c {:#010x} does not match stored {:#010x}",
                crc,
                u32_at(124)
            ));
        }
        if u32_at(8) != VERSION {
            return Err(format!("version {} (this build reads 1)", u32_at(8)));
        }
        if u32_at(12) as usize != HEADER_LEN {
            return Err(format!("header_len {} (expected 128)", u32_at(12)));
        }
        if bytes[72..124].iter().any(|&b| b != 0) {
            return Err("reserved bytes 72..124 are not zero".to_string());
        }
        let feed_bytes = &bytes[40..72];
        let end = feed_bytes.iter().position(|&b| b == 0).unwrap_or(32);
        Ok(SegmentHeader {
            first_seq: u64_at(16),
            created_ns: u64_at(24) as i64,
            segment_bytes: u64_at(32),
            feed: String::from_utf8_lossy(&feed_bytes[..end]).into_owned(),
        })
    }
}

/// Rounds a payload length up to the 8-byte frame alignment.
#[inline]
pub(crate) const fn padded(len: usize) -> usize {
    (len + 7) & !7
}

/// Whether `len` is one of the record sizes (32, 72, 104, 376).
#[inline]
pub(crate) const fn is_record_size(len: usize) -> bool {
    matches!(len, 32 | 72 | 104 | 376)
}

/// Loads the `len` word of the frame at `off` with Acquire ordering.
///
/// Panics if `off` is not 4-aligned inside `bytes` (callers keep frames
/// 8-aligned in a page-aligned map).
#[inline]
pub(crate) fn load_len(bytes: &[u8], off: usize) -> u32 {
    let word = &bytes[off..off + 4];
    assert!(
        (word.as_ptr() as usize).is_multiple_of(4),
        "frame offset {off} is not aligned"
    );
    // SAFETY: `word` is 4 in-bounds, 4-aligned bytes of a live mapping (or
    // buffer); an atomic load of them is a plain aligned load, valid on a
    // read-only mapping. Another process may store to this word
    // concurrently, which is exactly what an atomic load tolerates.
    let atomic = unsafe { AtomicU32::from_ptr(word.as_ptr() as *mut u32) };
    // SYNC: pairs with the Release store of `len` in `Wal::write_frame`: a
    // non-zero value means the crc and payload before it are visible.
    u32::from_le(atomic.load(Ordering::Acquire))
}

/// A valid frame, as a scan or a reader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Offset of the frame header in the file.
    pub off: usize,
    /// Payload length.
    pub len: usize,
    /// The record header.
    pub header: RecordHeader,
    /// The kind (checked: its size is `len`, and rkyv validated the payload
    /// as it).
    pub kind: Kind,
}

impl Frame {
    /// Offset of the next frame.
    #[inline]
    pub(crate) fn next_off(&self) -> usize {
        self.off + FRAME_HEADER_LEN + padded(self.len)
    }
}

/// Why a frame is bad (docs/spec.md's list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadFrame {
    /// `len` is not a record size.
    Len(u32),
    /// The frame runs past the end of the segment.
    PastEnd { len: usize, limit: usize },
    /// crc32c of the payload differs from the stored one.
    Crc { stored: u32, computed: u32 },
    /// The kind is unknown or its size is not `len`.
    Kind { kind: u16, len: usize },
    /// rkyv validation refused the payload.
    Archive(String),
    /// Padding bytes after the payload are not zero.
    Padding,
    /// `seq` is not the previous + 1.
    Seq { expected: u64, got: u64 },
    /// `len` 0 (a live end) with crc-valid frames after it.
    ZeroLen,
}

impl BadFrame {
    /// Whether the frame is crc-valid nonetheless (only its seq is wrong).
    pub(crate) fn is_crc_valid(&self) -> bool {
        matches!(self, BadFrame::Seq { .. })
    }
}

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadFrame::Len(len) => write!(f, "frame len {len} is not a record size (32, 72, 104, 376)"),
            BadFrame::PastEnd { len, limit } => {
                write!(f, "frame of len {len} runs past the end of the segment ({limit} bytes)")
            }
            BadFrame::Crc { stored, computed } => {
                write!(
                    f,
                    "crc32c mismatch: stored {stored:#010x}, payload has {computed:#010x}"
                )
            }
            BadFrame::Kind { kind, len } => write!(f, "record kind {kind} does not match frame len {len}"),
            BadFrame::Archive(e) => write!(f, "rkyv validation failed: {e}"),
            BadFrame::Padding => write!(f, "non-zero padding after the payload"),
            BadFrame::Seq { expected, got } => write!(f, "seq {got} where seq {expected} was expected"),
            BadFrame::ZeroLen => write!(f, "frame len 0 with crc-valid frames after it"),
        }
    }
}

/// Checks the payload with rkyv's validated access, as the archived type
/// of its kind (the archive is the record's plain bytes). The low-level
/// validator: the records hold no pointers, so no shared pointers to
/// track.
fn validate_archive(kind: Kind, payload: &[u8]) -> std::result::Result<(), rancor::Error> {
    match kind {
        Kind::Tick => rkyv::api::low::access::<<Tick as rkyv::Archive>::Archived, rancor::Error>(payload).map(drop),
        Kind::BookSnapshot => {
            rkyv::api::low::access::<<BookSnapshot as rkyv::Archive>::Archived, rancor::Error>(payload).map(drop)
        }
        Kind::BookDelta => {
            rkyv::api::low::access::<<BookDelta as rkyv::Archive>::Archived, rancor::Error>(payload).map(drop)
        }
        Kind::Heartbeat => {
            rkyv::api::low::access::<<Heartbeat as rkyv::Archive>::Archived, rancor::Error>(payload).map(drop)
        }
    }
}

/// Checks the frame at `off` (8-aligned) of a segment whose usable bytes
/// are `bytes` (the map, up to `segment_bytes`). `Ok(None)`: `len` is 0,
/// the live end. `expected_seq`: the seq this frame must carry, if known.
pub(crate) fn check_frame(
    bytes: &[u8],
    off: usize,
    expected_seq: Option<u64>,
) -> std::result::Result<Option<Frame>, BadFrame> {
    let limit = bytes.len();
    if off + FRAME_HEADER_LEN > limit {
        return Ok(None);
    }
    let len = load_len(bytes, off);
    if len == 0 {
        return Ok(None);
    }
    let len_us = len as usize;
    if !is_record_size(len_us) {
        return Err(BadFrame::Len(len));
    }
    let end = off + FRAME_HEADER_LEN + padded(len_us);
    if end > limit {
        return Err(BadFrame::PastEnd { len: len_us, limit });
    }
    let stored = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().expect("4 bytes"));
    let payload = &bytes[off + FRAME_HEADER_LEN..off + FRAME_HEADER_LEN + len_us];
    let computed = crc32c::crc32c(payload);
    if stored != computed {
        return Err(BadFrame::Crc { stored, computed });
    }
    let header: RecordHeader = read_header(payload);
    let kind = match Kind::from_u16(header.kind) {
        Some(kind) if kind.record_size() == len_us => {
            validate_archive(kind, payload).map_err(|e| BadFrame::Archive(e.to_string()))?;
            kind
        }
        _ => {
            return Err(BadFrame::Kind {
                kind: header.kind,
                len: len_us,
            });
        }
    };
    if bytes[off + FRAME_HEADER_LEN + len_us..end].iter().any(|&b| b != 0) {
        return Err(BadFrame::Padding);
    }
    if let Some(expected) = expected_seq
        && header.seq != expected
    {
        return Err(BadFrame::Seq {
            expected,
            got: header.seq,
        });
    }
    Ok(Some(Frame {
        off,
        len: len_us,
        header,
        kind,
    }))
}

/// The record header at the start of a payload (copied out, any alignment).
#[inline]
pub(crate) fn read_header(payload: &[u8]) -> RecordHeader {
    let u64_at = |o: usize| u64::from_le_bytes(payload[o..o + 8].try_into().expect("8 bytes"));
    let u16_at = |o: usize| u16::from_le_bytes(payload[o..o + 2].try_into().expect("2 bytes"));
    RecordHeader {
        seq: u64_at(0),
        ts_event: u64_at(8) as i64,
        ts_publish: u64_at(16) as i64,
        kind: u16_at(24),
        flags: u16_at(26),
        _pad: payload[28..32].try_into().expect("4 bytes"),
    }
}

/// Bytes skipped at once over the zeros after a segment's live end (a
/// fresh 64 MiB segment is almost all zeros, scanned at every open).
const ZERO_BLOCK: usize = 64;

/// Whether `block` is all zero (an OR the compiler vectorises, no early
/// exit).
#[inline]
fn all_zero(block: &[u8]) -> bool {
    block.iter().fold(0u8, |acc, &b| acc | b) == 0
}

/// The next 8-aligned offset at or after `from` holding a plausible frame
/// (len a record size, fits, crc and kind valid), whatever its seq.
pub(crate) fn find_resync(bytes: &[u8], from: usize) -> Option<usize> {
    let mut off = padded(from.max(HEADER_LEN));
    while off + FRAME_HEADER_LEN <= bytes.len() {
        // No frame starts in an aligned block of zeros: its `len` (the
        // first 4 bytes, inside the block) would be 0.
        if off.is_multiple_of(ZERO_BLOCK)
            && let Some(block) = bytes.get(off..off + ZERO_BLOCK)
            && all_zero(block)
        {
            off += ZERO_BLOCK;
            continue;
        }
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().expect("4 bytes")) as usize;
        if is_record_size(len) && matches!(check_frame(bytes, off, None), Ok(Some(_))) {
            return Some(off);
        }
        off += 8;
    }
    None
}

/// The end (exclusive, rounded up to 8) of the last non-zero byte at or
/// after `from`, or `None` when everything from `from` on is zero.
pub(crate) fn nonzero_extent(bytes: &[u8], from: usize) -> Option<usize> {
    let tail = bytes.get(from..)?;
    let mut end = tail.len();
    // From the end, a block at a time: the zeros are skipped fast.
    for block in tail.rchunks(ZERO_BLOCK) {
        let start = end - block.len();
        if !all_zero(block) {
            let last = block.iter().rposition(|&b| b != 0).expect("a non-zero byte");
            return Some(padded(from + start + last + 1).min(bytes.len()));
        }
        end = start;
    }
    None
}

/// crc32c of `bytes` (a multiple of 8 long): the SSE4.2 `crc32` instruction
/// inline for the small records (a call into the crc32c crate costs more
/// than the 4 to 13 instructions), the crate for the rest (it runs three
/// streams in parallel on larger inputs). Same value as `crc32c::crc32c`.
#[inline(always)]
pub(crate) fn crc32c_words(bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if bytes.len() <= 104 && bytes.len().is_multiple_of(8) && std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU has SSE4.2 (checked just above).
            return unsafe { crc32c_sse42(bytes) };
        }
    }
    crc32c::crc32c(bytes)
}

/// Whether [`crc32c_record`] can use the `crc32` instruction (SSE4.2): a
/// reader asks once per run of frames, not once per frame.
#[inline(always)]
pub(crate) fn has_crc32_instruction() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sse4.2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// crc32c of a record's payload (`payload.len()` is `kind`'s size): with
/// `crc32_instruction` (from [`has_crc32_instruction`]) the `crc32`
/// instruction word by word, inline in the caller with the length known
/// at compile time for the sizes up to 104 bytes (an SSE4.2 function
/// cannot be inlined into code built without SSE4.2: a call and a
/// dispatch on the length per frame; inline assembly can); the crc32c
/// crate for a book snapshot's 376 bytes (three streams in parallel) and
/// without the instruction. Same value as `crc32c::crc32c`.
#[inline(always)]
pub(crate) fn crc32c_record(kind: Kind, payload: &[u8], crc32_instruction: bool) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if crc32_instruction {
        match kind {
            Kind::Tick => return crc32c_asm_fixed::<104>(payload),
            Kind::BookDelta => return crc32c_asm_fixed::<72>(payload),
            Kind::Heartbeat => return crc32c_asm_fixed::<32>(payload),
            Kind::BookSnapshot => {}
        }
    }
    let _ = (kind, crc32_instruction);
    crc32c::crc32c(payload)
}

/// crc32c of `N` bytes (a multiple of 8; `bytes` must be `N` long: a
/// shorter slice panics) with the `crc32` instruction, `N / 8` steps.
/// Only where SSE4.2 is present ([`has_crc32_instruction`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn crc32c_asm_fixed<const N: usize>(bytes: &[u8]) -> u32 {
    let bytes: &[u8; N] = bytes.try_into().expect("N bytes");
    let mut crc = u64::from(u32::MAX);
    for i in 0..N / 8 {
        let word = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        // SAFETY: the caller checked that the CPU has SSE4.2
        // (`has_crc32_instruction`), which `crc32` needs; the instruction
        // reads and writes only these two registers (no memory, no stack,
        // no flags).
        unsafe {
            std::arch::asm!(
                "crc32 {crc}, {word}",
                crc = inout(reg) crc,
                word = in(reg) word,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
    }
    !(crc as u32)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn crc32c_sse42(bytes: &[u8]) -> u32 {
    // The record sizes up to 104 bytes as fixed-length loops (unrolled
    // straight-line code), any other multiple of 8 word by word.
    if let Ok(heartbeat) = <&[u8; 32]>::try_from(bytes) {
        return crc32c_sse42_fixed(heartbeat);
    }
    if let Ok(delta) = <&[u8; 72]>::try_from(bytes) {
        return crc32c_sse42_fixed(delta);
    }
    if let Ok(tick) = <&[u8; 104]>::try_from(bytes) {
        return crc32c_sse42_fixed(tick);
    }
    let mut crc = u64::from(u32::MAX);
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        crc = std::arch::x86_64::_mm_crc32_u64(crc, word);
    }
    !(crc as u32)
}

/// [`crc32c_sse42`] of `N` bytes (a multiple of 8), `N / 8` steps known at
/// compile time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[inline]
fn crc32c_sse42_fixed<const N: usize>(bytes: &[u8; N]) -> u32 {
    let mut crc = u64::from(u32::MAX);
    for i in 0..N / 8 {
        let word = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        crc = std::arch::x86_64::_mm_crc32_u64(crc, word);
    }
    !(crc as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdbus_types::{BookSnapshot, InstrumentId, Level, Price, Tick};
    use rkyv::api::low::to_bytes_in_with_alloc;
    use rkyv::ser::allocator::SubAllocator;
    use rkyv::ser::writer::Buffer;

    /// The block-skipping scans give what a byte-by-byte scan gives, for
    /// non-zero bytes and frames at every alignment.
    #[test]
    fn zero_skipping_scans_match_the_plain_scans() {
        fn plain_extent(bytes: &[u8], from: usize) -> Option<usize> {
            let tail = bytes.get(from..)?;
            tail.iter()
                .rposition(|&b| b != 0)
                .map(|i| padded(from + i + 1).min(bytes.len()))
        }
        let tick = Tick::new(InstrumentId::new("IF2501").unwrap(), 7);
        let payload = bytemuck::bytes_of(&tick);
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        frame.extend_from_slice(payload);
        let len = HEADER_LEN + 4096 + 3;
        for at in (HEADER_LEN..HEADER_LEN + 200).chain([len - 1]) {
            let mut bytes = vec![0u8; len];
            bytes[at] = 0x5a;
            for from in [0, HEADER_LEN, at.saturating_sub(1), at, at + 1, len] {
                assert_eq!(
                    nonzero_extent(&bytes, from),
                    plain_extent(&bytes, from),
                    "byte at {at}, from {from}"
                );
            }
            let frame_at = padded(at);
            if frame_at + frame.len() <= len {
                let mut bytes = vec![0u8; len];
                bytes[frame_at..frame_at + frame.len()].copy_from_slice(&frame);
                for from in [HEADER_LEN, frame_at, frame_at + 1] {
                    let expected = (frame_at >= padded(from)).then_some(frame_at);
                    assert_eq!(find_resync(&bytes, from), expected, "frame at {frame_at}, from {from}");
                }
            }
        }
    }

    #[test]
    fn header_round_trip_and_crc() {
        let header = SegmentHeader {
            first_seq: 42,
            created_ns: 1_764_000_000_000_000_000,
            segment_bytes: 65536,
            feed: "golden".into(),
        };
        let bytes = header.encode();
        assert_eq!(&bytes[..8], MAGIC);
        assert_eq!(SegmentHeader::decode(&bytes).unwrap(), header);
        let mut bad = bytes;
        bad[30] ^= 1;
        assert!(SegmentHeader::decode(&bad).unwrap_err().contains("crc32c"));
        assert!(SegmentHeader::decode(&bytes[..100]).is_err());
    }

    #[test]
    fn feed_names() {
        assert!(validate_feed("golden").is_ok());
        assert!(validate_feed("a-b_C9").is_ok());
        assert!(validate_feed("").is_err());
        assert!(validate_feed("a/b").is_err());
        assert!(validate_feed(&"x".repeat(33)).is_err());
        assert_eq!(segment_file_name(1), "00000000000000000001.wal");
    }

    /// The writer copies a record's plain bytes as the frame payload: they
    /// must be exactly what rkyv's serializer writes.
    #[test]
    fn archive_equals_frame_payload() {
        fn rkyv_bytes<T>(value: &T, out: &mut [u8]) -> usize
        where
            T: for<'a> rkyv::Serialize<rkyv::api::low::LowSerializer<Buffer<'a>, SubAllocator<'a>, rancor::Failure>>,
        {
            let buffer =
                to_bytes_in_with_alloc::<_, _, rancor::Failure>(value, Buffer::from(&mut *out), SubAllocator::empty())
                    .unwrap();
            buffer.len()
        }
        let id = InstrumentId::new("IF2501").unwrap();
        let mut tick = Tick {
            header: RecordHeader::new(Kind::Tick, 7),
            instrument: id,
            last_px: Price::from_raw(-5),
            last_qty: 2,
            bid_px: Price::NULL,
            bid_qty: 0,
            ask_px: Price::from_raw(9),
            ask_qty: 3,
            volume: 11,
        };
        tick.header.seq = 99;
        let mut snap = BookSnapshot::empty(id, 8);
        snap.bid_count = 1;
        snap.bids[0] = Level {
            price: Price::from_raw(1),
            qty: 4,
        };
        #[repr(align(8))]
        struct Aligned([u8; 512]);
        let mut out = Aligned([0; 512]);
        let n = rkyv_bytes(&tick, &mut out.0);
        assert_eq!(&out.0[..n], mdbus_types::MdSample::from(tick).record_bytes().unwrap());
        let n = rkyv_bytes(&snap, &mut out.0);
        assert_eq!(&out.0[..n], mdbus_types::MdSample::from(snap).record_bytes().unwrap());
    }

    #[test]
    fn inline_crc_matches_the_crate() {
        let mut bytes = [0u8; 376];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(151).wrapping_add(7);
        }
        for len in [0, 8, 32, 72, 104, 376] {
            assert_eq!(crc32c_words(&bytes[..len]), crc32c::crc32c(&bytes[..len]), "len {len}");
        }
        for kind in [Kind::Tick, Kind::BookSnapshot, Kind::BookDelta, Kind::Heartbeat] {
            let payload = &bytes[..kind.record_size()];
            for instruction in [false, has_crc32_instruction()] {
                assert_eq!(
                    crc32c_record(kind, payload, instruction),
                    crc32c::crc32c(payload),
                    "{kind:?}, crc32 instruction {instruction}"
                );
            }
        }
    }
}
