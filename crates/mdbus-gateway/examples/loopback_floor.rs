//! The floor under the gateway's load test: what this machine's loopback
//! TCP costs per frame with nothing else around. One writer thread writes
//! fixed-size frames round-robin to N connections (what the gateway's
//! writer does, minus building them), a one-thread tokio runtime reads
//! them (what the load test's clients do, minus WebSocket and the scan).
//!
//! ```text
//! cargo run --release -p mdbus-gateway --example loopback_floor -- [--conns 100] [--size 7000]
//!     [--rate 0] [--duration 5]
//! ```
//!
//! `--rate 0` writes as fast as the writer can (the most frames per second
//! and the CPU time per frame on each side); `--rate R` paces R frames per
//! second in all (rounds of one frame per connection) and reports the
//! latency of each frame, write to read. Nothing is asserted.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mdbus_types::clock::now_ns;

/// CPU time so far (user + system, clock ticks of 1/100 s) of the threads
/// of this process whose name starts with `prefix`.
fn threads_cpu_ticks(prefix: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        total += field(11) + field(12);
    }
    total
}

fn main() {
    let (mut conns, mut size, mut rate, mut duration) = (100usize, 7000usize, 0u64, 5u64);
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [key, value] = pair else {
            eprintln!("loopback_floor: {} needs a value", pair[0]);
            std::process::exit(2);
        };
        let value: u64 = value.parse().unwrap_or_else(|_| {
            eprintln!("loopback_floor: {key} {value:?} is not a number");
            std::process::exit(2)
        });
        match key.as_str() {
            "--conns" => conns = value as usize,
            "--size" => size = (value as usize).max(8),
            "--rate" => rate = value,
            "--duration" => duration = value,
            other => {
                eprintln!("loopback_floor: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("reader runtime");
    let stop = Arc::new(AtomicBool::new(false));
    // The readers: one task per connection on one thread.
    let readers: Vec<_> = (0..conns)
        .map(|_| {
            let stream = std::net::TcpStream::connect(addr).expect("connect");
            stream.set_nonblocking(true).expect("non-blocking");
            let stop = Arc::clone(&stop);
            let stream = {
                let _guard = rt.enter();
                tokio::net::TcpStream::from_std(stream).expect("register")
            };
            rt.spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let (mut frames, mut filled) = (0u64, 0usize);
                let mut latency = Histogram::<u64>::new(3).expect("3 digits");
                let mut ts = [0u8; 8];
                while !stop.load(Ordering::Relaxed) {
                    if stream.readable().await.is_err() {
                        break;
                    }
                    let n = match stream.try_read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(_) => break,
                    };
                    let now = now_ns();
                    // Frames are `size` bytes, the write time in the first 8.
                    let mut at = 0;
                    while at < n {
                        if filled < 8 {
                            let take = (8 - filled).min(n - at);
                            ts[filled..filled + take].copy_from_slice(&buf[at..at + take]);
                        }
                        let take = (size - filled).min(n - at);
                        filled += take;
                        at += take;
                        if filled == size {
                            frames += 1;
                            filled = 0;
                            let sent = i64::from_le_bytes(ts);
                            let _ = latency.record(now.saturating_sub(sent).max(0) as u64);
                        }
                    }
                }
                (frames, latency)
            })
        })
        .collect();
    let writers: Vec<std::net::TcpStream> = (0..conns)
        .map(|_| {
            let (stream, _) = listener.accept().expect("accept");
            stream.set_nodelay(true).expect("nodelay");
            stream
        })
        .collect();
    let reader = std::thread::Builder::new()
        .name("floor-reader".into())
        .spawn(move || {
            rt.block_on(async {
                let mut frames = 0u64;
                let mut latency = Histogram::<u64>::new(3).expect("3 digits");
                for r in readers {
                    let (n, h) = r.await.expect("reader");
                    frames += n;
                    latency.add(&h).expect("same range");
                }
                (frames, latency)
            })
        })
        .expect("reader thread");
    let stop_writer = Arc::clone(&stop);
    let writer = std::thread::Builder::new()
        .name("floor-writer".into())
        .spawn(move || {
            let mut writers = writers;
            let mut frame = vec![b'x'; size];
            let start = Instant::now();
            let mut written = 0u64;
            while start.elapsed() < Duration::from_secs(duration) {
                if rate > 0 {
                    let due = (rate as f64 * start.elapsed().as_secs_f64()) as u64;
                    if written >= due {
                        std::thread::sleep(Duration::from_micros(100));
                        continue;
                    }
                }
                for w in &mut writers {
                    frame[..8].copy_from_slice(&now_ns().to_le_bytes());
                    w.write_all(&frame).expect("write");
                    written += 1;
                }
            }
            stop_writer.store(true, Ordering::Relaxed);
            // Wakes every reader: each sees the stop flag or the end.
            for w in &writers {
                let _ = w.shutdown(std::net::Shutdown::Write);
            }
            (written, start.elapsed().as_secs_f64())
        })
        .expect("writer thread");
    let cpu_writer_start = threads_cpu_ticks("floor-writer");
    let cpu_reader_start = threads_cpu_ticks("floor-reader");
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    // Read the CPU times just before the threads end.
    std::thread::sleep(Duration::from_secs(duration).saturating_sub(Duration::from_millis(50)));
    let cpu_writer = threads_cpu_ticks("floor-writer") - cpu_writer_start;
    let cpu_reader = threads_cpu_ticks("floor-reader") - cpu_reader_start;
    let (written, secs) = writer.join().expect("writer");
    let (read, latency) = reader.join().expect("reader");
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let per_frame_us = |ticks: u64| ticks as f64 * 1e4 / written.max(1) as f64;
    println!(
        "loopback floor: {conns} connections, frames of {size} B, {}: {written} frames written, {read} read in {secs:.2} s = {:.0} frames/s ({:.0} MB/s)\n\
         CPU per frame: writer {:.2} us ({:.0}% of a core), reader {:.2} us ({:.0}% of a core)\n\
         latency write -> read (us): p50 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}\n\
         load average {} before, {} after",
        if rate == 0 {
            "unpaced".to_string()
        } else {
            format!("{rate} frames/s paced")
        },
        written as f64 / secs,
        written as f64 * size as f64 / secs / 1e6,
        per_frame_us(cpu_writer),
        cpu_writer as f64 / secs,
        per_frame_us(cpu_reader),
        cpu_reader as f64 / secs,
        latency.value_at_quantile(0.5) as f64 / 1e3,
        latency.value_at_quantile(0.99) as f64 / 1e3,
        latency.value_at_quantile(0.999) as f64 / 1e3,
        latency.max() as f64 / 1e3,
        load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        load_after.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    );
}
