//! Cost of a span that sampling skips, next to a recorded one (same run).
//!
//! - `recorded`: a root span with one child, both recorded.
//! - `sampled_out_root`: the same pair under `sample_rate(0.0)`: the root is
//!   refused by the sampler, the child skips because its parent did.
//! - `throttled_root`: the same pair under an exhausted `max_spans_per_second`.
//!
//! Each iteration makes two spans; criterion reports time per iteration.

use criterion::{criterion_group, criterion_main, Criterion};

fn pair() {
    let _root = ferret::span("root");
    let _child = ferret::span("child");
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("sampling");
    {
        let p = ferret::Profiler::open(dir.path().join("rec.db")).unwrap();
        p.install();
        g.bench_function("recorded", |b| b.iter(pair));
        p.close().unwrap();
    }
    {
        let p = ferret::Profiler::builder(dir.path().join("rate.db"))
            .sample_rate(0.0)
            .open()
            .unwrap();
        p.install();
        g.bench_function("sampled_out_root", |b| b.iter(pair));
        p.close().unwrap();
    }
    {
        let p = ferret::Profiler::builder(dir.path().join("thr.db"))
            .max_spans_per_second(1.0)
            .open()
            .unwrap();
        p.install();
        for _ in 0..10 {
            pair(); // spend the bucket
        }
        g.bench_function("throttled_root", |b| b.iter(pair));
        p.close().unwrap();
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
