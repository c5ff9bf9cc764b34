//! `ferret runs` and `ferret analyze` on a run whose process did not close
//! its profiler (here: still running, its writer left behind), next to a
//! cleanly closed run in the same file.

mod support;
use support::stdout_ok as ferret;

#[test]
fn unclosed_process_shows_as_incomplete() {
    let _one = ferret_testkit::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let db = path.to_str().unwrap();

    let closed = ferret::Profiler::builder(&path)
        .run_id("closed")
        .open()
        .unwrap();
    closed.install();
    drop(ferret::span("done"));
    closed.close().unwrap();

    let open = ferret::Profiler::builder(&path)
        .run_id("open")
        .open()
        .unwrap();
    open.install();
    for _ in 0..3 {
        drop(ferret::span("work"));
    }
    open.flush().unwrap();

    let v: serde_json::Value =
        serde_json::from_str(&ferret(&["runs", db, "--format", "json"])).unwrap();
    let runs = v.as_array().unwrap();
    assert_eq!(runs[0]["run_id"], "closed");
    assert_eq!(runs[0]["complete"], true);
    assert_eq!(runs[1]["run_id"], "open");
    assert_eq!(runs[1]["complete"], false);
    assert_eq!(runs[1]["processes_unclosed"], 1);
    assert_eq!(runs[1]["spans"], 3);
    assert_eq!(runs[1]["shed"], 0);

    let table = ferret(&["runs", db]);
    let open_line = table
        .lines()
        .find(|l| l.contains(" open ") || l.trim_start().starts_with("open"))
        .unwrap();
    assert!(
        open_line.contains("incomplete: 1/1 processes not closed"),
        "{table}"
    );
    let closed_line = table
        .lines()
        .find(|l| l.trim_start().starts_with("closed"))
        .unwrap();
    assert!(closed_line.contains("complete"), "{table}");
    assert!(!closed_line.contains("incomplete"), "{table}");

    let summary = ferret(&["analyze", db, "--run", "open"]);
    assert!(
        summary.contains("incomplete: 1/1 processes not closed"),
        "{summary}"
    );
    let summary = ferret(&["analyze", db, "--run", "closed"]);
    assert!(!summary.contains("incomplete"), "{summary}");

    open.close().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&ferret(&["runs", db, "--format", "json"])).unwrap();
    assert_eq!(v[1]["complete"], true, "closing completes the run: {v}");
}
