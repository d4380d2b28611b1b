//! How an [`IoxReceiver`](super::IoxReceiver) waits for the next
//! sample, like Aeron's idle strategies.

use std::time::Duration;

/// How a subscriber waits in
/// [`recv_timeout`](crate::MdReceiver::recv_timeout) when nothing is
/// queued. Latency and CPU trade against each other: measured on a 2-vCPU
/// VM, busy polling delivers in well under 1 us, a wake-up through the
/// event service costs a kernel wake-up (~13 us p50, ms tails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Poll the queue in a tight loop (`spin_loop` hint): lowest latency,
    /// one core at 100 %.
    BusySpin,
    /// Poll `spins` times, then `yields` times with `thread::yield_now`,
    /// then sleep, doubling from `min_park` up to `max_park` (Aeron's
    /// `BackoffIdleStrategy`). Latency after a quiet period is up to
    /// `max_park`; CPU falls to almost nothing when the feed is quiet.
    Backoff {
        /// Polls with a spin hint before yielding.
        spins: u32,
        /// Polls with `thread::yield_now` before parking.
        yields: u32,
        /// First sleep.
        min_park: Duration,
        /// Longest sleep.
        max_park: Duration,
    },
    /// Sleep on the feed's event service until the publisher ends a batch
    /// ([`EVENT_END_OF_BATCH`](super::EVENT_END_OF_BATCH)) or starts
    /// ([`EVENT_PUBLISHER_STARTED`](super::EVENT_PUBLISHER_STARTED)): lowest
    /// CPU, a kernel wake-up of latency. Samples sent without `end_batch`
    /// are seen at the next batch end or when the timeout expires.
    Block,
}

impl WaitStrategy {
    /// [`WaitStrategy::Backoff`] with 100 spins, 10 yields, and sleeps
    /// from 1 us to 1 ms.
    pub const fn backoff() -> WaitStrategy {
        WaitStrategy::Backoff {
            spins: 100,
            yields: 10,
            min_park: Duration::from_micros(1),
            max_park: Duration::from_millis(1),
        }
    }
}

impl Default for WaitStrategy {
    /// [`WaitStrategy::Block`]: the safe choice on a shared machine.
    fn default() -> WaitStrategy {
        WaitStrategy::Block
    }
}
