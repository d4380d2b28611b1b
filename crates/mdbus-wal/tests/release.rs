//! A reader does not keep the pages of a segment it has read in its RSS:
//! after reading 22 MB of one 64 MiB segment (and staying at its live end,
//! the segment still mapped), the map's resident pages in this process
//! (`/proc/self/smaps`, its `Rss`: this process's page tables, not the
//! machine's load) are a few MiB, not the 22 MB read. Linux only.
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;

use common::{file_maps, record, test_options, with_watchdog};
use mdbus_wal::{ReadEvent, ReadOptions, Wal, WalReader};

/// Ticks written: 200,000 frames of 112 bytes, 22.4 MB.
const TICKS: u64 = 200_000;

/// The segment the ticks went to (one: 64 MiB segments).
fn write_ticks(dir: &Path) -> std::path::PathBuf {
    let mut wal = Wal::open(dir, "f", test_options(64 << 20)).unwrap();
    for seq in 1..=TICKS {
        wal.append(&record(seq, 0)).unwrap();
    }
    wal.sync().unwrap();
    assert!(wal.append_offset() > 20 << 20, "{} bytes written", wal.append_offset());
    wal.segment_path().to_path_buf()
}

/// The resident bytes of this process's maps of `path` (`Rss` lines of
/// `/proc/self/smaps`); panics when `path` is not mapped.
fn mapped_rss(path: &Path) -> u64 {
    let path = path.canonicalize().unwrap();
    let maps: Vec<Vec<String>> = file_maps()
        .into_iter()
        .filter(|(p, _)| *p == path)
        .map(|(_, lines)| lines)
        .collect();
    assert!(!maps.is_empty(), "{} is not mapped by this process", path.display());
    let kb: u64 = maps
        .iter()
        .flatten()
        .filter_map(|line| line.strip_prefix("Rss:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap())
        .sum();
    kb * 1024
}

/// At most this much of a read segment stays resident: the reader's
/// release step (4 MiB) and what the kernel maps around a fault.
const RESIDENT_LIMIT: u64 = 6 << 20;

#[test]
fn next_event_releases_what_it_has_read() {
    with_watchdog(std::time::Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let segment = write_ticks(dir.path());
        let mut reader = WalReader::open(dir.path(), "f", ReadOptions::default()).unwrap();
        let mut seqs = 0;
        while let Some(event) = reader.next_event().unwrap() {
            let ReadEvent::Record(r) = event else {
                panic!("skipped a range of a clean WAL")
            };
            seqs += 1;
            assert_eq!(r.seq(), seqs);
        }
        assert_eq!(seqs, TICKS);
        let rss = mapped_rss(&segment);
        assert!(rss < RESIDENT_LIMIT, "{rss} bytes of the read segment resident");
    });
}

#[test]
fn next_event_where_releases_what_it_steps_over() {
    with_watchdog(std::time::Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let segment = write_ticks(dir.path());
        let mut reader = WalReader::open(dir.path(), "f", ReadOptions::default()).unwrap();
        // One tick in 3 (common::record's instruments rotate over three).
        let mut kept = 0;
        while let Some(event) = reader.next_event_where(|r| r.header().seq % 3 == 0).unwrap() {
            let ReadEvent::Record(r) = event else {
                panic!("skipped a range of a clean WAL")
            };
            kept += 1;
            assert_eq!(r.seq(), kept * 3);
        }
        assert_eq!(kept, TICKS / 3);
        let rss = mapped_rss(&segment);
        assert!(rss < RESIDENT_LIMIT, "{rss} bytes of the read segment resident");
    });
}

#[test]
fn read_run_releases_what_it_has_read() {
    with_watchdog(std::time::Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let segment = write_ticks(dir.path());
        let mut reader = WalReader::open(dir.path(), "f", ReadOptions::default()).unwrap();
        // The first record by next_event (it opens the segment), then runs.
        assert!(matches!(reader.next_event().unwrap(), Some(ReadEvent::Record(_))));
        let mut seqs = 1;
        loop {
            let n = reader.read_run(4096, |r| {
                seqs += 1;
                assert_eq!(r.header().seq, seqs);
            });
            if n == 0 {
                break;
            }
        }
        assert_eq!(seqs, TICKS);
        let rss = mapped_rss(&segment);
        assert!(rss < RESIDENT_LIMIT, "{rss} bytes of the read segment resident");
    });
}
