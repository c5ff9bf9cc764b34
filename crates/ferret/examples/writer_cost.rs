//! The background writer's own cost at a steady span rate: one thread
//! records traces of 8 spans at `RATE` spans/s for `SECS` seconds (spinning
//! on the clock between them, as a busy service would), then the example
//! prints the `ferret-writer` thread's CPU time (from
//! `/proc/self/task/*/schedstat`) and how often it woke up
//! (its voluntary context switches), and the bytes it wrote (`wchar` of
//! `/proc/self/task/*/io`: WAL frames and checkpoints, which with SQLite
//! rewrite whole pages, so they grow with the page size). Linux only.
//!
//! ```text
//! cargo run --release -p ferret --example writer_cost -- [RATE] [SECS]
//! ```
//!
//! Defaults: 100,000 spans/s for 10 s. `RATE` 0 records nothing: the cost
//! of an idle recorder (its heartbeats).

use std::path::Path;
use std::time::{Duration, Instant};

/// The `ferret-writer` thread's /proc directory.
fn writer_task() -> Option<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/task").ok()?.find_map(|e| {
        let p = e.ok()?.path();
        let comm = std::fs::read_to_string(p.join("comm")).ok()?;
        (comm.trim() == "ferret-writer").then_some(p)
    })
}

/// CPU seconds of a task: from `schedstat` (nanoseconds on a CPU), else
/// from `stat` (user + system, in 10 ms ticks).
fn cpu_secs(task: &Path) -> f64 {
    let sched = std::fs::read_to_string(task.join("schedstat")).unwrap_or_default();
    if let Some(ns) = sched
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
    {
        return ns / 1e9;
    }
    let stat = std::fs::read_to_string(task.join("stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Voluntary context switches of a task: how often it went to sleep.
fn wakeups(task: &Path) -> u64 {
    let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Bytes a task passed to `write`/`pwrite` (its `wchar`).
fn written(task: &Path) -> u64 {
    let io = std::fs::read_to_string(task.join("io")).unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: f64 = args
        .next()
        .map_or(100_000.0, |a| a.parse().expect("RATE: spans/s"));
    let secs: f64 = args
        .next()
        .map_or(10.0, |a| a.parse().expect("SECS: seconds"));
    let dir = tempfile::tempdir().expect("temp dir");
    let profiler = ferret::Profiler::open(dir.path().join("writer.db")).expect("open");
    profiler.install();
    // The writer names its thread as it starts: look for a moment.
    let task = (0..100)
        .find_map(|_| {
            writer_task().or_else(|| {
                std::thread::sleep(Duration::from_millis(10));
                None
            })
        })
        .expect("a ferret-writer thread (Linux /proc)");
    let (cpu0, wake0, wrote0) = (cpu_secs(&task), wakeups(&task), written(&task));

    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let step = Duration::from_secs_f64(if rate > 0.0 { 8.0 / rate } else { secs });
    let mut due = t0;
    let mut spans = 0u64;
    if rate <= 0.0 {
        std::thread::sleep(end - Instant::now());
    }
    while rate > 0.0 && Instant::now() < end {
        let _request = ferret::span("request");
        for _ in 0..7 {
            let _step = ferret::span("step");
        }
        spans += 8;
        due += step;
        while Instant::now() < due.min(end) {
            std::hint::spin_loop();
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs(&task) - cpu0;
    let woke = wakeups(&task) - wake0;
    let wrote = written(&task) - wrote0;
    let page_size: i64 = rusqlite::Connection::open(dir.path().join("writer.db"))
        .and_then(|c| c.query_row("PRAGMA page_size", [], |r| r.get(0)))
        .unwrap_or(0);
    profiler.close().expect("close");

    println!("span rate            {:.0} spans/s", spans as f64 / wall);
    println!(
        "writer CPU           {cpu:.2} s in {wall:.1} s = {:.2}% of one core ({:.0} ns per span)",
        100.0 * cpu / wall,
        cpu * 1e9 / spans.max(1) as f64
    );
    println!("writer wake-ups      {:.0} per second", woke as f64 / wall);
    println!(
        "writer bytes written {:.1} KB/s ({:.1} bytes per span; page size {page_size})",
        wrote as f64 / wall / 1e3,
        wrote as f64 / spans.max(1) as f64
    );
}
