//! Wall-clock timestamps in ns since the Unix epoch, as records carry them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in ns since the Unix epoch (CLOCK_REALTIME, so processes on one
/// host compare their stamps directly). A clock before 1970 gives 0.
///
/// The publisher stamps every record's `ts_publish` with it, so on Unix it
/// reads the clock directly (`clock_gettime`, the vDSO): `SystemTime`'s
/// `duration_since` and a 128-bit `as_nanos` cost about as much again.
#[cfg(unix)]
#[inline]
pub fn now_ns() -> i64 {
    use nix::time::{ClockId, clock_gettime};
    match clock_gettime(ClockId::CLOCK_REALTIME) {
        Ok(now) if now.tv_sec() >= 0 => now.tv_sec() * 1_000_000_000 + now.tv_nsec(),
        // Before 1970, or a clock that cannot be read (never for
        // CLOCK_REALTIME on Linux): as `SystemTime`'s path would give.
        _ => system_now_ns(),
    }
}

/// Now, in ns since the Unix epoch. A clock before 1970 gives 0.
#[cfg(not(unix))]
#[inline]
pub fn now_ns() -> i64 {
    system_now_ns()
}

/// [`now_ns`] through `SystemTime`.
#[cold]
fn system_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_ns_reads_the_same_clock_as_system_time() {
        // now_ns lies between two SystemTime readings taken around it.
        let before = system_now_ns();
        let now = now_ns();
        let after = system_now_ns();
        assert!(before > 1_600_000_000_000_000_000, "{before}");
        assert!(before <= now && now <= after, "{before} <= {now} <= {after}");
    }
}
