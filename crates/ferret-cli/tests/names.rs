//! Hostile names and run ids (issue items 9 and 11): ferret-io run ids that
//! JSON escapes are found by their decoded id by every command; control
//! characters in span names keep SVG well-formed and never reach the
//! terminal raw.

mod support;
use support::*;

/// Run ids as Python's `json.dumps` writes them (ensure_ascii).
const IDS: [&str; 4] = ["café-run", "say \"hi\"", "dom\\user", "a/b\u{1b}[2J"];

fn escaped_runs_file(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    fio_schema(&conn, true);
    let mut ts = 1.0;
    for (k, run) in IDS.iter().enumerate() {
        let t0 = 1_700_000_000.0 + k as f64;
        let root = format!("{k}root");
        for (i, (id, parent, name)) in [
            (root.clone(), None, "main"),
            (format!("{k}c1"), Some(root.clone()), "child"),
            (format!("{k}c2"), Some(root.clone()), "child"),
        ]
        .into_iter()
        .enumerate()
        {
            let start = t0 + i as f64 * 0.01;
            let dur = if parent.is_none() { 0.5 } else { 0.005 };
            let row = fio_row(&id, parent.as_deref(), run, name, start, Some(dur));
            // As Python writes it: non-ASCII escaped as \uXXXX.
            let row: String = row
                .chars()
                .map(|c| {
                    if c.is_ascii() {
                        c.to_string()
                    } else {
                        format!("\\u{:04x}", c as u32)
                    }
                })
                .collect();
            conn.execute(
                "INSERT INTO beaver_logs VALUES ('_ferret_trace', ?1, ?2)",
                rusqlite::params![ts, row],
            )
            .unwrap();
            ts += 1.0;
        }
    }
}

#[test]
fn escaped_ferret_io_run_ids_are_found_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ids.db");
    escaped_runs_file(&db);
    let db = s(&db);
    let text = std::fs::read_to_string(db).unwrap_or_default();
    let _ = text;
    let runs = run(&["runs", db, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&runs.ok().stdout).unwrap();
    let listed: Vec<&str> = v["runs"]
        .as_array()
        .or(v.as_array())
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    for id in IDS {
        assert!(listed.contains(&id), "runs lists {id:?}: {listed:?}");
        let a = run(&["analyze", db, "--run", id, "--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&a.ok().stdout).unwrap();
        assert_eq!(v["run_id"], id);
        assert_eq!(v["spans"], 3, "{id:?}");
        let t = run(&["analyze", db, "--run", id, "--tree", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&t.ok().stdout).unwrap();
        assert_eq!(
            v["roots"][0]["children"].as_array().unwrap().len(),
            2,
            "{id:?}"
        );
        let c = run(&["calltree", db, "--run", id, "--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&c.ok().stdout).unwrap();
        assert_eq!(v["spans"], 3, "{id:?}");
        for fmt in ["jsonl", "chrome", "speedscope", "folded", "svg"] {
            let e = run(&["export", db, "--run", id, "--format", fmt, "-o", "-"]);
            assert_eq!(e.code, Some(0), "{id:?} {fmt}: {e:?}");
        }
        assert_eq!(
            run(&["analyze", db, "--run", id, "--format", "csv"]).code,
            Some(0)
        );
    }
    // Text output never carries the raw ESC of the last id.
    for args in [vec!["runs", db], vec!["analyze", db, "--run", IDS[3]]] {
        let o = run(&args);
        assert!(
            !o.stdout.contains(&0x1b),
            "{args:?}: raw ESC in {}",
            o.text()
        );
    }
}

/// Names with control characters, recorded natively and in ferret-io.
const NAMES: [&str; 4] = [
    "bel\u{7}",
    "nul\0byte",
    "esc\u{1b}[31mred\u{1b}]0;title\u{7}",
    "c1\u{9b}2J",
];

fn native_names(path: &std::path::Path) {
    let p = ferret::Profiler::open(path).unwrap();
    p.install();
    {
        let _root = ferret::span("root\u{1b}[1m");
        for n in NAMES {
            let mut g = ferret::span(n.to_owned());
            g.tag("k\u{1b}", "v\u{7}");
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
    p.close().unwrap();
}

fn fio_names(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    fio_schema(&conn, true);
    let t0 = 1_700_000_000.0;
    conn.execute(
        "INSERT INTO beaver_logs VALUES ('_ferret_trace', 0.5, ?1)",
        [fio_row("root", None, "r", "root\u{1b}[1m", t0, Some(1.0))],
    )
    .unwrap();
    for (i, n) in NAMES.iter().enumerate() {
        let start = t0 + 0.1 * (i + 1) as f64;
        conn.execute(
            "INSERT INTO beaver_logs VALUES ('_ferret_trace', ?1, ?2)",
            rusqlite::params![
                1.0 + i as f64,
                fio_row(&format!("c{i}"), Some("root"), "r", n, start, Some(0.05))
            ],
        )
        .unwrap();
    }
}

#[test]
fn control_characters_in_names_keep_svg_well_formed_and_the_terminal_clean() {
    let dir = tempfile::tempdir().unwrap();
    let native = dir.path().join("native.db");
    native_names(&native);
    let fio = dir.path().join("fio.db");
    fio_names(&fio);
    for db in [s(&native), s(&fio)] {
        let svg = dir.path().join("f.svg");
        run(&["flamegraph", db, "-o", s(&svg)]).ok();
        let texts = svg_texts(&std::fs::read_to_string(&svg).unwrap());
        assert!(texts.iter().any(|t| t.contains("bel")), "{db}: names drawn");
        let e = run(&["export", db, "--format", "svg", "-o", "-"]);
        svg_texts(&e.ok().text());
        for args in [
            vec!["analyze", db],
            vec!["analyze", db, "--tree"],
            vec!["calltree", db],
            vec!["runs", db],
        ] {
            let o = run(&args);
            assert_eq!(o.code, Some(0), "{args:?}: {o:?}");
            for bad in [0x1bu8, 0x07, 0x00] {
                assert!(
                    !o.stdout.contains(&bad),
                    "{db} {args:?}: raw control byte {bad:#x} in\n{}",
                    o.text()
                );
            }
            assert!(!o.text().contains('\u{9b}'), "{args:?}: raw C1 CSI");
        }
        let table = run(&["analyze", db]).text();
        assert!(
            table.contains("bel\\x07"),
            "{db}: escaped visibly:\n{table}"
        );
        // Machine formats keep the exact names.
        let j = run(&["analyze", db, "--format", "json", "--limit", "0"]);
        let v: serde_json::Value = serde_json::from_slice(&j.ok().stdout).unwrap();
        let names: Vec<&str> = v["stats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        for n in NAMES {
            assert!(names.contains(&n), "{db}: {n:?} in {names:?}");
        }
    }
}
