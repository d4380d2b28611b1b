//! The feed thread: one subscriber, event-driven (it sleeps in
//! `Subscriber::next_event_ref` until a record comes), fanning every record
//! out to the clients that subscribed to it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mdbus_subscriber::{EventRef, L1Cache, Subscriber};
use mdbus_transport::MdReceiver;
use mdbus_types::{Kind, clock, json};

use crate::client::{BookCache, Channel, Chunk, Client};
use crate::shared::Shared;

/// How long one wait may last before the stop flag is looked at again (a
/// record wakes the thread at once; this only bounds shutdown time).
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Records handled in one wake-up at most before the doorbells are rung
/// (what is already there is drained; this bounds how long the first of
/// them waits for the rest to be offered to every client).
const MAX_WAKE_UP: usize = 64;

/// Runs until `shared.stop` is set; an error of the subscriber ends it.
///
/// One wake-up: the first event is waited for, then whatever else the
/// subscriber already holds (at most [`MAX_WAKE_UP`]) is taken without
/// waiting. Its records become one [`Chunk`] (each record's JSON made
/// once), offered to every client at the end of the wake-up (or before a
/// gap), and only then are the doorbells rung, once per client that got
/// something: a client gets one batch per wake-up, not one per record, and
/// a client taking the whole feed gets the chunk as one entry.
pub(crate) fn run<R: MdReceiver>(
    mut subscriber: Subscriber<R>,
    shared: &Arc<Shared>,
) -> Result<(), mdbus_subscriber::Error> {
    let l1 = Arc::clone(subscriber.l1());
    let mut window_start = Instant::now();
    let mut window_records = 0u64;
    let mut to_ring: Vec<Arc<Client>> = Vec::new();
    let mut chunk = Chunk::default();
    while !shared.stop.load(Ordering::Relaxed) {
        // First, so that no `continue` below skips it.
        let elapsed = window_start.elapsed();
        if elapsed >= Duration::from_secs(1) {
            let rate = window_records as f64 / elapsed.as_secs_f64();
            shared.records_per_sec.store(rate.to_bits(), Ordering::Relaxed);
            shared.rate_at_ns.store(clock::now_ns(), Ordering::Relaxed);
            window_start = Instant::now();
            window_records = 0;
        }
        for n in 0..MAX_WAKE_UP {
            let wait = if n == 0 { STOP_CHECK } else { Duration::ZERO };
            // In place: the record is not copied out of the subscriber.
            let event = match subscriber.next_event_ref(wait) {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(e) => {
                    // What was taken still goes out.
                    offer(shared, &mut chunk, &l1, &mut to_ring);
                    ring(&mut to_ring);
                    return Err(e);
                }
            };
            match event {
                EventRef::Record { sample, .. } => {
                    window_records += 1;
                    shared.records.fetch_add(1, Ordering::Relaxed);
                    let Ok(record) = sample.record() else { continue };
                    let header = *record.header();
                    shared.last_seq.store(header.seq, Ordering::Relaxed);
                    let channel = match record.kind() {
                        Kind::Tick => Channel::Tick,
                        Kind::BookSnapshot | Kind::BookDelta => Channel::Book,
                        _ => continue,
                    };
                    let Some(instrument) = record.instrument() else {
                        continue;
                    };
                    // Looked at after L1 took the record: a client that
                    // comes later has it in its subscription's snapshot.
                    if shared.clients.read().is_empty() {
                        continue;
                    }
                    // Made once for every client.
                    chunk.push(header.seq, header.ts_publish, instrument, channel, |out| {
                        json::write_record(out, record);
                    });
                }
                EventRef::Gap(gap) => {
                    shared.gaps.fetch_add(1, Ordering::Relaxed);
                    // The records before it go first, in seq order.
                    offer(shared, &mut chunk, &l1, &mut to_ring);
                    for client in shared.clients.read().iter() {
                        if client.offer_gap(gap, &l1) {
                            to_ring.push(Arc::clone(client));
                        }
                    }
                }
                EventRef::ReplayDone { .. } => shared.replay_done.store(true, Ordering::Relaxed),
                _ => {}
            }
        }
        offer(shared, &mut chunk, &l1, &mut to_ring);
        ring(&mut to_ring);
    }
    Ok(())
}

/// Offers the records of `chunk` (then empty again) to every client,
/// noting the clients to ring.
fn offer(shared: &Shared, chunk: &mut Chunk, l1: &L1Cache, to_ring: &mut Vec<Arc<Client>>) {
    if chunk.is_empty() {
        return;
    }
    let whole = Arc::new(std::mem::take(chunk));
    let mut books = BookCache::default();
    for client in shared.clients.read().iter() {
        if client.offer_chunk(&whole, &mut books, l1) {
            to_ring.push(Arc::clone(client));
        }
    }
}

/// Rings the doorbells of a wake-up. A client is in `to_ring` once, or
/// twice when its connection task took the queue during the wake-up and a
/// later record filled it again (harmless: a ring with nothing pending
/// writes nothing).
fn ring(to_ring: &mut Vec<Arc<Client>>) {
    for client in to_ring.drain(..) {
        client.doorbell.notify_one();
    }
}
