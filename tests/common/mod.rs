//! Helpers shared by the cross-process tests of this folder.
#![allow(dead_code, unreachable_pub)]

use std::process::Child;
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
