//! `ferret::FerretLayer`: tracing spans recorded into a Ferret file.
#![cfg(feature = "tracing")]

mod common;

use common::{all, find, read_back, Rec};

/// The `busy_ns` tag the layer records.
fn busy(r: &Rec) -> u64 {
    match r.tag("busy_ns") {
        Some(TagValue::I64(n)) => *n as u64,
        other => panic!("busy_ns of {}: {other:?}", r.name),
    }
}
use ferret::{FerretLayer, Status, TagValue};
use std::sync::Once;
use std::time::Duration;
use tracing::{field, Instrument};
use tracing_subscriber::prelude::*;

/// The installed profiler is process-global: one test at a time.
use ferret_testkit::serial as lock;

/// A global subscriber (so that tokio's worker threads see it too) whose
/// layer records into whichever profiler the running test installed.
fn init_global() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(FerretLayer::default()),
        )
        .unwrap();
    });
}

fn s(x: &str) -> TagValue {
    TagValue::Str(x.into())
}

/// Opens a profiler on a fresh file, lets `f` record with it, closes it and
/// reads the spans back.
fn record(f: impl FnOnce(&ferret::Profiler)) -> Vec<Rec> {
    record_at(|p, _| f(p))
}

/// [`record`], with the file's path for `f` (to read it while it records).
fn record_at(f: impl FnOnce(&ferret::Profiler, &std::path::Path)) -> Vec<Rec> {
    let _l = lock();
    init_global();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let p = ferret::Profiler::builder(&path).run_id("r").open().unwrap();
    p.install();
    f(&p, &path);
    p.close().unwrap();
    read_back(&path, "r")
}

#[test]
fn fields_target_and_parents_with_new() {
    let v = record(|p| {
        let sub = tracing_subscriber::registry().with(FerretLayer::new(p));
        tracing::subscriber::with_default(sub, || {
            let outer = tracing::info_span!(
                "outer",
                user = 7,
                big = u64::MAX,
                neg = -3i64,
                flag = true,
                ratio = 0.5,
                label = "x",
                list = ?vec![1, 2],
            );
            let _e = outer.enter();
            let inner = tracing::debug_span!(target: "my_target", "inner", late = field::Empty);
            inner.in_scope(|| {});
            inner.record("late", 42);
            inner.record("late", 43);
            drop(inner);
        });
    });
    assert_eq!(v.len(), 2);
    let o = find(&v, "outer");
    assert_eq!(o.parent, None);
    assert_eq!(o.tag("target"), Some(&s("layer")));
    assert_eq!(o.tag("user"), Some(&TagValue::I64(7)));
    assert_eq!(o.tag("big"), Some(&TagValue::U64(u64::MAX)));
    assert_eq!(o.tag("neg"), Some(&TagValue::I64(-3)));
    assert_eq!(o.tag("flag"), Some(&TagValue::Bool(true)));
    assert_eq!(o.tag("ratio"), Some(&TagValue::F64(0.5)));
    assert_eq!(o.tag("label"), Some(&s("x")));
    assert_eq!(o.tag("list"), Some(&s("[1, 2]")));
    assert_eq!(o.status, Status::Ok);
    let i = find(&v, "inner");
    assert_eq!(i.parent, Some(o.id));
    assert_eq!(i.tag("target"), Some(&s("my_target")));
    // Recorded after creation; the last value wins.
    assert_eq!(i.tag("late"), Some(&TagValue::I64(43)));
    assert!(i.dur <= o.dur);
}

#[test]
fn explicit_parent_and_explicit_root() {
    let v = record(|_| {
        let a = tracing::info_span!("a");
        // Created outside `a`, with `a` as explicit parent.
        let b = tracing::info_span!(parent: &a, "b");
        let other = tracing::info_span!("other");
        other.in_scope(|| {
            // Explicit parent wins over the current span.
            let c = tracing::info_span!(parent: &b, "c");
            drop(c);
            // Explicit root even though `other` is current.
            let r = tracing::info_span!(parent: None, "root");
            drop(r);
            // Contextual: under `other`.
            let d = tracing::info_span!("d");
            drop(d);
        });
        drop((a, b, other));
    });
    assert_eq!(v.len(), 6);
    let a = find(&v, "a");
    let b = find(&v, "b");
    let other = find(&v, "other");
    assert_eq!(a.parent, None);
    assert_eq!(b.parent, Some(a.id));
    assert_eq!(find(&v, "c").parent, Some(b.id));
    assert_eq!(find(&v, "root").parent, None);
    assert_eq!(find(&v, "d").parent, Some(other.id));
    assert_eq!(other.parent, None);
}

/// With a per-layer filter, a span whose explicit parent the filter left
/// out is recorded under the nearest ancestor the layer recorded.
#[test]
fn explicit_parent_left_out_by_a_per_layer_filter() {
    let v = record(|p| {
        let layer = FerretLayer::new(p).with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.name() != "hidden"
        }));
        let sub = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(sub, || {
            let top = tracing::info_span!("top");
            let hidden = tracing::info_span!(parent: &top, "hidden");
            let child = tracing::info_span!(parent: &hidden, "child");
            drop(child);
            drop((hidden, top));
        });
    });
    assert_eq!(v.len(), 2, "{v:?}");
    let top = find(&v, "top");
    assert_eq!(find(&v, "child").parent, Some(top.id));
}

#[test]
fn error_field_and_error_events() {
    let v = record(|_| {
        tracing::info_span!("field_err", error = "boom").in_scope(|| {});
        let late = tracing::info_span!("late_err", error = field::Empty);
        late.record("error", "late boom");
        drop(late);
        tracing::info_span!("event_err").in_scope(|| {
            tracing::info!("fine");
            tracing::error!(code = 5, "disk full");
            tracing::error!("second");
        });
        tracing::info_span!("warn_only").in_scope(|| {
            tracing::warn!("just a warning");
        });
        tracing::info_span!("no_error", error = false).in_scope(|| {});
        let io = std::io::Error::other("io failed");
        tracing::info_span!("dyn_err", error = &io as &(dyn std::error::Error + 'static))
            .in_scope(|| {});
        // An error event in a child marks the child only.
        tracing::info_span!("parent_ok").in_scope(|| {
            tracing::info_span!("child_err").in_scope(|| tracing::error!("child failed"));
        });
    });
    let f = find(&v, "field_err");
    assert_eq!(f.status, Status::Error);
    assert_eq!(f.tag("error"), Some(&s("boom")));
    let l = find(&v, "late_err");
    assert_eq!(l.status, Status::Error);
    assert_eq!(l.tag("error"), Some(&s("late boom")));
    let e = find(&v, "event_err");
    assert_eq!(e.status, Status::Error);
    assert_eq!(e.tag("error"), Some(&s("disk full")), "first message kept");
    assert_eq!(find(&v, "warn_only").status, Status::Ok);
    assert_eq!(find(&v, "warn_only").tag("error"), None);
    let n = find(&v, "no_error");
    assert_eq!(n.status, Status::Ok);
    assert_eq!(n.tag("error"), Some(&TagValue::Bool(false)));
    let d = find(&v, "dyn_err");
    assert_eq!(d.status, Status::Error);
    assert_eq!(d.tag("error"), Some(&s("io failed")));
    assert_eq!(find(&v, "parent_ok").status, Status::Ok);
    let c = find(&v, "child_err");
    assert_eq!(c.status, Status::Error);
    assert_eq!(c.parent, Some(find(&v, "parent_ok").id));
}

#[tracing::instrument]
fn instrumented_outer(n: u32) -> u32 {
    (0..n).map(instrumented_inner).sum()
}

#[tracing::instrument(skip_all, fields(doubled))]
fn instrumented_inner(i: u32) -> u32 {
    tracing::Span::current().record("doubled", i * 2);
    i * 2
}

#[tracing::instrument(err)]
fn instrumented_fails(x: i32) -> Result<i32, String> {
    if x < 0 {
        Err("negative".into())
    } else {
        Ok(x)
    }
}

#[test]
fn instrument_attribute() {
    let v = record(|_| {
        assert_eq!(instrumented_outer(3), 6);
        assert!(instrumented_fails(-1).is_err());
        assert_eq!(instrumented_fails(1), Ok(1));
    });
    let o = find(&v, "instrumented_outer");
    assert_eq!(o.tag("n"), Some(&TagValue::I64(3)));
    assert_eq!(o.tag("target"), Some(&s("layer")));
    let inner = all(&v, "instrumented_inner");
    assert_eq!(inner.len(), 3);
    let mut doubled: Vec<_> = inner
        .iter()
        .map(|r| {
            assert_eq!(r.parent, Some(o.id));
            r.tag("doubled").cloned().unwrap()
        })
        .collect();
    doubled.sort_by_key(|t| t.to_string());
    assert_eq!(
        doubled,
        vec![TagValue::I64(0), TagValue::I64(2), TagValue::I64(4)]
    );
    let fails = all(&v, "instrumented_fails");
    assert_eq!(fails.len(), 2);
    let bad = fails
        .iter()
        .find(|r| r.tag("x") == Some(&TagValue::I64(-1)));
    let bad = bad.unwrap();
    assert_eq!(bad.status, Status::Error);
    assert_eq!(bad.tag("error"), Some(&s("negative")));
    let good = fails.iter().find(|r| r.tag("x") == Some(&TagValue::I64(1)));
    assert_eq!(good.unwrap().status, Status::Ok);
}

async fn job(i: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(10)).await;
    let part = async {
        tokio::task::yield_now().await;
        i
    }
    .instrument(tracing::info_span!("part"))
    .await;
    let child = tokio::spawn(
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            i * 10
        }
        .instrument(tracing::info_span!("spawned", i)),
    );
    part + child.await.unwrap()
}

#[test]
fn async_instrument_on_multi_thread_tokio() {
    let v = record(|_| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let total = rt.block_on(async {
            let hs: Vec<_> = (0..8)
                .map(|i| tokio::spawn(job(i).instrument(tracing::info_span!("task", i))))
                .collect();
            let mut t = 0;
            for h in hs {
                t += h.await.unwrap();
            }
            t
        });
        assert_eq!(total, (0..8).map(|i| i * 11).sum::<u64>());
    });
    let tasks = all(&v, "task");
    assert_eq!(tasks.len(), 8, "entered on many polls, recorded once");
    let mut seen: Vec<_> = tasks.iter().map(|t| t.tag("i").cloned().unwrap()).collect();
    seen.sort_by_key(|t| t.to_string());
    assert_eq!(seen, (0..8).map(TagValue::I64).collect::<Vec<_>>());
    for t in &tasks {
        assert_eq!(t.parent, None);
        // Sleeping is not busy time.
        assert!(t.dur >= 10_000_000, "duration {}", t.dur);
        assert!(busy(t) < t.dur, "busy {} dur {}", busy(t), t.dur);
        let parts: Vec<_> = all(&v, "part")
            .into_iter()
            .filter(|p| p.parent == Some(t.id))
            .collect();
        assert_eq!(parts.len(), 1);
        let spawned: Vec<_> = all(&v, "spawned")
            .into_iter()
            .filter(|p| p.parent == Some(t.id))
            .collect();
        assert_eq!(spawned.len(), 1);
        assert_eq!(spawned[0].tag("i"), t.tag("i"));
    }
    assert_eq!(v.len(), 24);
}

#[test]
fn busy_time_counts_entered_time_only() {
    let v = record(|_| {
        let sp = tracing::info_span!("busy");
        sp.in_scope(|| std::thread::sleep(Duration::from_millis(5)));
        // Long enough that a loaded machine's late wake-ups from the two
        // 5 ms sleeps cannot add up to it.
        std::thread::sleep(Duration::from_millis(100));
        sp.in_scope(|| std::thread::sleep(Duration::from_millis(5)));
        drop(sp);
    });
    let b = find(&v, "busy");
    assert!(busy(b) >= 10_000_000, "busy {}", busy(b));
    assert!(busy(b) < 100_000_000, "busy {}", busy(b));
    assert!(b.dur >= 110_000_000, "dur {}", b.dur);
}

/// A span's self busy time: its `self_busy_ns` tag, or its busy time when
/// the tag is left out (no children's time, self busy = busy).
fn self_busy(r: &Rec) -> u64 {
    match r.tag("self_busy_ns") {
        Some(TagValue::I64(n)) => *n as u64,
        None => busy(r),
        other => panic!("self_busy_ns of {}: {other:?}", r.name),
    }
}

/// A span entered again while it is entered (`Span::current()` entered
/// inside itself, a future instrumented with the current span awaited in
/// it) keeps the time it was innermost as self busy time: it was zero,
/// the inner entry counting as a child of the outer one.
#[test]
fn a_span_entered_again_inside_itself_keeps_its_self_busy_time() {
    let v = record(|_| {
        let work = || std::thread::sleep(Duration::from_millis(20));
        let again = tracing::info_span!("again");
        again.in_scope(|| again.in_scope(work));
        drop(again);
        // Entered again above another span: the time is the inner entry's,
        // and the span between has none of its own.
        let a = tracing::info_span!("a");
        let b = tracing::info_span!("b");
        a.in_scope(|| b.in_scope(|| a.in_scope(work)));
    });
    for name in ["again", "a"] {
        let r = find(&v, name);
        assert!(busy(r) >= 20_000_000, "{name}: busy {}", busy(r));
        assert!(
            self_busy(r) >= 20_000_000 && self_busy(r) <= busy(r),
            "{name}: self busy {} of busy {}",
            self_busy(r),
            busy(r)
        );
    }
    let b = find(&v, "b");
    assert!(busy(b) >= 20_000_000, "b: busy {}", busy(b));
    assert!(self_busy(b) < 10_000_000, "b: self busy {}", self_busy(b));
}

/// Entered guards dropped in another order than taken: the span entered
/// second was innermost from its enter to its exit, and the one entered
/// first only until the second was entered. Before, the first span's exit
/// credited its whole time to the span above it, as if nested in it.
#[test]
fn spans_exited_out_of_order_keep_their_self_busy_time() {
    let v = record(|_| {
        let ms = |n| std::thread::sleep(Duration::from_millis(n));
        let first = tracing::info_span!("first");
        let second = tracing::info_span!("second");
        let g1 = first.enter();
        ms(20);
        let g2 = second.enter();
        ms(40);
        drop(g1);
        ms(20);
        drop(g2);
    });
    let first = find(&v, "first");
    let second = find(&v, "second");
    // `second` was on top of `first` for at least the 40 ms between.
    assert!(
        self_busy(first) + 40_000_000 <= busy(first),
        "first: self busy {} of busy {}",
        self_busy(first),
        busy(first)
    );
    assert!(
        self_busy(first) >= 20_000_000,
        "first: self busy {}",
        self_busy(first)
    );
    // Innermost all the time it was entered.
    assert!(
        self_busy(second) >= 60_000_000 && self_busy(second) == busy(second),
        "second: self busy {} of busy {}",
        self_busy(second),
        busy(second)
    );
}

#[test]
fn ferret_and_tracing_spans_nest_both_ways() {
    let v = record(|_| {
        tracing::info_span!("t_outer").in_scope(|| {
            let _g = ferret::span("f_mid");
            tracing::info_span!("t_inner").in_scope(|| {
                ferret::measure("f_leaf", || {});
            });
        });
    });
    let t_outer = find(&v, "t_outer");
    let f_mid = find(&v, "f_mid");
    let t_inner = find(&v, "t_inner");
    assert_eq!(f_mid.parent, Some(t_outer.id));
    assert_eq!(t_inner.parent, Some(f_mid.id));
    assert_eq!(find(&v, "f_leaf").parent, Some(t_inner.id));
}

#[test]
fn layer_options_turn_off_target_and_busy_tags() {
    let v = record(|_| {
        let layer = FerretLayer::default()
            .with_target_tag(false)
            .with_busy_time(false);
        let sub = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(sub, || {
            tracing::info_span!("plain", k = 1).in_scope(|| {});
        });
    });
    let p = find(&v, "plain");
    assert_eq!(p.tags, vec![("k".to_string(), TagValue::I64(1))]);
}

#[test]
fn nothing_recorded_without_profiler() {
    let _l = lock();
    init_global();
    // No profiler is installed: spans go through the layer without effect.
    tracing::info_span!("unrecorded", error = "x").in_scope(|| tracing::error!("e"));
    assert!(ferret::current().is_none());
}

/// A span records into the profiler installed when it opened, even when
/// another is installed before it closes (on this thread and on another).
#[test]
fn a_span_records_into_the_profiler_installed_when_it_opened() {
    let _l = lock();
    init_global();
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let a = ferret::Profiler::builder(&pa).run_id("a").open().unwrap();
    a.install();
    let here = tracing::info_span!("opened_under_a", k = 1);
    let elsewhere = tracing::info_span!("opened_under_a_closed_elsewhere");
    let b = ferret::Profiler::builder(&pb).run_id("b").open().unwrap();
    b.install();
    tracing::info_span!("opened_under_b").in_scope(|| {});
    here.in_scope(|| {});
    drop(here);
    std::thread::spawn(move || drop(elsewhere)).join().unwrap();
    b.close().unwrap();
    a.close().unwrap();
    let (va, vb) = (read_back(&pa, "a"), read_back(&pb, "b"));
    let names = |v: &[Rec]| {
        let mut n: Vec<String> = v.iter().map(|r| r.name.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&va),
        ["opened_under_a", "opened_under_a_closed_elsewhere"]
    );
    assert_eq!(names(&vb), ["opened_under_b"]);
    assert_eq!(
        find(&va, "opened_under_a").tag("k"),
        Some(&TagValue::I64(1))
    );
}

/// A request handler, instrumented like an axum handler under tower-http's
/// `TraceLayer`: it waits on its database, spawns a background task that
/// outlives it, and a short one that finishes while it still waits.
async fn handler() {
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Fire and forget: outlives the handler by far.
    tokio::spawn(
        async {
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        .instrument(tracing::info_span!("notify_shipping")),
    );
    // Also not awaited, but done long before the handler returns.
    tokio::spawn(async {}.instrument(tracing::info_span!("audit")));
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[test]
fn a_background_task_does_not_stretch_its_parents() {
    let v = record(|_| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // As tower-http and #[instrument] do: the handler's span is
            // made while the request's span is entered.
            let request = tracing::info_span!("request");
            let create = request.in_scope(|| tracing::info_span!("create_order"));
            handler().instrument(create).instrument(request).await;
            // Let the background task finish before the runtime goes.
            tokio::time::sleep(Duration::from_millis(120)).await;
        });
    });
    let request = find(&v, "request");
    let handler = find(&v, "create_order");
    let notify = find(&v, "notify_shipping");
    let audit = find(&v, "audit");
    assert_eq!(handler.parent, Some(request.id));
    assert_eq!(notify.parent, Some(handler.id), "still under its parent");
    assert_eq!(audit.parent, Some(handler.id));
    // The handler ran ~15 ms; the task it never awaited 60 ms more.
    let ms = |ns: u64| ns as f64 / 1e6;
    assert!(
        handler.dur >= 15_000_000 && handler.dur < 50_000_000,
        "handler {:.1} ms",
        ms(handler.dur)
    );
    assert!(
        request.dur < 50_000_000,
        "request {:.1} ms",
        ms(request.dur)
    );
    assert!(request.dur >= handler.dur);
    assert!(notify.dur >= 60_000_000, "notify {:.1} ms", ms(notify.dur));
    // The child that outlived its parent is marked, with its own times.
    assert_eq!(notify.tag("detached"), Some(&TagValue::Bool(true)));
    assert!(
        notify.start as i128 + notify.dur as i128 > handler.start as i128 + handler.dur as i128
    );
    // The one that ended inside its parent's life is an ordinary child.
    assert_eq!(audit.tag("detached"), None);
    // The detached child's time is not the handler's children time.
    assert!(
        handler.children <= handler.dur,
        "children {:.1} ms > duration {:.1} ms",
        ms(handler.children),
        ms(handler.dur)
    );
    assert!(handler.children >= audit.dur);
    assert_eq!(request.children, handler.dur);
}

/// A span that is never entered (a worker loop's, a root given as
/// explicit parent) keeps at most a few of its closed children waiting:
/// the others reach the file while it is still open (a crash keeps them),
/// as ordinary children, and memory does not grow with their number.
#[test]
fn children_of_a_span_never_entered_reach_the_file_while_it_is_open() {
    let v = record_at(|p, path| {
        let worker = tracing::info_span!("worker");
        for i in 0..1000 {
            tracing::info_span!(parent: &worker, "request", i).in_scope(|| {});
        }
        p.flush().unwrap();
        let so_far = read_back(path, "r");
        let n = so_far.iter().filter(|r| r.name == "request").count();
        assert!(n >= 1000 - 16, "{n} of 1000 children in the file");
        assert!(so_far.iter().all(|r| r.name != "worker"), "still open");
    });
    let worker = find(&v, "worker");
    let requests: Vec<&Rec> = v.iter().filter(|r| r.name == "request").collect();
    assert_eq!(requests.len(), 1000);
    for r in &requests {
        assert_eq!(r.parent, Some(worker.id));
        assert_eq!(r.tag("detached"), None);
    }
    // Every child ended inside the worker's life: all its children time.
    assert_eq!(worker.children, requests.iter().map(|r| r.dur).sum::<u64>());
}

/// A span kept open by a handle (not only by its children) still ends
/// when its last handle drops, as before.
#[test]
fn a_span_held_open_ends_when_dropped() {
    let v = record(|_| {
        let parent = tracing::info_span!("parent");
        let child = parent.in_scope(|| tracing::info_span!("child"));
        drop(child);
        std::thread::sleep(Duration::from_millis(20));
        drop(parent);
    });
    let parent = find(&v, "parent");
    let child = find(&v, "child");
    assert!(parent.dur >= 20_000_000, "parent {} ns", parent.dur);
    assert_eq!(child.tag("detached"), None);
}

/// A field whose `Debug` impl does tracing work of its own: it opens,
/// enters and closes a span, and logs an error, while the layer formats it.
struct Chatty;

impl std::fmt::Debug for Chatty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        tracing::info_span!("inside_debug").in_scope(|| {
            tracing::error!("from a Debug impl");
        });
        f.write_str("chatty")
    }
}

/// Tracing calls made by user code while the layer holds a span's state
/// (`Span::record` of a value whose `Debug` traces) neither deadlock nor
/// lose the span being recorded: the nested span is skipped there, and
/// recorded where the layer holds nothing (fields at creation). Through
/// the global subscriber, as `tracing` only lets such nested calls reach a
/// subscriber when no scoped one is set.
#[test]
fn tracing_inside_a_fields_debug_does_not_deadlock() {
    let v = record(|_| {
        for _ in 0..200 {
            let s = tracing::info_span!("outer", late = field::Empty, early = ?Chatty);
            s.in_scope(|| {
                s.record("late", field::debug(Chatty));
                tracing::info_span!("after").in_scope(|| {});
            });
        }
    });
    let outer: Vec<_> = v.iter().filter(|r| r.name == "outer").collect();
    assert_eq!(outer.len(), 200);
    for o in &outer {
        assert_eq!(o.tag("late"), Some(&s("chatty")));
        assert_eq!(o.tag("early"), Some(&s("chatty")));
        assert_eq!(o.status, Status::Ok);
    }
    let after: Vec<_> = v.iter().filter(|r| r.name == "after").collect();
    assert_eq!(after.len(), 200);
    // Opened while the fields at creation were formatted (nothing held):
    // recorded; while `late` was (outer's state held): skipped.
    let inside: Vec<_> = v.iter().filter(|r| r.name == "inside_debug").collect();
    assert_eq!(inside.len(), 200);
    assert!(inside.iter().all(|r| r.status == Status::Error));
}

/// Span ids are unique within one subscriber only: the same layer added to
/// two subscribers in turn (ids reused) keeps their spans apart.
#[test]
fn one_layer_in_two_subscribers() {
    let v = record(|p| {
        let layer = FerretLayer::new(p);
        let a = tracing::Dispatch::new(tracing_subscriber::registry().with(layer.clone()));
        let b = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let sa = tracing::dispatcher::with_default(&a, || tracing::info_span!("a_span"));
        let sb = tracing::dispatcher::with_default(&b, || tracing::info_span!("b_span"));
        assert_eq!(sa.id(), sb.id());
        drop(sa);
        std::thread::sleep(Duration::from_millis(5));
        drop(sb);
    });
    let a = find(&v, "a_span");
    let b = find(&v, "b_span");
    assert!(b.dur >= 5_000_000, "b_span {} ns", b.dur);
    assert!(a.dur < b.dur);
}
