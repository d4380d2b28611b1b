//! The gateway's load test on loopback, for numbers: a paced publisher,
//! the gateway and N WebSocket clients (every instrument each) in one
//! process, on this machine's cores.
//!
//! ```text
//! cargo run --release -p mdbus-gateway --example load -- [--clients 100] [--rate 10000] [--duration 5]
//!     [--instruments 16] [--queue 2048] [--gateway-threads 1] [--client-threads 1]
//!     [--clients-process] [--pin]
//! ```
//!
//! `--clients-process` runs the clients in a child process (this program
//! again, with `--clients-of URL`), so that their CPU time is read apart
//! from the gateway's; `--pin` puts the publisher and the gateway on the
//! first CPU and the clients on the second.
//!
//! Prints push latency per batch (of its oldest event): client side
//! (`ts_publish` to the client's receive), gateway side (`ts_publish` to
//! `ts_send`, stamped as the gateway builds the frame it then writes) and
//! the transit between them, and the conflation counts. The clients read a
//! batch by substring search (its head, first `ts_publish` and last seq),
//! never parsing an event, so that they take little of the gateway's
//! cores. Nothing is asserted: speed is reported, not tested.

#[path = "../tests/common/load.rs"]
mod load;

use std::time::Duration;

fn main() {
    let mut config = load::LoadConfig::default();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // Flags without a value.
    args.retain(|arg| match arg.as_str() {
        "--clients-process" => {
            config.clients_exe = Some(std::env::current_exe().expect("this program's path"));
            false
        }
        "--pin" => {
            config.pin = true;
            false
        }
        _ => true,
    });
    let mut clients_of = None;
    let mut cpu = None;
    for pair in args.chunks(2) {
        let [key, value] = pair else {
            eprintln!("load: {} needs a value", pair[0]);
            std::process::exit(2);
        };
        let number = |name: &str| -> u64 {
            value.parse().unwrap_or_else(|_| {
                eprintln!("load: {name} {value:?} is not a number");
                std::process::exit(2)
            })
        };
        match key.as_str() {
            "--clients" => config.clients = number(key) as usize,
            "--rate" => config.rate = number(key),
            "--duration" => config.duration = Duration::from_secs(number(key)),
            "--instruments" => config.instruments = number(key) as usize,
            "--queue" => config.queue_capacity = number(key) as usize,
            "--gateway-threads" => config.gateway_threads = number(key) as usize,
            "--client-threads" => config.client_threads = number(key) as usize,
            // The child process of `--clients-process`.
            "--clients-of" => clients_of = Some(value.clone()),
            "--cpu" => cpu = Some(number(key) as usize),
            other => {
                eprintln!("load: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    if let Some(url) = clients_of {
        load::clients_process(&url, config.clients, config.client_threads, cpu);
        return;
    }
    let report = load::run(config);
    println!("{}", report.summary());
}
