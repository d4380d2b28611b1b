//! The transport the CLI publishes and subscribes on: iceoryx2 shared
//! memory with the `iceoryx2` feature (the default build), otherwise none
//! across processes.

use std::path::Path;

/// The sender of `mdbus publish`: the feed's iceoryx2 service, whose
/// `mdbus.wal_dir` attribute is the absolute path of the feed's WAL folder
/// (`<wal>/<feed>`).
#[cfg(feature = "iceoryx2")]
pub(crate) fn publisher_sender(
    feed: &str,
    wal: &Path,
) -> mdbus_transport::Result<mdbus_transport::iceoryx::IoxPublisher> {
    use mdbus_transport::iceoryx::{IoxPublisher, IoxPublisherConfig};
    IoxPublisher::create(&IoxPublisherConfig::new(feed).wal_dir(wal.join(feed)))
}

/// The sender of `mdbus publish` in a build without iceoryx2: there is no
/// other process to reach, so records go to the WAL and the board only
/// (an in-process bus with no receiver).
#[cfg(not(feature = "iceoryx2"))]
pub(crate) fn publisher_sender(feed: &str, _wal: &Path) -> mdbus_transport::Result<mdbus_transport::InProcSender> {
    mdbus_transport::validate_feed_name(feed)?;
    Ok(mdbus_transport::InProcBus::new(1).sender())
}
