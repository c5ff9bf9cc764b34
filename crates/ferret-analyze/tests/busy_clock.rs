//! `Clock::Busy` through the scan driver: every report reads busy
//! durations and self busy times from the recorder's tags, sync spans keep
//! their wall times, ferret-io files stay on wall time.

use ferret_analyze::analysis::diff::{diff, DiffOptions, SideSpec, Verdict};
use ferret_analyze::analysis::{
    call_tree, fold_paths, slowest_trees, summarize, Clock, Query, SummaryOptions, TreeOptions,
};
use ferret_analyze::export::{self, Format};
use ferret_analyze::store::Store;
use ferret_testkit::{fio_row, span, FerretIoFile, NativeFile, TestSpan};
use std::path::Path;

const MS: u64 = 1_000_000;

/// One request: `handler` (async: 10 ms wall, 3 ms busy, 1 ms of it its
/// own) → `db` (async: 8 ms wall, 0.1 ms busy) and `digest` (sync, 1.9 ms).
fn request(base_id: u64, start: i64, handler_busy: u64) -> Vec<TestSpan> {
    let (h, d, g) = (base_id, base_id + 1, base_id + 2);
    vec![
        span(h, 0, "handler", start, 10 * MS, 99 * MS / 10)
            .tag("busy_ns", handler_busy)
            .tag("self_busy_ns", handler_busy - 2 * MS),
        span(d, h, "db", start, 8 * MS, 0)
            .tag("busy_ns", MS / 10)
            .tag("self_busy_ns", MS / 10),
        span(g, h, "digest", start + 8 * MS as i64, 19 * MS / 10, 0),
    ]
}

fn service(path: &Path, run: &str, handler_busy: u64, n: u64) {
    let mut f = NativeFile::new(run);
    for i in 0..n {
        // A little spread so that percentiles differ from run to run.
        f = f.spans(request(
            1 + i * 3,
            1_000 + (i * 20 * MS) as i64,
            handler_busy + i * 1_000,
        ));
    }
    f.write(path);
}

fn q(clock: Clock) -> Query {
    Query {
        clock,
        ..Query::latest()
    }
}

#[test]
fn reports_read_busy_durations_and_self_busy_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc.db");
    service(&path, "r", 3 * MS, 1);
    let store = Store::open(&path).unwrap();

    let sum = |clock| summarize(&store, &q(clock), &SummaryOptions::default(), None).unwrap();
    let row = |s: &ferret_analyze::analysis::Summary, n: &str| {
        s.stats.iter().find(|r| r.name == n).unwrap().clone()
    };
    let (w, b) = (sum(Clock::Wall), sum(Clock::Busy));
    assert_eq!(row(&w, "handler").total_ns, 10 * MS);
    assert_eq!(row(&w, "handler").self_ns, MS / 10);
    assert_eq!(row(&b, "handler").total_ns, 3 * MS);
    assert_eq!(row(&b, "handler").self_ns, MS);
    assert_eq!(row(&b, "handler").max_ns, 3 * MS);
    assert_eq!(row(&b, "db").total_ns, MS / 10);
    // A sync span: busy = wall.
    assert_eq!(row(&b, "digest").total_ns, 19 * MS / 10);
    assert_eq!(row(&b, "digest").self_ns, 19 * MS / 10);

    // Flame graph (self time per call path): the CPU work is on top.
    let (paths, _) = fold_paths(&store, &q(Clock::Busy)).unwrap();
    let top = paths.iter().max_by_key(|p| p.self_ns).unwrap();
    assert_eq!(top.stack, "handler;digest");
    let (paths, _) = fold_paths(&store, &q(Clock::Wall)).unwrap();
    let top = paths.iter().max_by_key(|p| p.self_ns).unwrap();
    assert_eq!(top.stack, "handler;db");

    // Merged call tree and slowest trees.
    let t = call_tree(&store, &q(Clock::Busy)).unwrap();
    assert_eq!(t.total_ns, 3 * MS);
    let tr = slowest_trees(&store, &q(Clock::Busy), &TreeOptions::default()).unwrap();
    assert_eq!(tr.roots.len(), 1);
    let root = &tr.nodes[tr.roots[0]];
    assert_eq!((root.duration_ns, root.self_ns), (Some(3 * MS), Some(MS)));

    // Exports: folded carries busy self times; speedscope becomes one
    // sampled profile; timelines refuse the busy clock.
    let opts = export::Options {
        query: q(Clock::Busy),
        ..export::Options::default()
    };
    let mut out = Vec::new();
    export::write(&store, &opts, Format::Folded, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("handler;digest 1900000\n"), "{text}");
    assert!(text.contains("handler;db 100000\n"), "{text}");
    assert!(text.contains("handler 1000000\n"), "{text}");
    let mut out = Vec::new();
    export::write(&store, &opts, Format::Speedscope, &mut out).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let p = &doc["profiles"][0];
    assert_eq!(p["type"], "sampled");
    assert_eq!(p["endValue"], 3 * MS);
    let frames = doc["shared"]["frames"].as_array().unwrap();
    let weights = p["weights"].as_array().unwrap();
    let samples = p["samples"].as_array().unwrap();
    assert_eq!(weights.len(), samples.len());
    let heaviest = (0..weights.len())
        .max_by_key(|&i| weights[i].as_u64().unwrap())
        .unwrap();
    let leaf = samples[heaviest].as_array().unwrap().last().unwrap();
    assert_eq!(frames[leaf.as_u64().unwrap() as usize]["name"], "digest");
    for f in [Format::Chrome, Format::Jsonl, Format::Otlp, Format::Parquet] {
        let e = export::write(&store, &opts, f, &mut Vec::new()).unwrap_err();
        assert!(e.is_user_error(), "{f:?}");
        assert!(e.to_string().contains("--clock busy"), "{e}");
    }
}

#[test]
fn spans_without_self_busy_and_damaged_tags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    NativeFile::new("r")
        // Recorded before self busy time was: busy minus children's wall.
        .span(span(1, 0, "old", 0, 10 * MS, 6 * MS).tag("busy_ns", 7 * MS))
        .span(span(2, 1, "child", 0, 6 * MS, 0))
        // Self busy above busy, negative busy, a text busy: clamped or ignored.
        .span(
            span(3, 0, "odd", 0, 5 * MS, 0)
                .tag("busy_ns", 2 * MS)
                .tag("self_busy_ns", 9 * MS),
        )
        .span(span(4, 0, "neg", 0, 5 * MS, 0).tag("busy_ns", -3i64))
        .span(span(5, 0, "txt", 0, 5 * MS, 0).tag("busy_ns", "lots"))
        .write(&path);
    let store = Store::open(&path).unwrap();
    let s = summarize(&store, &q(Clock::Busy), &SummaryOptions::default(), None).unwrap();
    let row = |n: &str| s.stats.iter().find(|r| r.name == n).unwrap().clone();
    assert_eq!((row("old").total_ns, row("old").self_ns), (7 * MS, MS));
    assert_eq!((row("odd").total_ns, row("odd").self_ns), (2 * MS, 2 * MS));
    assert_eq!(row("neg").total_ns, 5 * MS);
    assert_eq!(row("txt").total_ns, 5 * MS);
    assert_eq!(row("child").total_ns, 6 * MS);
}

#[test]
fn ferret_io_files_stay_on_wall_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fio.db");
    let mut row = serde_json::from_str::<serde_json::Value>(&fio_row(
        "a1",
        None,
        "r",
        "job",
        100.0,
        Some(0.5),
        "ok",
    ))
    .unwrap();
    // A user tag that happens to be called busy_ns changes nothing.
    row["tags"] = serde_json::json!({"busy_ns": 5});
    FerretIoFile::new()
        .rows([
            row.to_string(),
            fio_row("b2", Some("a1"), "r", "step", 100.1, Some(0.2), "ok"),
        ])
        .write(&path);
    let store = Store::open(&path).unwrap();
    let s = |clock| summarize(&store, &q(clock), &SummaryOptions::default(), None).unwrap();
    assert_eq!(s(Clock::Busy).stats, s(Clock::Wall).stats);
}

#[test]
fn diff_compares_busy_time() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    // The candidate's handler uses twice the CPU; its wall time is the same.
    service(&a, "base", 3 * MS, 40);
    service(&b, "cand", 6 * MS, 40);
    let (sa, sb) = (Store::open(&a).unwrap(), Store::open(&b).unwrap());
    let side = |s, r: &str| SideSpec {
        store: s,
        runs: vec![r.to_owned()],
    };
    let run = |clock| {
        let opts = DiffOptions {
            clock,
            ..DiffOptions::default()
        };
        diff(
            &side(&sa, "base"),
            &side(&sb, "cand"),
            &opts,
            &mut |_, _| {},
        )
        .unwrap()
    };
    let verdict = |r: &ferret_analyze::analysis::diff::DiffReport, n: &str| {
        r.rows.iter().find(|x| x.name == n).unwrap().verdict
    };
    let wall = run(Clock::Wall);
    assert_eq!(verdict(&wall, "handler"), Verdict::Same);
    assert!(!wall.failed);
    let busy = run(Clock::Busy);
    assert_eq!(busy.clock, Clock::Busy);
    assert_eq!(verdict(&busy, "handler"), Verdict::Regressed);
    assert_eq!(verdict(&busy, "db"), Verdict::Same);
    assert!(busy.failed);
}

#[test]
fn busy_clock_is_the_same_on_several_threads() {
    use ferret_analyze::analysis::{call_tree_threads, summarize_threads};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc-blocks.db");
    // Small blocks, so that the run splits between threads.
    let mut f = NativeFile::new("r").block_spans(16);
    for i in 0..200u64 {
        f = f.spans(request(
            1 + i * 3,
            1_000 + (i * 20 * MS) as i64,
            3 * MS + i * 1_000,
        ));
    }
    f.write(&path);
    let store = Store::open(&path).unwrap();
    let opts = SummaryOptions::default();
    let one = summarize_threads(&store, &q(Clock::Busy), &opts, 1, None).unwrap();
    let two = summarize_threads(&store, &q(Clock::Busy), &opts, 2, None).unwrap();
    assert_eq!(one, two);
    let handler = one.stats.iter().find(|r| r.name == "handler").unwrap();
    assert_eq!(handler.count, 200);
    assert!(
        handler.total_ns < 200 * 4 * MS,
        "busy, not wall: {handler:?}"
    );
    assert_eq!(
        call_tree_threads(&store, &q(Clock::Busy), 1).unwrap(),
        call_tree_threads(&store, &q(Clock::Busy), 2).unwrap()
    );
}
