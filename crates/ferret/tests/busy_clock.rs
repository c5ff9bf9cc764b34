//! Busy time as an analysis clock, end to end: a small service-like
//! recording (tokio, FerretLayer spans, `in_span` futures and a sync
//! `#[ferret::measure]` function) read back with `--clock busy`.
#![cfg(feature = "tracing")]

mod common;

use common::{all, find, read_back, Rec};
use ferret::{FerretLayer, InSpanExt, TagValue};
use ferret_analyze::analysis::{fold_paths, summarize, Clock, Query, SummaryOptions};
use ferret_analyze::export::{self, Format};
use ferret_analyze::store::Store;
use std::path::Path;
use std::time::{Duration, Instant};
use tracing::Instrument;
use tracing_subscriber::prelude::*;

use ferret_testkit::serial as lock;

fn tag(r: &Rec, k: &str) -> u64 {
    match r.tag(k) {
        Some(TagValue::I64(n)) => *n as u64,
        Some(TagValue::U64(n)) => *n,
        other => panic!("{k} of {}: {other:?}", r.name),
    }
}

/// Spins on the CPU for `d`.
fn spin(d: Duration) -> u64 {
    let t = Instant::now();
    let mut x = 0u64;
    while t.elapsed() < d {
        for i in 0..100u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
    x
}

/// The CPU hot spot: long enough that the other spans' own overheads (large
/// in a debug build) and a loaded machine's preemptions, which count as
/// busy time for whichever span is entered, stay well below it.
#[ferret::measure]
fn compute_digest() -> u64 {
    spin(Duration::from_millis(2))
}

/// A handler: a sleeping DB call, CPU work, a rendering future, and a
/// background task it does not wait for.
async fn handle(i: u64) {
    tokio::time::sleep(Duration::from_millis(10))
        .instrument(tracing::info_span!("db.fetch_user"))
        .await;
    let d = compute_digest();
    async {
        tokio::task::yield_now().await;
        spin(Duration::from_micros(20));
    }
    .in_span("render_user")
    .await;
    tokio::spawn(
        tokio::time::sleep(Duration::from_millis(4))
            .instrument(tracing::info_span!("notify_shipping", i)),
    );
    std::hint::black_box(d);
}

/// Records 48 requests on a 2-worker runtime into `path`, run "svc".
fn record_service(path: &Path) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // A global subscriber, so that tokio's workers record too; its layer
    // records into whichever profiler is installed.
    ONCE.call_once(|| {
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(FerretLayer::default()),
        )
        .unwrap();
    });
    let p = ferret::Profiler::builder(path)
        .run_id("svc")
        .open()
        .unwrap();
    p.install();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..48)
            .map(|i| tokio::spawn(handle(i).instrument(tracing::info_span!("request", i))))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    });
    drop(rt);
    p.close().unwrap();
}

#[test]
fn busy_flame_graph_puts_the_cpu_work_on_top_and_the_sleep_near_zero() {
    let _l = lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc.db");
    record_service(&path);
    let store = Store::open(&path).unwrap();
    let q = |clock| Query {
        clock,
        ..Query::run("svc")
    };
    let self_of = |paths: &[ferret_analyze::analysis::FoldedPath], leaf: &str| -> u64 {
        paths
            .iter()
            .filter(|p| p.stack.rsplit(';').next() == Some(leaf))
            .map(|p| p.self_ns)
            .sum()
    };

    // Wall clock: the sleeping DB call dominates self time.
    let (wall, _) = fold_paths(&store, &q(Clock::Wall)).unwrap();
    assert!(
        self_of(&wall, "db.fetch_user") > 2 * self_of(&wall, "compute_digest"),
        "{wall:#?}"
    );

    // Busy clock: the CPU work is on top, the sleep near zero.
    let (busy, n) = fold_paths(&store, &q(Clock::Busy)).unwrap();
    assert!(n >= 48 * 5, "{n} spans");
    let top = busy.iter().max_by_key(|p| p.self_ns).unwrap();
    assert!(top.stack.ends_with(";compute_digest"), "{busy:#?}");
    let digest = self_of(&busy, "compute_digest");
    assert!(digest >= 48 * 2_000_000, "{digest}");
    let db = self_of(&busy, "db.fetch_user");
    assert!(db * 10 < digest, "db {db} vs digest {digest}");
    // The request's own busy time is what its children did not use.
    assert!(self_of(&busy, "request") * 4 < digest, "{busy:#?}");

    // The folded export (what `ferret flamegraph --clock busy` draws) agrees.
    let opts = export::Options {
        query: q(Clock::Busy),
        ..export::Options::default()
    };
    let mut out = Vec::new();
    export::write(&store, &opts, Format::Folded, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let heaviest = text
        .lines()
        .max_by_key(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .unwrap();
    assert!(heaviest.starts_with("request;compute_digest "), "{text}");

    // Per name: busy totals never exceed wall totals; a sync span's are equal.
    let sum = |clock| summarize(&store, &q(clock), &SummaryOptions::default(), None).unwrap();
    let (w, b) = (sum(Clock::Wall), sum(Clock::Busy));
    let row = |s: &ferret_analyze::analysis::Summary, name: &str| {
        s.stats.iter().find(|r| r.name == name).unwrap().clone()
    };
    for name in ["request", "db.fetch_user", "render_user", "notify_shipping"] {
        assert!(row(&b, name).total_ns <= row(&w, name).total_ns, "{name}");
    }
    assert_eq!(
        row(&b, "compute_digest").total_ns,
        row(&w, "compute_digest").total_ns
    );
    assert!(row(&b, "db.fetch_user").total_ns * 20 < row(&w, "db.fetch_user").total_ns);

    // A timeline export keeps wall time and says so.
    let e = export::write(&store, &opts, Format::Chrome, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("--clock busy"), "{e}");
    assert!(e.is_user_error());
}

#[test]
fn future_spans_record_poll_time_and_self_busy_time() {
    let _l = lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    let p = ferret::Profiler::builder(&path).run_id("r").open().unwrap();
    p.install();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(
        async {
            spin(Duration::from_millis(2));
            tokio::time::sleep(Duration::from_millis(20)).await;
            async {
                spin(Duration::from_millis(3));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            .in_span("inner")
            .await;
            ferret::measure("sync_leaf", || spin(Duration::from_millis(1)));
        }
        .in_span("outer"),
    );
    drop(rt);
    p.close().unwrap();
    let v = read_back(&path, "r");
    let (outer, inner, leaf) = (find(&v, "outer"), find(&v, "inner"), find(&v, "sync_leaf"));
    assert_eq!(all(&v, "outer").len(), 1);
    // outer: polled for its own 2 ms + inner's 3 ms + the leaf's 1 ms.
    let ob = tag(outer, "busy_ns");
    assert!((6_000_000..25_000_000).contains(&ob), "busy {ob}");
    assert!(outer.dur >= 30_000_000, "wall {}", outer.dur);
    // Its self busy time excludes what ran nested in it.
    let os = tag(outer, "self_busy_ns");
    let ib = tag(inner, "busy_ns");
    assert!(ib >= 3_000_000 && ib < inner.dur, "inner busy {ib}");
    // No children: self busy = busy, which readers infer (no tag written).
    assert_eq!(inner.tag("self_busy_ns"), None, "inner has no children");
    assert!(
        os + ib + leaf.dur <= ob + 1_000,
        "{os} + {ib} + {} > {ob}",
        leaf.dur
    );
    assert!(os >= 2_000_000, "outer self busy {os}");
    // A sync span carries no busy tags: its busy time is its wall time.
    assert_eq!(leaf.tag("busy_ns"), None);
}
