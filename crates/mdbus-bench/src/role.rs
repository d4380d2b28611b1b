//! The child side of a run: the harness binary re-executes itself as the
//! publisher or as one subscriber. Handshake on stdin/stdout, one line
//! each: the child prints `ready`; the publisher waits for `go`, sends,
//! writes `publisher.json`, prints `done` and waits for `exit` (so its
//! samples stay readable while subscribers drain); a subscriber receives
//! until it reads `stop` (or stdin closes) and nothing came for 10 ms,
//! then writes `sub-<i>.hgrm` (HdrHistogram V2) and `sub-<i>.json`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::endpoints::channel::channels;
use crate::endpoints::unix::{UnixSink, UnixSource, socket_path};
use crate::endpoints::{self, PublisherOutcome, Sink, Source, SubscriberSummary};
use crate::error::{Error, Result};
use crate::hist;
use crate::scenario::{RunSpec, Transport};

/// Which end a child process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The publisher (for crossbeam: the publisher and subscriber threads).
    Publisher,
    /// Subscriber `index`; indexes from `spec.subscribers` on are slow.
    Subscriber {
        /// 0-based.
        index: usize,
    },
}

/// Everything a child needs, passed as one JSON argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleArgs {
    /// The run.
    pub spec: RunSpec,
    /// This child's role.
    pub role: Role,
    /// The run's folder (results, sockets, WAL, board).
    pub dir: PathBuf,
    /// The run's unique feed or service name.
    pub name: String,
}

/// The file `raw iceoryx2 + fdatasync` writes, in a run folder (removed
/// with the WAL after the run).
pub const FSYNC_FILE: &str = "fdatasync.bin";

/// `publisher.json` in a run folder.
pub fn publisher_file(dir: &Path) -> PathBuf {
    dir.join("publisher.json")
}

/// `sub-<i>.hgrm` in a run folder.
pub fn histogram_file(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("sub-{index}.hgrm"))
}

/// `sub-<i>.json` in a run folder.
pub fn summary_file(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("sub-{index}.json"))
}

fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("stdout", e))
}

fn expect(line: &str) -> Result<()> {
    let mut got = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut got)
        .map_err(|e| Error::io("stdin", e))?;
    if got.trim() == line {
        Ok(())
    } else {
        Err(Error::Run(format!(
            "expected {line:?} from the harness, got {:?}",
            got.trim()
        )))
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Pins the calling thread to core `slot` modulo the cores, if asked;
/// `true` when asked and it failed (said on stderr and in the results).
pub fn pin(spec: &RunSpec, slot: usize) -> bool {
    if !spec.pin {
        return false;
    }
    let pinned = match core_affinity::get_core_ids() {
        Some(cores) if !cores.is_empty() => core_affinity::set_for_current(cores[slot % cores.len()]),
        _ => false,
    };
    if !pinned {
        eprintln!("mdbus-latency: cannot pin slot {slot} to a core: runs unpinned");
    }
    !pinned
}

fn slow_pause(spec: &RunSpec, index: usize) -> Option<Duration> {
    (index >= spec.subscribers).then(|| Duration::from_nanos(spec.slow_ns))
}

fn write_subscriber(
    dir: &Path,
    index: usize,
    spec: &RunSpec,
    outcome: &endpoints::SubscriberOutcome,
    pin_failed: bool,
) -> Result<()> {
    hist::write_file(&histogram_file(dir, index), &outcome.histogram)?;
    write_json(
        &summary_file(dir, index),
        &SubscriberSummary {
            sequence: outcome.sequence,
            slow: index >= spec.subscribers,
            pause_ns: outcome.pause_ns,
            pin_failed,
            from_wal: outcome.from_wal,
        },
    )
}

/// Runs the child role described by `args` (the hidden `role` command).
pub fn run(args: &RoleArgs) -> Result<()> {
    #[cfg(feature = "iceoryx2")]
    mdbus_transport::iceoryx::init_logging();
    match args.role {
        Role::Publisher => run_publisher(args),
        Role::Subscriber { index } => run_subscriber(args, index),
    }
}

fn drive(args: &RoleArgs, sink: &mut impl Sink, pin_failed: bool) -> Result<PublisherOutcome> {
    let mut outcome = endpoints::publish(sink, &args.spec)?;
    outcome.pin_failed = pin_failed;
    Ok(outcome)
}

fn finish_publisher(args: &RoleArgs, outcome: &PublisherOutcome) -> Result<()> {
    write_json(&publisher_file(&args.dir), outcome)?;
    say("done")?;
    expect("exit")
}

fn run_publisher(args: &RoleArgs) -> Result<()> {
    let spec = &args.spec;
    // Before any sink opens: threads it starts (the WAL's sync and
    // preallocation threads) inherit the publisher's core, as with
    // `Publisher::builder().cpu(n)`. (Pinned after the open, they ran
    // unpinned, and the scheduler put the sync thread on the spinning
    // subscriber's core.) Not for crossbeam: its subscriber threads
    // would inherit the pin, and a pinned thread sees only its own core
    // (`run_crossbeam` pins after starting them).
    let pin_failed = spec.transport != Transport::Crossbeam && pin(spec, 0);
    let all = spec.subscribers + spec.slow_subscribers;
    match spec.transport {
        Transport::UnixDatagram => {
            say("ready")?;
            expect("go")?;
            let mut sink = UnixSink::new((0..all).map(|i| socket_path(&args.dir, i)).collect())?;
            let outcome = drive(args, &mut sink, pin_failed)?;
            finish_publisher(args, &outcome)
        }
        Transport::Crossbeam => run_crossbeam(args, all),
        #[cfg(feature = "iceoryx2")]
        Transport::RawIceoryx2 => {
            let mut sink = endpoints::iceoryx::RawSink::create(&args.name, spec.wait)?;
            say("ready")?;
            expect("go")?;
            let outcome = drive(args, &mut sink, pin_failed)?;
            finish_publisher(args, &outcome)
        }
        #[cfg(feature = "iceoryx2")]
        Transport::RawIceoryx2Fsync => {
            let mut sink =
                endpoints::iceoryx::RawSink::create(&args.name, spec.wait)?.with_fsync(&args.dir.join(FSYNC_FILE))?;
            say("ready")?;
            expect("go")?;
            let outcome = drive(args, &mut sink, pin_failed)?;
            finish_publisher(args, &outcome)
        }
        #[cfg(feature = "iceoryx2")]
        Transport::MdbusWalNever | Transport::MdbusWalInterval | Transport::MdbusSubscriber => {
            let sync = if spec.transport == Transport::MdbusWalNever {
                mdbus_wal::SyncPolicy::Never
            } else {
                mdbus_wal::SyncPolicy::default()
            };
            let mut sink = endpoints::iceoryx::MdbusSink::open(&args.name, &args.dir, sync)?;
            say("ready")?;
            expect("go")?;
            let outcome = drive(args, &mut sink, pin_failed)?;
            finish_publisher(args, &outcome)
        }
        #[cfg(not(feature = "iceoryx2"))]
        other => Err(Error::Run(format!(
            "{} needs mdbus-bench's iceoryx2 feature",
            other.label()
        ))),
    }
}

/// crossbeam: the publisher and its subscriber threads in this process.
fn run_crossbeam(args: &RoleArgs, all: usize) -> Result<()> {
    let (mut sink, sources) = channels(all);
    let never = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = sources
        .into_iter()
        .enumerate()
        .map(|(index, mut source)| {
            let spec = args.spec.clone();
            let never = Arc::clone(&never);
            std::thread::spawn(move || {
                let pin_failed = pin(&spec, index + 1);
                endpoints::subscribe(&mut source, spec.wait, slow_pause(&spec, index), &never).map(|o| (o, pin_failed))
            })
        })
        .collect();
    say("ready")?;
    expect("go")?;
    let pin_failed = pin(&args.spec, 0);
    let outcome = drive(args, &mut sink, pin_failed);
    // Dropping the senders ends the subscriber threads once they drained.
    drop(sink);
    for (index, thread) in threads.into_iter().enumerate() {
        let (received, pin_failed) = thread
            .join()
            .map_err(|_| Error::Run(format!("crossbeam subscriber thread {index} panicked")))??;
        write_subscriber(&args.dir, index, &args.spec, &received, pin_failed)?;
    }
    finish_publisher(args, &outcome?)
}

fn run_subscriber(args: &RoleArgs, index: usize) -> Result<()> {
    let spec = &args.spec;
    match spec.transport {
        Transport::UnixDatagram => {
            let source = UnixSource::bind(&socket_path(&args.dir, index))?;
            receive(args, index, source)
        }
        #[cfg(feature = "iceoryx2")]
        Transport::RawIceoryx2 | Transport::RawIceoryx2Fsync => {
            receive(args, index, endpoints::iceoryx::RawSource::open(&args.name)?)
        }
        #[cfg(feature = "iceoryx2")]
        Transport::MdbusWalNever | Transport::MdbusWalInterval => receive(
            args,
            index,
            endpoints::iceoryx::MdbusSource::open(&args.name, spec.wait)?,
        ),
        #[cfg(feature = "iceoryx2")]
        Transport::MdbusSubscriber => receive(
            args,
            index,
            endpoints::iceoryx::MdbusSubscriberSource::open(&args.name, spec.wait)?,
        ),
        other => Err(Error::Run(format!(
            "{} has no subscriber processes in this build",
            other.label()
        ))),
    }
}

fn receive(args: &RoleArgs, index: usize, mut source: impl Source) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    say("ready")?;
    let stop_reader = Arc::clone(&stop);
    // Ends with the process: it blocks on stdin until `stop` or EOF.
    std::thread::spawn(move || {
        let mut line = String::new();
        loop {
            line.clear();
            match std::io::stdin().lock().read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.trim() == "stop" => break,
                Ok(_) => {}
            }
        }
        // SYNC: pairs with the Acquire load in `endpoints::subscribe`.
        stop_reader.store(true, Ordering::Release);
    });
    let pin_failed = pin(&args.spec, index + 1);
    let outcome = endpoints::subscribe(&mut source, args.spec.wait, slow_pause(&args.spec, index), &stop)?;
    write_subscriber(&args.dir, index, &args.spec, &outcome, pin_failed)
}
