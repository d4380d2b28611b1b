//! The Markdown report: the machine, the date, the exact commands, the
//! settings, the table, the targets, the criterion numbers and the plots.

use std::fmt::Write as _;

use crate::criterion::BenchEstimate;
use crate::floor::{self, Floor};
use crate::table::{self, Row};

/// The machine a report was measured on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// CPU model name (`/proc/cpuinfo`).
    pub cpu_model: String,
    /// Logical cores this process may use.
    pub cores: usize,
    /// Kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
}

impl Machine {
    /// Reads the machine of this process ("unknown" where a file is missing).
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        Machine {
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".to_string()),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            kernel,
        }
    }
}

/// The `model name` of the first CPU in `/proc/cpuinfo` text.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// A plot to link: its caption and its file name next to the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotLink {
    /// What it shows.
    pub caption: String,
    /// The SVG's file name, relative to the report.
    pub file: String,
}

/// Everything a report says.
#[derive(Debug)]
pub struct Report<'a> {
    /// When the harness ran (RFC 3339, UTC).
    pub date: String,
    /// The machine.
    pub machine: Machine,
    /// Mode: smoke, quick or full.
    pub mode: String,
    /// The exact commands that produced the numbers.
    pub commands: Vec<String>,
    /// How the runs were made (payload, warm-up, pinning, ...).
    pub settings: Vec<String>,
    /// The machine's floor, probed before the runs (`None`: not probed).
    pub floor: Option<Floor>,
    /// One row per run.
    pub rows: &'a [Row],
    /// The criterion numbers found: `(what, estimate)`.
    pub criterion: Vec<(String, BenchEstimate)>,
    /// The quoted criterion benches not run this time: `(id, why)`
    /// (missing, or estimates older than this run's start: not quoted).
    pub criterion_not_run: Vec<(String, String)>,
    /// The plots.
    pub plots: Vec<PlotLink>,
}

impl Report<'_> {
    /// The report as Markdown.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# mdbus benchmark report ({})\n", self.mode);
        let _ = writeln!(out, "- date: {}", self.date);
        let _ = writeln!(
            out,
            "- machine: {}, {} logical cores, Linux {}",
            self.machine.cpu_model, self.machine.cores, self.machine.kernel
        );
        out.push_str("\n## Commands\n\n```sh\n");
        for command in &self.commands {
            let _ = writeln!(out, "{command}");
        }
        out.push_str("```\n\n## How the runs were made\n\n");
        for setting in &self.settings {
            let _ = writeln!(out, "- {setting}");
        }
        if let Some(floor) = &self.floor {
            out.push_str("\n## The machine's floor\n\n");
            out.push_str(
                "A thread per core, all at once, pinned, reading the clock in a loop with nothing else of this harness running: the gaps between two reads over 2 us are the times the core was taken from it (interrupts, kernel threads, the hypervisor). `wait p99` is the p99 of the wait a record arriving at a random moment would see from that core alone (the time-weighted rest of the gap it falls in). The ideal link replays both cores' gaps through a transport that costs nothing, a record due every 100 ns sent from core 0 to a receiver spinning on core 1 (a gap both cores share delays the send, not the latency): the latency this machine imposed during the probe, the floor of the pinned `paced-spin` rows (measured before them, not during).\n\n",
            );
            out.push_str(&floor::markdown(floor));
        }
        out.push_str("\n## One-way latency (ts_publish to receive, same host clock)\n\n");
        out.push_str(&table::markdown(self.rows));
        out.push_str("\nScenarios:\n\n");
        let mut seen = Vec::new();
        for row in self.rows {
            if !seen.contains(&row.spec.scenario) {
                seen.push(row.spec.scenario.clone());
                let _ = writeln!(out, "- `{}`: {}", row.spec.scenario, row.spec.title);
            }
        }
        out.push_str("\n## Targets\n\n");
        if let Some(why) = table::disturbed(self.rows) {
            let _ = writeln!(
                out,
                "**This run is disturbed** ({why}); rerun on an idle machine, ideally with `--pin`.\n"
            );
        }
        out.push_str(&table::targets_markdown(&table::targets(self.rows)));
        out.push_str("\n## Criterion benches\n\n");
        if self.criterion.is_empty() {
            out.push_str("Not run (no `criterion/*/new/estimates.json` written by this run).\n");
        } else {
            out.push_str("| bench | what | mean per element | elements/s |\n|---|---|---:|---:|\n");
            for (what, estimate) in &self.criterion {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {:.1} ns | {} |",
                    estimate.id,
                    what,
                    estimate.ns_per_element(),
                    table::rate(estimate.per_second())
                );
            }
        }
        if !self.criterion_not_run.is_empty() {
            out.push_str("\nNot run this time (no number quoted):\n\n");
            for (id, why) in &self.criterion_not_run {
                let _ = writeln!(out, "- `{id}`: {why}");
            }
        }
        if !self.plots.is_empty() {
            out.push_str("\n## Percentile plots\n\n");
            for plot in &self.plots {
                let _ = writeln!(out, "![{}]({})\n", plot.caption, plot.file);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Transport;
    use crate::table::tests::row;

    #[test]
    fn cpu_model_is_the_first_model_name() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(text).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("flags: x"), None);
    }

    #[test]
    fn report_has_machine_commands_table_targets_criterion_and_plots() {
        let rows = vec![
            row("paced-spin", Transport::RawIceoryx2, 1000, 2000),
            row("paced-spin", Transport::MdbusWalInterval, 1100, 2500),
        ];
        let report = Report {
            date: "2026-11-25T18:00:00Z".to_string(),
            machine: Machine {
                cpu_model: "Test CPU".to_string(),
                cores: 2,
                kernel: "6.1.0".to_string(),
            },
            mode: "quick".to_string(),
            commands: vec!["scripts/bench.sh --quick".to_string()],
            settings: vec!["warm-up 0.3 s excluded".to_string()],
            floor: Some(Floor {
                cores: vec![floor::summarise(0, true, 1_000_000_000, &[50_000; 1000], 50_000_000)],
                link: None,
            }),
            rows: &rows,
            criterion: vec![(
                "L1 get".to_string(),
                BenchEstimate {
                    id: "l1/tick_get".to_string(),
                    mean_ns: 20.0,
                    elements: None,
                },
            )],
            criterion_not_run: Vec::new(),
            plots: vec![PlotLink {
                caption: "paced, spin".to_string(),
                file: "bench-report-paced-spin.svg".to_string(),
            }],
        };
        let text = report.render();
        for needle in [
            "# mdbus benchmark report (quick)",
            "- date: 2026-11-25T18:00:00Z",
            "Test CPU, 2 logical cores, Linux 6.1.0",
            "```sh\nscripts/bench.sh --quick\n```",
            "- warm-up 0.3 s excluded",
            "## The machine's floor",
            "| 0 | yes | 1.0 | 5.000 % | 1000 | 0 | 0 | 50.00 | 40.00 |",
            "| paced-spin | mdbus (WAL Interval) |",
            "1.10x",
            "- `paced-spin`: paced-spin",
            "| mdbus cross-process p50 <= 1.2x raw iceoryx2 with the WAL on | 1.10 us vs 1.00 us: 1.10x | yes |",
            "| `l1/tick_get` | L1 get | 20.0 ns | 50.000 M/s |",
            "![paced, spin](bench-report-paced-spin.svg)",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn report_without_criterion_says_so() {
        let report = Report {
            date: String::new(),
            machine: Machine::detect(),
            mode: "smoke".to_string(),
            commands: Vec::new(),
            settings: Vec::new(),
            floor: None,
            rows: &[],
            criterion: Vec::new(),
            criterion_not_run: vec![("l1/tick_get".to_string(), "estimates from an earlier run".to_string())],
            plots: Vec::new(),
        };
        let text = report.render();
        assert!(text.contains("Not run"));
        assert!(
            text.contains("Not run this time (no number quoted):\n\n- `l1/tick_get`: estimates from an earlier run"),
            "{text}"
        );
        assert!(!text.contains("## Percentile plots"));
        assert!(!text.contains("## The machine's floor"));
    }
}
