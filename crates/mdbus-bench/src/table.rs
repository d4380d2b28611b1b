//! The result table: one row per run, ratios against the raw iceoryx2
//! row of the same scenario, and the product targets checked against
//! the rows.
//!
//! Length (~700 lines): the table, the ratio rules and the target verdicts,
//! more than half of it unit tests of those rules.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hist::{self, Percentiles};
use crate::scenario::{RunSpec, Transport};

/// What one slow subscriber got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowOutcome {
    /// Measured records it received.
    pub received: u64,
    /// Measured records it lost (gaps in the index sequence).
    pub lost: u64,
    /// Measured records received twice or out of order.
    #[serde(default)]
    pub duplicates: u64,
    /// Measured time of its pause per record, ns (the sleep asked for
    /// is a minimum; rounds: the largest).
    #[serde(default)]
    pub pause_ns: u64,
}

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// What was run.
    pub spec: RunSpec,
    /// One-way latency of the subscribers that keep up, merged.
    pub latency: Percentiles,
    /// Measured records the publisher sent.
    pub sent: u64,
    /// Seconds of the measured phase (all rounds).
    pub measured_secs: f64,
    /// Records per second the publisher sent over the measured phase.
    pub publisher_rate: f64,
    /// Measured records lost (gaps in each subscriber's index sequence),
    /// summed over the subscribers that keep up.
    pub lost: u64,
    /// Measured records received twice or out of order, summed over the
    /// subscribers that keep up. Non-zero makes the row invalid.
    #[serde(default)]
    pub duplicates: u64,
    /// Measured records received before their `ts_publish` (clock
    /// steps), all subscribers: recorded as 1 ns.
    #[serde(default)]
    pub negative: u64,
    /// Measured records the subscribers that keep up received from the
    /// WAL instead of live (mdbus's `Subscriber` fills a hole the
    /// transport left from the WAL: not lost, but late), summed.
    #[serde(default)]
    pub from_wal: u64,
    /// Processes (or threads) whose core pinning failed.
    #[serde(default)]
    pub pin_failures: u64,
    /// Paced runs: p99 of send time minus due time of the measured
    /// records, ns (rounds: the largest); 0 when unpaced.
    #[serde(default)]
    pub late_p99_ns: u64,
    /// CPU time the hypervisor took from this machine (all its CPUs)
    /// between the publisher's start and its end, warm-up included, ms
    /// (`steal` of `/proc/stat`, 10 ms steps; rounds: summed). Stolen time
    /// is invisible inside the guest: a process that had its core loses it
    /// all the same, which is where a millisecond tail with nothing else
    /// running comes from. `None` where it cannot be read.
    #[serde(default)]
    pub steal_ms: Option<u64>,
    /// The median of the rounds' own p99s, ns (one round: its p99). A
    /// merged p99 follows its worst round (one burst of load from
    /// elsewhere moves it); this does not.
    #[serde(default)]
    pub round_p99_median: u64,
    /// The slow subscribers, if any.
    pub slow: Vec<SlowOutcome>,
    /// The file of the merged histogram (V2), relative to the report.
    pub histogram_file: String,
}

impl Row {
    /// Measured records the subscribers that keep up should have received.
    pub fn expected(&self) -> u64 {
        self.sent * self.spec.subscribers as u64
    }

    /// Why the row is not valid, if it is not: a duplicate or
    /// out-of-order record (any subscriber) means the transport or the
    /// harness is broken.
    pub fn invalid(&self) -> Option<String> {
        let all = self.duplicates + self.slow.iter().map(|s| s.duplicates).sum::<u64>();
        (all > 0).then(|| format!("**invalid**: {all} duplicate or out-of-order records"))
    }

    /// Lost records as a fraction of the expected ones.
    pub fn loss_fraction(&self) -> f64 {
        if self.expected() == 0 {
            return 0.0;
        }
        self.lost as f64 / self.expected() as f64
    }
}

/// Whether two rows are rounds of the same run (same scenario, transport
/// and wait).
pub fn same_run(a: &Row, b: &Row) -> bool {
    a.spec.scenario == b.spec.scenario && a.spec.transport == b.spec.transport && a.spec.wait == b.spec.wait
}

/// The rounds of one run as one row: the histograms merged, records,
/// losses and measured time summed; the rate is the total records over
/// the total time. `parts` must not be empty.
pub fn combine(parts: &[(Row, Histogram<u64>)], histogram_file: String) -> Result<(Row, Histogram<u64>)> {
    let first = &parts
        .first()
        .ok_or_else(|| Error::Run("no rounds to combine".to_string()))?
        .0;
    let merged = hist::merge(parts.iter().map(|(_, h)| h))?;
    let mut row = first.clone();
    row.sent = parts.iter().map(|(r, _)| r.sent).sum();
    row.lost = parts.iter().map(|(r, _)| r.lost).sum();
    row.duplicates = parts.iter().map(|(r, _)| r.duplicates).sum();
    row.negative = parts.iter().map(|(r, _)| r.negative).sum();
    row.from_wal = parts.iter().map(|(r, _)| r.from_wal).sum();
    row.pin_failures = parts.iter().map(|(r, _)| r.pin_failures).sum();
    row.late_p99_ns = parts.iter().map(|(r, _)| r.late_p99_ns).max().unwrap_or(0);
    row.steal_ms = parts.iter().map(|(r, _)| r.steal_ms).sum();
    let mut p99s: Vec<u64> = parts.iter().map(|(r, _)| r.latency.p99).collect();
    p99s.sort_unstable();
    row.round_p99_median = median(&p99s);
    row.measured_secs = parts.iter().map(|(r, _)| r.measured_secs).sum();
    row.publisher_rate = if row.measured_secs > 0.0 {
        row.sent as f64 / row.measured_secs
    } else {
        0.0
    };
    row.slow = first.slow.clone();
    for (other, _) in &parts[1..] {
        for (total, part) in row.slow.iter_mut().zip(&other.slow) {
            total.received += part.received;
            total.lost += part.lost;
            total.duplicates += part.duplicates;
            total.pause_ns = total.pause_ns.max(part.pause_ns);
        }
    }
    row.latency = Percentiles::of(&merged);
    row.histogram_file = histogram_file;
    Ok((row, merged))
}

/// The median of sorted `values` (the mean of the middle two for an even
/// count; 0 for none).
fn median(values: &[u64]) -> u64 {
    match values.len() {
        0 => 0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2,
    }
}

/// The raw iceoryx2 row of `row`'s scenario.
pub fn baseline<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.spec.scenario == row.spec.scenario && r.spec.transport == Transport::RawIceoryx2)
}

/// `value / base`, `None` when there is no base.
pub fn ratio(value: u64, base: u64) -> Option<f64> {
    (base > 0 && value > 0).then(|| value as f64 / base as f64)
}

/// ns as microseconds with two decimals.
pub fn micros(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}

/// A rate as "1.234 M/s" or "98.7 k/s".
pub fn rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.3} M/s", per_second / 1e6)
    } else {
        format!("{:.1} k/s", per_second / 1e3)
    }
}

fn ratio_cell(value: Option<f64>) -> String {
    match value {
        None => "-".to_string(),
        Some(r) if r < 0.1 => format!("{r:.3}x"),
        Some(r) => format!("{r:.2}x"),
    }
}

fn loss_cell(lost: u64, fraction: f64) -> String {
    if lost == 0 {
        "0".to_string()
    } else {
        format!("{lost} ({:.3} %)", fraction * 100.0)
    }
}

/// The table in Markdown: one section line per scenario, one row per run.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| scenario | transport | wait | subs | p50 us | p90 us | p99 us | p99.9 us | max us | publisher rate | late p99 us | loss | dup/ooo | p50 vs raw iceoryx2 | p99 vs raw iceoryx2 | p99 of a round, median us | vs raw | steal ms | note |\n",
    );
    out.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for row in rows {
        let base = baseline(rows, row);
        let p50 = base.and_then(|b| ratio(row.latency.p50, b.latency.p50));
        let p99 = base.and_then(|b| ratio(row.latency.p99, b.latency.p99));
        let round_p99 = base.and_then(|b| ratio(row.round_p99_median, b.round_p99_median));
        let note = row
            .invalid()
            .into_iter()
            .chain(row.slow.iter().map(|s| {
                let dup = if s.duplicates > 0 {
                    format!(", {} duplicate or out of order", s.duplicates)
                } else {
                    String::new()
                };
                format!(
                    "slow subscriber: {} received, {} lost{dup}, {} us per record paused (measured)",
                    s.received,
                    s.lost,
                    micros(s.pause_ns)
                )
            }))
            .chain((row.negative > 0).then(|| {
                format!(
                    "{} records received before their ts_publish (clock step), recorded as 1 ns",
                    row.negative
                )
            }))
            .chain((row.from_wal > 0).then(|| {
                format!(
                    "{} records came from the WAL, filling holes the transport left (not lost, late)",
                    row.from_wal
                )
            }))
            .chain((row.pin_failures > 0).then(|| format!("core pinning failed for {}", row.pin_failures)))
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.spec.scenario,
            row.spec.label(),
            row.spec.wait.label(),
            row.spec.subscribers + row.spec.slow_subscribers,
            micros(row.latency.p50),
            micros(row.latency.p90),
            micros(row.latency.p99),
            micros(row.latency.p999),
            micros(row.latency.max),
            rate(row.publisher_rate),
            if row.spec.rate > 0 {
                micros(row.late_p99_ns)
            } else {
                "-".to_string()
            },
            loss_cell(row.lost, row.loss_fraction()),
            row.duplicates,
            ratio_cell(p50),
            ratio_cell(p99),
            micros(row.round_p99_median),
            ratio_cell(round_p99),
            row.steal_ms.map_or_else(|| "-".to_string(), |ms| ms.to_string()),
            note,
        );
    }
    out
}

/// One product target and whether this run meets it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    /// The claim.
    pub claim: &'static str,
    /// What was measured, in words.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not measured.
    pub met: Option<bool>,
}

fn find<'a>(rows: &'a [Row], scenario: &str, transport: Transport) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.spec.scenario == scenario && r.spec.transport == transport)
}

/// A raw iceoryx2 p50 above this (ns) in the paced spin scenario means
/// the spinning subscriber was off its core for much of the run (on an
/// idle machine it is 1-2 us): the latency comparisons of that run say
/// more about the scheduler than about the transports.
pub const DISTURBED_BASELINE_P50_NS: u64 = 50_000;

/// Why the latency targets of this run are not conclusive, if they are not.
pub fn disturbed(rows: &[Row]) -> Option<String> {
    let raw = find(rows, "paced-spin", Transport::RawIceoryx2)?;
    (raw.latency.p50 > DISTURBED_BASELINE_P50_NS).then(|| {
        format!(
            "inconclusive: raw iceoryx2 p50 {} us with a spinning subscriber (1-2 us on an idle machine): the processes were off their cores (machine busy)",
            micros(raw.latency.p50)
        )
    })
}

/// The targets of the benchmark issue, checked against `rows`. A
/// latency target of a [`disturbed`] run is not judged (`met: None`),
/// unless the mdbus row itself is broken (nothing received, a loss or a
/// duplicate): that is a miss whatever the machine did.
pub fn targets(rows: &[Row]) -> Vec<TargetCheck> {
    let mut checks = targets_as_measured(rows);
    if let Some(why) = disturbed(rows) {
        for (check, broken) in checks
            .iter_mut()
            .filter(|(c, _)| c.claim.contains("p50") || c.claim.contains("p99"))
        {
            if check.met.is_some() && !*broken {
                check.measured = format!("{}; {why}", check.measured);
                check.met = None;
            }
        }
    }
    checks.into_iter().map(|(c, _)| c).collect()
}

/// Why an mdbus row cannot meet a latency target, if it cannot: it
/// received nothing, lost records or is [invalid](Row::invalid).
fn broken(row: &Row) -> Option<String> {
    if row.latency.count == 0 {
        Some("nothing received".to_string())
    } else if row.lost > 0 {
        Some(format!("{} lost of {}", row.lost, row.expected()))
    } else if row.duplicates > 0 {
        Some(format!("{} duplicate or out-of-order records", row.duplicates))
    } else {
        None
    }
}

/// A p50 target on the mdbus row `m`: `x` is the ratio, `ok` judges it.
fn p50_check(claim: &'static str, m: &Row, other: &Row, x: Option<f64>, ok: fn(f64) -> bool) -> (TargetCheck, bool) {
    let measured = format!(
        "{} us vs {} us: {}",
        micros(m.latency.p50),
        micros(other.latency.p50),
        ratio_cell(x)
    );
    match broken(m) {
        Some(why) => (
            TargetCheck {
                claim,
                measured: format!("{measured}; mdbus row broken: {why}"),
                met: Some(false),
            },
            true,
        ),
        None => (
            TargetCheck {
                claim,
                measured,
                met: x.map(ok),
            },
            false,
        ),
    }
}

/// Records per second one subscriber that keeps up received over the
/// measured phase (what the bus delivered, not what was sent).
pub fn delivered_rate(row: &Row) -> f64 {
    if row.measured_secs <= 0.0 || row.spec.subscribers == 0 {
        return 0.0;
    }
    let received = row.expected().saturating_sub(row.lost);
    received as f64 / row.spec.subscribers as f64 / row.measured_secs
}

/// Each check, and whether it failed on a broken mdbus row (so a
/// disturbed run does not excuse it).
fn targets_as_measured(rows: &[Row]) -> Vec<(TargetCheck, bool)> {
    let mut checks = Vec::new();
    let mdbus = find(rows, "paced-spin", Transport::MdbusWalInterval);
    let raw = find(rows, "paced-spin", Transport::RawIceoryx2);
    let uds = find(rows, "paced-spin", Transport::UnixDatagram);
    let claim = "mdbus cross-process p50 <= 1.2x raw iceoryx2 with the WAL on";
    checks.push(match (mdbus, raw) {
        (Some(m), Some(r)) => p50_check(claim, m, r, ratio(m.latency.p50, r.latency.p50), |x| x <= 1.2),
        _ => (not_measured(claim), false),
    });
    let claim = "mdbus p50 >= 10x better than the Unix socket";
    checks.push(match (mdbus, uds) {
        (Some(m), Some(u)) => p50_check(claim, m, u, ratio(u.latency.p50, m.latency.p50), |x| x >= 10.0),
        _ => (not_measured(claim), false),
    });
    let claim = ">= 2 M records/s sustained through the bus with the WAL on, no loss";
    checks.push(match find(rows, "sustained-2m", Transport::MdbusWalInterval) {
        Some(r) => (
            TargetCheck {
                claim,
                measured: format!(
                    "publisher {}, {} lost of {}, {} duplicate or out of order",
                    rate(r.publisher_rate),
                    r.lost,
                    r.expected(),
                    r.duplicates
                ),
                met: Some(r.publisher_rate >= 2e6 * 0.99 && r.lost == 0 && r.duplicates == 0 && r.sent > 0),
            },
            false,
        ),
        None => (not_measured(claim), false),
    });
    let claim = "persisted IPC (WAL on) p99 <= 10 us at 1 M records/s";
    checks.push(match find(rows, "persisted-1m", Transport::MdbusWalInterval) {
        Some(r) => {
            let delivered = delivered_rate(r);
            let broken = broken(r);
            (
                TargetCheck {
                    claim,
                    measured: format!(
                        "p99 {} us, publisher {}, delivered {} per subscriber, {} lost of {}, {} duplicate or out of order",
                        micros(r.latency.p99),
                        rate(r.publisher_rate),
                        rate(delivered),
                        r.lost,
                        r.expected(),
                        r.duplicates
                    ),
                    met: Some(broken.is_none() && r.latency.p99 <= 10_000 && delivered >= 1e6 * 0.99),
                },
                broken.is_some(),
            )
        }
        None => (not_measured(claim), false),
    });
    checks
}

fn not_measured(claim: &'static str) -> TargetCheck {
    TargetCheck {
        claim,
        measured: "not measured in this run".to_string(),
        met: None,
    }
}

/// The targets as a Markdown table.
pub fn targets_markdown(checks: &[TargetCheck]) -> String {
    let mut out = String::from("| target | measured | met |\n|---|---|---|\n");
    for check in checks {
        let met = match check.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        let _ = writeln!(out, "| {} | {} | {} |", check.claim, check.measured, met);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::scenario::{SLOW_NS, Wait};

    pub(crate) fn row(scenario: &str, transport: Transport, p50: u64, p99: u64) -> Row {
        Row {
            spec: RunSpec {
                scenario: scenario.to_string(),
                title: scenario.to_string(),
                transport,
                wait: Wait::Spin,
                subscribers: 1,
                slow_subscribers: 0,
                slow_ns: SLOW_NS,
                rate: 100_000,
                batch: 1,
                warmup_s: 0.1,
                measure_s: 1.0,
                round: 0,
                rounds: 1,
                pin: false,
            },
            latency: Percentiles {
                count: 1000,
                p50,
                p90: p50,
                p99,
                p999: p99,
                max: p99,
            },
            sent: 1000,
            measured_secs: 0.01,
            publisher_rate: 100_000.0,
            lost: 0,
            duplicates: 0,
            negative: 0,
            from_wal: 0,
            pin_failures: 0,
            late_p99_ns: 0,
            steal_ms: None,
            round_p99_median: p99,
            slow: Vec::new(),
            histogram_file: String::new(),
        }
    }

    #[test]
    fn ratio_is_against_the_raw_row_of_the_same_scenario() {
        let rows = vec![
            row("a", Transport::RawIceoryx2, 1000, 2000),
            row("a", Transport::MdbusWalInterval, 1100, 5000),
            row("b", Transport::RawIceoryx2, 4000, 8000),
            row("b", Transport::UnixDatagram, 20_000, 40_000),
        ];
        let base = baseline(&rows, &rows[1]).unwrap();
        assert_eq!(base.latency.p50, 1000);
        assert_eq!(ratio(rows[1].latency.p50, base.latency.p50), Some(1.1));
        assert_eq!(baseline(&rows, &rows[3]).unwrap().latency.p50, 4000);
        let table = markdown(&rows);
        assert!(table.contains("| a | mdbus (WAL Interval) | spin | 1 | 1.10 | 1.10 | 5.00 | 5.00 | 5.00 | 100.0 k/s | 0.00 | 0 | 0 | 1.10x | 2.50x |"), "{table}");
        assert!(
            table.contains("| b | Unix datagram socket | spin | 1 | 20.00 |"),
            "{table}"
        );
        assert!(table.contains("| 5.00x | 5.00x |"), "{table}");
        // Header, separator and one line per row.
        assert_eq!(table.lines().count(), 2 + rows.len());
    }

    #[test]
    fn a_scenario_without_raw_row_gets_dashes() {
        let rows = vec![row("c", Transport::Crossbeam, 300, 900)];
        assert!(baseline(&rows, &rows[0]).is_none());
        assert!(markdown(&rows).contains("| - | - |"));
        assert_eq!(ratio(5, 0), None);
    }

    #[test]
    fn loss_and_slow_subscriber_cells() {
        let mut r = row("slow-subscriber", Transport::RawIceoryx2, 1000, 2000);
        r.spec.subscribers = 2;
        r.spec.slow_subscribers = 1;
        r.sent = 1000;
        r.lost = 5;
        r.slow = vec![SlowOutcome {
            received: 200,
            lost: 800,
            duplicates: 0,
            pause_ns: 0,
        }];
        assert_eq!(r.expected(), 2000);
        let table = markdown(&[r]);
        assert!(table.contains("| 3 |"), "{table}");
        assert!(table.contains("5 (0.250 %)"), "{table}");
        assert!(
            table.contains("slow subscriber: 200 received, 800 lost, 0.00 us per record paused"),
            "{table}"
        );
        assert!(!table.contains("invalid"), "{table}");
    }

    #[test]
    fn records_from_the_wal_are_summed_over_rounds_and_noted() {
        let rounds: Vec<(Row, Histogram<u64>)> = [120, 30]
            .into_iter()
            .map(|from_wal| {
                let mut r = row("unpaced-spin", Transport::MdbusSubscriber, 1000, 2000);
                r.from_wal = from_wal;
                (r, hist::new_histogram())
            })
            .collect();
        let (row, _) = combine(&rounds, "r.hgrm".to_string()).unwrap();
        assert_eq!(row.from_wal, 150);
        let table = markdown(&[row]);
        assert!(
            table.contains("150 records came from the WAL, filling holes the transport left (not lost, late)"),
            "{table}"
        );
        let quiet = markdown(&[self::row("unpaced-spin", Transport::MdbusWalInterval, 1000, 2000)]);
        assert!(!quiet.contains("from the WAL"), "{quiet}");
    }

    #[test]
    fn duplicates_mark_the_row_invalid() {
        let mut r = row("paced-spin", Transport::Crossbeam, 1000, 2000);
        r.duplicates = 3;
        let table = markdown(std::slice::from_ref(&r));
        assert!(table.contains("| 0 | 3 |"), "{table}");
        assert!(
            table.contains("**invalid**: 3 duplicate or out-of-order records"),
            "{table}"
        );
        r.duplicates = 0;
        r.slow = vec![SlowOutcome {
            received: 10,
            lost: 0,
            duplicates: 2,
            pause_ns: 0,
        }];
        let table = markdown(&[r]);
        assert!(table.contains("**invalid**: 2 duplicate"), "{table}");
        assert!(
            table.contains("10 received, 0 lost, 2 duplicate or out of order"),
            "{table}"
        );
    }

    #[test]
    fn rates_and_micros_format() {
        assert_eq!(rate(2_345_678.0), "2.346 M/s");
        assert_eq!(rate(99_950.0), "100.0 k/s");
        assert_eq!(micros(1234), "1.23");
    }

    #[test]
    fn targets_met_missed_and_not_measured() {
        let mut rows = vec![
            row("paced-spin", Transport::RawIceoryx2, 1000, 2000),
            row("paced-spin", Transport::MdbusWalInterval, 1300, 3000),
            row("paced-spin", Transport::UnixDatagram, 15_000, 30_000),
            row("persisted-1m", Transport::MdbusWalInterval, 2000, 9000),
        ];
        rows[3].publisher_rate = 1_000_000.0;
        rows[3].measured_secs = 0.001;
        let checks = targets(&rows);
        assert_eq!(checks.len(), 4);
        assert_eq!(checks[0].met, Some(false), "1.3x is over 1.2x");
        assert_eq!(checks[1].met, Some(true), "15/1.3 > 10");
        assert_eq!(checks[2].met, None, "no sustained run");
        assert_eq!(checks[3].met, Some(true));
        let text = targets_markdown(&checks);
        assert!(text.contains("**no**") && text.contains("| yes |") && text.contains("not measured"));
    }

    #[test]
    fn combine_merges_rounds() {
        let mut a = row("slow-subscriber", Transport::RawIceoryx2, 0, 0);
        a.sent = 1000;
        a.lost = 3;
        a.measured_secs = 0.5;
        a.slow = vec![SlowOutcome {
            received: 10,
            lost: 990,
            duplicates: 0,
            pause_ns: 0,
        }];
        let mut b = a.clone();
        b.sent = 3000;
        b.lost = 0;
        b.measured_secs = 1.5;
        b.slow = vec![SlowOutcome {
            received: 30,
            lost: 2970,
            duplicates: 0,
            pause_ns: 0,
        }];
        let mut ha = hist::new_histogram();
        let mut hb = hist::new_histogram();
        for v in 1..=1000 {
            hist::record(&mut ha, v);
        }
        for v in 1001..=4000 {
            hist::record(&mut hb, v);
        }
        assert!(same_run(&a, &b));
        let (row, merged) = combine(&[(a, ha), (b, hb)], "all.hgrm".to_string()).unwrap();
        assert_eq!(merged.len(), 4000);
        assert_eq!(row.latency, Percentiles::of(&merged));
        assert_eq!((row.sent, row.lost), (4000, 3));
        assert_eq!(row.publisher_rate, 2000.0);
        assert_eq!(
            row.slow,
            vec![SlowOutcome {
                received: 40,
                lost: 3960,
                duplicates: 0,
                pause_ns: 0,
            }]
        );
        assert_eq!(row.histogram_file, "all.hgrm");
        assert!(combine(&[], String::new()).is_err());
    }

    #[test]
    fn one_disturbed_round_moves_the_merged_p99_not_the_median_of_the_rounds() {
        let rounds: Vec<(Row, Histogram<u64>)> = [(10_000, Some(0)), (5_000_000, Some(30)), (20_000, Some(10))]
            .into_iter()
            .map(|(p99, steal)| {
                let mut r = row("paced-spin", Transport::RawIceoryx2, 1000, p99);
                r.steal_ms = steal;
                let mut h = hist::new_histogram();
                hist::record(&mut h, i64::try_from(p99).unwrap());
                (r, h)
            })
            .collect();
        let (row3, _) = combine(&rounds, "r.hgrm".to_string()).unwrap();
        assert_eq!(row3.round_p99_median, 20_000);
        assert_eq!(row3.steal_ms, Some(40));
        let (row2, _) = combine(&rounds[..2], "r.hgrm".to_string()).unwrap();
        assert_eq!(row2.round_p99_median, 2_505_000, "the mean of the middle two");
        let mut unknown = rounds[0].clone();
        unknown.0.steal_ms = None;
        let (row_none, _) = combine(&[unknown, rounds[1].clone()], "r.hgrm".to_string()).unwrap();
        assert_eq!(
            row_none.steal_ms, None,
            "a round without the number makes the sum unknown"
        );
        assert!(markdown(&[row3]).contains("| 20.00 | 1.00x | 40 |"));
    }

    #[test]
    fn rows_of_other_scenarios_or_waits_are_other_runs() {
        let a = row("x", Transport::RawIceoryx2, 1, 1);
        let mut b = a.clone();
        b.spec.wait = crate::scenario::Wait::Block;
        assert!(!same_run(&a, &b));
        assert!(!same_run(&a, &row("y", Transport::RawIceoryx2, 1, 1)));
    }

    #[test]
    fn latency_targets_of_a_disturbed_run_are_not_judged() {
        let mut rows = vec![
            row("paced-spin", Transport::RawIceoryx2, 3_000_000, 8_000_000),
            row("paced-spin", Transport::MdbusWalInterval, 400_000, 9_000_000),
            row("paced-spin", Transport::UnixDatagram, 40_000, 100_000),
            row("sustained-2m", Transport::MdbusWalInterval, 1000, 2000),
        ];
        rows[3].publisher_rate = 1e6;
        assert!(disturbed(&rows).unwrap().contains("3000.00 us"));
        let checks = targets(&rows);
        assert_eq!(checks[0].met, None);
        assert!(checks[0].measured.contains("inconclusive"));
        assert_eq!(checks[1].met, None);
        // Throughput is judged anyway.
        assert_eq!(checks[2].met, Some(false));
        rows[0].latency.p50 = 1500;
        assert_eq!(disturbed(&rows), None);
    }

    #[test]
    fn persisted_target_fails_on_loss_or_low_delivered_rate() {
        let mut r = row("persisted-1m", Transport::MdbusWalInterval, 2000, 9000);
        r.publisher_rate = 1_000_000.0;
        r.sent = 1_000_000;
        r.measured_secs = 1.0;
        assert_eq!(targets(std::slice::from_ref(&r))[3].met, Some(true));
        r.lost = 1;
        let check = &targets(std::slice::from_ref(&r))[3];
        assert_eq!(check.met, Some(false), "{check:?}");
        // Sent at 1 M/s but delivered 0.9 M/s.
        r.lost = 100_000;
        let check = &targets(std::slice::from_ref(&r))[3];
        assert_eq!(check.met, Some(false));
        assert!(check.measured.contains("delivered 900.0 k/s"), "{check:?}");
        assert_eq!(delivered_rate(&r), 900_000.0);
        r.lost = 0;
        r.duplicates = 1;
        assert_eq!(targets(&[r])[3].met, Some(false));
    }

    #[test]
    fn a_broken_mdbus_row_fails_the_p50_targets() {
        let mut rows = vec![
            row("paced-spin", Transport::RawIceoryx2, 1000, 2000),
            row("paced-spin", Transport::MdbusWalInterval, 0, 0),
            row("paced-spin", Transport::UnixDatagram, 15_000, 30_000),
        ];
        rows[1].latency.count = 0;
        rows[1].lost = 1000;
        let checks = targets(&rows);
        for check in &checks[..2] {
            assert_eq!(check.met, Some(false), "{check:?}");
            assert!(check.measured.contains("nothing received"), "{check:?}");
        }
        rows[1].latency = rows[0].latency;
        rows[1].lost = 7;
        let checks = targets(&rows);
        assert_eq!(checks[0].met, Some(false));
        assert!(checks[0].measured.contains("7 lost of 1000"), "{:?}", checks[0]);
        // A disturbed run does not excuse a broken row.
        rows[0].latency.p50 = 3_000_000;
        let checks = targets(&rows);
        assert_eq!(checks[0].met, Some(false));
        assert_eq!(checks[1].met, Some(false));
    }

    #[test]
    fn sustained_target_fails_on_any_loss() {
        let mut r = row("sustained-2m", Transport::MdbusWalInterval, 1000, 2000);
        r.publisher_rate = 2_000_000.0;
        r.lost = 1;
        assert_eq!(targets(&[r.clone()])[2].met, Some(false));
        r.lost = 0;
        assert_eq!(targets(&[r])[2].met, Some(true));
    }
}
