//! Native spans with extreme times (issue item 13): every stored span is
//! counted, durations are not saturated into wrong totals, and speedscope
//! events stay in order.

mod support;
use ferret_testkit::{span, NativeFile};
use support::*;

#[test]
fn native_extreme_times_are_counted_and_exported_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("extreme.db");
    NativeFile::new("r")
        .spans([
            span(1, 0, "ordinary", 1_700_000_000_000_000_000, 500, 0),
            span(2, 0, "early", i64::MIN + 1, 10, 0),
            span(3, 0, "late", i64::MAX - 5, 3, 0),
            span(4, 0, "long", 1_700_000_000_000_000_000, u64::MAX, 0),
        ])
        .write(&db);
    let db = s(&db);
    let runs: serde_json::Value =
        serde_json::from_slice(&run(&["runs", db, "--format", "json"]).ok().stdout).unwrap();
    let stored = runs.as_array().or(runs["runs"].as_array()).unwrap()[0]["spans"]
        .as_u64()
        .unwrap();
    let o = run(&["analyze", db, "--format", "json", "--limit", "0"]);
    let v: serde_json::Value = serde_json::from_slice(&o.ok().stdout).unwrap();
    let read = v["spans"].as_u64().unwrap() + v["skipped_rows"].as_u64().unwrap();
    assert_eq!(stored, 4, "{runs}");
    assert_eq!(v["spans"], 4, "every stored span is counted: {v}");
    assert_eq!(read, stored);
    for cmd in [
        vec!["analyze", db],
        vec!["analyze", db, "--tree"],
        vec!["calltree", db],
        vec!["export", db, "--format", "chrome", "-o", "-"],
        vec!["export", db, "--format", "jsonl", "-o", "-"],
        vec!["export", db, "--format", "folded", "-o", "-"],
    ] {
        let o = run(&cmd);
        assert_eq!(o.code, Some(0), "{cmd:?}: {o:?}");
    }
    let sp = run(&["export", db, "--format", "speedscope", "-o", "-"]);
    let v: serde_json::Value = serde_json::from_slice(&sp.ok().stdout).unwrap();
    let mut events = 0;
    for p in v["profiles"].as_array().unwrap() {
        let ats: Vec<i64> = p["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["at"].as_i64().unwrap())
            .collect();
        assert!(ats.windows(2).all(|w| w[0] <= w[1]), "in order: {ats:?}");
        events += ats.len();
    }
    assert_eq!(events, 8, "every span opens and closes");
}
