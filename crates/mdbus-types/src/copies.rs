//! A debug counter of record copies on the publish path, for the test that
//! holds the "zero copy" promise (feature `count-copies`, off by default:
//! without it every function here is a no-op and `count` is always 0).
//!
//! Counted: every time mdbus code copies a record's bytes into an
//! [`MdSample`](crate::MdSample) or into a transport's shared-memory sample.
//! Not counted: the WAL's own copy into its map (the one copy durability
//! needs), and moves the compiler makes. Per thread, so parallel tests do
//! not see each other's copies.

#[cfg(feature = "count-copies")]
thread_local! {
    static COPIES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Notes one copy of a record (called at each copy site).
#[inline(always)]
pub fn note() {
    #[cfg(feature = "count-copies")]
    COPIES.with(|c| c.set(c.get() + 1));
}

/// Copies noted on this thread since the last [`reset`].
pub fn count() -> u64 {
    #[cfg(feature = "count-copies")]
    return COPIES.with(std::cell::Cell::get);
    #[cfg(not(feature = "count-copies"))]
    0
}

/// Starts counting from 0 on this thread.
pub fn reset() {
    #[cfg(feature = "count-copies")]
    COPIES.with(|c| c.set(0));
}

/// Whether copies are counted in this build.
pub const ENABLED: bool = cfg!(feature = "count-copies");
