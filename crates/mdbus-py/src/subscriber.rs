//! `Subscriber`: the live feed with replay-merge and gap fill
//! (`mdbus::Subscriber`), polled in batches from Python.

use std::time::{Duration, Instant};

use mdbus::{Event, InstrumentId, StartFrom};
use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{KIND_NAMES, bad_arg, slot, symbol};

/// The longest a poll waits without looking at Python's signals (Ctrl-C).
const SIGNAL_SLICE: Duration = Duration::from_millis(50);

/// A value moved into `Python::detach`, whose closure must be `Send`.
struct OnThisThread<T>(T);

// SAFETY: `Python::detach` runs its closure on the calling thread (it only
// releases the GIL around it); its `Send` bound is there to keep Python
// references out of the closure, and none is inside. The subscriber thus
// never leaves the thread that owns it.
unsafe impl<T> Send for OnThisThread<T> {}

/// What one poll collected.
#[derive(Default)]
struct Polled {
    bufs: [Vec<u64>; 4],
    records: usize,
    gaps: Vec<(u64, u64)>,
    replay_done: bool,
}

impl Polled {
    fn has_news(&self) -> bool {
        self.records > 0 || !self.gaps.is_empty() || self.replay_done
    }
}

/// Takes events until `max` records: waits up to `wait` for the first,
/// then only takes what is there.
fn drain(sub: &mut mdbus::Subscriber, out: &mut Polled, max: usize, wait: Duration) -> mdbus::Result<()> {
    let mut wait = wait;
    while out.records < max {
        let Some(event) = sub.next_timeout(wait)? else {
            break;
        };
        wait = Duration::ZERO;
        match event {
            Event::Record { sample, .. } => {
                let record = sample.record()?;
                out.bufs[slot(record.kind())].extend_from_slice(bytemuck::cast_slice(record.as_bytes()));
                out.records += 1;
            }
            Event::ReplayDone { .. } => out.replay_done = true,
            Event::Gap(lost) => out.gaps.push((lost.from, lost.to)),
            _ => {}
        }
    }
    Ok(())
}

/// A subscriber of a live feed (iceoryx2), replaying its WAL first:
/// every seq once, in order, holes filled from the WAL or reported.
#[pyclass(unsendable, module = "mdbus._mdbus")]
pub(crate) struct Subscriber {
    inner: mdbus::Subscriber,
}

fn os_err(e: mdbus::Error) -> PyErr {
    PyOSError::new_err(e.to_string())
}

#[pymethods]
impl Subscriber {
    /// Attaches to `feed` (waiting up to `open_timeout` s for its
    /// publisher); `replay`: from the WAL's newest full snapshot set, else
    /// live only; `wal`: the WAL root instead of the one the publisher
    /// announces; `start_seq` / `start_time` (ns): replay from this seq
    /// (a gap first when the WAL no longer has it) or from the first
    /// record at or after this time, instead of the snapshot set.
    #[new]
    #[pyo3(signature = (feed, replay=true, wal=None, open_timeout=10.0, start_seq=None, start_time=None))]
    fn new(
        py: Python<'_>,
        feed: &str,
        replay: bool,
        wal: Option<std::path::PathBuf>,
        open_timeout: f64,
        start_seq: Option<u64>,
        start_time: Option<i64>,
    ) -> PyResult<Subscriber> {
        if let Some(reason) = mdbus::FeedName::reason(feed) {
            return Err(bad_arg("feed", format!("{feed:?}: {reason}")));
        }
        let open_timeout = Duration::try_from_secs_f64(open_timeout)
            .map_err(|_| bad_arg("open_timeout", format!("{open_timeout} is not a duration in seconds")))?;
        let mut builder = mdbus::Subscriber::builder(feed)
            .replay(replay)
            .open_timeout(open_timeout);
        match (start_seq, start_time) {
            (Some(_), Some(_)) => return Err(bad_arg("start_seq", "give start_seq or start, not both")),
            (Some(_), None) | (None, Some(_)) if !replay => {
                return Err(bad_arg("replay", "a start point needs replay=True"));
            }
            (Some(seq), None) => builder = builder.start(StartFrom::Seq(seq)),
            (None, Some(ts)) => builder = builder.start(StartFrom::Time(ts)),
            (None, None) => {}
        }
        if let Some(wal) = wal {
            builder = builder.wal(wal);
        }
        let builder = OnThisThread(builder);
        let opened = py.detach(move || OnThisThread(builder.0.open()));
        Ok(Subscriber {
            inner: opened.0.map_err(os_err)?,
        })
    }

    /// Waits up to `timeout` s for events, then takes what is there, up to
    /// `max` records: `(arrays, gaps, replay_done, live)`. `arrays` maps
    /// each kind to a `uint64` array of its records' bytes (each in seq
    /// order); `gaps` lists `(first, last)` seqs lost for good;
    /// `replay_done`: the switch from replay to live happened in this
    /// batch. The GIL is released while waiting; Ctrl-C interrupts.
    #[pyo3(signature = (max=4096, timeout=0.1))]
    fn poll<'py>(&mut self, py: Python<'py>, max: usize, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        if max == 0 {
            return Err(bad_arg("max", "must be at least 1"));
        }
        let timeout = Duration::try_from_secs_f64(timeout)
            .map_err(|_| bad_arg("timeout", format!("{timeout} is not a duration in seconds")))?;
        let deadline = Instant::now() + timeout;
        let mut out = Polled::default();
        loop {
            let wait = deadline.saturating_duration_since(Instant::now()).min(SIGNAL_SLICE);
            let sub = OnThisThread(&mut self.inner);
            let polled = OnThisThread(&mut out);
            let drained = py.detach(move || {
                let (sub, polled) = (sub, polled);
                drain(sub.0, polled.0, max, wait)
            });
            if let Err(e) = drained {
                // A signal (Ctrl-C) cuts iceoryx2's wait short with an
                // error: as Python does for EINTR (PEP 475), run the
                // handlers (KeyboardInterrupt is raised here) and retry.
                py.check_signals()?;
                if !e.to_string().contains("InterruptSignal") {
                    return Err(os_err(e));
                }
            }
            if out.has_news() || Instant::now() >= deadline {
                break;
            }
            py.check_signals()?;
        }
        let arrays = PyDict::new(py);
        for (i, buf) in out.bufs.into_iter().enumerate() {
            arrays.set_item(KIND_NAMES[i], buf.into_pyarray(py))?;
        }
        (arrays, out.gaps, out.replay_done, self.inner.is_live())
            .into_pyobject(py)
            .map(Bound::into_any)
    }

    /// The latest tick of `sym` from the L1 cache, as bytes.
    fn tick<'py>(&self, py: Python<'py>, sym: &str) -> PyResult<Option<Bound<'py, PyArray1<u64>>>> {
        let id: InstrumentId = symbol(sym)?;
        Ok(self.inner.tick(&id).map(|t| {
            bytemuck::cast_slice::<_, u64>(std::slice::from_ref(&t))
                .to_vec()
                .into_pyarray(py)
        }))
    }

    /// The current top-10 book of `sym` from the L1 cache, as bytes.
    fn book<'py>(&self, py: Python<'py>, sym: &str) -> PyResult<Option<Bound<'py, PyArray1<u64>>>> {
        let id: InstrumentId = symbol(sym)?;
        Ok(self.inner.book(&id).map(|b| {
            bytemuck::cast_slice::<_, u64>(std::slice::from_ref(&b))
                .to_vec()
                .into_pyarray(py)
        }))
    }

    /// The top of the book of `sym` in one read: `(bid_px, bid_qty,
    /// ask_px, ask_qty, seq, ts_event, ts_publish, stale)`, prices raw
    /// (`PRICE_NULL` for an empty side), or `None`.
    #[allow(clippy::type_complexity)]
    fn quote(&self, sym: &str) -> PyResult<Option<(i64, i64, i64, i64, u64, i64, i64, bool)>> {
        let id = symbol(sym)?;
        Ok(self.inner.quote(&id).map(|q| {
            (
                q.bid.price.raw(),
                q.bid.qty,
                q.ask.price.raw(),
                q.ask.qty,
                q.seq,
                q.ts_event,
                q.ts_publish,
                q.stale,
            )
        }))
    }

    /// The trades of `sym` with `start <= ts_event <= end` (ns), from the
    /// subscriber's history (L2 memory, then the WAL), as tick bytes; the
    /// GIL released while it reads.
    fn ticks<'py>(&self, py: Python<'py>, sym: &str, start: i64, end: i64) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let id = symbol(sym)?;
        let history = self.inner.history();
        let ticks = py
            .detach(move || history.ticks(&id, start, end))
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(bytemuck::cast_slice::<_, u64>(&ticks).to_vec().into_pyarray(py))
    }

    /// The book of `sym` as it was at `ts` (ns), from the subscriber's
    /// history, as bytes (`None`: no book then).
    fn book_at<'py>(&self, py: Python<'py>, sym: &str, ts: i64) -> PyResult<Option<Bound<'py, PyArray1<u64>>>> {
        let id = symbol(sym)?;
        let history = self.inner.history();
        let book = py
            .detach(move || history.book_at(&id, ts))
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(book.map(|b| {
            bytemuck::cast_slice::<_, u64>(std::slice::from_ref(&b))
                .to_vec()
                .into_pyarray(py)
        }))
    }

    /// Whether replay is done and records come live.
    fn is_live(&self) -> bool {
        self.inner.is_live()
    }

    /// Instruments in the L1 cache, sorted.
    fn instruments(&self) -> Vec<String> {
        let mut ids = self.inner.l1().instruments();
        ids.sort();
        ids.iter().map(|id| id.as_str().to_string()).collect()
    }
}
