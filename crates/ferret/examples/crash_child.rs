//! A process to be killed: records spans at a steady rate from several
//! threads and prints, for every span, its id and the wall-clock time
//! (nanoseconds since the UNIX epoch) at which it had ended, one line per
//! span (`ID END_NS`), each written with one `write(2)`.
//!
//! A SIGKILL loses nothing the process already wrote to a file descriptor,
//! so after the kill the printed lines tell which spans had ended when:
//! `tests/crash.rs` and `bench/crash.sh` check that every span that ended
//! more than the flush interval (plus slack) before the kill is in the file.
//!
//! ```text
//! cargo run --release -p ferret --example crash_child -- DB SPANS_PER_SEC THREADS [FLUSH_MS]
//! ```
//!
//! Each thread records traces of two spans (a root and one child) at its
//! share of `SPANS_PER_SEC`, until it is killed. The first line printed is
//! `ready` once the profiler is open.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Writes one line with a single write call (stdout is shared by threads).
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

fn main() {
    let mut args = std::env::args().skip(1);
    let db = args.next().expect("DB path");
    let rate: f64 = args
        .next()
        .map_or(10.0, |a| a.parse().expect("SPANS_PER_SEC: a number"));
    let threads: usize = args
        .next()
        .map_or(4, |a| a.parse().expect("THREADS: a number"));
    let flush_ms: u64 = args
        .next()
        .map_or(200, |a| a.parse().expect("FLUSH_MS: a number"));
    let profiler = ferret::Profiler::builder(&db)
        .flush_interval(Duration::from_millis(flush_ms))
        .open()
        .expect("open the profiler");
    profiler.install();
    emit("ready\n");
    // Two spans per trace: the period of one thread's traces.
    let period = Duration::from_secs_f64(2.0 * threads as f64 / rate);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                // Stagger the threads over one period.
                let t0 = Instant::now() + period.mul_f64(t as f64 / threads as f64);
                for i in 0u64.. {
                    let due = t0 + period * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let root = ferret::span("crash.request");
                    let root_id = root.id().unwrap_or(0);
                    let child = ferret::span("crash.step");
                    let child_id = child.id().unwrap_or(0);
                    drop(child);
                    let child_end = wall_ns();
                    drop(root);
                    let root_end = wall_ns();
                    emit(&format!("{child_id} {child_end}\n{root_id} {root_end}\n"));
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}
