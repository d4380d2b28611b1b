//! One-way latency of the iceoryx2 transport on one host: a publisher
//! thread sends paced heartbeats stamped with a monotonic clock, a
//! subscriber thread (busy spin, backoff or block) measures receive time
//! minus stamp and prints p50/p99/p99.9.
//!
//! `cargo run --release -p mdbus-transport --features iceoryx2 --example iox_latency -- [spin|backoff|block] [count] [rate/s]`

#[cfg(not(feature = "iceoryx2"))]
fn main() {
    eprintln!("iox_latency needs --features iceoryx2");
}

#[cfg(feature = "iceoryx2")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use mdbus_transport::iceoryx::{IoxReceiver, IoxReceiverConfig, IoxSender, IoxSenderConfig, WaitStrategy};
    use mdbus_transport::{MdReceiver, MdSender};
    use mdbus_types::{Heartbeat, Kind, MdSample, RecordHeader};

    let mut args = std::env::args().skip(1);
    let wait = match args.next().as_deref().unwrap_or("spin") {
        "spin" => WaitStrategy::BusySpin,
        "backoff" => WaitStrategy::backoff(),
        "block" => WaitStrategy::Block,
        other => return Err(format!("unknown wait strategy {other:?}: spin, backoff or block").into()),
    };
    let count: u64 = args.next().map_or(Ok(200_000), |s| s.parse())?;
    let rate: u64 = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let feed = format!("iox-latency-{}", std::process::id());
    let base = Instant::now();
    let nanos = move || u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);

    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let publisher_feed = feed.clone();
    let publisher = thread::spawn(move || -> Result<(), mdbus_transport::Error> {
        let mut publisher = IoxSender::create(&IoxSenderConfig::new(&publisher_feed))?;
        let _ = ready_tx.send(());
        let _ = go_rx.recv();
        let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
        let start = Instant::now();
        for seq in 1..=count {
            let due = start + interval * u32::try_from(seq).unwrap_or(u32::MAX);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            let mut sample = MdSample::from(Heartbeat {
                header: RecordHeader::new(Kind::Heartbeat, 0),
            });
            sample.header_mut().seq = seq;
            sample.header_mut().ts_publish = i64::try_from(nanos()).unwrap_or(i64::MAX);
            publisher.send(&sample)?;
            publisher.end_batch()?;
        }
        Ok(())
    });
    ready_rx.recv()?;
    let mut subscriber = IoxReceiver::open(&IoxReceiverConfig::new(&feed).wait(wait))?;
    go_tx.send(())?;
    let mut latencies = Vec::with_capacity(usize::try_from(count)?);
    while let Some(sample) = subscriber.recv_timeout(Duration::from_secs(10))? {
        let now = nanos();
        latencies.push(now.saturating_sub(u64::try_from(sample.header().ts_publish)?));
        if sample.header().seq == count {
            break;
        }
    }
    publisher.join().map_err(|_| "publisher thread panicked")??;
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "{wait:?}: {} received, {} lost, one-way p50 {} ns, p99 {} ns, p99.9 {} ns",
        latencies.len(),
        subscriber.dropped(),
        at(0.5),
        at(0.99),
        at(0.999)
    );
    Ok(())
}
