//! The consistency check: a delta stream that lost a delta is counted as
//! a mismatch at the next snapshot and the book is repaired from it.

mod common;

use std::time::Duration;

use mdbus_subscriber::{Event, StartFrom, Subscriber, SubscriberConfig};
use mdbus_transport::{InProcBus, MdSender};
use mdbus_types::{Book, BookDelta, BookSnapshot, InstrumentId, Level, MdSample, Price, Side};

fn snapshot(id: InstrumentId) -> BookSnapshot {
    let mut s = BookSnapshot::empty(id, 1);
    s.bid_count = 3;
    s.ask_count = 3;
    for i in 0..3 {
        s.bids[i] = Level {
            price: Price(100 - i as i64),
            qty: 5,
        };
        s.asks[i] = Level {
            price: Price(101 + i as i64),
            qty: 5,
        };
    }
    s
}

/// snapshot, 8 deltas, snapshot of the book they make; `drop` leaves one
/// delta out, seqs stay dense (a bug upstream, not a hole).
fn stream(id: InstrumentId, drop: Option<usize>) -> (Vec<MdSample>, BookSnapshot) {
    let first = snapshot(id);
    let mut book = Book::from_snapshot(&first).unwrap();
    let mut out = vec![MdSample::from(first)];
    for i in 0..8 {
        let side = if i % 2 == 0 { Side::Bid } else { Side::Ask };
        let price = if side == Side::Bid {
            100 - (i as i64 % 3)
        } else {
            101 + (i as i64 % 3)
        };
        let delta = BookDelta::new(id, side, Price(price), 10 + i as i64, 2 + i as i64);
        book.apply_delta(&delta).unwrap();
        if drop != Some(i) {
            out.push(delta.into());
        }
    }
    let mut last = book.to_snapshot();
    last.header.ts_event = 20;
    out.push(last.into());
    for (i, s) in out.iter_mut().enumerate() {
        s.header_mut().seq = i as u64 + 1;
    }
    last.header.seq = out.len() as u64;
    (out, last)
}

fn run(samples: &[MdSample]) -> Subscriber<mdbus_transport::InProcReceiver> {
    let bus = InProcBus::new(1024);
    let receiver = bus.subscribe();
    let mut tx = bus.sender();
    for s in samples {
        tx.send(s).unwrap();
    }
    let mut subscriber = Subscriber::new(receiver, SubscriberConfig::default().start(StartFrom::LiveOnly)).unwrap();
    let last = samples.len() as u64;
    let events = common::events_until(&mut subscriber, last, |_| {});
    assert!(!events.iter().any(|e| matches!(e, Event::Gap(_))));
    assert_eq!(subscriber.next_event(Duration::from_millis(10)).unwrap(), None);
    subscriber
}

#[test]
fn a_lost_delta_is_a_mismatch_repaired_by_the_next_snapshot() {
    let id = InstrumentId::new("IF2501").unwrap();
    let (samples, last) = stream(id, Some(4));
    let subscriber = run(&samples);
    assert_eq!(subscriber.stats().mismatches, 1);
    assert_eq!(subscriber.l1().mismatches(&id), 1);
    let mut repaired = last;
    repaired.header.flags = 0;
    assert_eq!(subscriber.l1().book(&id), Some(repaired));

    // The intact stream: no mismatch.
    let (samples, _) = stream(id, None);
    let subscriber = run(&samples);
    assert_eq!(subscriber.stats().mismatches, 0);
    assert_eq!(subscriber.l1().mismatches(&id), 0);
}
