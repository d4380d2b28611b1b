//! Wire names and settings of a feed's iceoryx2 services (docs/spec.md,
//! "Wire names (iceoryx2)"), node creation, and iceoryx2 errors turned
//! into [`Error::Service`] reasons that say what differs.

use iceoryx2::config::Config;
use iceoryx2::node::{Node, NodeBuilder};
use iceoryx2::prelude::NodeName;
use iceoryx2::prelude::{MessagingPattern, SignalHandlingMode};
use iceoryx2::service::builder::event::{EventOpenError, EventOpenOrCreateError};
use iceoryx2::service::builder::publish_subscribe::{
    PublishSubscribeCreateError, PublishSubscribeOpenError, PublishSubscribeOpenOrCreateError,
};
use iceoryx2::service::{Service, ipc, service_name::ServiceName};
use mdbus_types::MdSample;

use super::namespace::Namespace;
use crate::{Error, Result};
use mdbus_types::FeedName;

/// The settings docs/spec.md fixes for a feed's services. The publisher
/// creates the services with exactly these; a subscriber asks for them as
/// minimums (iceoryx2 treats an opener's settings as minimums), so a
/// service created with less is refused with a clear [`Error::Service`].
/// How a service error starts when the feed has no service yet (no
/// publisher created it).
pub(crate) const DOES_NOT_EXIST: &str = "does not exist: no publisher has created it yet";
/// How a service error starts when a feed with a group exists but its
/// publisher, starting, has not given the group its files yet (a
/// subscriber that waits for the publisher retries).
pub(crate) const NOT_SHARED_YET: &str = "is not readable by the feed's group yet: its publisher is starting";

pub mod settings {
    /// `subscriber_max_buffer_size`: samples a subscriber queues before
    /// safe overflow drops its oldest.
    pub const SUBSCRIBER_MAX_BUFFER_SIZE: usize = 4096;
    /// `subscriber_max_borrowed_samples`.
    pub const SUBSCRIBER_MAX_BORROWED_SAMPLES: usize = 8;
    /// `max_subscribers` of the sample service.
    pub const MAX_SUBSCRIBERS: usize = 16;
    /// `max_publishers` of the sample service (2: a restarted publisher
    /// may start before the dead one is cleaned up).
    pub const MAX_PUBLISHERS: usize = 2;
    /// `max_nodes` of both services.
    pub const MAX_NODES: usize = 64;
    /// `history_size`: 0, late joiners catch up from the WAL.
    pub const HISTORY_SIZE: usize = 0;
    /// Safe overflow: a slow subscriber loses its oldest samples and never
    /// stalls the publisher.
    pub const SAFE_OVERFLOW: bool = true;
    /// `max_notifiers` of the event service.
    pub const EVENT_MAX_NOTIFIERS: usize = 2;
    /// `max_listeners` of the event service.
    pub const EVENT_MAX_LISTENERS: usize = 16;
}

/// The service attribute that holds the absolute path of the feed's WAL
/// folder.
pub const WAL_DIR_ATTRIBUTE: &str = "mdbus.wal_dir";

/// Event id the publisher notifies after each send batch.
pub const EVENT_END_OF_BATCH: usize = 0;

/// Event id the publisher notifies once when it starts (a publisher
/// started or restarted).
pub const EVENT_PUBLISHER_STARTED: usize = 1;

/// The sample service of a feed: `mdbus/<feed>/md`.
pub fn md_service_name(feed: &str) -> Result<String> {
    FeedName::new(feed)?;
    Ok(format!("mdbus/{feed}/md"))
}

/// The event service of a feed: `mdbus/<feed>/md/ev`.
pub fn event_service_name(feed: &str) -> Result<String> {
    FeedName::new(feed)?;
    Ok(format!("mdbus/{feed}/md/ev"))
}

/// Whether the sample or the event service of `feed` exists (some process
/// holds a publisher, a subscriber or a not yet cleaned dead node of it).
///
/// Errors: [`Error::AccessDenied`] for a feed with a group the calling user
/// is not in.
pub fn feed_exists(feed: &str) -> Result<bool> {
    let md = md_service_name(feed)?;
    let ev = event_service_name(feed)?;
    let namespace = Namespace::for_subscriber(feed, &md)?;
    let config = &namespace.config;
    Ok(exists(config, &md, MessagingPattern::PublishSubscribe)? || exists(config, &ev, MessagingPattern::Event)?)
}

fn exists(config: &Config, service: &str, pattern: MessagingPattern) -> Result<bool> {
    let name = service_name(service)?;
    ipc::Service::does_exist(&name, config, pattern)
        .map_err(|e| service_error(service, format!("cannot list services: {e:?}")))
}

pub(super) fn service_error(service: &str, reason: impl Into<String>) -> Error {
    Error::Service {
        service: service.to_string(),
        reason: reason.into(),
    }
}

pub(super) fn service_name(service: &str) -> Result<ServiceName> {
    ServiceName::new(service).map_err(|e| service_error(service, format!("invalid iceoryx2 service name: {e}")))
}

/// A node for one transport endpoint. It leaves the process's signals
/// alone, and removes the resources of dead nodes (a publisher or
/// subscriber killed with kill -9) so their slots on our services are free.
pub(super) fn create_node<S: Service>(namespace: &Namespace, service: &str, role: &str) -> Result<Node<S>> {
    let name = NodeName::new(&format!("mdbus-{role}"))
        .map_err(|e| service_error(service, format!("invalid node name: {e:?}")))?;
    let node = NodeBuilder::new()
        .name(&name)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .config(&namespace.config)
        .create::<S>()
        .map_err(|e| service_error(service, format!("cannot create an iceoryx2 node: {e:?}")))?;
    // The default configuration cleans dead nodes on node creation too; a
    // configuration file may turn that off, so ask explicitly (~0.5 ms).
    let _cleanup = node.try_cleanup_dead_nodes();
    Ok(node)
}

/// The payload type name of the sample service (docs/spec.md).
const MD_TYPE_NAME: &str = "mdbus::v1::MdSample";

/// How an existing sample service differs from docs/spec.md's settings (and
/// from `wal_dir`, when one is required), read from its static
/// configuration: `["safe overflow false (expected true)", ...]`. `None`
/// when the service cannot be read.
fn md_differences(config: &Config, service: &str, wal_dir: Option<&str>) -> Option<Vec<String>> {
    use settings::*;
    let name = ServiceName::new(service).ok()?;
    let details = ipc::Service::details(&name, config, MessagingPattern::PublishSubscribe).ok()??;
    let static_config = details.static_details.publish_subscribe();
    let types = static_config.message_type_details();
    let mut differences = Vec::new();
    let mut check = |what: &str, has: String, expected: String| {
        if has != expected {
            differences.push(format!("{what} {has} (expected {expected})"));
        }
    };
    let payload =
        |name: &dyn std::fmt::Display, size: usize, align: usize| format!("{name} ({size} bytes, align {align})");
    check(
        "payload",
        payload(
            types.payload.type_name(),
            types.payload.size(),
            types.payload.alignment(),
        ),
        payload(&MD_TYPE_NAME, size_of::<MdSample>(), align_of::<MdSample>()),
    );
    check(
        "user header",
        types.user_header.type_name().to_string(),
        "()".to_string(),
    );
    check(
        "safe overflow",
        static_config.has_safe_overflow().to_string(),
        SAFE_OVERFLOW.to_string(),
    );
    let numbers = [
        (
            "subscriber_max_buffer_size",
            static_config.subscriber_max_buffer_size(),
            SUBSCRIBER_MAX_BUFFER_SIZE,
        ),
        (
            "subscriber_max_borrowed_samples",
            static_config.subscriber_max_borrowed_samples(),
            SUBSCRIBER_MAX_BORROWED_SAMPLES,
        ),
        ("max_subscribers", static_config.max_subscribers(), MAX_SUBSCRIBERS),
        ("max_publishers", static_config.max_publishers(), MAX_PUBLISHERS),
        ("max_nodes", static_config.max_nodes(), MAX_NODES),
        ("history_size", static_config.history_size(), HISTORY_SIZE),
    ];
    for (what, has, expected) in numbers {
        check(what, has.to_string(), expected.to_string());
    }
    if let Some(expected) = wal_dir {
        let has = super::sender::wal_dir_of(details.static_details.attributes())
            .map_or_else(|| "unset".to_string(), |dir| dir.display().to_string());
        check(WAL_DIR_ATTRIBUTE, has, expected.to_string());
    }
    Some(differences)
}

/// Clear words for a failed open of the sample service; `wal_dir` is the
/// `mdbus.wal_dir` value that was required, if any.
pub(super) fn md_open_reason(
    config: &Config,
    service: &str,
    e: PublishSubscribeOpenError,
    wal_dir: Option<&str>,
) -> String {
    use PublishSubscribeOpenError as E;
    let what = match e {
        E::DoesNotExist => return DOES_NOT_EXIST.to_string(),
        E::InsufficientPermissions => return "insufficient permissions to open it".to_string(),
        E::IncompatibleTypes => "exists with another payload or user header type",
        E::IncompatibleAttributes => "exists with another mdbus.wal_dir attribute",
        E::DoesNotSupportRequestedMinBufferSize => "exists with a smaller subscriber_max_buffer_size",
        E::DoesNotSupportRequestedMinHistorySize => "exists with a smaller history_size",
        E::DoesNotSupportRequestedMinSubscriberBorrowedSamples => {
            "exists with a smaller subscriber_max_borrowed_samples"
        }
        E::DoesNotSupportRequestedAmountOfPublishers => "exists with a smaller max_publishers",
        E::DoesNotSupportRequestedAmountOfSubscribers => "exists with a smaller max_subscribers",
        E::DoesNotSupportRequestedAmountOfNodes => "exists with a smaller max_nodes",
        E::IncompatibleOverflowBehavior => "exists with another overflow behaviour",
        E::IncompatibleMessagingPattern => "exists with another messaging pattern",
        E::ExceedsMaxNumberOfNodes => "has no room for another node (max_nodes reached)",
        E::VersionMismatch => "was created by another iceoryx2 version",
        other => return format!("cannot be opened: {other:?}"),
    };
    match md_differences(config, service, wal_dir) {
        Some(differences) if !differences.is_empty() => format!("{what}: {}", differences.join(", ")),
        _ => what.to_string(),
    }
}

/// Clear words for a failed open-or-create of the sample service.
pub(super) fn md_open_or_create_reason(
    config: &Config,
    service: &str,
    e: PublishSubscribeOpenOrCreateError,
    wal_dir: Option<&str>,
) -> String {
    match e {
        PublishSubscribeOpenOrCreateError::PublishSubscribeOpenError(e) => md_open_reason(config, service, e, wal_dir),
        PublishSubscribeOpenOrCreateError::PublishSubscribeCreateError(e) => md_create_reason(e),
        PublishSubscribeOpenOrCreateError::SystemInFlux => {
            "is being created and removed concurrently by other processes (system in flux)".to_string()
        }
    }
}

fn md_create_reason(e: PublishSubscribeCreateError) -> String {
    match e {
        PublishSubscribeCreateError::InsufficientPermissions => "insufficient permissions to create it".to_string(),
        PublishSubscribeCreateError::InternalFailure => {
            "cannot be created (internal failure; is /dev/shm large enough? it needs ~28 MB)".to_string()
        }
        other => format!("cannot be created: {other:?}"),
    }
}

/// Clear words for a failed open of the event service.
pub(super) fn event_open_reason(e: EventOpenError) -> String {
    use iceoryx2::service::builder::event::EventOpenError as E;
    use settings::*;
    let expected = format!(
        "expected max_notifiers {EVENT_MAX_NOTIFIERS}, max_listeners {EVENT_MAX_LISTENERS}, max_nodes {MAX_NODES}"
    );
    match e {
        E::DoesNotExist => DOES_NOT_EXIST.to_string(),
        E::DoesNotSupportRequestedAmountOfNotifiers => format!("exists with a smaller max_notifiers; {expected}"),
        E::DoesNotSupportRequestedAmountOfListeners => format!("exists with a smaller max_listeners; {expected}"),
        E::DoesNotSupportRequestedAmountOfNodes => format!("exists with a smaller max_nodes; {expected}"),
        E::DoesNotSupportRequestedMaxEventId => "exists with a max event id below 1".to_string(),
        E::IncompatibleMessagingPattern => "exists with another messaging pattern".to_string(),
        E::ExceedsMaxNumberOfNodes => "has no room for another node (max_nodes reached)".to_string(),
        E::VersionMismatch => "was created by another iceoryx2 version".to_string(),
        E::InsufficientPermissions => "insufficient permissions to open it".to_string(),
        other => format!("cannot be opened: {other:?}"),
    }
}

/// Clear words for a failed open-or-create of the event service.
pub(super) fn event_open_or_create_reason(e: EventOpenOrCreateError) -> String {
    match e {
        EventOpenOrCreateError::EventOpenError(e) => event_open_reason(e),
        EventOpenOrCreateError::EventCreateError(e) => format!("cannot be created: {e:?}"),
        EventOpenOrCreateError::SystemInFlux => {
            "is being created and removed concurrently by other processes (system in flux)".to_string()
        }
    }
}
