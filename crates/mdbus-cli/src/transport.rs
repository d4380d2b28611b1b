//! The transport the CLI publishes and subscribes on.

use std::path::Path;

use mdbus_transport::{InProcBus, InProcSender};

/// The sender of `mdbus publish`. Without the iceoryx2 transport there is
/// no other process to reach, so records go to the WAL and the board only
/// (an in-process bus with no receiver).
pub(crate) fn publisher_sender(feed: &str, _wal: &Path) -> mdbus_transport::Result<InProcSender> {
    mdbus_transport::validate_feed_name(feed)?;
    Ok(InProcBus::new(1).sender())
}
