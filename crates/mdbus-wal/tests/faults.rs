//! Fault tests: a newest segment cut at every byte of its last two frames
//! (zeroed, as a torn mmap write leaves it, or truncated), and every byte
//! of a frame flipped.

mod common;

use std::path::Path;

use common::{copy_dir, record, replay, test_options};
use mdbus_wal::{ProblemKind, Wal, verify};
use proptest::prelude::*;

const SEG: u64 = 4096;

/// Writes `kinds` as seq 1.. and returns (frame offsets, lens) of the
/// newest segment.
fn write_feed(dir: &Path, kinds: &[u8]) -> Vec<(usize, usize)> {
    let mut wal = Wal::open(dir, "p", test_options(SEG)).unwrap();
    let mut frames = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let sample = record(i as u64 + 1, *kind);
        let len = sample.record_bytes().unwrap().len();
        if let mdbus_wal::AppendOutcome::NewSegment { .. } = wal.append(&sample).unwrap() {
            frames.clear();
        }
        frames.push((wal.append_offset() as usize - 8 - len, len));
    }
    frames
}

fn newest_segment(feed_dir: &Path) -> std::path::PathBuf {
    let mut names: Vec<_> = std::fs::read_dir(feed_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    names.sort();
    names.pop().unwrap()
}

fn check_cut(original: &Path, work: &Path, kinds: &[u8], frames: &[(usize, usize)], cut: usize, truncate: bool) {
    let _ = std::fs::remove_dir_all(work);
    copy_dir(original, work);
    let segment = newest_segment(&work.join("p"));
    let mut bytes = std::fs::read(&segment).unwrap();
    let before = bytes.clone();
    if truncate {
        bytes.truncate(cut);
    } else {
        bytes[cut..].iter_mut().for_each(|b| *b = 0);
    }
    std::fs::write(&segment, &bytes).unwrap();
    // Frames before the last two stay; of the last two, those the cut did
    // not change (zeroing bytes that were zero changes nothing).
    let lost = frames
        .iter()
        .filter(|(off, len)| {
            let end = off + 8 + len;
            if truncate {
                off + 8 + ((len + 7) & !7) > cut
            } else {
                end > cut && before[cut..end].iter().any(|&b| b != 0)
            }
        })
        .count() as u64;
    let total = kinds.len() as u64;
    let kept = total - lost;

    let out = replay(work, "p", true);
    assert_eq!(
        out.seqs,
        (1..=kept).collect::<Vec<_>>(),
        "replay after cut at {cut} (truncate {truncate})"
    );
    for (seq, bytes) in out.seqs.iter().zip(&out.bytes) {
        assert_eq!(
            &bytes[..],
            record(*seq, kinds[*seq as usize - 1]).record_bytes().unwrap()
        );
    }
    let report = verify(work, "p").unwrap();
    assert!(
        report.exit_code() == 0 || report.exit_code() == 3,
        "cut at {cut}: {report}"
    );

    let mut wal = Wal::open(work, "p", test_options(SEG)).unwrap();
    assert_eq!(wal.next_seq(), kept + 1, "cut at {cut}: {}", wal.recovery_report());
    wal.append(&record(kept + 1, 3)).unwrap();
    drop(wal);
    let out = replay(work, "p", false);
    assert!(out.error.is_none(), "cut at {cut}: {:?}", out.error);
    assert_eq!(out.seqs, (1..=kept + 1).collect::<Vec<_>>());
    assert_eq!(verify(work, "p").unwrap().exit_code(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn cut_newest_segment_at_every_byte_of_its_last_two_frames(kinds in proptest::collection::vec(0u8..4, 2..40)) {
        let root = tempfile::tempdir().unwrap();
        let original = root.path().join("original");
        let frames = write_feed(&original, &kinds);
        let last_two = &frames[frames.len().saturating_sub(2)..];
        let from = last_two[0].0;
        let to = last_two.last().map(|(off, len)| off + 8 + len).unwrap();
        let work = root.path().join("work");
        for cut in from..=to {
            check_cut(&original, &work, &kinds, last_two, cut, false);
        }
        for cut in (from..=to).step_by(8) {
            check_cut(&original, &work, &kinds, last_two, cut, true);
        }
    }
}

#[test]
fn every_flipped_byte_of_a_frame_is_named_by_verify_and_never_replayed() {
    let root = tempfile::tempdir().unwrap();
    let original = root.path().join("original");
    let kinds: Vec<u8> = (0..12).map(|i| (i % 4) as u8).collect();
    let frames = write_feed(&original, &kinds);
    assert_eq!(frames.len(), 12, "one segment");
    let work = root.path().join("work");
    // A middle frame (corruption: valid frames follow) and the last frame
    // (torn tail).
    for (index, exit) in [(5usize, 1), (11, 3)] {
        let (off, len) = frames[index];
        for byte in off..off + 8 + len {
            let _ = std::fs::remove_dir_all(&work);
            copy_dir(&original, &work);
            let segment = newest_segment(&work.join("p"));
            let mut bytes = std::fs::read(&segment).unwrap();
            bytes[byte] ^= 0x5a;
            std::fs::write(&segment, &bytes).unwrap();

            let report = verify(&work, "p").unwrap();
            assert_eq!(report.exit_code(), exit, "flip at {byte}: {report}");
            let problem = &report.problems[0];
            assert_eq!(problem.offset, off as u64, "flip at {byte}: {report}");
            assert_eq!(problem.path, segment);
            let kind = if exit == 1 {
                ProblemKind::Corruption
            } else {
                ProblemKind::TornTail
            };
            assert_eq!(problem.kind, kind);
            for skip in [false, true] {
                let out = replay(&work, "p", skip);
                assert!(
                    !out.seqs.contains(&(index as u64 + 1)),
                    "flip at {byte} replayed the bad frame"
                );
                for (seq, got) in out.seqs.iter().zip(&out.bytes) {
                    assert_eq!(&got[..], record(*seq, kinds[*seq as usize - 1]).record_bytes().unwrap());
                }
                let want = if skip { 11 } else { index };
                assert_eq!(out.seqs.len(), want, "flip at {byte}, skip {skip}");
            }
        }
    }
}

/// One flipped byte in each field of the header of the oldest, a middle
/// and the newest segment: verify names it; a strict reader stops there
/// with an error naming the file (every record before it read); a
/// skip-corrupt reader reports the header and still yields every record
/// of every segment (the frames carry their own crc, the name the first
/// seq); the writer opens (a bad newest header: appends go on in a new
/// segment after its frames) and the feed continues dense.
#[test]
fn a_flipped_header_byte_hides_no_record_and_takes_no_feed_down() {
    let original = tempfile::tempdir().unwrap();
    let kinds: Vec<u8> = (0..60u8).map(|i| i % 4).collect();
    write_feed(original.path(), &kinds);
    let mut segments: Vec<_> = std::fs::read_dir(original.path().join("p"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".wal"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{} segments", segments.len());
    let clean = replay(original.path(), "p", false);
    assert!(clean.error.is_none());
    // (offset of the flipped byte, what the report names)
    let fields = [
        (3, "magic"),
        (9, "version"),
        (13, "header_len"),
        (17, "first_seq"),
        (25, "created_ns"),
        (33, "segment_bytes"),
        (41, "feed"),
        (100, "reserved"),
        (126, "crc32c"),
    ];
    let which = [0, segments.len() / 2, segments.len() - 1];
    for (at, field) in fields {
        for &k in &which {
            let work = tempfile::tempdir().unwrap();
            copy_dir(original.path(), work.path());
            let segment = work.path().join("p").join(&segments[k]);
            let mut bytes = std::fs::read(&segment).unwrap();
            bytes[at] ^= 0x10;
            std::fs::write(&segment, &bytes).unwrap();
            let case = format!("byte {at} ({field}) of segment {k}");

            let report = verify(work.path(), "p").unwrap();
            assert_eq!(report.exit_code(), 1, "{case}: {report}");
            assert!(report.to_string().contains(field), "{case}: {report}");
            assert_eq!(
                report.records,
                clean.seqs.len() as u64,
                "{case}: every frame still checked"
            );

            let strict = replay(work.path(), "p", false);
            let error = strict.error.as_ref().map(ToString::to_string).unwrap_or_default();
            assert!(error.contains(&*segments[k].to_string_lossy()), "{case}: {error}");
            assert_eq!(strict.seqs[..], clean.seqs[..strict.seqs.len()], "{case}");

            let skipping = replay(work.path(), "p", true);
            assert!(skipping.error.is_none(), "{case}: {:?}", skipping.error);
            assert_eq!(skipping.seqs, clean.seqs, "{case}: every record read");
            assert_eq!(skipping.bytes, clean.bytes, "{case}");
            let [skipped] = &skipping.skipped[..] else {
                panic!("{case}: {:?}", skipping.skipped)
            };
            assert_eq!((skipped.from, skipped.seq_hole), (0, None), "{case}");
            assert!(skipped.reason.contains(field), "{case}: {}", skipped.reason);

            let mut wal = Wal::open(work.path(), "p", test_options(SEG)).unwrap_or_else(|e| panic!("{case}: {e}"));
            let events = wal
                .recovery_report()
                .events
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>();
            if k == segments.len() - 1 {
                assert!(
                    events.iter().any(|e| e.contains("bad segment header")),
                    "{case}: {events:?}"
                );
            }
            let next = *clean.seqs.last().unwrap() + 1;
            assert_eq!(wal.next_seq(), next, "{case}");
            wal.append(&record(next, 0)).unwrap();
            drop(wal);
            let after = replay(work.path(), "p", true);
            assert_eq!(
                after.seqs,
                (1..=next).collect::<Vec<_>>(),
                "{case}: dense after the restart"
            );
        }
    }
}

/// The newest segment with a damaged header and no valid frame holds
/// nothing readable: the writer renames it aside and starts a fresh one
/// under its name.
#[test]
fn an_empty_newest_segment_with_a_bad_header_is_set_aside() {
    let root = tempfile::tempdir().unwrap();
    write_feed(root.path(), &[0, 1, 2]);
    let mut wal = Wal::open(root.path(), "p", test_options(SEG)).unwrap();
    wal.roll().unwrap();
    let live = wal.recovery_report().live_segment.clone();
    drop(wal);
    let newest = newest_segment(&root.path().join("p"));
    assert_ne!(newest, live, "the roll made a new segment");
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&newest, &bytes).unwrap();
    let wal = Wal::open(root.path(), "p", test_options(SEG)).unwrap();
    let events: Vec<String> = wal.recovery_report().events.iter().map(ToString::to_string).collect();
    assert!(events.iter().any(|e| e.contains("renamed to")), "{events:?}");
    assert_eq!(wal.next_seq(), 4);
    let mut aside = newest.as_os_str().to_owned();
    aside.push(".bad-header");
    assert_eq!(
        std::fs::read(std::path::PathBuf::from(aside)).unwrap(),
        bytes,
        "kept as it was"
    );
    drop(wal);
    assert_eq!(replay(root.path(), "p", false).seqs, vec![1, 2, 3]);
}
