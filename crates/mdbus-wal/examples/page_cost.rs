//! What a page of a WAL segment costs to get into the page cache, mapped
//! for writing, written and synced, by how the segment's zeros got there
//! (the measurement behind `WalOptions::large_folios`).
//!
//! `cargo run --release -p mdbus-wal --example page_cost -- [ROUNDS] [DIR]`
//! (defaults 3 and a temporary folder; give a folder on the filesystem the
//! WAL uses). Each round prepares a 64 MiB file as the WAL does
//! (`posix_fallocate`, a shared map with `MADV_RANDOM`), then times, per 4
//! KiB page and on the wall clock: writing the zeros with `pwrite` in
//! pieces of 16, 64 and 256 KiB (none for the fresh file, as the WAL
//! without `large_folios`), faulting the map in (`MADV_POPULATE_WRITE`),
//! copying data into it, syncing it (`msync`) and unmapping it. Run it on
//! one CPU (`taskset -c 0`) to see what the WAL's threads cost a pinned
//! publisher's core. Asserts nothing.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use memmap2::{Advice, MmapOptions, MmapRaw};

const LEN: usize = 64 << 20;
const PAGE: usize = 4096;

fn per_page(since: Instant) -> u128 {
    since.elapsed().as_nanos() / (LEN / PAGE) as u128
}

/// A fresh, fallocated file of `LEN` bytes, as a WAL segment's
/// preparation makes one.
fn segment(path: &Path) -> File {
    let _ = std::fs::remove_file(path);
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("create");
    // SAFETY: posix_fallocate on a valid descriptor owned by `file`; no
    // memory is passed.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, LEN as libc::off_t) };
    if rc != 0 {
        file.set_len(LEN as u64).expect("set_len");
    }
    file
}

/// Writes the zeros in `piece`-sized `pwrite`s; the time per page.
fn fill(file: &File, piece: usize) -> u128 {
    let zeros = vec![0u8; piece];
    let started = Instant::now();
    for off in (0..LEN).step_by(piece) {
        file.write_all_at(&zeros, off as u64).expect("pwrite");
    }
    per_page(started)
}

/// Maps `file` as the WAL's writer does, faults it in, copies data in,
/// syncs and unmaps it: the time per page of each step.
fn map_write_sync(file: &File) -> [u128; 4] {
    let map: MmapRaw = MmapOptions::new().len(LEN).map_raw(file).expect("map");
    let _ = map.advise(Advice::Random);
    let started = Instant::now();
    map.advise_range(Advice::PopulateWrite, 0, LEN)
        .expect("MADV_POPULATE_WRITE (Linux 5.14+)");
    let populate = per_page(started);
    let data = vec![7u8; 64 << 10];
    let started = Instant::now();
    for off in (0..LEN).step_by(data.len()) {
        // SAFETY: `off + data.len() <= LEN`, inside the live map, which no
        // one else writes or reads while this runs.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), map.as_mut_ptr().add(off), data.len()) };
    }
    let copy = per_page(started);
    let started = Instant::now();
    map.flush_range(0, LEN).expect("msync");
    let sync = per_page(started);
    let started = Instant::now();
    drop(map);
    [populate, copy, sync, per_page(started)]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(3, |r| r.parse().expect("ROUNDS: a number"));
    let temp = match args.next() {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("temporary folder");
    let path = temp.path().join("segment");
    println!("ns per 4 KiB page, wall clock, 64 MiB segments, {rounds} rounds");
    println!("| zeros | pwrite | fault in | copy | msync | unmap | sum |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for _ in 0..rounds {
        for piece in [0, 16 << 10, 64 << 10, 256 << 10] {
            let file = segment(&path);
            let written = if piece == 0 { 0 } else { fill(&file, piece) };
            let [populate, copy, sync, unmap] = map_write_sync(&file);
            let what = if piece == 0 {
                "none (fresh pages)".to_string()
            } else {
                format!("{} KiB pieces", piece >> 10)
            };
            let sum = written + populate + copy + sync + unmap;
            println!("| {what} | {written} | {populate} | {copy} | {sync} | {unmap} | {sum} |");
        }
    }
}
