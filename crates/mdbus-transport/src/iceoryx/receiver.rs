//! [`IoxReceiver`]: the receiving side of a feed on iceoryx2.

use std::fmt;
use std::time::{Duration, Instant};

use iceoryx2::node::Node;
use iceoryx2::port::listener::Listener;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::PortFactory;
use iceoryx2::sample::Sample;
use iceoryx2::service::builder::event::EventOpenError;
use iceoryx2::service::builder::publish_subscribe::PublishSubscribeOpenError;
use iceoryx2::service::ipc;
use iceoryx2::service::port_factory::{event as event_factory, publish_subscribe as md_factory};
use mdbus_types::{MdSample, WalLocation};

use super::WaitStrategy;
use super::names::{
    DOES_NOT_EXIST, EVENT_PUBLISHER_STARTED, NOT_SHARED_YET, create_node, event_open_reason, event_service_name,
    md_open_reason, md_service_name, service_error, service_name, settings,
};
use super::namespace::{Keeper, Namespace};
use super::sender::announced_wal;
use crate::{Error, MdReceiver, Result};

/// What an [`IoxReceiver`] opens, and how it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoxReceiverConfig {
    /// Feed name, 1 to 32 characters of `[A-Za-z0-9_-]`.
    pub feed: String,
    /// How [`recv_timeout`](MdReceiver::recv_timeout) waits.
    pub wait: WaitStrategy,
}

impl IoxReceiverConfig {
    /// A subscriber of `feed` with the default [`WaitStrategy::Block`].
    pub fn new(feed: impl Into<String>) -> IoxReceiverConfig {
        IoxReceiverConfig {
            feed: feed.into(),
            wait: WaitStrategy::default(),
        }
    }

    /// Sets the wait strategy.
    pub fn wait(mut self, wait: WaitStrategy) -> IoxReceiverConfig {
        self.wait = wait;
        self
    }
}

/// Receives the [`MdSample`]s of a feed from `mdbus/<feed>/md`, and
/// listens on `mdbus/<feed>/md/ev`. Not `Send`: create it in the thread
/// that receives.
///
/// - [`dropped`](MdReceiver::dropped) counts records lost by the transport
///   as this subscriber saw them: the holes in `seq` between consecutive
///   samples it received (iceoryx2 does not count what safe overflow
///   overwrote). Counting starts at the first sample received, so what a
///   late joiner never saw is not counted, and a lost tail shows only when
///   the next sample arrives.
/// - [`recv_timeout`](MdReceiver::recv_timeout) waits the whole timeout
///   for a sample even while no publisher is attached (a publisher that
///   starts meanwhile wakes a blocking wait with its start event), and
///   returns `Err(Error::Disconnected)` when the wait ended with nothing
///   queued and no publisher attached (one that exited, or a killed one
///   once its dead node was cleaned). That is not final: the subscriber
///   stays attached, and receives from a publisher that starts later.
pub struct IoxReceiver {
    feed: String,
    md_service: String,
    wait: WaitStrategy,
    subscriber: Subscriber<ipc::Service, MdSample, ()>,
    listener: Listener<ipc::Service>,
    md: md_factory::PortFactory<ipc::Service, MdSample, ()>,
    _event: event_factory::PortFactory<ipc::Service>,
    _node: Node<ipc::Service>,
    /// Gives the group the files of a grouped feed; dropped after the ports.
    _keeper: Option<Keeper>,
    /// `seq` of the last sample received; 0 before the first.
    last_seq: u64,
    /// Records missing between received samples (holes in `seq`).
    dropped: u64,
    /// [`EVENT_PUBLISHER_STARTED`] notifications seen.
    publisher_starts: u64,
}

impl IoxReceiver {
    /// [`IoxReceiver::open`], retried every 20 ms for up to `wait_for`
    /// while the feed does not exist yet or is not yet shared with its
    /// group (a publisher may be starting);
    /// any other error, or the feed still missing at the deadline, is
    /// returned at once.
    pub fn open_waiting(config: &IoxReceiverConfig, wait_for: Duration) -> Result<IoxReceiver> {
        let deadline = Instant::now() + wait_for;
        loop {
            match IoxReceiver::open(config) {
                Err(Error::Service { reason, .. })
                    if (reason.contains(DOES_NOT_EXIST) || reason.contains(NOT_SHARED_YET))
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                result => return result,
            }
        }
    }

    /// Opens the feed's services, asking for docs/spec.md's settings as
    /// minimums, and creates the subscriber and the listener.
    ///
    /// Errors: [`Error::FeedName`] for a bad feed name;
    /// [`Error::AccessDenied`] for a feed with a Unix group the user is not
    /// in; [`Error::Service`] when the services do not exist yet (no
    /// publisher created them), are not yet shared with the feed's group
    /// (its publisher is starting: [`IoxReceiver::open_waiting`] waits for
    /// both), or exist with another payload type, smaller settings or safe
    /// overflow off, naming what differs.
    pub fn open(config: &IoxReceiverConfig) -> Result<IoxReceiver> {
        let md_service = md_service_name(&config.feed)?;
        let ev_service = event_service_name(&config.feed)?;
        let namespace = Namespace::for_subscriber(&config.feed, &md_service)?;
        let node = match create_node(&namespace, &md_service, "sub") {
            Ok(node) => node,
            // A user who may not use iceoryx2's default root (made by
            // another user, mode 0750) waits there for a feed with a group
            // whose publisher has not made its own root yet.
            Err(Error::Service { reason, .. }) if !namespace.is_grouped() => {
                return Err(service_error(
                    &md_service,
                    format!("{DOES_NOT_EXIST}, or this user may not use iceoryx2's default root ({reason})"),
                ));
            }
            // The feed's own root exists, but its publisher may not have
            // made its folders and given them the group yet (it creates
            // the root first): waited for like the services.
            Err(Error::Service { reason, .. }) => {
                return Err(service_error(&md_service, format!("{NOT_SHARED_YET} ({reason})")));
            }
            Err(e) => return Err(e),
        };

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
            .open()
            .map_err(|e| match e {
                PublishSubscribeOpenError::InsufficientPermissions if namespace.is_grouped() => {
                    service_error(&md_service, NOT_SHARED_YET)
                }
                e => service_error(&md_service, md_open_reason(&namespace.config, &md_service, e, None)),
            })?;
        let event = node
            .service_builder(&service_name(&ev_service)?)
            .event()
            .max_notifiers(settings::EVENT_MAX_NOTIFIERS)
            .max_listeners(settings::EVENT_MAX_LISTENERS)
            .max_nodes(settings::MAX_NODES)
            .open()
            .map_err(|e| match e {
                EventOpenError::InsufficientPermissions if namespace.is_grouped() => {
                    service_error(&ev_service, NOT_SHARED_YET)
                }
                e => service_error(&ev_service, event_open_reason(e)),
            })?;

        let subscriber = md
            .subscriber_builder()
            .buffer_size(settings::SUBSCRIBER_MAX_BUFFER_SIZE)
            .create()
            .map_err(|e| service_error(&md_service, format!("cannot create a subscriber: {e:?}")))?;
        let subscriber_id = subscriber.id().value();
        let listener = event
            .listener_builder()
            .create()
            .map_err(|e| service_error(&ev_service, format!("cannot create a listener: {e:?}")))?;

        Ok(IoxReceiver {
            feed: config.feed.clone(),
            md_service,
            wait: config.wait,
            subscriber,
            listener,
            md,
            _event: event,
            _node: node,
            _keeper: namespace.share_and_keep(Some(subscriber_id)),
            last_seq: 0,
            dropped: 0,
            publisher_starts: 0,
        })
    }

    /// The feed name.
    pub fn feed(&self) -> &str {
        &self.feed
    }

    /// The feed's WAL, from the service attribute `mdbus.wal_dir` the
    /// publisher set, `None` when it set none.
    ///
    /// Errors: [`Error::Service`](crate::Error::Service) when the attribute
    /// is not a folder `<root>/<feed>` of this feed.
    pub fn wal(&self) -> Result<Option<WalLocation>> {
        announced_wal(&self.md_service, &self.feed, self.md.attributes())
    }

    /// The wait strategy of [`recv_timeout`](MdReceiver::recv_timeout).
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// Changes the wait strategy.
    pub fn set_wait_strategy(&mut self, wait: WaitStrategy) {
        self.wait = wait;
    }

    /// Publishers attached to the sample service now (a killed publisher
    /// counts until its dead node is cleaned up).
    pub fn publisher_count(&self) -> usize {
        self.md.dynamic_config().number_of_publishers()
    }

    /// Subscribers attached to the feed's service now, this one included.
    pub fn subscriber_count(&self) -> usize {
        self.md.dynamic_config().number_of_subscribers()
    }

    /// How many times a publisher started on this feed since this
    /// subscriber opened it ([`EVENT_PUBLISHER_STARTED`] notifications;
    /// several starts between two polls of the event service may count
    /// once). Updated whenever the subscriber looks at its event service:
    /// in every [`WaitStrategy::Block`] wait, in the sleeping phase of
    /// [`WaitStrategy::Backoff`], when a `recv_timeout` times out, and in
    /// [`poll_events`](Self::poll_events).
    pub fn publisher_restarts(&self) -> u64 {
        self.publisher_starts
    }

    /// Drains the event service without waiting and returns
    /// [`publisher_restarts`](Self::publisher_restarts). One system call:
    /// a busy-spinning user calls it now and then.
    pub fn poll_events(&mut self) -> Result<u64> {
        let starts = &mut self.publisher_starts;
        self.listener
            .try_wait(|activation| {
                if activation.id.as_value() == EVENT_PUBLISHER_STARTED {
                    *starts += activation.count.max(1);
                }
            })
            .map_err(|e| service_error(&self.md_service, format!("cannot read the event service: {e:?}")))?;
        Ok(self.publisher_starts)
    }

    /// Hands the next sample to `f` in place in shared memory (no copy), if
    /// one is queued.
    #[inline]
    pub fn try_recv_with<R>(&mut self, f: impl FnOnce(&MdSample) -> R) -> Result<Option<R>> {
        match self.subscriber.receive() {
            Ok(Some(sample)) => {
                self.note_seq(sample.payload().header().seq);
                Ok(Some(f(sample.payload())))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(service_error(&self.md_service, format!("cannot receive: {e:?}"))),
        }
    }

    #[inline]
    fn note_seq(&mut self, seq: u64) {
        if self.last_seq != 0 && seq > self.last_seq + 1 {
            self.dropped += seq - self.last_seq - 1;
        }
        self.last_seq = seq;
    }

    /// Nothing is queued at the end of a wait: `Err(Disconnected)` if no
    /// publisher is attached and nothing arrived meanwhile, else what
    /// arrived (or `None`).
    fn check_disconnected(&mut self) -> Result<Option<MdSample>> {
        if self.publisher_count() > 0 {
            return Ok(None);
        }
        // A publisher that sent and then left is counted out after its
        // last send: look once more before saying so.
        self.try_recv()?.map(Some).ok_or(Error::Disconnected)
    }

    /// The final look of a wait that timed out.
    fn timed_out(&mut self) -> Result<Option<MdSample>> {
        self.poll_events()?;
        match self.try_recv()? {
            Some(sample) => Ok(Some(sample)),
            None => self.check_disconnected(),
        }
    }

    fn wait_spinning(&mut self, deadline: Option<Instant>) -> Result<Option<MdSample>> {
        let mut polls: u32 = 0;
        loop {
            std::hint::spin_loop();
            if let Some(sample) = self.try_recv()? {
                return Ok(Some(sample));
            }
            polls = polls.wrapping_add(1);
            // Every 256 polls (a mask: `is_multiple_of` is newer than our MSRV).
            if polls & 0xff == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                return self.timed_out();
            }
        }
    }

    fn wait_backoff(
        &mut self,
        deadline: Option<Instant>,
        spins: u32,
        yields: u32,
        min_park: Duration,
        max_park: Duration,
    ) -> Result<Option<MdSample>> {
        let mut idle: u64 = 0;
        let mut park = min_park.max(Duration::from_nanos(1));
        loop {
            if let Some(sample) = self.try_recv()? {
                return Ok(Some(sample));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return self.timed_out();
            }
            if idle < u64::from(spins) {
                std::hint::spin_loop();
            } else if idle < u64::from(spins) + u64::from(yields) {
                std::thread::yield_now();
            } else {
                self.poll_events()?;
                let sleep = deadline.map_or(park, |d| park.min(d - now));
                std::thread::sleep(sleep);
                park = (park * 2).min(max_park.max(min_park));
            }
            idle += 1;
        }
    }

    fn wait_blocking(&mut self, deadline: Option<Instant>) -> Result<Option<MdSample>> {
        loop {
            // A notification sent after our last look stays pending in the
            // event service, so this wait returns at once: no lost wake-up.
            // With no publisher attached this waits too: a new one's start
            // event wakes it.
            let starts = &mut self.publisher_starts;
            let on_event = |activation: iceoryx2::port::EventActivation| {
                if activation.id.as_value() == EVENT_PUBLISHER_STARTED {
                    *starts += activation.count.max(1);
                }
            };
            let waited = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return self.timed_out();
                    }
                    self.listener.timed_wait(on_event, deadline - now)
                }
                None => self.listener.blocking_wait(on_event),
            };
            waited.map_err(|e| service_error(&self.md_service, format!("cannot wait on the event service: {e:?}")))?;
            if let Some(sample) = self.try_recv()? {
                return Ok(Some(sample));
            }
        }
    }
}

/// A sample received from iceoryx2, read in place in shared memory; it
/// goes back to the publisher when dropped (a receiver may hold at most
/// `settings::SUBSCRIBER_MAX_BORROWED_SAMPLES` at once).
pub struct IoxHeld(Sample<ipc::Service, MdSample, ()>);

impl std::ops::Deref for IoxHeld {
    type Target = MdSample;

    #[inline]
    fn deref(&self) -> &MdSample {
        self.0.payload()
    }
}

impl fmt::Debug for IoxHeld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IoxHeld").field(&self.0.payload().header()).finish()
    }
}

impl MdReceiver for IoxReceiver {
    type Held = IoxHeld;

    #[inline]
    fn try_recv(&mut self) -> Result<Option<MdSample>> {
        self.try_recv_with(|sample| *sample)
    }

    #[inline]
    fn try_recv_held(&mut self) -> Result<Option<IoxHeld>> {
        match self.subscriber.receive() {
            Ok(Some(sample)) => {
                self.note_seq(sample.payload().header().seq);
                Ok(Some(IoxHeld(sample)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(service_error(&self.md_service, format!("cannot receive: {e:?}"))),
        }
    }

    /// Waits with the subscriber's [`WaitStrategy`].
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<MdSample>> {
        if let Some(sample) = self.try_recv()? {
            return Ok(Some(sample));
        }
        // A timeout too large for `Instant` waits forever.
        let deadline = Instant::now().checked_add(timeout);
        match self.wait {
            WaitStrategy::BusySpin => self.wait_spinning(deadline),
            WaitStrategy::Backoff {
                spins,
                yields,
                min_park,
                max_park,
            } => self.wait_backoff(deadline, spins, yields, min_park, max_park),
            WaitStrategy::Block => self.wait_blocking(deadline),
        }
    }

    /// Records lost by the transport, seen as holes in `seq` (see the type's
    /// documentation).
    fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl fmt::Debug for IoxReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoxReceiver")
            .field("feed", &self.feed)
            .field("wait", &self.wait)
            .field("last_seq", &self.last_seq)
            .field("dropped", &self.dropped)
            .field("publisher_starts", &self.publisher_starts)
            .finish_non_exhaustive()
    }
}
