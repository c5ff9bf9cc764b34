//! Per-trace rate limiting and sampling: whole traces are kept or skipped,
//! counters add up exactly, and recording resumes when traffic falls.

use ferret_analyze::store::{SpanQuery, Store};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// The installed profiler is process-global: one test at a time.
use ferret_testkit::serial as lock;

/// (span ids, parent ids) of a run.
fn ids(path: &std::path::Path, run: &str) -> (HashSet<u64>, Vec<u64>) {
    let store = Store::open(path).unwrap();
    let mut spans = HashSet::new();
    let mut parents = vec![];
    for s in store.spans(run, &SpanQuery::default()).unwrap() {
        spans.insert(s.span_id());
        if let Some(p) = s.parent_id() {
            parents.push(p);
        }
    }
    (spans, parents)
}

/// One trace: a root, `steps` children, and a grandchild under every third
/// child. Returns the number of spans it made.
fn trace(steps: usize) -> u64 {
    let _root = ferret::span("request");
    let mut made = 1;
    for i in 0..steps {
        let mut g = ferret::span("step");
        g.tag("i", i as i64);
        made += 1;
        if i % 3 == 0 {
            let _leaf = ferret::span("leaf");
            made += 1;
        }
    }
    made
}

#[test]
fn span_budget_caps_a_burst_and_never_orphans() {
    let _l = lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let p = ferret::Profiler::builder(&path)
        .run_id("burst")
        .max_spans_per_second(1000.0)
        .open()
        .unwrap();
    p.install();
    // ~100k spans/s for 3 s: traces of 11 spans, one every 110 µs.
    let t0 = Instant::now();
    let mut produced = 0u64;
    let mut next = t0;
    while t0.elapsed() < Duration::from_secs(3) {
        produced += trace(7); // 1 + 7 + 3 leaves = 11 spans
        next += Duration::from_micros(110);
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let st = p.close().unwrap();
    let (spans, parents) = ids(&path, "burst");
    let persisted = spans.len() as f64;
    let budget = 1000.0 * elapsed;
    assert!(
        (persisted - budget).abs() <= 0.10 * budget,
        "persisted {persisted} spans, budget × time = {budget:.0}"
    );
    for p in parents {
        assert!(spans.contains(&p), "a persisted span's parent is missing");
    }
    assert_eq!(st.accepted, spans.len() as u64);
    assert_eq!(
        st.accepted + st.sampled_out,
        produced,
        "every span is accounted for"
    );
    assert!(
        produced as f64 > 200_000.0,
        "the loop produced a real burst ({produced})"
    );
    let runs = Store::open(&path).unwrap().runs().unwrap();
    assert_eq!(
        runs[0].sampled_out, st.sampled_out,
        "counters persisted with the run"
    );
}

#[test]
fn quiet_traffic_after_a_burst_is_recorded_in_full() {
    let _l = lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let p = ferret::Profiler::builder(&path)
        .run_id("quiet")
        .max_spans_per_second(1000.0)
        .open()
        .unwrap();
    p.install();
    for _ in 0..20_000 {
        trace(6);
    }
    let skipped_in_burst = p.stats().sampled_out;
    assert!(skipped_in_burst > 100_000, "the burst was throttled");
    std::thread::sleep(Duration::from_millis(300)); // debt repaid
    p.flush().unwrap();
    let accepted_before = p.stats().accepted;
    // 50 traces of 9 spans at 450 spans/s: under the budget.
    let mut made = 0;
    for _ in 0..50 {
        made += trace(6);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(made, 450);
    p.flush().unwrap();
    let st = p.stats();
    assert_eq!(
        st.sampled_out, skipped_in_burst,
        "nothing skipped once traffic is quiet"
    );
    assert_eq!(st.accepted - accepted_before, made);
    p.close().unwrap();
}

#[test]
fn sample_rate_keeps_whole_traces() {
    let _l = lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let p = ferret::Profiler::builder(&path)
        .run_id("rate")
        .sample_rate(0.25)
        .open()
        .unwrap();
    p.install();
    let mut made = 0;
    for _ in 0..4000 {
        made += trace(6);
    }
    assert_eq!(made, 36_000);
    let st = p.close().unwrap();
    assert_eq!(st.accepted + st.sampled_out, made);
    let (spans, parents) = ids(&path, "rate");
    assert_eq!(spans.len() % 9, 0, "only whole traces");
    let kept = spans.len() as f64 / made as f64;
    assert!((kept - 0.25).abs() < 0.05, "kept {kept}");
    for p in parents {
        assert!(spans.contains(&p));
    }
}

#[test]
fn trace_budget_limits_roots() {
    let _l = lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let p = ferret::Profiler::builder(&path)
        .run_id("traces")
        .max_traces_per_second(100.0)
        .open()
        .unwrap();
    p.install();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(1) {
        trace(1);
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    p.close().unwrap();
    let store = Store::open(&path).unwrap();
    let roots = store
        .spans("traces", &SpanQuery::default())
        .unwrap()
        .filter(|s| s.parent_id().is_none())
        .count() as f64;
    let budget = 100.0 * elapsed;
    assert!(
        (roots - budget).abs() <= 0.15 * budget + 10.0,
        "{roots} roots vs {budget:.0}"
    );
}

#[test]
fn skipped_spans_still_give_usable_handles() {
    let _l = lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let p = ferret::Profiler::builder(&path)
        .run_id("handles")
        .sample_rate(0.0)
        .open()
        .unwrap();
    p.install();
    {
        let mut g = ferret::span("root");
        assert!(!g.is_recording());
        g.tag("k", 1).set_error("boom");
        let mut h = ferret::start("manual");
        h.tag("x", true);
        let ctx = h.context();
        std::thread::spawn(move || {
            let c = ferret::start_with_parent("child", ctx.as_ref().unwrap());
            assert!(!c.is_recording());
            c.end();
        })
        .join()
        .unwrap();
        h.end();
        let n = ferret::measure("inner", || 5);
        assert_eq!(n, 5);
    }
    let st = p.close().unwrap();
    assert_eq!(st.accepted, 0);
    assert_eq!(st.sampled_out, 4);
    assert!(ids(&path, "handles").0.is_empty());
}
