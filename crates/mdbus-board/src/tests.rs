//! The writer and reader together, in one process: values, a full board,
//! the writer lock, repair after a writer's death, bad files.

use std::sync::atomic::Ordering;

use bytemuck::Zeroable;
use mdbus_types::{Book, BookDelta, InstrumentId, Kind, Price, RecordHeader, Side, Tick};

use crate::latch::Latch;
use crate::layout::TICK_CELL;
use crate::{BoardReader, BoardWriter, Error, board_path};

fn tick(symbol: &str, seq: u64) -> Tick {
    let mut t = Tick::zeroed();
    t.header = RecordHeader::new(Kind::Tick, seq as i64);
    t.header.seq = seq;
    t.instrument = InstrumentId::new(symbol).unwrap();
    t.last_px = Price(seq as i64 * 1000);
    t.last_qty = seq as i64;
    t
}

#[test]
fn write_then_read_ticks_and_books() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = BoardWriter::open(dir.path(), "t1", 8).unwrap();
    let reader = BoardReader::open(dir.path(), "t1").unwrap();
    let id = InstrumentId::new("IF2501").unwrap();
    assert!(reader.entry(&id).is_none());
    writer.update_tick(&tick("IF2501", 5)).unwrap();
    assert_eq!(reader.tick(&id), Some(tick("IF2501", 5)));
    assert_eq!(reader.book(&id), None);
    let mut book = Book::new(id);
    let mut d = BookDelta::new(id, Side::Bid, Price(100), 3, 7);
    d.header.seq = 6;
    book.apply_delta(&d).unwrap();
    writer.update_book(&book.to_snapshot()).unwrap();
    assert_eq!(reader.book(&id), Some(book.to_snapshot()));
    writer.update_tick(&tick("IF2501", 8)).unwrap();
    assert_eq!(reader.tick(&id).unwrap().header.seq, 8);
    writer.set_last_seq(8);
    let status = reader.status();
    assert_eq!(
        (status.feed.as_str(), status.count, status.epoch, status.last_seq),
        ("t1", 1, 1, 8)
    );
    assert_eq!(status.writer_pid, std::process::id());
    assert_eq!(reader.instruments(), vec![id]);
}

#[test]
fn full_board_is_a_clear_error_and_existing_entries_still_update() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = BoardWriter::open(dir.path(), "full", 3).unwrap();
    for s in ["A", "B", "C"] {
        writer.update_tick(&tick(s, 1)).unwrap();
    }
    let err = writer.update_tick(&tick("D", 2)).unwrap_err().to_string();
    assert!(
        err.contains("full") && err.contains('D') && err.contains("3 of 3"),
        "{err}"
    );
    writer.update_tick(&tick("B", 3)).unwrap();
    let reader = BoardReader::open(dir.path(), "full").unwrap();
    assert_eq!(reader.tick(&InstrumentId::new("B").unwrap()).unwrap().header.seq, 3);
    assert!(reader.entry(&InstrumentId::new("D").unwrap()).is_none());
}

#[test]
fn second_writer_is_refused_naming_the_pid_and_reopen_bumps_epoch_keeping_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = BoardWriter::open(dir.path(), "lock", 8).unwrap();
    first.update_tick(&tick("X", 4)).unwrap();
    let err = BoardWriter::open(dir.path(), "lock", 8).unwrap_err().to_string();
    assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
    assert!(err.contains("lock"), "{err}");
    drop(first);
    let second = BoardWriter::open(dir.path(), "lock", 16).unwrap();
    assert_eq!(second.epoch(), 2);
    assert_eq!(second.status().capacity, 8, "an existing board keeps its capacity");
    let reader = BoardReader::open(dir.path(), "lock").unwrap();
    assert_eq!(reader.tick(&InstrumentId::new("X").unwrap()).unwrap().header.seq, 4);
}

#[test]
fn a_cell_left_odd_by_a_dead_writer_reads_the_last_complete_value_and_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let id = InstrumentId::new("X").unwrap();
    {
        let mut w = BoardWriter::open(dir.path(), "odd", 4).unwrap();
        w.update_tick(&tick("X", 10)).unwrap();
        // Simulate death between "seq odd" and "copy 0 complete".
        let cell = w.slot_for(&id).unwrap() + TICK_CELL;
        let seq = Latch::<Tick>::at(w.words(), cell).seq();
        seq.store(seq.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        w.words().write_bytes(cell + 8, &[0xAB; 104]);
    }
    let reader = BoardReader::open(dir.path(), "odd").unwrap();
    assert_eq!(reader.tick(&id).unwrap(), tick("X", 10));
    let mut w = BoardWriter::open(dir.path(), "odd", 4).unwrap();
    assert_eq!(w.repaired_cells(), 1);
    assert_eq!(reader.tick(&id).unwrap(), tick("X", 10));
    w.update_tick(&tick("X", 11)).unwrap();
    assert_eq!(reader.tick(&id).unwrap(), tick("X", 11));
}

#[test]
fn a_copy_1_torn_by_a_dead_writer_is_repaired_before_readers_can_see_it() {
    let dir = tempfile::tempdir().unwrap();
    let id = InstrumentId::new("Y").unwrap();
    {
        let mut w = BoardWriter::open(dir.path(), "even", 4).unwrap();
        w.update_tick(&tick("Y", 20)).unwrap();
        // Simulate death after `seq` turned even, while writing copy 1.
        let cell = w.slot_for(&id).unwrap() + TICK_CELL;
        w.words().write_bytes(cell + 8 + 104, &[0xCD; 104]);
    }
    let reader = BoardReader::open(dir.path(), "even").unwrap();
    assert_eq!(reader.tick(&id).unwrap(), tick("Y", 20), "even seq: readers use copy 0");
    let mut w = BoardWriter::open(dir.path(), "even", 4).unwrap();
    assert_eq!(w.repaired_cells(), 1);
    // The next update makes `seq` odd: readers then use copy 1, which
    // must be the last complete value, not the torn bytes.
    let cell = w.slot_for(&id).unwrap() + TICK_CELL;
    let seq = Latch::<Tick>::at(w.words(), cell).seq();
    seq.store(seq.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    assert_eq!(reader.tick(&id).unwrap(), tick("Y", 20));
    seq.store(seq.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
    w.update_tick(&tick("Y", 21)).unwrap();
    assert_eq!(reader.tick(&id).unwrap(), tick("Y", 21));
}

#[test]
fn a_board_sized_but_never_initialized_is_started_afresh() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(board_path(dir.path(), "unborn"), vec![0u8; 8192]).unwrap();
    let mut w = BoardWriter::open(dir.path(), "unborn", 8).unwrap();
    w.update_tick(&tick("Z", 1)).unwrap();
    let reader = BoardReader::open(dir.path(), "unborn").unwrap();
    assert_eq!(reader.status().capacity, 8);
    assert_eq!(reader.tick(&InstrumentId::new("Z").unwrap()).unwrap(), tick("Z", 1));
}

#[test]
fn bad_files_and_names_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        BoardWriter::open(dir.path(), "a/b", 8),
        Err(Error::FeedName { .. })
    ));
    let path = board_path(dir.path(), "junk");
    std::fs::write(&path, vec![7u8; 4096]).unwrap();
    let err = BoardReader::open(dir.path(), "junk").unwrap_err().to_string();
    assert!(err.contains("magic") && err.contains("mdbus.junk.board"), "{err}");
    let err = BoardReader::open(dir.path(), "missing").unwrap_err().to_string();
    assert!(err.contains("mdbus.missing.board"), "{err}");
}
