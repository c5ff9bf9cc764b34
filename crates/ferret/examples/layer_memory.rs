//! FerretLayer's memory on two shapes a long-running service produces:
//!
//! - `idle-parent N`: N child spans of one span that is never entered (a
//!   worker loop's span, a root given as `parent:`), each entered and
//!   closed on the main thread;
//! - `threads N`: N short-lived threads (64 at a time), each recording a
//!   span under one such span and a child inside it;
//! - `record N`: one open span that records a text field N times
//!   (progress in a loop);
//! - `open N`: N spans open at once (a server's connections, each with a
//!   long-lived span), each with a field; `open-registry N` is the same
//!   with the registry alone, no layer, for comparison.
//!
//! Prints the resident memory as it goes and at the end, and how many spans
//! the profiler accepted. Linux only (`/proc/self/status`).
//!
//! ```text
//! cargo run --release -p ferret --features tracing --example layer_memory -- idle-parent 1000000
//! cargo run --release -p ferret --features tracing --example layer_memory -- threads 100000
//! cargo run --release -p ferret --features tracing --example layer_memory -- record 2000000
//! cargo run --release -p ferret --features tracing --example layer_memory -- open 1000000
//! ```

use tracing_subscriber::prelude::*;

/// A `/proc/self/status` field in MB.
fn status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0) as f64
        / 1024.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let shape = args.next().unwrap_or_else(|| "idle-parent".into());
    let n: usize = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("N: a number"));
    let dir = std::env::var_os("TMPDIR").map_or_else(std::env::temp_dir, Into::into);
    let db = dir.join(format!("layer_memory-{}.db", std::process::id()));
    let profiler = ferret::Profiler::open(&db).expect("open");
    if shape.ends_with("-registry") {
        tracing_subscriber::registry().init();
    } else {
        tracing_subscriber::registry()
            .with(ferret::FerretLayer::new(&profiler))
            .init();
    }
    let t = std::time::Instant::now();
    let worker = tracing::info_span!("worker");
    let report = |done: usize| {
        println!("{done:>9} done: RSS {:6.1} MB", status_mb("VmRSS:"));
    };
    match shape.as_str() {
        "idle-parent" => {
            for i in 0..n {
                tracing::info_span!(parent: &worker, "request", i).in_scope(|| {});
                if (i + 1) % (n / 4).max(1) == 0 {
                    report(i + 1);
                }
            }
        }
        "threads" => {
            let mut done = 0;
            while done < n {
                let k = 64.min(n - done);
                let threads: Vec<_> = (0..k)
                    .map(|i| {
                        let worker = worker.clone();
                        std::thread::spawn(move || {
                            let _e = tracing::info_span!(parent: &worker, "task", i).entered();
                            tracing::info_span!("step").in_scope(|| {});
                        })
                    })
                    .collect();
                for h in threads {
                    h.join().expect("thread");
                }
                done += k;
                if done % (n / 4).max(1) < k {
                    report(done);
                }
            }
        }
        "record" => {
            let job = tracing::info_span!(parent: &worker, "job", progress = tracing::field::Empty);
            for i in 0..n {
                job.record(
                    "progress",
                    tracing::field::display(format_args!("item-{i}")),
                );
                if (i + 1) % (n / 4).max(1) == 0 {
                    report(i + 1);
                }
            }
        }
        "open" | "open-registry" => {
            let before = status_mb("VmRSS:");
            let open: Vec<tracing::Span> = (0..n)
                .map(|i| tracing::info_span!(parent: &worker, "connection", i))
                .collect();
            report(n);
            println!(
                "{:.0} bytes per open span",
                (status_mb("VmRSS:") - before) * 1024.0 * 1024.0 / n.max(1) as f64
            );
            drop(open);
        }
        other => {
            eprintln!(
                "unknown shape {other:?}: idle-parent, threads, record, open or open-registry"
            );
            std::process::exit(2);
        }
    }
    drop(worker);
    let (peak, rss) = (status_mb("VmHWM:"), status_mb("VmRSS:"));
    let stats = profiler.close().expect("close");
    println!(
        "{shape} {n}: {:.2} s, peak RSS {peak:.1} MB, RSS {rss:.1} MB; accepted {}, dropped {}",
        t.elapsed().as_secs_f64(),
        stats.accepted,
        stats.dropped_queue + stats.dropped_write
    );
    let _ = std::fs::remove_file(&db);
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
}
