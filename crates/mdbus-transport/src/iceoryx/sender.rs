//! [`IoxSender`]: the sending side of a feed on iceoryx2.

use std::fmt;
use std::path::{Path, PathBuf};

use iceoryx2::node::Node;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::prelude::{AttributeVerifier, EventId, PortFactory, SemanticString};
use iceoryx2::service::attribute::{AttributeKey, AttributeValue};
use iceoryx2::service::port_factory::{event as event_factory, publish_subscribe as md_factory};
use iceoryx2::service::{Service, ipc, ipc_threadsafe};
use mdbus_types::{FeedGroup, MdSample, RecordRef, SAMPLE_SIZE, WalLocation};

use super::names::{
    EVENT_END_OF_BATCH, EVENT_PUBLISHER_STARTED, WAL_DIR_ATTRIBUTE, create_node, event_open_or_create_reason,
    event_service_name, md_open_or_create_reason, md_service_name, service_error, service_name, settings,
};
use super::namespace::{Keeper, Namespace};
use crate::{MdSender, Result};

/// What an [`IoxSender`] publishes: the feed, and the WAL it announces in
/// the [`WAL_DIR_ATTRIBUTE`] service attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoxSenderConfig {
    /// Feed name, 1 to 32 characters of `[A-Za-z0-9_-]`.
    pub feed: String,
    /// The feed's WAL, announced as its folder `<root>/<feed>` with the
    /// root made absolute (against the current directory); `None` sets no
    /// attribute. Its feed must be `feed`.
    pub wal: Option<WalLocation>,
    /// The Unix group that may subscribe (`None`: iceoryx2's default
    /// owner-only files, in its default configuration). With a group the
    /// feed's iceoryx2 files live in [`group_root`](super::group_root) and
    /// are readable (and, where iceoryx2 needs it, writable) by the group;
    /// only this user publishes the feed.
    pub group: Option<FeedGroup>,
}

impl IoxSenderConfig {
    /// A sender of `feed` without a WAL attribute.
    pub fn new(feed: impl Into<String>) -> IoxSenderConfig {
        IoxSenderConfig {
            feed: feed.into(),
            wal: None,
            group: None,
        }
    }

    /// Announces `wal` as the feed's WAL.
    pub fn wal(mut self, wal: WalLocation) -> IoxSenderConfig {
        self.wal = Some(wal);
        self
    }

    /// Lets the members of `group` subscribe (see [`IoxSenderConfig::group`]).
    pub fn group(mut self, group: FeedGroup) -> IoxSenderConfig {
        self.group = Some(group);
        self
    }
}

/// Publishes [`MdSample`]s on `mdbus/<feed>/md` and notifies
/// `mdbus/<feed>/md/ev`. Never blocks on a slow subscriber (safe
/// overflow).
///
/// `S` is the iceoryx2 service variant of its ports. The default,
/// `ipc::Service` ([`IoxSender::create`]), has single-threaded ports: the
/// sender is not `Send`, so create it in the thread that sends.
/// [`IoxSharedSender`] ([`IoxSender::create_shared`]) uses
/// `ipc_threadsafe::Service`, the same shared-memory resources with each
/// port behind a mutex: it is `Send` and may move between threads (e.g.
/// onto a network library's receive thread), at a lock per loan, send and
/// notify. Subscribers of either variant read the same services.
pub struct IoxSender<S: Service = ipc::Service> {
    feed: String,
    md_service: String,
    /// Taken (dropped) in `Drop`, before the last notification; `Some`
    /// until then.
    publisher: Option<Publisher<S, MdSample, ()>>,
    notifier: Notifier<S>,
    md: md_factory::PortFactory<S, MdSample, ()>,
    _event: event_factory::PortFactory<S>,
    _node: Node<S>,
    /// Gives the group the files of a grouped feed; dropped last.
    _keeper: Option<Keeper>,
}

/// An [`IoxSender`] whose ports are thread-safe (`Send`): see there.
pub type IoxSharedSender = IoxSender<ipc_threadsafe::Service>;

impl IoxSender {
    /// Opens or creates the feed's services with docs/spec.md's settings,
    /// creates the publisher and the notifier, and notifies
    /// [`EVENT_PUBLISHER_STARTED`]. Dead nodes of crashed processes are
    /// cleaned first, so this works after a publisher was killed.
    ///
    /// Errors: [`Error::FeedName`](crate::Error::FeedName) for a bad feed
    /// name; [`Error::Service`](crate::Error::Service) when a service exists
    /// with another payload type, smaller settings, safe overflow off or
    /// another `mdbus.wal_dir`, or cannot be created; with a group, when
    /// the feed's iceoryx2 root belongs to another user (only its owner
    /// publishes the feed) or the user is not in the group; without one,
    /// when the feed was published with a group before.
    pub fn create(config: &IoxSenderConfig) -> Result<IoxSender> {
        IoxSender::create_in(config)
    }

    /// [`IoxSender::create`] with thread-safe ports: a sender that is
    /// `Send` (see [`IoxSender`]). Same services, settings and errors.
    pub fn create_shared(config: &IoxSenderConfig) -> Result<IoxSharedSender> {
        IoxSender::create_in(config)
    }
}

impl<S: Service> IoxSender<S> {
    fn create_in(config: &IoxSenderConfig) -> Result<IoxSender<S>> {
        let md_service = md_service_name(&config.feed)?;
        let ev_service = event_service_name(&config.feed)?;
        let wal_dir = absolute_wal_dir(&md_service, &config.feed, config.wal.as_ref())?;
        let verifier = wal_dir_verifier(&md_service, wal_dir.as_deref())?;
        let namespace = Namespace::for_publisher(&config.feed, &md_service, config.group.as_ref())?;
        let node = create_node(&namespace, &md_service, "pub")?;

        let md = node
            .service_builder(&service_name(&md_service)?)
            .publish_subscribe::<MdSample>()
            .user_header::<()>()
            .enable_safe_overflow(settings::SAFE_OVERFLOW)
            .subscriber_max_buffer_size(settings::SUBSCRIBER_MAX_BUFFER_SIZE)
            .subscriber_max_borrowed_samples(settings::SUBSCRIBER_MAX_BORROWED_SAMPLES)
            .max_subscribers(settings::MAX_SUBSCRIBERS)
            .max_publishers(settings::MAX_PUBLISHERS)
            .max_nodes(settings::MAX_NODES)
            .history_size(settings::HISTORY_SIZE)
            .open_or_create_with_attributes(&verifier)
            .map_err(|e| {
                service_error(
                    &md_service,
                    md_open_or_create_reason(&namespace.config, &md_service, e, wal_dir.as_deref()),
                )
            })?;
        let event = node
            .service_builder(&service_name(&ev_service)?)
            .event()
            .max_notifiers(settings::EVENT_MAX_NOTIFIERS)
            .max_listeners(settings::EVENT_MAX_LISTENERS)
            .max_nodes(settings::MAX_NODES)
            .open_or_create()
            .map_err(|e| service_error(&ev_service, event_open_or_create_reason(e)))?;

        let publisher = md
            .publisher_builder()
            .create()
            .map_err(|e| service_error(&md_service, format!("cannot create a publisher: {e:?}")))?;
        let notifier = event
            .notifier_builder()
            .default_event_id(EventId::new(EVENT_END_OF_BATCH))
            .create()
            .map_err(|e| service_error(&ev_service, format!("cannot create a notifier: {e:?}")))?;
        let keeper = namespace.share_and_keep(None);
        notifier
            .notify_with_custom_event_id(EventId::new(EVENT_PUBLISHER_STARTED))
            .map_err(|e| service_error(&ev_service, format!("cannot notify the publisher start: {e:?}")))?;

        Ok(IoxSender {
            feed: config.feed.clone(),
            md_service,
            publisher: Some(publisher),
            notifier,
            md,
            _event: event,
            _node: node,
            _keeper: keeper,
        })
    }

    /// The feed name.
    pub fn feed(&self) -> &str {
        &self.feed
    }

    /// The WAL announced in the sample service's `mdbus.wal_dir` attribute
    /// (set by whoever created the service), `None` when there is none.
    ///
    /// Errors: [`Error::Service`](crate::Error::Service) when the attribute
    /// is not a folder `<root>/<feed>` of this feed.
    pub fn wal(&self) -> Result<Option<WalLocation>> {
        announced_wal(&self.md_service, &self.feed, self.md.attributes())
    }

    /// The publisher port (taken only by `Drop`).
    #[inline]
    fn port(&self) -> &Publisher<S, MdSample, ()> {
        self.publisher.as_ref().expect("the publisher port lives until drop")
    }

    /// Subscribers connected to the sample service now.
    pub fn subscriber_count(&self) -> usize {
        self.md.dynamic_config().number_of_subscribers()
    }
}

impl<S: Service> MdSender for IoxSender<S> {
    /// Loans a sample in shared memory, writes `sample` into it in place,
    /// and sends it. Never blocks: a full subscriber queue drops its oldest.
    /// One copy, from `sample` into the loan (`write_payload` takes the
    /// sample by value: a second 376-byte copy through the stack).
    #[inline]
    fn send(&mut self, sample: &MdSample) -> Result<()> {
        let mut loaned = self
            .port()
            .loan_uninit()
            .map_err(|e| service_error(&self.md_service, format!("cannot loan a sample: {e:?}")))?;
        mdbus_types::copies::note();
        // SAFETY: the loan's payload is one `MdSample`, exclusively ours
        // until `send`; `sample` is our own memory, so they cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(sample, loaned.payload_mut().as_mut_ptr(), 1) };
        // SAFETY: the whole `MdSample` was written just above.
        let loaned = unsafe { loaned.assume_init() };
        loaned
            .send()
            .map_err(|e| service_error(&self.md_service, format!("cannot send a sample: {e:?}")))?;
        Ok(())
    }

    /// The record's bytes go straight into the loaned sample (one copy),
    /// the rest of it zeroed: no `MdSample` is built on the way.
    fn send_record(&mut self, record: RecordRef<'_>) -> Result<()> {
        let bytes = record.as_bytes();
        let mut loaned = self
            .port()
            .loan_uninit()
            .map_err(|e| service_error(&self.md_service, format!("cannot loan a sample: {e:?}")))?;
        let payload: *mut u8 = loaned.payload_mut().as_mut_ptr().cast();
        debug_assert!(bytes.len() <= SAMPLE_SIZE);
        mdbus_types::copies::note();
        // SAFETY: `payload` points to the loaned sample's `SAMPLE_SIZE`
        // bytes, exclusively ours until `send`; every record is at most
        // `SAMPLE_SIZE` bytes (the largest record is the sample's size), so
        // the copy and the zeroed tail stay inside it, and the record's
        // bytes (our own memory) cannot overlap the loan.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), payload, bytes.len());
            std::ptr::write_bytes(payload.add(bytes.len()), 0, SAMPLE_SIZE - bytes.len());
        }
        // SAFETY: all `SAMPLE_SIZE` bytes were written just above, and any
        // bytes are a valid `MdSample` (it is `Pod`).
        let loaned = unsafe { loaned.assume_init() };
        loaned
            .send()
            .map_err(|e| service_error(&self.md_service, format!("cannot send a sample: {e:?}")))?;
        Ok(())
    }

    /// Notifies [`EVENT_END_OF_BATCH`]: wakes subscribers that block.
    fn end_batch(&mut self) -> Result<()> {
        // Failures towards single listeners are only logged by iceoryx2;
        // an error here means the notifier itself is broken.
        self.notifier.notify().map_err(|e| {
            service_error(
                &format!("{}/ev", self.md_service),
                format!("cannot notify the end of a batch: {e:?}"),
            )
        })?;
        Ok(())
    }
}

impl<S: Service> Drop for IoxSender<S> {
    fn drop(&mut self) {
        // The publisher port goes first, so subscribers woken below see it
        // gone.
        drop(self.publisher.take());
        // Wake blocked subscribers so they see the publisher is gone.
        let _ignored = self.notifier.notify();
    }
}

impl<S: Service> fmt::Debug for IoxSender<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoxSender")
            .field("feed", &self.feed)
            .finish_non_exhaustive()
    }
}

/// The WAL's feed folder with its root made absolute, as UTF-8 text.
fn absolute_wal_dir(service: &str, feed: &str, wal: Option<&WalLocation>) -> Result<Option<String>> {
    let Some(wal) = wal else {
        return Ok(None);
    };
    if wal.feed().as_str() != feed {
        return Err(service_error(
            service,
            format!("the WAL {wal} is of feed {}, not {feed}", wal.feed()),
        ));
    }
    let absolute = wal
        .absolute()
        .map_err(|e| service_error(service, format!("cannot make the WAL folder {wal} absolute: {e}")))?;
    let text = absolute.dir().into_os_string().into_string().map_err(|path| {
        service_error(
            service,
            format!("the WAL folder {} is not valid UTF-8", Path::new(&path).display()),
        )
    })?;
    Ok(Some(text))
}

/// The attribute requirement for `mdbus.wal_dir`: on creation it becomes
/// the service's attribute; on open (a restarted publisher) the service
/// must already carry the same value.
fn wal_dir_verifier(service: &str, wal_dir: Option<&str>) -> Result<AttributeVerifier> {
    let Some(text) = wal_dir else {
        return Ok(AttributeVerifier::new());
    };
    let key = AttributeKey::new(WAL_DIR_ATTRIBUTE.as_bytes())
        .map_err(|e| service_error(service, format!("invalid attribute key: {e:?}")))?;
    let value = AttributeValue::new(text.as_bytes()).map_err(|e| {
        service_error(
            service,
            format!("the WAL folder {text:?} does not fit the {WAL_DIR_ATTRIBUTE} attribute: {e:?}"),
        )
    })?;
    AttributeVerifier::new().require(&key, &value).map_err(|e| {
        service_error(
            service,
            format!("cannot define the {WAL_DIR_ATTRIBUTE} attribute: {e:?}"),
        )
    })
}

/// The WAL announced in an attribute set, checked to be a feed folder of
/// `feed`.
pub(super) fn announced_wal(
    service: &str,
    feed: &str,
    attributes: &iceoryx2::prelude::AttributeSet,
) -> Result<Option<WalLocation>> {
    let Some(dir) = wal_dir_of(attributes) else {
        return Ok(None);
    };
    let wal = WalLocation::from_feed_dir(&dir)
        .map_err(|e| service_error(service, format!("its {WAL_DIR_ATTRIBUTE} attribute: {e}")))?;
    if wal.feed().as_str() != feed {
        return Err(service_error(
            service,
            format!("its {WAL_DIR_ATTRIBUTE} attribute {wal} is the WAL of another feed"),
        ));
    }
    Ok(Some(wal))
}

/// The `mdbus.wal_dir` value of an attribute set.
pub(super) fn wal_dir_of(attributes: &iceoryx2::prelude::AttributeSet) -> Option<PathBuf> {
    let key = AttributeKey::new(WAL_DIR_ATTRIBUTE.as_bytes()).ok()?;
    let value = attributes.key_value(&key, 0)?;
    std::str::from_utf8(value.as_bytes()).ok().map(PathBuf::from)
}
