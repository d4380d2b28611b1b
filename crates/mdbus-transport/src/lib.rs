//! Transports of mdbus: the traits a transport implements, and the
//! in-process broadcast bus on crossbeam that builds without iceoryx2.
//!
//! Every transport keeps the same slow-consumer policy as the shared-memory
//! path (iceoryx2 with safe overflow): the sender never blocks; a receiver
//! that falls behind loses its *oldest* samples and sees the hole in `seq`.
//!
//! # Quick start
//!
//! ```
//! use mdbus_transport::{InProcBus, MdReceiver, MdSender};
//! use mdbus_types::{Heartbeat, Kind, MdSample, RecordHeader};
//!
//! let bus = InProcBus::new(1024);
//! let mut rx = bus.subscribe();
//! let mut tx = bus.sender();
//! let mut sample = MdSample::from(Heartbeat { header: RecordHeader::new(Kind::Heartbeat, 0) });
//! sample.header_mut().seq = 1;
//! tx.send(&sample)?;
//! tx.end_batch()?;
//! assert_eq!(rx.try_recv()?.unwrap().header().seq, 1);
//! # Ok::<(), mdbus_transport::Error>(())
//! ```

mod error;
#[cfg(feature = "iceoryx2")]
pub mod iceoryx;
mod inproc;

use std::time::Duration;

pub use error::{Error, Result};
pub use inproc::{InProcBus, InProcReceiver, InProcSender, Popped};
use mdbus_types::{MdSample, RecordRef};

/// The sending side of a feed's transport. Never blocks on a slow receiver.
pub trait MdSender {
    /// Sends one sample (its header already stamped by the publisher).
    fn send(&mut self, sample: &MdSample) -> Result<()>;

    /// Sends one record (its header already stamped) from its own bytes:
    /// a transport with loaned shared memory writes them into the loan
    /// once, the tail zeroed. The default builds an [`MdSample`] first.
    fn send_record(&mut self, record: RecordRef<'_>) -> Result<()> {
        self.send(&record.to_sample())
    }

    /// Marks the end of a send batch: wakes receivers that wait (the
    /// iceoryx2 transport notifies its event service here).
    fn end_batch(&mut self) -> Result<()>;
}

/// The receiving side of a feed's transport.
pub trait MdReceiver {
    /// A received sample held where the transport keeps it: iceoryx2's
    /// sample in shared memory (returned to the publisher when dropped:
    /// hold few at a time), the in-process bus's popped sample. Reading it
    /// through `Deref` copies nothing.
    type Held: std::ops::Deref<Target = MdSample>;

    /// The next sample if one is there, without waiting.
    fn try_recv(&mut self) -> Result<Option<MdSample>>;

    /// [`MdReceiver::try_recv`] without copying the sample out of the
    /// transport.
    fn try_recv_held(&mut self) -> Result<Option<Self::Held>>;

    /// The next sample, waiting up to `timeout` (the whole timeout, even
    /// while no sender is attached: one may attach meanwhile); `Ok(None)`
    /// when nothing came and a sender is attached,
    /// `Err(Error::Disconnected)` when nothing came and no sender is
    /// attached (not final: a sender that attaches later is received).
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<MdSample>>;

    /// Samples this receiver lost because it fell behind (oldest first).
    fn dropped(&self) -> u64;
}
