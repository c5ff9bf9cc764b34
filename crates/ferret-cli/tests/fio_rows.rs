//! ferret-io rows whatever their timestamps (issue item 13): ties read in
//! full, non-numeric timestamps counted, duplicate span ids handled.

mod support;
use support::*;

fn analyze_json(db: &str) -> serde_json::Value {
    let o = run(&["analyze", db, "--format", "json", "--limit", "0"]);
    serde_json::from_slice(&o.ok().stdout).unwrap()
}

#[test]
fn ten_thousand_rows_with_one_timestamp_are_all_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ties.db");
    let mut conn = rusqlite::Connection::open(&db).unwrap();
    fio_schema(&conn, false);
    let tx = conn.transaction().unwrap();
    for i in 0..10_000 {
        let row = fio_row(
            &format!("s{i}"),
            None,
            "r",
            "tick",
            1_700_000_000.0,
            Some(0.001),
        );
        tx.execute(
            "INSERT INTO beaver_logs VALUES ('_ferret_trace', 1700000000.0, ?1)",
            [row],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    drop(conn);
    let db = s(&db);
    let v = analyze_json(db);
    assert_eq!(v["spans"], 10_000, "{}", v["spans"]);
    assert_eq!(v["skipped_rows"], 0);
    assert_eq!(v["stats"][0]["count"], 10_000);
    let ct: serde_json::Value =
        serde_json::from_slice(&run(&["calltree", db, "--format", "json"]).ok().stdout).unwrap();
    assert_eq!(ct["spans"], 10_000);
}

#[test]
fn rows_with_null_or_text_timestamps_are_counted_never_dropped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("odd-ts.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    // BeaverDB's table without NOT NULL: any timestamp goes.
    conn.execute_batch(
        "CREATE TABLE beaver_logs (log_name TEXT, timestamp, data TEXT);
         CREATE INDEX idx_logs_timestamp ON beaver_logs (log_name, timestamp);",
    )
    .unwrap();
    let t0 = 1_700_000_000.0;
    let ts = [
        "1700000000.0",
        "NULL",
        "'not a time'",
        "1700000001.0",
        "x'01'",
        "NULL",
    ];
    for (i, t) in ts.iter().enumerate() {
        let row = fio_row(&format!("s{i}"), None, "r", "x", t0 + i as f64, Some(0.01));
        conn.execute(
            &format!("INSERT INTO beaver_logs VALUES ('_ferret_trace', {t}, ?1)"),
            [row],
        )
        .unwrap();
    }
    // Another run's row with a NULL timestamp is not this run's loss.
    conn.execute(
        "INSERT INTO beaver_logs VALUES ('_ferret_trace', NULL, ?1)",
        [fio_row("o", None, "other", "x", t0, Some(0.01))],
    )
    .unwrap();
    drop(conn);
    let v = analyze_json(s(&db));
    assert_eq!(v["spans"], 2);
    assert_eq!(v["skipped_rows"], 4, "{v}");
    let runs: serde_json::Value =
        serde_json::from_slice(&run(&["runs", s(&db), "--format", "json"]).ok().stdout).unwrap();
    let r = runs
        .as_array()
        .or(runs["runs"].as_array())
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "r")
        .unwrap()
        .clone();
    assert_eq!(
        r["spans"].as_u64().unwrap(),
        v["spans"].as_u64().unwrap() + v["skipped_rows"].as_u64().unwrap(),
        "runs and analyze agree"
    );
}

#[test]
fn duplicate_span_ids_show_each_root_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dups.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    fio_schema(&conn, true);
    let t0 = 1_700_000_000.0;
    // Two traces whose roots share the id "root" (and children "c").
    let rows = [
        fio_row("root", None, "r", "first", t0, Some(1.0)),
        fio_row("c", Some("root"), "r", "first_child", t0 + 0.1, Some(0.5)),
        fio_row("root", None, "r", "second", t0 + 2.0, Some(2.0)),
        fio_row("c", Some("root"), "r", "second_child", t0 + 2.1, Some(1.5)),
    ];
    for (i, r) in rows.iter().enumerate() {
        conn.execute(
            "INSERT INTO beaver_logs VALUES ('_ferret_trace', ?1, ?2)",
            rusqlite::params![t0 + i as f64, r],
        )
        .unwrap();
    }
    drop(conn);
    let o = run(&["analyze", s(&db), "--tree", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.ok().stdout).unwrap();
    let roots = v["roots"].as_array().unwrap();
    let names: Vec<&str> = roots.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["second", "first"], "{v}");
    assert_eq!(roots[0]["children"][0]["name"], "second_child");
    assert_eq!(roots[1]["children"][0]["name"], "first_child");
}

#[test]
fn extreme_times_are_counted_consistently_and_never_saturated() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("extreme.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    fio_schema(&conn, true);
    let t0 = 1_700_000_000.0;
    // (timestamp column, start, duration)
    let rows: [(f64, f64, Option<f64>); 6] = [
        (t0, t0, Some(0.5)),                  // ordinary
        (t0 + 1.0, t0 + 1.0, Some(0.25)),     // ordinary
        (1e300, 1e300, Some(1.0)),            // start past i64 ns
        (-1e300, -1e300, Some(1.0)),          // start before it
        (t0 + 2.0, t0 + 2.0, Some(1e300)),    // duration past it
        (f64::INFINITY, t0 + 3.0, Some(0.1)), // +inf timestamp column
    ];
    for (i, (ts, start, dur)) in rows.iter().enumerate() {
        let row = fio_row(&format!("s{i}"), None, "r", "x", *start, *dur);
        conn.execute(
            "INSERT INTO beaver_logs VALUES ('_ferret_trace', ?1, ?2)",
            rusqlite::params![ts, row],
        )
        .unwrap();
    }
    drop(conn);
    let db = s(&db);
    let v = analyze_json(db);
    // Three spans fit (the +inf timestamp row has an ordinary start), three
    // do not and are counted: every stored row is accounted for.
    assert_eq!(v["spans"], 3, "{v}");
    assert_eq!(v["skipped_rows"], 3, "{v}");
    let max = v["stats"][0]["max_s"].as_f64().unwrap();
    assert!((max - 0.5).abs() < 1e-9, "no saturated duration: {v}");
    let runs: serde_json::Value =
        serde_json::from_slice(&run(&["runs", db, "--format", "json"]).ok().stdout).unwrap();
    let listed = runs.as_array().or(runs["runs"].as_array()).unwrap()[0]["spans"]
        .as_u64()
        .unwrap();
    assert_eq!(listed, 6, "runs counts every stored row");
    // speedscope: events in time order in every profile.
    let sp = run(&["export", db, "--format", "speedscope", "-o", "-"]);
    let v: serde_json::Value = serde_json::from_slice(&sp.ok().stdout).unwrap();
    for p in v["profiles"].as_array().unwrap() {
        let ats: Vec<i64> = p["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["at"].as_i64().unwrap())
            .collect();
        assert!(ats.windows(2).all(|w| w[0] <= w[1]), "{ats:?}");
        assert_eq!(ats.len(), 6, "3 spans open and close");
    }
}

/// A service-shaped run of `n` children under one root that stays open,
/// written into `beaver_logs` of the given layout, rows inserted out of
/// start order (the root last, the children in reversed blocks), so that
/// rowids do not follow timestamps. `tie` spans share each timestamp.
fn paged_file(path: &std::path::Path, table: &str, n: usize, tie: usize) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "{table}; CREATE INDEX idx_logs_timestamp ON beaver_logs (log_name, timestamp);"
    ))
    .unwrap();
    let t0 = 1_700_000_000.0;
    let mut rows: Vec<(f64, String)> = (0..n)
        .map(|i| {
            let start = t0 + 1.0 + (i / tie) as f64 * 0.001;
            let name = format!("module_{}.function_{}", i % 7, i % 300);
            let dur = 0.0002 + (i % 5) as f64 * 0.0001;
            (
                start,
                fio_row(&format!("c{i}"), Some("root"), "r", &name, start, Some(dur)),
            )
        })
        .collect();
    for block in rows.chunks_mut(777) {
        block.reverse();
    }
    rows.push((t0, fio_row("root", None, "r", "main_loop", t0, Some(10.0))));
    let tx = conn.transaction().unwrap();
    for (ts, row) in &rows {
        tx.execute(
            "INSERT INTO beaver_logs (log_name, timestamp, data) VALUES ('_ferret_trace', ?1, ?2)",
            rusqlite::params![ts, row],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn pages_join_without_gaps_or_repeats_in_every_table_layout() {
    // Several pages of rows (1,024 a page), keyed by the rowid's timestamp
    // (BeaverDB's unique key), by (timestamp, rowid) where timestamps tie,
    // or by the timestamp column of a table without rowids: every layout
    // reads every span once, in start order, so all print the same.
    let dir = tempfile::tempdir().unwrap();
    let n = 5000;
    let layouts = [
        ("beaver", "CREATE TABLE beaver_logs (log_name TEXT NOT NULL, timestamp REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (log_name, timestamp))", 1),
        ("no-key", "CREATE TABLE beaver_logs (log_name TEXT NOT NULL, timestamp REAL NOT NULL, data TEXT NOT NULL)", 1),
        ("ties", "CREATE TABLE beaver_logs (log_name TEXT NOT NULL, timestamp REAL NOT NULL, data TEXT NOT NULL)", 3),
        ("no-rowid", "CREATE TABLE beaver_logs (log_name TEXT NOT NULL, timestamp REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (log_name, timestamp)) WITHOUT ROWID", 1),
    ];
    let mut outputs = vec![];
    for (label, table, tie) in layouts {
        let db = dir.path().join(format!("{label}.db"));
        paged_file(&db, table, n, tie);
        let db = s(&db);
        let v = analyze_json(db);
        assert_eq!(v["spans"], n + 1, "{label}: {}", v["spans"]);
        assert_eq!(v["skipped_rows"], 0, "{label}");
        let ct: serde_json::Value =
            serde_json::from_slice(&run(&["calltree", db, "--format", "json"]).ok().stdout)
                .unwrap();
        // Every child resolved under the root: it was read first.
        let text = ct.to_string();
        assert!(text.contains("main_loop"), "{label}");
        let out: Vec<Vec<u8>> = [
            vec!["analyze", db, "--format", "json", "--limit", "0"],
            vec!["analyze", db, "--tree", "--format", "json"],
            vec!["calltree", db, "--format", "json"],
        ]
        .iter()
        .map(|a| run(a).ok().stdout.clone())
        .collect();
        outputs.push((label, tie, out));
    }
    // Layouts with the same timestamps print the same (the run's id and
    // file are not in these outputs).
    let (first, rest) = outputs.split_first().unwrap();
    for o in rest.iter().filter(|o| o.1 == first.1) {
        assert!(o.2 == first.2, "{} differs from {}", o.0, first.0);
    }
}
