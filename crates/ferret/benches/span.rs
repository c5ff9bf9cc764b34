//! Cost of one span (enter + exit), nested one level under an outer span.
//!
//! Every benchmark runs its inner span in chunks of `CHUNK` under one outer
//! span, so the outer span's cost is spread over the chunk (and puffin can be
//! given a new frame between chunks, outside the timed region, so that its
//! memory does not grow).
//!
//! Time is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so
//! that other processes on a busy machine (and ferret's own writer thread
//! when cores are scarce) do not count as span cost; set
//! `FERRET_BENCH_WALL=1` to measure wall time instead.
//!
//! `cargo bench -p ferret --bench span -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::cell::RefCell;
use std::time::{Duration, Instant};

const CHUNK: u64 = 1024;

/// A timestamp of the clock the benchmarks use.
fn now() -> Duration {
    static WALL: std::sync::OnceLock<Option<Instant>> = std::sync::OnceLock::new();
    if let Some(t0) = WALL.get_or_init(|| {
        std::env::var_os("FERRET_BENCH_WALL")
            .filter(|v| v != "0")
            .map(|_| Instant::now())
    }) {
        return t0.elapsed();
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `iters` inner spans in chunks; `chunk(n)` runs `n` of them under an
/// outer span, `between()` runs untimed after each chunk.
fn chunked(iters: u64, mut chunk: impl FnMut(u64), mut between: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let t = now();
        chunk(n);
        total += now() - t;
        between();
        left -= n;
    }
    total
}

/// The loop body is the same for every contender: open a scope, then an
/// opaque `black_box(())` inside it (the guard itself is not forced into
/// memory, as it would not be in a real program).
fn ferret_spans(n: u64) {
    let _outer = ferret::span("outer");
    for _ in 0..n {
        let _g = ferret::span("inner");
        black_box(());
    }
}

fn bench_ferret(c: &mut Criterion) {
    let mut g = c.benchmark_group("span");

    // Nothing installed: the cost of a span in a program that does not profile.
    g.bench_function("ferret_disabled", |b| {
        b.iter_custom(|iters| chunked(iters, ferret_spans, || {}))
    });

    // The loop outruns the writer (see the README): with the default
    // shedding, whole chunks would be skipped as the queue fills, and the
    // figure would mix recorded and skipped spans. `ferret` measures the
    // recording path alone (full-queue drops instead of shedding, as
    // before shedding existed); `ferret_shedding` the default setting.
    let dir = tempfile::tempdir().unwrap();
    // `ferret_live_off`: without the heartbeat and the snapshot of open
    // spans (on by default), so threads do not publish their open spans.
    for (name, shed, live) in [
        ("ferret", false, true),
        ("ferret_live_off", false, false),
        ("ferret_shedding", true, true),
    ] {
        let mut b =
            ferret::Profiler::builder(dir.path().join(format!("{name}.db"))).shed_traces(shed);
        if !live {
            b = b.heartbeat_interval(None);
        }
        let profiler = b.open().unwrap();
        profiler.install();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| chunked(iters, ferret_spans, || {}))
        });
        let stats = profiler.close().unwrap();
        eprintln!("{name}: {stats:?}");
    }

    puffin::set_scopes_on(true);
    g.bench_function("puffin", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                |n| {
                    puffin::profile_scope!("outer");
                    for _ in 0..n {
                        puffin::profile_scope!("inner");
                        black_box(());
                    }
                },
                || puffin::GlobalProfiler::lock().new_frame(),
            )
        })
    });
    puffin::set_scopes_on(false);

    timing_layer::install();
    g.bench_function("tracing_layer", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                |n| {
                    let outer = tracing::info_span!("outer");
                    let _o = outer.enter();
                    for _ in 0..n {
                        let s = tracing::info_span!("inner");
                        let e = s.enter();
                        black_box(&e);
                    }
                },
                timing_layer::drain,
            )
        })
    });
    g.finish();
}

/// A minimal timing layer: on_enter/on_exit record the times into a
/// thread-local vector.
mod timing_layer {
    use super::*;
    use tracing::span::Id;
    use tracing::Subscriber;
    use tracing_subscriber::layer::{Context, Layer};
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::registry::LookupSpan;

    thread_local! {
        /// Open spans: (span id, enter time).
        static OPEN: RefCell<Vec<(u64, Instant)>> = const { RefCell::new(Vec::new()) };
        /// Finished spans: (span id, enter, exit).
        static DONE: RefCell<Vec<(u64, Instant, Instant)>> = const { RefCell::new(Vec::new()) };
    }

    struct Timing;

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Timing {
        fn on_enter(&self, id: &Id, _ctx: Context<'_, S>) {
            let now = Instant::now();
            OPEN.with(|o| o.borrow_mut().push((id.into_u64(), now)));
        }

        fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
            let now = Instant::now();
            if let Some((i, start)) = OPEN.with(|o| o.borrow_mut().pop()) {
                debug_assert_eq!(i, id.into_u64());
                DONE.with(|d| d.borrow_mut().push((i, start, now)));
            }
        }
    }

    pub fn install() {
        tracing_subscriber::registry().with(Timing).init();
    }

    /// Drops finished records so that memory does not grow.
    pub fn drain() {
        DONE.with(|d| {
            let mut d = d.borrow_mut();
            black_box(d.len());
            d.clear();
        });
    }
}

criterion_group!(benches, bench_ferret);
criterion_main!(benches);
