//! `WalReader::read_run`: runs of records with `next_event` for whatever
//! ends a run give exactly what `next_event` alone gives, across segment
//! rolls, a corrupt frame and a seek.

mod common;

use std::path::Path;

use common::{flip, write_mixed};
use mdbus_types::Kind;
use mdbus_wal::{ReadEvent, ReadFrom, ReadOptions, WalReader};

/// What a reader yields, one entry per event: a record's seq and bytes, or
/// a skipped range as `(0, [])`.
type Events = Vec<(u64, Vec<u8>)>;

fn options(from: ReadFrom) -> ReadOptions {
    ReadOptions {
        from,
        skip_corrupt: true,
    }
}

/// Every event, by `next_event` alone.
fn by_steps(dir: &Path, from: ReadFrom) -> Events {
    let mut reader = WalReader::open(dir, "f", options(from)).unwrap();
    let mut events = Vec::new();
    while let Some(event) = reader.next_event().unwrap() {
        events.push(match event {
            ReadEvent::Record(r) => (r.record.header().seq, r.record.as_bytes().to_vec()),
            ReadEvent::Skipped(_) => (0, Vec::new()),
        });
    }
    events
}

/// Every event, by runs of at most `max` and `next_event` where a run
/// ends; also how many records came in runs.
fn by_runs(dir: &Path, from: ReadFrom, max: usize) -> (Events, usize) {
    let mut reader = WalReader::open(dir, "f", options(from)).unwrap();
    let (mut events, mut in_runs) = (Vec::new(), 0);
    loop {
        let expected = reader.next_seq();
        let n = reader.read_run(max, |record| {
            events.push((record.header().seq, record.as_bytes().to_vec()));
        });
        assert!(n <= max, "a run of {n} records where at most {max} were asked");
        if n > 0 {
            // A run is dense from the seq the reader said was next.
            let run = &events[events.len() - n..];
            let first = expected.expect("a run starts at a known seq");
            assert!(
                run.iter().zip(first..).all(|(e, seq)| e.0 == seq),
                "a run not dense from {first}"
            );
            assert_eq!(reader.next_seq(), Some(first + n as u64));
            in_runs += n;
            continue;
        }
        match reader.next_event().unwrap() {
            None => break,
            Some(ReadEvent::Record(r)) => events.push((r.record.header().seq, r.record.as_bytes().to_vec())),
            Some(ReadEvent::Skipped(_)) => events.push((0, Vec::new())),
        }
    }
    (events, in_runs)
}

#[test]
fn runs_read_what_steps_read_across_segments_and_seeks() {
    let dir = tempfile::tempdir().unwrap();
    let frames = write_mixed(dir.path(), 500);
    let segments: std::collections::BTreeSet<_> = frames.iter().map(|f| &f.0).collect();
    assert!(segments.len() > 5, "{} segments", segments.len());
    for from in [ReadFrom::Start, ReadFrom::Seq(137), ReadFrom::RecoveryPoint] {
        let steps = by_steps(dir.path(), from);
        assert!(steps.len() > 100, "{from:?}: {} events", steps.len());
        for max in [1, 7, 64, usize::MAX] {
            let (runs, in_runs) = by_runs(dir.path(), from, max);
            assert_eq!(runs, steps, "{from:?}, runs of {max}");
            // Most records came in runs (only a segment's first frame, or
            // the first after a seek, takes a step).
            assert!(
                in_runs * 2 > steps.len(),
                "{from:?}, runs of {max}: {in_runs} of {}",
                steps.len()
            );
        }
    }
    assert_eq!(by_steps(dir.path(), ReadFrom::Seq(137))[0].0, 137);
}

#[test]
fn a_run_stops_before_a_corrupt_frame_and_loses_nothing_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let frames = write_mixed(dir.path(), 300);
    // A byte of seq 150's payload flipped: its crc fails.
    let (path, offset, _) = &frames[149];
    flip(path, offset + 8 + 30);

    let steps = by_steps(dir.path(), ReadFrom::Start);
    let seqs: Vec<u64> = steps.iter().map(|e| e.0).collect();
    assert!(!seqs.contains(&150), "the corrupt record was yielded");
    assert!(seqs.contains(&0), "no skipped range for the corrupt frame");
    assert!(seqs.contains(&149) && seqs.contains(&151) && seqs.contains(&300));
    for max in [1, 64, usize::MAX] {
        assert_eq!(by_runs(dir.path(), ReadFrom::Start, max).0, steps, "runs of {max}");
    }
}

/// Every event of the kinds in `kinds`, by `next_event_where` alone.
fn by_steps_where(dir: &Path, from: ReadFrom, kinds: &[Kind]) -> Events {
    let mut reader = WalReader::open(dir, "f", options(from)).unwrap();
    let mut events = Vec::new();
    while let Some(event) = reader.next_event_where(|r| kinds.contains(&r.kind())).unwrap() {
        events.push(match event {
            ReadEvent::Record(r) => (r.record.header().seq, r.record.as_bytes().to_vec()),
            ReadEvent::Skipped(_) => (0, Vec::new()),
        });
    }
    events
}

/// Every event of the kinds in `kinds`, by `read_run_where` runs of at
/// most `max` frames and `next_event_where` where a run ends; also how
/// many frames the runs moved past.
fn by_runs_where(dir: &Path, from: ReadFrom, kinds: &[Kind], max: usize) -> (Events, usize) {
    let mut reader = WalReader::open(dir, "f", options(from)).unwrap();
    let (mut events, mut in_runs) = (Vec::new(), 0);
    loop {
        let expected = reader.next_seq();
        let before = events.len();
        let n = reader.read_run_where(
            max,
            |kind| kinds.contains(&kind),
            |record| {
                events.push((record.header().seq, record.as_bytes().to_vec()));
            },
        );
        assert!(n <= max, "a run of {n} frames where at most {max} were asked");
        if n > 0 {
            let first = expected.expect("a run starts at a known seq");
            assert_eq!(reader.next_seq(), Some(first + n as u64));
            // Only the kinds asked for, in the run's seq range.
            assert!(
                events[before..]
                    .iter()
                    .all(|e| (first..first + n as u64).contains(&e.0)),
                "a record outside the run {first}..+{n}"
            );
            in_runs += n;
            continue;
        }
        match reader.next_event_where(|r| kinds.contains(&r.kind())).unwrap() {
            None => break,
            Some(ReadEvent::Record(r)) => events.push((r.record.header().seq, r.record.as_bytes().to_vec())),
            Some(ReadEvent::Skipped(_)) => events.push((0, Vec::new())),
        }
    }
    (events, in_runs)
}

#[test]
fn runs_of_some_kinds_read_what_next_event_where_reads() {
    let dir = tempfile::tempdir().unwrap();
    let frames = write_mixed(dir.path(), 400);
    let kind_of = |seq: usize| {
        Kind::from_u16(u16::from_le_bytes(
            std::fs::read(&frames[seq - 1].0).unwrap()[frames[seq - 1].1 + 8 + 24..][..2]
                .try_into()
                .unwrap(),
        ))
        .unwrap()
    };
    // Two frames' payloads flipped (crc fails): seq 150's and seq 251's, of
    // two different kinds.
    let (k150, k251) = (kind_of(150), kind_of(251));
    assert_ne!(k150, k251);
    for seq in [150, 251] {
        let (path, offset, _) = &frames[seq - 1];
        flip(path, offset + 8 + 30);
    }
    let all = [Kind::Tick, Kind::BookSnapshot, Kind::BookDelta, Kind::Heartbeat];
    for kinds in [vec![k150], vec![k251], vec![k150, k251], all.to_vec(), vec![]] {
        for from in [ReadFrom::Start, ReadFrom::Seq(137)] {
            let steps = by_steps_where(dir.path(), from, &kinds);
            let seqs: Vec<u64> = steps.iter().map(|e| e.0).collect();
            // A corrupt frame of a kind asked for is reported (a skipped
            // range) and never yielded.
            assert!(!seqs.contains(&150) && !seqs.contains(&251));
            assert_eq!(
                seqs.contains(&0),
                kinds.contains(&k150) || kinds.contains(&k251),
                "{kinds:?}"
            );
            for max in [1, 7, 64, usize::MAX] {
                let (runs, in_runs) = by_runs_where(dir.path(), from, &kinds, max);
                assert_eq!(runs, steps, "{kinds:?}, {from:?}, runs of {max}");
                // (With no kind asked for, `next_event_where` steps over
                // the whole WAL at once: the first run never comes.)
                assert!(
                    kinds.is_empty() || in_runs > 200,
                    "{kinds:?}, {from:?}, runs of {max}: {in_runs} frames in runs"
                );
            }
        }
    }
}
