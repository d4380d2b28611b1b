//! Group commit: a background thread that `msync`s the dirty range of
//! the live segment every interval (DESIGN.md's `SyncPolicy::Interval`).
//!
//! The writer publishes the end of what it wrote in `written`; the thread
//! flushes `[synced, written)` of the current map, and whatever a roll
//! left unsynced in retired maps. It never touches the bytes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use memmap2::MmapRaw;

use crate::error::Error;

/// When appended records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Never sync: records survive a crash of the process (they are in the
    /// page cache) but not a power loss unless the kernel wrote them back.
    Never,
    /// Group commit: a background thread syncs what was written every
    /// interval (default 2 ms).
    Interval(Duration),
    /// Sync every frame before `append` returns (one `msync` per record).
    Always,
}

impl Default for SyncPolicy {
    fn default() -> SyncPolicy {
        SyncPolicy::Interval(Duration::from_millis(2))
    }
}

/// A map region still to sync.
#[derive(Debug)]
struct Dirty {
    path: PathBuf,
    map: Arc<MmapRaw>,
    synced: usize,
}

#[derive(Debug)]
struct State {
    current: Dirty,
    retired: Vec<(Dirty, usize)>,
    stop: bool,
    error: Option<Error>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// End offset of the last frame written to the current map.
    written: AtomicUsize,
    /// Set when `error` holds an error (checked on every append, cheaply).
    failed: AtomicBool,
}

/// Handle of the group-commit thread.
#[derive(Debug)]
pub(crate) struct SyncWorker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn flush(d: &mut Dirty, to: usize) -> Result<(), Error> {
    if to > d.synced {
        d.map
            .flush_range(d.synced, to - d.synced)
            .map_err(|source| Error::Sync {
                path: d.path.clone(),
                source,
            })?;
        d.synced = to;
    }
    Ok(())
}

fn flush_all(shared: &Shared, state: &mut State) {
    // SYNC: pairs with the Release store in `SyncWorker::written`: the
    // frames below the loaded offset are complete in the map.
    let to = shared.written.load(Ordering::Acquire);
    let mut result = flush(&mut state.current, to);
    for (mut d, to) in state.retired.drain(..) {
        result = result.and(flush(&mut d, to));
    }
    if let Err(e) = result {
        state.error.get_or_insert(e);
        shared.failed.store(true, Ordering::Relaxed);
    }
}

impl SyncWorker {
    /// Starts the thread for `map` (the live segment), written up to `end`.
    pub(crate) fn start(path: PathBuf, map: Arc<MmapRaw>, end: usize, every: Duration) -> std::io::Result<SyncWorker> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                current: Dirty { path, map, synced: 0 },
                retired: Vec::new(),
                stop: false,
                error: None,
            }),
            wake: Condvar::new(),
            written: AtomicUsize::new(end),
            failed: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("mdbus-wal-sync".into())
            .spawn(move || {
                let shared = thread_shared;
                let mut state = lock(&shared);
                loop {
                    flush_all(&shared, &mut state);
                    if state.stop {
                        break;
                    }
                    state = match shared.wake.wait_timeout(state, every) {
                        Ok((guard, _)) => guard,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                }
            })?;
        Ok(SyncWorker {
            shared,
            thread: Some(thread),
        })
    }

    /// The writer wrote frames up to `end` in the current map.
    #[inline]
    pub(crate) fn written(&self, end: usize) {
        // SYNC: pairs with the Acquire load in `flush_all`.
        self.shared.written.store(end, Ordering::Release);
    }

    /// The writer moved to a new segment written up to `end` (its header):
    /// the old one is synced to its end by the thread, off the hot path.
    pub(crate) fn switch(&self, path: PathBuf, map: Arc<MmapRaw>, end: usize) {
        let mut state = lock(&self.shared);
        // SYNC: pairs with the Release store in `written` (same thread,
        // but keeps the load/store pairing uniform).
        let old_end = self.shared.written.load(Ordering::Acquire);
        let old = std::mem::replace(&mut state.current, Dirty { path, map, synced: 0 });
        state.retired.push((old, old_end));
        // SYNC: pairs with the Acquire load in `flush_all`, under the mutex.
        self.shared.written.store(end, Ordering::Release);
    }

    /// A background sync error, once.
    #[inline]
    pub(crate) fn take_error(&self) -> Option<Error> {
        if !self.shared.failed.load(Ordering::Relaxed) {
            return None;
        }
        self.shared.failed.store(false, Ordering::Relaxed);
        lock(&self.shared).error.take()
    }

    /// Syncs everything now, in the caller's thread.
    pub(crate) fn sync_now(&self) -> Result<(), Error> {
        let mut state = lock(&self.shared);
        flush_all(&self.shared, &mut state);
        self.shared.failed.store(false, Ordering::Relaxed);
        state.error.take().map_or(Ok(()), Err)
    }
}

impl Drop for SyncWorker {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
