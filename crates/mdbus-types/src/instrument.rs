//! Instrument symbols: 1 to 16 bytes of printable ASCII, NUL-padded.

use std::fmt;

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};

/// A feed name (docs/spec.md, wire names): 1 to 32 characters of
/// `[A-Za-z0-9_-]`. The WAL folder, the iceoryx2 services and the board
/// file are all named after it; this is the one check of the rule (the
/// WAL, transport and board errors carry its reason).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedName(String);

impl FeedName {
    /// Checks `feed`; the error names what is wrong.
    ///
    /// ```
    /// use mdbus_types::FeedName;
    /// assert_eq!(FeedName::new("cffex")?.as_str(), "cffex");
    /// assert!(FeedName::new("a feed").unwrap_err().to_string().contains("character ' '"));
    /// # Ok::<(), mdbus_types::Error>(())
    /// ```
    pub fn new(feed: &str) -> Result<FeedName> {
        FeedName::reason(feed).map_or_else(
            || Ok(FeedName(feed.to_string())),
            |reason| {
                Err(Error::FeedName {
                    feed: feed.to_string(),
                    reason,
                })
            },
        )
    }

    /// What is wrong with `feed` as a feed name, `None` when nothing is.
    pub fn reason(feed: &str) -> Option<String> {
        if feed.is_empty() {
            return Some("empty".to_string());
        }
        if feed.len() > 32 {
            return Some(format!("{} bytes, longer than 32", feed.len()));
        }
        feed.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
            .map(|c| format!("character {c:?} is not one of [A-Za-z0-9_-]"))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FeedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for FeedName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for FeedName {
    type Err = Error;
    fn from_str(feed: &str) -> Result<FeedName> {
        FeedName::new(feed)
    }
}

/// Maximum symbol length in bytes.
pub const SYMBOL_LEN: usize = 16;

/// An instrument symbol as it sits in every record: `[u8; 16]`, 1 to 16
/// bytes of printable ASCII without space (0x21..=0x7E), NUL-padded.
///
/// A longer symbol is an error, never silently cut.
#[repr(transparent)]
#[derive(
    rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Pod, Zeroable,
)]
pub struct InstrumentId(pub [u8; SYMBOL_LEN]);

impl InstrumentId {
    /// All NULs: not a valid symbol (a publisher refuses a record that
    /// carries it); what `Default` records hold until the symbol is set.
    pub const EMPTY: InstrumentId = InstrumentId([0; SYMBOL_LEN]);

    /// Checks `symbol` against docs/spec.md's rules and pads it with NULs.
    ///
    /// ```
    /// use mdbus_types::InstrumentId;
    /// let id = InstrumentId::new("IF2501")?;
    /// assert_eq!(id.as_str(), "IF2501");
    /// assert!(InstrumentId::new("A_SYMBOL_LONGER_THAN_16").is_err());
    /// # Ok::<(), mdbus_types::Error>(())
    /// ```
    pub fn new(symbol: &str) -> Result<InstrumentId> {
        let bytes = symbol.as_bytes();
        let reason = if bytes.is_empty() {
            Some("empty")
        } else if bytes.len() > SYMBOL_LEN {
            Some("longer than 16 bytes")
        } else if !bytes.iter().all(|b| (0x21..=0x7E).contains(b)) {
            Some("only printable ASCII without space (0x21..=0x7E) is allowed")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::Instrument {
                symbol: symbol.to_string(),
                reason,
            });
        }
        let mut raw = [0u8; SYMBOL_LEN];
        raw[..bytes.len()].copy_from_slice(bytes);
        Ok(InstrumentId(raw))
    }

    /// Validates raw record bytes: a valid symbol followed only by NULs.
    #[inline]
    pub fn from_bytes(raw: [u8; SYMBOL_LEN]) -> Result<InstrumentId> {
        // Every record read checks its symbol: the verdict first, as bit
        // masks over the 16 bytes (no branch per byte); the reason only
        // for a bad one.
        if symbol_is_valid(&raw) {
            return Ok(InstrumentId(raw));
        }
        match symbol_error(&raw) {
            None => Ok(InstrumentId(raw)),
            Some(reason) => Err(Error::Instrument {
                symbol: String::from_utf8_lossy(&raw).into_owned(),
                reason,
            }),
        }
    }

    /// The symbol without its NUL padding. Bytes that are not valid UTF-8
    /// (only possible for an id built from unchecked bytes) give `"?"`.
    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(SYMBOL_LEN);
        std::str::from_utf8(&self.0[..len]).unwrap_or("?")
    }

    /// The raw NUL-padded bytes.
    pub const fn as_bytes(&self) -> &[u8; SYMBOL_LEN] {
        &self.0
    }
}

impl fmt::Display for InstrumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for InstrumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstrumentId({:?})", self.as_str())
    }
}

impl std::str::FromStr for InstrumentId {
    type Err = Error;
    fn from_str(s: &str) -> Result<InstrumentId> {
        InstrumentId::new(s)
    }
}

/// What makes `raw` an invalid symbol, byte by byte (`None`: valid).
fn symbol_error(raw: &[u8; SYMBOL_LEN]) -> Option<&'static str> {
    let len = raw.iter().position(|&b| b == 0).unwrap_or(SYMBOL_LEN);
    if len == 0 {
        Some("empty")
    } else if raw[len..].iter().any(|&b| b != 0) {
        Some("bytes after the NUL padding")
    } else if !raw[..len].iter().all(|b| (0x21..=0x7E).contains(b)) {
        Some("only printable ASCII without space (0x21..=0x7E) is allowed")
    } else {
        None
    }
}

/// Whether `raw` is a valid symbol (docs/spec.md): 1 to 16 printable ASCII
/// bytes without space (0x21..=0x7E), then only NULs. The same verdict as
/// the byte-by-byte rules of `symbol_error` (property tests compare both
/// versions with them), computed on all 16 bytes at once: with SSE2 (part
/// of every x86_64) as two byte compares and their masks, ~10 instructions;
/// elsewhere as `u128` arithmetic.
#[cfg(target_arch = "x86_64")]
#[inline]
fn symbol_is_valid(raw: &[u8; SYMBOL_LEN]) -> bool {
    symbol_is_valid_sse2(raw)
}

/// See the x86_64 version.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn symbol_is_valid(raw: &[u8; SYMBOL_LEN]) -> bool {
    symbol_is_valid_swar(raw)
}

/// [`symbol_is_valid`] with SSE2: a mask with a bit per byte for
/// "printable" and one for "NUL". Signed byte compares: 0x80..=0xFF are
/// negative, so neither printable nor NUL.
#[cfg(target_arch = "x86_64")]
#[inline]
fn symbol_is_valid_sse2(raw: &[u8; SYMBOL_LEN]) -> bool {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_set1_epi8, _mm_setzero_si128,
    };
    // SAFETY: SSE2 is in x86_64's baseline (every x86_64 CPU has it), and
    // `raw` is 16 readable bytes, the width of the unaligned load (which
    // needs no alignment).
    let (p, nul) = unsafe {
        let v = _mm_loadu_si128(raw.as_ptr().cast::<__m128i>());
        let printable = _mm_and_si128(
            _mm_cmpgt_epi8(v, _mm_set1_epi8(0x20)),
            _mm_cmplt_epi8(v, _mm_set1_epi8(0x7F)),
        );
        let nul = _mm_cmpeq_epi8(v, _mm_setzero_si128());
        (_mm_movemask_epi8(printable) as u32, _mm_movemask_epi8(nul) as u32)
    };
    // The printable bytes are a non-empty prefix (their mask is 2^k - 1,
    // k >= 1) and every byte is printable or NUL.
    p != 0 && p & (p + 1) == 0 && p | nul == 0xFFFF
}

/// [`symbol_is_valid`] as one `u128`: a flag (bit 7) per byte says
/// "printable" in `printable`, "NUL" in `nul`. No byte's sum carries into
/// the next: every byte is masked to 0..=0x7F before it is added to at
/// most 0x7F.
#[cfg(any(not(target_arch = "x86_64"), test))]
#[inline]
fn symbol_is_valid_swar(raw: &[u8; SYMBOL_LEN]) -> bool {
    const fn each(byte: u8) -> u128 {
        u128::from_ne_bytes([byte; SYMBOL_LEN])
    }
    const BIT7: u128 = each(0x80);
    let x = u128::from_le_bytes(*raw);
    let low = x & !BIT7;
    let high = x & BIT7;
    let at_least_0x21 = low + each(0x80 - 0x21);
    let above_0x7e = low + each(0x80 - 0x7F);
    let printable = at_least_0x21 & !above_0x7e & !high & BIT7;
    let nul = !(low + each(0x7F)) & !high & BIT7;
    // Every byte printable or NUL, the first printable, and no printable
    // byte after the first NUL.
    printable | nul == BIT7 && printable & 0x80 != 0 && (nul == 0 || printable >> nul.trailing_zeros() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_design_symbols_and_pads_with_nul() {
        for s in ["IF2501", "rb2505", "BTC/USDT", "SPREAD-X", "ABCDEFGHIJKLMNOP", "!", "~"] {
            let id = InstrumentId::new(s).unwrap();
            assert_eq!(id.as_str(), s);
            assert!(id.0[s.len()..].iter().all(|&b| b == 0));
            assert_eq!(InstrumentId::from_bytes(id.0).unwrap(), id);
        }
    }

    #[test]
    fn refuses_bad_symbols_naming_them() {
        for s in ["", "ABCDEFGHIJKLMNOPQ", "IF 2501", "IF\t1", "Ü", "a\0b"] {
            let err = InstrumentId::new(s).unwrap_err();
            assert!(err.to_string().contains(&format!("{s:?}")), "{err}");
        }
        let mut raw = *InstrumentId::new("AB").unwrap().as_bytes();
        raw[5] = b'X';
        assert!(InstrumentId::from_bytes(raw).is_err());
        assert!(InstrumentId::from_bytes([0; 16]).is_err());
    }

    /// Bytes at the edges of the rules: NUL, space, the printable range's
    /// ends, DEL, high bytes.
    const EDGE_BYTES: [u8; 9] = [0x00, 0x01, 0x20, 0x21, 0x41, 0x7E, 0x7F, 0x80, 0xFF];

    proptest::proptest! {
        /// A valid symbol of `len` bytes with one or two bytes changed to an
        /// edge byte (or to anything).
        #[test]
        fn the_bit_mask_verdicts_are_the_byte_rules_verdict(
            len in 0usize..=16,
            symbol in proptest::array::uniform16(0x21u8..=0x7E),
            edits in proptest::collection::vec(
                (0usize..16, proptest::prop_oneof![
                    3 => proptest::sample::select(EDGE_BYTES.to_vec()),
                    1 => proptest::num::u8::ANY,
                ]),
                0..=2,
            ),
        ) {
            let mut raw = [0u8; SYMBOL_LEN];
            raw[..len].copy_from_slice(&symbol[..len]);
            for (i, byte) in edits {
                raw[i] = byte;
            }
            let verdict = symbol_error(&raw).is_none();
            proptest::prop_assert_eq!(symbol_is_valid(&raw), verdict, "{:?}", raw);
            proptest::prop_assert_eq!(symbol_is_valid_swar(&raw), verdict, "{:?}", raw);
        }

        #[test]
        fn every_valid_length_passes(len in 1usize..=16, fill in 0x21u8..=0x7E) {
            let mut raw = [0u8; SYMBOL_LEN];
            raw[..len].fill(fill);
            proptest::prop_assert!(symbol_is_valid(&raw) && symbol_is_valid_swar(&raw));
            if len < SYMBOL_LEN {
                raw[SYMBOL_LEN - 1] = fill;
                proptest::prop_assert_eq!(symbol_is_valid(&raw), len == SYMBOL_LEN - 1);
                proptest::prop_assert_eq!(symbol_is_valid_swar(&raw), len == SYMBOL_LEN - 1);
            }
        }
    }
}
