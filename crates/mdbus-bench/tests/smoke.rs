//! The harness end to end in smoke mode: real publisher and subscriber
//! processes, every transport built in, the report, the plots and the
//! merged histograms written. Asserts what was written, never a time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mdbus_bench::scenario::Transport;
use mdbus_bench::table::Row;

/// Runs the harness, killing it after `limit` (watchdog).
fn run_harness(target: &Path, limit: Duration) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mdbus-latency"))
        .args(["run", "--mode", "smoke", "--command", "smoke test"])
        .arg("--target-dir")
        .arg(target)
        .stdout(Stdio::null())
        .spawn()
        .expect("start mdbus-latency");
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "mdbus-latency failed: {status}");
            return;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mdbus-latency still running after {limit:?}: killed (watchdog)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn smoke_run_writes_report_plots_and_histograms_for_every_transport() {
    let target = tempfile::tempdir().unwrap();
    run_harness(target.path(), Duration::from_secs(180));

    let report = std::fs::read_to_string(target.path().join("bench-report.md")).unwrap();
    assert!(report.contains("# mdbus benchmark report (smoke)"), "{report}");
    assert!(report.contains("smoke test"), "the listed command is in the report");
    assert!(report.contains("bench-report-paced-spin.svg"));
    assert!(target.path().join("bench-report-paced-spin.svg").exists());

    let results = std::fs::read_to_string(target.path().join("bench-report/results.json")).unwrap();
    let rows: Vec<Row> = serde_json::from_str(&results).unwrap();
    let built: Vec<_> = Transport::ALL.into_iter().filter(|t| t.available()).collect();
    assert_eq!(rows.len(), built.len());
    for row in &rows {
        assert!(built.contains(&row.spec.transport));
        assert!(
            report.contains(&format!("| paced-spin | {} |", row.spec.label())),
            "{report}"
        );
        assert!(row.sent > 0, "{:?} sent nothing", row.spec.transport);
        // Whatever was received was recorded: the merged histogram holds
        // exactly the records that were not lost.
        assert_eq!(row.latency.count + row.lost, row.sent, "{:?}", row.spec.transport);
        assert_eq!(row.duplicates, 0, "{:?}", row.spec.transport);
        // These two block the sender instead of dropping.
        if matches!(row.spec.transport, Transport::UnixDatagram | Transport::Crossbeam) {
            assert_eq!(row.lost, 0, "{:?}", row.spec.transport);
        }
        let merged =
            mdbus_bench::hist::read_file(&target.path().join("bench-report").join(&row.histogram_file)).unwrap();
        assert_eq!(merged.len(), row.latency.count);
    }
}
