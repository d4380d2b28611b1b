//! `WalReader::next_event_where`: the records a filter accepts, checked in
//! full, and nothing else; a corrupt frame it rejects loses nothing it
//! wanted, a corrupt frame it accepts is never yielded.

mod common;

use std::path::Path;

use common::{flip, write_mixed};
use mdbus_types::RecordRef;
use mdbus_wal::{Error, ReadEvent, ReadOptions, WalReader};

/// Ticks of IF2501 (every third tick of `common::record`).
fn wanted(record: RecordRef<'_>) -> bool {
    matches!(record, RecordRef::Tick(t) if t.instrument.as_str() == "IF2501")
}

/// (seqs yielded, skipped ranges) of a filtered read.
fn filtered(dir: &Path, skip_corrupt: bool) -> Result<(Vec<u64>, usize), Error> {
    let options = ReadOptions {
        skip_corrupt,
        ..ReadOptions::default()
    };
    let mut reader = WalReader::open(dir, "f", options)?;
    let (mut seqs, mut skipped) = (Vec::new(), 0);
    while let Some(event) = reader.next_event_where(wanted)? {
        match event {
            ReadEvent::Record(r) => {
                assert!(wanted(r.record), "yielded a record the filter rejects: {:?}", r.record);
                seqs.push(r.record.header().seq);
            }
            ReadEvent::Skipped(_) => skipped += 1,
        }
    }
    Ok((seqs, skipped))
}

#[test]
fn yields_exactly_the_accepted_records_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let frames = write_mixed(dir.path(), 400);
    assert!(
        frames
            .iter()
            .map(|f| &f.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 5
    );
    let mut reader = WalReader::open(dir.path(), "f", ReadOptions::default()).unwrap();
    let mut expected = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        if wanted(r.record) {
            expected.push(r.record.header().seq);
        }
    }
    assert!(expected.len() > 30);
    assert_eq!(filtered(dir.path(), false).unwrap(), (expected, 0));
}

#[test]
fn a_corrupt_rejected_frame_loses_nothing_and_a_corrupt_accepted_one_is_never_yielded() {
    let dir = tempfile::tempdir().unwrap();
    let frames = write_mixed(dir.path(), 400);
    let (all, _) = filtered(dir.path(), false).unwrap();
    // Two rejected frames inside a segment (the first frame of a segment
    // is checked on entry): their payloads flipped.
    let rejected = |i: usize| !all.contains(&(i as u64 + 1));
    let inside: Vec<usize> = (200..400)
        .filter(|&i| rejected(i) && frames[i - 1].0 == frames[i].0)
        .take(2)
        .collect();
    for i in inside {
        let (path, off, _) = &frames[i];
        flip(path, off + 8 + 12);
    }
    assert_eq!(filtered(dir.path(), false).unwrap(), (all.clone(), 0));
    // A wanted tick: its body flipped. Checked in full: never yielded; an
    // error naming the file without skip-corrupt, a skipped range with it.
    let victim = all[all.len() / 2];
    let (path, off, _) = &frames[victim as usize - 1];
    flip(path, off + 8 + 48);
    match filtered(dir.path(), false) {
        Err(Error::Corrupt { path: named, .. }) => assert_eq!(&named, path),
        other => panic!("expected a corrupt-frame error, got {other:?}"),
    }
    let (seqs, skipped) = filtered(dir.path(), true).unwrap();
    assert_eq!(skipped, 1);
    let without: Vec<u64> = all.iter().copied().filter(|s| *s != victim).collect();
    assert_eq!(seqs, without);
}
