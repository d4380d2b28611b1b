//! One writer per feed: an `flock` on `<feed dir>/writer.lock`, which
//! holds the writer's pid so a refused writer can name the holder.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io_err};

/// Name of the lock file in the feed directory.
pub const LOCK_FILE: &str = "writer.lock";

/// The held lock; released when dropped (the file is closed).
#[derive(Debug)]
pub(crate) struct FeedLock {
    _file: File,
    path: PathBuf,
}

impl FeedLock {
    /// Takes the feed's writer lock or names the holder.
    pub(crate) fn acquire(feed_dir: &Path, feed: &str) -> Result<FeedLock> {
        let path = feed_dir.join(LOCK_FILE);
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open lock file", &path))?;
        // SAFETY: flock on a valid open descriptor owned by `file`; no memory
        // is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let pid = text.trim().parse().unwrap_or(0);
                return Err(Error::Locked {
                    feed: feed.to_string(),
                    pid,
                    path,
                });
            }
            return Err(io_err("lock", &path)(err));
        }
        file.set_len(0).map_err(io_err("write lock file", &path))?;
        file.seek(SeekFrom::Start(0))
            .map_err(io_err("write lock file", &path))?;
        write!(file, "{}", std::process::id()).map_err(io_err("write lock file", &path))?;
        Ok(FeedLock { _file: file, path })
    }

    /// The lock file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
