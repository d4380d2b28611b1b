//! Conformance with the WAL fixtures written from docs/spec.md alone
//! (tests/fixtures/wal-*/, feed `golden`): verify, replay, skip-corrupt
//! replay, and a reopening writer, as each EXPECT.md says.

mod common;

use common::{expected_lines, fixture_copy, fixtures, record, replay, test_options};
use mdbus_wal::{Error, ProblemKind, RecoveryEvent, Wal, verify};

const FEED: &str = "golden";
const SEGMENT: &str = "00000000000000000001.wal";

#[test]
fn clean_verify_replay_and_reopen() {
    let dir = fixture_copy("wal-clean");
    let report = verify(dir.path(), FEED).unwrap();
    println!("{report}");
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.records, 21);
    assert!(report.notes.is_empty());

    let out = replay(dir.path(), FEED, false);
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.json, expected_lines("wal-clean"));

    let mut wal = Wal::open(dir.path(), FEED, test_options(65536)).unwrap();
    assert!(wal.recovery_report().is_clean(), "{}", wal.recovery_report());
    assert_eq!(wal.next_seq(), 22);
    assert_eq!(wal.append_offset(), 3072);
    wal.append(&record(22, 0)).unwrap();
    drop(wal);
    let out = replay(dir.path(), FEED, false);
    assert_eq!(out.seqs, (1..=22).collect::<Vec<_>>());
    assert_eq!(verify(dir.path(), FEED).unwrap().exit_code(), 0);
}

#[test]
fn torn_tail_verify_replay_and_reopen() {
    let dir = fixture_copy("wal-torn-tail");
    let path = dir.path().join(FEED).join(SEGMENT);
    let report = verify(dir.path(), FEED).unwrap();
    println!("{report}");
    assert_eq!(report.exit_code(), 3);
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].offset, 2992);
    assert_eq!(report.problems[0].kind, ProblemKind::TornTail);
    assert_eq!(report.problems[0].path, path);
    assert!(report.to_string().contains("offset 2992"));

    let expected = expected_lines("wal-torn-tail");
    assert_eq!(expected.len(), 20);
    let out = replay(dir.path(), FEED, false);
    assert_eq!(out.json, expected);
    match out.error {
        Some(Error::Corrupt {
            path: p, offset: 2992, ..
        }) => assert_eq!(p, path),
        other => panic!("expected a corrupt-frame error at 2992, got {other:?}"),
    }
    let out = replay(dir.path(), FEED, true);
    assert!(out.error.is_none());
    assert_eq!(out.json, expected);
    assert_eq!(out.skipped.len(), 1);
    assert_eq!(out.skipped[0].from, 2992);

    let mut wal = Wal::open(dir.path(), FEED, test_options(65536)).unwrap();
    let rec = wal.recovery_report().clone();
    println!("{rec}");
    assert!(
        matches!(&rec.events[..], [RecoveryEvent::TornTailCut { offset: 2992, .. }]),
        "{rec}"
    );
    assert_eq!(wal.next_seq(), 21);
    assert_eq!(wal.append_offset(), 2992);
    wal.append(&record(21, 2)).unwrap();
    drop(wal);
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes[2992 + 8 + 72..].iter().all(|&b| b == 0),
        "bytes after the new frame are zero"
    );
    assert_eq!(verify(dir.path(), FEED).unwrap().exit_code(), 0);
    assert_eq!(replay(dir.path(), FEED, false).seqs, (1..=21).collect::<Vec<_>>());
}

#[test]
fn corrupt_middle_verify_replay_skip_and_reopen() {
    let dir = fixture_copy("wal-corrupt-middle");
    let path = dir.path().join(FEED).join(SEGMENT);
    let original = std::fs::read(&path).unwrap();
    let report = verify(dir.path(), FEED).unwrap();
    println!("{report}");
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.problems[0].offset, 1896);
    assert_eq!(report.problems[0].kind, ProblemKind::Corruption);

    let expected = expected_lines("wal-corrupt-middle");
    assert_eq!(expected.len(), 10);
    let out = replay(dir.path(), FEED, false);
    assert_eq!(out.json, expected);
    match &out.error {
        Some(
            e @ Error::Corrupt {
                path: p, offset: 1896, ..
            },
        ) => {
            assert_eq!(p, &path);
            assert!(e.to_string().contains("1896") && e.to_string().contains(SEGMENT), "{e}");
        }
        other => panic!("expected a corrupt-frame error at 1896, got {other:?}"),
    }

    let out = replay(dir.path(), FEED, true);
    assert!(out.error.is_none());
    let clean = expected_lines("wal-clean");
    let mut want: Vec<_> = clean[..10].to_vec();
    want.extend_from_slice(&clean[11..]);
    assert_eq!(out.json, want);
    assert_eq!(out.skipped.len(), 1);
    let skip = &out.skipped[0];
    println!("{skip}");
    assert_eq!(
        (skip.from, skip.to, skip.seq_hole),
        (1896, 1936, mdbus_types::SeqRange::new(11, 11))
    );

    let mut wal = Wal::open(dir.path(), FEED, test_options(65536)).unwrap();
    let rec = wal.recovery_report().clone();
    println!("{rec}");
    assert!(rec.has_corruption());
    assert!(
        rec.events
            .iter()
            .any(|e| matches!(e, RecoveryEvent::Corruption { offset: 1896, .. }))
    );
    assert_eq!(wal.next_seq(), 22);
    assert_eq!(wal.segment_first_seq(), 22);
    assert_eq!(
        wal.segment_path(),
        dir.path().join(FEED).join("00000000000000000022.wal")
    );
    assert_eq!(wal.append_offset(), 128);
    wal.append(&record(22, 0)).unwrap();
    drop(wal);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        original,
        "the corrupt segment is left as it is"
    );
    let out = replay(dir.path(), FEED, true);
    let mut seqs: Vec<u64> = (1..=10).collect();
    seqs.extend(12..=22);
    assert_eq!(out.seqs, seqs);
    assert_eq!(verify(dir.path(), FEED).unwrap().exit_code(), 1);
}

#[test]
fn partial_append_verify_replay_and_reopen() {
    let dir = fixture_copy("wal-partial-append");
    let path = dir.path().join(FEED).join(SEGMENT);
    let report = verify(dir.path(), FEED).unwrap();
    println!("{report}");
    assert_eq!(report.exit_code(), 0);
    let out = replay(dir.path(), FEED, false);
    assert!(out.error.is_none());
    assert_eq!(out.json, expected_lines("wal-partial-append"));

    let mut wal = Wal::open(dir.path(), FEED, test_options(65536)).unwrap();
    let rec = wal.recovery_report().clone();
    println!("{rec}");
    assert!(
        matches!(&rec.events[..], [RecoveryEvent::StrayBytesZeroed { offset: 3072, .. }]),
        "{rec}"
    );
    assert_eq!(wal.next_seq(), 22);
    assert_eq!(wal.append_offset(), 3072);
    wal.append(&record(22, 3)).unwrap();
    drop(wal);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[3072..3076].try_into().unwrap()), 32);
    assert!(bytes[3072 + 8 + 32..].iter().all(|&b| b == 0), "stray bytes are gone");
    assert_eq!(replay(dir.path(), FEED, false).seqs, (1..=22).collect::<Vec<_>>());
}

#[test]
fn fixtures_are_not_modified_by_readers() {
    for name in ["wal-clean", "wal-torn-tail", "wal-corrupt-middle", "wal-partial-append"] {
        let path = fixtures().join(name).join(FEED).join(SEGMENT);
        let before = std::fs::read(&path).unwrap();
        let _ = verify(fixtures().join(name), FEED).unwrap();
        let _ = replay(&fixtures().join(name), FEED, true);
        assert_eq!(std::fs::read(&path).unwrap(), before, "{name}");
    }
}

#[test]
fn inspect_and_recovery_point_on_clean_fixture() {
    let infos = mdbus_wal::inspect(fixtures().join("wal-clean"), FEED).unwrap();
    assert_eq!(infos.len(), 1);
    let info = &infos[0];
    println!("{info}");
    assert_eq!((info.first_seq, info.last_seq, info.frames), (1, Some(21), 21));
    assert_eq!((info.bytes_used, info.bytes_allocated), (3072, 65536));
    assert_eq!(info.first_ts_event, Some(1_764_000_000_000_001_000));
    assert_eq!(info.last_ts_event, Some(1_764_000_000_000_021_000));
    assert!(info.has_full_snapshot_set());
    let point = mdbus_wal::recovery_point(fixtures().join("wal-clean"), FEED)
        .unwrap()
        .unwrap();
    assert_eq!((point.start_seq(), point.set.last_seq), (1, 5));
}
