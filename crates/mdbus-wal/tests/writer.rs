//! Writer behaviour: seq checks, segment rolls, sync policies, the feed
//! lock, seeks through the sparse index, snapshot sets and retention.

mod common;

use std::time::Duration;

use common::{file_maps, flip, record, replay, snapshot_record, test_options};
use mdbus_wal::{
    AppendOutcome, Error, INDEX_STRIDE, ReadFrom, ReadOptions, RecoveryEvent, RetentionPolicy, RetentionTotals,
    SyncPolicy, Wal, WalOptions, WalReader, apply_retention, inspect, recovery_point, verify,
};

#[test]
fn second_writer_is_refused_naming_feed_and_pid() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Wal::open(dir.path(), "locked-feed", test_options(4096)).unwrap();
    let err = Wal::open(dir.path(), "locked-feed", test_options(4096)).unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    assert!(matches!(err, Error::Locked { pid, .. } if pid == std::process::id()));
    assert!(
        msg.contains("locked-feed") && msg.contains(&std::process::id().to_string()),
        "{msg}"
    );
    drop(_first);
    Wal::open(dir.path(), "locked-feed", test_options(4096)).expect("the lock is released on drop");
}

#[test]
fn append_checks_seq_and_bad_feed_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Wal::open(dir.path(), "bad feed", test_options(4096)),
        Err(Error::InvalidFeed { .. })
    ));
    assert!(matches!(
        Wal::open(dir.path(), "f", test_options(100)),
        Err(Error::Options(_))
    ));
    let mut wal = Wal::open(dir.path(), "f", test_options(4096)).unwrap();
    let err = wal.append(&record(2, 0)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SeqOutOfOrder {
                expected: 1,
                got: 2,
                ..
            }
        ),
        "{err}"
    );
    wal.append(&record(1, 0)).unwrap();
    assert!(matches!(
        wal.append(&record(1, 0)),
        Err(Error::SeqOutOfOrder {
            expected: 2,
            got: 1,
            ..
        })
    ));
    let mut unknown = record(2, 0);
    unknown.header_mut().kind = 9;
    assert!(matches!(wal.append(&unknown), Err(Error::Record { .. })));
    assert_eq!(wal.next_seq(), 2);
}

#[test]
fn segments_roll_and_report_the_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    for sync in [
        SyncPolicy::Never,
        SyncPolicy::Interval(Duration::from_millis(1)),
        SyncPolicy::Always,
    ] {
        let feed = format!(
            "roll-{}",
            matches!(sync, SyncPolicy::Never) as u8 + 2 * matches!(sync, SyncPolicy::Always) as u8
        );
        let options = WalOptions::default().segment_bytes(4096).sync(sync);
        let mut wal = Wal::open(dir.path(), &feed, options).unwrap();
        let mut rolls = Vec::new();
        for seq in 1..=300 {
            let sample = record(seq, (seq % 4) as u8);
            let len = sample.record_bytes().unwrap().len();
            // No rate probe in segments this small: `needs_roll` is
            // exactly whether the append rolls.
            let will_roll = wal.needs_roll(len);
            match wal.append(&sample).unwrap() {
                AppendOutcome::Appended => assert!(!will_roll),
                AppendOutcome::NewSegment { first_seq } => {
                    assert!(will_roll);
                    assert_eq!(first_seq, seq);
                    assert_eq!(wal.segment_first_seq(), seq);
                    assert_eq!(wal.append_offset(), 128 + 8 + len as u64);
                    rolls.push(seq);
                }
            }
        }
        wal.sync().unwrap();
        assert!(rolls.len() >= 5, "{rolls:?}");
        drop(wal);
        let names: Vec<_> = std::fs::read_dir(dir.path().join(&feed))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".wal"))
            .collect();
        assert_eq!(
            names.len(),
            rolls.len() + 1,
            "no preallocated file left behind: {names:?}"
        );
        let out = replay(dir.path(), &feed, false);
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.seqs, (1..=300).collect::<Vec<_>>());
        for (seq, bytes) in out.seqs.iter().zip(&out.bytes) {
            assert_eq!(&bytes[..], record(*seq, (*seq % 4) as u8).record_bytes().unwrap());
        }
        let report = verify(dir.path(), &feed).unwrap();
        assert_eq!(report.exit_code(), 0, "{report}");
        let mut wal = Wal::open(dir.path(), &feed, test_options(4096)).unwrap();
        assert_eq!(wal.next_seq(), 301);
        wal.append(&record(301, 1)).unwrap();
    }
}

#[test]
fn explicit_roll_puts_the_snapshot_set_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), "snap", test_options(8192)).unwrap();
    assert_eq!(
        wal.roll().unwrap(),
        dir.path().join("snap/00000000000000000001.wal"),
        "empty segment: no-op"
    );
    let mut seq = 1;
    for round in 0..3 {
        if round > 0 {
            wal.roll().unwrap();
        }
        assert_eq!(wal.segment_first_seq(), seq);
        for i in 0..3 {
            wal.append(&snapshot_record(seq, i == 2)).unwrap();
            seq += 1;
        }
        for _ in 0..10 {
            wal.append(&record(seq, 0)).unwrap();
            seq += 1;
        }
    }
    // A last segment without a set.
    wal.roll().unwrap();
    wal.append(&record(seq, 2)).unwrap();
    drop(wal);
    let infos = inspect(dir.path(), "snap").unwrap();
    assert_eq!(infos.len(), 4);
    assert!(infos[..3].iter().all(|i| i.has_full_snapshot_set()));
    assert!(!infos[3].has_full_snapshot_set());
    let point = recovery_point(dir.path(), "snap").unwrap().unwrap();
    assert_eq!(point.segment_first_seq, 27);
    assert_eq!((point.start_seq(), point.set.last_seq), (27, 29));
    let mut reader = WalReader::open(
        dir.path(),
        "snap",
        ReadOptions {
            from: ReadFrom::RecoveryPoint,
            skip_corrupt: false,
        },
    )
    .unwrap();
    assert_eq!(reader.next_record().unwrap().unwrap().seq(), 27);
}

#[test]
fn the_writer_indexes_every_64th_frame_with_its_seq_time_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), "index", test_options(1 << 20)).unwrap();
    let mut offsets = Vec::new();
    for seq in 1..=1000 {
        offsets.push(wal.append_offset());
        wal.append(&record(seq, (seq % 4) as u8)).unwrap();
    }
    // `ts_event` is read from the record only for the frames kept.
    let entries = wal.index().entries();
    assert_eq!(entries.len(), 1000usize.div_ceil(INDEX_STRIDE as usize));
    for (k, entry) in entries.iter().enumerate() {
        let seq = 1 + k as u64 * INDEX_STRIDE;
        assert_eq!(entry.seq, seq);
        assert_eq!(entry.offset, offsets[seq as usize - 1]);
        assert_eq!(entry.ts_event, 1_764_000_000_000_000_000 + seq as i64 * 1000);
    }
}

#[test]
fn seek_by_seq_and_time_through_the_sparse_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), "seek", test_options(16384)).unwrap();
    for seq in 1..=2000 {
        wal.append(&record(seq, (seq % 4) as u8)).unwrap();
    }
    assert!(!wal.index().entries().is_empty());
    drop(wal);
    for target in [1u64, 2, 63, 64, 65, 129, 777, 1999, 2000] {
        let mut r = WalReader::open(
            dir.path(),
            "seek",
            ReadOptions {
                from: ReadFrom::Seq(target),
                skip_corrupt: false,
            },
        )
        .unwrap();
        assert_eq!(r.next_record().unwrap().unwrap().seq(), target);
        let ts = 1_764_000_000_000_000_000 + target as i64 * 1000;
        let mut r = WalReader::open(
            dir.path(),
            "seek",
            ReadOptions {
                from: ReadFrom::Time(ts - 500),
                skip_corrupt: false,
            },
        )
        .unwrap();
        assert_eq!(r.next_record().unwrap().unwrap().seq(), target, "time seek to {target}");
    }
    let mut r = WalReader::open(
        dir.path(),
        "seek",
        ReadOptions {
            from: ReadFrom::Seq(2001),
            skip_corrupt: false,
        },
    )
    .unwrap();
    assert!(r.next_record().unwrap().is_none());
}

#[test]
fn retention_by_size_and_age_keeps_the_newest_snapshot_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), "ret", test_options(4096)).unwrap();
    let mut seq = 1;
    // 6 segments; a snapshot set in segment 3 (index 2) only.
    for segment in 0..6 {
        if segment > 0 {
            wal.roll().unwrap();
        }
        if segment == 2 {
            wal.append(&snapshot_record(seq, false)).unwrap();
            wal.append(&snapshot_record(seq + 1, true)).unwrap();
            seq += 2;
        }
        for _ in 0..5 {
            wal.append(&record(seq, 0)).unwrap();
            seq += 1;
        }
    }
    drop(wal);
    let count = || inspect(dir.path(), "ret").unwrap().len();
    assert_eq!(count(), 6);
    // Nothing to do.
    let report = apply_retention(dir.path(), "ret", &RetentionPolicy::default()).unwrap();
    assert!(report.deleted.is_empty());
    // Size: 6 x 4096 > 4096, but the set's segment and newer stay.
    let report = apply_retention(
        dir.path(),
        "ret",
        &RetentionPolicy {
            max_bytes: Some(4096),
            max_age: None,
        },
    )
    .unwrap();
    assert_eq!(report.deleted.len(), 2);
    assert_eq!(report.kept, 4);
    assert!(report.protected_from.unwrap().ends_with("00000000000000000011.wal"));
    assert_eq!(inspect(dir.path(), "ret").unwrap()[0].first_seq, 11);
    // Replay still works from the new oldest segment.
    let out = replay(dir.path(), "ret", false);
    assert!(out.error.is_none());
    assert_eq!(out.seqs.first(), Some(&11));

    // Age: everything is older than zero seconds; the protected ones stay.
    let dir2 = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir2.path(), "age", test_options(4096)).unwrap();
    for seq in 1..=200 {
        wal.append(&record(seq, 0)).unwrap();
    }
    drop(wal);
    let n = inspect(dir2.path(), "age").unwrap().len();
    assert!(n > 2);
    let keep_all = RetentionPolicy {
        max_bytes: None,
        max_age: Some(Duration::from_secs(3600)),
    };
    assert!(
        apply_retention(dir2.path(), "age", &keep_all)
            .unwrap()
            .deleted
            .is_empty()
    );
    let report = apply_retention(
        dir2.path(),
        "age",
        &RetentionPolicy {
            max_bytes: None,
            max_age: Some(Duration::ZERO),
        },
    )
    .unwrap();
    // No snapshot set anywhere: only the newest segment is protected.
    assert_eq!(report.deleted.len(), n - 1);
    assert_eq!(inspect(dir2.path(), "age").unwrap().len(), 1);
    let mut wal = Wal::open(dir2.path(), "age", test_options(4096)).unwrap();
    assert_eq!(wal.next_seq(), 201);
    wal.append(&record(201, 0)).unwrap();
}

/// Three segments of 4 KiB, each a tick first; in segment `set_in` a
/// snapshot set follows that tick, whose body then gets a flipped bit: the
/// set lies behind a bad frame, where a full scan resyncs and finds it.
/// Segment 0 opens with a set (a lone closing heartbeat) when
/// `set_at_start`. The segments' paths, oldest first.
fn wal_with_set_behind(
    dir: &std::path::Path,
    feed: &str,
    set_at_start: bool,
    set_in: usize,
) -> Vec<std::path::PathBuf> {
    let mut wal = Wal::open(dir, feed, test_options(4096)).unwrap();
    let mut seq = 1;
    let mut paths = Vec::new();
    for segment in 0..3 {
        if segment > 0 {
            wal.roll().unwrap();
        }
        paths.push(wal.segment_path().to_path_buf());
        if segment == 0 && set_at_start {
            wal.append(&snapshot_record(seq, true)).unwrap();
            seq += 1;
        }
        wal.append(&record(seq, 0)).unwrap();
        seq += 1;
        if segment == set_in {
            wal.append(&snapshot_record(seq, false)).unwrap();
            wal.append(&snapshot_record(seq + 1, true)).unwrap();
            seq += 2;
        }
        for _ in 0..3 {
            wal.append(&record(seq, 0)).unwrap();
            seq += 1;
        }
    }
    drop(wal);
    // The first record of `set_in` (a tick at offset 128): a bit of its
    // body, past the frame and record headers.
    flip(&paths[set_in], 128 + 8 + 40);
    paths
}

#[test]
fn retention_reads_segments_from_their_start_and_never_deletes_a_set_a_full_scan_finds() {
    let tiny = RetentionPolicy {
        max_bytes: Some(1),
        max_age: None,
    };
    // No segment opens with a set; segment 1's set lies behind a bad
    // frame. Retention falls back to the full scan, which finds it: segment
    // 0 goes, segment 1 (where recovery starts) stays.
    let dir = tempfile::tempdir().unwrap();
    let paths = wal_with_set_behind(dir.path(), "behind", false, 1);
    let point = recovery_point(dir.path(), "behind").unwrap().unwrap();
    assert_eq!(point.path, paths[1]);
    let report = apply_retention(dir.path(), "behind", &tiny).unwrap();
    assert_eq!(report.deleted, vec![paths[0].clone()]);
    assert_eq!(report.protected_from.as_ref(), Some(&paths[1]));
    assert_eq!(recovery_point(dir.path(), "behind").unwrap().unwrap().path, paths[1]);

    // Segment 0 opens with a set, and segment 1's lies behind a bad frame:
    // retention stops at the first segment that opens with one (it never
    // reads a segment past its live end or a bad frame) and keeps more
    // than the full scan would: nothing is deleted, the newest set stays.
    let dir = tempfile::tempdir().unwrap();
    let paths = wal_with_set_behind(dir.path(), "opens", true, 1);
    assert_eq!(recovery_point(dir.path(), "opens").unwrap().unwrap().path, paths[1]);
    let report = apply_retention(dir.path(), "opens", &tiny).unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(report.protected_from.as_ref(), Some(&paths[0]));
    assert_eq!(inspect(dir.path(), "opens").unwrap().len(), 3);

    // The newest segment holds flagged snapshots whose closing heartbeat is
    // not written yet (a publisher partway through its set): no set there.
    // Segment 0's set is the newest full one, and it stays.
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), "partway", test_options(4096)).unwrap();
    let mut paths = vec![wal.segment_path().to_path_buf()];
    wal.append(&snapshot_record(1, true)).unwrap();
    wal.append(&record(2, 0)).unwrap();
    wal.roll().unwrap();
    paths.push(wal.segment_path().to_path_buf());
    wal.append(&record(3, 0)).unwrap();
    wal.roll().unwrap();
    paths.push(wal.segment_path().to_path_buf());
    wal.append(&snapshot_record(4, false)).unwrap();
    wal.append(&snapshot_record(5, false)).unwrap();
    drop(wal);
    assert_eq!(recovery_point(dir.path(), "partway").unwrap().unwrap().path, paths[0]);
    let report = apply_retention(dir.path(), "partway", &tiny).unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(report.protected_from.as_ref(), Some(&paths[0]));
}

#[test]
fn reader_of_a_missing_feed_waits_for_the_first_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut reader = WalReader::open(dir.path(), "later", ReadOptions::default()).unwrap();
    assert!(reader.next_record().unwrap().is_none());
    let mut wal = Wal::open(dir.path(), "later", test_options(4096)).unwrap();
    assert!(reader.next_record().unwrap().is_none());
    wal.append(&record(1, 0)).unwrap();
    assert_eq!(reader.next_record().unwrap().unwrap().seq(), 1);
    assert!(matches!(verify(dir.path(), "nothing"), Err(Error::NoSegments { .. })));
}
#[test]
fn open_restores_the_all_zero_header_of_the_newest_segment() {
    use std::os::unix::fs::FileExt;
    for zeroed in [128usize, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions::default()
            .segment_bytes(8192)
            .sync(SyncPolicy::Interval(Duration::from_millis(1)));
        let mut wal = Wal::open(dir.path(), "restore", options).unwrap();
        let mut seq = 1;
        while wal.segment_first_seq() == 1 {
            wal.append(&record(seq, 1)).unwrap();
            seq += 1;
        }
        let second = wal.segment_first_seq();
        for _ in 0..3 {
            wal.append(&record(seq, 1)).unwrap();
            seq += 1;
        }
        let path = wal.segment_path().to_path_buf();
        wal.sync().unwrap();
        drop(wal);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&vec![0u8; zeroed], 0).unwrap();
        drop(file);

        let mut wal = Wal::open(dir.path(), "restore", test_options(8192)).unwrap();
        let events = &wal.recovery_report().events;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, RecoveryEvent::HeaderRestored { first_seq, .. } if *first_seq == second)),
            "{}",
            wal.recovery_report()
        );
        // The frames in the zeroed bytes are gone (never synced, in the
        // case this models); the others are kept.
        let expected_next = if zeroed == 128 { seq } else { second };
        assert_eq!(wal.next_seq(), expected_next);
        wal.append(&record(expected_next, 2)).unwrap();
        drop(wal);
        assert_eq!(verify(dir.path(), "restore").unwrap().exit_code(), 0);
        let out = replay(dir.path(), "restore", false);
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.seqs, (1..=expected_next).collect::<Vec<_>>());
    }

    // A header that is not all zero is not guessed at: left as it is
    // (its frame stays readable with skip-corrupt), appends go on in a new
    // segment after its frames.
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), "bad", test_options(8192)).unwrap();
    wal.append(&record(1, 1)).unwrap();
    let path = wal.segment_path().to_path_buf();
    drop(wal);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0u8; 8], 0).unwrap();
    drop(file);
    let wal = Wal::open(dir.path(), "bad", test_options(8192)).unwrap();
    let events = &wal.recovery_report().events;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RecoveryEvent::BadHeader { path: p, .. } if *p == path)),
        "{}",
        wal.recovery_report()
    );
    assert_eq!((wal.next_seq(), wal.segment_first_seq()), (2, 2));
    drop(wal);
    assert_eq!(
        std::fs::read(&path).unwrap()[..8],
        [0u8; 8],
        "the header was not rewritten"
    );
    assert_eq!(replay(dir.path(), "bad", true).seqs, vec![1]);
}

/// `WalOptions::retention`: the writer deletes old segments in a thread of
/// its own at each roll, down to the size budget, never the newest; what
/// is left reads dense from the first kept segment.
#[test]
fn background_retention_keeps_the_wal_within_its_size_budget() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 4 * 4096;
    let options = test_options(4096).retention(RetentionPolicy {
        max_bytes: Some(budget),
        max_age: None,
    });
    let mut wal = Wal::open(dir.path(), "retained", options).unwrap();
    let mut seq = 1;
    while wal.segment_first_seq() < 300 {
        wal.append(&record(seq, (seq % 3) as u8)).unwrap();
        seq += 1;
    }
    // A roll during a pass makes that pass go again: once idle, the last
    // roll's state is within the budget.
    let totals = retention_idle(&wal);
    assert!(totals.deleted_segments > 0 && totals.last_error.is_none(), "{totals:?}");
    let kept = segment_bytes(&dir.path().join("retained"));
    assert!(kept <= budget, "{kept} bytes on disk, budget {budget}");
    drop(wal);
    let out = replay(dir.path(), "retained", false);
    assert!(out.error.is_none(), "{:?}", out.error);
    let first = out.seqs[0];
    assert!(first > 1, "old segments were deleted");
    assert_eq!(out.seqs, (first..seq).collect::<Vec<_>>());
}

/// The pass after a roll can run before the new segment's snapshot set is
/// written (the publisher writes it after the roll), and so keep the old
/// set's segment; closing the writer then runs one more pass, so that the
/// WAL it leaves is within the budget. Deterministic: the roll's pass is
/// waited for before the set is written.
#[test]
fn closing_the_writer_applies_retention_to_the_last_snapshot_set() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 3 * 4096;
    let options = test_options(4096).retention(RetentionPolicy {
        max_bytes: Some(budget),
        max_age: None,
    });
    let mut wal = Wal::open(dir.path(), "closed", options).unwrap();
    let mut seq = 1;
    // Four segments; a set in the first one and, after the last roll, in
    // the fourth.
    for segment in 0..4 {
        if segment > 0 {
            wal.roll().unwrap();
        }
        if segment == 3 {
            // The last roll's pass ran on a segment without a set yet.
            retention_idle(&wal);
            assert_eq!(inspect(dir.path(), "closed").unwrap().len(), 4, "nothing deleted yet");
        }
        if segment == 0 || segment == 3 {
            wal.append(&snapshot_record(seq, false)).unwrap();
            wal.append(&snapshot_record(seq + 1, true)).unwrap();
            seq += 2;
        }
        for _ in 0..5 {
            wal.append(&record(seq, 0)).unwrap();
            seq += 1;
        }
    }
    drop(wal);
    let infos = inspect(dir.path(), "closed").unwrap();
    let sets: Vec<bool> = infos.iter().map(|i| i.has_full_snapshot_set()).collect();
    let kept = segment_bytes(&dir.path().join("closed"));
    assert!(kept <= budget, "{kept} bytes kept ({sets:?}), budget {budget}");
    assert_eq!(sets, [false, false, true], "the newest set's segment is kept");
}

/// Waits (under a watchdog) until no retention pass runs; its totals.
fn retention_idle(wal: &Wal) -> RetentionTotals {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (totals, running) = wal.retention_totals();
        if !running {
            return totals;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "watchdog: retention still running"
        );
        std::thread::yield_now();
    }
}

/// The bytes of a feed folder's segment files.
fn segment_bytes(feed_dir: &std::path::Path) -> u64 {
    std::fs::read_dir(feed_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn skip_to_starts_a_fresh_wal_at_a_later_seq_and_leaves_a_reported_hole() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), "replica", test_options(4096)).unwrap();
    // A replica that starts at seq 500: no empty segment at seq 1 is left.
    wal.skip_to(500).unwrap();
    assert_eq!(wal.next_seq(), 500);
    assert!(wal.segment_path().ends_with("00000000000000000500.wal"));
    for seq in 500..503 {
        wal.append(&record(seq, 0)).unwrap();
    }
    assert!(matches!(
        wal.skip_to(502),
        Err(Error::SeqOutOfOrder {
            expected: 503,
            got: 502,
            ..
        })
    ));
    wal.skip_to(503).expect("the next seq: a no-op");
    // The source lost 503..=509: the WAL continues at 510 in a new segment.
    wal.skip_to(510).unwrap();
    wal.append(&record(510, 0)).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path().join("replica"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let plain = replay(dir.path(), "replica", false);
    assert_eq!(plain.seqs, vec![500, 501, 502]);
    assert!(plain.error.is_some(), "a plain reader stops at the hole");
    let skipping = replay(dir.path(), "replica", true);
    assert_eq!(skipping.seqs, vec![500, 501, 502, 510]);
    let hole = skipping.skipped[0].seq_hole.unwrap();
    assert_eq!((hole.from, hole.to), (503, 509));
}

/// `bytes_written` counts what this writer wrote, across rolls, and not
/// what a reopened WAL already held; `sync_stats` counts the sync
/// thread's rounds (Interval only).
#[test]
fn bytes_written_and_sync_stats_count_this_writer() {
    let dir = tempfile::tempdir().unwrap();
    let options = test_options(4096).sync(SyncPolicy::Interval(Duration::from_millis(1)));
    let mut wal = Wal::open(dir.path(), "metrics", options.clone()).unwrap();
    let start = wal.bytes_written();
    let stats = wal.sync_stats().expect("Interval has a sync thread");
    let mut rolls = 0;
    for seq in 1..=200 {
        if let AppendOutcome::NewSegment { .. } = wal.append(&record(seq, 0)).unwrap() {
            rolls += 1;
        }
    }
    assert!(rolls >= 2, "the test needs rolls: {rolls}");
    let on_disk: u64 = inspect(dir.path(), "metrics")
        .unwrap()
        .iter()
        .map(|s| s.bytes_used)
        .sum();
    assert!(start > 0, "a new WAL: the first segment's header is this writer's");
    assert_eq!(wal.bytes_written(), on_disk, "every segment's bytes, headers included");
    wal.sync().unwrap();
    assert!(stats.snapshot().rounds >= 1, "Wal::sync's flush is a counted round");
    drop(wal);
    let mut wal = Wal::open(dir.path(), "metrics", options).unwrap();
    assert_eq!(wal.bytes_written(), 0, "recovered bytes are not this writer's");
    let before = wal.append_offset();
    wal.append(&record(201, 0)).unwrap();
    assert_eq!(wal.bytes_written(), wal.append_offset() - before);
    drop(wal);
    let never = Wal::open(dir.path(), "metrics", test_options(4096).sync(SyncPolicy::Never)).unwrap();
    assert!(never.sync_stats().is_none());
}

/// The `VmFlags` of every map of this process whose file lies under `dir`,
/// with the file's path.
fn mappings_under(dir: &std::path::Path) -> Vec<(String, String)> {
    file_maps()
        .into_iter()
        .filter(|(path, _)| path.starts_with(dir))
        .map(|(path, lines)| {
            let flags = lines
                .iter()
                .find_map(|l| l.strip_prefix("VmFlags:"))
                .unwrap_or_default();
            (path.display().to_string(), flags.trim().to_string())
        })
        .collect()
}

#[test]
fn the_writers_segment_maps_fault_single_pages() {
    // Large page-cache folios would make every sync round write back (and
    // write-protect) the 2 MiB around the writer's position: the writer's
    // maps ask for no readahead (MADV_RANDOM, "rr" in VmFlags), both for a
    // segment it creates (and the one it prepares next) and for the newest
    // segment it recovers.
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions::default()
        .segment_bytes(1 << 20)
        .sync(SyncPolicy::Never)
        .preallocate_next(true);
    let check = |wal: &mut Wal, when: &str| {
        wal.wait_prepared();
        let maps = mappings_under(dir.path());
        assert!(
            maps.len() >= 2,
            "{when}: the live and the prepared segment are mapped: {maps:?}"
        );
        for (path, flags) in &maps {
            assert!(
                flags.split_whitespace().any(|f| f == "rr"),
                "{when}: {path} maps with {flags}"
            );
        }
    };
    let mut wal = Wal::open(dir.path(), "folios", options.clone()).unwrap();
    for seq in 1..=100 {
        wal.append(&record(seq, 0)).unwrap();
    }
    check(&mut wal, "created");
    drop(wal);
    let mut wal = Wal::open(dir.path(), "folios", options).unwrap();
    assert_eq!(wal.next_seq(), 101);
    check(&mut wal, "recovered");
}
