//! The two ends of every transport behind one interface, and the
//! publisher and subscriber loops that run on them.

pub mod channel;
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
        sink.send_batch(&mut batch)?;
        outcome.sent_total += n;
        if measured {
            outcome.sent_measured += n;
        }
    }
    outcome.measured_secs = measured_start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    Ok(outcome)
}

/// What a subscriber got.
#[derive(Debug, Clone)]
pub struct SubscriberOutcome {
    /// One-way latency of the measured records, ns.
    pub histogram: Histogram<u64>,
    /// Measured records received.
    pub received: u64,
}

/// Summary of a [`SubscriberOutcome`] written next to its histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberSummary {
    /// Measured records received.
    pub received: u64,
    /// Whether it was a slow subscriber.
    pub slow: bool,
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
    let mut received = 0u64;
    loop {
        let got = source.recv(wait, Duration::from_millis(10), |sample| {
            let now = clock::now_ns();
            payload::read(sample).map(|r| (r, now))
        })?;
        match got {
            Some(Some((
                Received {
                    ts_publish, measured, ..
                },
                now,
            ))) => {
                if measured {
                    record(&mut histogram, now.saturating_sub(ts_publish));
                    received += 1;
                }
                if let Some(pause) = slow {
                    std::thread::sleep(pause);
                }
            }
            Some(None) => {}
            // SYNC: pairs with the Release store of whoever ends the run.
            None if stop.load(Ordering::Acquire) || source.finished() => break,
            None => {}
        }
    }
    Ok(SubscriberOutcome { histogram, received })
}
