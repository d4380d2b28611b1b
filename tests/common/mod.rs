//! Helpers shared by the cross-process tests of this folder.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a child process may take before the test fails.
pub const WATCHDOG: Duration = Duration::from_secs(90);

/// A child process killed (SIGKILL) when dropped, so a failing test leaves
/// nothing running.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// SIGKILL, and reaps the child.
    pub fn kill_9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// Waits for a successful exit of `what`, failing after [`WATCHDOG`].
    pub fn wait_ok(&mut self, what: &str) {
        let deadline = Instant::now() + WATCHDOG;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                assert!(status.success(), "{what} failed: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "watchdog: {what} still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The python of a venv `venv` under target/ (made once and kept) in which
/// `import module` works, `package` installed into it by name; or a SKIP
/// of `test` (a failure under CI) when this machine cannot make one. A
/// venv whose creation was interrupted (no pip) is made again.
pub fn python_venv(test: &str, venv: &str, module: &str, package: &str) -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(venv);
    let python = venv.join("bin/python");
    let imports = |python: &Path| {
        Command::new(python)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if python.exists() && imports(&python) {
        return Some(python);
    }
    let run = |cmd: &mut Command, what: &str| -> Option<()> {
        match cmd.output() {
            Ok(out) if out.status.success() => Some(()),
            Ok(out) => {
                let why = format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
                mdbus_types::test_support::skip(test, &why);
                None
            }
            Err(e) => {
                mdbus_types::test_support::skip(test, &format!("{what}: {e}"));
                None
            }
        }
    };
    run(Command::new("python3").arg("--version"), "python3 --version")?;
    let has_pip = |python: &Path| {
        Command::new(python)
            .args(["-m", "pip", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if python.exists() && !has_pip(&python) {
        // A venv whose creation was interrupted (its pip never installed):
        // made again rather than skipped for ever.
        let _ = std::fs::remove_dir_all(&venv);
    }
    if !python.exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (install python3-venv)",
        )?;
    }
    run(
        Command::new(&python).args(["-m", "pip", "install", "-q", package]),
        &format!("pip install {package}"),
    )?;
    imports(&python).then_some(python)
}

/// `GET path` over HTTP/1.1 with `Connection: close`: (head, body), read
/// under [`WATCHDOG`].
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WATCHDOG)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_string(), body.to_string())
}

/// The bytes of a feed folder's WAL segment files.
pub fn segment_bytes(feed_dir: &Path) -> u64 {
    std::fs::read_dir(feed_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Lines of a child's pipe, from a thread (the pipe never fills).
pub fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
