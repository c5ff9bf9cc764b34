//! `tracing` + FerretLayer against `tracing` with an empty registry (what
//! tracing costs before any layer records: the target is at most 2× that),
//! against the least a layer recording busy time can cost
//! (`ferret_testkit::floor::BusyFloorLayer`: 1.7-1.8× the registry alone),
//! and against `tracing` + tracing-chrome's layer, per span: create a span
//! with one field, enter it, exit it, close it.
//!
//! ```text
//! cargo bench -p ferret --bench layer
//! ```
//!
//! `tracing_chrome` records span fields (`include_args(true)`) as
//! FerretLayer does (fields, target and busy time as tags);
//! `tracing_chrome_default` is tracing-chrome as built by default (no
//! fields). Both layers hand the work off to a writer thread; what is timed
//! is the cost on the instrumented thread.

use criterion::measurement::WallTime;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkGroup, Criterion};
use tracing_subscriber::prelude::*;

fn one_span(i: u64) {
    let span = tracing::info_span!("work", i);
    let _e = span.enter();
    black_box(&span);
}

/// Times [`one_span`] as `id` with `subscriber` as the default.
fn spans_under(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    subscriber: impl tracing::Subscriber + Send + Sync + 'static,
) {
    tracing::subscriber::with_default(subscriber, || {
        let mut i = 0u64;
        g.bench_function(id, |b| {
            b.iter(|| {
                i += 1;
                one_span(i)
            })
        });
    });
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("layer");

    spans_under(&mut g, "registry", tracing_subscriber::registry());
    spans_under(
        &mut g,
        "busy_floor",
        tracing_subscriber::registry().with(ferret_testkit::floor::BusyFloorLayer::default()),
    );

    let profiler = ferret::Profiler::open(dir.path().join("ferret.db")).unwrap();
    spans_under(
        &mut g,
        "ferret_layer",
        tracing_subscriber::registry().with(ferret::FerretLayer::new(&profiler)),
    );
    let stats = profiler.close().unwrap();
    eprintln!(
        "ferret: {} spans written, {} dropped",
        stats.accepted,
        stats.dropped_queue + stats.dropped_write
    );

    for (id, args) in [("tracing_chrome", true), ("tracing_chrome_default", false)] {
        let (layer, guard) = tracing_chrome::ChromeLayerBuilder::new()
            .file(dir.path().join(format!("{id}.json")))
            .include_args(args)
            .build();
        spans_under(&mut g, id, tracing_subscriber::registry().with(layer));
        drop(guard);
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
