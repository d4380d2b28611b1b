//! For the workspace's own tests, not for users: a skipped test that is
//! visible. Hidden from the docs.

use std::io::Write;

/// A test cannot run here because `what` is missing. Under CI (the `CI`
/// environment variable set, as `.ci/run` runs) that is a failure: CI
/// installs what the tests need. Elsewhere the skip is written straight to
/// the terminal's stderr, past the test harness's capture, so a plain
/// `cargo test` shows which tests were skipped and why.
///
/// # Panics
///
/// Under CI, always.
pub fn skip(test: &str, what: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{test}: {what} (CI must provide it: see .ci/run)");
    }
    // `eprintln!` would be captured and shown only for a failing test.
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {what}");
}

/// A test that ran but could not check what it is for, for a reason of
/// this machine (e.g. a filesystem that ignores a limit): reported the
/// same visible way, never a failure.
pub fn not_checked(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "NOT CHECKED {test}: {why}");
}
