//! Recorder behaviour, checked by reading the file back with `Store`.
//!
//! The installed profiler is process-global, so every test holds `LOCK` and
//! records into its own temporary file.

use ferret::{Error, InSpanExt, Profiler, Status, TagValue};
use ferret_analyze::store::{SpanQuery, SpanRecord, Store};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// The installed profiler is process-global: one test at a time.
use ferret_testkit::serial as lock;

/// A fresh temporary directory and a db path inside it.
fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    (dir, path)
}

/// A span read back, with its name as text.
#[derive(Debug, Clone)]
struct Rec {
    name: String,
    r: SpanRecord,
}

fn read_run(path: &Path, run: &str) -> Vec<Rec> {
    let store = Store::open(path).unwrap();
    let mut spans = store
        .spans(
            run,
            &SpanQuery {
                with_tags: true,
                ..Default::default()
            },
        )
        .unwrap();
    let mut out = vec![];
    while let Some(r) = spans.next() {
        out.push(Rec {
            name: spans.name(r.name).to_string(),
            r,
        });
    }
    assert!(spans.error().is_none(), "{:?}", spans.error());
    assert_eq!(spans.skipped_rows(), 0);
    out
}

fn by_name<'a>(v: &'a [Rec], name: &str) -> Vec<&'a Rec> {
    v.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(v: &'a [Rec], name: &str) -> &'a Rec {
    let found = by_name(v, name);
    assert_eq!(found.len(), 1, "spans named {name}: {found:#?}");
    found[0]
}

fn dur(r: &Rec) -> u64 {
    r.r.duration_ns().unwrap()
}

fn children_of<'a>(v: &'a [Rec], parent: &Rec) -> Vec<&'a Rec> {
    v.iter()
        .filter(|s| s.r.parent_id() == Some(parent.r.span_id()))
        .collect()
}

fn tag<'a>(r: &'a Rec, key: &str) -> Option<&'a TagValue> {
    r.r.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Every span id is unique and every parent is in the run.
fn check_ids(v: &[Rec]) {
    let ids: HashSet<u64> = v.iter().map(|s| s.r.span_id()).collect();
    assert_eq!(ids.len(), v.len(), "duplicate span ids");
    for s in v {
        if let Some(p) = s.r.parent_id() {
            assert!(ids.contains(&p), "parent of {s:?} missing");
        }
    }
}

const MS: u64 = 1_000_000;

#[test]
fn nesting_ids_and_self_time() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path).run_id("nest").open().unwrap();
    p.install();
    {
        let _root = ferret::span("root");
        for _ in 0..3 {
            let _c = ferret::span("child");
            std::thread::sleep(Duration::from_millis(1));
            let _g = ferret::span("grandchild");
        }
        ferret::measure("measured", || std::thread::sleep(Duration::from_millis(1)));
        let _dynamic = ferret::span(format!("dyn{}", 1));
    }
    // Out of order: the outer guard ends before its child.
    let a = ferret::span("a");
    let b = ferret::span("b");
    drop(a);
    drop(b);
    // The stack is empty again: a new span is a root.
    drop(ferret::span("after"));
    let st = p.close().unwrap();
    assert_eq!(st.accepted, 1 + 3 + 3 + 1 + 1 + 3);
    assert_eq!(st.dropped_queue + st.dropped_write + st.sampled_out, 0);

    let v = read_run(&path, "nest");
    assert_eq!(v.len(), 12);
    check_ids(&v);
    let root = one(&v, "root");
    assert_eq!(root.r.parent_id(), None);
    assert_eq!(root.r.trace_id(), root.r.span_id());
    let kids = children_of(&v, root);
    let mut names: Vec<&str> = kids.iter().map(|k| k.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["child", "child", "child", "dyn1", "measured"]);
    // Sequential synchronous children: the parent's children time is exactly
    // the sum of their durations.
    assert_eq!(
        root.r.children_ns().unwrap(),
        kids.iter().map(|k| dur(k)).sum::<u64>()
    );
    assert!(dur(root) >= root.r.children_ns().unwrap());
    for c in by_name(&v, "child") {
        assert_eq!(c.r.trace_id(), root.r.span_id());
        assert!(dur(c) >= MS);
        assert!(c.r.start_ns() >= root.r.start_ns() && c.r.end_ns() <= root.r.end_ns());
        let g = children_of(&v, c);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].name, "grandchild");
        assert_eq!(g[0].r.trace_id(), root.r.span_id());
        assert_eq!(c.r.children_ns().unwrap(), dur(g[0]));
        assert_eq!(g[0].r.children_ns(), Some(0));
        // Same name under different parents: different call paths.
        assert_ne!(g[0].r.path(), c.r.path());
    }
    let paths: HashSet<_> = by_name(&v, "child").iter().map(|c| c.r.path()).collect();
    assert_eq!(paths.len(), 1);
    assert!(dur(one(&v, "measured")) >= MS);

    let (a, b, after) = (one(&v, "a"), one(&v, "b"), one(&v, "after"));
    assert_eq!(a.r.parent_id(), None);
    assert_eq!(b.r.parent_id(), Some(a.r.span_id()));
    assert_eq!(after.r.parent_id(), None);
    assert_eq!(after.r.trace_id(), after.r.span_id());
    for s in &v {
        assert_eq!(s.r.status, Status::Ok);
        assert_eq!(s.r.pid, std::process::id());
    }
}

#[test]
fn async_parent_propagation_multi_thread() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path).run_id("async").open().unwrap();
    p.install();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_all()
        .build()
        .unwrap();
    const SPAWNED: usize = 16;
    rt.block_on(async {
        let parent = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            async {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            .in_span("awaited")
            .await;
            let handles: Vec<_> = (0..SPAWNED)
                .map(|i| {
                    tokio::spawn(
                        async move {
                            for _ in 0..3 {
                                tokio::time::sleep(Duration::from_millis(2)).await;
                                tokio::task::yield_now().await;
                            }
                            // A sync span inside the task: child of the task's span.
                            drop(ferret::span("in_task"));
                            i
                        }
                        .in_span("spawned"),
                    )
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
            drop(ferret::span("sync_in_parent"));
            // Cancelled: dropped unfinished by the timeout.
            let r = tokio::time::timeout(
                Duration::from_millis(3),
                tokio::time::sleep(Duration::from_secs(10)).in_span("cancelled"),
            )
            .await;
            assert!(r.is_err());
        }
        .in_span("parent");
        tokio::spawn(parent).await.unwrap();
    });
    drop(rt);
    let st = p.close().unwrap();
    let expected = 1 + 1 + 2 * SPAWNED + 1 + 1;
    assert_eq!(st.accepted, expected as u64);

    let v = read_run(&path, "async");
    assert_eq!(v.len(), expected, "{v:#?}");
    check_ids(&v);
    let parent = one(&v, "parent");
    assert_eq!(parent.r.parent_id(), None);
    assert!(dur(parent) >= 5 * MS + 5 * MS + 6 * MS + 3 * MS);
    let awaited = one(&v, "awaited");
    assert_eq!(awaited.r.parent_id(), Some(parent.r.span_id()));
    assert!(dur(awaited) >= 5 * MS);
    let spawned = by_name(&v, "spawned");
    assert_eq!(spawned.len(), SPAWNED);
    for s in &spawned {
        assert_eq!(s.r.parent_id(), Some(parent.r.span_id()));
        assert_eq!(s.r.trace_id(), parent.r.span_id());
        assert!(dur(s) >= 6 * MS, "{s:?}");
        assert!(s.r.start_ns() >= parent.r.start_ns() && s.r.end_ns() <= parent.r.end_ns());
        let kids = children_of(&v, s);
        assert_eq!(kids.len(), 1);
        assert_eq!(kids[0].name, "in_task");
        assert_eq!(s.r.children_ns().unwrap(), dur(kids[0]));
        assert!(tag(s, "cancelled").is_none());
    }
    let sync = one(&v, "sync_in_parent");
    assert_eq!(sync.r.parent_id(), Some(parent.r.span_id()));
    let cancelled = one(&v, "cancelled");
    assert_eq!(cancelled.r.parent_id(), Some(parent.r.span_id()));
    assert_eq!(tag(cancelled, "cancelled"), Some(&TagValue::Bool(true)));
    assert!(dur(cancelled) >= 3 * MS);
    // Every direct child ended before the parent: its children time is
    // exactly their sum (they overlap, so it may exceed the wall time).
    let kids = children_of(&v, parent);
    assert_eq!(kids.len(), 1 + SPAWNED + 1 + 1);
    assert_eq!(
        parent.r.children_ns().unwrap(),
        kids.iter().map(|k| dur(k)).sum::<u64>()
    );
}

#[test]
fn threads_are_recorded_with_names() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path).run_id("threads").open().unwrap();
    p.install();
    const THREADS: usize = 4;
    const ROOTS: usize = 2000;
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    for _ in 0..ROOTS {
                        let _r = ferret::span("work");
                        let _c = ferret::span("step");
                    }
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let st = p.close().unwrap();
    assert_eq!(st.accepted, (THREADS * ROOTS * 2) as u64);

    let v = read_run(&path, "threads");
    assert_eq!(v.len(), THREADS * ROOTS * 2);
    check_ids(&v);
    let mut per_tid: HashMap<u64, usize> = HashMap::new();
    for s in &v {
        *per_tid.entry(s.r.tid).or_default() += 1;
        if s.name == "step" {
            let parent = s.r.parent_id().unwrap();
            assert_eq!(s.r.trace_id(), parent);
        }
    }
    assert_eq!(per_tid.len(), THREADS, "{per_tid:?}");
    assert!(per_tid.values().all(|&n| n == ROOTS * 2));
    assert!(!per_tid.contains_key(&0));

    let store = Store::open(&path).unwrap();
    let threads = store.threads("threads").unwrap();
    let mut names: Vec<String> = threads.iter().filter_map(|t| t.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["worker-0", "worker-1", "worker-2", "worker-3"]);
    for t in &threads {
        assert_eq!(t.pid, std::process::id());
        assert!(per_tid.contains_key(&t.tid), "{t:?}");
    }
}

fn gettid() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u64 }
}

#[test]
fn manual_span_ended_on_another_thread() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path).run_id("manual").open().unwrap();
    p.install();
    let tid_a = gettid();
    let outer = ferret::span("outer");
    let mut h = ferret::start("manual");
    h.tag("where", "a");
    assert!(h.is_recording());
    let ctx = h.context().unwrap();
    let tid_b = std::thread::spawn(move || {
        let c = ferret::start_with_parent("child_b", &ctx);
        std::thread::sleep(Duration::from_millis(2));
        c.end();
        {
            let _e = h.enter();
            let _g = ferret::span("entered_child");
            assert_eq!(ferret::current().unwrap().id(), _g.id().unwrap());
        }
        h.tag("ended", "b");
        h.end();
        gettid()
    })
    .join()
    .unwrap();
    drop(outer);
    p.close().unwrap();

    let v = read_run(&path, "manual");
    assert_eq!(v.len(), 4, "{v:#?}");
    check_ids(&v);
    let outer = one(&v, "outer");
    let manual = one(&v, "manual");
    let child_b = one(&v, "child_b");
    let entered = one(&v, "entered_child");
    assert_eq!(manual.r.parent_id(), Some(outer.r.span_id()));
    assert_eq!(manual.r.trace_id(), outer.r.span_id());
    assert_eq!(child_b.r.parent_id(), Some(manual.r.span_id()));
    assert_eq!(child_b.r.trace_id(), outer.r.span_id());
    assert_eq!(entered.r.parent_id(), Some(manual.r.span_id()));
    assert_eq!(tag(manual, "where"), Some(&TagValue::Str("a".into())));
    assert_eq!(tag(manual, "ended"), Some(&TagValue::Str("b".into())));
    assert!(dur(manual) >= 2 * MS);
    assert_eq!(
        manual.r.children_ns().unwrap(),
        dur(child_b) + dur(entered),
        "{manual:?}"
    );
    assert_eq!(outer.r.children_ns().unwrap(), dur(manual));
    assert_ne!(tid_a, tid_b);
    assert_eq!(outer.r.tid, tid_a);
    assert_eq!(manual.r.tid, tid_a);
    assert_eq!(child_b.r.tid, tid_b);
    assert_eq!(entered.r.tid, tid_b);
}

#[test]
fn panics_mark_spans_as_errors() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path).run_id("panic").open().unwrap();
    p.install();
    {
        let _root = ferret::span("root");
        let r = std::panic::catch_unwind(|| {
            let _g = ferret::span("unwound");
            let _inner = ferret::span("inner");
            panic!("boom");
        });
        assert!(r.is_err());
        let r = std::panic::catch_unwind(|| {
            let mut g = ferret::span("with_message");
            g.set_error("disk on fire");
            panic!("boom");
        });
        assert!(r.is_err());
        let r = std::panic::catch_unwind(|| {
            ferret::measure("measured", || -> u32 { panic!("measured boom") })
        });
        assert!(r.is_err());
        let r = std::panic::catch_unwind(|| {
            let h = ferret::start("handle");
            let _keep = &h;
            panic!("handle boom");
        });
        assert!(r.is_err());
        // After unwinding, the stack is intact: this is the root's child.
        drop(ferret::span("after"));
    }
    p.close().unwrap();

    let v = read_run(&path, "panic");
    assert_eq!(v.len(), 7, "{v:#?}");
    check_ids(&v);
    let root = one(&v, "root");
    assert_eq!(root.r.status, Status::Ok);
    for name in ["unwound", "inner", "measured", "handle"] {
        let s = one(&v, name);
        assert_eq!(s.r.status, Status::Error, "{s:?}");
        assert_eq!(
            tag(s, "error"),
            Some(&TagValue::Str("panicked".into())),
            "{s:?}"
        );
    }
    let m = one(&v, "with_message");
    assert_eq!(m.r.status, Status::Error);
    assert_eq!(tag(m, "error"), Some(&TagValue::Str("disk on fire".into())));
    assert_eq!(
        one(&v, "inner").r.parent_id(),
        Some(one(&v, "unwound").r.span_id())
    );
    let after = one(&v, "after");
    assert_eq!(after.r.status, Status::Ok);
    assert_eq!(after.r.parent_id(), Some(root.r.span_id()));
    assert_eq!(one(&v, "measured").r.parent_id(), Some(root.r.span_id()));
}

/// Spans whose tags fill a thread's buffer before its spans do: the
/// buffer is handed over at its tail bytes' bound, several times, and
/// every span keeps its own tags (offsets into its batch's tail buffer).
#[test]
fn big_tags_hand_buffers_over_and_each_span_keeps_its_own() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path).run_id("big-tags").open().unwrap();
    p.install();
    // 300 spans × ~20 KB of tags: ~6 MB, far past one buffer's tail bound
    // (the default batch of 1,024 spans is never reached).
    let text = |i: usize| format!("{i}:").repeat(20_000 / 4);
    for i in 0..300 {
        let mut g = ferret::span("big").with_tag("n", i as i64);
        if i % 3 != 2 {
            g.tag("text", text(i));
        }
    }
    let stats = p.close().unwrap();
    assert_eq!(stats.dropped_queue, 0);
    let v = read_run(&path, "big-tags");
    assert_eq!(v.len(), 300);
    let mut seen = HashSet::new();
    for s in &v {
        let TagValue::I64(n) = s.r.tags[0].1 else {
            panic!("{:?}", s.r.tags)
        };
        let i = n as usize;
        assert!(seen.insert(i));
        if i % 3 == 2 {
            assert_eq!(s.r.tags.len(), 1, "span {i}");
        } else {
            assert_eq!(
                s.r.tags[1],
                ("text".into(), TagValue::Str(text(i))),
                "span {i}"
            );
        }
    }
}

#[test]
fn tags_round_trip() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path).run_id("tags").open().unwrap();
    p.install();
    let huge = "x".repeat(1 << 20) + "end";
    {
        let mut g = ferret::span("tagged")
            .with_tag("s", "text")
            .with_tag("i", -5i64)
            .with_tag("u", u64::MAX)
            .with_tag("f", 1.5f64)
            .with_tag("t", true)
            .with_tag("fl", false)
            .with_tag("null", TagValue::Null)
            .with_tag("json", TagValue::Json("[1,{\"a\":2}]".into()));
        // Mid-flight: a new tag, a replaced one, a custom status.
        g.tag("mid", 42u32);
        g.tag("i", 7);
        g.tag("unicode", "héllo → 世界");
        g.set_status(Status::Custom("warning".into()));
    }
    {
        let mut g = ferret::span("failed");
        g.set_error(format_args!("code {}", 17));
    }
    {
        let mut h = ferret::start("handle").with_tag("k", 1);
        h.tag("k", 2).set_status(Status::Custom("warning".into()));
        h.end();
    }
    drop(ferret::span("huge").with_tag("blob", huge.clone()));
    drop(ferret::span("plain"));
    p.close().unwrap();

    let v = read_run(&path, "tags");
    assert_eq!(v.len(), 5);
    let t = one(&v, "tagged");
    assert_eq!(t.r.status, Status::Custom("warning".into()));
    let expected: Vec<(String, TagValue)> = vec![
        ("s".into(), TagValue::Str("text".into())),
        ("i".into(), TagValue::I64(7)),
        ("u".into(), TagValue::U64(u64::MAX)),
        ("f".into(), TagValue::F64(1.5)),
        ("t".into(), TagValue::Bool(true)),
        ("fl".into(), TagValue::Bool(false)),
        ("null".into(), TagValue::Null),
        ("json".into(), TagValue::Json("[1,{\"a\":2}]".into())),
        ("mid".into(), TagValue::I64(42)),
        ("unicode".into(), TagValue::Str("héllo → 世界".into())),
    ];
    assert_eq!(t.r.tags, expected);
    let f = one(&v, "failed");
    assert_eq!(f.r.status, Status::Error);
    assert_eq!(
        f.r.tags,
        [("error".into(), TagValue::Str("code 17".into()))]
    );
    let h = one(&v, "handle");
    assert_eq!(h.r.status, Status::Custom("warning".into()));
    assert_eq!(h.r.tags, [("k".into(), TagValue::I64(2))]);
    let big = one(&v, "huge");
    assert_eq!(big.r.tags.len(), 1);
    assert_eq!(big.r.tags[0].1, TagValue::Str(huge));
    let plain = one(&v, "plain");
    assert!(plain.r.tags.is_empty());
    assert_eq!(plain.r.status, Status::Ok);

    // Without `with_tags`, tags are skipped but everything else decodes.
    let store = Store::open(&path).unwrap();
    let n = store
        .spans("tags", &SpanQuery::default())
        .unwrap()
        .inspect(|s| assert!(s.tags.is_empty()))
        .count();
    assert_eq!(n, 5);
}

#[test]
fn drop_without_close_persists() {
    let _l = lock();
    let (_d, path) = temp_db();
    {
        let p = Profiler::builder(&path)
            .run_id("dropped")
            .flush_interval(Duration::from_secs(3600))
            .open()
            .unwrap();
        p.install();
        for _ in 0..10 {
            let _g = ferret::span("a");
        }
        // `p` drops here, without close().
    }
    // Spans after the drop go nowhere (and do not panic).
    drop(ferret::span("late"));
    let v = read_run(&path, "dropped");
    assert_eq!(v.len(), 10);
    let runs = Store::open(&path).unwrap().runs().unwrap();
    assert_eq!(runs[0].accepted, 10);
}

#[test]
fn flush_drains_other_threads_buffers() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path)
        .run_id("flush")
        .flush_interval(Duration::from_secs(3600))
        .open()
        .unwrap();
    p.install();
    let recorded = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let t = {
        let (recorded, release) = (recorded.clone(), release.clone());
        std::thread::spawn(move || {
            for _ in 0..10 {
                let _g = ferret::span("parked");
            }
            recorded.wait();
            // Parked, still alive, its buffer not full.
            release.wait();
        })
    };
    recorded.wait();
    assert_eq!(read_run(&path, "flush").len(), 0);
    p.flush().unwrap();
    assert_eq!(read_run(&path, "flush").len(), 10);
    assert_eq!(p.stats().accepted, 10);
    release.wait();
    t.join().unwrap();
    // A second flush with nothing new is harmless.
    p.flush().unwrap();
    let st = p.close().unwrap();
    assert_eq!(st.accepted, 10);
    assert_eq!(read_run(&path, "flush").len(), 10);
}

#[test]
fn queue_full_drops_are_counted() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path)
        .run_id("full")
        .batch_size(4)
        .queue_capacity(8)
        .flush_interval(Duration::from_millis(1))
        .open()
        .unwrap();
    p.install();
    let produced = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let flood = |produced: &std::sync::atomic::AtomicU64| {
        for _ in 0..10_000 {
            let _g = ferret::span("flood");
        }
        produced.fetch_add(10_000, std::sync::atomic::Ordering::Relaxed);
    };
    let helper = {
        let produced = produced.clone();
        std::thread::spawn(move || {
            for _ in 0..20 {
                flood(&produced);
            }
        })
    };
    while p.stats().dropped_queue + p.stats().shed == 0
        && produced.load(std::sync::atomic::Ordering::Relaxed) < 5_000_000
    {
        flood(&produced);
    }
    helper.join().unwrap();
    let st = p.close().unwrap();
    let produced = produced.load(std::sync::atomic::Ordering::Relaxed);
    // Every span is a root here: under pressure whole traces are shed.
    assert!(st.dropped_queue + st.shed > 0, "{st:?}");
    assert_eq!(st.accepted + st.dropped_queue + st.shed, produced, "{st:?}");
    assert_eq!(st.dropped_write, 0);

    let v = read_run(&path, "full");
    assert_eq!(v.len() as u64, st.accepted);
    check_ids(&v);
    let runs = Store::open(&path).unwrap().runs().unwrap();
    assert_eq!(runs[0].accepted, st.accepted);
    assert_eq!(runs[0].dropped_queue, st.dropped_queue);
    assert_eq!(runs[0].spans, st.accepted);
}

fn ferret_io_sample() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/samples/ferret-io/simple.db"
    ))
}

fn garbage_file(dir: &Path) -> PathBuf {
    let g = dir.join("garbage.db");
    std::fs::write(&g, "this is not a database, just text\n".repeat(200)).unwrap();
    g
}

#[test]
fn bad_paths_are_errors_not_panics() {
    let _l = lock();
    let dir = tempfile::tempdir().unwrap();

    let g = garbage_file(dir.path());
    let before = std::fs::read(&g).unwrap();
    assert!(matches!(Profiler::open(&g), Err(Error::NotSqlite(_))));
    assert_eq!(std::fs::read(&g).unwrap(), before, "garbage file modified");

    let missing_dir = dir.path().join("no/such/dir/t.db");
    assert!(Profiler::open(&missing_dir).is_err());
    assert!(!missing_dir.exists());

    // A location even root cannot create files in.
    assert!(Profiler::open("/proc/self/ferret-test.db").is_err());

    // A directory.
    assert!(Profiler::open(dir.path()).is_err());

    let sample = ferret_io_sample();
    if sample.exists() {
        // Work on a copy (with its -wal/-shm): the shared sample stays untouched.
        let copy = dir.path().join("io.db");
        let mut files = vec![];
        for suffix in ["", "-wal", "-shm"] {
            let mut src = sample.as_os_str().to_owned();
            src.push(suffix);
            let mut dst = copy.as_os_str().to_owned();
            dst.push(suffix);
            if std::fs::metadata(&src).is_ok() {
                std::fs::copy(&src, &dst).unwrap();
                if suffix != "-shm" {
                    files.push((PathBuf::from(&dst), std::fs::read(&dst).unwrap()));
                }
            }
        }
        assert!(matches!(Profiler::open(&copy), Err(Error::WrongKind(_))));
        for (f, content) in files {
            let now = std::fs::read(&f).unwrap_or_default();
            assert!(now == content, "{} modified by a refused open", f.display());
        }
    } else {
        eprintln!(
            "skipping the ferret-io check: {} not found",
            sample.display()
        );
    }

    // A file of a newer format version is refused, naming the file.
    let newer = dir.path().join("newer.db");
    ferret_testkit::newer_version_file(&newer);
    let Err(err) = Profiler::open(&newer) else {
        panic!("a newer file is refused")
    };
    assert!(matches!(err, Error::UnsupportedVersion(_, _)), "{err:?}");
    assert!(err.to_string().contains("newer.db"), "{err}");
    assert!(matches!(
        Store::open(&newer),
        Err(ferret_analyze::Error::UnsupportedVersion(_, _))
    ));

    // Another program's database is refused and left as it was.
    let foreign = dir.path().join("app.db");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada');")
            .unwrap();
    }
    let before = std::fs::read(&foreign).unwrap();
    let Err(err) = Profiler::open(&foreign) else {
        panic!("a foreign database is refused")
    };
    assert!(matches!(err, Error::ForeignDatabase(_)), "{err:?}");
    assert!(err.is_user_error());
    assert!(err.to_string().contains("not a ferret trace file"), "{err}");
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        before,
        "foreign database modified"
    );

    // An empty SQLite file (no tables yet) is fine to record into, and
    // reopening a ferret file is too.
    let fresh = dir.path().join("fresh.db");
    rusqlite::Connection::open(&fresh)
        .unwrap()
        .execute_batch("PRAGMA user_version = 0")
        .unwrap();
    Profiler::open(&fresh).unwrap().close().unwrap();
    Profiler::open(&fresh).unwrap().close().unwrap();

    // A profiler that fails to open leaves no global state behind.
    assert!(!ferret::span("x").is_recording());
}

#[test]
fn store_open_errors() {
    let _l = lock();
    let dir = tempfile::tempdir().unwrap();
    let g = garbage_file(dir.path());
    assert!(matches!(
        Store::open(&g),
        Err(ferret_analyze::Error::NotSqlite(_))
    ));
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        Store::open(&empty),
        Err(ferret_analyze::Error::EmptyFile(_))
    ));
    let missing = dir.path().join("missing.db");
    assert!(matches!(
        Store::open(&missing),
        Err(ferret_analyze::Error::NotFound(_))
    ));
    assert!(!missing.exists(), "reading must not create the file");
    assert!(matches!(
        Store::open(dir.path()),
        Err(ferret_analyze::Error::NotSqlite(_))
    ));

    // A file with a run but no spans.
    let path = dir.path().join("t.db");
    Profiler::builder(&path)
        .run_id("nothing")
        .open()
        .unwrap()
        .close()
        .unwrap();
    let s = Store::open(&path).unwrap();
    assert_eq!(s.latest_run().unwrap(), "nothing");
    assert_eq!(
        s.spans("nothing", &SpanQuery::default()).unwrap().count(),
        0
    );
    assert!(matches!(
        s.spans("other", &SpanQuery::default()),
        Err(ferret_analyze::Error::UnknownRun { .. })
    ));
}

/// A steady trickle of batches (a service) is committed a flush interval
/// after it arrives, not only once the writer holds a full round of spans:
/// a reader sees the early spans while the program still records.
#[test]
fn a_steady_trickle_is_committed_within_the_flush_interval() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path)
        .run_id("trickle")
        .batch_size(16)
        .flush_interval(Duration::from_millis(50))
        .open()
        .unwrap();
    p.install();
    let start = std::time::Instant::now();
    // A batch every ~2 ms for 0.6 s: the writer never sits idle for a
    // whole interval, and holds far fewer than a round of spans.
    while start.elapsed() < Duration::from_millis(600) {
        for _ in 0..16 {
            drop(ferret::span("tick"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let seen = read_run(&path, "trickle").len();
    p.close().unwrap();
    assert!(
        seen >= 16 * 100,
        "only {seen} spans committed after 0.6 s of recording"
    );
}

/// The SQLite page size of a file.
fn page_size(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap()
}

/// A file the recorder creates gets its page size (a block then spans a
/// few pages instead of a dozen); a file made with smaller pages, as
/// recorders before it made them, keeps its own, records and reads.
#[test]
fn new_files_take_the_recorder_page_size_and_old_files_keep_theirs() {
    let _l = lock();
    let (_d, path) = temp_db();
    let p = Profiler::builder(&path).run_id("new").open().unwrap();
    p.install();
    drop(ferret::span("x"));
    p.close().unwrap();
    assert_eq!(page_size(&path), ferret_format::schema::PAGE_SIZE as i64);
    assert_eq!(read_run(&path, "new").len(), 1);

    let (_d1, old) = temp_db();
    {
        let c = rusqlite::Connection::open(&old).unwrap();
        c.execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;")
            .unwrap();
        c.execute_batch(ferret_format::schema::SCHEMA).unwrap();
        c.execute(
            "INSERT INTO ferret_meta VALUES ('format_version', ?1)",
            [ferret_format::schema::FORMAT_VERSION.to_string()],
        )
        .unwrap();
    }
    assert_eq!(page_size(&old), 4096);
    let p = Profiler::builder(&old).run_id("old").open().unwrap();
    p.install();
    for _ in 0..10_000 {
        drop(ferret::span("y"));
    }
    p.close().unwrap();
    assert_eq!(page_size(&old), 4096);
    assert_eq!(read_run(&old, "old").len(), 10_000);
}
