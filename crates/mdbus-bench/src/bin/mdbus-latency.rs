//! `mdbus-latency`: runs the latency scenarios in real processes and
//! writes the benchmark report with its percentile plots.
//!
//! ```text
//! mdbus-latency run --mode quick            # every scenario, 1 s each
//! mdbus-latency run --mode smoke            # a few seconds (CI)
//! mdbus-latency run --mode full --pin       # 5 s each, pinned to cores
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mdbus_bench::criterion::{self, QUOTED, Reading};
use mdbus_bench::plot::{Series, percentile_svg};
use mdbus_bench::report::{Machine, PlotLink, Report};
use mdbus_bench::role::{self, RoleArgs};
use mdbus_bench::scenario::{Mode, PACED_RATE, SLOW_NS, matrix};
use mdbus_bench::table::{self, Row};
use mdbus_bench::{Error, Result, floor, hist, runner};

#[derive(Debug, Parser)]
#[command(
    name = "mdbus-latency",
    about = "mdbus latency harness: mdbus vs raw iceoryx2, a Unix socket and crossbeam"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the scenarios of a mode and writes the report.
    Run(RunArgs),
    /// A child process of a run (internal).
    #[command(hide = true)]
    Role {
        /// The role as JSON.
        json: String,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// smoke (seconds), quick (about a minute) or full (a few minutes).
    #[arg(long, value_enum, default_value_t = Mode::Quick)]
    mode: Mode,
    /// Pin the publisher to core 0 and subscriber i to core i+1 (mod cores).
    #[arg(long)]
    pin: bool,
    /// Only scenarios with these ids (e.g. paced-spin); repeatable.
    #[arg(long)]
    only: Vec<String>,
    /// Cargo's target folder: the report goes to TARGET/bench-report.md,
    /// the plots next to it, histograms and run files to
    /// TARGET/bench-report/. Default $CARGO_TARGET_DIR or ./target.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Where criterion wrote its results (default TARGET/criterion).
    #[arg(long)]
    criterion_dir: Option<PathBuf>,
    /// Unix time (seconds) this benchmark run started: criterion
    /// estimates written before it are an earlier run's and are listed as
    /// not run this time instead of quoted. Default: any age is quoted.
    #[arg(long, value_name = "UNIX_SECONDS")]
    since: Option<u64>,
    /// A command to list in the report as how the numbers were made; repeatable.
    #[arg(long)]
    command: Vec<String>,
    /// A line to add to the report's settings (e.g. the machine's load); repeatable.
    #[arg(long)]
    note: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Role { json } => serde_json::from_str::<RoleArgs>(&json)
            .map_err(|e| Error::Run(format!("bad role arguments: {e}")))
            .and_then(|args| role::run(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mdbus-latency: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &RunArgs) -> Result<()> {
    let target = args
        .target_dir
        .clone()
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"));
    let out_dir = target.join("bench-report");
    // Files of an earlier run would be mixed into this one's.
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    let runs: Vec<_> = matrix(args.mode, args.pin)
        .into_iter()
        .filter(|r| args.only.is_empty() || args.only.contains(&r.scenario))
        .collect();
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let probe = match args.mode {
        Mode::Smoke => 0.2,
        Mode::Quick => 2.0,
        Mode::Full => 5.0,
    };
    eprintln!("the machine's floor: a spinning thread per core for {probe} s ...");
    let floor = floor::measure(std::time::Duration::from_secs_f64(probe));
    eprint!("{}", floor::markdown(&floor));
    let mut rows: Vec<Row> = Vec::new();
    for (number, spec) in runs.iter().enumerate() {
        eprint!(
            "[{}/{}] round {} {} {} {} ... ",
            number + 1,
            runs.len(),
            spec.round + 1,
            spec.scenario,
            spec.transport.label(),
            spec.wait.label()
        );
        let row = runner::run(&exe, &out_dir, number, spec)?;
        eprintln!(
            "p50 {} us p99 {} us, {}, lost {}, duplicate or out of order {}",
            table::micros(row.latency.p50),
            table::micros(row.latency.p99),
            table::rate(row.publisher_rate),
            row.lost,
            row.duplicates
        );
        rows.push(row);
    }
    let rows = combine_rounds(&out_dir, rows)?;
    let results = out_dir.join("results.json");
    let text = serde_json::to_string_pretty(&rows).map_err(|e| Error::Json {
        path: results.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&results, text).map_err(|e| Error::io(&results, e))?;

    let plots = draw_plots(&target, &out_dir, &rows)?;
    let criterion_dir = args.criterion_dir.clone().unwrap_or_else(|| target.join("criterion"));
    let since = args
        .since
        .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s));
    let mut quoted = Vec::new();
    let mut not_run = Vec::new();
    for (id, what) in QUOTED {
        match criterion::read_since(&criterion_dir, id, since)? {
            Reading::Fresh(estimate) => quoted.push((what.to_string(), estimate)),
            Reading::Stale => not_run.push((
                id.to_string(),
                "estimates.json older than this run's start (an earlier run's number)".to_string(),
            )),
            Reading::Missing => not_run.push((id.to_string(), "no estimates.json".to_string())),
        }
    }
    let (warmup_s, measure_s, rounds) = runs
        .first()
        .map_or((0.0, 0.0, 1), |r| (r.warmup_s, r.measure_s, r.rounds));
    let mut settings = vec![
        "payload: the 376-byte `MdSample` holding a `Tick` of one instrument, on every transport (the WAL stores the 104-byte Tick in a 112-byte frame)".to_string(),
        format!("each run: {rounds} round(s), each a fresh publisher and fresh subscribers with {warmup_s} s warm-up (sent and received, not recorded), then {measure_s} s measured; round r of every scenario runs before round r+1 of any, and a row merges its rounds"),
        format!("paced runs: the publisher spins until records are due and sends the due ones (at most 64 per batch); unpaced runs: batches of 64 back to back; the comparison rate is {} k records/s", PACED_RATE / 1000),
        "latency: `ts_publish` (CLOCK_REALTIME, stamped at send time, just before the WAL append and the send, not when the record was due) to the subscriber's clock read on receive: a publisher that falls behind its schedule does not show in the latency but in the `late p99` column (p99 of send time minus due time, paced runs) and a lower publisher rate; a receive before its `ts_publish` (clock step) is recorded as 1 ns and counted in the note; HDR histograms (1 ns to 60 s, 3 significant digits), one per subscriber, written as HdrHistogram V2 files and merged by the harness".to_string(),
        "processes: one publisher process and one process per subscriber; crossbeam: threads of one process".to_string(),
        "mdbus: `FeedPublisher` (seq, WAL append, iceoryx2 send, end-of-batch notification, board update) and `IoxReceiver::recv_timeout`; mdbus Subscriber: the same publisher (WAL `Interval`) to the full `mdbus_subscriber::Subscriber` over `IoxReceiver` (seq merge, L1 and L2 kept, `next_event_ref`; a hole the transport leaves is filled from the WAL: those records count as received, late, and the note says how many); raw iceoryx2: the same service settings (buffer 4096, safe overflow), loan + write + send, a notification per batch only for blocking subscribers".to_string(),
        "loss: measured records the publisher sent that a subscriber did not receive; iceoryx2 (safe overflow) drops a lagging subscriber's oldest records, the socket and crossbeam block the publisher instead".to_string(),
        format!("slow subscriber: sleeps {} us after each record (the sleep takes longer: the note gives the measured pause per record)", SLOW_NS / 1000),
        format!(
            "Unix socket: one connected datagram socket per subscriber, blocking sends; the kernel queues at most net.unix.max_dgram_qlen = {} datagrams per socket",
            std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen").map_or_else(|_| "?".to_string(), |s| s.trim().to_string())
        ),
        format!(
            "core pinning: {}",
            if args.pin {
                "on (publisher core 0, subscriber i core i+1 modulo the cores; a row notes any process whose pinning failed)"
            } else {
                "off (the scheduler places the processes)"
            }
        ),
    ];
    settings.extend(args.note.iter().cloned());
    let mut commands = args.command.clone();
    if commands.is_empty() {
        commands.push(std::env::args().collect::<Vec<_>>().join(" "));
    }
    let report = Report {
        date,
        machine: Machine::detect(),
        mode: format!("{:?}", args.mode).to_lowercase(),
        commands,
        settings,
        floor: Some(floor),
        rows: &rows,
        criterion: quoted,
        criterion_not_run: not_run,
        plots,
    };
    let path = target.join("bench-report.md");
    std::fs::write(&path, report.render()).map_err(|e| Error::io(&path, e))?;
    println!("{}", table::markdown(&rows));
    println!("{}", table::targets_markdown(&table::targets(&rows)));
    println!("report: {}", path.display());
    Ok(())
}

/// The rounds of each run merged into one row (in the order of the
/// first round), its histogram written to `<out_dir>/<scenario>-<transport>-<wait>.hgrm`.
fn combine_rounds(out_dir: &Path, rows: Vec<Row>) -> Result<Vec<Row>> {
    let mut groups: Vec<Vec<Row>> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|g| table::same_run(&g[0], &row)) {
            Some(group) => group.push(row),
            None => groups.push(vec![row]),
        }
    }
    let mut combined = Vec::new();
    for group in groups {
        let mut parts = Vec::new();
        for row in group {
            let histogram = hist::read_file(&out_dir.join(&row.histogram_file))?;
            parts.push((row, histogram));
        }
        let spec = &parts[0].0.spec;
        let transport = serde_json::to_value(spec.transport)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let file = format!("{}-{transport}-{}.hgrm", spec.scenario, spec.wait.label());
        let (row, merged) = table::combine(&parts, file.clone())?;
        hist::write_file(&out_dir.join(&file), &merged)?;
        combined.push(row);
    }
    Ok(combined)
}

/// One SVG per scenario next to the report, one line per transport.
fn draw_plots(target: &Path, out_dir: &Path, rows: &[Row]) -> Result<Vec<PlotLink>> {
    let mut scenarios: Vec<(&str, &str)> = Vec::new();
    for row in rows {
        if !scenarios.iter().any(|(id, _)| *id == row.spec.scenario) {
            scenarios.push((&row.spec.scenario, &row.spec.title));
        }
    }
    let mut links = Vec::new();
    for (id, title) in scenarios {
        let mut histograms = Vec::new();
        for row in rows.iter().filter(|r| r.spec.scenario == id) {
            histograms.push((row.spec.label(), hist::read_file(&out_dir.join(&row.histogram_file))?));
        }
        let series: Vec<Series<'_>> = histograms
            .iter()
            .map(|(label, histogram)| Series {
                label: label.clone(),
                histogram,
            })
            .collect();
        let file = format!("bench-report-{id}.svg");
        percentile_svg(&target.join(&file), title, &series)?;
        links.push(PlotLink {
            caption: title.to_string(),
            file,
        });
    }
    Ok(links)
}
