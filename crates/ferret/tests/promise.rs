//! What the recorder promises about loss: spans are committed within the
//! flush interval whatever their thread does, `close()` is bounded, overload
//! sheds whole traces, every lost span is counted, and a process that did not
//! close shows as such.

use ferret::Profiler;
use ferret_analyze::store::{SpanQuery, Store};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Tests install a global profiler: one at a time.
static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    (dir, path)
}

/// Span ids committed to `run` so far, read by another connection.
fn committed(path: &Path, run: &str) -> HashSet<u64> {
    let store = Store::open(path).unwrap();
    let mut spans = store.spans(run, &SpanQuery::default()).unwrap();
    let mut out = HashSet::new();
    for s in spans.by_ref() {
        out.insert(s.span_id());
    }
    out
}

/// (id, parent) of every span of `run`.
fn links(path: &Path, run: &str) -> Vec<(u64, Option<u64>)> {
    let store = Store::open(path).unwrap();
    let mut spans = store.spans(run, &SpanQuery::default()).unwrap();
    let mut out = vec![];
    for s in spans.by_ref() {
        out.push((s.span_id(), s.parent_id()));
    }
    out
}

const FLUSH: Duration = Duration::from_millis(100);
/// The promise: ended more than the flush interval plus this ago means
/// committed. A little more here, for a loaded test machine.
const SLACK: Duration = Duration::from_millis(150);

/// Threads that record a span now and then and sleep in between (1 span/s
/// and slower per thread), and threads that record a few spans and end:
/// each span is in the file a flush interval (plus slack) after it ended,
/// with no flush and no later span on its thread.
#[test]
fn idle_slow_and_ended_threads_are_committed_within_the_interval() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path)
        .run_id("idle")
        .flush_interval(FLUSH)
        .open()
        .unwrap();
    p.install();
    for round in 0..3 {
        let ids = Arc::new(Mutex::new(Vec::new()));
        let go = Arc::new(Barrier::new(3));
        let sleepers: Vec<_> = (0..2)
            .map(|_| {
                let (ids, go) = (ids.clone(), go.clone());
                std::thread::spawn(move || {
                    let g = ferret::span("idle.work");
                    ids.lock().unwrap().push(g.id().unwrap());
                    drop(g);
                    go.wait();
                    // Idle (parked) while the parent checks the file.
                    std::thread::sleep(FLUSH + SLACK + Duration::from_millis(200));
                })
            })
            .collect();
        // A thread that records and ends.
        let ended = {
            let ids = ids.clone();
            std::thread::spawn(move || {
                let g = ferret::span("short.work");
                ids.lock().unwrap().push(g.id().unwrap());
            })
        };
        ended.join().unwrap();
        go.wait();
        let t0 = Instant::now();
        std::thread::sleep(FLUSH + SLACK);
        let have = committed(&path, "idle");
        for id in ids.lock().unwrap().iter() {
            assert!(
                have.contains(id),
                "round {round}: span {id} not committed {:?} after it ended",
                t0.elapsed()
            );
        }
        for s in sleepers {
            s.join().unwrap();
        }
    }
    p.close().unwrap();
}

/// `close()` while another connection holds the write lock: it gives up
/// after the close timeout, counts what it could not write, and returns it.
#[test]
fn close_gives_up_after_the_timeout_when_the_file_stays_locked() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path)
        .run_id("locked")
        .close_timeout(Duration::from_millis(500))
        .open()
        .unwrap();
    p.install();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    for _ in 0..1000 {
        let _g = ferret::span("blocked");
    }
    let t = Instant::now();
    let st = p.close().unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "close took {took:?}");
    assert!(took >= Duration::from_millis(400), "close took {took:?}");
    assert_eq!(st.accepted, 1000, "{st:?}");
    assert_eq!(st.unpersisted(), 1000, "{st:?}");
    assert_eq!(st.dropped_write, 1000, "{st:?}");
    other.execute_batch("ROLLBACK").unwrap();
    // Nothing of it is in the file, and the file is fine.
    assert!(committed(&path, "locked").is_empty());
}

/// A burst through a tiny queue: new traces are shed whole while it is
/// full, so (almost) no persisted span loses its parent, and every span is
/// in exactly one counter.
#[test]
fn queue_pressure_sheds_whole_traces() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path)
        .run_id("burst")
        .batch_size(64)
        .queue_capacity(64 * 8)
        .open()
        .unwrap();
    p.install();
    const TRACES: u64 = 20_000;
    // Traces of 1 + 4 × (1 + 3) = 17 spans.
    const PER_TRACE: u64 = 17;
    let workers: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..TRACES / 2 {
                    let _r = ferret::span("request");
                    for _ in 0..4 {
                        let _a = ferret::span("step");
                        for _ in 0..3 {
                            let _b = ferret::span("leaf");
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let st = p.close().unwrap();
    eprintln!("burst: {st:?}");
    let produced = TRACES * PER_TRACE;
    assert_eq!(st.ended(), produced, "{st:?}");
    assert_eq!(st.accepted + st.dropped_queue + st.shed, produced, "{st:?}");
    assert_eq!(st.persisted, st.accepted, "{st:?}");
    assert!(st.shed > 0, "the burst must outrun the writer: {st:?}");
    assert_eq!(st.shed % PER_TRACE, 0, "shed whole traces only: {st:?}");
    let v = links(&path, "burst");
    assert_eq!(v.len() as u64, st.persisted);

    let ids: HashSet<u64> = v.iter().map(|x| x.0).collect();
    let orphans = v
        .iter()
        .filter(|(_, p)| p.is_some_and(|p| !ids.contains(&p)))
        .count();
    eprintln!("burst: {} persisted, {orphans} orphans", v.len());
    assert!(
        orphans as f64 <= 0.001 * v.len() as f64,
        "{orphans} orphans of {} persisted spans: {st:?}",
        v.len()
    );
    let runs = Store::open(&path).unwrap().runs().unwrap();
    assert_eq!(runs[0].shed, st.shed);
    assert_eq!(runs[0].accepted, st.accepted);
    assert_eq!(runs[0].dropped_queue, st.dropped_queue);
}

thread_local! {
    /// A guard kept in a thread-local of the program's own, destroyed after
    /// the recorder's thread-local state when the thread ends.
    static HELD: std::cell::RefCell<Option<ferret::SpanGuard>> = const { std::cell::RefCell::new(None) };
}

/// A span that ends after its thread's recorder state was torn down is
/// counted, not lost silently.
#[test]
fn span_ended_after_thread_teardown_is_counted() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path).run_id("teardown").open().unwrap();
    p.install();
    std::thread::spawn(|| {
        // Touch HELD first so that its destructor runs after the
        // recorder's (thread-locals are destroyed in reverse order).
        HELD.with(|h| h.borrow_mut().take());
        drop(ferret::span("normal"));
        let g = ferret::span("outlives");
        HELD.with(|h| *h.borrow_mut() = Some(g));
    })
    .join()
    .unwrap();
    let st = p.close().unwrap();
    assert_eq!(st.accepted + st.dropped_queue, 2, "{st:?}");
    assert_eq!(st.persisted, st.accepted, "{st:?}");
}

/// A span open while another profiler is installed lands in neither run
/// wrongly: it is counted as lost by its own profiler, and spans started
/// after the switch are roots of the new run, not its children.
#[test]
fn span_open_across_reinstall_stays_out_of_the_new_run() {
    let _l = lock();
    let (_d, path) = temp_db();
    let a = Profiler::builder(&path).run_id("a").open().unwrap();
    let b = Profiler::builder(&path).run_id("b").open().unwrap();
    a.install();
    let old = ferret::span("old");
    b.install();
    {
        let _n = ferret::span("new");
        let _c = ferret::span("new.child");
    }
    drop(old);
    let sb = b.close().unwrap();
    let sa = a.close().unwrap();
    assert_eq!(sb.persisted, 2, "{sb:?}");
    assert_eq!(sa.dropped_queue, 1, "{sa:?}");
    assert_eq!(sa.persisted, 0, "{sa:?}");
    let v = links(&path, "b");
    assert_eq!(v.len(), 2);
    let ids: HashSet<u64> = v.iter().map(|x| x.0).collect();
    assert_eq!(v.iter().filter(|(_, p)| p.is_none()).count(), 1, "{v:?}");
    assert!(
        v.iter().all(|(_, p)| p.is_none_or(|p| ids.contains(&p))),
        "{v:?}"
    );
    assert!(committed(&path, "a").is_empty());
}

/// A run whose process closed cleanly is complete; a file of format 1
/// still reads, and a recorder upgrades it in place.
#[test]
fn clean_close_marks_the_run_complete_and_format_1_files_upgrade() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path).run_id("clean").open().unwrap();
    p.install();
    drop(ferret::span("x"));
    // While open, the process is not closed.
    p.flush().unwrap();
    let info = Store::open(&path).unwrap().runs().unwrap().pop().unwrap();
    assert_eq!(info.processes_unclosed, 1, "{info:?}");
    p.close().unwrap();
    let info = Store::open(&path).unwrap().runs().unwrap().pop().unwrap();
    assert!(info.complete(), "{info:?}");
    assert_eq!(info.accepted, 1);

    // A format-1 file: the tables as version 1 wrote them.
    let (_d1, old) = temp_db();
    {
        let c = rusqlite::Connection::open(&old).unwrap();
        c.execute_batch(FORMAT_1_SCHEMA).unwrap();
        c.execute_batch(
            "INSERT INTO ferret_meta VALUES ('format_version', '1');
             INSERT INTO ferret_runs (id, run_key, started_ns, spans_accepted, dropped_queue)
                 VALUES (1, 'old', 1000, 5, 2);
             INSERT INTO ferret_processes (id, run, pid, started_ns) VALUES (1, 1, 42, 1000);",
        )
        .unwrap();
    }
    let runs = Store::open(&old).unwrap().runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].accepted, runs[0].dropped_queue, runs[0].shed),
        (5, 2, 0)
    );
    assert!(runs[0].complete());
    let p = Profiler::builder(&old).run_id("new").open().unwrap();
    p.install();
    drop(ferret::span("y"));
    p.close().unwrap();
    let runs = Store::open(&old).unwrap().runs().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.complete()), "{runs:?}");
    assert_eq!((runs[0].accepted, runs[0].dropped_queue), (5, 2));
    assert_eq!((runs[1].accepted, runs[1].spans), (1, 1));
    let c = rusqlite::Connection::open(&old).unwrap();
    let v: String = c
        .query_row(
            "SELECT value FROM ferret_meta WHERE key = 'format_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, ferret_format::schema::FORMAT_VERSION.to_string());
}

/// A file of format 2 (row-wise blocks only) still reads; a recorder
/// upgrades it to 3 without touching its processes (one may still be
/// recording with an older Ferret), and its columnar blocks read next to
/// the old ones.
#[test]
fn format_2_files_upgrade_to_columnar_blocks() {
    use ferret_format::codec::{BlockEncoderV1, SpanHead};
    use ferret_format::{Status, TagValue};
    let _l = lock();
    let (_d, path) = temp_db();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(ferret_format::schema::SCHEMA).unwrap();
        c.execute_batch(
            "INSERT INTO ferret_meta VALUES ('format_version', '2');
             INSERT INTO ferret_runs (id, run_key, started_ns, spans_accepted)
                 VALUES (1, 'old', 1000, 3);
             INSERT INTO ferret_processes (id, run, pid, started_ns, spans_accepted)
                 VALUES (1, 1, 42, 1000, 3);
             INSERT INTO ferret_names (id, name) VALUES (1, 'old.span');
             INSERT INTO ferret_paths (id, parent, name) VALUES (1, 0, 1);",
        )
        .unwrap();
        let mut enc = BlockEncoderV1::new();
        for i in 0..3u64 {
            let head = SpanHead {
                id: 10 + i,
                trace: 10 + i,
                path: 1,
                start_ns: 2000 + i as i64,
                dur_ns: 5,
                ..Default::default()
            };
            enc.push(&head, &Status::Ok, &[] as &[(String, TagValue)]);
        }
        c.execute(
            "INSERT INTO ferret_blocks (run, process, min_start, max_end, count, data)
             VALUES (1, 1, 2000, 2007, 3, ?1)",
            [enc.finish()],
        )
        .unwrap();
    }
    assert_eq!(committed(&path, "old"), HashSet::from([10, 11, 12]));
    let p = Profiler::builder(&path).run_id("new").open().unwrap();
    p.install();
    drop(ferret::span("y"));
    p.close().unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    let meta = |k: &str| -> String {
        c.query_row("SELECT value FROM ferret_meta WHERE key = ?1", [k], |r| {
            r.get(0)
        })
        .unwrap()
    };
    assert_eq!(meta("format_version"), "3");
    assert_eq!(meta("upgraded_from"), "2");
    let ended: Option<i64> = c
        .query_row(
            "SELECT ended_ns FROM ferret_processes WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ended, None, "the old process keeps its state");
    let versions: Vec<u8> = c
        .prepare("SELECT data FROM ferret_blocks ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok(r.get::<_, Vec<u8>>(0)?[0]))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(committed(&path, "old"), HashSet::from([10, 11, 12]));
    assert_eq!(committed(&path, "new").len(), 1);
}

/// The DDL of format 1, as released.
const FORMAT_1_SCHEMA: &str = "
CREATE TABLE ferret_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE ferret_runs (
    id INTEGER PRIMARY KEY, run_key TEXT NOT NULL UNIQUE, label TEXT, host TEXT,
    started_ns INTEGER NOT NULL, spans_accepted INTEGER NOT NULL DEFAULT 0,
    dropped_queue INTEGER NOT NULL DEFAULT 0, dropped_write INTEGER NOT NULL DEFAULT 0,
    sampled_out INTEGER NOT NULL DEFAULT 0);
CREATE INDEX ferret_runs_started ON ferret_runs (started_ns);
CREATE TABLE ferret_processes (id INTEGER PRIMARY KEY, run INTEGER NOT NULL,
    pid INTEGER NOT NULL, host TEXT, started_ns INTEGER NOT NULL);
CREATE INDEX ferret_processes_run ON ferret_processes (run);
CREATE TABLE ferret_threads (process INTEGER NOT NULL, idx INTEGER NOT NULL,
    tid INTEGER NOT NULL, name TEXT, PRIMARY KEY (process, idx));
CREATE TABLE ferret_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE ferret_paths (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL,
    name INTEGER NOT NULL, UNIQUE (parent, name));
CREATE TABLE ferret_blocks (id INTEGER PRIMARY KEY, run INTEGER NOT NULL,
    process INTEGER NOT NULL, min_start INTEGER NOT NULL, max_end INTEGER NOT NULL,
    count INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX ferret_blocks_run ON ferret_blocks (run, id);
";
