//! mdbus across hosts: a Zenoh bridge that replicates a feed to another
//! host without a hole, a repeat or a reorder.
//!
//! - [`out`] (`mdbus bridge out`) reads the local feed with replay-merge
//!   and puts its records, in the documented layout, several per message,
//!   on `mdbus/<feed>/md`; it answers gap-fill queries from the feed's WAL.
//! - [`inbound`] (`mdbus bridge in`) republishes them into a local replica
//!   (iceoryx2 service, snapshot board, WAL) with the source's seq and
//!   bytes, filling every hole from the source's WAL first.
//!
//! - [`status`] is what each rewrites once a second for `mdbus bridge
//!   status`: link state, lag, records/s, gap fills, reconnects.
//!
//! The payload is plain records ([`wire`]), so a Zenoh client in any
//! language decodes the feed with docs/spec.md alone.
//!
//! # Quick start
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use mdbus_bridge::out::{OutConfig, run};
//!
//! let mut config = OutConfig::new("md");
//! config.listen = vec!["tcp/0.0.0.0:7447".into()];
//! let stop = AtomicBool::new(false);
//! run(&config, &stop, |stats| println!("{stats:?}"))?;
//! # Ok::<(), mdbus_bridge::Error>(())
//! ```
//!
//! # Feature flags
//!
//! None: the crate always uses iceoryx2 and Zenoh over TCP. The `mdbus`
//! binary includes it through mdbus-cli's `bridge` feature.

mod error;
pub mod inbound;
pub mod out;
pub mod session;
pub mod status;
pub mod wire;

pub use error::{Error, Result};

/// Zenoh's runtime threads for a bridge (`ZENOH_RUNTIME`, read once when
/// Zenoh starts): one receive worker instead of Zenoh's default two, and
/// the network runtime's tasks handed over to it. With two workers, the
/// one that reads a socket wakes the other (a futex wake per message);
/// with one, it handles the message itself. Measured at 100 k records/s
/// through a veth pair (README, Across hosts): `bridge in` 0.38-0.43 ->
/// 0.25-0.28 core, and a lower p50. A bridge's Zenoh callbacks never
/// block, so one receive worker is enough for them. `mdbus bridge` sets
/// it unless `ZENOH_RUNTIME` is set already; a program embedding the
/// bridge sets it itself before it opens a session.
pub const ZENOH_RUNTIME: &str = "(rx: (worker_threads: 1), net: (handover: rx))";

/// Zenoh's log on stderr, filtered by `RUST_LOG` (default: warnings and
/// errors, e.g. a link that closed).
pub fn init_logging() {
    zenoh::init_log_from_env_or("warn");
}
