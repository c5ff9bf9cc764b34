//! The cost of one `tracing` span (create with a field, enter, exit,
//! close) as the fastest of many batches (on a shared machine the minimum
//! is what is left when nothing else interferes, where criterion's mean
//! moves with the load), with:
//!
//! - an empty registry;
//! - the cheapest layer that keeps per-span state in the registry's
//!   extensions (the floor of any layer made that way; FerretLayer keeps
//!   its own table, see docs/DESIGN.md);
//! - the cheapest layer that records spans with their busy time: a
//!   sharded table of start, entered-since and busy time, a clock read in
//!   each callback, and a 32-byte record per span into a thread-local
//!   buffer; no fields, no names, no parents (the floor of any layer that
//!   records what FerretLayer records);
//! - `FerretLayer`, by default and without its `target` and busy-time
//!   tags.
//!
//! ```text
//! cargo run --release -p ferret --features tracing --example layer_cost
//! ```
//!
//! With an argument, `registry`, `floor`, `busy-floor` or `ferret`, it only runs that
//! loop for 10 M spans (or as many as a second argument says) and prints
//! nothing: a steady target for `perf
//! record` or callgrind.

use ferret_testkit::floor::BusyFloorLayer;
use std::time::Instant;
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Four counters per span, in the span's extensions: inserted at creation,
/// updated at every enter and exit, removed at close.
struct Counters([u64; 4]);

/// The cheapest layer that keeps state per span in the extensions.
struct FloorLayer;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for FloorLayer {
    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(s) = ctx.span(id) {
            s.extensions_mut().insert(Counters([1, 0, 0, 0]));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(s) = ctx.span(id) {
            if let Some(c) = s.extensions_mut().get_mut::<Counters>() {
                c.0[1] += 1;
            }
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(s) = ctx.span(id) {
            if let Some(c) = s.extensions_mut().get_mut::<Counters>() {
                c.0[2] += 1;
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(s) = ctx.span(&id) {
            std::hint::black_box(s.extensions_mut().remove::<Counters>());
        }
    }
}

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
    if let Some(only) = std::env::args().nth(1) {
        let n: u64 = match std::env::args().nth(2).map(|n| n.parse()) {
            None => 10_000_000,
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                eprintln!("layer_cost: bad span count: {e}");
                std::process::exit(2);
            }
        };
        let spans = || {
            for i in 0..n {
                one_span(i);
            }
        };
        match only.as_str() {
            "registry" => tracing::subscriber::with_default(tracing_subscriber::registry(), spans),
            "floor" => tracing::subscriber::with_default(
                tracing_subscriber::registry().with(FloorLayer),
                spans,
            ),
            "busy-floor" => tracing::subscriber::with_default(
                tracing_subscriber::registry().with(BusyFloorLayer::default()),
                spans,
            ),
            "ferret" => {
                tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), spans)
            }
            other => {
                eprintln!(
                    "layer_cost: unknown loop {other:?} (registry, floor, busy-floor or ferret)"
                );
                std::process::exit(2);
            }
        }
        profiler.close().unwrap();
        return;
    }
    let bare = layer.clone().with_target_tag(false).with_busy_time(false);
    // Interleaved rounds; the minimum of each.
    let mut best = [f64::INFINITY; 5];
    for _ in 0..5 {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            best[0] = best[0].min(floor_ns(200));
        });
        let sub = tracing_subscriber::registry().with(FloorLayer);
        tracing::subscriber::with_default(sub, || best[1] = best[1].min(floor_ns(200)));
        let sub = tracing_subscriber::registry().with(BusyFloorLayer::default());
        tracing::subscriber::with_default(sub, || best[2] = best[2].min(floor_ns(200)));
        let sub = tracing_subscriber::registry().with(layer.clone());
        tracing::subscriber::with_default(sub, || best[3] = best[3].min(floor_ns(200)));
        let sub = tracing_subscriber::registry().with(bare.clone());
        tracing::subscriber::with_default(sub, || best[4] = best[4].min(floor_ns(200)));
    }
    let stats = profiler.close().unwrap();
    let rows = [
        "tracing, empty registry",
        "floor: state in extensions",
        "floor: busy-time recorder",
        "tracing + FerretLayer",
        "  without target, busy tags",
    ];
    for (what, ns) in rows.iter().zip(best) {
        println!("{what:<28} {ns:7.1} ns/span  {:5.2}×", ns / best[0]);
    }
    println!(
        "ferret: {} spans written, {} dropped at the queue",
        stats.accepted, stats.dropped_queue
    );
}
