//! A client built separately from this workspace (tests/external-client: its own Cargo project,
//! written from docs/spec.md alone, no mdbus crate) opens a live feed's iceoryx2 service
//! `mdbus/<feed>/md`, decodes and checks every record it receives, and prints docs/spec.md's JSON
//! form; every object must equal what `mdbus replay` prints for the same seq from the WAL.
//!
//! Every child process runs under a watchdog and is killed on timeout or when the test fails.
#![cfg(feature = "iceoryx2")]

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const RECORDS: u64 = 3000;
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// A cold release build of iceoryx2 takes minutes on a busy 2-core machine.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1200);

/// Kills and reaps the child when dropped (test failure, panic, or early return).
struct Guard {
    name: &'static str,
    child: Option<Child>,
}

impl Guard {
    fn spawn(name: &'static str, cmd: &mut Command) -> std::io::Result<Guard> {
        Ok(Guard {
            name,
            child: Some(cmd.spawn()?),
        })
    }

    /// Waits for the child to exit; kills it and panics after `timeout`.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("child not waited for yet");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!("{} did not finish within {timeout:?}: killed", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then [`Guard::wait`]: a publisher without `--duration`
    /// stops cleanly on it.
    fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.child.as_ref().expect("child not waited for yet").id() as libc::pid_t;
        // SAFETY: kill(2) has no memory effects; `pid` is our own child,
        // not yet reaped (so not reused).
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "kill({pid}, SIGTERM): {}", std::io::Error::last_os_error());
        self.wait(timeout)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}

fn file(path: &Path) -> Stdio {
    Stdio::from(File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display())))
}

fn seq_of(v: &Value) -> u64 {
    v.get("seq")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no u64 seq in {v}"))
}

/// Builds tests/external-client in its own target dir; `None` when cargo is not available.
fn build_external_client(repo: &Path) -> Option<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = repo.join("target").join("external-client");
    let manifest = repo.join("tests").join("external-client").join("Cargo.toml");
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdin(Stdio::null());
    let start = Instant::now();
    let mut build = match Guard::spawn("cargo build (external client)", &mut cmd) {
        Ok(g) => g,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            mdbus::types::test_support::skip(
                "external_client",
                &format!("cargo ({}) not found", cargo.to_string_lossy()),
            );
            return None;
        }
        Err(e) => panic!("spawn {}: {e}", cargo.to_string_lossy()),
    };
    let status = build.wait(BUILD_TIMEOUT);
    assert!(status.success(), "building {} failed: {status}", manifest.display());
    println!("external client built in {:.1} s", start.elapsed().as_secs_f64());
    Some(
        target_dir
            .join("release")
            .join(format!("mdbus-external-client{}", std::env::consts::EXE_SUFFIX)),
    )
}

/// Runs the external client for `RECORDS` records of `feed`; returns the objects it printed.
fn run_client(client_exe: &Path, feed: &str, dir: &Path, name: &str, publisher_err: &Path) -> Vec<Value> {
    let (out, err) = (dir.join(format!("{name}.out")), dir.join(format!("{name}.err")));
    // --allow-gaps: with safe overflow a descheduled subscriber may lose its oldest samples; the
    // client still rejects any seq that does not increase, and every record it prints is compared.
    let mut client = Guard::spawn(
        "external client",
        Command::new(client_exe)
            .args([
                feed,
                &RECORDS.to_string(),
                "--open-timeout",
                "30",
                "--recv-timeout",
                "10",
            ])
            .arg("--allow-gaps")
            .stdin(Stdio::null())
            .stdout(file(&out))
            .stderr(file(&err)),
    )
    .unwrap();
    let status = client.wait(CHILD_TIMEOUT);
    assert!(
        status.success(),
        "{name} external client failed: {status}\nstderr:\n{}\npublisher stderr:\n{}",
        read(&err),
        read(publisher_err)
    );
    let stderr = read(&err);
    if !stderr.is_empty() {
        println!("{name} external client stderr: {stderr}");
    }
    let received: Vec<Value> = read(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name} client line is not JSON ({e}): {l}")))
        .collect();
    assert_eq!(received.len() as u64, RECORDS, "{name}: one object per record");
    let (first, last) = (seq_of(&received[0]), seq_of(received.last().unwrap()));
    let lost = (last - first + 1) - RECORDS;
    println!("{name} external client received seqs {first}..={last} ({lost} lost to overflow)");
    received
}

#[test]
fn external_client_decodes_every_record_like_replay() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(client_exe) = build_external_client(repo) else {
        return;
    };
    let mdbus = env!("CARGO_BIN_EXE_mdbus");
    let tmp = tempfile::tempdir().unwrap();
    let wal = tmp.path().join("wal");
    let board = tmp.path().join("board");
    std::fs::create_dir_all(&board).unwrap();
    let feed = format!("extclient{}", std::process::id());

    let (pub_out, pub_err) = (tmp.path().join("publish.out"), tmp.path().join("publish.err"));
    let mut publisher = Guard::spawn(
        "mdbus publish",
        Command::new(mdbus)
            .args(["publish", "--feed", &feed, "--wal"])
            .arg(&wal)
            .arg("--board-dir")
            .arg(&board)
            .args(["--synthetic", "--instruments", "4", "--rate", "20000"])
            .stdin(Stdio::null())
            .stdout(file(&pub_out))
            .stderr(file(&pub_err)),
    )
    .unwrap();

    // "early" starts with the publisher (the service may not exist yet: it retries opening) and
    // sees the first records; "late" joins the running stream thousands of records in.
    let early = run_client(&client_exe, &feed, tmp.path(), "early", &pub_err);
    let late = run_client(&client_exe, &feed, tmp.path(), "late", &pub_err);
    let first = seq_of(&early[0]).min(seq_of(&late[0]));
    let last = seq_of(early.last().unwrap()).max(seq_of(late.last().unwrap()));

    // Every record is in the WAL before it is sent; stop the publisher (it ran until now, however
    // long the clients took to start) so the replay below reads a closed WAL.
    let status = publisher.terminate(CHILD_TIMEOUT);
    assert!(
        status.success(),
        "mdbus publish failed: {status}\nstderr:\n{}",
        read(&pub_err)
    );

    let (replay_out, replay_err) = (tmp.path().join("replay.out"), tmp.path().join("replay.err"));
    let mut replay = Guard::spawn(
        "mdbus replay",
        Command::new(mdbus)
            .args(["replay", "--wal"])
            .arg(&wal)
            .args(["--feed", &feed, "--from-seq", &first.to_string()])
            .stdin(Stdio::null())
            .stdout(file(&replay_out))
            .stderr(file(&replay_err)),
    )
    .unwrap();
    let status = replay.wait(CHILD_TIMEOUT);
    assert!(
        status.success(),
        "mdbus replay failed: {status}\nstderr:\n{}",
        read(&replay_err)
    );

    let mut expected: HashMap<u64, Value> = HashMap::new();
    for line in BufReader::new(File::open(&replay_out).unwrap()).lines() {
        let line = line.unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("replay line is not JSON ({e}): {line}"));
        let seq = seq_of(&v);
        if seq > last {
            break;
        }
        expected.insert(seq, v);
    }
    assert_eq!(
        expected.len() as u64,
        last - first + 1,
        "replay has every seq of {first}..={last}"
    );

    for (name, received) in [("early", &early), ("late", &late)] {
        let mut kinds: HashMap<String, usize> = HashMap::new();
        for got in received {
            let seq = seq_of(got);
            assert_eq!(
                Some(got),
                expected.get(&seq),
                "{name} seq {seq}: external client (left) vs mdbus replay (right)"
            );
            *kinds
                .entry(got["kind"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
        let mut kinds: Vec<_> = kinds.into_iter().collect();
        kinds.sort();
        println!("{name}: {RECORDS} records identical to mdbus replay; kinds {kinds:?}");
        for kind in ["tick", "book_snapshot", "book_delta"] {
            assert!(
                kinds.iter().any(|(k, _)| k == kind),
                "{name}: no {kind} among {RECORDS} records: {kinds:?}"
            );
        }
    }
}
