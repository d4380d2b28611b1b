//! In-process broadcast bus: one bounded queue per receiver.
//!
//! The sender pushes every sample into every receiver's
//! [`ArrayQueue`] with `force_push`, which drops the receiver's oldest
//! sample when its queue is full: the sender never blocks and never waits
//! for the slowest receiver, exactly like iceoryx2's safe overflow. The
//! receiver counts what it lost and sees the hole in `seq`.
//!
//! A receiver that waits parks on a one-slot crossbeam channel (its
//! doorbell); the sender rings it only when the receiver said it waits, so
//! the hot path costs one load per receiver and no syscall.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use mdbus_types::MdSample;
use parking_lot::RwLock;

use crate::{Error, MdReceiver, MdSender};

type Result<T> = crate::Result<T>;

/// One receiver's queue, shared between the senders and that receiver.
#[derive(Debug)]
struct RecvQueue {
    queue: ArrayQueue<MdSample>,
    /// Samples overwritten because the queue was full (statistics only).
    dropped: CachePadded<AtomicU64>,
    /// True while the receiver is about to park on its doorbell.
    waiting: CachePadded<AtomicBool>,
    doorbell: Sender<()>,
}

impl RecvQueue {
    fn ring(&self) {
        // Full: a wake-up is already pending; Disconnected: receiver gone.
        // Either way there is nobody more to wake.
        let _: std::result::Result<(), TrySendError<()>> = self.doorbell.try_send(());
    }
}

#[derive(Debug)]
struct Shared {
    capacity: usize,
    receivers: RwLock<Vec<Arc<RecvQueue>>>,
    /// Bumped whenever `receivers` changes, so senders refresh their copy.
    generation: AtomicU64,
    senders: AtomicUsize,
    /// Set when the last sender is dropped.
    closed: AtomicBool,
}

/// An in-process broadcast bus of [`MdSample`]s: any number of senders and
/// receivers, each receiver with its own bounded queue of `capacity`.
#[derive(Debug, Clone)]
pub struct InProcBus {
    shared: Arc<Shared>,
}

impl InProcBus {
    /// A bus whose receivers each queue up to `capacity` samples (at least 1).
    pub fn new(capacity: usize) -> InProcBus {
        InProcBus {
            shared: Arc::new(Shared {
                capacity: capacity.max(1),
                receivers: RwLock::new(Vec::new()),
                generation: AtomicU64::new(0),
                senders: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// A new sender. The bus is closed when the last sender is dropped.
    pub fn sender(&self) -> InProcSender {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        // SYNC: pairs with the Acquire loads of `closed` in `recv_timeout`.
        self.shared.closed.store(false, Ordering::Release);
        InProcSender {
            shared: Arc::clone(&self.shared),
            receivers: Vec::new(),
            generation: u64::MAX,
        }
    }

    /// A new receiver; it sees every sample sent from now on.
    pub fn subscribe(&self) -> InProcReceiver {
        let (doorbell, bell) = crossbeam_channel::bounded(1);
        let queue = Arc::new(RecvQueue {
            queue: ArrayQueue::new(self.shared.capacity),
            dropped: CachePadded::new(AtomicU64::new(0)),
            waiting: CachePadded::new(AtomicBool::new(false)),
            doorbell,
        });
        self.shared.receivers.write().push(Arc::clone(&queue));
        // SYNC: pairs with the Acquire load in `InProcSender::send`: a sender
        // that sees the new generation re-reads the receiver list.
        self.shared.generation.fetch_add(1, Ordering::Release);
        InProcReceiver {
            shared: Arc::clone(&self.shared),
            queue,
            bell,
        }
    }

    /// Number of live receivers.
    pub fn receiver_count(&self) -> usize {
        self.shared.receivers.read().len()
    }
}

/// Sends to every receiver of an [`InProcBus`]; never blocks.
#[derive(Debug)]
pub struct InProcSender {
    shared: Arc<Shared>,
    /// This sender's copy of the receiver list (refreshed on a new generation).
    receivers: Vec<Arc<RecvQueue>>,
    generation: u64,
}

impl MdSender for InProcSender {
    #[inline]
    fn send(&mut self, sample: &MdSample) -> Result<()> {
        // SYNC: pairs with the Release increments in `subscribe` and in
        // `InProcReceiver::drop`.
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.receivers.clone_from(&self.shared.receivers.read());
            self.generation = generation;
        }
        for receiver in &self.receivers {
            if receiver.queue.force_push(*sample).is_some() {
                receiver.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // SYNC: Dekker handshake with `recv_timeout`: the push above and
            // this load, and there the `waiting` store and the queue pop,
            // are separated by SeqCst fences, so either the receiver sees the
            // sample or this load sees `waiting` and rings the doorbell.
            fence(Ordering::SeqCst);
            if receiver.waiting.load(Ordering::Relaxed) {
                receiver.ring();
            }
        }
        Ok(())
    }

    fn end_batch(&mut self) -> Result<()> {
        // Receivers that wait were rung by `send` already.
        Ok(())
    }
}

impl Drop for InProcSender {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SYNC: pairs with the Acquire loads of `closed` in
            // `recv_timeout`: a receiver that sees `closed` sees every
            // sample pushed before it.
            self.shared.closed.store(true, Ordering::Release);
            for receiver in self.shared.receivers.read().iter() {
                receiver.ring();
            }
        }
    }
}

/// One receiver of an [`InProcBus`], with its own bounded queue.
#[derive(Debug)]
pub struct InProcReceiver {
    shared: Arc<Shared>,
    queue: Arc<RecvQueue>,
    bell: Receiver<()>,
}

impl InProcReceiver {
    /// Samples waiting in this receiver's queue.
    pub fn len(&self) -> usize {
        self.queue.queue.len()
    }

    /// Whether this receiver's queue is empty.
    pub fn is_empty(&self) -> bool {
        self.queue.queue.is_empty()
    }
}

/// A sample popped from an in-process queue (it was copied in by the
/// sender, and is moved, not copied again, into this).
#[derive(Debug, Clone, Copy)]
pub struct Popped(pub MdSample);

impl std::ops::Deref for Popped {
    type Target = MdSample;

    #[inline]
    fn deref(&self) -> &MdSample {
        &self.0
    }
}

impl MdReceiver for InProcReceiver {
    type Held = Popped;

    #[inline]
    fn try_recv(&mut self) -> Result<Option<MdSample>> {
        Ok(self.queue.queue.pop())
    }

    #[inline]
    fn try_recv_held(&mut self) -> Result<Option<Popped>> {
        Ok(self.queue.queue.pop().map(Popped))
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<MdSample>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(sample) = self.queue.queue.pop() {
                return Ok(Some(sample));
            }
            self.queue.waiting.store(true, Ordering::Relaxed);
            // SYNC: the SeqCst fence of the handshake in `InProcSender::send`.
            fence(Ordering::SeqCst);
            if let Some(sample) = self.queue.queue.pop() {
                self.queue.waiting.store(false, Ordering::Relaxed);
                return Ok(Some(sample));
            }
            let rung = self.bell.recv_deadline(deadline);
            self.queue.waiting.store(false, Ordering::Relaxed);
            match rung {
                Ok(()) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(sample) = self.queue.queue.pop() {
                        return Ok(Some(sample));
                    }
                    // SYNC: pairs with the Release stores of `closed` in
                    // `InProcSender::drop` and `InProcBus::sender`: a
                    // receiver that sees `closed` sees every sample sent
                    // before it, so the pop below is the last look.
                    if self.shared.closed.load(Ordering::Acquire) {
                        return self.queue.queue.pop().map(Some).ok_or(Error::Disconnected);
                    }
                    return Ok(None);
                }
                Err(RecvTimeoutError::Disconnected) => unreachable!("the receiver's queue holds the doorbell sender"),
            }
        }
    }

    fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for InProcReceiver {
    fn drop(&mut self) {
        self.shared.receivers.write().retain(|q| !Arc::ptr_eq(q, &self.queue));
        // SYNC: pairs with the Acquire load in `InProcSender::send`.
        self.shared.generation.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdbus_types::{Heartbeat, Kind, RecordHeader};
    use std::thread;

    fn hb(seq: u64) -> MdSample {
        let mut s = MdSample::from(Heartbeat {
            header: RecordHeader::new(Kind::Heartbeat, 0),
        });
        s.header_mut().seq = seq;
        s
    }

    #[test]
    fn every_receiver_gets_every_sample_in_order() {
        let bus = InProcBus::new(64);
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        let mut tx = bus.sender();
        for seq in 1..=50 {
            tx.send(&hb(seq)).unwrap();
        }
        for rx in [&mut a, &mut b] {
            let seqs: Vec<u64> = std::iter::from_fn(|| rx.try_recv().unwrap())
                .map(|s| s.header().seq)
                .collect();
            assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
            assert_eq!(rx.dropped(), 0);
        }
    }

    #[test]
    fn slow_receiver_loses_its_oldest_and_the_holes_are_exactly_the_dropped_seqs() {
        let bus = InProcBus::new(16);
        let mut fast = bus.subscribe();
        let mut slow = bus.subscribe();
        let mut tx = bus.sender();
        let mut fast_seen = Vec::new();
        for seq in 1..=1000 {
            tx.send(&hb(seq)).unwrap();
            fast_seen.push(fast.try_recv().unwrap().unwrap().header().seq);
        }
        assert_eq!(fast_seen, (1..=1000).collect::<Vec<_>>());
        let slow_seen: Vec<u64> = std::iter::from_fn(|| slow.try_recv().unwrap())
            .map(|s| s.header().seq)
            .collect();
        assert_eq!(slow_seen, (985..=1000).collect::<Vec<_>>());
        assert_eq!(slow.dropped(), 984);
    }

    #[test]
    fn slow_thread_does_not_block_sender_or_others() {
        let n = if cfg!(miri) { 200 } else { 200_000 };
        let bus = InProcBus::new(256);
        let mut slow = bus.subscribe();
        let mut fast = bus.subscribe();
        let mut tx = bus.sender();
        let producer = thread::spawn(move || {
            for seq in 1..=n {
                tx.send(&hb(seq)).unwrap();
            }
        });
        let slow_thread = thread::spawn(move || {
            let mut seen = Vec::new();
            loop {
                match recv_or_closed(&mut slow) {
                    Some(s) => {
                        seen.push(s.header().seq);
                        if seen.len() % 64 == 0 {
                            thread::sleep(Duration::from_millis(1));
                        }
                    }
                    None => return (seen, slow.dropped()),
                }
            }
        });
        let mut fast_count = 0u64;
        let mut last = 0;
        let mut fast_holes = 0;
        while let Some(s) = recv_or_closed(&mut fast) {
            let seq = s.header().seq;
            fast_holes += seq - last - 1;
            last = seq;
            fast_count += 1;
        }
        producer.join().unwrap();
        let (seen, dropped) = slow_thread.join().unwrap();
        // The fast receiver's holes are exactly what it dropped (usually 0).
        assert_eq!(fast_holes, fast.dropped());
        assert_eq!(fast_count + fast.dropped(), n);
        // The slow one lost samples, and its holes are exactly those.
        let mut holes = 0;
        let mut prev = 0;
        for &seq in &seen {
            assert!(seq > prev, "out of order: {seq} after {prev}");
            holes += seq - prev - 1;
            prev = seq;
        }
        holes += n - prev;
        assert_eq!(holes, dropped);
        assert_eq!(seen.len() as u64 + dropped, n);
        assert!(dropped > 0, "the slow receiver should have lost samples");
    }

    /// The next sample, `None` once the bus has no sender and nothing is
    /// queued; panics after 30 s without either (the watchdog).
    fn recv_or_closed(rx: &mut InProcReceiver) -> Option<MdSample> {
        let watchdog = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(Some(sample)) => return Some(sample),
                Ok(None) => assert!(Instant::now() < watchdog, "watchdog: nothing for 30 s"),
                Err(Error::Disconnected) => return None,
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn blocking_receive_wakes_on_send_and_reports_disconnect() {
        let bus = InProcBus::new(8);
        let mut rx = bus.subscribe();
        let mut tx = bus.sender();
        assert!(rx.recv_timeout(Duration::from_millis(10)).unwrap().is_none());
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            tx.send(&hb(7)).unwrap();
        });
        let got = rx.recv_timeout(Duration::from_secs(30)).unwrap().expect("watchdog");
        assert_eq!(got.header().seq, 7);
        t.join().unwrap();
        // Without a sender the wait still lasts its timeout (one may come),
        // then says no sender is attached ...
        let start = Instant::now();
        assert!(matches!(
            rx.recv_timeout(Duration::from_millis(20)),
            Err(Error::Disconnected)
        ));
        assert!(start.elapsed() >= Duration::from_millis(20));
        // ... and a sender that attaches later is received.
        let mut again = bus.sender();
        again.send(&hb(8)).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(30))
                .unwrap()
                .expect("watchdog")
                .header()
                .seq,
            8
        );
    }

    #[test]
    fn dropped_receivers_leave_the_bus() {
        let bus = InProcBus::new(8);
        let a = bus.subscribe();
        let mut tx = bus.sender();
        tx.send(&hb(1)).unwrap();
        drop(a);
        assert_eq!(bus.receiver_count(), 0);
        tx.send(&hb(2)).unwrap();
        let mut b = bus.subscribe();
        tx.send(&hb(3)).unwrap();
        assert_eq!(b.try_recv().unwrap().unwrap().header().seq, 3);
    }
}
