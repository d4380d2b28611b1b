//! Where a feed's WAL lives: one type, one meaning.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::instrument::FeedName;

/// A feed's WAL: its segments are in `<root>/<feed>/` ([`WalLocation::dir`]).
///
/// "root" is always the folder that holds one folder per feed (what
/// `mdbus publish --wal` takes); the feed folder is only ever derived from
/// it. A publisher announces the feed folder (the iceoryx2 service
/// attribute `mdbus.wal_dir`, docs/spec.md); [`WalLocation::from_feed_dir`]
/// reads it back.
///
/// ```
/// use mdbus_types::{FeedName, WalLocation};
/// let wal = WalLocation::new("/var/lib/mdbus", FeedName::new("cffex")?);
/// assert_eq!(wal.dir(), std::path::Path::new("/var/lib/mdbus/cffex"));
/// assert_eq!(WalLocation::from_feed_dir(wal.dir())?, wal);
/// # Ok::<(), mdbus_types::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WalLocation {
    root: PathBuf,
    feed: FeedName,
}

impl WalLocation {
    /// The WAL of `feed` under `root`.
    pub fn new(root: impl Into<PathBuf>, feed: FeedName) -> WalLocation {
        WalLocation {
            root: root.into(),
            feed,
        }
    }

    /// The WAL of the feed named `feed` under `root`; the error says what
    /// is wrong with the name.
    pub fn try_new(root: impl Into<PathBuf>, feed: &str) -> Result<WalLocation> {
        Ok(WalLocation::new(root, FeedName::new(feed)?))
    }

    /// The WAL whose feed folder is `dir` (`<root>/<feed>`): the last
    /// component must be a valid feed name, and a root must be left.
    pub fn from_feed_dir(dir: impl AsRef<Path>) -> Result<WalLocation> {
        let dir = dir.as_ref();
        let bad = |reason: String| Error::FeedDir {
            path: dir.to_path_buf(),
            reason,
        };
        let name = dir
            .file_name()
            .ok_or_else(|| bad("it has no last component to be the feed".into()))?;
        let name = name
            .to_str()
            .ok_or_else(|| bad("its last component is not UTF-8".into()))?;
        let feed = FeedName::new(name).map_err(|e| bad(e.to_string()))?;
        let root = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| bad("it has no folder above the feed folder".into()))?;
        Ok(WalLocation::new(root, feed))
    }

    /// The folder holding one folder per feed.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The feed.
    pub fn feed(&self) -> &FeedName {
        &self.feed
    }

    /// The feed's folder, `<root>/<feed>`, where its segments are.
    pub fn dir(&self) -> PathBuf {
        self.root.join(self.feed.as_str())
    }

    /// The same location with `root` made absolute against the current
    /// directory (what a publisher announces to other processes).
    pub fn absolute(&self) -> std::io::Result<WalLocation> {
        Ok(WalLocation::new(std::path::absolute(&self.root)?, self.feed.clone()))
    }
}

impl fmt::Display for WalLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.dir().display().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_dirs_round_trip_and_bad_ones_say_why() {
        let wal = WalLocation::from_feed_dir("/tmp/wal/golden").unwrap();
        assert_eq!((wal.root(), wal.feed().as_str()), (Path::new("/tmp/wal"), "golden"));
        assert_eq!(wal.to_string(), "/tmp/wal/golden");
        let relative = WalLocation::from_feed_dir("data/golden").unwrap();
        assert!(relative.absolute().unwrap().root().is_absolute());
        for (bad, why) in [
            ("/tmp/wal/bad feed", "character ' '"),
            ("/", "no last component"),
            ("golden", "no folder above"),
        ] {
            let err = WalLocation::from_feed_dir(bad).unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains(why), "{bad}: {err}");
        }
    }
}
