//! The parent side of a run: spawns the publisher and subscriber
//! processes (this binary in its `role` command), drives the handshake
//! with watchdog timeouts, then reads and merges what the subscribers
//! wrote into a table [`Row`].

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use hdrhistogram::Histogram;

use crate::endpoints::{PublisherOutcome, SubscriberSummary};
use crate::error::{Error, Result};
use crate::hist::{self, Percentiles};
use crate::role::{Role, RoleArgs, histogram_file, publisher_file, summary_file};
use crate::scenario::RunSpec;
use crate::table::{Row, SlowOutcome};

/// A child process of a run, its stdin and its stdout lines.
struct Child {
    what: String,
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Child {
    fn spawn(exe: &Path, args: &RoleArgs, what: String) -> Result<Child> {
        let json = serde_json::to_string(args).map_err(|e| Error::Run(format!("{what}: {e}")))?;
        let mut child = Command::new(exe)
            .arg("role")
            .arg(json)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::io(exe, e))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Child {
            what,
            stdin: child.stdin.take(),
            child,
            lines,
        })
    }

    fn expect(&mut self, line: &str, timeout: Duration) -> Result<()> {
        match self.lines.recv_timeout(timeout) {
            Ok(got) if got.trim() == line => Ok(()),
            Ok(got) => Err(Error::Run(format!("{}: expected {line:?}, got {got:?}", self.what))),
            Err(RecvTimeoutError::Timeout) => Err(Error::Run(format!(
                "{}: no {line:?} within {timeout:?} (watchdog)",
                self.what
            ))),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().ok();
                Err(Error::Run(format!(
                    "{}: exited ({status:?}) before saying {line:?}",
                    self.what
                )))
            }
        }
    }

    fn say(&mut self, line: &str) -> Result<()> {
        let what = &self.what;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Run(format!("{what}: stdin closed")))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| Error::Run(format!("{what}: cannot say {line:?}: {e}")))
    }

    /// Waits for a successful exit; kills the child after `timeout`.
    fn finish(mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .child
                .try_wait()
                .map_err(|e| Error::Run(format!("{}: {e}", self.what)))?
            {
                Some(status) if status.success() => return Ok(()),
                Some(status) => return Err(Error::Run(format!("{}: exited with {status}", self.what))),
                None if Instant::now() >= deadline => {
                    return Err(Error::Run(format!(
                        "{}: still running after {timeout:?}: killed (watchdog)",
                        self.what
                    )));
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The machine's stolen CPU time so far (`steal` on the `cpu` line of
/// `/proc/stat`, in clock ticks), `None` where there is no such file.
fn steal_ticks() -> Option<u64> {
    parse_steal(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// `steal`, the 8th number of the `cpu` line of `/proc/stat` text.
fn parse_steal(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    line.split_ascii_whitespace().nth(8)?.parse().ok()
}

/// Clock ticks (`/proc/stat`'s unit) as ms.
fn ticks_to_ms(ticks: u64) -> u64 {
    // SAFETY: sysconf only reads a system value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100);
    ticks * 1000 / hz
}

/// Where run `number`'s files go under `out_dir`.
pub fn run_dir(out_dir: &Path, number: usize, spec: &RunSpec) -> PathBuf {
    let transport = serde_json::to_value(spec.transport)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    out_dir.join("runs").join(format!(
        "{number:02}-{}-{transport}-{}",
        spec.scenario,
        spec.wait.label()
    ))
}

/// Runs `spec` with `exe` (this binary) as number `number`: its files go
/// to [`run_dir`], the merged histogram to `<out_dir>/<run folder>.hgrm`.
pub fn run(exe: &Path, out_dir: &Path, number: usize, spec: &RunSpec) -> Result<Row> {
    let dir = run_dir(out_dir, number, spec);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let name = format!("mdb{}n{number}", std::process::id());
    let args = |role| RoleArgs {
        spec: spec.clone(),
        role,
        dir: dir.clone(),
        name: name.clone(),
    };
    let setup = Duration::from_secs(30);
    let mut publisher = Child::spawn(exe, &args(Role::Publisher), format!("{name} publisher"))?;
    publisher.expect("ready", setup)?;
    let mut subscribers = Vec::new();
    if spec.transport.cross_process() {
        for index in 0..spec.subscribers + spec.slow_subscribers {
            let mut child = Child::spawn(
                exe,
                &args(Role::Subscriber { index }),
                format!("{name} subscriber {index}"),
            )?;
            child.expect("ready", setup)?;
            subscribers.push(child);
        }
    }
    let steal_before = steal_ticks();
    publisher.say("go")?;
    let length = Duration::from_secs_f64(spec.warmup_s + spec.measure_s);
    publisher.expect("done", length * 4 + Duration::from_secs(60))?;
    let steal_ms = steal_before
        .zip(steal_ticks())
        .map(|(before, after)| ticks_to_ms(after.saturating_sub(before)));
    for child in &mut subscribers {
        child.say("stop")?;
    }
    for child in subscribers {
        child.finish(Duration::from_secs(60))?;
    }
    publisher.say("exit")?;
    publisher.finish(Duration::from_secs(30))?;

    let outcome: PublisherOutcome = read_json(&publisher_file(&dir))?;
    let mut kept_up: Vec<Histogram<u64>> = Vec::new();
    let mut lost = 0;
    let mut duplicates = 0;
    let mut negative = 0;
    let mut from_wal = 0;
    let mut pin_failures = u64::from(outcome.pin_failed);
    let mut slow = Vec::new();
    for index in 0..spec.subscribers + spec.slow_subscribers {
        let summary: SubscriberSummary = read_json(&summary_file(&dir, index))?;
        // Gaps in the index sequence, not a difference of counts.
        let missing = summary.sequence.lost(&outcome);
        negative += summary.sequence.negative;
        pin_failures += u64::from(summary.pin_failed);
        if summary.slow {
            slow.push(SlowOutcome {
                received: summary.sequence.received,
                lost: missing,
                duplicates: summary.sequence.duplicates,
                pause_ns: summary.pause_ns,
            });
        } else {
            kept_up.push(hist::read_file(&histogram_file(&dir, index))?);
            lost += missing;
            duplicates += summary.sequence.duplicates;
            from_wal += summary.from_wal;
        }
    }
    let merged = hist::merge(&kept_up)?;
    let file_name = format!("{}.hgrm", dir.file_name().and_then(|n| n.to_str()).unwrap_or("run"));
    hist::write_file(&out_dir.join(&file_name), &merged)?;
    // The WAL of a fast run is large: keep only the results.
    let _ = std::fs::remove_dir_all(dir.join("wal"));
    let _ = std::fs::remove_dir_all(dir.join("board"));
    let _ = std::fs::remove_file(dir.join(crate::role::FSYNC_FILE));
    let latency = Percentiles::of(&merged);
    Ok(Row {
        spec: spec.clone(),
        latency,
        round_p99_median: latency.p99,
        sent: outcome.sent_measured,
        measured_secs: outcome.measured_secs,
        publisher_rate: if outcome.measured_secs > 0.0 {
            outcome.sent_measured as f64 / outcome.measured_secs
        } else {
            0.0
        },
        lost,
        duplicates,
        negative,
        from_wal,
        pin_failures,
        late_p99_ns: outcome.late_p99_ns,
        steal_ms,
        slow,
        histogram_file: file_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_number_of_the_cpu_line() {
        let stat = "cpu  1543719 197 212887 629648 10768 0 4456 1683 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_steal(stat), Some(1683));
        assert_eq!(parse_steal("cpu0 1 2 3 4 5 6 7 8\n"), None, "no total line");
        assert_eq!(parse_steal("cpu  1 2 3\n"), None, "a kernel without the field");
    }
}
