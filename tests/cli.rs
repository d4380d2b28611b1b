//! The real `mdbus` binary: the demo end to end, `--help` everywhere, and
//! exit code 2 with a clear message for bad arguments.

use assert_cmd::Command;

fn mdbus() -> Command {
    let mut cmd = Command::cargo_bin("mdbus").unwrap();
    cmd.timeout(std::time::Duration::from_secs(120));
    cmd
}

#[test]
fn demo_runs_and_its_subscriber_sees_every_record() {
    let out = mdbus()
        .args(["demo", "--instruments", "8", "--rate", "20000", "--duration", "1.5"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("summary:"))
        .expect("a summary line");
    // "summary: N records in ... N received, 0 holes ..., last seq N, 0 book errors"
    let words: Vec<&str> = summary.split_whitespace().collect();
    let records: u64 = words[1].parse().unwrap();
    assert!(records > 10_000, "{summary}");
    assert!(summary.contains(&format!("{records} received, 0 holes")), "{summary}");
    assert!(
        summary.contains(&format!("last seq {records}, 0 book errors")),
        "{summary}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("t=") && l.contains("IF2501")),
        "{stdout}"
    );
}

#[test]
fn every_subcommand_has_help() {
    for args in [vec!["--help"], vec!["demo", "--help"], vec!["help", "demo"]] {
        let out = mdbus().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{args:?}");
    }
}

#[test]
fn bad_arguments_exit_2_naming_the_argument() {
    for (args, names) in [
        (vec!["demo", "--instruments", "0"], "--instruments"),
        (vec!["demo", "--instruments", "5000"], "--instruments"),
        (vec!["demo", "--duration", "abc"], "--duration"),
        (vec!["demo", "--rate", "-5"], "-5"),
        (vec!["frobnicate"], "frobnicate"),
        (vec![], "Usage"),
    ] {
        let out = mdbus().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(names), "{args:?}: {stderr}");
    }
}
