//! `ferret diff` end to end: mixed file formats, exit codes, every output
//! format, the config file, and bad input.

use ferret_testkit::{fio_row, span, FerretIoFile, NativeFile, TestSpan};
use std::path::{Path, PathBuf};
use std::process::Output;

mod support;
use support::output as ferret;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A deterministic spread in [0, 1).
fn frac(i: u64) -> f64 {
    ((i.wrapping_mul(2_654_435_761) >> 7) % 1000) as f64 / 1000.0
}

/// One request: (name, duration ns) of its 2 db.query and 1 render
/// children; db.query durations are multiplied by `slow`.
fn workload(roots: u64, slow: f64) -> Vec<(u64, Vec<(&'static str, u64)>)> {
    (0..roots)
        .map(|r| {
            let q = |k: u64| (1e6 * (0.8 + 0.4 * frac(r * 3 + k)) * slow) as u64;
            let render = (500e3 * (0.9 + 0.2 * frac(r * 3 + 2))) as u64;
            (
                r,
                vec![("db.query", q(0)), ("db.query", q(1)), ("render", render)],
            )
        })
        .collect()
}

fn native(path: &Path, run: &str, roots: u64, slow: f64) {
    let mut spans: Vec<TestSpan> = vec![];
    let mut id = 1;
    for (r, children) in workload(roots, slow) {
        let start = r as i64 * 10_000_000;
        let child: u64 = children.iter().map(|c| c.1).sum();
        let root = id;
        spans.push(span(
            root,
            0,
            "handle_request",
            start,
            child + 100_000,
            child,
        ));
        id += 1;
        let mut t = start + 50_000;
        for (name, d) in children {
            spans.push(span(id, root, name, t, d, 0));
            id += 1;
            t += d as i64;
        }
    }
    NativeFile::new(run).spans(spans).write(path);
}

fn ferret_io(path: &Path, run: &str, roots: u64, slow: f64) {
    ferret_io_runs(path, &[(run, slow)], roots);
}

/// A ferret-io file holding several runs, one after the other in time.
fn ferret_io_runs(path: &Path, runs: &[(&str, f64)], roots: u64) {
    let mut rows = vec![];
    let mut id = 1;
    for (k, (run, slow)) in runs.iter().enumerate() {
        for (r, children) in workload(roots, *slow) {
            let start = 1.0 + k as f64 * 100.0 + r as f64 * 0.01;
            let child: u64 = children.iter().map(|c| c.1).sum();
            let root = format!("{id:016x}");
            rows.push(fio_row(
                &root,
                None,
                run,
                "handle_request",
                start,
                Some((child + 100_000) as f64 / 1e9),
                "ok",
            ));
            id += 1;
            let mut t = start + 50e-6;
            for (name, d) in children {
                rows.push(fio_row(
                    &format!("{id:016x}"),
                    Some(&root),
                    run,
                    name,
                    t,
                    Some(d as f64 / 1e9),
                    "ok",
                ));
                id += 1;
                t += d as f64 / 1e9;
            }
        }
    }
    FerretIoFile::new().rows(rows).write(path);
}

struct Files {
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

impl Files {
    fn new() -> Files {
        let d = tempfile::tempdir().unwrap();
        Files {
            dir: d.path().to_path_buf(),
            _dir: d,
        }
    }
    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("json: {e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn row<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}"))
}

#[test]
fn ferret_io_base_against_native_candidate_catches_the_slow_name() {
    let f = Files::new();
    let (base, cand) = (f.path("base.db"), f.path("cand.db"));
    ferret_io(Path::new(&base), "py-run", 400, 1.0);
    native(Path::new(&cand), "rs-run", 400, 1.5);
    let o = ferret(&["diff", &base, &cand, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["base"]["format"], "ferret-io");
    assert_eq!(v["candidate"]["format"], "native");
    assert_eq!(v["base"]["run_ids"][0], "py-run");
    assert_eq!(v["candidate"]["run_ids"][0], "rs-run");
    assert_eq!(v["base"]["spans"], 1600);
    assert_eq!(v["by"], "name");
    assert_eq!(v["regressions"], 2, "db.query and its root");
    let q = row(&v, "db.query");
    assert_eq!(q["verdict"], "regressed");
    for side in ["base", "candidate"] {
        for k in [
            "count",
            "calls_per_root",
            "p50_s",
            "p95_s",
            "p99_s",
            "total_s",
            "self_s",
        ] {
            assert!(!q[side][k].is_null() || k == "p99_s", "{side}.{k}");
        }
    }
    assert_eq!(q["base"]["count"], 800);
    assert_eq!(q["base"]["calls_per_root"], 2.0);
    let p50 = q["change"]["p50"].as_f64().unwrap();
    assert!((p50 - 0.5).abs() < 0.03, "p50 change {p50}");
    assert_eq!(q["change"]["calls_per_root"], 0.0);
    assert!(q["flagged"].as_array().unwrap().contains(&"p50".into()));
    // p99 needs 1,000 samples a side: shown, not tested.
    let p99 = q["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["metric"] == "p99")
        .unwrap();
    assert_eq!(p99["outcome"], "too_few_samples");
    assert_eq!(row(&v, "render")["verdict"], "~");
    // The root got slower by the same absolute amount, ~+45%.
    assert_eq!(row(&v, "handle_request")["verdict"], "regressed");
    // Self times of the ferret-io side come from the resolver.
    let self_s = row(&v, "handle_request")["base"]["self_s"]
        .as_f64()
        .unwrap();
    assert!((self_s - 400.0 * 100e-6).abs() < 1e-6, "self {self_s}");
    // Call paths resolved from the ferret-io file match the native file's.
    let o = ferret(&["diff", &base, &cand, "--by", "path", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(row(&v, "handle_request;db.query")["verdict"], "regressed");
    assert_eq!(row(&v, "handle_request;render")["verdict"], "~");
    assert_eq!(
        v["rows"].as_array().unwrap().len(),
        3,
        "no new or gone paths"
    );
}

#[test]
fn identical_workloads_exit_zero_in_every_format() {
    let f = Files::new();
    let (base, cand) = (f.path("a.db"), f.path("b.db"));
    native(Path::new(&base), "a", 300, 1.0);
    ferret_io(Path::new(&cand), "b", 300, 1.0);
    let o = ferret(&["diff", &base, &cand]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("db.query") && text.contains("ok: 0 regressed"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colors with NO_COLOR / no TTY");
    for fmt in ["json", "markdown", "junit"] {
        let o = ferret(&["diff", &base, &cand, "--format", fmt]);
        assert_eq!(o.status.code(), Some(0), "{fmt}: {}", stderr(&o));
    }
}

#[test]
fn junit_parses_and_has_a_failure_per_regression() {
    let f = Files::new();
    let (base, cand) = (f.path("a.db"), f.path("b.db"));
    native(Path::new(&base), "a", 400, 1.0);
    native(Path::new(&cand), "b", 400, 1.5);
    let out = f.path("report.xml");
    let o = ferret(&["diff", &base, &cand, "--format", "junit", "-o", &out]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("valid XML");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 3, "one test case per name");
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failed, vec!["handle_request", "db.query"]);
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("failures"), Some("2"));
    let msg = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .and_then(|n| n.attribute("message"))
        .unwrap();
    assert!(msg.contains("p50 +"), "{msg}");
}

#[test]
fn svg_is_a_differential_flame_graph() {
    let f = Files::new();
    let (base, cand) = (f.path("a.db"), f.path("b.db"));
    ferret_io(Path::new(&base), "a", 100, 1.0);
    native(Path::new(&cand), "b", 100, 2.0);
    let out = f.path("diff.svg");
    let o = ferret(&["diff", &base, &cand, "--format", "svg", "-o", &out]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.contains("<svg") && svg.contains("db.query") && svg.contains("ferret diff a → b"));
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(&svg, opts).expect("valid SVG XML");
}

#[test]
fn one_file_compares_its_two_latest_runs_and_by_path_works() {
    let f = Files::new();
    let db = f.path("one.db");
    native(Path::new(&db), "only", 50, 1.0);
    let o = ferret(&["diff", &db]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("only one run"), "{}", stderr(&o));
    let (a, b) = (f.path("a.db"), f.path("b.db"));
    native(Path::new(&a), "a", 300, 1.0);
    native(Path::new(&b), "b", 300, 1.0);
    let o = ferret(&["diff", &a, &b, "--by", "path", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["by"], "path");
    row(&v, "handle_request;db.query");
    row(&v, "handle_request;render");
}

#[test]
fn config_rules_and_flags() {
    let f = Files::new();
    let (base, cand) = (f.path("a.db"), f.path("b.db"));
    native(Path::new(&base), "a", 400, 1.0);
    native(Path::new(&cand), "b", 400, 1.5);
    let cfg = f.path("gate.toml");
    std::fs::write(
        &cfg,
        "exclude = [\"handle_*\"]\n[[rule]]\nname = \"db.*\"\nthreshold = \"80%\"\n",
    )
    .unwrap();
    let o = ferret(&["diff", &base, &cand, "--config", &cfg, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["excluded"], 1);
    assert_eq!(row(&v, "db.query")["verdict"], "~");
    // A 5% threshold on the command line still loses to the per-name rule.
    let o = ferret(&["diff", &base, &cand, "--config", &cfg, "--threshold", "5%"]);
    assert_eq!(o.status.code(), Some(0));
    // --min-abs above the change: not flagged.
    let o = ferret(&["diff", &base, &cand, "--min-abs", "1s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(&cfg, "threshold = \"lots\"\n").unwrap();
    let o = ferret(&["diff", &base, &cand, "--config", &cfg]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("gate.toml"), "{}", stderr(&o));
}

#[test]
fn new_and_gone_names_fail_only_when_asked() {
    let f = Files::new();
    let (base, cand) = (f.path("a.db"), f.path("b.db"));
    native(Path::new(&base), "a", 100, 1.0);
    NativeFile::new("b")
        .spans((0..100u64).map(|i| span(i + 1, 0, "brand_new", i as i64 * 1000, 900, 0)))
        .write(Path::new(&cand));
    let o = ferret(&["diff", &base, &cand, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(row(&v, "brand_new")["verdict"], "new");
    assert_eq!(row(&v, "db.query")["verdict"], "gone");
    assert!(row(&v, "brand_new")["base"]["p50_s"].is_null());
    assert_eq!(
        ferret(&["diff", &base, &cand, "--fail-on-new"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        ferret(&["diff", &base, &cand, "--fail-on-gone"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn bad_input_exits_two_with_a_clear_message() {
    let f = Files::new();
    let good = f.path("good.db");
    native(Path::new(&good), "r1", 10, 1.0);
    let text = f.path("notes.txt");
    std::fs::write(&text, "not a trace file at all, just some text").unwrap();
    let empty = f.path("empty.db");
    NativeFile::new("r0").write(Path::new(&empty));
    let missing = f.path("missing.db");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["diff", &good, &good, "--run", "nope"], "nope"),
        (vec!["diff", &good, &good, "--base-run", "nope"], "nope"),
        (vec!["diff", &text, &good], "notes.txt"),
        (vec!["diff", &good, &missing], "missing.db"),
        (vec!["diff", &good, &empty], "no spans"),
        (vec!["diff", &good, &good, "--clock", "cpu"], "cpu"),
        (
            vec!["diff", &good, &good, "--threshold", "ten"],
            "threshold",
        ),
        (vec!["diff", &good, &good, "--min-abs", "soon"], "soon"),
        (vec!["diff", &good, &good, "--alpha", "2"], "alpha"),
    ];
    for (args, needle) in cases {
        let o = ferret(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(needle), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{e}");
    }
}

#[test]
fn groups_of_runs_use_the_rank_test_and_one_file_defaults_to_its_two_latest_runs() {
    let f = Files::new();
    let db = f.path("ci.db");
    // Five builds at the old speed, then five with db.query 1.5x slower.
    let runs: Vec<(String, f64)> = (0..10)
        .map(|i| (format!("build-{i}"), if i < 5 { 1.0 } else { 1.5 }))
        .collect();
    let refs: Vec<(&str, f64)> = runs.iter().map(|(r, s)| (r.as_str(), *s)).collect();
    ferret_io_runs(Path::new(&db), &refs, 60);
    let mut args = vec!["diff".to_owned(), db.clone()];
    for (r, _) in &runs[..5] {
        args.extend(["--base-run".to_owned(), r.clone()]);
    }
    for (r, _) in &runs[5..] {
        args.extend(["--run".to_owned(), r.clone()]);
    }
    args.extend(["--format".to_owned(), "json".to_owned()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = ferret(&a);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["method"], "rank_test");
    assert_eq!(v["base"]["run_ids"].as_array().unwrap().len(), 5);
    assert_eq!(row(&v, "db.query")["verdict"], "regressed");
    assert_eq!(row(&v, "render")["verdict"], "~");
    // One file, no runs named: the latest run against the one before it.
    let o = ferret(&["diff", &db, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["base"]["run_ids"][0], "build-8");
    assert_eq!(v["candidate"]["run_ids"][0], "build-9");
    assert_eq!(v["method"], "bootstrap");
}
