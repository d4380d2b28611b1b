//! The transport the CLI publishes and subscribes on: iceoryx2 shared
//! memory with the `iceoryx2` feature (the default build), otherwise none
//! across processes.

use mdbus_types::{FeedGroup, WalLocation};

/// The sender of `mdbus publish`: the feed's iceoryx2 service, whose
/// `mdbus.wal_dir` attribute announces `wal` (its feed folder, made
/// absolute), readable by `group` when one is given.
#[cfg(feature = "iceoryx2")]
pub(crate) fn publisher_sender(
    wal: &WalLocation,
    group: Option<FeedGroup>,
) -> mdbus_transport::Result<mdbus_transport::iceoryx::IoxSender> {
    use mdbus_transport::iceoryx::{IoxSender, IoxSenderConfig};
    let mut config = IoxSenderConfig::new(wal.feed().as_str()).wal(wal.clone());
    config.group = group;
    IoxSender::create(&config)
}

/// The sender of `mdbus publish` in a build without iceoryx2: there is no
/// other process to reach, so records go to the WAL and the board only
/// (an in-process bus with no receiver).
#[cfg(not(feature = "iceoryx2"))]
pub(crate) fn publisher_sender(
    _wal: &WalLocation,
    _group: Option<FeedGroup>,
) -> mdbus_transport::Result<mdbus_transport::InProcSender> {
    Ok(mdbus_transport::InProcBus::new(1).sender())
}
