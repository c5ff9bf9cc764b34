//! Sustained persistence: spans recorded from several threads, accepted and
//! committed to the file, per second of wall time (from the first span to
//! the end of `close()`), with the drops and the bytes per span on disk.
//!
//! ```text
//! cargo run --release -p ferret --example persist_rate -- [SPANS] [THREADS] [RATE]
//! ```
//!
//! - `SPANS`: spans in all (default 50,000,000: far more than the recorder's
//!   queue holds, so that the figure is the writer's sustained rate and not
//!   the queue absorbing a burst);
//! - `THREADS`: recording threads (default 2);
//! - `RATE`: the target in M spans/s over all threads (default 6), or `max`
//!   for threads that do nothing but record spans.
//!
//! With a target rate the recording threads stay busy the whole time: between
//! spans they spin on the clock as a CPU-bound program would compute, so the
//! writer thread competes with them for the cores, as it would in production.
//! Exits with status 1 if any span was not persisted: dropped at a full
//! queue, failed to write, or shed (new traces skipped whole while the
//! queue is half full, the default under overload).

use ferret_analyze::store::Store;
use std::time::{Duration, Instant};

/// Spans per pacing step of one thread (128 traces of 8 spans).
const STEP: u64 = 1024;

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .map_or(50_000_000, |a| a.parse().expect("SPANS: a number"));
    let threads: u64 = args
        .next()
        .map_or(2, |a| a.parse().expect("THREADS: a number"));
    let rate: Option<f64> = match args.next().as_deref() {
        None => Some(6.0),
        Some("max") => None,
        Some(a) => Some(a.parse().expect("RATE: M spans/s, or max")),
    };
    let per_thread = total / threads / STEP * STEP;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("persist.db");
    let profiler = ferret::Profiler::builder(&path)
        .run_id("persist")
        .open()
        .expect("open");
    profiler.install();

    // Time per step of one thread at the target rate.
    let step_time = rate.map(|r| Duration::from_secs_f64(STEP as f64 * threads as f64 / (r * 1e6)));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut due = Instant::now();
                for _ in 0..per_thread / STEP {
                    // Traces of 1 root + 7 children, like a request with a few steps.
                    for _ in 0..STEP / 8 {
                        let _root = ferret::span("request");
                        for _ in 0..7 {
                            let _s = ferret::span("step");
                        }
                    }
                    if let Some(step) = step_time {
                        due += step;
                        while Instant::now() < due {
                            std::hint::spin_loop();
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("recording thread");
    }
    let recorded = t0.elapsed();
    let stats = profiler.close().expect("close");
    let total = t0.elapsed();

    let store = Store::open(&path).expect("reopen");
    let run = store
        .runs()
        .expect("runs")
        .into_iter()
        .find(|r| r.run_id == "persist")
        .expect("run");
    let produced = threads * per_thread;
    let bytes = store.file_size();
    let rate_done = run.spans as f64 / total.as_secs_f64();
    println!("threads              {threads}");
    match rate {
        Some(r) => println!("target rate          {r:.2} M spans/s (threads busy between spans)"),
        None => println!("target rate          max (threads only record spans)"),
    }
    println!("spans produced       {produced}");
    println!("spans persisted      {}", run.spans);
    println!(
        "drops                {} (queue {}, write {}); shed under queue pressure {}",
        stats.dropped_queue + stats.dropped_write,
        stats.dropped_queue,
        stats.dropped_write,
        stats.shed
    );
    println!(
        "recording time       {:.3} s ({:.2} M spans/s produced)",
        recorded.as_secs_f64(),
        produced as f64 / recorded.as_secs_f64() / 1e6
    );
    println!("until committed      {:.3} s", total.as_secs_f64());
    println!("persisted spans/s    {:.2} M", rate_done / 1e6);
    println!(
        "bytes per span       {:.2} (file + wal: {} bytes)",
        bytes as f64 / run.spans.max(1) as f64,
        bytes
    );
    if run.spans != produced || stats.dropped_queue + stats.dropped_write + stats.shed != 0 {
        eprintln!("LOST SPANS");
        std::process::exit(1);
    }
}
