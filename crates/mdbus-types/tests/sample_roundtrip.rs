//! proptest: every kind of record survives MdSample and JSON round trips.

use mdbus_types::{
    BookDelta, BookSnapshot, Heartbeat, InstrumentId, Kind, Level, MdSample, Price, RecordHeader, RecordRef, Side,
    Tick, json,
};
use proptest::prelude::*;

fn header(kind: Kind) -> impl Strategy<Value = RecordHeader> {
    (1u64..u64::MAX, any::<i64>(), any::<i64>(), 0u16..4).prop_map(move |(seq, ts_event, ts_publish, flags)| {
        RecordHeader {
            seq,
            ts_event,
            ts_publish,
            kind: kind as u16,
            flags,
            _pad: [0; 4],
        }
    })
}

fn symbol() -> impl Strategy<Value = InstrumentId> {
    "[!-~]{1,16}".prop_map(|s| InstrumentId::new(&s).unwrap())
}

fn price() -> impl Strategy<Value = Price> {
    prop_oneof![
        Just(Price::NULL),
        any::<i64>().prop_filter("not NULL", |p| *p != i64::MAX).prop_map(Price)
    ]
}

fn tick() -> impl Strategy<Value = MdSample> {
    (
        header(Kind::Tick),
        symbol(),
        price(),
        any::<i64>(),
        price(),
        any::<i64>(),
        price(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(
            |(header, instrument, last_px, last_qty, bid_px, bid_qty, ask_px, ask_qty, volume)| {
                MdSample::from(Tick {
                    header,
                    instrument,
                    last_px,
                    last_qty,
                    bid_px,
                    bid_qty,
                    ask_px,
                    ask_qty,
                    volume,
                })
            },
        )
}

fn snapshot() -> impl Strategy<Value = MdSample> {
    let levels = proptest::collection::btree_map(-1_000_000i64..1_000_000, 1i64..1_000_000, 0..=10);
    (header(Kind::BookSnapshot), symbol(), levels.clone(), levels).prop_map(|(header, instrument, bids, asks)| {
        let mut s = BookSnapshot::empty(instrument, 0);
        s.header = header;
        s.bid_count = bids.len() as u16;
        s.ask_count = asks.len() as u16;
        for (slot, (p, q)) in s.bids.iter_mut().zip(bids.iter().rev()) {
            *slot = Level {
                price: Price(*p),
                qty: *q,
            };
        }
        for (slot, (p, q)) in s.asks.iter_mut().zip(asks.iter()) {
            *slot = Level {
                price: Price(*p),
                qty: *q,
            };
        }
        MdSample::from(s)
    })
}

fn delta() -> impl Strategy<Value = MdSample> {
    (header(Kind::BookDelta), symbol(), any::<bool>(), price(), any::<i64>()).prop_map(
        |(header, instrument, bid, price, qty)| {
            let mut d = BookDelta::new(instrument, if bid { Side::Bid } else { Side::Ask }, price, qty, 0);
            d.header = header;
            MdSample::from(d)
        },
    )
}

fn heartbeat() -> impl Strategy<Value = MdSample> {
    header(Kind::Heartbeat).prop_map(|header| MdSample::from(Heartbeat { header }))
}

proptest! {
    #[test]
    fn sample_round_trip_for_every_kind(sample in prop_oneof![tick(), snapshot(), delta(), heartbeat()]) {
        let record = sample.record().unwrap();
        let size = record.kind().record_size();
        // The record sits at offset 0 and the tail is zero.
        prop_assert_eq!(sample.record_bytes().unwrap().len(), size);
        prop_assert!(sample.as_bytes()[size..].iter().all(|&b| b == 0));
        // Typed view -> sample -> same bytes; raw bytes -> typed view.
        prop_assert_eq!(record.to_sample(), sample);
        prop_assert_eq!(RecordRef::from_bytes(sample.record_bytes().unwrap()).unwrap(), record);
        // JSON form -> sample: exact, prices included.
        let text = json::record_to_json(record);
        prop_assert_eq!(json::sample_from_json(&text).unwrap(), sample, "{}", text);
    }
}
