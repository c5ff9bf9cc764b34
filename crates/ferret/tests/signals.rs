//! SIGTERM with and without `ferret::flush_on_signals()`: with it, the
//! spans that ended before the signal are committed and the run is complete;
//! without it, SIGTERM kills like SIGKILL (what ended within the flush
//! interval is lost, and the run shows as incomplete). Either way the
//! process ends by the signal.
#![cfg(unix)]

use ferret_analyze::store::{SpanQuery, Store};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Child mode: `DB;READY_FILE;HANDLER(0|1)`.
const CHILD: &str = "FERRET_SIGNAL_CHILD";
const SPANS: u64 = 50;

#[test]
fn signal_child_entry() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let parts: Vec<&str> = spec.split(';').collect();
    if parts[2] == "1" {
        ferret::flush_on_signals().unwrap();
    }
    // A long interval: only the signal handler can commit these spans.
    let p = ferret::Profiler::builder(parts[0])
        .flush_interval(Duration::from_secs(60))
        .open()
        .unwrap();
    p.install();
    for _ in 0..SPANS {
        drop(ferret::span("before.signal"));
    }
    std::fs::write(parts[1], "ready").unwrap();
    std::thread::sleep(Duration::from_secs(60));
    drop(p);
}

fn run(dir: &Path, handler: bool) -> (u64, bool) {
    let db = dir.join(format!("sig{handler}.db"));
    let ready = dir.join(format!("sig{handler}.ready"));
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "signal_child_entry", "--test-threads=1"])
        .env(
            CHILD,
            format!("{};{};{}", db.display(), ready.display(), u8::from(handler)),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !ready.exists() {
        assert!(t.elapsed() < Duration::from_secs(30), "child never ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let status = c.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    let store = Store::open(&db).unwrap();
    let run = store.latest_run().unwrap();
    let n = store.spans(&run, &SpanQuery::default()).unwrap().count() as u64;
    let info = store.runs().unwrap().pop().unwrap();
    (n, info.complete())
}

#[test]
fn sigterm_flushes_with_the_opt_in_handler() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(dir.path(), true), (SPANS, true));
}

#[test]
fn sigterm_without_handler_loses_the_last_interval_and_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(dir.path(), false), (0, false));
}
