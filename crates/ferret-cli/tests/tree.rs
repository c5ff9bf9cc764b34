//! `ferret analyze --tree` and `ferret calltree` against ferret-io samples
//! and native files recorded here.

use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

mod support;
use support::stdout_ok as ferret;

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ferret(args)).unwrap()
}

/// Our text without the self times we add: ferret-io's text.
fn compat(s: &str) -> String {
    let mut out = String::new();
    for line in s.lines() {
        let mut l = line.to_owned();
        if let Some(a) = l.find(" [self ") {
            let b = a + l[a..].find(']').unwrap() + 1;
            l.replace_range(a..b, "");
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

#[test]
fn trees_match_ferret_io_on_the_samples() {
    for name in ["simple", "wrapped"] {
        let db = fixture(&format!("{name}.db"));
        let got = compat(&ferret(&["analyze", db.to_str().unwrap(), "--tree"]));
        let want = std::fs::read_to_string(fixture(&format!("{name}.tree.txt"))).unwrap();
        let want = &want[want.find("Top 20 Slowest Traces").unwrap()..];
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn json_schema() {
    let db = fixture("simple.db");
    let v = json(&[
        "analyze",
        db.to_str().unwrap(),
        "--tree",
        "--format",
        "json",
    ]);
    assert_eq!(v["run_id"], "semantic_demo_v1");
    let roots = v["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[0]["name"], "system_boot");
    assert_eq!(roots[0]["tags"]["version"], "2.0.0");
    assert!(roots[0]["merged"].is_null());
    let b = &roots[1];
    assert_eq!(b["name"], "batch_job");
    assert_eq!(b["status"], "ok");
    assert!((b["duration_s"].as_f64().unwrap() - 0.05112).abs() < 1e-5);
    assert!(b["self_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(b["children"].as_array().unwrap().len(), 4);
    assert_eq!(b["children"][0]["children"][0]["tags"]["cache_hit"], true);
}

#[test]
fn orphans_equal_durations_and_errors() {
    let db = fixture("edge.db");
    let db = db.to_str().unwrap();
    let all = ferret(&["analyze", db, "--tree"]);
    assert!(all.contains("\norphan - 60.00ms [self 50.00ms]\n└── leaf - 10.00ms (n=1)\n"));
    assert!(all.contains("└── work - 30.00ms ✗ error\n"));
    // Equal durations: the earlier start ranks first.
    let top3 = ferret(&["analyze", db, "--tree", "--top", "3"]);
    assert!(top3.contains("same - 30.00ms (which=early)"), "{top3}");
    assert!(!top3.contains("which=late"), "{top3}");
    assert!(!top3.contains("short"));
    let v = json(&["analyze", db, "--tree", "--format", "json"]);
    let names: Vec<&str> = v["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["root", "orphan", "same", "same", "short"]);
    assert_eq!(v["roots"][0]["children"][1]["status"], "error");
    // calltree: the orphan is a root path; errors counted per path.
    let c = json(&["calltree", db, "--format", "json"]);
    let roots = c["roots"].as_array().unwrap();
    let work = &roots[0]["children"][0];
    assert_eq!(work["name"], "work");
    assert_eq!(work["count"], 2);
    assert_eq!(work["error_count"], 1);
    assert!(roots.iter().any(|r| r["name"] == "orphan"));
    let same = roots.iter().find(|r| r["name"] == "same").unwrap();
    assert_eq!(same["count"], 2);
}

#[test]
fn calltree_on_the_samples() {
    let db = fixture("wrapped.db");
    let c = json(&["calltree", db.to_str().unwrap(), "--format", "json"]);
    let main = &c["roots"][0];
    assert_eq!(main["name"], "main");
    let pb = &main["children"][0];
    assert_eq!(pb["name"], "process_batch");
    assert_eq!(pb["count"], 3);
    assert_eq!(pb["children"][0]["name"], "fetch_database_item");
    assert_eq!(pb["children"][0]["count"], 9);
    assert_eq!(main["children"][1]["name"], "heavy_computation");
    let text = ferret(&["calltree", db.to_str().unwrap(), "--depth", "2"]);
    assert!(
        text.starts_with("main ×1  total 130.13ms (100.0%)"),
        "{text}"
    );
    assert!(
        !text.contains("fetch_database_item"),
        "depth 2 hides level 3"
    );
    let text = ferret(&["calltree", db.to_str().unwrap(), "--min-percent", "5"]);
    assert!(!text.contains("└── heavy_computation ×1"), "{text}");
}

fn record(path: &Path, f: impl FnOnce()) {
    // One profiler is installed per process: tests that record take turns
    // (spans open while another test installs its profiler are counted as
    // dropped, and would fail the assertion below).
    let _serial = ferret_testkit::serial();
    let p = ferret::Profiler::builder(path).run_id("x").open().unwrap();
    p.install();
    f();
    let st = p.close().unwrap();
    assert_eq!(st.dropped_queue + st.dropped_write, 0);
}

#[test]
fn siblings_merge_past_max_children() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.db");
    record(&path, || {
        let _main = ferret::span("main");
        for i in 0..300 {
            let mut s = ferret::span(if i % 3 == 0 { "write" } else { "read" });
            if i == 7 {
                s.set_error("boom");
            }
            let _db = ferret::span("db");
            // Work that sets the order by total time (read 2× write, both
            // far above a `rare` span) by a margin that a loaded machine's
            // preemptions do not upset.
            let t = std::time::Instant::now();
            while t.elapsed() < std::time::Duration::from_micros(50) {
                std::hint::spin_loop();
            }
        }
        for i in 0..12 {
            let _s = ferret::span(format!("rare{i}"));
        }
    });
    let db = path.to_str().unwrap();
    let text = ferret(&["analyze", db, "--tree", "--max-children", "5"]);
    assert!(text.contains("├── read ×200  total "), "{text}");
    assert!(text.contains("├── write ×100  total "), "{text}");
    assert!(text.contains(", 1 error\n"), "{text}");
    // 14 distinct lines, 5 shown, then the rest.
    assert!(text.contains("└── … 9 more (9 spans, total "), "{text}");
    assert!(!text.contains("db"), "merged siblings drop their subtrees");
    let v = json(&[
        "analyze",
        db,
        "--tree",
        "--max-children",
        "5",
        "--format",
        "json",
    ]);
    let kids = v["roots"][0]["children"].as_array().unwrap();
    assert_eq!(kids.len(), 6);
    assert_eq!(kids[0]["name"], "read");
    assert_eq!(kids[0]["merged"]["count"], 200);
    assert_eq!(kids[5]["name"], "… 9 more");
    // Under the limit: plain children in start order.
    let v = json(&[
        "analyze",
        db,
        "--tree",
        "--max-children",
        "1000",
        "--format",
        "json",
    ]);
    let kids = v["roots"][0]["children"].as_array().unwrap();
    assert_eq!(kids.len(), 312);
    assert_eq!(kids[0]["name"], "write");
    assert_eq!(kids[0]["children"][0]["name"], "db");
    // calltree merges by path.
    let c = json(&["calltree", db, "--format", "json"]);
    let main = &c["roots"][0];
    assert_eq!(main["children"][0]["name"], "read");
    assert_eq!(main["children"][0]["count"], 200);
    assert_eq!(main["children"][0]["children"][0]["count"], 200);
}

#[test]
fn deep_chains_do_not_overflow() {
    const DEPTH: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.db");
    record(&path, || {
        let mut guards = Vec::with_capacity(DEPTH);
        for _ in 0..DEPTH {
            guards.push(ferret::span("level"));
        }
        while guards.pop().is_some() {}
    });
    let db = path.to_str().unwrap();
    // Every level nested in the one above: DEPTH openings, then each node's
    // `]}` and the document's.
    let nested = |out: &str| {
        (
            out.matches("{\"name\":\"level\"").count(),
            out.trim_end().ends_with(&"]}".repeat(DEPTH + 1)),
        )
    };
    let out = ferret(&["analyze", db, "--tree", "--format", "json"]);
    assert_eq!(nested(&out), (DEPTH, true));
    let out = ferret(&["calltree", db, "--format", "json"]);
    assert_eq!(nested(&out), (DEPTH, true));
    let text = ferret(&["calltree", db, "--depth", "3"]);
    // 3 levels, the cut (with what it cut), the summary line.
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.contains(&format!("… {} paths below, cut by --max-depth", DEPTH - 3)));
    let text = ferret(&["analyze", db, "--tree"]);
    assert_eq!(text.lines().count(), DEPTH + 2);
}
