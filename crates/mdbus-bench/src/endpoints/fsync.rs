//! The least a durable publisher can do, with no mdbus code: the
//! publisher copies each batch's records into memory, framed as the WAL
//! frames them (under one uncontended lock per batch), and a journaller
//! thread, every 2 ms (the interval of
//! the WAL's default `SyncPolicy::Interval`), takes what was copied,
//! `write`s it to a file and `fdatasync`s the file. Every system call,
//! all writeback and every disk interrupt is off the publisher's thread.
//! The raw iceoryx2 sink with this beside it is the baseline that
//! separates what durability costs on a machine from what mdbus's WAL
//! adds to it (issue 12: "the same setup with raw iceoryx2 plus a bare
//! fdatasync loop").

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mdbus_types::MdSample;
use mdbus_wal::FRAME_HEADER_LEN;

use crate::error::{Error, Result};

/// How often the thread syncs (the WAL's default group-commit interval).
pub const SYNC_INTERVAL: Duration = Duration::from_millis(2);

#[derive(Debug, Default)]
struct Shared {
    /// Bytes copied by the publisher and not yet written.
    pending: Mutex<Vec<u8>>,
    stop: AtomicBool,
    /// Set once `error` holds the thread's error.
    failed: AtomicBool,
    error: Mutex<Option<String>>,
    /// `fdatasync` calls that returned.
    syncs: AtomicU64,
}

/// A file the publisher appends to through memory, and the journaller
/// thread that writes and `fdatasync`s it. The thread starts on
/// [`FsyncLoop::create`]'s caller's CPUs (a pinned publisher's core,
/// like the WAL's threads) and on drop writes what is left and stops.
#[derive(Debug)]
pub struct FsyncLoop {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FsyncLoop {
    /// Creates (truncates) `path` and starts the sync thread.
    pub fn create(path: &Path) -> Result<FsyncLoop> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            let owned = path.to_path_buf();
            std::thread::Builder::new()
                .name("bench-fdatasync".to_string())
                .spawn(move || sync_loop(&file, &owned, &shared))
                .map_err(|e| Error::io(path, e))?
        };
        Ok(FsyncLoop {
            shared,
            thread: Some(thread),
        })
    }

    /// Copies each record as a WAL frame would hold it (an 8-byte header,
    /// here zeros, the record's bytes, zeros up to a multiple of 8) for
    /// the journaller, which writes and syncs them within about two
    /// intervals; one lock for the lot. Fails with the journaller's error
    /// once it had one.
    pub fn append<'a>(&mut self, records: impl IntoIterator<Item = &'a [u8]>) -> Result<()> {
        // SYNC: pairs with the Release store in `sync_loop` after it
        // wrote `error`.
        if self.shared.failed.load(Ordering::Acquire) {
            let error = lock(&self.shared.error).clone().unwrap_or_default();
            return Err(Error::Run(format!("the journaller's write or fdatasync of {error}")));
        }
        let mut pending = lock(&self.shared.pending);
        for record in records {
            let end = pending.len() + (FRAME_HEADER_LEN + record.len()).next_multiple_of(8);
            pending.extend_from_slice(&[0; FRAME_HEADER_LEN]);
            pending.extend_from_slice(record);
            pending.resize(end, 0);
        }
        Ok(())
    }

    /// [`FsyncLoop::append`] of a batch of samples at the WAL's volume: each
    /// record's own bytes (a tick's 104, not the sample's 376; a sample of
    /// no known kind, which the harness never sends, whole).
    pub fn append_samples(&mut self, batch: &[MdSample]) -> Result<()> {
        self.append(batch.iter().map(|s| s.record_bytes().unwrap_or_else(|_| s.as_bytes())))
    }

    /// `fdatasync` calls the thread has made so far.
    pub fn syncs(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn sync_loop(file: &File, path: &Path, shared: &Shared) {
    let mut taken = Vec::new();
    loop {
        // SYNC: pairs with the Release store in `Drop for FsyncLoop`.
        let last = shared.stop.load(Ordering::Acquire);
        if !last {
            std::thread::sleep(SYNC_INTERVAL);
        }
        // Swap, so the publisher's lock is held for no copy and no I/O.
        std::mem::swap(&mut *lock(&shared.pending), &mut taken);
        let done = (&*file).write_all(&taken).and_then(|()| file.sync_data());
        taken.clear();
        if let Err(e) = done {
            *lock(&shared.error) = Some(format!("{}: {e}", path.display()));
            // SYNC: pairs with the Acquire load in `FsyncLoop::append`.
            shared.failed.store(true, Ordering::Release);
            return;
        }
        shared.syncs.fetch_add(1, Ordering::Relaxed);
        if last {
            return;
        }
    }
}

impl Drop for FsyncLoop {
    fn drop(&mut self) {
        // SYNC: pairs with the Acquire load in `sync_loop`.
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn appends_reach_the_file_and_the_journaller_keeps_syncing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("load.bin");
        let mut load = FsyncLoop::create(&path).unwrap();
        load.append([&b"first"[..], b"12345678"]).unwrap();
        // Header, "first", 3 bytes of padding; header, 8 bytes.
        let first = [&[0; 8][..], b"first", &[0; 3], &[0; 8], b"12345678"].concat();
        let watchdog = Instant::now() + Duration::from_secs(30);
        while std::fs::read(&path).unwrap() != first || load.syncs() < 2 {
            assert!(
                Instant::now() < watchdog,
                "not written and synced in 30 s ({} syncs)",
                load.syncs()
            );
            std::thread::yield_now();
        }
        load.append([&b"second"[..]]).unwrap();
        // Dropping writes what is left.
        drop(load);
        let all = [&first[..], &[0; 8], b"second", &[0; 2]].concat();
        assert_eq!(std::fs::read(&path).unwrap(), all);
    }
}
