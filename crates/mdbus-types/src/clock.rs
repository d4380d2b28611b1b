//! Wall-clock timestamps in ns since the Unix epoch, as records carry them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in ns since the Unix epoch (CLOCK_REALTIME, so processes on one
/// host compare their stamps directly). A clock before 1970 gives 0.
#[inline]
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
