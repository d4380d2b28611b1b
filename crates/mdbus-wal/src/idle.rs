//! Background threads at `SCHED_IDLE` that the appending thread promotes
//! when they fall behind.
//!
//! The sync and preallocation threads run at `SCHED_IDLE`, so that they
//! never preempt the appending thread (measured: the publisher's p99 at
//! 100 k/s pinned fell from 17.5 us to 10.2 us with the sync thread moved
//! there by hand). But a `SCHED_IDLE` thread gets only a sliver of a CPU
//! that something else keeps busy (weight 3 against 1024 for nice 0): with
//! a publisher spinning on the same core, the group commit ran every
//! 180 ms on average, 1.1 s at worst, instead of every 2 ms (measured with
//! `benches/append_tail.rs`, `MDBUS_TAIL_SPIN=1`). So the appending thread
//! watches them at page crossings (a coarse clock read, no syscall) and,
//! when one is late, moves it back to the normal policy with one
//! `sched_setscheduler`; the thread returns to `SCHED_IDLE` by itself
//! when it has caught up.
//!
//! Every failure here is ignored: lowering one's own policy needs no
//! privilege, but a sandbox (seccomp) may refuse it, and then the thread
//! simply competes with the appending thread as it did before (slower,
//! never wrong).

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

/// The calling thread's policy: `SCHED_IDLE` when `idle`, else the
/// normal `SCHED_OTHER`. `tid` 0 is the calling thread.
fn set_policy(tid: i32, idle: bool) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        let policy = if idle { libc::SCHED_IDLE } else { libc::SCHED_OTHER };
        // SAFETY: `param` is a valid sched_param that outlives the call;
        // `tid` is 0 (the calling thread) or the id of a thread of this
        // process recorded by `IdleThread::enter` (whose policy only is
        // changed; a thread that exited meanwhile gives ESRCH).
        let rc = unsafe { libc::sched_setscheduler(tid, policy, &param) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (tid, idle);
    Ok(())
}

/// Monotonic time in ns from the coarse clock (a few ns, ticks at the
/// scheduler's rate: precise enough to see a thread milliseconds late).
pub(crate) fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    #[cfg(target_os = "linux")]
    let clock = libc::CLOCK_MONOTONIC_COARSE;
    #[cfg(not(target_os = "linux"))]
    let clock = libc::CLOCK_MONOTONIC;
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// A background thread that runs at `SCHED_IDLE` unless promoted.
#[derive(Debug, Default)]
pub(crate) struct IdleThread {
    /// The thread's id, 0 until it called [`IdleThread::enter`].
    tid: AtomicI32,
    /// Promoted to the normal policy and not yet back.
    promoted: AtomicBool,
    /// [`coarse_now_ns`] when the thread last reported progress.
    progress_ns: AtomicU64,
}

impl IdleThread {
    /// Called by the thread itself first: records its id and moves it to
    /// `SCHED_IDLE` (not fatal, see the module docs).
    pub(crate) fn enter(&self) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let _ = set_policy(0, true);
        self.progress_ns.store(coarse_now_ns(), Ordering::Relaxed);
        // SYNC: pairs with the Acquire load in `promote`: a promoter that
        // sees the tid also sees the thread's own move to SCHED_IDLE done,
        // so its promotion is not undone by it.
        self.tid.store(tid, Ordering::Release);
    }

    /// Called by the thread when it made progress (a sync round): back to
    /// `SCHED_IDLE` if it was promoted.
    pub(crate) fn progressed(&self) {
        self.progress_ns.store(coarse_now_ns(), Ordering::Relaxed);
        // `promote` sets the flag after the policy: seeing it, the policy
        // is normal; missing it, the next call sees it.
        if self.promoted.swap(false, Ordering::Relaxed) {
            let _ = set_policy(0, true);
        }
    }

    /// Whether the thread reported no progress for `late_ns`.
    pub(crate) fn is_late(&self, now_ns: u64, late_ns: u64) -> bool {
        now_ns.saturating_sub(self.progress_ns.load(Ordering::Relaxed)) > late_ns
    }

    /// Moves the thread to the normal policy (one syscall), unless it is
    /// already promoted or has not started. Called by the appending thread
    /// only (one promoter).
    #[cold]
    pub(crate) fn promote(&self) {
        // SYNC: pairs with the Release store in `enter`.
        let tid = self.tid.load(Ordering::Acquire);
        if tid == 0 || self.promoted.load(Ordering::Relaxed) {
            return;
        }
        if set_policy(tid, false).is_ok() {
            self.promoted.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    fn policy() -> i32 {
        // SAFETY: reads the calling thread's policy.
        unsafe { libc::sched_getscheduler(0) }
    }

    /// A thread enters SCHED_IDLE, is promoted by another thread, and
    /// returns to SCHED_IDLE when it reports progress.
    #[cfg(target_os = "linux")]
    #[test]
    fn promoted_while_late_then_idle_again() {
        let idle = std::sync::Arc::new(IdleThread::default());
        idle.promote(); // not started: nothing to do
        let (to_thread, from_main) = std::sync::mpsc::channel::<()>();
        let (to_main, from_thread) = std::sync::mpsc::channel::<i32>();
        let shared = std::sync::Arc::clone(&idle);
        let thread = std::thread::spawn(move || {
            shared.enter();
            to_main.send(policy()).unwrap();
            from_main.recv().unwrap();
            to_main.send(policy()).unwrap();
            shared.progressed();
            to_main.send(policy()).unwrap();
        });
        assert_eq!(from_thread.recv().unwrap(), libc::SCHED_IDLE);
        assert!(idle.is_late(coarse_now_ns() + 1_000_000_000, 1));
        idle.promote();
        to_thread.send(()).unwrap();
        assert_eq!(from_thread.recv().unwrap(), libc::SCHED_OTHER);
        assert_eq!(from_thread.recv().unwrap(), libc::SCHED_IDLE);
        thread.join().unwrap();
    }
}
