//! The import writes the same WAL, record for record and byte for byte
//! (`ts_publish`, the import's wall clock, left out), as the import this
//! test was written against: each case's digest was taken from the
//! importer before its speed-ups (commit 5629490) and is pinned here.
//!
//! The inputs: the real samples of tests/data, and larger files written
//! here with `dbn`'s encoder: deep MBO books (40 price levels a side,
//! changes above and below the published top 10, partial cancels, moves,
//! unknown orders, trades, fills, clears, events of several records, three
//! instruments in two files merged in time order, then a second day), an
//! MBP-10 stream with levels sliding in and out, clears and trades, and
//! the MBP-1 and trades files cut from it. Small WAL segments: the
//! snapshot sets of many rolls are in the digest too. The publisher's
//! wall-clock records (interval snapshots, heartbeats) are switched off,
//! so the WAL is a function of the input alone.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dbn::encode::{DbnEncoder, EncodeRecord};
use dbn::{
    BidAskPair, FlagSet, MboMsg, Mbp1Msg, Mbp10Msg, Metadata, RecordHeader, SType, Schema, TradeMsg, flags, rtype,
};
use mdbus_dbn::{ImportOptions, ImportStats, Importer};
use mdbus_publisher::{FeedConfig, FeedPublisher};
use mdbus_types::InstrumentId;
use mdbus_wal::{ReadOptions, WalOptions, WalReader};

const FEED: &str = "same";
const T0: u64 = 1_609_459_200_000_000_000;
const DAY: u64 = 86_400_000_000_000;

fn importer(dir: &Path, options: ImportOptions) -> Importer<mdbus_transport::InProcSender> {
    let mut config = FeedConfig::new(FEED);
    config.wal_root = Some(dir.to_path_buf());
    config.wal = WalOptions::default().segment_bytes(256 << 10);
    config.data_clock = true;
    // No record may depend on the wall clock.
    config.snapshot_interval = Duration::from_secs(1 << 30);
    config.heartbeat_interval = Duration::from_secs(1 << 30);
    let publisher = FeedPublisher::open(config, mdbus_transport::InProcBus::new(1).sender()).unwrap();
    Importer::new(publisher, options)
}

fn aliases(keys: &[u32]) -> ImportOptions {
    ImportOptions {
        aliases: keys
            .iter()
            .map(|&k| (k, InstrumentId::new(&format!("I{k}")).unwrap()))
            .collect(),
        ..ImportOptions::default()
    }
}

/// FNV-1a, 64 bits: stable across Rust versions (std's hasher is not).
struct Fnv(u64);
impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The WAL's digest: every record in order, with its segment file and
/// offset, `ts_publish` zeroed; and how many records and segments.
fn digest(dir: &Path) -> (u64, u64, usize) {
    let report = mdbus_wal::verify(dir, FEED).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let mut reader = WalReader::open(dir, FEED, ReadOptions::default()).unwrap();
    let (mut fnv, mut records) = (Fnv::new(), 0);
    let mut segments = std::collections::BTreeSet::new();
    while let Some(r) = reader.next_record().unwrap() {
        let name = r.path.file_name().unwrap().to_string_lossy().into_owned();
        fnv.write(name.as_bytes());
        fnv.write(&r.offset.to_le_bytes());
        let mut sample = r.record.to_sample();
        sample.header_mut().ts_publish = 0;
        fnv.write(sample.record_bytes().unwrap());
        segments.insert(name);
        records += 1;
    }
    (fnv.0, records, segments.len())
}

fn metadata(schema: Schema) -> Metadata {
    Metadata::builder()
        .dataset("TEST".to_string())
        .schema(Some(schema))
        .start(T0)
        .stype_in(Some(SType::RawSymbol))
        .stype_out(SType::InstrumentId)
        .build()
}

fn write<R: dbn::encode::DbnEncodable>(path: &Path, schema: Schema, records: &[R]) {
    let mut encoder = DbnEncoder::new(BufWriter::new(File::create(path).unwrap()), &metadata(schema)).unwrap();
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

#[allow(clippy::too_many_arguments)]
fn mbo(key: u32, ts: u64, action: u8, side: u8, order_id: u64, price: i64, size: u32, flags_raw: u8) -> MboMsg {
    MboMsg {
        hd: RecordHeader::new::<MboMsg>(rtype::MBO, 1, key, ts - 50),
        order_id,
        price,
        size,
        flags: FlagSet::new(flags_raw),
        channel_id: 0,
        action: action as std::ffi::c_char,
        side: side as std::ffi::c_char,
        ts_recv: ts,
        ts_in_delta: 0,
        sequence: 0,
    }
}

/// Resting orders of the generator, per instrument: (id, side, price, size).
type Live = HashMap<u32, Vec<(u64, u8, i64, u32)>>;

fn price(rng: &mut Lcg, side: u8) -> i64 {
    if side == b'B' {
        1_000 - rng.next(40) as i64
    } else {
        1_001 + rng.next(40) as i64
    }
}

/// `events` random MBO events over instruments 1 to 3 from `start`.
fn mbo_stream(rng: &mut Lcg, live: &mut Live, next_id: &mut u64, start: u64, events: u64) -> Vec<MboMsg> {
    let last = flags::LAST;
    let mut out = Vec::new();
    for n in 0..events {
        let ts = start + n * 100;
        let key = 1 + rng.next(3) as u32;
        let orders = live.entry(key).or_default();
        let side = if rng.next(2) == 0 { b'B' } else { b'A' };
        let r = rng.next(100);
        match r {
            25..=49 if !orders.is_empty() => {
                // A whole cancel.
                let (id, s, p, size) = orders.swap_remove(rng.next(orders.len() as u64) as usize);
                out.push(mbo(key, ts, b'C', s, id, p, size, last));
            }
            50..=59 if !orders.is_empty() => {
                // A partial cancel, sometimes after its fill (one event).
                let i = rng.next(orders.len() as u64) as usize;
                let (id, s, p, size) = orders[i];
                let cut = 1 + rng.next(u64::from(size)) as u32;
                if r.is_multiple_of(2) {
                    out.push(mbo(key, ts - 1, b'F', s, id, p, cut, 0));
                }
                out.push(mbo(key, ts, b'C', s, id, p, cut, last));
                if cut == size {
                    orders.swap_remove(i);
                } else {
                    orders[i].3 = size - cut;
                }
            }
            60..=67 if !orders.is_empty() => {
                // A modify: a new price and size.
                let i = rng.next(orders.len() as u64) as usize;
                let (id, s, _, _) = orders[i];
                let (p, size) = (price(rng, s), 1 + rng.next(30) as u32);
                orders[i] = (id, s, p, size);
                out.push(mbo(key, ts, b'M', s, id, p, size, last));
            }
            68 | 69 => {
                // A modify of an unknown order adds it.
                *next_id += 1;
                let (p, size) = (price(rng, side), 1 + rng.next(30) as u32);
                orders.push((*next_id, side, p, size));
                out.push(mbo(key, ts, b'M', side, *next_id, p, size, last));
            }
            70 | 71 => out.push(mbo(key, ts, b'C', side, 9_000_000_000 + n, 1_000, 1, last)),
            72..=77 => {
                // A trade, sometimes with the fill of a resting order.
                let flag = if r.is_multiple_of(2) { 0 } else { last };
                out.push(mbo(key, ts, b'T', side, 0, 1_000 + rng.next(2) as i64, 3, flag));
                if flag == 0 {
                    out.push(mbo(key, ts, b'F', side, 0, 1_000, 3, last));
                }
            }
            78 | 79 => {
                // An event of two records: an add and a cancel of another order.
                *next_id += 1;
                let (p, size) = (price(rng, side), 1 + rng.next(30) as u32);
                orders.push((*next_id, side, p, size));
                out.push(mbo(key, ts - 1, b'A', side, *next_id, p, size, 0));
                let (id, s, p, size) = orders.swap_remove(rng.next(orders.len() as u64) as usize);
                out.push(mbo(key, ts, b'C', s, id, p, size, last));
            }
            80 => out.push(mbo(key, ts, b'A', b'N', 9_100_000_000 + n, 1_000, 1, last)),
            81 => out.push(mbo(key, ts, b'N', b'N', 0, dbn::UNDEF_PRICE, 0, last)),
            82 if rng.next(20) == 0 => {
                orders.clear();
                out.push(mbo(key, ts, b'R', b'N', 0, dbn::UNDEF_PRICE, 0, last));
            }
            83 if !orders.is_empty() => {
                // An add of an order already there replaces it.
                let i = rng.next(orders.len() as u64) as usize;
                let (id, s, _, _) = orders[i];
                let (p, size) = (price(rng, s), 1 + rng.next(30) as u32);
                orders[i] = (id, s, p, size);
                out.push(mbo(key, ts, b'A', s, id, p, size, last | flags::SNAPSHOT));
            }
            _ => {
                *next_id += 1;
                let (p, size) = (price(rng, side), 1 + rng.next(30) as u32);
                orders.push((*next_id, side, p, size));
                out.push(mbo(key, ts, b'A', side, *next_id, p, size, last));
            }
        }
    }
    out
}

/// Books of up to 20 levels a side, per instrument, as MBP-10 records.
fn mbp10_stream(rng: &mut Lcg, events: u64) -> Vec<Mbp10Msg> {
    let mut books: HashMap<u32, [BTreeMap<i64, u32>; 2]> = HashMap::new();
    let mut out = Vec::new();
    for n in 0..events {
        let key = 1 + rng.next(3) as u32;
        let book = books.entry(key).or_insert_with(|| {
            [
                (0..15).map(|i| (1_000 - i, 1 + i as u32)).collect(),
                (0..15).map(|i| (1_001 + i, 1 + i as u32)).collect(),
            ]
        });
        let (mut action, mut flags_raw) = (b'M', flags::LAST);
        match rng.next(40) {
            0 | 1 => action = b'T',
            2 if n > 50 => {
                action = b'R';
                flags_raw |= flags::SNAPSHOT;
                for side in book.iter_mut() {
                    let keep: Vec<_> = side.iter().take(rng.next(14) as usize).map(|(p, q)| (*p, *q)).collect();
                    *side = keep.into_iter().collect();
                }
            }
            r => {
                let side = (r % 2) as usize;
                let p = if side == 0 {
                    1_000 - rng.next(22) as i64
                } else {
                    1_001 + rng.next(22) as i64
                };
                match rng.next(4) {
                    0 => {
                        book[side].remove(&p);
                    }
                    _ => {
                        book[side].insert(p, 1 + rng.next(60) as u32);
                    }
                }
            }
        }
        let ts = T0 + n * 1_000;
        let mut msg = Mbp10Msg {
            hd: RecordHeader::new::<Mbp10Msg>(rtype::MBP_10, 1, key, ts - 500),
            price: 1_000 + rng.next(2) as i64,
            size: 1 + rng.next(5) as u32,
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
        if rng.next(8) == 0 {
            // An event of two records: the first is not published.
            let mut first = msg.clone();
            first.flags = FlagSet::new(0);
            first.action = b'M' as std::ffi::c_char;
            first.ts_recv = ts - 1;
            first.levels[0].bid_sz += 1;
            out.push(first);
        }
        out.push(msg);
    }
    out
}

/// Imports with `run` into a fresh WAL; its digest and the stats.
fn case(
    keys: &[u32],
    run: impl FnOnce(&mut Importer<mdbus_transport::InProcSender>),
) -> ((u64, u64, usize), ImportStats) {
    let dir = tempfile::tempdir().unwrap();
    let mut import = importer(dir.path(), aliases(keys));
    run(&mut import);
    let (stats, publisher) = import.finish().unwrap();
    drop(publisher);
    (digest(dir.path()), stats)
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

#[test]
fn the_import_writes_the_records_it_wrote_before_its_speed_ups() {
    let files = tempfile::tempdir().unwrap();
    let file = |name: &str| files.path().join(name);
    let mut seen = Vec::new();

    // MBO: instruments 1 and 2 in one file, 3 in another, merged; then a
    // second day continuing the resting orders.
    let (mut rng, mut live, mut next_id) = (Lcg(5), Live::new(), 0);
    let day1 = mbo_stream(&mut rng, &mut live, &mut next_id, T0, 60_000);
    let (a, b): (Vec<MboMsg>, Vec<MboMsg>) = day1.iter().cloned().partition(|m| m.hd.instrument_id != 3);
    write(&file("a.mbo.dbn"), Schema::Mbo, &a);
    write(&file("b.mbo.dbn"), Schema::Mbo, &b);
    let day2 = mbo_stream(&mut rng, &mut live, &mut next_id, T0 + DAY, 40_000);
    write(&file("day2.mbo.dbn"), Schema::Mbo, &day2);
    let (mbo_digest, stats) = case(&[1, 2, 3], |import| {
        import.import_files(&[file("a.mbo.dbn"), file("b.mbo.dbn")]).unwrap();
        import.import_file(file("day2.mbo.dbn")).unwrap();
    });
    assert_eq!(stats.dbn_records, (day1.len() + day2.len()) as u64);
    assert!(stats.unknown_orders > 0 && stats.resting_orders > 0, "{stats:?}");
    seen.push(("mbo", mbo_digest, stats));

    // MBP-10, and the MBP-1 and trades files cut from it.
    let mbp10 = mbp10_stream(&mut Lcg(9), 30_000);
    write(&file("s.mbp-10.dbn"), Schema::Mbp10, &mbp10);
    let mbp1: Vec<Mbp1Msg> = mbp10
        .iter()
        .map(|m| Mbp1Msg {
            hd: RecordHeader::new::<Mbp1Msg>(rtype::MBP_1, 1, m.hd.instrument_id, m.hd.ts_event),
            price: m.price,
            size: m.size,
            action: m.action,
            side: m.side,
            flags: m.flags,
            depth: 0,
            ts_recv: m.ts_recv,
            ts_in_delta: 0,
            sequence: 0,
            levels: [m.levels[0].clone()],
        })
        .collect();
    write(&file("s.mbp-1.dbn"), Schema::Mbp1, &mbp1);
    let trades: Vec<TradeMsg> = mbp10
        .iter()
        .filter(|m| m.action as u8 == b'T')
        .map(|m| TradeMsg {
            hd: RecordHeader::new::<TradeMsg>(rtype::MBP_0, 1, m.hd.instrument_id, m.hd.ts_event),
            price: m.price,
            size: m.size,
            action: m.action,
            side: m.side,
            flags: m.flags,
            depth: 0,
            ts_recv: m.ts_recv,
            ts_in_delta: 0,
            sequence: 0,
        })
        .collect();
    write(&file("s.trades.dbn"), Schema::Trades, &trades);
    for name in ["s.mbp-10.dbn", "s.mbp-1.dbn", "s.trades.dbn"] {
        let (d, stats) = case(&[1, 2, 3], |import| import.import_file(file(name)).unwrap());
        seen.push((name, d, stats));
    }

    // The real samples, symbols from their metadata.
    for name in [
        "test_data.mbo.v3.dbn.zst",
        "test_data.mbp-10.v3.dbn.zst",
        "test_data.mbp-1.v3.dbn.zst",
        "test_data.tbbo.v3.dbn.zst",
        "test_data.trades.v3.dbn.zst",
    ] {
        let (d, stats) = case(&[], |import| import.import_file(data(name)).unwrap());
        seen.push((name, d, stats));
    }

    for (name, (digest, records, segments), stats) in &seen {
        println!(
            "(\"{name}\", {digest:#018x}, {records}, {segments}, [{}, {}, {}]),",
            stats.ticks, stats.snapshots, stats.deltas
        );
    }
    // (case, digest, records, segments, [ticks, snapshots, deltas]): taken
    // before the speed-ups.
    let pinned: [(&str, u64, u64, usize, [u64; 3]); 9] = [
        ("mbo", 0xdd19fef78bbf4a19, 45680, 18, [6050, 1035, 38342]),
        ("s.mbp-10.dbn", 0x428978473cac92b3, 27856, 11, [1445, 713, 25488]),
        ("s.mbp-1.dbn", 0x13c0f412b5c03309, 7098, 4, [1445, 713, 4885]),
        ("s.trades.dbn", 0x171e4b7767d2ab4d, 1446, 1, [1445, 0, 0]),
        ("test_data.mbo.v3.dbn.zst", 0x58eaec8c39b0e4d2, 1, 1, [0, 0, 0]),
        ("test_data.mbp-10.v3.dbn.zst", 0xce6648a20bc817e7, 3, 1, [0, 1, 1]),
        ("test_data.mbp-1.v3.dbn.zst", 0x2aa13fa4b0048de0, 3, 1, [0, 1, 1]),
        ("test_data.tbbo.v3.dbn.zst", 0xc6115bb6f7a3f0d4, 7, 1, [2, 1, 2]),
        ("test_data.trades.v3.dbn.zst", 0x4d936e99dce3638f, 3, 1, [2, 0, 0]),
    ];
    for (name, digest, records, segments, counts) in pinned {
        let (_, got, stats) = seen.iter().find(|s| s.0 == name).unwrap();
        assert_eq!(*got, (digest, records, segments), "{name}");
        assert_eq!([stats.ticks, stats.snapshots, stats.deltas], counts, "{name}");
    }
}
