//! The commit promise under SIGKILL: a child process (this test binary,
//! re-executed in a child mode) records spans at a steady rate and writes,
//! for each span, its id and the wall time by which it had ended to a side
//! file (one `write(2)` per line: a SIGKILL loses nothing already written to
//! the kernel). The parent kills it at a random point; every span that ended
//! more than the flush interval plus slack before the kill must be in the
//! file, the file must pass `PRAGMA integrity_check`, and it must read back
//! and analyze.
//!
//! Many more trials: `bench/crash.sh`.

use ferret_analyze::store::{SpanQuery, Store};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Child mode: `DB;SIDE_FILE;SPANS_PER_SEC;THREADS;FLUSH_MS`.
const CHILD: &str = "FERRET_CRASH_CHILD";
/// The promise: ended more than `FLUSH_MS + SLACK_MS` before the kill means
/// committed. (Overridable for a very loaded machine.)
const SLACK_MS: u64 = 100;
const FLUSH_MS: u64 = 200;

fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The child's body: records traces of two spans (root and child) from
/// `threads` threads at `rate` spans/s in all, until killed.
fn child(spec: &str) {
    let parts: Vec<&str> = spec.split(';').collect();
    let (db, side) = (parts[0], parts[1]);
    let rate: f64 = parts[2].parse().unwrap();
    let threads: usize = parts[3].parse().unwrap();
    let flush_ms: u64 = parts[4].parse().unwrap();
    let profiler = ferret::Profiler::builder(db)
        .flush_interval(Duration::from_millis(flush_ms))
        .open()
        .unwrap();
    profiler.install();
    let side = std::sync::Arc::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(side)
            .unwrap(),
    );
    (&*side).write_all(b"ready\n").unwrap();
    let period = Duration::from_secs_f64(2.0 * threads as f64 / rate);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let side = side.clone();
            std::thread::spawn(move || {
                let t0 = Instant::now() + period.mul_f64(t as f64 / threads as f64);
                for i in 0u32.. {
                    if let Some(w) = (t0 + period * i).checked_duration_since(Instant::now()) {
                        std::thread::sleep(w);
                    }
                    let root = ferret::span("crash.request");
                    let root_id = root.id().unwrap();
                    let step = ferret::span("crash.step");
                    let step_id = step.id().unwrap();
                    drop(step);
                    let step_end = wall_ns();
                    drop(root);
                    let root_end = wall_ns();
                    let line = format!("{step_id} {step_end}\n{root_id} {root_end}\n");
                    (&*side).write_all(line.as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn crash_child_entry() {
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
    }
}

/// A small xorshift generator seeded from the clock (no dependency).
fn random_between(lo: f64, hi: f64) -> f64 {
    let mut x = (wall_ns() as u64) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    lo + (hi - lo) * ((x >> 11) as f64 / (1u64 << 53) as f64)
}

/// One trial; returns (spans that had to be there, spans missing).
fn trial(dir: &Path, n: usize, rate: f64, threads: usize, kill_after: (f64, f64)) -> (u64, u64) {
    let db = dir.join(format!("crash{n}.db"));
    let side = dir.join(format!("crash{n}.ends"));
    let spec = format!(
        "{};{};{rate};{threads};{FLUSH_MS}",
        db.display(),
        side.display()
    );
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child_entry", "--test-threads=1"])
        .env(CHILD, spec)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !std::fs::read_to_string(&side).is_ok_and(|s| s.starts_with("ready")) {
        assert!(t.elapsed() < Duration::from_secs(30), "child never ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_secs_f64(random_between(
        kill_after.0,
        kill_after.1,
    )));
    let kill_ns = wall_ns();
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();

    let cutoff = kill_ns - u128::from(FLUSH_MS + SLACK_MS) * 1_000_000;
    let must: Vec<u64> = std::fs::read_to_string(&side)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (id, end) = l.split_once(' ')?;
            let (id, end): (u64, u128) = (id.parse().ok()?, end.parse().ok()?);
            (end < cutoff).then_some(id)
        })
        .collect();

    let conn = rusqlite::Connection::open(&db).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "trial {n}");
    drop(conn);

    let store = Store::open(&db).unwrap();
    let run = store.latest_run().unwrap();
    let mut spans = store.spans(&run, &SpanQuery::default()).unwrap();
    let mut have = HashSet::new();
    for s in spans.by_ref() {
        have.insert(s.span_id());
    }
    assert_eq!(spans.skipped_rows(), 0, "trial {n}: undecodable blocks");
    drop(spans);
    // The file analyses: a summary over the run counts every span, and
    // its counters show the run as incomplete.
    let summary = ferret_analyze::analysis::summarize(
        &store,
        &ferret_analyze::analysis::Query::run(&run),
        &Default::default(),
        None,
    )
    .unwrap();
    assert_eq!(summary.spans, have.len() as u64, "trial {n}");
    assert!(
        summary.counters.as_ref().is_some_and(|c| !c.complete()),
        "trial {n}: {:?}",
        summary.counters
    );
    // The crashed process shows as such.
    let info = store.runs().unwrap().pop().unwrap();
    assert_eq!(info.processes_unclosed, 1, "trial {n}: {info:?}");
    let lost = must.iter().filter(|id| !have.contains(id)).count() as u64;
    (must.len() as u64, lost)
}

fn trials(rate: f64, threads: usize, n: usize, kill_after: (f64, f64)) {
    let dir = tempfile::tempdir().unwrap();
    let mut report = vec![];
    for i in 0..n {
        let (must, lost) = trial(dir.path(), i, rate, threads, kill_after);
        report.push((must, lost));
    }
    let lost: u64 = report.iter().map(|r| r.1).sum();
    assert_eq!(
        lost, 0,
        "{rate} spans/s: (spans ended > {FLUSH_MS}+{SLACK_MS} ms before the kill, of them missing) per trial: {report:?}"
    );
    assert!(
        report.iter().any(|r| r.0 > 0),
        "nothing to check: {report:?}"
    );
}

#[test]
fn sigkill_at_10_spans_per_second_loses_nothing_committed() {
    trials(10.0, 4, 2, (0.8, 1.6));
}

#[test]
fn sigkill_at_4000_spans_per_second_loses_nothing_committed() {
    trials(4000.0, 4, 3, (0.4, 1.5));
}

/// Child mode of `counters_that_failed_to_write_are_retried`: the db path.
const DISK_FULL_CHILD: &str = "FERRET_DISK_FULL_CHILD";

/// Caps the size of files this process may write so that commits fail
/// (the counters cannot be written either), lifts the cap, then exits
/// without closing the profiler.
fn disk_full_child(db: &str) {
    let p = ferret::Profiler::builder(db)
        .run_id("disk-full")
        .flush_interval(Duration::from_millis(40))
        .open()
        .unwrap();
    p.install();
    drop(ferret::span("before"));
    p.flush().unwrap();
    let size = |f: &str| std::fs::metadata(f).map_or(0, |m| m.len());
    let cap = size(db).max(size(&format!("{db}-wal"))) + 1024;
    let set_cap = |cur: u64| {
        let lim = libc::rlimit {
            rlim_cur: cur,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: plain libc calls with valid arguments.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
        }
    };
    set_cap(cap);
    for i in 0..100_000u64 {
        let _g = ferret::span("doomed").with_tag("i", i);
    }
    std::thread::sleep(Duration::from_millis(400));
    let st = p.stats();
    assert!(st.dropped_write > 0, "{st:?}");
    set_cap(libc::RLIM_INFINITY);
    // Ticks retry the counters now that they can be written.
    std::thread::sleep(Duration::from_millis(400));
    std::process::exit(0);
}

/// Counters that could not be written while the disk was full are written
/// once it can be again; a process that exits without closing leaves an
/// incomplete run whose losses are on record.
#[test]
fn counters_that_failed_to_write_are_retried() {
    if let Ok(db) = std::env::var(DISK_FULL_CHILD) {
        disk_full_child(&db);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("full.db");
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "counters_that_failed_to_write_are_retried",
            "--test-threads=1",
        ])
        .env(DISK_FULL_CHILD, &db)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let store = Store::open(&db).unwrap();
    let info = store.runs().unwrap().pop().unwrap();
    assert!(info.dropped_write > 0, "{info:?}");
    assert_eq!(info.accepted, 100_001, "{info:?}");
    assert_eq!(info.accepted, info.spans + info.dropped_write, "{info:?}");
    assert!(!info.complete(), "{info:?}");
}
