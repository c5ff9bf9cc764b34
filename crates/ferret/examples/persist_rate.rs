//! Sustained persistence: spans recorded from several threads, accepted and
//! committed to the file, per second of wall time (from the first span to
//! the end of `close()`), with the drops and the bytes per span on disk.
//!
//! `cargo run --release -p ferret --example persist_rate -- [spans-per-thread] [threads]`
//! (defaults: 2,500,000 spans per thread, 2 threads).

use ferret::store::Store;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let per_thread: u64 = args
        .next()
        .map_or(2_500_000, |a| a.parse().expect("spans per thread"));
    let threads: u64 = args.next().map_or(2, |a| a.parse().expect("threads"));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("persist.db");
    let profiler = ferret::Profiler::builder(&path)
        .run_id("persist")
        .open()
        .expect("open");
    profiler.install();

    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                // Traces of 1 root + 7 children, like a request with a few steps.
                for _ in 0..per_thread / 8 {
                    let _root = ferret::span("request");
                    for _ in 0..7 {
                        let _s = ferret::span("step");
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
    let produced = threads * (per_thread / 8) * 8;
    let bytes = store.file_size();
    let rate = run.spans as f64 / total.as_secs_f64();
    println!("threads              {threads}");
    println!("spans produced       {produced}");
    println!("spans persisted      {}", run.spans);
    println!(
        "drops                {} (queue {}, write {})",
        stats.dropped_queue + stats.dropped_write,
        stats.dropped_queue,
        stats.dropped_write
    );
    println!(
        "recording time       {:.3} s ({:.1} ns/span/thread)",
        recorded.as_secs_f64(),
        recorded.as_nanos() as f64 / (produced / threads) as f64
    );
    println!("until committed      {:.3} s", total.as_secs_f64());
    println!("persisted spans/s    {:.2} M", rate / 1e6);
    println!(
        "bytes per span       {:.2} (file + wal: {} bytes)",
        bytes as f64 / run.spans.max(1) as f64,
        bytes
    );
    if run.spans != produced || stats.dropped_queue + stats.dropped_write != 0 {
        eprintln!("LOST SPANS");
        std::process::exit(1);
    }
}
