//! `analyze --format json --limit 0` streams its rows (issue item 12): on a
//! run with many distinct names its memory is that of the CSV output.

mod support;
use support::*;

#[test]
fn json_summary_of_many_names_costs_what_csv_costs() {
    const NAMES: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("names.db");
    {
        let p = ferret::Profiler::builder(&db)
            .queue_capacity(1 << 16)
            .open()
            .unwrap();
        p.install();
        for i in 0..NAMES {
            drop(ferret::span(format!("name-{i:07}")));
            if i % 4096 == 0 {
                p.flush().unwrap();
            }
        }
        let st = p.close().unwrap();
        assert_eq!(st.dropped_queue, 0);
    }
    let db = s(&db);
    let csv = run(&["analyze", db, "--format", "csv", "--limit", "0"]);
    let json = run(&["analyze", db, "--format", "json", "--limit", "0"]);
    assert_eq!(csv.code, Some(0), "{csv:?}");
    assert_eq!(json.code, Some(0), "{:?}", json.stderr);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["stats"].as_array().unwrap().len(), NAMES);
    assert_eq!(csv.text().lines().count(), NAMES + 1);
    eprintln!(
        "peak RSS: csv {} KB, json {} KB",
        csv.maxrss_kb, json.maxrss_kb
    );
    assert!(
        (json.maxrss_kb as f64) < csv.maxrss_kb as f64 * 1.25 + 8192.0,
        "json {} KB vs csv {} KB",
        json.maxrss_kb,
        csv.maxrss_kb
    );
}
