//! Several OS processes writing one file, and a storage failure under the
//! writer. Each test re-executes this test binary in a child mode selected by
//! an environment variable.

use ferret::Profiler;
use ferret_analyze::store::{SpanQuery, Store};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command};

/// Child mode: the db path to record into.
const CHILD_DB: &str = "FERRET_TEST_CHILD_DB";

const THREADS: usize = 2;
const SPANS_PER_THREAD: usize = 100_000;

fn spawn_child(test: &str, db: &Path, run: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, db)
        .env("FERRET_RUN_ID", run)
        .spawn()
        .unwrap()
}

/// Records `THREADS * SPANS_PER_THREAD` spans (roots with one child each).
fn record_spans() {
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..SPANS_PER_THREAD / 2 {
                    let _r = ferret::span("root");
                    let _c = ferret::span("child");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn two_processes_one_file() {
    if let Ok(db) = std::env::var(CHILD_DB) {
        // Start together: wait for the parent's go file.
        let go = Path::new(&db).with_extension("go");
        while !go.exists() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let p = Profiler::open(&db).unwrap();
        assert_eq!(p.run_id(), "shared");
        p.install();
        record_spans();
        let st = p.close().unwrap();
        assert_eq!(st.accepted, (THREADS * SPANS_PER_THREAD) as u64, "{st:?}");
        assert_eq!(st.dropped_queue + st.dropped_write, 0, "{st:?}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    // Both children create the file at the same time.
    let children: Vec<_> = (0..2)
        .map(|_| spawn_child("two_processes_one_file", &db, "shared"))
        .collect();
    std::fs::write(db.with_extension("go"), b"").unwrap();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let total = 2 * THREADS * SPANS_PER_THREAD;
    let store = Store::open(&db).unwrap();
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.run_id, "shared");
    assert_eq!(run.spans, total as u64);
    assert_eq!(run.accepted, total as u64);
    assert_eq!(run.dropped(), 0);
    assert_eq!(run.pids.len(), 2, "{run:?}");
    assert!(!run.pids.contains(&std::process::id()));

    let mut ids = HashSet::with_capacity(total);
    let mut roots = HashSet::new();
    let mut parents = vec![];
    let mut pids = HashSet::new();
    let mut spans = store.spans("shared", &SpanQuery::default()).unwrap();
    let mut r = Default::default();
    while spans.next_into(&mut r) {
        assert!(ids.insert(r.span_id()), "duplicate span id {}", r.span_id());
        pids.insert(r.pid);
        match r.parent_id() {
            None => {
                roots.insert(r.span_id());
            }
            Some(p) => parents.push(p),
        }
    }
    assert!(spans.error().is_none());
    assert_eq!(ids.len(), total);
    assert_eq!(roots.len(), total / 2);
    assert!(parents.iter().all(|p| roots.contains(p)));
    assert_eq!(pids.len(), 2);
    assert_eq!(store.threads("shared").unwrap().len(), 2 * THREADS);
}

/// Child mode of `storage_failure_is_counted`: caps the size of files this
/// process may write (RLIMIT_FSIZE binds root too), so the writer's commits
/// fail; the recorder must count the loss, not panic or hang.
fn storage_failure_child(db: &str) {
    let p = Profiler::builder(db)
        .run_id("full-disk")
        .flush_interval(std::time::Duration::from_millis(5))
        .open()
        .unwrap();
    p.install();
    drop(ferret::span("before"));
    p.flush().unwrap();
    let mut wal = db.to_owned();
    wal.push_str("-wal");
    let size = |f: &str| std::fs::metadata(f).map_or(0, |m| m.len());
    let cap = size(db).max(size(&wal)) + 1024;
    // SAFETY: plain libc calls with valid arguments.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit {
            rlim_cur: cap,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    const N: u64 = 200_000;
    for i in 0..N {
        let _g = ferret::span("doomed").with_tag("i", i);
    }
    let st = p.close().unwrap();
    eprintln!("storage failure child: {st:?}");
    assert!(st.dropped_write > 0, "{st:?}");
    assert_eq!(st.accepted + st.dropped_queue, N + 1, "{st:?}");
}

#[test]
fn storage_failure_is_counted() {
    if let Ok(db) = std::env::var(CHILD_DB) {
        storage_failure_child(&db);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("full.db");
    let mut c = spawn_child("storage_failure_is_counted", &db, "full-disk");
    assert!(c.wait().unwrap().success());
    // The file is still readable and holds what was committed before.
    let store = Store::open(&db).unwrap();
    let spans = store.spans("full-disk", &SpanQuery::default()).unwrap();
    assert!(spans.count() >= 1);
}
