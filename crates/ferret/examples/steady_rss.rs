//! A long-running process's memory with Ferret recording at a steady rate:
//! the process's resident memory (total, anonymous, file-backed), the file
//! and its write-ahead log, once a second. What a service pays in memory
//! for leaving Ferret on should stop growing after warm-up; this shows
//! whether and where it does. Linux only (`/proc/self/status`).
//!
//! ```text
//! cargo run --release -p ferret --example steady_rss -- [RATE] [SECS]
//! ```
//!
//! Defaults: 60,000 spans/s (traces of 3 spans) for 30 s, about 1.8 M
//! spans.

use std::time::{Duration, Instant};

/// VmRSS, RssAnon and RssFile of this process, in KB.
fn rss_kb() -> [u64; 3] {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    [field("VmRSS:"), field("RssAnon:"), field("RssFile:")]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args
        .next()
        .map_or(60_000, |a| a.parse().expect("RATE: spans/s"));
    let secs: u64 = args
        .next()
        .map_or(30, |a| a.parse().expect("SECS: seconds"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("steady.db");
    let profiler = ferret::Profiler::open(&path).expect("open the profiler");
    profiler.install();
    let kb = |suffix: &str| {
        let p = dir.path().join(format!("steady.db{suffix}"));
        std::fs::metadata(p).map_or(0, |m| m.len() / 1024)
    };
    println!("  s      spans   RSS KB  anon KB  file KB   file KB   WAL KB");
    let t0 = Instant::now();
    let mut n = 0u64;
    for s in 1..=secs {
        while t0.elapsed() < Duration::from_secs(s) {
            for _ in 0..100 {
                let _request = ferret::span("request");
                drop(ferret::span("query"));
                drop(ferret::span("render"));
                n += 3;
            }
            let due = Duration::from_secs_f64(n as f64 / rate as f64);
            if let Some(d) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(d);
            }
        }
        let [rss, anon, file] = rss_kb();
        println!(
            "{s:3} {n:10} {rss:8} {anon:8} {file:8} {:9} {:8}",
            kb(""),
            kb("-wal")
        );
    }
    profiler.close().expect("close the profiler");
}
