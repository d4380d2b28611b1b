//! The machine's floor: what a spinning receiver on this machine waits
//! with no transport at all, only because its core is taken from it. One
//! thread per core, pinned, reads the clock in a tight loop and keeps
//! every gap between two reads longer than [`GAP_NS`]: the times its core
//! was taken from it (an interrupt, a kernel thread, the hypervisor). A record that arrives at
//! a random moment waits for the rest of the gap it falls in, so the wait
//! `W` a core imposes has `P(W > x) = sum over gaps g of max(g - x, 0) / T`
//! (T: the probe's length); [`CoreFloor`] gives its p99 and p99.9.
//!
//! A gap that takes both cores at once (the hypervisor stopping the whole
//! machine) delays the publisher's send as much as the receive, and a
//! latency measured from the send does not see it. [`ideal_link`] replays
//! the gaps both cores saw at the same moments through a transport that
//! costs nothing: a record due at `t` is sent at `t`, or when the
//! sender's gap around `t` ends; it is received at once, or when the
//! receiver's gap around the send ends. Its percentiles are the latency
//! the machine itself imposed during the probe, the floor of the harness's
//! `paced-spin` rows (the idea of jHiccup).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::hist::{Percentiles, new_histogram, record};

/// Gaps between two clock reads longer than this count (ns): a clock
/// read and the loop take well under it, an interrupt well over.
pub const GAP_NS: u64 = 2_000;

/// At most this many gaps are kept per core (a core that loses more has
/// no floor worth the name; the rest are still summed in `lost_ns`).
const MAX_GAPS: usize = 1 << 22;

/// One core's floor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CoreFloor {
    /// The core (index into the cores the process may use).
    pub core: usize,
    /// Whether the probe thread was pinned to it (`false`: ran unpinned).
    pub pinned: bool,
    /// How long the probe ran, ns.
    pub span_ns: u64,
    /// Time lost in gaps over [`GAP_NS`], ns.
    pub lost_ns: u64,
    /// Gaps over 10 us.
    pub over_10us: u64,
    /// Gaps over 100 us.
    pub over_100us: u64,
    /// Gaps over 1 ms.
    pub over_1ms: u64,
    /// The longest gap, ns.
    pub max_ns: u64,
    /// p99 of the wait of a record arriving at a random moment, ns.
    pub p99_ns: u64,
    /// p99.9 of that wait, ns.
    pub p999_ns: u64,
}

/// The wait `x` (ns) with `P(W > x) <= 1 - q` for gaps `gaps` within
/// `span_ns` (see the module docs): the smallest such `x`, to 1 ns.
pub fn wait_quantile(gaps: &[u64], span_ns: u64, q: f64) -> u64 {
    let allowed = (1.0 - q) * span_ns as f64;
    let excess = |x: u64| gaps.iter().map(|&g| g.saturating_sub(x)).sum::<u64>() as f64;
    let (mut lo, mut hi) = (0u64, gaps.iter().copied().max().unwrap_or(0));
    if excess(lo) <= allowed {
        return 0;
    }
    // excess(hi) == 0 <= allowed; excess is non-increasing in x.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if excess(mid) <= allowed {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Summarises the gaps one probe saw.
pub fn summarise(core: usize, pinned: bool, span_ns: u64, gaps: &[u64], lost_ns: u64) -> CoreFloor {
    let over = |limit: u64| gaps.iter().filter(|&&g| g > limit).count() as u64;
    CoreFloor {
        core,
        pinned,
        span_ns,
        lost_ns,
        over_10us: over(10_000),
        over_100us: over(100_000),
        over_1ms: over(1_000_000),
        max_ns: gaps.iter().copied().max().unwrap_or(0),
        p99_ns: wait_quantile(gaps, span_ns, 0.99),
        p999_ns: wait_quantile(gaps, span_ns, 0.999),
    }
}

/// A gap: `(start, length)`, ns from the probes' common start.
pub type Gap = (u64, u64);

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Spins until `epoch + length`, returning whether it was pinned and its
/// gaps (at most [`MAX_GAPS`]; the rest summed in the returned lost time).
fn probe(core: Option<core_affinity::CoreId>, epoch: Instant, length: Duration) -> (bool, Vec<Gap>, u64) {
    let pinned = core.is_some_and(core_affinity::set_for_current);
    let mut gaps = Vec::with_capacity(1 << 16);
    let mut lost_ns = 0u64;
    let mut last = Instant::now();
    loop {
        let now = Instant::now();
        let gap = nanos(now - last);
        if gap > GAP_NS {
            lost_ns = lost_ns.saturating_add(gap);
            if gaps.len() < MAX_GAPS {
                gaps.push((nanos(last.saturating_duration_since(epoch)), gap));
            }
        }
        last = now;
        if now - epoch >= length {
            break;
        }
    }
    (pinned, gaps, lost_ns)
}

/// What the probes saw: each core's floor, and the ideal link's latency
/// from core 0 (the pinned publisher's) to core 1 (the first subscriber's).
#[derive(Debug, Clone)]
pub struct Floor {
    /// One per core.
    pub cores: Vec<CoreFloor>,
    /// [`ideal_link`] from core 0 to core 1 (`None` on one core).
    pub link: Option<Percentiles>,
}

/// Runs a probe on every core at once for `length` (every core busy, as
/// in a pinned run where the publisher and the subscriber spin).
pub fn measure(length: Duration) -> Floor {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let count = cores.len().max(1);
    let epoch = Instant::now();
    let threads: Vec<_> = (0..count)
        .map(|index| {
            let core = cores.get(index).copied();
            std::thread::spawn(move || probe(core, epoch, length))
        })
        .collect();
    let probes: Vec<_> = threads.into_iter().filter_map(|t| t.join().ok()).collect();
    let span_ns = nanos(length);
    let link = match probes.as_slice() {
        [sender, receiver, ..] => Percentiles::of(&ideal_link(&sender.1, &receiver.1, span_ns, LINK_STEP_NS)).into(),
        _ => None,
    };
    let cores = probes
        .iter()
        .enumerate()
        .map(|(index, (pinned, gaps, lost_ns))| {
            let lengths: Vec<u64> = gaps.iter().map(|g| g.1).collect();
            summarise(index, *pinned, span_ns, &lengths, *lost_ns)
        })
        .collect();
    Floor { cores, link }
}

/// The ideal link's time step: one record due every this many ns.
pub const LINK_STEP_NS: u64 = 100;

/// The latency of a transport that costs nothing, between a sender and a
/// receiver that saw `sender` and `receiver` gaps (each sorted by start,
/// not overlapping), for a record due every `step_ns` over `span_ns` (see
/// the module docs). A record that would be received at once is recorded
/// as 1 ns (the histogram's floor).
pub fn ideal_link(sender: &[Gap], receiver: &[Gap], span_ns: u64, step_ns: u64) -> Histogram<u64> {
    let mut histogram = new_histogram();
    let (mut i, mut j) = (0, 0);
    let mut t = 0;
    while t < span_ns {
        while i < sender.len() && sender[i].0 + sender[i].1 <= t {
            i += 1;
        }
        let sent = match sender.get(i) {
            Some(&(start, len)) if start <= t => start + len,
            _ => t,
        };
        // `sent` never decreases as `t` grows, so `j` only moves forward.
        while j < receiver.len() && receiver[j].0 + receiver[j].1 <= sent {
            j += 1;
        }
        let wait = match receiver.get(j) {
            Some(&(start, len)) if start <= sent => start + len - sent,
            _ => 0,
        };
        record(&mut histogram, i64::try_from(wait.max(1)).unwrap_or(i64::MAX));
        t += step_ns.max(1);
    }
    histogram
}

/// The floor as Markdown: a table of the cores, a line for the link.
pub fn markdown(floor: &Floor) -> String {
    let us = |ns: u64| format!("{:.2}", ns as f64 / 1000.0);
    let floors = &floor.cores;
    let mut out = String::from(
        "| core | pinned | probe s | time lost | gaps > 10 us | > 100 us | > 1 ms | max gap us | wait p99 us | wait p99.9 us |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for f in floors {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.3} % | {} | {} | {} | {} | {} | {} |\n",
            f.core,
            if f.pinned { "yes" } else { "no" },
            f.span_ns as f64 / 1e9,
            if f.span_ns > 0 {
                f.lost_ns as f64 * 100.0 / f.span_ns as f64
            } else {
                0.0
            },
            f.over_10us,
            f.over_100us,
            f.over_1ms,
            us(f.max_ns),
            us(f.p99_ns),
            us(f.p999_ns),
        ));
    }
    if let Some(link) = &floor.link {
        out.push_str(&format!(
            "\nThe ideal link, core 0 to core 1, over these gaps: p50 {} us, p90 {} us, p99 {} us, p99.9 {} us, max {} us.\n",
            us(link.p50),
            us(link.p90),
            us(link.p99),
            us(link.p999),
            us(link.max)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gap_of_a_hundredth_of_the_time_sets_the_p999_not_the_p99() {
        // 10 ms lost in 1 s: P(W > x) = (10 ms - x) / 1 s.
        let gaps = [10_000_000];
        assert_eq!(wait_quantile(&gaps, 1_000_000_000, 0.99), 0, "P(W > 0) = 1 % exactly");
        // P(W > x) <= 0.1 % once x >= 9 ms.
        assert_eq!(wait_quantile(&gaps, 1_000_000_000, 0.999), 9_000_000);
        assert_eq!(wait_quantile(&[], 1_000_000_000, 0.999), 0);
    }

    #[test]
    fn many_short_gaps_set_the_p99() {
        // 1000 gaps of 50 us in 1 s: 5 % of the time; P(W > x) =
        // 1000 * (50 us - x) / 1 s <= 1 % once x >= 40 us.
        let gaps = vec![50_000; 1000];
        assert_eq!(wait_quantile(&gaps, 1_000_000_000, 0.99), 40_000);
        let f = summarise(1, true, 1_000_000_000, &gaps, 50_000_000);
        assert_eq!(
            (f.over_10us, f.over_100us, f.max_ns, f.p99_ns),
            (1000, 0, 50_000, 40_000)
        );
        let floor = Floor {
            cores: vec![f],
            link: None,
        };
        assert!(markdown(&floor).contains("| 1 | yes | 1.0 | 5.000 % | 1000 | 0 | 0 | 50.00 | 40.00 |"));
    }

    #[test]
    fn the_ideal_link_waits_for_the_receiver_but_not_for_a_gap_both_cores_share() {
        // 1 ms, a record every 1 us. The receiver alone is away for
        // 100 us from 200 us: records sent then wait the rest (1..=100 us).
        let span = 1_000_000;
        let alone = ideal_link(&[], &[(200_000, 100_000)], span, 1000);
        let p = Percentiles::of(&alone);
        assert_eq!(alone.len(), 1000);
        assert_eq!(
            alone.len() - alone.count_at(1),
            100,
            "the records sent during the gap wait"
        );
        assert!((99_000..=100_100).contains(&p.max), "{p:?}");
        // Both away at once: the records are sent when the sender is back,
        // and the receiver is back by then: nothing waits.
        let shared = ideal_link(&[(200_000, 100_000)], &[(200_000, 100_000)], span, 1000);
        assert_eq!(shared.len() - shared.count_at(1), 0);
        // The receiver away longer than the sender: only the difference.
        let longer = ideal_link(&[(200_000, 100_000)], &[(200_000, 150_000)], span, 1000);
        assert!((49_000..=50_100).contains(&Percentiles::of(&longer).max));
    }

    #[test]
    fn a_short_probe_runs_on_every_core_and_accounts_its_span() {
        let floor = measure(Duration::from_millis(50));
        let cores = core_affinity::get_core_ids().map_or(1, |c| c.len().max(1));
        assert_eq!(floor.cores.len(), cores);
        assert_eq!(floor.link.is_some(), cores > 1);
        for f in &floor.cores {
            assert!(f.span_ns >= 50_000_000, "{f:?}");
            assert!(
                f.lost_ns <= f.span_ns && f.p999_ns >= f.p99_ns && f.max_ns >= f.p999_ns,
                "{f:?}"
            );
        }
    }
}
