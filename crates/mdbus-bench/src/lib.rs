//! The mdbus latency harness: one-way latency of mdbus against raw
//! iceoryx2, a Unix domain datagram socket and a crossbeam channel, in
//! one run, with the same 376-byte record at the same rate.
//!
//! The binary `mdbus-latency` re-executes itself as a publisher process
//! and one process per subscriber ([`role`]); the parent ([`runner`])
//! drives them, reads the HDR histograms the subscribers wrote
//! (HdrHistogram V2, [`hist`]), merges them, builds the [`table`] with
//! ratios against raw iceoryx2, draws percentile [`plot`]s and writes
//! the [`report`] (with the WAL and cache numbers of the [`criterion`]
//! benches). Before the scenarios it probes the machine's [`floor`]: the
//! wait a spinning thread on each core sees with no transport at all.
//! `scripts/bench.sh [--quick]` runs all of it.
//!
//! # Quick start
//!
//! ```
//! use mdbus_bench::hist::{Percentiles, merge, new_histogram, record};
//!
//! let mut a = new_histogram();
//! let mut b = new_histogram();
//! record(&mut a, 1_500);
//! record(&mut b, 2_500);
//! let all = merge([&a, &b])?;
//! assert_eq!(Percentiles::of(&all).count, 2);
//! # Ok::<(), mdbus_bench::Error>(())
//! ```
//!
//! # Feature flags
//!
//! - `iceoryx2` (default): the mdbus and raw iceoryx2 rows. Without it
//!   the crate still builds (`cargo build --workspace
//!   --no-default-features`) and measures the Unix socket and crossbeam
//!   only; the report then says the targets were not measured.

pub mod criterion;
pub mod endpoints;
mod error;
pub mod floor;
pub mod hist;
pub mod payload;
pub mod plot;
pub mod report;
pub mod role;
pub mod runner;
pub mod scenario;
pub mod table;

pub use error::{Error, Result};
