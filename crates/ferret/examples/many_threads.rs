//! Memory of short-lived threads: spawns THREADS threads (WAVE at a time),
//! each recording one span, then prints the process's peak and current
//! resident and virtual memory from `/proc/self/status`.
//!
//! ```text
//! cargo run --release -p ferret --example many_threads -- [THREADS] [WAVE]
//! ```

use std::time::Instant;

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(100_000, |a| a.parse().expect("THREADS: a number"));
    let wave: usize = args
        .next()
        .map_or(64, |a| a.parse().expect("WAVE: a number"));
    let dir = tempfile_dir();
    let db = dir.join("many_threads.db");
    let _ = std::fs::remove_file(&db);
    let profiler = ferret::Profiler::open(&db).expect("open");
    profiler.install();
    let t = Instant::now();
    let mut done = 0;
    while done < n {
        let k = wave.min(n - done);
        let hs: Vec<_> = (0..k)
            .map(|_| {
                std::thread::spawn(|| {
                    let _g = ferret::span("short_lived");
                })
            })
            .collect();
        for h in hs {
            h.join().expect("thread");
        }
        done += k;
    }
    let spawned = t.elapsed();
    let (hwm, rss, vm) = (
        status_kb("VmHWM:"),
        status_kb("VmRSS:"),
        status_kb("VmPeak:"),
    );
    let stats = profiler.close().expect("close");
    println!(
        "{n} threads x 1 span in {:.2} s: peak RSS {:.1} MB, RSS {:.1} MB, peak virtual {:.1} MB; accepted {}, dropped {}",
        spawned.as_secs_f64(),
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0,
        vm as f64 / 1024.0,
        stats.accepted,
        stats.dropped_queue + stats.dropped_write
    );
    let _ = std::fs::remove_file(&db);
}

fn tempfile_dir() -> std::path::PathBuf {
    std::env::var_os("TMPDIR").map_or_else(std::env::temp_dir, Into::into)
}
