//! The cost of one `tracing` span (create with a field, enter, exit,
//! close) with an empty registry and with `FerretLayer`, as the fastest of
//! many batches: on a shared machine the minimum is what is left when
//! nothing else interferes, where criterion's mean moves with the load.
//!
//! ```text
//! cargo run --release -p ferret --features tracing --example layer_cost
//! ```

use std::time::Instant;
use tracing_subscriber::prelude::*;

fn one_span(i: u64) {
    let span = tracing::info_span!("work", i);
    let _e = span.enter();
    std::hint::black_box(&span);
}

/// Nanoseconds per span: the fastest of `batches` batches of 10,000 spans.
fn floor_ns(batches: usize) -> f64 {
    let mut best = f64::INFINITY;
    let mut i = 0;
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..10_000 {
            i += 1;
            one_span(i);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / 10_000.0);
    }
    best
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let profiler = ferret::Profiler::open(dir.path().join("ferret.db")).unwrap();
    let layer = ferret::FerretLayer::new(&profiler);
    let mut rows = Vec::new();
    // Interleaved rounds; the minimum of each.
    let (mut reg, mut fer) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..5 {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            reg = reg.min(floor_ns(200));
        });
        let sub = tracing_subscriber::registry().with(layer.clone());
        tracing::subscriber::with_default(sub, || {
            fer = fer.min(floor_ns(200));
        });
    }
    rows.push(("tracing, empty registry", reg));
    rows.push(("tracing + FerretLayer", fer));
    let stats = profiler.close().unwrap();
    for (what, ns) in rows {
        println!("{what:<24} {ns:7.1} ns/span");
    }
    println!("ratio                    {:7.2}×", fer / reg);
    println!(
        "ferret: {} spans written, {} dropped at the queue",
        stats.accepted, stats.dropped_queue
    );
}
