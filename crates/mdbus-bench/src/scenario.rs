//! What a run measures: the transport, how subscribers wait, how many
//! there are, the rate, and the scenario matrices of the quick, full and
//! smoke modes.

use serde::{Deserialize, Serialize};

use crate::payload::MAX_BATCH;

/// The transports the harness compares. Every one carries the same
/// 376-byte `MdSample` (a `Tick`) per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// mdbus over iceoryx2: `FeedPublisher` (seq, WAL `SyncPolicy::Never`,
    /// send, board) to `IoxReceiver`s in other processes.
    MdbusWalNever,
    /// The same with the WAL at the default `SyncPolicy::Interval` (2 ms
    /// group commit).
    MdbusWalInterval,
    /// The same publisher (WAL `Interval`) to the full subscriber users
    /// run: `mdbus_subscriber::Subscriber` (seq merge, holes filled from
    /// the WAL, L1 and L2 kept) over `IoxReceiver`, records taken with
    /// `next_event_ref`. The receive path end to end.
    MdbusSubscriber,
    /// iceoryx2 0.10 publish-subscribe used directly (loan, write, send;
    /// an event notification per batch only when subscribers block): no
    /// WAL, no board, no sequencing. The baseline of the ratio columns.
    RawIceoryx2,
    /// Raw iceoryx2 with the bare durable I/O beside it and no mdbus code:
    /// each batch written to a file before its send, a thread on the
    /// publisher's core `fdatasync`ing the file every 2 ms
    /// ([`crate::endpoints::fsync`]). What durability costs on the machine.
    RawIceoryx2Fsync,
    /// A Unix domain datagram socket per subscriber (blocking sends: the
    /// socket pushes back on the publisher).
    UnixDatagram,
    /// A bounded crossbeam channel per subscriber between two threads of
    /// one process (blocking sends).
    Crossbeam,
}

impl Transport {
    /// Every transport, in table order.
    pub const ALL: [Transport; 7] = [
        Transport::RawIceoryx2,
        Transport::RawIceoryx2Fsync,
        Transport::MdbusWalNever,
        Transport::MdbusWalInterval,
        Transport::MdbusSubscriber,
        Transport::UnixDatagram,
        Transport::Crossbeam,
    ];

    /// The name in tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            Transport::MdbusWalNever => "mdbus (WAL Never)",
            Transport::MdbusWalInterval => "mdbus (WAL Interval)",
            Transport::MdbusSubscriber => "mdbus Subscriber (WAL Interval, L1 + L2)",
            Transport::RawIceoryx2 => "raw iceoryx2",
            Transport::RawIceoryx2Fsync => "raw iceoryx2 + fdatasync",
            Transport::UnixDatagram => "Unix datagram socket",
            Transport::Crossbeam => "crossbeam (threads)",
        }
    }

    /// Whether it needs the `iceoryx2` feature.
    pub fn needs_iceoryx2(self) -> bool {
        matches!(
            self,
            Transport::MdbusWalNever
                | Transport::MdbusWalInterval
                | Transport::MdbusSubscriber
                | Transport::RawIceoryx2
                | Transport::RawIceoryx2Fsync
        )
    }

    /// Whether it is built into this binary.
    pub fn available(self) -> bool {
        cfg!(feature = "iceoryx2") || !self.needs_iceoryx2()
    }

    /// Whether subscribers run in their own processes (crossbeam: threads).
    pub fn cross_process(self) -> bool {
        self != Transport::Crossbeam
    }
}

/// How a subscriber waits for the next record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Wait {
    /// Poll in a tight loop (one core per subscriber at 100 %).
    Spin,
    /// Sleep in the kernel until woken: iceoryx2's event service
    /// (WaitSet-style listener, `WaitStrategy::Block` for mdbus), a
    /// blocking `recv` on the socket, a blocking channel `recv`.
    Block,
}

impl Wait {
    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Wait::Spin => "spin",
            Wait::Block => "block",
        }
    }
}

/// One run: a publisher and its subscribers on one transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The scenario this run belongs to (rows of one scenario share a
    /// ratio baseline): e.g. `paced-spin`.
    pub scenario: String,
    /// The scenario's title in the report.
    pub title: String,
    /// The transport.
    pub transport: Transport,
    /// How subscribers wait.
    pub wait: Wait,
    /// Subscribers that keep up.
    pub subscribers: usize,
    /// Extra slow subscribers (each busy for `slow_ns` per record).
    pub slow_subscribers: usize,
    /// Work per record of a slow subscriber, ns.
    pub slow_ns: u64,
    /// Records per second; 0 is unpaced (as fast as the publisher goes).
    pub rate: u64,
    /// Records per send batch: a paced publisher waits until this many
    /// are due (1: each record is sent when due); unpaced, every batch.
    pub batch: u64,
    /// Seconds of warm-up (sent, received, not recorded).
    pub warmup_s: f64,
    /// Seconds measured after the warm-up.
    pub measure_s: f64,
    /// Which round this run is (0-based): every scenario runs `rounds`
    /// times, the rounds one after the other, and the harness merges the
    /// rounds of a row, so a burst of load from elsewhere falls on every
    /// transport alike rather than on one.
    pub round: usize,
    /// Rounds of every run.
    pub rounds: usize,
    /// Pin the publisher and subscribers to cores.
    pub pin: bool,
}

impl RunSpec {
    /// The transport's label, with the slow subscribers if any.
    pub fn label(&self) -> String {
        self.transport.label().to_string()
    }
}

/// The scenario matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A few seconds: every transport, paced, spinning, 0.3 s each (CI).
    Smoke,
    /// Every scenario, 1 s each (about a minute).
    Quick,
    /// Every scenario, 5 s each (a few minutes).
    Full,
}

/// The paced rate of the comparison scenarios (records/s).
pub const PACED_RATE: u64 = 100_000;

/// What a slow subscriber spends per record: 50 us, so it takes at most
/// 20 k records/s of the 100 k/s feed.
pub const SLOW_NS: u64 = 50_000;

/// Records per batch of the 1 M records/s scenario.
pub const PERSISTED_BATCH: u64 = 8;

/// The runs of `mode`, transports not built into this binary left out.
pub fn matrix(mode: Mode, pin: bool) -> Vec<RunSpec> {
    let (warmup_s, measure_s, rounds) = match mode {
        Mode::Smoke => (0.1, 0.3, 1),
        Mode::Quick => (0.2, 0.5, 2),
        Mode::Full => (0.3, 1.0, 5),
    };
    let run = |scenario: &str, title: String, transport, wait, subscribers, rate| RunSpec {
        scenario: scenario.to_string(),
        title,
        transport,
        wait,
        subscribers,
        slow_subscribers: 0,
        slow_ns: SLOW_NS,
        rate,
        batch: if rate == 0 { MAX_BATCH } else { 1 },
        warmup_s,
        measure_s,
        round: 0,
        rounds,
        pin,
    };
    let paced = format!("{} k records/s", PACED_RATE / 1000);
    let mut runs = Vec::new();
    for transport in Transport::ALL {
        runs.push(run(
            "paced-spin",
            format!("paced {paced}, 1 subscriber, spin"),
            transport,
            Wait::Spin,
            1,
            PACED_RATE,
        ));
    }
    if mode == Mode::Smoke {
        return in_rounds(runs);
    }
    for transport in Transport::ALL {
        runs.push(run(
            "paced-block",
            format!("paced {paced}, 1 subscriber, block (event wake-up)"),
            transport,
            Wait::Block,
            1,
            PACED_RATE,
        ));
    }
    for transport in Transport::ALL {
        runs.push(run(
            "unpaced-spin",
            format!("unpaced (as fast as the publisher goes, batches of {MAX_BATCH}), 1 subscriber, spin"),
            transport,
            Wait::Spin,
            1,
            0,
        ));
    }
    for subscribers in [2, 4] {
        for transport in [
            Transport::RawIceoryx2,
            Transport::MdbusWalInterval,
            Transport::UnixDatagram,
            Transport::Crossbeam,
        ] {
            runs.push(run(
                &format!("fanout-{subscribers}"),
                format!("paced {paced}, {subscribers} subscribers, block"),
                transport,
                Wait::Block,
                subscribers,
                PACED_RATE,
            ));
        }
    }
    for transport in [
        Transport::RawIceoryx2,
        Transport::MdbusWalInterval,
        Transport::UnixDatagram,
        Transport::Crossbeam,
    ] {
        let mut slow = run(
            "slow-subscriber",
            format!(
                "paced {paced}, 2 subscribers that keep up + 1 slow ({} us per record), block",
                SLOW_NS / 1000
            ),
            transport,
            Wait::Block,
            2,
            PACED_RATE,
        );
        slow.slow_subscribers = 1;
        runs.push(slow);
    }
    for transport in [
        Transport::RawIceoryx2,
        Transport::RawIceoryx2Fsync,
        Transport::MdbusWalInterval,
        Transport::MdbusSubscriber,
    ] {
        let mut persisted = run(
            "persisted-1m",
            format!("paced 1 M records/s in batches of {PERSISTED_BATCH}, 1 subscriber, spin (persisted IPC: WAL on)"),
            transport,
            Wait::Spin,
            1,
            1_000_000,
        );
        persisted.batch = PERSISTED_BATCH;
        runs.push(persisted);
    }
    for transport in [
        Transport::RawIceoryx2,
        Transport::RawIceoryx2Fsync,
        Transport::MdbusWalInterval,
        Transport::MdbusSubscriber,
    ] {
        let mut sustained = run(
            "sustained-2m",
            format!(
                "paced 2 M records/s in batches of {MAX_BATCH}, 1 subscriber, block (sustained, WAL on, loss counted; the subscriber sleeps between batches so the publisher keeps a core)"
            ),
            transport,
            Wait::Block,
            1,
            2_000_000,
        );
        sustained.batch = MAX_BATCH;
        runs.push(sustained);
    }
    in_rounds(runs)
}

/// The runs this binary can make, repeated round after round.
fn in_rounds(runs: Vec<RunSpec>) -> Vec<RunSpec> {
    let runs: Vec<RunSpec> = runs.into_iter().filter(|r| r.transport.available()).collect();
    let rounds = runs.first().map_or(1, |r| r.rounds);
    (0..rounds)
        .flat_map(|round| runs.iter().cloned().map(move |r| RunSpec { round, ..r }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_of_the_full_matrix_has_a_raw_iceoryx2_baseline() {
        let runs = matrix(Mode::Full, false);
        if !cfg!(feature = "iceoryx2") {
            assert!(runs.iter().all(|r| !r.transport.needs_iceoryx2()));
            return;
        }
        let scenarios: std::collections::BTreeSet<_> = runs.iter().map(|r| r.scenario.clone()).collect();
        for scenario in &scenarios {
            assert!(
                runs.iter()
                    .any(|r| &r.scenario == scenario && r.transport == Transport::RawIceoryx2),
                "{scenario} has no baseline"
            );
        }
        assert!(scenarios.contains("persisted-1m") && scenarios.contains("sustained-2m"));
    }

    #[test]
    fn smoke_is_one_short_paced_run_per_available_transport() {
        let runs = matrix(Mode::Smoke, true);
        assert_eq!(runs.len(), Transport::ALL.iter().filter(|t| t.available()).count());
        assert!(
            runs.iter()
                .all(|r| r.rate == PACED_RATE && r.pin && r.measure_s < 1.0 && r.rounds == 1)
        );
    }

    #[test]
    fn rounds_repeat_the_whole_matrix_in_order() {
        let runs = matrix(Mode::Full, false);
        let rounds = runs[0].rounds;
        assert!(rounds > 1);
        let per_round = runs.len() / rounds;
        assert_eq!(per_round * rounds, runs.len());
        for (i, run) in runs.iter().enumerate() {
            assert_eq!(run.round, i / per_round);
            let first = &runs[i % per_round];
            assert_eq!((&run.scenario, run.transport), (&first.scenario, first.transport));
        }
    }

    #[test]
    fn quick_and_full_differ_only_in_duration() {
        let first_round = |mode| {
            matrix(mode, false)
                .into_iter()
                .filter(|r| r.round == 0)
                .collect::<Vec<_>>()
        };
        let quick = first_round(Mode::Quick);
        let full = first_round(Mode::Full);
        assert_eq!(quick.len(), full.len());
        assert!(quick.iter().zip(&full).all(
            |(q, f)| q.scenario == f.scenario && (q.measure_s * q.rounds as f64) < (f.measure_s * f.rounds as f64)
        ));
    }
}
