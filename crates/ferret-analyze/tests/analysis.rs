//! The summary's numbers on small constructed inputs with exact expectations.

use ferret_analyze::analysis::{summarize, NameSummary, Query, SortKey, SummaryOptions};
use ferret_analyze::store::Store;
use ferret_testkit::{fio_row as fio, span as s, FerretIoFile, NativeFile, TestSpan};
use std::path::Path;

fn native_file(path: &Path, run: &str, spans: &[TestSpan]) {
    NativeFile::new(run)
        .spans(spans.iter().cloned())
        .write(path);
}

fn ferret_io_file(path: &Path, rows: &[String]) {
    FerretIoFile::new().rows(rows.iter().cloned()).write(path);
}

fn summary(path: &std::path::Path, run: &str) -> ferret_analyze::analysis::Summary {
    let store = Store::open(path).unwrap();
    summarize(&store, &Query::run(run), &SummaryOptions::default(), None).unwrap()
}

fn row<'a>(sum: &'a ferret_analyze::analysis::Summary, name: &str) -> &'a NameSummary {
    sum.stats.iter().find(|n| n.name == name).unwrap()
}

fn within_1pct(got: f64, want: f64) {
    assert!(
        (got - want).abs() <= want * 0.01 + 1e-9,
        "got {got}, want {want} ±1%"
    );
}

#[test]
fn percentiles_are_nearest_rank_within_one_percent() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.db");
    // 1..=100 ms, one root each.
    let spans: Vec<_> = (1..=100u64)
        .map(|i| s(i, 0, "op", i as i64 * 1_000_000_000, i * 1_000_000, 0))
        .collect();
    native_file(&p, "r", &spans);
    let sum = summary(&p, "r");
    let op = row(&sum, "op");
    assert_eq!(op.count, 100);
    assert_eq!(op.total_ns, 5050 * 1_000_000);
    assert_eq!(op.min_ns, 1_000_000);
    assert_eq!(op.max_ns, 100_000_000);
    within_1pct(op.p50_ns, 50e6);
    within_1pct(op.p95_ns, 95e6);
    within_1pct(op.p99_ns, 99e6);
    within_1pct(op.avg_ns, 50.5e6);
}

#[test]
fn percentiles_of_three_values() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.db");
    native_file(
        &p,
        "r",
        &[
            s(1, 0, "x", 0, 100, 0),
            s(2, 0, "x", 10, 300, 0),
            s(3, 0, "x", 20, 200, 0),
        ],
    );
    let sum = summary(&p, "r");
    let x = row(&sum, "x");
    within_1pct(x.p50_ns, 200.0);
    assert_eq!(x.p95_ns, 300.0, "clamped to the exact max");
    assert_eq!(x.p99_ns, 300.0);
}

#[test]
fn self_time_subtracts_direct_children_and_never_goes_negative() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.db");
    native_file(
        &p,
        "r",
        &[
            s(1, 0, "root", 0, 1000, 600),
            s(2, 1, "child", 10, 400, 100),
            s(3, 2, "leaf", 20, 100, 0),
            s(4, 1, "child", 500, 200, 0),
            // async parent whose overlapping children sum past its duration
            s(5, 0, "fanout", 2000, 100, 250),
        ],
    );
    let sum = summary(&p, "r");
    assert_eq!(row(&sum, "root").self_ns, 400);
    assert_eq!(row(&sum, "child").self_ns, 300 + 200);
    assert_eq!(row(&sum, "leaf").self_ns, 100);
    assert_eq!(row(&sum, "fanout").self_ns, 0);
    assert_eq!(sum.wall_ns, 2100);
}

#[test]
fn ferret_io_self_time_is_resolved_from_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.db");
    ferret_io_file(
        &p,
        &[
            fio("a", None, "r", "root", 10.0, Some(1.0), "ok"),
            fio("b", Some("a"), "r", "child", 10.1, Some(0.25), "ok"),
            fio("c", Some("a"), "r", "child", 10.5, Some(0.25), "error"),
            fio("d", Some("zz"), "r", "orphan", 12.0, Some(0.5), "ok"),
        ],
    );
    let sum = summary(&p, "r");
    within_1pct(row(&sum, "root").self_ns as f64, 0.5e9);
    within_1pct(row(&sum, "child").self_ns as f64, 0.5e9);
    assert_eq!(row(&sum, "child").error_count, 1);
    assert_eq!(row(&sum, "child").error_rate, 0.5);
    within_1pct(row(&sum, "orphan").self_ns as f64, 0.5e9);
}

#[test]
fn null_durations_count_but_stay_out_of_time_stats() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("n.db");
    ferret_io_file(
        &p,
        &[
            fio("a", None, "r", "op", 1.0, Some(2.0), "ok"),
            fio("b", None, "r", "op", 2.0, None, "ok"),
            fio("c", None, "r", "never_timed", 3.0, None, "ok"),
        ],
    );
    let sum = summary(&p, "r");
    let op = row(&sum, "op");
    assert_eq!(op.count, 2);
    assert_eq!(op.total_ns, 2_000_000_000);
    assert_eq!(op.avg_ns, 2e9);
    assert_eq!(sum.spans, 3);
    assert!(sum.stats.iter().all(|n| n.name != "never_timed"));
}

#[test]
fn malformed_rows_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.db");
    ferret_io_file(
        &p,
        &[
            fio("a", None, "r", "ok_span", 1.0, Some(1.0), "ok"),
            "{not json at all r".to_string(),
            r#"{"span_id":"x","run_id":"r","start_time":"yesterday","name":"bad"}"#.to_string(),
            r#"{"span_id":"y","run_id":"r","name":"no_start"}"#.to_string(),
            r#"{"span_id":5,"run_id":"r","name":"id_is_int","start_time":1.5}"#.to_string(),
            fio("b", None, "other_run", "elsewhere", 2.0, Some(1.0), "ok"),
        ],
    );
    let sum = summary(&p, "r");
    assert_eq!(sum.spans, 1);
    assert_eq!(sum.skipped_rows, 4);
    assert_eq!(sum.stats.len(), 1);
}

#[test]
fn corrupt_native_blocks_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.db");
    native_file(&p, "r", &[s(1, 0, "a", 0, 10, 0)]);
    let conn = rusqlite::Connection::open(&p).unwrap();
    conn.execute(
        "INSERT INTO ferret_blocks (run, process, min_start, max_end, count, data) VALUES (1, 1, 0, 10, 3, x'01ffffffff')",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO ferret_blocks (run, process, min_start, max_end, count, data) VALUES (1, 1, 0, 10, 3, 'text, not a blob')",
        [],
    )
    .unwrap();
    drop(conn);
    let sum = summary(&p, "r");
    assert_eq!(sum.spans, 1);
    assert_eq!(sum.skipped_rows, 2);
}

#[test]
fn sorting_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("o.db");
    native_file(
        &p,
        "r",
        &[
            s(1, 0, "b", 0, 10, 0),
            s(2, 0, "a", 0, 5, 0),
            s(3, 0, "a", 0, 5, 0),
            s(4, 0, "c", 0, 30, 0),
        ],
    );
    let mut sum = summary(&p, "r");
    let names = |s: &ferret_analyze::analysis::Summary| {
        s.stats.iter().map(|n| n.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&sum), ["c", "a", "b"]);
    sum.sort_and_limit(SortKey::Count, 0);
    assert_eq!(names(&sum)[0], "a");
    sum.sort_and_limit(SortKey::Name, 2);
    assert_eq!(names(&sum), ["a", "b"]);
}

#[test]
fn time_window_filters_by_start() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.db");
    native_file(
        &p,
        "r",
        &[
            s(1, 0, "x", 100, 10, 0),
            s(2, 0, "x", 200, 10, 0),
            s(3, 0, "x", 300, 10, 0),
        ],
    );
    let store = Store::open(&p).unwrap();
    let q = ferret_analyze::store::SpanQuery {
        since_ns: Some(150),
        until_ns: Some(300),
        ..Default::default()
    };
    let n = store.spans("r", &q).unwrap().count();
    assert_eq!(n, 1);

    // The same window through a report's query, absolute and relative to
    // the run's first span (at 100).
    use ferret_analyze::analysis::TimeBound::{FromRunStart, UnixNs};
    for (since, until) in [
        (UnixNs(150), UnixNs(300)),
        (FromRunStart(50), FromRunStart(200)),
    ] {
        let q = Query {
            since: Some(since),
            until: Some(until),
            ..Query::run("r")
        };
        let sum = summarize(&store, &q, &SummaryOptions::default(), None).unwrap();
        assert_eq!(sum.spans, 1, "{since:?}..{until:?}");
        assert_eq!(row(&sum, "x").total_ns, 10);
    }
}

/// A native run whose recorder lost spans: a span whose parent is absent
/// from the file is the root of its own tree (found through pass 1's Bloom
/// filter of span ids), with its descendants under it.
#[test]
fn native_orphans_of_a_lossy_run_are_roots() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("lossy.db");
    native_file(
        &f,
        "r",
        &[
            s(1, 0, "root", 1_000, 100, 40),
            s(2, 1, "child", 1_010, 40, 0),
            // The parent (id 999) was dropped at the queue.
            s(3, 999, "orphan", 2_000, 300, 50),
            s(4, 3, "leaf", 2_100, 50, 0),
        ],
    );
    let conn = rusqlite::Connection::open(&f).unwrap();
    conn.execute("UPDATE ferret_runs SET dropped_queue = 1", [])
        .unwrap();
    drop(conn);
    let store = Store::open(&f).unwrap();
    let t = ferret_analyze::analysis::slowest_trees(&store, &Query::run("r"), &Default::default())
        .unwrap();
    let roots: Vec<&str> = t.roots.iter().map(|&i| t.nodes[i].name.as_str()).collect();
    assert_eq!(roots, ["orphan", "root"], "slowest first, orphan included");
    let orphan = &t.nodes[t.roots[0]];
    assert_eq!(orphan.duration_ns, Some(300));
    assert_eq!(orphan.self_ns, Some(250));
    let kids: Vec<&str> = orphan
        .children
        .iter()
        .map(|&i| t.nodes[i].name.as_str())
        .collect();
    assert_eq!(kids, ["leaf"]);
    assert_eq!(t.passes, 3, "a lossy run takes the extra orphan pass");
}
