//! The iceoryx2 ends: raw iceoryx2 publish-subscribe (the baseline), and
//! mdbus (`FeedPublisher` over `IoxSender`, `IoxReceiver`).

use std::path::Path;
use std::time::{Duration, Instant};

use iceoryx2::node::{Node, NodeBuilder};
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::{ServiceName, SignalHandlingMode};
use iceoryx2::service::ipc;
use iceoryx2::service::port_factory::{event as event_factory, publish_subscribe as md_factory};
use mdbus_publisher::{FeedConfig, FeedPublisher};
use mdbus_subscriber::{EventRef, Source as RecordSource, Subscriber as FeedSubscriber, SubscriberConfig};
use mdbus_transport::MdReceiver;
use mdbus_transport::iceoryx::{IoxReceiver, IoxReceiverConfig, IoxSender, IoxSenderConfig, WaitStrategy, settings};
use mdbus_types::MdSample;
use mdbus_wal::{SyncPolicy, WalOptions};

use super::fsync::FsyncLoop;
use super::{Sink, Source, stamp};
use crate::error::{Error, Result};
use crate::payload;
use crate::scenario::Wait;

fn iox_error(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::Run(format!("raw iceoryx2: {what}: {e:?}"))
}

/// The raw services of a run: `mdbench/<name>/raw` and its event service.
struct RawServices {
    md: md_factory::PortFactory<ipc::Service, MdSample, ()>,
    event: event_factory::PortFactory<ipc::Service>,
    _node: Node<ipc::Service>,
}

/// Opens or creates the raw services with mdbus's settings (same buffer,
/// safe overflow), so only mdbus's own work differs.
fn raw_services(name: &str) -> Result<RawServices> {
    let node = NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(|e| iox_error("node", e))?;
    let service = ServiceName::new(&format!("mdbench/{name}/raw")).map_err(|e| iox_error("service name", e))?;
    let md = node
        .service_builder(&service)
        .publish_subscribe::<MdSample>()
        .user_header::<()>()
        .enable_safe_overflow(settings::SAFE_OVERFLOW)
        .subscriber_max_buffer_size(settings::SUBSCRIBER_MAX_BUFFER_SIZE)
        .subscriber_max_borrowed_samples(settings::SUBSCRIBER_MAX_BORROWED_SAMPLES)
        .max_subscribers(settings::MAX_SUBSCRIBERS)
        .max_publishers(settings::MAX_PUBLISHERS)
        .max_nodes(settings::MAX_NODES)
        .history_size(settings::HISTORY_SIZE)
        .open_or_create()
        .map_err(|e| iox_error("publish-subscribe service", e))?;
    let event_name =
        ServiceName::new(&format!("mdbench/{name}/raw/ev")).map_err(|e| iox_error("event service name", e))?;
    let event = node
        .service_builder(&event_name)
        .event()
        .max_notifiers(settings::EVENT_MAX_NOTIFIERS)
        .max_listeners(settings::EVENT_MAX_LISTENERS)
        .max_nodes(settings::MAX_NODES)
        .open_or_create()
        .map_err(|e| iox_error("event service", e))?;
    Ok(RawServices { md, event, _node: node })
}

/// Raw iceoryx2 publisher: loan, write, send; with blocking subscribers
/// also a notification per batch (what they wait on). With a
/// [`FsyncLoop`] ([`RawSink::with_fsync`]) each batch is first copied for
/// its journaller, as mdbus appends a batch to the WAL before sending it.
pub struct RawSink {
    publisher: Publisher<ipc::Service, MdSample, ()>,
    notifier: Option<Notifier<ipc::Service>>,
    fsync: Option<FsyncLoop>,
    _services: RawServices,
}

impl std::fmt::Debug for RawSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSink").finish_non_exhaustive()
    }
}

impl RawSink {
    /// Creates the services and the publisher (and the notifier when
    /// subscribers block).
    pub fn create(name: &str, wait: Wait) -> Result<RawSink> {
        let services = raw_services(name)?;
        let publisher = services
            .md
            .publisher_builder()
            .create()
            .map_err(|e| iox_error("publisher", e))?;
        let notifier = match wait {
            Wait::Block => Some(
                services
                    .event
                    .notifier_builder()
                    .create()
                    .map_err(|e| iox_error("notifier", e))?,
            ),
            Wait::Spin => None,
        };
        Ok(RawSink {
            publisher,
            notifier,
            fsync: None,
            _services: services,
        })
    }

    /// Copies every batch for a journaller before sending it; the
    /// journaller, a thread started here (so on the caller's core when it
    /// is pinned, as the WAL's threads are), writes the copies to `path`
    /// and `fdatasync`s it every 2 ms.
    pub fn with_fsync(mut self, path: &Path) -> Result<RawSink> {
        self.fsync = Some(FsyncLoop::create(path)?);
        Ok(self)
    }
}

impl Sink for RawSink {
    fn send_batch(&mut self, batch: &mut [MdSample]) -> Result<()> {
        let stamped = if let Some(fsync) = &mut self.fsync {
            // mdbus's order: stamp, append (for the file), send.
            batch.iter_mut().for_each(stamp);
            fsync.append_samples(batch)?;
            true
        } else {
            false
        };
        for sample in batch.iter_mut() {
            // Without a journaller each record is stamped just before its send.
            if !stamped {
                stamp(sample);
            }
            let loaned = self.publisher.loan_uninit().map_err(|e| iox_error("loan", e))?;
            loaned.write_payload(*sample).send().map_err(|e| iox_error("send", e))?;
        }
        if let Some(notifier) = &self.notifier {
            notifier.notify().map_err(|e| iox_error("notify", e))?;
        }
        Ok(())
    }
}

/// Raw iceoryx2 subscriber: reads samples in place; blocks on the event
/// service's listener.
pub struct RawSource {
    subscriber: Subscriber<ipc::Service, MdSample, ()>,
    listener: Listener<ipc::Service>,
    _services: RawServices,
}

impl std::fmt::Debug for RawSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSource").finish_non_exhaustive()
    }
}

impl RawSource {
    /// Opens the services (the publisher created them) and subscribes.
    pub fn open(name: &str) -> Result<RawSource> {
        let services = raw_services(name)?;
        let subscriber = services
            .md
            .subscriber_builder()
            .buffer_size(settings::SUBSCRIBER_MAX_BUFFER_SIZE)
            .create()
            .map_err(|e| iox_error("subscriber", e))?;
        let listener = services
            .event
            .listener_builder()
            .create()
            .map_err(|e| iox_error("listener", e))?;
        Ok(RawSource {
            subscriber,
            listener,
            _services: services,
        })
    }

    #[inline]
    fn try_recv<R, F: FnOnce(&MdSample) -> R>(&mut self, f: F) -> Result<std::result::Result<R, F>> {
        match self.subscriber.receive().map_err(|e| iox_error("receive", e))? {
            Some(sample) => Ok(Ok(f(sample.payload()))),
            None => Ok(Err(f)),
        }
    }
}

impl Source for RawSource {
    fn recv<R>(&mut self, wait: Wait, timeout: Duration, f: impl FnOnce(&MdSample) -> R) -> Result<Option<R>> {
        let mut f = match self.try_recv(f)? {
            Ok(r) => return Ok(Some(r)),
            Err(f) => f,
        };
        let deadline = Instant::now() + timeout;
        let mut polls = 0u32;
        loop {
            match wait {
                Wait::Spin => {
                    std::hint::spin_loop();
                    polls = polls.wrapping_add(1);
                    if polls & 0xff == 0 && Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
                Wait::Block => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    self.listener
                        .timed_wait(|_| {}, deadline - now)
                        .map_err(|e| iox_error("wait", e))?;
                }
            }
            f = match self.try_recv(f)? {
                Ok(r) => return Ok(Some(r)),
                Err(f) => f,
            };
        }
    }
}

/// mdbus's publish path: `FeedPublisher` (seq, WAL, send, board) over
/// `IoxSender`.
#[derive(Debug)]
pub struct MdbusSink {
    publisher: FeedPublisher<IoxSender>,
}

impl MdbusSink {
    /// Opens the feed `name` with its WAL and board in `dir`.
    pub fn open(name: &str, dir: &Path, sync: SyncPolicy) -> Result<MdbusSink> {
        let mut config = FeedConfig::new(name);
        config.wal_root = Some(dir.join("wal"));
        config.wal = WalOptions::default().sync(sync);
        config.board_dir = Some(dir.join("board"));
        std::fs::create_dir_all(dir.join("board")).map_err(|e| Error::io(dir.join("board"), e))?;
        let wal = config.wal_location()?.expect("the sink has a WAL");
        let mut publisher = FeedPublisher::open_with(config, || {
            IoxSender::create(&IoxSenderConfig::new(wal.feed().as_str()).wal(wal.clone()))
        })?;
        // The WAL prepares its next segment at open (64 MiB allocated, pages
        // faulted in): a one-off of the open, not in the warm-up, on the
        // publisher's core. With large folios (the default) a fast writer's
        // rate has it prepared again with a fill, in the run, and the
        // segment live at open ends early (the writer's probe).
        publisher.wait_wal_prepared();
        Ok(MdbusSink { publisher })
    }
}

impl Sink for MdbusSink {
    fn send_batch(&mut self, batch: &mut [MdSample]) -> Result<()> {
        self.publisher.publish_batch(batch)?;
        Ok(())
    }

    fn housekeeping(&mut self) -> Result<()> {
        self.publisher.poll()?;
        Ok(())
    }
}

/// The feed `name`'s `IoxReceiver`, spinning or blocking as `wait` says.
fn open_receiver(name: &str, wait: Wait) -> Result<IoxReceiver> {
    let strategy = match wait {
        Wait::Spin => WaitStrategy::BusySpin,
        Wait::Block => WaitStrategy::Block,
    };
    Ok(IoxReceiver::open(&IoxReceiverConfig::new(name).wait(strategy))?)
}

/// An mdbus subscriber (`IoxReceiver` with `WaitStrategy::BusySpin` or
/// `WaitStrategy::Block`), received through its `recv_timeout`.
#[derive(Debug)]
pub struct MdbusSource {
    subscriber: IoxReceiver,
}

impl MdbusSource {
    /// Opens the feed `name` (the publisher created it).
    pub fn open(name: &str, wait: Wait) -> Result<MdbusSource> {
        Ok(MdbusSource {
            subscriber: open_receiver(name, wait)?,
        })
    }
}

impl Source for MdbusSource {
    fn recv<R>(&mut self, _wait: Wait, timeout: Duration, f: impl FnOnce(&MdSample) -> R) -> Result<Option<R>> {
        match self.subscriber.recv_timeout(timeout) {
            Ok(Some(sample)) => Ok(Some(f(&sample))),
            Ok(None) | Err(mdbus_transport::Error::Disconnected) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The full mdbus subscriber a user runs: `mdbus_subscriber::Subscriber`
/// over an `IoxReceiver`, with the WAL the publisher announces (replay
/// from its recovery point, holes in the live stream filled from it), L1
/// and L2 kept, records taken through `next_event_ref` (in place when it
/// keeps up). A record the transport dropped comes late from the WAL
/// instead of being lost, and its latency says how late.
pub struct MdbusSubscriberSource {
    subscriber: FeedSubscriber<IoxReceiver>,
    /// Measured records delivered as gap fills.
    from_wal: u64,
}

impl std::fmt::Debug for MdbusSubscriberSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdbusSubscriberSource").finish_non_exhaustive()
    }
}

impl MdbusSubscriberSource {
    /// Opens the feed `name` (the publisher created it and announces its
    /// WAL) with the default `SubscriberConfig`.
    pub fn open(name: &str, wait: Wait) -> Result<MdbusSubscriberSource> {
        let receiver = open_receiver(name, wait)?;
        let announced = receiver.wal()?;
        if announced.is_none() {
            return Err(Error::Run(format!("feed {name} announces no WAL")));
        }
        let config = SubscriberConfig::default().wal_found(None, name, announced)?;
        Ok(MdbusSubscriberSource {
            subscriber: FeedSubscriber::new(receiver, config)?,
            from_wal: 0,
        })
    }
}

impl Source for MdbusSubscriberSource {
    fn recv<R>(&mut self, _wait: Wait, timeout: Duration, f: impl FnOnce(&MdSample) -> R) -> Result<Option<R>> {
        loop {
            match self.subscriber.next_event_ref(timeout)? {
                Some(EventRef::Record { sample, source }) => {
                    if source == RecordSource::GapFill && payload::read(sample).is_some_and(|r| r.measured) {
                        self.from_wal += 1;
                    }
                    return Ok(Some(f(sample)));
                }
                // `ReplayDone` and `Gap` carry no record (a gap shows as
                // lost indexes).
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }

    fn filled_from_wal(&self) -> u64 {
        self.from_wal
    }
}
