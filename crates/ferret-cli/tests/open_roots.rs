//! Open and lost roots (issue item 10): a live file, whose root span is
//! still open, or a file whose root was lost in a crash, gives a useful
//! `--tree` with that root shown as open or lost, and real `calltree`
//! percentages.

mod support;
use support::*;

#[test]
fn a_live_native_file_shows_its_open_root_and_real_percentages() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let p = ferret::Profiler::open(&db).unwrap();
    p.install();
    let root = ferret::span("main");
    for i in 0..5 {
        let _c = ferret::span("step");
        std::thread::sleep(std::time::Duration::from_millis(2 + i));
        drop(ferret::span("leaf"));
    }
    p.flush().unwrap();
    // The root is still open: it is not in the file, its children are.
    let db = s(&db);
    let o = run(&["analyze", db, "--tree", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.ok().stdout).unwrap();
    let roots = v["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 1, "{v}");
    assert_eq!(roots[0]["name"], "main");
    assert_eq!(roots[0]["missing"], true);
    assert_eq!(roots[0]["children"].as_array().unwrap().len(), 5);
    assert!(roots[0]["duration_s"].as_f64().unwrap() >= 0.02);
    let text = run(&["analyze", db, "--tree"]).text();
    assert!(text.contains("main - ≥"), "{text}");
    assert!(text.contains("open or lost"), "{text}");
    assert_eq!(
        text.matches("├── step").count() + text.matches("└── step").count(),
        5
    );

    let ct = run(&["calltree", db, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&ct.ok().stdout).unwrap();
    let main = &v["roots"][0];
    assert_eq!(main["name"], "main");
    assert_eq!(main["count"], 0);
    assert!(
        (main["percent"].as_f64().unwrap() - 100.0).abs() < 1e-9,
        "{v}"
    );
    let step = &main["children"][0];
    assert!(step["percent"].as_f64().unwrap() > 99.0, "{v}");
    let text = run(&["calltree", db]).text();
    let step_line = text.lines().find(|l| l.contains("step ×5")).unwrap();
    assert!(step_line.contains("(100.0%)"), "{text}");
    drop(root);
    p.close().unwrap();
    // Closed: the root is there, nothing is missing.
    let v: serde_json::Value = serde_json::from_slice(
        &run(&["analyze", db, "--tree", "--format", "json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert!(v["roots"][0].get("missing").is_none(), "{v}");
}

#[test]
fn a_ferret_io_root_without_end_keeps_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("open.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    fio_schema(&conn, true);
    let t0 = 1_700_000_000.0;
    let rows = [
        fio_row("root", None, "r", "main", t0, None),
        fio_row("a", Some("root"), "r", "work", t0 + 0.1, Some(0.2)),
        fio_row("b", Some("root"), "r", "work", t0 + 0.4, Some(0.2)),
    ];
    for (i, r) in rows.iter().enumerate() {
        conn.execute(
            "INSERT INTO beaver_logs VALUES ('_ferret_trace', ?1, ?2)",
            rusqlite::params![t0 + i as f64 * 0.1, r],
        )
        .unwrap();
    }
    drop(conn);
    let db = s(&db);
    let v: serde_json::Value = serde_json::from_slice(
        &run(&["analyze", db, "--tree", "--format", "json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(v["roots"][0]["name"], "main");
    assert_eq!(
        v["roots"][0]["children"].as_array().unwrap().len(),
        2,
        "{v}"
    );
    let ct: serde_json::Value =
        serde_json::from_slice(&run(&["calltree", db, "--format", "json"]).ok().stdout).unwrap();
    let work = &ct["roots"][0]["children"][0];
    assert_eq!(work["name"], "work");
    assert!(
        (work["percent"].as_f64().unwrap() - 100.0).abs() < 1e-6,
        "{ct}"
    );
}
