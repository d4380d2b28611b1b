//! Import speed: writes an MBO file and an MBP-10 file of synthetic events
//! with `dbn`'s encoder, then imports each into a fresh WAL (interval
//! sync, data and batch clocks, as `mdbus import dbn`) and prints DBN
//! records per second. Then the two floors under it, on the same files
//! and the same machine: the `dbn` decoder alone (every record read, as
//! the import reads it), and a bare WAL append loop of as many records as
//! the import wrote (one `BookDelta` each, 72-byte frames, no publisher).
//!
//! Each line gives records per second of wall-clock time and, in
//! brackets, per second of CPU time (what the work costs when other
//! processes share the cores): for the import, the whole process's (the
//! import reads on one thread and publishes on another; the WAL's sync
//! and segment threads count too); for the floors, the measuring
//! thread's own (the WAL's threads not counted).
//!
//! `cargo run --release -p mdbus-dbn --example import_speed [EVENTS] [SCHEMA]`
//!
//! `SCHEMA` (`mbo`, `mbp-10`, or `old-mbo`: the MBO file this example
//! wrote until 2026-12-02, see `write_mbo`) imports that file alone,
//! without the floors: one import to profile.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Instant;

use dbn::encode::{DbnEncoder, EncodeRecord};
use dbn::{BidAskPair, FlagSet, MboMsg, Mbp10Msg, Metadata, RecordHeader, SType, Schema, flags, rtype};
use mdbus_dbn::{ImportOptions, Importer};
use mdbus_publisher::{FeedConfig, FeedPublisher};
use mdbus_types::InstrumentId;

const T0: u64 = 1_609_459_200_000_000_000;

/// The whole process's resource use (every thread: the import's two and
/// the WAL's): user and system CPU seconds, minor page faults, voluntary
/// and involuntary context switches.
fn process_usage() -> [f64; 5] {
    // SAFETY: an all-zero rusage is a valid value (integers and timevals).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage, which `usage` is.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    [
        secs(usage.ru_utime),
        secs(usage.ru_stime),
        usage.ru_minflt as f64,
        usage.ru_nvcsw as f64,
        usage.ru_nivcsw as f64,
    ]
}

/// The CPU time in seconds of this process (all its threads).
fn process_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// This thread's CPU time in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
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

/// Adds and whole cancels of random resting orders (500 at least, a
/// random walk above that) on 8 instruments, each cancel on its order's
/// own instrument. (Until 2026-12-02 a cancel went to a random instrument:
/// 7 of 8 cancels named an order its book did not hold, so the books kept
/// ~870 k of the 1 M orders added in a 2 M-record file; `old-mbo` writes
/// that file.)
fn write_mbo(path: &Path, events: u64, cancels_anywhere: bool) {
    let mut enc = DbnEncoder::new(BufWriter::new(File::create(path).unwrap()), &metadata(Schema::Mbo)).unwrap();
    let mut rng = Lcg(1);
    let mut live: Vec<(u64, u32, u8, i64, u32)> = Vec::new();
    for n in 0..events {
        let key = 1 + rng.next(8) as u32;
        let ts = T0 + n * 100;
        let (action, key, side, order_id, price, size) = if live.len() < 500 || rng.next(2) == 0 {
            let side = if rng.next(2) == 0 { b'B' } else { b'A' };
            let price = if side == b'B' {
                990 + rng.next(20) as i64
            } else {
                1_005 + rng.next(20) as i64
            };
            live.push((n + 1, key, side, price, 1 + rng.next(20) as u32));
            (b'A', key, side, n + 1, price, live.last().unwrap().4)
        } else {
            let (id, own_key, side, price, size) = live.swap_remove(rng.next(live.len() as u64) as usize);
            (
                b'C',
                if cancels_anywhere { key } else { own_key },
                side,
                id,
                price,
                size,
            )
        };
        let msg = MboMsg {
            hd: RecordHeader::new::<MboMsg>(rtype::MBO, 1, key, ts),
            order_id,
            price,
            size,
            flags: FlagSet::new(flags::LAST),
            channel_id: 0,
            action: action as std::ffi::c_char,
            side: side as std::ffi::c_char,
            ts_recv: ts,
            ts_in_delta: 0,
            sequence: 0,
        };
        enc.encode_record(&msg).unwrap();
    }
}

fn write_mbp10(path: &Path, events: u64) {
    let mut enc = DbnEncoder::new(BufWriter::new(File::create(path).unwrap()), &metadata(Schema::Mbp10)).unwrap();
    let mut rng = Lcg(2);
    for n in 0..events {
        let key = 1 + rng.next(8) as u32;
        let ts = T0 + n * 100;
        let mut msg = Mbp10Msg {
            hd: RecordHeader::new::<Mbp10Msg>(rtype::MBP_10, 1, key, ts),
            price: 1_000,
            size: 1,
            action: b'M' as std::ffi::c_char,
            side: b'B' as std::ffi::c_char,
            flags: FlagSet::new(flags::LAST),
            ts_recv: ts,
            ..Mbp10Msg::default()
        };
        let changed = rng.next(10) as usize;
        for (i, level) in msg.levels.iter_mut().enumerate() {
            let bump = u32::from(i == changed) * (1 + rng.next(5) as u32);
            *level = BidAskPair {
                bid_px: 1_000 - i as i64,
                bid_sz: 10 + i as u32 + bump,
                ask_px: 1_001 + i as i64,
                ask_sz: 10 + i as u32,
                ..BidAskPair::default()
            };
        }
        enc.encode_record(&msg).unwrap();
    }
}

/// Imports `file`; the mdbus records the publisher wrote.
fn import(name: &str, file: &Path, events: u64) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let mut config = FeedConfig::new("speed");
    config.wal_root = Some(dir.path().to_path_buf());
    config.data_clock = true;
    config.batch_clock = true;
    let publisher = FeedPublisher::open(config, mdbus_transport::InProcBus::new(1).sender()).unwrap();
    let aliases = (1..=8)
        .map(|k| (k, InstrumentId::new(&format!("I{k}")).unwrap()))
        .collect();
    let mut import = Importer::new(
        publisher,
        ImportOptions {
            aliases,
            ..ImportOptions::default()
        },
    );
    let (start, cpu, usage) = (Instant::now(), process_cpu(), process_usage());
    import.import_file(file).unwrap();
    let (stats, publisher) = import.finish().unwrap();
    let (secs, cpu) = (start.elapsed().as_secs_f64(), process_cpu() - cpu);
    let used: Vec<f64> = process_usage()
        .iter()
        .zip(usage)
        .map(|(after, before)| after - before)
        .collect();
    assert_eq!(stats.dbn_records, events);
    println!(
        "{name}: {events} DBN records in {secs:.3} s: {:.2} M records/s [cpu {:.2}] ({} deltas, {} snapshots written)",
        events as f64 / secs / 1e6,
        events as f64 / cpu / 1e6,
        stats.deltas,
        stats.snapshots
    );
    println!(
        "{name}: {} orders resting at the end, {} cancels of unknown orders",
        stats.resting_orders, stats.unknown_orders
    );
    println!(
        "{name}: the process (both import threads, the WAL's): {:.0} ns user + {:.0} ns system CPU per DBN record, {:.0} minor page faults, {:.0} voluntary and {:.0} involuntary context switches",
        used[0] * 1e9 / events as f64,
        used[1] * 1e9 / events as f64,
        used[2],
        used[3],
        used[4]
    );
    publisher.stats().records
}

/// The `dbn` decoder alone on `file`, read as the import reads it.
fn decode_only(name: &str, file: &Path, events: u64) {
    use dbn::decode::{DbnMetadata, DecodeRecordRef};
    let (start, cpu) = (Instant::now(), thread_cpu());
    let reader = std::io::BufReader::new(File::open(file).unwrap());
    let mut decoder =
        dbn::decode::dbn::Decoder::with_upgrade_policy(reader, dbn::VersionUpgradePolicy::UpgradeToV3).unwrap();
    assert!(decoder.metadata().schema.is_some());
    let (mut n, mut sum) = (0u64, 0u64);
    while let Some(record) = decoder.decode_record_ref().unwrap() {
        n += 1;
        sum = sum.wrapping_add(u64::from(record.header().instrument_id));
    }
    let (secs, cpu) = (start.elapsed().as_secs_f64(), thread_cpu() - cpu);
    assert_eq!(n, events);
    std::hint::black_box(sum);
    println!(
        "{name}: the dbn decoder alone: {:.2} M records/s [cpu {:.2}] ({:.0} ns each [cpu {:.0}])",
        n as f64 / secs / 1e6,
        n as f64 / cpu / 1e6,
        secs * 1e9 / n as f64,
        cpu * 1e9 / n as f64
    );
}

/// A bare WAL append loop of `records` book deltas (as the import's WAL:
/// interval sync, default segments; no publisher, no books).
fn wal_only(name: &str, records: u64, events: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = mdbus_wal::Wal::open(dir.path(), "speed", mdbus_wal::WalOptions::default()).unwrap();
    let id = InstrumentId::new("I1").unwrap();
    let mut delta = mdbus_types::BookDelta::new(id, mdbus_types::Side::Bid, mdbus_types::Price(1_000), 1, 0);
    let (start, cpu) = (Instant::now(), thread_cpu());
    for i in 0..records {
        delta.header.seq = wal.next_seq();
        delta.header.ts_event = i as i64;
        delta.qty = 1 + (i % 50) as i64;
        wal.append_record(mdbus_types::RecordRef::BookDelta(&delta)).unwrap();
    }
    wal.sync().unwrap();
    let (secs, cpu) = (start.elapsed().as_secs_f64(), thread_cpu() - cpu);
    println!(
        "{name}: a bare WAL append loop of the {records} records the import wrote: {:.2} M records/s [cpu {:.2}] ({:.0} ns each, {:.0} ns per DBN record [cpu {:.0}])",
        records as f64 / secs / 1e6,
        records as f64 / cpu / 1e6,
        secs * 1e9 / records as f64,
        secs * 1e9 / events as f64,
        cpu * 1e9 / events as f64
    );
}

fn main() {
    let events: u64 = std::env::args()
        .nth(1)
        .map_or(2_000_000, |a| a.parse().expect("EVENTS"));
    let only = std::env::args().nth(2);
    let dir = tempfile::tempdir().unwrap();
    let (mbo, mbp10) = (dir.path().join("speed.mbo.dbn"), dir.path().join("speed.mbp-10.dbn"));
    match only.as_deref() {
        Some(which @ ("mbo" | "old-mbo")) => {
            write_mbo(&mbo, events, which == "old-mbo");
            import(which, &mbo, events);
            return;
        }
        Some("mbp-10") => {
            write_mbp10(&mbp10, events);
            import("mbp-10", &mbp10, events);
            return;
        }
        Some(other) => panic!("SCHEMA is mbo, old-mbo or mbp-10, not {other}"),
        None => {}
    }
    write_mbo(&mbo, events, false);
    write_mbp10(&mbp10, events);
    let written = [import("mbo", &mbo, events), import("mbp-10", &mbp10, events)];
    for ((name, file), records) in [("mbo", &mbo), ("mbp-10", &mbp10)].into_iter().zip(written) {
        decode_only(name, file, events);
        wal_only(name, records, events);
    }
}
