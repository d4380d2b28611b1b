//! The two ends of every transport behind one interface, and the
//! publisher and subscriber loops that run on them.

pub mod channel;
pub mod fsync;
#[cfg(feature = "iceoryx2")]
pub mod iceoryx;
pub mod unix;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mdbus_types::{MdSample, clock};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::hist::{new_histogram, record};
use crate::payload::{self, MAX_BATCH, Received};
use crate::scenario::{RunSpec, Wait};

/// The sending end of a transport.
pub trait Sink {
    /// Stamps `ts_publish` (now) and sends every record of `batch` to
    /// every subscriber, then ends the batch.
    fn send_batch(&mut self, batch: &mut [MdSample]) -> Result<()>;

    /// Called about every millisecond (mdbus: the publisher's `poll`).
    fn housekeeping(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The receiving end of a transport.
pub trait Source {
    /// Hands the next record to `f` (in place where the transport allows)
    /// and returns what `f` returned; waits up to `timeout` as `wait`
    /// says; `Ok(None)` when nothing came. `Err` only for a broken
    /// transport; a sender that is gone shows as `Ok(None)` and
    /// [`Source::finished`].
    fn recv<R>(&mut self, wait: Wait, timeout: Duration, f: impl FnOnce(&MdSample) -> R) -> Result<Option<R>>;

    /// Whether the sender is gone for good (crossbeam's disconnect).
    fn finished(&self) -> bool {
        false
    }

    /// Measured records handed out that did not come live but from the
    /// WAL, filling a hole the transport left (mdbus's `Subscriber`); 0
    /// for a transport that only delivers live.
    fn filled_from_wal(&self) -> u64 {
        0
    }
}

/// Stamps `ts_publish` of one record, just before its send.
#[inline]
pub fn stamp(sample: &mut MdSample) {
    sample.header_mut().ts_publish = clock::now_ns();
}

/// What the publisher did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PublisherOutcome {
    /// Records sent, warm-up included.
    pub sent_total: u64,
    /// Records sent in the measured phase.
    pub sent_measured: u64,
    /// Seconds of the measured phase.
    pub measured_secs: f64,
    /// Index of the first measured record (0: none sent); the measured
    /// records are `first_measured..first_measured + sent_measured`.
    #[serde(default)]
    pub first_measured: u64,
    /// Paced runs: p99 of how late the measured records were sent (send
    /// time minus the time they were due), ns; 0 when unpaced. A
    /// publisher that stalls shows here (latency is from the send time).
    #[serde(default)]
    pub late_p99_ns: u64,
    /// Whether pinning the publisher to its core failed.
    #[serde(default)]
    pub pin_failed: bool,
}

/// Sends paced (or unpaced) bench ticks for the warm-up and the measured
/// phase of `spec`.
pub fn publish(sink: &mut impl Sink, spec: &RunSpec) -> Result<PublisherOutcome> {
    let warmup = Duration::from_secs_f64(spec.warmup_s);
    let total = warmup + Duration::from_secs_f64(spec.measure_s);
    let batch_size = spec.batch.clamp(1, MAX_BATCH);
    let mut batch: Vec<MdSample> = Vec::with_capacity(MAX_BATCH as usize);
    let mut outcome = PublisherOutcome::default();
    let start = Instant::now();
    let mut measured_start = None;
    let mut last_housekeeping = start;
    let mut late = new_histogram();
    loop {
        let now = Instant::now();
        let elapsed = now - start;
        if elapsed >= total {
            break;
        }
        if now - last_housekeeping >= Duration::from_millis(1) {
            sink.housekeeping()?;
            last_housekeeping = now;
        }
        let measured = elapsed >= warmup;
        if measured && measured_start.is_none() {
            measured_start = Some(now);
        }
        let due = payload::due(spec.rate, elapsed);
        if due.saturating_sub(outcome.sent_total) < batch_size {
            std::hint::spin_loop();
            continue;
        }
        let n = (due - outcome.sent_total).min(MAX_BATCH);
        batch.clear();
        batch.extend((1..=n).map(|k| payload::tick(outcome.sent_total + k, measured)));
        if measured && spec.rate > 0 {
            // Record i is due at i / rate s after the start.
            let now_ns = start.elapsed().as_nanos();
            for k in 1..=n {
                let due_ns = u128::from(outcome.sent_total + k) * 1_000_000_000 / u128::from(spec.rate);
                record(
                    &mut late,
                    i64::try_from(now_ns.saturating_sub(due_ns)).unwrap_or(i64::MAX),
                );
            }
        }
        sink.send_batch(&mut batch)?;
        if measured && outcome.sent_measured == 0 {
            outcome.first_measured = outcome.sent_total + 1;
        }
        outcome.sent_total += n;
        if measured {
            outcome.sent_measured += n;
        }
    }
    outcome.measured_secs = measured_start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    if !late.is_empty() {
        outcome.late_p99_ns = late.value_at_quantile(0.99);
    }
    Ok(outcome)
}

/// The index sequence of the measured records one subscriber received:
/// an index above the last one seen is new (a jump leaves a gap: lost
/// records); an index at or below it is a duplicate or out of order
/// (counted apart, never as received: a late record stays lost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// Measured records received in order (each index once).
    pub received: u64,
    /// The first measured index received (0: none).
    pub first: u64,
    /// The highest measured index received (0: none).
    pub last: u64,
    /// Indexes missing between `first` and `last`.
    pub gaps: u64,
    /// Records whose index was at or below the last one seen.
    pub duplicates: u64,
    /// Measured records received before their `ts_publish` (a clock
    /// step): recorded as 1 ns.
    #[serde(default)]
    pub negative: u64,
}

impl Sequence {
    /// Takes measured record `index`; `true` when it is new (in order).
    #[inline]
    pub fn see(&mut self, index: u64) -> bool {
        if self.received == 0 {
            self.first = index;
        } else if index <= self.last {
            self.duplicates += 1;
            return false;
        } else {
            self.gaps += index - self.last - 1;
        }
        self.last = index;
        self.received += 1;
        true
    }

    /// Measured records lost of what the publisher sent (`outcome`): the
    /// gaps, the ones before the first and after the last received.
    pub fn lost(&self, outcome: &PublisherOutcome) -> u64 {
        if self.received == 0 {
            return outcome.sent_measured;
        }
        let end = outcome.first_measured + outcome.sent_measured;
        let before = self.first.saturating_sub(outcome.first_measured);
        let after = end.saturating_sub(self.last + 1);
        self.gaps + before + after
    }
}

/// What a subscriber got.
#[derive(Debug, Clone)]
pub struct SubscriberOutcome {
    /// One-way latency of the measured records received in order, ns.
    pub histogram: Histogram<u64>,
    /// The index sequence of the measured records.
    pub sequence: Sequence,
    /// Mean measured time of the slow subscriber's pause, ns (0: none).
    pub pause_ns: u64,
    /// Measured records received from the WAL instead of live.
    pub from_wal: u64,
}

/// Summary of a [`SubscriberOutcome`] written next to its histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberSummary {
    /// The index sequence of the measured records.
    pub sequence: Sequence,
    /// Whether it was a slow subscriber.
    pub slow: bool,
    /// A slow subscriber: the measured time of its pause per record, ns
    /// (the sleep asked for is a minimum).
    #[serde(default)]
    pub pause_ns: u64,
    /// Whether pinning this subscriber to its core failed.
    #[serde(default)]
    pub pin_failed: bool,
    /// Measured records received from the WAL instead of live
    /// ([`Source::filled_from_wal`]).
    #[serde(default)]
    pub from_wal: u64,
}

/// Receives until `stop` is set and nothing arrived for 10 ms (or the
/// sender is gone), recording the latency of measured records. A slow
/// subscriber sleeps `slow` after each record.
pub fn subscribe(
    source: &mut impl Source,
    wait: Wait,
    slow: Option<Duration>,
    stop: &AtomicBool,
) -> Result<SubscriberOutcome> {
    let mut histogram = new_histogram();
    let mut sequence = Sequence::default();
    let mut paused = Duration::ZERO;
    let mut pauses = 0u32;
    loop {
        let got = source.recv(wait, Duration::from_millis(10), |sample| {
            let now = clock::now_ns();
            payload::read(sample).map(|r| (r, now))
        })?;
        match got {
            Some(Some((
                Received {
                    ts_publish,
                    measured,
                    index,
                },
                now,
            ))) => {
                if measured && sequence.see(index) && record(&mut histogram, now.saturating_sub(ts_publish)) {
                    sequence.negative += 1;
                }
                if let Some(pause) = slow {
                    let t0 = Instant::now();
                    std::thread::sleep(pause);
                    paused += t0.elapsed();
                    pauses = pauses.saturating_add(1);
                }
            }
            Some(None) => {}
            // SYNC: pairs with the Release store of whoever ends the run.
            None if stop.load(Ordering::Acquire) || source.finished() => break,
            None => {}
        }
    }
    let pause_ns = if pauses > 0 {
        u64::try_from((paused / pauses).as_nanos()).unwrap_or(u64::MAX)
    } else {
        0
    };
    Ok(SubscriberOutcome {
        histogram,
        sequence,
        pause_ns,
        from_wal: source.filled_from_wal(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(first_measured: u64, sent_measured: u64) -> PublisherOutcome {
        PublisherOutcome {
            sent_total: first_measured + sent_measured - 1,
            sent_measured,
            measured_secs: 1.0,
            first_measured,
            ..PublisherOutcome::default()
        }
    }

    #[test]
    fn an_unbroken_sequence_loses_nothing() {
        let mut seq = Sequence::default();
        assert!((11..=20).all(|i| seq.see(i)));
        assert_eq!((seq.received, seq.gaps, seq.duplicates), (10, 0, 0));
        assert_eq!(seq.lost(&sent(11, 10)), 0);
    }

    #[test]
    fn gaps_head_and_tail_are_lost() {
        let mut seq = Sequence::default();
        for i in [13, 14, 17, 18] {
            assert!(seq.see(i));
        }
        assert_eq!(seq.gaps, 2);
        // 11, 12 before; 15, 16 between; 19, 20 after.
        assert_eq!(seq.lost(&sent(11, 10)), 6);
        assert_eq!(Sequence::default().lost(&sent(11, 10)), 10);
    }

    #[test]
    fn duplicates_and_late_records_are_counted_not_received() {
        let mut seq = Sequence::default();
        for i in [1, 2, 4] {
            seq.see(i);
        }
        assert!(!seq.see(4), "a duplicate");
        assert!(!seq.see(3), "out of order");
        assert!(seq.see(5));
        assert_eq!((seq.received, seq.gaps, seq.duplicates), (4, 1, 2));
        // Sums back up: received + lost = sent.
        assert_eq!(seq.lost(&sent(1, 5)), 1);
    }
}
