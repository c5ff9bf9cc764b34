//! Live state: heartbeats, the snapshot of open spans, and the stall
//! watchdog, read back with `ferret_analyze::store::live`.
//!
//! The installed profiler is process-global: every test holds the lock.

use ferret::{InSpanExt, Profiler, Stall, StallKind, TagValue};
use ferret_analyze::store::live::{self, ProcessState};
use ferret_analyze::store::Store;
use ferret_testkit::serial as lock;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    (dir, path)
}

/// Polls `f` until it returns `Some`, for at most 10 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls a future once with a waker that does nothing: if it is pending,
/// nothing will ever poll it again.
fn poll_once<F: Future>(f: &mut std::pin::Pin<Box<F>>) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    f.as_mut().poll(&mut cx)
}

/// A profiler on `path` beating every 20 ms, installed.
fn installed_with_fast_heartbeats(path: &Path) -> Profiler {
    let p = Profiler::builder(path)
        .heartbeat_interval(Some(Duration::from_millis(20)))
        .open()
        .unwrap();
    p.install();
    p
}

fn inflight(path: &Path) -> Vec<live::InFlightSpan> {
    live::inflight(&Store::open(path).unwrap(), None).unwrap()
}

#[test]
fn heartbeat_and_open_spans_busy_and_idle() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = installed_with_fast_heartbeats(&path);
    let hold = Arc::new(Barrier::new(2));
    let worker = {
        let hold = hold.clone();
        std::thread::Builder::new()
            .name("worker-7".into())
            .spawn(move || {
                let _o = ferret::span("handle_request").with_tag("route", "/checkout");
                let _i = ferret::span("db.query").with_tag("table", "orders");
                hold.wait();
                hold.wait();
            })
            .unwrap()
    };
    hold.wait();
    let mut fut = Box::pin(std::future::pending::<()>().in_span("wait_for_reply"));
    fut.as_mut().handle_mut().unwrap().tag("peer", 3i64);
    assert!(poll_once(&mut fut).is_pending());

    let rows = eventually("a snapshot with all three spans", || {
        let r = inflight(&path);
        (r.len() == 3).then_some(r)
    });
    let by = |n: &str| rows.iter().find(|s| s.name == n).unwrap().clone();
    let (outer, inner, wait) = (by("handle_request"), by("db.query"), by("wait_for_reply"));
    assert_eq!(outer.depth, 0);
    assert_eq!(inner.depth, 1);
    assert_eq!(inner.parent_id, Some(outer.span_id));
    assert_eq!(inner.trace_id, Some(outer.span_id));
    assert!(outer.entered && inner.entered);
    assert_eq!(inner.thread_name.as_deref(), Some("worker-7"));
    assert!(inner.tid.is_some_and(|t| t > 0));
    assert_eq!(inner.tags, Some(serde_json::json!({"table": "orders"})));
    assert_eq!(outer.tags, Some(serde_json::json!({"route": "/checkout"})));
    assert!(!wait.entered, "an awaiting future is idle");
    assert_eq!(wait.thread, None);
    assert_eq!(wait.depth, 0);
    assert_eq!(wait.tags, Some(serde_json::json!({"peer": 3})));
    assert!(inner.start_ns >= outer.start_ns && inner.open_ns() >= 0);

    let store = Store::open(&path).unwrap();
    let hb = live::heartbeats(&store, Some(p.run_id())).unwrap();
    assert_eq!(hb.len(), 1);
    let h = &hb[0];
    assert_eq!(h.pid, std::process::id());
    assert_eq!(h.interval_ns, 20_000_000);
    assert!(h.cmdline.as_deref().is_some_and(|c| !c.is_empty()));
    assert!(h.beat_ns >= h.started_ns);
    assert_eq!(h.state(live::now_ns()), ProcessState::Running);
    #[cfg(target_os = "linux")]
    {
        assert!(h.rss_bytes.unwrap() > 0);
        assert!(h.threads.unwrap() >= 3);
        assert!(h.cpu_ns.is_some());
    }
    let beat = h.beat_ns;
    eventually("the heartbeat moves on", || {
        let hb = live::heartbeats(&Store::open(&path).unwrap(), None).unwrap();
        (hb[0].beat_ns > beat).then_some(())
    });

    hold.wait();
    worker.join().unwrap();
    drop(fut);
    p.close().unwrap();
    assert!(
        inflight(&path).is_empty(),
        "a closed process has no open spans"
    );
    let hb = live::heartbeats(&Store::open(&path).unwrap(), None).unwrap();
    assert_eq!(
        hb[0].state(live::now_ns() + 10_000_000_000),
        ProcessState::Closed
    );
}

#[test]
fn heartbeat_off_writes_nothing() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path)
        .heartbeat_interval(None)
        .open()
        .unwrap();
    p.install();
    {
        let _g = ferret::span("x");
        std::thread::sleep(Duration::from_millis(50));
    }
    p.close().unwrap();
    let store = Store::open(&path).unwrap();
    assert!(live::heartbeats(&store, None).unwrap().is_empty());
    assert!(live::inflight(&store, None).unwrap().is_empty());
}

/// Collects the reports given to the callback.
fn watched(path: &Path, threshold: Duration) -> (Profiler, Arc<Mutex<Vec<Stall>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let p = Profiler::builder(path)
        .heartbeat_interval(None)
        .stall_threshold(threshold)
        .stall_reports_on_stderr(false)
        .on_stall(move |st| s.lock().unwrap().push(st.clone()))
        .open()
        .unwrap();
    p.install();
    (p, seen)
}

/// The case: a 300 ms span, threshold 100 ms. One stall (first
/// reported at 1× the threshold, then again at 2×, the repeat schedule)
/// and one recovery.
#[test]
fn stall_then_recovery() {
    let _l = lock();
    let (_d, path) = temp_db();
    let (p, seen) = watched(&path, Duration::from_millis(100));
    {
        let _o = ferret::span("job");
        let mut g = ferret::span("slow");
        g.tag("attempt", 2i64);
        std::thread::sleep(Duration::from_millis(300));
    }
    eventually("the recovery", || {
        let v = seen.lock().unwrap();
        v.iter()
            .any(|s| s.kind == StallKind::Recovered)
            .then_some(())
    });
    let v = seen.lock().unwrap().clone();
    let (stalls, rec): (Vec<_>, Vec<_>) = v.iter().partition(|s| s.kind == StallKind::Stall);
    assert_eq!(rec.len(), 1, "{v:#?}");
    assert!(!stalls.is_empty() && stalls.len() <= 3, "{v:#?}");
    let first = stalls[0];
    assert_eq!(first.name, "slow");
    assert!(first.busy);
    assert!(first.open >= Duration::from_millis(100));
    // Reported while still open (a loaded machine may delay the check).
    assert!(first.open < Duration::from_millis(400), "{first:?}");
    assert!(stalls.iter().all(|s| s.span_id == first.span_id));
    for (i, s) in stalls.iter().enumerate() {
        assert!(
            s.open >= Duration::from_millis(100 << i),
            "repeats at 1×, 2×, 4×: {v:#?}"
        );
    }
    assert_eq!(first.stack.len(), 2);
    assert_eq!(first.stack[0].name, "job");
    assert_eq!(
        first.stack[1].tags,
        vec![("attempt".into(), TagValue::I64(2))]
    );
    // Its open time is estimated from the last check that saw it (a loaded
    // machine may delay checks): at least what the last report said.
    // (Clock reads on two threads: allow a little skew.)
    assert!(
        rec[0].open + Duration::from_millis(20) >= stalls.last().unwrap().open,
        "{v:#?}"
    );
    assert_eq!(rec[0].span_id, first.span_id);
    let text = first.to_text();
    assert!(text.starts_with("ferret: stall: thread \""), "{text}");
    assert!(text.contains(" busy 1"), "{text}");
    assert!(text.contains("threshold 100ms\n"), "{text}");
    assert!(text.contains("attempt=2"), "{text}");
    p.close().unwrap();

    let rows = live::stalls(&Store::open(&path).unwrap(), None).unwrap();
    assert_eq!(rows.len(), v.len());
    assert_eq!(rows.last().unwrap().kind, "recovered");
    assert_eq!(rows[0].name, "slow");
    assert_eq!(rows[0].threshold_ns, 100_000_000);
    assert_eq!(rows[0].stack.len(), 2);
    assert_eq!(
        rows[0].stack[1].tags,
        Some(serde_json::json!({"attempt": 2}))
    );
}

#[test]
fn a_future_never_woken_is_idle() {
    let _l = lock();
    let (_d, path) = temp_db();
    let (p, seen) = watched(&path, Duration::from_millis(50));
    let mut fut = Box::pin(std::future::pending::<()>().in_span("never_woken"));
    assert!(poll_once(&mut fut).is_pending());
    let s = eventually("an idle stall", || seen.lock().unwrap().first().cloned());
    assert_eq!(s.name, "never_woken");
    assert!(!s.busy, "no thread polls it: idle");
    assert_eq!(s.tid, None);
    assert!(s.to_text().contains(" idle "), "{}", s.to_text());
    drop(fut);
    eventually("its end (dropped: cancelled)", || {
        let v = seen.lock().unwrap();
        v.iter()
            .any(|s| s.kind == StallKind::Recovered)
            .then_some(())
    });
    p.close().unwrap();
}

#[test]
fn short_spans_give_nothing() {
    let _l = lock();
    let (_d, path) = temp_db();
    let (p, seen) = watched(&path, Duration::from_millis(100));
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(400) {
        let _o = ferret::span("tick");
        std::thread::sleep(Duration::from_millis(2));
    }
    p.close().unwrap();
    assert!(seen.lock().unwrap().is_empty());
    assert!(live::stalls(&Store::open(&path).unwrap(), None)
        .unwrap()
        .is_empty());
}

const DEADLOCK_CHILD: &str = "FERRET_TEST_DEADLOCK_DB";
const DEADLOCK_MS: u64 = 200;

/// Not a test by itself: the child process of `deadlock_is_reported`,
/// which deadlocks two threads for good.
#[test]
fn deadlock_child_entry() {
    let Ok(path) = std::env::var(DEADLOCK_CHILD) else {
        return;
    };
    let p = Profiler::builder(&path)
        .heartbeat_interval(Some(Duration::from_millis(50)))
        .stall_threshold(Duration::from_millis(DEADLOCK_MS))
        .open()
        .unwrap();
    p.install();
    let a = Arc::new(Mutex::new(0));
    let b = Arc::new(Mutex::new(0));
    let both = Arc::new(Barrier::new(2));
    let mut hs = vec![];
    for (name, first, second) in [("mover-a", a.clone(), b.clone()), ("mover-b", b, a)] {
        let both = both.clone();
        hs.push(
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let _t = ferret::span("transfer").with_tag("from", name);
                    let _x = first.lock().unwrap();
                    both.wait();
                    let _w = ferret::span("lock_second");
                    let _y = second.lock().unwrap();
                })
                .unwrap(),
        );
    }
    for h in hs {
        let _ = h.join();
    }
    unreachable!("deadlocked threads returned");
}

/// Two threads deadlocked on two mutexes, each inside a span: both are
/// reported, with their stacks, within 2× the threshold.
#[test]
fn deadlock_is_reported() {
    let (_d, path) = temp_db();
    let err = path.with_extension("stderr");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "deadlock_child_entry",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(DEADLOCK_CHILD, &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let rows = eventually("both threads reported", || {
        let store = Store::open(&path).ok()?;
        let rows = live::stalls(&store, None).ok()?;
        let mut names: Vec<_> = rows.iter().filter_map(|r| r.thread_name.clone()).collect();
        names.sort();
        names.dedup();
        (names == ["mover-a", "mover-b"]).then_some(rows)
    });
    // The open spans of the hung process are there too.
    let open = inflight(&path);
    child.kill().unwrap();
    child.wait().unwrap();
    for name in ["mover-a", "mover-b"] {
        let r = rows
            .iter()
            .find(|r| r.thread_name.as_deref() == Some(name))
            .unwrap();
        assert!(r.busy);
        assert_eq!(r.name, "lock_second", "{r:?}");
        assert!(r.open_ns < 2 * DEADLOCK_MS as i64 * 1_000_000, "{r:?}");
        let names: Vec<_> = r.stack.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["transfer", "lock_second"]);
        assert_eq!(r.stack[0].tags, Some(serde_json::json!({"from": name})));
    }
    assert!(
        open.iter().filter(|s| s.name == "lock_second").count() == 2,
        "{open:?}"
    );
    let text = std::fs::read_to_string(&err).unwrap();
    for name in ["mover-a", "mover-b"] {
        assert!(
            text.contains(&format!("ferret: stall: thread \"{name}\" (tid ")),
            "{text}"
        );
    }
    assert!(text.contains("from=\"mover-a\""), "{text}");
}

/// The process row (`committed_ns`, counters) of `path`'s only process.
fn process_row(path: &Path) -> (Option<i64>, i64) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(
        "SELECT committed_ns, spans_accepted FROM ferret_processes",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// An idle recorder commits its heartbeats and nothing else: the process
/// row, rewritten only to move `committed_ns`, stays as it is (each row a
/// commit changes is a whole page of write traffic), while a commit of
/// spans still updates it.
#[test]
fn idle_heartbeats_leave_the_process_row_alone() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = installed_with_fast_heartbeats(&path);
    drop(ferret::span("first"));
    p.flush().unwrap();
    let before = process_row(&path);
    assert_eq!(before.1, 1);
    assert!(before.0.is_some());
    // The latest heartbeat, once there is one (the first may come after
    // the flush).
    let beat = |path: &Path| {
        let beats = live::heartbeats(&Store::open(path).ok()?, None).ok()?;
        beats.first().map(|h| h.beat_ns)
    };
    let b0 = eventually("a first heartbeat", || beat(&path));
    // Several heartbeats later...
    eventually("five more heartbeats", || {
        beat(&path).filter(|&b| b >= b0 + 5 * 20_000_000)
    });
    assert_eq!(process_row(&path), before);
    // ...and spans still move it.
    drop(ferret::span("second"));
    p.flush().unwrap();
    let after = process_row(&path);
    assert_eq!(after.1, 2);
    assert!(after.0 > before.0, "{after:?} vs {before:?}");
    p.close().unwrap();
}
