//! DBN import against the real samples (tests/data, Apache-2.0, see its
//! NOTICE.md) and against larger files written here with `dbn`'s encoder,
//! each checked with a model independent of the importer.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use dbn::decode::{DecodeRecordRef, DynDecoder};
use dbn::encode::{DbnEncoder, EncodeRecord};
use dbn::{
    BidAskPair, FlagSet, MappingInterval, MboMsg, Mbp10Msg, Metadata, RecordHeader, SType, Schema, SymbolMapping,
    VersionUpgradePolicy, flags, rtype,
};
use mdbus_dbn::{Error, ImportOptions, ImportStats, Importer};
use mdbus_publisher::{FeedConfig, FeedPublisher};
use mdbus_transport::{InProcBus, InProcSender};
use mdbus_types::{Book, FLAG_RECOVERY_SNAPSHOT, InstrumentId, Kind, Level, Price, RecordRef};
use mdbus_wal::{ReadOptions, WalOptions, WalReader};

const FEED: &str = "imported";

/// The books expected at each `ts_event`: (instrument, bids, asks).
type Expected = HashMap<i64, Vec<(InstrumentId, Vec<Level>, Vec<Level>)>>;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn importer(dir: &Path, options: ImportOptions) -> Importer<InProcSender> {
    let mut config = FeedConfig::new(FEED);
    config.wal_root = Some(dir.to_path_buf());
    // Small segments: rolls (and their snapshot sets) happen in the tests.
    config.wal = WalOptions::default().segment_bytes(1 << 20);
    config.data_clock = true;
    let publisher = FeedPublisher::open(config, InProcBus::new(1).sender()).unwrap();
    Importer::new(publisher, options)
}

fn aliases(pairs: &[(u32, &str)]) -> ImportOptions {
    ImportOptions {
        aliases: pairs.iter().map(|&(k, s)| (k, InstrumentId::new(s).unwrap())).collect(),
        ..ImportOptions::default()
    }
}

/// Every record of the feed's WAL in order, recovery copies left out.
fn wal(dir: &Path) -> Vec<mdbus_types::MdSample> {
    let mut reader = WalReader::open(dir, FEED, ReadOptions::default()).unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        if r.record.header().flags & FLAG_RECOVERY_SNAPSHOT == 0 {
            out.push(r.record.to_sample());
        }
    }
    out
}

/// Replays the WAL; at the end of each group of records with one
/// `ts_event`, every book expected at that time must be the one kept.
/// Returns how many books were checked.
fn check_books(dir: &Path, expected: &Expected) -> usize {
    let records = wal(dir);
    let mut books: HashMap<InstrumentId, Book> = HashMap::new();
    let mut checked = 0;
    for (i, sample) in records.iter().enumerate() {
        match sample.record().unwrap() {
            RecordRef::BookSnapshot(s) => {
                books.insert(s.instrument, Book::from_snapshot(s).unwrap());
            }
            RecordRef::BookDelta(d) => {
                books
                    .get_mut(&d.instrument)
                    .expect("a snapshot first")
                    .apply_delta(d)
                    .unwrap();
            }
            _ => {}
        }
        let ts = sample.header().ts_event;
        let group_ends = records.get(i + 1).is_none_or(|next| next.header().ts_event != ts);
        if let (true, Some(wanted)) = (group_ends, expected.get(&ts)) {
            for (id, bids, asks) in wanted {
                let (have_bids, have_asks) = books.get(id).map_or((&[][..], &[][..]), |b| (b.bids(), b.asks()));
                assert_eq!((have_bids, have_asks), (&bids[..], &asks[..]), "{id} at {ts}");
                checked += 1;
            }
        }
    }
    checked
}

fn level(price: i64, qty: i64) -> Level {
    Level {
        price: Price(price),
        qty,
    }
}

#[test]
fn the_real_samples_import_and_the_mbp10_book_is_the_last_records_levels() {
    // (file, ticks, snapshots, deltas, unknown MBO orders)
    for (name, ticks, snapshots, deltas, unknown) in [
        ("test_data.mbp-10.dbn", 0, 1, 1, 0),
        ("test_data.mbp-10.v3.dbn.zst", 0, 1, 1, 0),
        ("test_data.mbp-1.v3.dbn.zst", 0, 1, 1, 0),
        ("test_data.tbbo.v3.dbn.zst", 2, 1, 2, 0),
        ("test_data.trades.v3.dbn.zst", 2, 0, 0, 0),
        // Two cancels of orders placed before the sample starts: counted,
        // and no book is published from nothing.
        ("test_data.mbo.v3.dbn.zst", 0, 0, 0, 2),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut import = importer(dir.path(), ImportOptions::default());
        import.import_file(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (stats, _publisher) = import.finish().unwrap();
        assert_eq!((stats.files, stats.dbn_records, stats.instruments), (1, 2, 1), "{name}");
        assert_eq!(
            (stats.ticks, stats.snapshots, stats.deltas, stats.unknown_orders),
            (ticks, snapshots, deltas, unknown),
            "{name}"
        );
        let records = wal(dir.path());
        let count = |kind: Kind| records.iter().filter(|s| s.record().unwrap().kind() == kind).count() as u64;
        // The publisher adds snapshots of its own (its depth-change policy).
        assert_eq!((count(Kind::Tick), count(Kind::BookDelta)), (ticks, deltas), "{name}");
        assert!(count(Kind::BookSnapshot) >= snapshots, "{name}");
        // The symbol comes from the file's symbology.
        let id = InstrumentId::new("ESH1").unwrap();
        assert!(
            records.iter().all(|s| s.record().unwrap().instrument() == Some(id)),
            "{name}"
        );
    }
    // The MBP-10 sample's last record, decoded here, is the imported book.
    let dir = tempfile::tempdir().unwrap();
    let mut import = importer(dir.path(), ImportOptions::default());
    import.import_file(data("test_data.mbp-10.v3.dbn.zst")).unwrap();
    import.finish().unwrap();
    let mut decoder =
        DynDecoder::from_file(data("test_data.mbp-10.v3.dbn.zst"), VersionUpgradePolicy::UpgradeToV3).unwrap();
    let mut last = None;
    while let Some(r) = decoder.decode_record_ref().unwrap() {
        last = r.get::<Mbp10Msg>().cloned();
    }
    let last = last.unwrap();
    let bids: Vec<Level> = last
        .levels
        .iter()
        .filter(|l| l.bid_sz > 0)
        .map(|l| level(l.bid_px, l.bid_sz.into()))
        .collect();
    let asks: Vec<Level> = last
        .levels
        .iter()
        .filter(|l| l.ask_sz > 0)
        .map(|l| level(l.ask_px, l.ask_sz.into()))
        .collect();
    let history = mdbus_subscriber::History::open(mdbus_types::WalLocation::try_new(dir.path(), FEED).unwrap());
    let book = history
        .book_at(&InstrumentId::new("ESH1").unwrap(), i64::MAX - 1)
        .unwrap()
        .unwrap();
    assert_eq!((book.bid_levels(), book.ask_levels()), (&bids[..], &asks[..]));
}

fn metadata(schema: Schema, mappings: Vec<SymbolMapping>) -> Metadata {
    Metadata::builder()
        .dataset("TEST".to_string())
        .schema(Some(schema))
        .start(1_609_459_200_000_000_000)
        .stype_in(Some(SType::RawSymbol))
        .stype_out(SType::InstrumentId)
        .mappings(mappings)
        .build()
}

fn write<R: dbn::encode::DbnEncodable>(path: &Path, metadata: &Metadata, records: &[R]) {
    let mut encoder = DbnEncoder::new(BufWriter::new(File::create(path).unwrap()), metadata).unwrap();
    for r in records {
        encoder.encode_record(r).unwrap();
    }
    encoder.flush().unwrap();
}

/// A tiny deterministic generator (no dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const T0: u64 = 1_609_459_200_000_000_000;

#[test]
fn mbp10_books_match_every_event_and_trades_become_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mbp10.dbn");
    let mut rng = Lcg(7);
    // A deep book per instrument (more than 10 levels), top 10 published.
    let mut sides: HashMap<u32, [BTreeMap<i64, u32>; 2]> = HashMap::new();
    let mut records = Vec::new();
    let mut expected: Expected = HashMap::new();
    let ids = [(1u32, "AAA"), (2, "BBB")];
    let mut trades = 0;
    for n in 0..3000u64 {
        let (key, symbol) = ids[rng.next(2) as usize];
        let book = sides.entry(key).or_insert_with(|| {
            let bids = (0..15).map(|i| (1_000 - i, 1 + i as u32)).collect();
            let asks = (0..15).map(|i| (1_001 + i, 1 + i as u32)).collect();
            [bids, asks]
        });
        let mut action = b'M';
        let mut flags_raw = flags::LAST;
        match rng.next(20) {
            0 => action = b'T',
            1 if n > 100 => {
                // A clear, then the book again in one SNAPSHOT event.
                action = b'R';
                flags_raw = flags::SNAPSHOT | flags::LAST;
                for side in book.iter_mut() {
                    let keep: Vec<_> = side.iter().take(12).map(|(p, q)| (*p, *q)).collect();
                    *side = keep.into_iter().collect();
                }
            }
            r => {
                let side = (r % 2) as usize;
                if book[side].len() < 3 {
                    let edge = if side == 0 { 900 } else { 1_100 };
                    book[side].insert(edge + book[side].len() as i64, 5);
                }
                let prices: Vec<i64> = book[side].keys().copied().collect();
                let price = prices[rng.next(prices.len() as u64) as usize];
                match rng.next(3) {
                    0 => {
                        book[side].remove(&price);
                    }
                    1 => {
                        book[side].insert(price, 1 + rng.next(50) as u32);
                    }
                    _ => {
                        // A new level inside the spread or at the edge.
                        let best_bid = *book[0].keys().next_back().unwrap_or(&990);
                        let best_ask = *book[1].keys().next().unwrap_or(&1_010);
                        let p = if side == 0 {
                            best_bid - 3 + rng.next(3) as i64
                        } else {
                            best_ask + rng.next(3) as i64
                        };
                        if (side == 0 && p < best_ask) || (side == 1 && p > best_bid) {
                            book[side].insert(p, 1 + rng.next(9) as u32);
                        }
                    }
                }
            }
        }
        // Some events span two records: the first (not LAST) is not published.
        let ts = T0 + n * 1_000;
        let mut msg = Mbp10Msg {
            hd: RecordHeader::new::<Mbp10Msg>(rtype::MBP_10, 1, key, ts - 500),
            price: 1_000,
            size: 2,
            action: action as std::ffi::c_char,
            side: b'B' as std::ffi::c_char,
            flags: FlagSet::new(flags_raw),
            depth: 0,
            ts_recv: ts,
            ..Mbp10Msg::default()
        };
        let bids: Vec<(i64, u32)> = book[0].iter().rev().take(10).map(|(p, q)| (*p, *q)).collect();
        let asks: Vec<(i64, u32)> = book[1].iter().take(10).map(|(p, q)| (*p, *q)).collect();
        for i in 0..10 {
            msg.levels[i] = BidAskPair {
                bid_px: bids.get(i).map_or(dbn::UNDEF_PRICE, |l| l.0),
                bid_sz: bids.get(i).map_or(0, |l| l.1),
                ask_px: asks.get(i).map_or(dbn::UNDEF_PRICE, |l| l.0),
                ask_sz: asks.get(i).map_or(0, |l| l.1),
                ..BidAskPair::default()
            };
        }
        if action == b'T' {
            trades += 1;
        }
        if rng.next(10) == 0 {
            let mut first = msg.clone();
            first.flags = FlagSet::new(0);
            first.action = b'M' as std::ffi::c_char;
            first.ts_recv = ts - 1;
            records.push(first);
        }
        records.push(msg);
        let id = InstrumentId::new(symbol).unwrap();
        let to_levels = |l: &[(i64, u32)]| l.iter().map(|&(p, q)| level(p, q.into())).collect::<Vec<_>>();
        expected
            .entry(ts as i64)
            .or_default()
            .push((id, to_levels(&bids), to_levels(&asks)));
    }
    write(&file, &metadata(Schema::Mbp10, Vec::new()), &records);
    let mut import = importer(dir.path(), aliases(&[(1, "AAA"), (2, "BBB")]));
    import.import_file(&file).unwrap();
    let (stats, _publisher) = import.finish().unwrap();
    assert_eq!(stats.dbn_records, records.len() as u64);
    assert_eq!(stats.ticks, trades);
    // Every group of records the import wrote matched the book of its
    // event; events that changed nothing wrote no book records.
    let checked = check_books(dir.path(), &expected);
    assert!(checked > 2_500, "{checked} books checked");
    for (key, symbol) in ids {
        let id = InstrumentId::new(symbol).unwrap();
        let book = &sides[&key];
        let bids: Vec<Level> = book[0]
            .iter()
            .rev()
            .take(10)
            .map(|(p, q)| level(*p, (*q).into()))
            .collect();
        let asks: Vec<Level> = book[1].iter().take(10).map(|(p, q)| level(*p, (*q).into())).collect();
        assert_eq!(final_book(dir.path(), &id), (bids, asks), "{symbol} at the end");
    }
    // `book-at` (the WAL's history query) agrees, at a few instants.
    let history = mdbus_subscriber::History::open(mdbus_types::WalLocation::try_new(dir.path(), FEED).unwrap());
    for n in [17u64, 1_234, 2_999] {
        let ts = (T0 + n * 1_000) as i64;
        for (id, bids, asks) in &expected[&ts] {
            let book = history
                .book_at(id, ts)
                .unwrap()
                .unwrap_or_else(|| panic!("no book of {id} at {ts} (event {n})"));
            assert_eq!((book.bid_levels(), book.ask_levels()), (&bids[..], &asks[..]));
        }
    }
}

/// The MBO model of the test: orders, and levels recomputed from them.
#[derive(Default)]
struct Orders(HashMap<u64, (u8, i64, u32)>);
impl Orders {
    fn top(&self, side: u8) -> Vec<Level> {
        let mut levels: BTreeMap<i64, i64> = BTreeMap::new();
        for &(s, p, q) in self.0.values() {
            if s == side {
                *levels.entry(p).or_default() += i64::from(q);
            }
        }
        let iter: Box<dyn Iterator<Item = (&i64, &i64)>> = if side == b'B' {
            Box::new(levels.iter().rev())
        } else {
            Box::new(levels.iter())
        };
        iter.take(10).map(|(p, q)| level(*p, *q)).collect()
    }
}

fn mbo(ts: u64, action: u8, side: u8, order_id: u64, price: i64, size: u32, last: bool) -> MboMsg {
    MboMsg {
        hd: RecordHeader::new::<MboMsg>(rtype::MBO, 1, 7, ts - 100),
        order_id,
        price,
        size,
        flags: FlagSet::new(if last { flags::LAST } else { 0 }),
        channel_id: 0,
        action: action as std::ffi::c_char,
        side: side as std::ffi::c_char,
        ts_recv: ts,
        ts_in_delta: 0,
        sequence: 0,
    }
}

/// Random MBO events against the model; returns the records, the books
/// expected at each LAST, and the unknown-order cancels made.
fn mbo_day(
    rng: &mut Lcg,
    model: &mut Orders,
    next_id: &mut u64,
    start: u64,
    events: u64,
) -> (Vec<MboMsg>, Expected, u64) {
    let id = InstrumentId::new("ESH1").unwrap();
    let (mut records, mut expected, mut unknown) = (Vec::new(), HashMap::new(), 0);
    for n in 0..events {
        let ts = start + n * 1_000;
        let ids: Vec<u64> = model.0.keys().copied().collect();
        let pick = |rng: &mut Lcg| ids[rng.next(ids.len() as u64) as usize];
        match rng.next(12) {
            0..=3 => {
                let side = if rng.next(2) == 0 { b'B' } else { b'A' };
                let price = if side == b'B' {
                    990 + rng.next(15) as i64
                } else {
                    1_005 + rng.next(15) as i64
                };
                let size = 1 + rng.next(20) as u32;
                *next_id += 1;
                model.0.insert(*next_id, (side, price, size));
                records.push(mbo(ts, b'A', side, *next_id, price, size, true));
            }
            4 | 5 if !ids.is_empty() => {
                // A fill of a resting order (no change), then its reduction
                // as a cancel, partial or whole: one event of two records.
                let order = pick(rng);
                let (side, price, size) = model.0[&order];
                let cut = 1 + rng.next(u64::from(size)) as u32;
                records.push(mbo(ts - 1, b'F', side, order, price, cut, false));
                if cut == size {
                    model.0.remove(&order);
                } else {
                    model.0.insert(order, (side, price, size - cut));
                }
                records.push(mbo(ts, b'C', side, order, price, cut, true));
            }
            6 if !ids.is_empty() => {
                let order = pick(rng);
                let (side, _, _) = model.0[&order];
                let price = if side == b'B' {
                    990 + rng.next(15) as i64
                } else {
                    1_005 + rng.next(15) as i64
                };
                let size = 1 + rng.next(20) as u32;
                model.0.insert(order, (side, price, size));
                records.push(mbo(ts, b'M', side, order, price, size, true));
            }
            7 => {
                records.push(mbo(ts, b'T', b'B', 0, 1_005, 3, true));
            }
            8 => {
                // A cancel of an order nobody added: counted, no change.
                unknown += 1;
                records.push(mbo(ts, b'C', b'A', 1_000_000 + n, 1_010, 1, true));
            }
            9 if n % 500 == 499 => {
                model.0.clear();
                records.push(mbo(ts, b'R', b'N', 0, dbn::UNDEF_PRICE, 0, true));
            }
            _ => {
                records.push(mbo(ts, b'N', b'N', 0, dbn::UNDEF_PRICE, 0, true));
            }
        }
        expected.insert(ts as i64, vec![(id, model.top(b'B'), model.top(b'A'))]);
    }
    (records, expected, unknown)
}

#[test]
fn an_mbo_book_matches_a_model_after_every_event_across_two_days() {
    let dir = tempfile::tempdir().unwrap();
    let (mut rng, mut model, mut next_id) = (Lcg(11), Orders::default(), 0);
    let meta = metadata(Schema::Mbo, Vec::new());
    let (day1, mut expected, unknown1) = mbo_day(&mut rng, &mut model, &mut next_id, T0, 2_000);
    let resting = model.0.len();
    let (day2, expected2, unknown2) = mbo_day(&mut rng, &mut model, &mut next_id, T0 + 86_400_000_000_000, 2_000);
    expected.extend(expected2);
    let (f1, f2) = (dir.path().join("day1.mbo.dbn"), dir.path().join("day2.mbo.dbn"));
    write(&f1, &meta, &day1);
    write(&f2, &meta, &day2);
    let mut import = importer(dir.path(), aliases(&[(7, "ESH1")]));
    import.import_file(&f1).unwrap();
    assert_eq!(
        import.stats().resting_orders,
        resting as u64,
        "day 1 leaves orders resting"
    );
    import.import_file(&f2).unwrap();
    let (stats, _publisher) = import.finish().unwrap();
    // Day 2 cancels day 1's orders: only the made-up cancels are unknown.
    assert_eq!(stats.unknown_orders, unknown1 + unknown2);
    assert_eq!(stats.resting_orders, model.0.len() as u64);
    // Each group of records the import wrote matched the model; the
    // events that changed no book (trades, fills, unknown cancels) wrote
    // none, and the next group checks that they changed nothing either.
    let checked = check_books(dir.path(), &expected);
    assert!(checked > 1_500, "{checked} books checked");
    let last = expected[&expected.keys().copied().max().unwrap()][0].clone();
    assert_eq!(final_book(dir.path(), &last.0), (last.1, last.2));
}

/// The book of `id` after the whole WAL.
fn final_book(dir: &Path, id: &InstrumentId) -> (Vec<Level>, Vec<Level>) {
    let history = mdbus_subscriber::History::open(mdbus_types::WalLocation::try_new(dir, FEED).unwrap());
    let book = history
        .book_at(id, i64::MAX - 1)
        .unwrap()
        .unwrap_or(mdbus_types::BookSnapshot::empty(*id, 0));
    (book.bid_levels().to_vec(), book.ask_levels().to_vec())
}

fn expect_err(result: Result<(), Error>) -> String {
    result.expect_err("an error").to_string()
}

#[test]
fn bad_input_is_a_clear_error_and_what_came_before_stays() {
    let dir = tempfile::tempdir().unwrap();
    // Not DBN.
    let text = dir.path().join("notes.dbn");
    std::fs::write(&text, "these are not market data").unwrap();
    let mut import = importer(dir.path(), ImportOptions::default());
    let err = expect_err(import.import_file(&text));
    assert!(
        err.contains("notes.dbn") && err.contains("not a readable DBN file"),
        "{err}"
    );
    // A schema that is not imported.
    let err = expect_err(import.import_file(data("test_data.definition.v3.dbn.zst")));
    assert!(err.contains("schema definition is not imported"), "{err}");
    // A truncated compressed sample.
    let zst = std::fs::read(data("test_data.mbo.v3.dbn.zst")).unwrap();
    let cut = dir.path().join("cut.mbo.dbn.zst");
    std::fs::write(&cut, &zst[..zst.len() - 20]).unwrap();
    let err = expect_err(import.import_file(&cut));
    assert!(err.contains("cut.mbo.dbn.zst"), "{err}");
    // A truncated file: the records before the cut are imported.
    let mut rng = Lcg(3);
    let (mut model, mut next_id) = (Orders::default(), 0);
    let (records, _, _) = mbo_day(&mut rng, &mut model, &mut next_id, T0, 300);
    let whole = dir.path().join("whole.mbo.dbn");
    write(&whole, &metadata(Schema::Mbo, Vec::new()), &records);
    let bytes = std::fs::read(&whole).unwrap();
    let record_len = size_of::<MboMsg>();
    let torn = dir.path().join("torn.mbo.dbn");
    std::fs::write(&torn, &bytes[..bytes.len() - 100 * record_len - record_len / 2]).unwrap();
    let sub = tempfile::tempdir().unwrap();
    let mut import = importer(sub.path(), aliases(&[(7, "ESH1")]));
    let err = import.import_file(&torn).expect_err("torn");
    let Error::Decode { index, .. } = &err else {
        panic!("{err}")
    };
    let kept = records.len() as u64 - 101;
    assert_eq!(*index, kept, "{err}");
    assert!(err.to_string().contains("torn.mbo.dbn") && err.to_string().contains(&format!("record {kept}")));
    assert_eq!(import.stats().dbn_records, kept);
    let (_stats, publisher) = import.finish().unwrap();
    drop(publisher);
    assert!(!wal(sub.path()).is_empty(), "the records before the cut are in the WAL");
    let report = mdbus_wal::verify(sub.path(), FEED).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// A record the publisher refuses (here a snapshot whose bids are not in
/// order, from an MBP-10 record that says so) stops the import: the
/// publisher's error, naming the file, is the import's; the reading
/// thread, batches ahead of the publisher, stops (the import returns,
/// under a watchdog); the batches before the refused one are in the WAL,
/// nothing after it, and the WAL verifies clean.
#[test]
fn a_record_the_publisher_refuses_stops_the_import_and_the_wal_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unsorted.mbp-10.dbn");
    let bad_at = 3_000u64;
    let records: Vec<Mbp10Msg> = (0..6_000u64)
        .map(|n| {
            let ts = T0 + n * 1_000;
            let bad = n == bad_at;
            let mut msg = Mbp10Msg {
                hd: RecordHeader::new::<Mbp10Msg>(rtype::MBP_10, 1, 7, ts),
                price: 1_000,
                size: 1,
                action: b'M' as std::ffi::c_char,
                side: b'B' as std::ffi::c_char,
                // The bad event comes as a snapshot (a clear's book).
                flags: FlagSet::new(if bad {
                    flags::SNAPSHOT | flags::LAST
                } else {
                    flags::LAST
                }),
                ts_recv: ts,
                ..Mbp10Msg::default()
            };
            for (i, level) in msg.levels.iter_mut().enumerate() {
                let i = i as i64;
                *level = BidAskPair {
                    // Ascending bids: not a book.
                    bid_px: if bad { 900 + i } else { 1_000 - i },
                    bid_sz: 1 + (n % 7) as u32 + i as u32,
                    ask_px: 1_001 + i,
                    ask_sz: 1 + i as u32,
                    ..BidAskPair::default()
                };
            }
            msg
        })
        .collect();
    write(&file, &metadata(Schema::Mbp10, Vec::new()), &records);
    let wal_dir = dir.path().join("wal");
    let (tx, rx) = std::sync::mpsc::channel();
    let (path, root) = (file.clone(), wal_dir.clone());
    std::thread::spawn(move || {
        let mut import = importer(&root, aliases(&[(7, "ESH1")]));
        let result = import.import_file(&path);
        let stats = import.stats();
        drop(import.finish());
        tx.send((result, stats)).unwrap();
    });
    let (result, stats) = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the import returns");
    let err = result.expect_err("the publisher refuses the snapshot");
    assert!(matches!(err, Error::Publish { .. }), "{err}");
    assert!(err.to_string().contains("unsorted.mbp-10.dbn"), "{err}");
    // Counted up to the batch that failed, not the whole file.
    assert!(stats.dbn_records > bad_at && stats.dbn_records < 6_000, "{stats:?}");
    let kept = wal(&wal_dir);
    let last_ts = kept
        .iter()
        .map(|s| s.header().ts_event)
        .max()
        .expect("records before it");
    assert!(
        last_ts < (T0 + bad_at * 1_000) as i64,
        "nothing from the refused batch on"
    );
    assert!(
        last_ts >= (T0 + (bad_at - 2_000) * 1_000) as i64,
        "the batches before it are there"
    );
    let report = mdbus_wal::verify(&wal_dir, FEED).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn a_symbol_too_long_is_named_and_an_alias_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let date = time::Date::from_calendar_date(2021, time::Month::January, 1).unwrap();
    let long = "ES FUT 2021-03 LONG NAME";
    let mappings = vec![SymbolMapping {
        raw_symbol: long.to_string(),
        intervals: vec![MappingInterval {
            start_date: date,
            end_date: date.next_day().unwrap(),
            symbol: "7".to_string(),
        }],
    }];
    let file = dir.path().join("long.dbn");
    write(
        &file,
        &metadata(Schema::Mbo, mappings),
        &[mbo(T0 + 1_000, b'A', b'B', 1, 1_000, 1, true)],
    );
    let mut import = importer(dir.path(), ImportOptions::default());
    let err = expect_err(import.import_file(&file));
    assert!(
        err.contains("instrument_id 7") && err.contains("--alias 7=SYMBOL"),
        "{err}"
    );
    let sub = tempfile::tempdir().unwrap();
    let mut import = importer(sub.path(), aliases(&[(7, "ESH1")]));
    import.import_file(&file).unwrap();
    let stats: ImportStats = import.finish().unwrap().0;
    assert_eq!((stats.instruments, stats.snapshots), (1, 1));
}

/// DBN maps instrument ids to symbols by date: an id the symbology gives to
/// another symbol on the next day starts a new instrument with a fresh
/// book there, and a day the symbology does not cover keeps the last one.
#[test]
fn an_instrument_id_mapped_to_another_symbol_on_a_later_day_starts_a_new_instrument() {
    let dir = tempfile::tempdir().unwrap();
    let day1 = time::Date::from_calendar_date(2021, time::Month::January, 1).unwrap();
    let day2 = day1.next_day().unwrap();
    let mapping = |raw: &str, date: time::Date| SymbolMapping {
        raw_symbol: raw.to_string(),
        intervals: vec![MappingInterval {
            start_date: date,
            end_date: date.next_day().unwrap(),
            symbol: "7".to_string(),
        }],
    };
    const DAY: u64 = 86_400_000_000_000;
    let file = dir.path().join("remap.mbo.dbn");
    write(
        &file,
        &metadata(Schema::Mbo, vec![mapping("AAA", day1), mapping("BBB", day2)]),
        &[
            mbo(T0 + 1_000, b'A', b'B', 1, 990, 5, true),
            // Day 2: id 7 is BBB; AAA's resting order is not BBB's.
            mbo(T0 + DAY + 1_000, b'A', b'A', 2, 1_010, 3, true),
            // Day 3 is not in the symbology: still BBB.
            mbo(T0 + 2 * DAY + 1_000, b'A', b'B', 3, 995, 1, true),
        ],
    );
    let mut import = importer(dir.path(), ImportOptions::default());
    import.import_file(&file).unwrap();
    let stats = import.finish().unwrap().0;
    assert_eq!((stats.instruments, stats.remapped), (2, 1));
    assert_eq!(
        final_book(dir.path(), &InstrumentId::new("AAA").unwrap()),
        (vec![level(990, 5)], vec![])
    );
    assert_eq!(
        final_book(dir.path(), &InstrumentId::new("BBB").unwrap()),
        (vec![level(995, 1)], vec![level(1_010, 3)])
    );
}

/// Two files recorded apart (one instrument each, interleaved in time)
/// merge into one stream in time order, each book whole.
#[test]
fn several_files_merge_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let meta = metadata(Schema::Mbo, Vec::new());
    let day = |instrument: u32, odd: u64| -> Vec<MboMsg> {
        (0..500u64)
            .map(|n| {
                let ts = T0 + (2 * n + odd) * 1_000;
                let mut msg = mbo(
                    ts,
                    b'A',
                    if n % 2 == 0 { b'B' } else { b'A' },
                    n + 1,
                    if n % 2 == 0 {
                        990 - (n % 7) as i64
                    } else {
                        1_010 + (n % 7) as i64
                    },
                    1,
                    true,
                );
                msg.hd.instrument_id = instrument;
                msg
            })
            .collect()
    };
    let (a, b) = (dir.path().join("a.mbo.dbn"), dir.path().join("b.mbo.dbn"));
    write(&a, &meta, &day(7, 0));
    write(&b, &meta, &day(8, 1));
    let mut import = importer(dir.path(), aliases(&[(7, "AAA"), (8, "BBB")]));
    import.import_files(&[&a, &b]).unwrap();
    let (stats, _publisher) = import.finish().unwrap();
    assert_eq!((stats.files, stats.dbn_records), (2, 1_000));
    let records = wal(dir.path());
    // The deltas in time order (snapshots carry their book's last change:
    // the publisher's policy snapshots may be older than the record before).
    let times: Vec<i64> = records
        .iter()
        .filter(|s| s.record().unwrap().kind() == Kind::BookDelta)
        .map(|s| s.header().ts_event)
        .collect();
    assert!(times.len() > 900, "{} deltas", times.len());
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
    for (id, orders) in [("AAA", day(7, 0)), ("BBB", day(8, 1))] {
        let mut model = Orders::default();
        for m in &orders {
            model.0.insert(m.order_id, (m.side as u8, m.price, m.size));
        }
        let id = InstrumentId::new(id).unwrap();
        assert_eq!(final_book(dir.path(), &id), (model.top(b'B'), model.top(b'A')), "{id}");
    }
}
