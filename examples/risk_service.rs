//! A risk service: keeps the latest book and tick of every instrument
//! through the mdbus subscriber (a receive thread runs replay-merge and
//! updates the L1 cache), and once a second values a toy position from the
//! L1 cache in its own thread, as a risk engine does: reads never block
//! the receive loop. It also asks history (the book one second earlier,
//! from L2 or the WAL, for the mid's change) and, when the snapshot board exists, checks its
//! books against the board's.
//!
//! Restart-safe: started late, restarted after a crash, or started after
//! the publisher ended, it rebuilds every book from the WAL (the newest
//! full snapshot set, then deltas) before it reports.
//!
//! ```sh
//! cargo run --release --example risk_service -- [FEED] [WAL_DIR] [BOARD_DIR] [ROUNDS]
//! ```
//! Defaults: feed `example`, WAL `./target/example-wal`, board `/dev/shm`,
//! 3 rounds one second apart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mdbus::board::BoardReader;
use mdbus::subscriber::{CachedHistory, Event, L1Cache, Subscriber, SubscriberConfig, SubscriberStats};
use mdbus::transport::MdReceiver;
use mdbus::types::{BookSnapshot, Price, WalLocation, clock};

/// What the receive thread shares with the risk thread.
struct Shared {
    stop: AtomicBool,
    /// The subscriber switched to live, or caught up with the WAL's end.
    ready: AtomicBool,
    stats: Mutex<SubscriberStats>,
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let feed = args.first().cloned().unwrap_or_else(|| "example".into());
    let wal_dir = PathBuf::from(args.get(1).cloned().unwrap_or_else(|| "target/example-wal".into()));
    let board_dir = PathBuf::from(args.get(2).cloned().unwrap_or_else(|| "/dev/shm".into()));
    let rounds: u32 = args.get(3).map_or(Ok(3), |s| s.parse())?;

    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        ready: AtomicBool::new(false),
        stats: Mutex::new(SubscriberStats::default()),
    });
    // The receiver and the subscriber live in the receive thread (iceoryx2
    // ports are not `Send`); the L1 cache comes back to this thread.
    let (l1_tx, l1_rx) = std::sync::mpsc::channel();
    let receive = {
        let (shared, feed, wal_dir) = (Arc::clone(&shared), feed.clone(), wal_dir.clone());
        std::thread::spawn(move || receive_thread(&feed, &wal_dir, &shared, l1_tx))
    };
    let Ok((l1, history)) = l1_rx.recv() else {
        // The thread failed before it had a cache: its error.
        return receive
            .join()
            .expect("receive thread")
            .and(Err("the receive thread ended".into()));
    };

    // Wait (bounded) until the books are whole: replay done or WAL caught up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !shared.ready.load(Ordering::Acquire) && Instant::now() < deadline && !receive.is_finished() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let board = BoardReader::open(&board_dir, &feed).ok();
    for round in 0..rounds {
        if round > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        report(&feed, &l1, &history, &shared, board.as_ref());
    }
    // Release pairs with the Acquire load in the receive loop.
    shared.stop.store(true, Ordering::Release);
    receive.join().expect("receive thread")?;
    if l1.is_empty() {
        return Err(format!("no book of feed {feed} (live or in {})", wal_dir.display()).into());
    }
    Ok(())
}

/// Values one lot of every instrument at its mid from L1, compares with
/// the book one second earlier (history) and with the board.
fn report(feed: &str, l1: &L1Cache, history: &CachedHistory, shared: &Shared, board: Option<&BoardReader>) {
    let stats = *shared.stats.lock().expect("stats lock");
    println!(
        "risk {feed}: {} instruments, last seq {:?} ({} replayed, {} live, {} gap-filled, {} gaps)",
        l1.len(),
        stats.last_seq,
        stats.replayed,
        stats.live,
        stats.gap_filled,
        stats.gaps
    );
    let (mut gross, mut board_diffs) = (0i128, 0);
    for id in l1.instruments() {
        let book = l1.book(&id);
        let mid_now = book.as_ref().and_then(mid);
        gross += mid_now.unwrap_or(0);
        let stale = if l1.is_stale(&id) { " STALE" } else { "" };
        let (bid, ask) = book.as_ref().map_or((None, None), |b| {
            (b.bid_levels().first().copied(), b.ask_levels().first().copied())
        });
        // The mid one second (of market time) before this book, from
        // history: L2 in memory when it covers it, else the WAL.
        let earlier = book
            .as_ref()
            .map(|b| history.book_at_traced(&id, b.header.ts_event - 1_000_000_000));
        let earlier = match earlier {
            Some(Ok((Some(then), level))) => match (mid(&then), mid_now) {
                (Some(then), Some(now)) => format!("{:+} ({level:?})", Price((now - then) as i64)),
                _ => "-".into(),
            },
            Some(Ok((None, _))) | None => "-".into(),
            Some(Err(e)) => format!("history: {e}"),
        };
        println!(
            "  {id:<10} bid {:>12} ask {:>12} last {:>12} mid 1 s change {earlier:>12} (book seq {}){stale}",
            bid.map_or("-".into(), |l| l.price.to_string()),
            ask.map_or("-".into(), |l| l.price.to_string()),
            l1.tick(&id).map_or("-".into(), |t| t.last_px.to_string()),
            book.as_ref().map_or(0, |b| b.header.seq),
        );
        // The board and L1 are written from the same stream; at the same
        // seq they must hold the same levels.
        if let (Some(board), Some(book)) = (board, &book)
            && let Some(theirs) = board.book(&id)
            && theirs.header.seq == book.header.seq
            && (theirs.bid_levels() != book.bid_levels() || theirs.ask_levels() != book.ask_levels())
        {
            board_diffs += 1;
        }
    }
    println!("  gross one-lot exposure at mid: {}", Price(gross as i64));
    if let Some(board) = board {
        let status = board.status();
        let age_ms = clock::now_ns().saturating_sub(status.heartbeat_ns) / 1_000_000;
        let state = if age_ms > 500 { "STALE" } else { "live" };
        println!(
            "  board: {state} (heartbeat {age_ms} ms ago, writer pid {}), last seq {}; \
             {board_diffs} books differ from L1 at the same seq",
            status.writer_pid, status.last_seq
        );
    }
}

/// The mid of a book's best levels, in raw price units.
fn mid(book: &BookSnapshot) -> Option<i128> {
    let (bid, ask) = (book.bid_levels().first()?, book.ask_levels().first()?);
    Some((bid.price.raw() as i128 + ask.price.raw() as i128) / 2)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The receive thread: the live stream over iceoryx2 when a publisher runs
/// (default build), else the WAL alone (replay, then its tail).
fn receive_thread(
    feed: &str,
    wal_dir: &Path,
    shared: &Shared,
    l1_tx: std::sync::mpsc::Sender<(Arc<L1Cache>, CachedHistory)>,
) -> Result<(), BoxError> {
    let config = SubscriberConfig::default().wal(WalLocation::try_new(wal_dir, feed)?);
    #[cfg(feature = "iceoryx2")]
    {
        use mdbus::transport::iceoryx::{IoxReceiver, IoxReceiverConfig, WaitStrategy, init_logging};
        init_logging();
        let iox = IoxReceiverConfig::new(feed.to_string()).wait(WaitStrategy::Block);
        match IoxReceiver::open(&iox) {
            Ok(receiver) => return follow(Subscriber::new(receiver, config)?, shared, l1_tx),
            Err(e) => println!("risk {feed}: no live publisher ({e}); the WAL alone"),
        }
    }
    let bus = mdbus::transport::InProcBus::new(16);
    follow(Subscriber::new(bus.subscribe(), config)?, shared, l1_tx)
}

fn follow<R: MdReceiver>(
    mut subscriber: Subscriber<R>,
    shared: &Shared,
    l1_tx: std::sync::mpsc::Sender<(Arc<L1Cache>, CachedHistory)>,
) -> Result<(), BoxError> {
    let _ = l1_tx.send((Arc::clone(subscriber.l1()), subscriber.history()));
    let mut events = 0u64;
    // Acquire pairs with the Release store in `main`.
    while !shared.stop.load(Ordering::Acquire) {
        let event = subscriber.next_event(Duration::from_millis(20))?;
        match event {
            // The WAL's end with nobody publishing: the books are whole.
            None => shared.ready.store(true, Ordering::Release),
            // Release pairs with the Acquire load in `main`'s wait.
            Some(Event::ReplayDone { .. }) => shared.ready.store(true, Ordering::Release),
            Some(_) => {}
        }
        events += 1;
        if event.is_none() || events.is_multiple_of(1024) {
            *shared.stats.lock().expect("stats lock") = subscriber.stats();
        }
    }
    *shared.stats.lock().expect("stats lock") = subscriber.stats();
    Ok(())
}
