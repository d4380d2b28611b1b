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
    pub fn from_bytes(raw: [u8; SYMBOL_LEN]) -> Result<InstrumentId> {
        let len = raw.iter().position(|&b| b == 0).unwrap_or(SYMBOL_LEN);
        let bad = |reason| Error::Instrument {
            symbol: String::from_utf8_lossy(&raw).into_owned(),
            reason,
        };
        if len == 0 {
            return Err(bad("empty"));
        }
        if raw[len..].iter().any(|&b| b != 0) {
            return Err(bad("bytes after the NUL padding"));
        }
        if !raw[..len].iter().all(|b| (0x21..=0x7E).contains(b)) {
            return Err(bad("only printable ASCII without space (0x21..=0x7E) is allowed"));
        }
        Ok(InstrumentId(raw))
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
}
