//! What a `tracing` span (create with a field, enter, exit, close) costs
//! each of several threads recording at once, against one thread alone:
//! CPU time per span of each recording thread (its own CPU clock, so
//! neither the writer thread nor waiting for a core counts), with an empty
//! registry and with `FerretLayer`. Where threads share written memory
//! (a lock, a reference count), each pays for the other's writes, and its
//! CPU time per span grows with the threads.
//!
//! Rounds alternate the modes; medians of the rounds are printed.
//!
//! ```text
//! cargo run --release -p ferret --features tracing --example layer_threads -- [THREADS] [ROUNDS] [SPANS]
//! ```

use tracing_subscriber::prelude::*;

/// CPU time of the calling thread, in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[inline(never)]
fn spans(n: u64) {
    for i in 0..n {
        let span = tracing::info_span!("work", i);
        let _e = span.enter();
        std::hint::black_box(&span);
    }
}

/// Mean CPU ns per span over `threads` threads recording `n` spans each
/// through `dispatch` at once.
fn cpu_per_span(dispatch: &tracing::Dispatch, threads: usize, n: u64) -> f64 {
    let total: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    tracing::dispatcher::with_default(dispatch, || {
                        spans(1000);
                        let t = thread_cpu_ns();
                        spans(n);
                        thread_cpu_ns() - t
                    })
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / (threads as u64 * n) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let arg = |i: usize, d: u64| {
        std::env::args()
            .nth(i)
            .map_or(d, |s| s.parse().expect("a number"))
    };
    let (threads, rounds, n) = (arg(1, 2) as usize, arg(2, 5) as usize, arg(3, 500_000));
    let dir = tempfile::tempdir().unwrap();
    let profiler = ferret::Profiler::open(dir.path().join("ferret.db")).unwrap();
    let modes = [
        (
            "tracing, empty registry",
            tracing::Dispatch::new(tracing_subscriber::registry()),
        ),
        (
            "tracing + FerretLayer",
            tracing::Dispatch::new(
                tracing_subscriber::registry().with(ferret::FerretLayer::new(&profiler)),
            ),
        ),
    ];
    let mut cpu = vec![(Vec::new(), Vec::new()); modes.len()];
    for _ in 0..rounds {
        for (m, (_, d)) in modes.iter().enumerate() {
            cpu[m].0.push(cpu_per_span(d, 1, n));
            cpu[m].1.push(cpu_per_span(d, threads, n));
        }
    }
    let stats = profiler.close().unwrap();
    println!("CPU ns per span of each recording thread, medians of {rounds} rounds of {n} spans a thread:");
    println!(
        "{:<26} {:>9} {:>11} {:>7}",
        "",
        "1 thread",
        format!("{threads} threads"),
        "ratio"
    );
    for ((what, _), (one, many)) in modes.iter().zip(cpu) {
        let (one, many) = (median(one), median(many));
        println!("{what:<26} {one:9.1} {many:11.1} {:6.2}×", many / one);
    }
    println!(
        "ferret: {} spans written, {} dropped at the queue",
        stats.accepted, stats.dropped_queue
    );
}
