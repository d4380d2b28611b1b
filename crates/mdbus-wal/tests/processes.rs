//! Cross-process tests: the test binary re-executes itself with
//! `MDBUS_WAL_CHILD` naming a child role (a writer killed with SIGKILL, a
//! writer tailed by a reader in this process, a writer under a small
//! RLIMIT_FSIZE). Every wait has a watchdog; no time is asserted.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{record, replay, test_options};
use mdbus_wal::{SyncPolicy, Wal, WalOptions, WalReader, verify};

const ROLE: &str = "MDBUS_WAL_CHILD";
const DIR: &str = "MDBUS_WAL_DIR";
const WATCHDOG: Duration = Duration::from_secs(120);

fn child_role() -> Option<(String, std::path::PathBuf)> {
    let role = std::env::var(ROLE).ok()?;
    let dir = std::env::var(DIR).expect("child needs MDBUS_WAL_DIR");
    Some((role, dir.into()))
}

fn spawn_child(test: &str, role: &str, dir: &Path, command: impl FnOnce(&mut Command)) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command(&mut cmd);
    cmd.spawn().unwrap()
}

/// The child's stdout lines that start with `@`, through a channel.
fn child_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may have printed "test name ... " before it.
            if let Some(at) = line.find('@')
                && tx.send(line[at + 1..].to_string()).is_err()
            {
                break;
            }
        }
    });
    rx
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@{line}").unwrap();
    out.flush().unwrap();
}

/// `Wal::open` in a child process, waiting while the WAL is locked: the
/// parent closed its writer before spawning this process, but a process
/// another test forked meanwhile may still hold a copy of that lock's
/// descriptor until it execs (seen under `stress --cpu 2`). Under the
/// watchdog.
fn open_unlocked(dir: &Path, feed: &str, options: WalOptions) -> Wal {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        match Wal::open(dir, feed, options.clone()) {
            Err(mdbus_wal::Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            opened => return opened.unwrap(),
        }
    }
}

fn kind_of(seq: u64) -> u8 {
    (seq % 4) as u8
}

#[test]
fn kill_9_mid_append_leaves_a_dense_prefix() {
    if let Some((role, dir)) = child_role() {
        assert_eq!(role, "writer-forever");
        let options = WalOptions::default().segment_bytes(16384);
        let mut wal = open_unlocked(&dir, "kill", options);
        let mut seq = wal.next_seq();
        loop {
            wal.append(&record(seq, kind_of(seq))).unwrap();
            if seq.is_multiple_of(100) {
                say(&format!("seq {seq}"));
            }
            seq += 1;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let mut child = spawn_child(
            "kill_9_mid_append_leaves_a_dense_prefix",
            "writer-forever",
            dir.path(),
            |_| {},
        );
        let lines = child_lines(&mut child);
        let target = 3000 * (round + 1);
        loop {
            let line = lines
                .recv_timeout(WATCHDOG)
                .expect("watchdog: child writer made no progress");
            let seq: u64 = line.strip_prefix("seq ").unwrap().parse().unwrap();
            if seq >= target {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let out = replay(dir.path(), "kill", false);
        assert!(out.error.is_none(), "{:?}", out.error);
        let last = *out.seqs.last().unwrap();
        assert!(last >= target);
        assert_eq!(out.seqs, (1..=last).collect::<Vec<_>>(), "a dense prefix");
        for (seq, bytes) in out.seqs.iter().zip(&out.bytes) {
            assert_eq!(&bytes[..], record(*seq, kind_of(*seq)).record_bytes().unwrap());
        }
        let mut wal = Wal::open(dir.path(), "kill", test_options(16384)).unwrap();
        println!("{}", wal.recovery_report());
        assert!(!wal.recovery_report().has_corruption());
        assert_eq!(wal.next_seq(), last + 1);
        wal.append(&record(last + 1, kind_of(last + 1))).unwrap();
        drop(wal);
        let report = verify(dir.path(), "kill").unwrap();
        assert_eq!(report.exit_code(), 0, "{report}");
        // The next round's child continues from here.
        let out = replay(dir.path(), "kill", false);
        assert_eq!(out.seqs.len() as u64, last + 1);
    }
}

const TAIL_RECORDS: u64 = 5000;

#[test]
fn reader_in_another_process_tails_a_live_writer_across_rolls() {
    if let Some((role, dir)) = child_role() {
        assert_eq!(role, "writer-burst");
        let options = WalOptions::default()
            .segment_bytes(8192)
            .sync(SyncPolicy::Interval(Duration::from_millis(1)));
        let mut wal = open_unlocked(&dir, "tail", options);
        for seq in 1..=TAIL_RECORDS {
            wal.append(&record(seq, kind_of(seq))).unwrap();
            if seq.is_multiple_of(50) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        say("done");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The reader exists before the writer: it waits for the first segment.
    let mut reader = WalReader::open(dir.path(), "tail", Default::default()).unwrap();
    let mut child = spawn_child(
        "reader_in_another_process_tails_a_live_writer_across_rolls",
        "writer-burst",
        dir.path(),
        |_| {},
    );
    let lines = child_lines(&mut child);
    let deadline = Instant::now() + WATCHDOG;
    let mut expected = 1;
    let mut segments = std::collections::BTreeSet::new();
    let mut live_ends = 0u64;
    while expected <= TAIL_RECORDS {
        assert!(Instant::now() < deadline, "watchdog: reader stuck at seq {expected}");
        match reader.next_record().unwrap() {
            Some(r) => {
                assert_eq!(r.seq(), expected);
                assert_eq!(
                    r.record.as_bytes(),
                    record(expected, kind_of(expected)).record_bytes().unwrap()
                );
                segments.insert(r.path.to_path_buf());
                expected += 1;
            }
            None => {
                live_ends += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    assert_eq!(lines.recv_timeout(WATCHDOG).unwrap(), "done");
    assert!(child.wait().unwrap().success());
    println!(
        "crossed {} segments, met the live end {live_ends} times",
        segments.len()
    );
    assert!(segments.len() > 10, "the reader crossed segment rolls");
    assert!(reader.next_record().unwrap().is_none());
}

#[test]
fn full_disk_is_a_clear_error_and_written_records_stay_valid() {
    if let Some((role, dir)) = child_role() {
        assert_eq!(role, "writer-fsize");
        let mut wal = open_unlocked(&dir, "full", WalOptions::default().segment_bytes(65536));
        let mut seq = wal.next_seq();
        for _ in 0..100_000 {
            match wal.append(&record(seq, kind_of(seq))) {
                Ok(_) => seq += 1,
                Err(e) => {
                    say(&format!("appended {}", seq - 1));
                    say(&format!("error {e}"));
                    // A retry fails the same way and changes nothing.
                    assert!(wal.append(&record(seq, kind_of(seq))).is_err());
                    return;
                }
            }
        }
        say(&format!("appended {}", seq - 1));
        say("no error");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The first segment exists before the limit applies.
    let mut wal = Wal::open(dir.path(), "full", test_options(65536)).unwrap();
    for seq in 1..=10 {
        wal.append(&record(seq, kind_of(seq))).unwrap();
    }
    drop(wal);
    let mut child = spawn_child(
        "full_disk_is_a_clear_error_and_written_records_stay_valid",
        "writer-fsize",
        dir.path(),
        |cmd| {
            use std::os::unix::process::CommandExt;
            // SAFETY: the closure runs in the forked child before exec and
            // calls only async-signal-safe functions (setrlimit, signal).
            unsafe {
                cmd.pre_exec(|| {
                    let limit = libc::rlimit {
                        rlim_cur: 32 * 1024,
                        rlim_max: 32 * 1024,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    Ok(())
                })
            };
        },
    );
    let lines = child_lines(&mut child);
    let appended: u64 = lines
        .recv_timeout(WATCHDOG)
        .unwrap()
        .strip_prefix("appended ")
        .unwrap()
        .parse()
        .unwrap();
    let outcome = lines.recv_timeout(WATCHDOG).unwrap();
    assert!(child.wait().unwrap().success());
    if outcome == "no error" {
        mdbus_types::test_support::not_checked(
            "a full disk",
            "RLIMIT_FSIZE did not stop the preallocation on this filesystem",
        );
        return;
    }
    println!("{outcome}");
    assert!(outcome.contains("cannot preallocate 65536 bytes"), "{outcome}");
    assert!(
        outcome.contains(&dir.path().join("full").display().to_string()),
        "{outcome}"
    );
    assert!(appended > 10);
    let out = replay(dir.path(), "full", false);
    assert!(out.error.is_none());
    assert_eq!(out.seqs, (1..=appended).collect::<Vec<_>>());
    let mut wal = Wal::open(dir.path(), "full", test_options(65536)).unwrap();
    assert_eq!(wal.next_seq(), appended + 1);
    wal.append(&record(appended + 1, 0)).unwrap();
    assert_eq!(verify(dir.path(), "full").unwrap().exit_code(), 0);
}
