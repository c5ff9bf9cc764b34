//! `ferret export` / `ferret flamegraph`: every format checked by a
//! structural validator, on a recorded native file and on ferret-io files.

use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ferret");
const RUN: &str = "x";
/// Spans recorded by [`record`].
const NATIVE_SPANS: usize = 9;

/// Records a small native run: nested sync spans with tags, an error, a
/// name needing escapes, and two async spans overlapping on one thread.
fn record(dir: &Path) -> PathBuf {
    // The profiler is process-global: one recording at a time.
    let _one = ferret_testkit::serial();
    let path = dir.join("native.db");
    let p = ferret::Profiler::builder(&path).run_id(RUN).open().unwrap();
    p.install();
    {
        let mut root = ferret::span("request");
        root.tag("route", "/users");
        {
            let _parse = ferret::span("parse");
            std::thread::sleep(Duration::from_millis(2));
        }
        for table in ["users", "orders"] {
            let _q = ferret::span("db.query").with_tag("table", table);
            std::thread::sleep(Duration::from_millis(1));
        }
        {
            let mut e = ferret::span("weird \"name\";x");
            e.set_error("boom");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // Overlapping, not nested: a starts, b starts, a ends, b ends.
    let a = ferret::start("task_a");
    std::thread::sleep(Duration::from_millis(2));
    let b = ferret::start("task_b");
    {
        let _inner = b.enter();
        let _c = ferret::span("task_b.step");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(1));
    a.end();
    std::thread::sleep(Duration::from_millis(2));
    b.end();
    {
        let _lone = ferret::span("lone");
        std::thread::sleep(Duration::from_millis(1));
    }
    let st = p.close().unwrap();
    assert_eq!(st.accepted as usize, NATIVE_SPANS);
    path
}

/// The ferret-io fixtures, copied so that nothing touches the originals.
fn ferret_io(dir: &Path) -> Vec<PathBuf> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    ["simple.db", "wrapped.db"]
        .iter()
        .map(|f| {
            let to = dir.join(f);
            std::fs::copy(fixtures.join(f), &to).unwrap();
            to
        })
        .collect()
}

fn export(db: &Path, format: &str, extra: &[&str]) -> Vec<u8> {
    let out = Command::new(BIN)
        .arg("export")
        .arg(db)
        .args(["--format", format, "-o", "-"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "export {format} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

// ---- validators ----

/// speedscope's importer rules for evented profiles; returns (opens, frame
/// names).
fn check_speedscope(bytes: &[u8]) -> (usize, Vec<String>) {
    let v: Value = serde_json::from_slice(bytes).expect("speedscope JSON parses");
    assert_eq!(
        v["$schema"],
        "https://www.speedscope.app/file-format-schema.json"
    );
    let frames: Vec<String> = v["shared"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().expect("frame name").to_owned())
        .collect();
    let profiles = v["profiles"].as_array().unwrap();
    assert!(!profiles.is_empty());
    let mut opens = 0;
    for p in profiles {
        assert_eq!(p["type"], "evented");
        assert_eq!(p["unit"], "nanoseconds");
        let start = p["startValue"].as_i64().unwrap();
        let end = p["endValue"].as_i64().unwrap();
        let mut stack: Vec<u64> = vec![];
        let mut last = i64::MIN;
        for e in p["events"].as_array().unwrap() {
            let at = e["at"].as_i64().unwrap();
            let frame = e["frame"].as_u64().unwrap();
            assert!((frame as usize) < frames.len(), "frame index in range");
            assert!(at >= last, "events sorted by at");
            assert!(at >= start && at <= end, "event inside the profile");
            last = at;
            match e["type"].as_str().unwrap() {
                "O" => {
                    opens += 1;
                    stack.push(frame);
                }
                "C" => assert_eq!(stack.pop(), Some(frame), "close matches the top"),
                t => panic!("unknown event type {t}"),
            }
        }
        assert!(stack.is_empty(), "nothing left open");
    }
    (opens, frames)
}

/// Trace Event Format: returns the X events. Checks every event's
/// fields, that every track (pid, tid) is named, and that slices nest on
/// each track: none starts inside another and ends after it (Perfetto
/// mis-draws such slices).
fn check_chrome(bytes: &[u8]) -> Vec<Value> {
    let v: Value = serde_json::from_slice(bytes).expect("chrome JSON parses");
    let events = v["traceEvents"].as_array().unwrap();
    let mut xs = vec![];
    let mut thread_names = HashSet::new();
    let mut x_threads = HashSet::new();
    for e in events {
        match e["ph"].as_str().unwrap() {
            "X" => {
                assert!(e["name"].is_string());
                assert!(e["ts"].is_number());
                assert!(e["dur"].as_f64().unwrap() >= 0.0);
                assert!(e["pid"].is_u64());
                assert!(e["tid"].is_u64());
                assert!(e["args"]["status"].is_string());
                x_threads.insert((e["pid"].as_u64(), e["tid"].as_u64()));
                xs.push(e.clone());
            }
            "M" => match e["name"].as_str().unwrap() {
                "thread_sort_index" => assert!(e["args"]["sort_index"].is_u64()),
                "thread_name" => {
                    assert!(e["args"]["name"].is_string());
                    thread_names.insert((e["pid"].as_u64(), e["tid"].as_u64()));
                }
                "process_name" => assert!(e["args"]["name"].is_string()),
                m => panic!("unexpected metadata {m}"),
            },
            p => panic!("unexpected phase {p}"),
        }
    }
    assert_eq!(x_threads, thread_names, "every track is named");
    check_tracks_nest(&xs);
    xs
}

/// No X slice partially overlaps another on the same (pid, tid) track.
fn check_tracks_nest(xs: &[Value]) {
    // ns from µs with three decimals: exact.
    let ns = |v: &Value| (v.as_f64().unwrap() * 1000.0).round() as i64;
    type Slice = (i64, i64, String);
    let mut by_track: std::collections::HashMap<(u64, u64), Vec<Slice>> = Default::default();
    for e in xs {
        let (ts, dur) = (ns(&e["ts"]), ns(&e["dur"]));
        by_track
            .entry((e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()))
            .or_default()
            .push((ts, ts + dur, e["name"].as_str().unwrap().to_owned()));
    }
    for (track, mut slices) in by_track {
        slices.sort_by_key(|&(s, e, _)| (s, std::cmp::Reverse(e)));
        let mut open: Vec<Slice> = vec![];
        for sl in slices {
            while open.last().is_some_and(|o| o.1 <= sl.0) {
                open.pop();
            }
            if let Some(o) = open.last() {
                assert!(
                    sl.1 <= o.1,
                    "track {track:?}: {} [{}, {}] partially overlaps {} [{}, {}]",
                    sl.2,
                    sl.0,
                    sl.1,
                    o.2,
                    o.0,
                    o.1
                );
            }
            open.push(sl);
        }
    }
}

/// Folded stacks: every line matches the regex; returns (stack, count).
fn check_folded(bytes: &[u8]) -> Vec<(String, u64)> {
    let re = regex::Regex::new(r"^([^;\s][^;\n]*(;[^;\n]+)*) (\d+)$").unwrap();
    let text = std::str::from_utf8(bytes).unwrap();
    assert!(!text.is_empty());
    text.lines()
        .map(|l| {
            let c = re
                .captures(l)
                .unwrap_or_else(|| panic!("bad folded line {l:?}"));
            (c[1].to_owned(), c[3].parse().unwrap())
        })
        .collect()
}

/// SVG: parses as XML; returns every text node.
fn check_svg(bytes: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(bytes).unwrap();
    let doc = roxmltree::Document::parse_with_options(
        text,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("SVG parses as XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter_map(|n| n.text())
        .map(str::to_owned)
        .collect()
}

const JSONL_KEYS: [&str; 12] = [
    "span_id",
    "parent_id",
    "trace_id",
    "name",
    "path_id",
    "start_ns",
    "duration_ns",
    "children_ns",
    "status",
    "tags",
    "pid",
    "tid",
];

fn check_jsonl(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("jsonl line parses");
            for k in JSONL_KEYS {
                assert!(v.get(k).is_some(), "missing {k} in {l}");
            }
            v
        })
        .collect()
}

// ---- native ----

#[test]
fn native_speedscope_splits_overlaps_into_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let db = record(dir.path());
    let (opens, frames) = check_speedscope(&export(&db, "speedscope", &[]));
    assert_eq!(opens, NATIVE_SPANS);
    assert!(frames.iter().any(|f| f == "weird \"name\";x"));
    let v: Value = serde_json::from_slice(&export(&db, "speedscope", &[])).unwrap();
    assert!(
        v["profiles"].as_array().unwrap().len() >= 2,
        "task_a / task_b overlap: a second profile"
    );
    let (_, frames) = check_speedscope(&export(&db, "speedscope", &["--frame-tags", "table"]));
    assert!(frames.iter().any(|f| f == "db.query [table=users]"));
    assert!(frames.iter().any(|f| f == "db.query [table=orders]"));
}

#[test]
fn native_chrome_has_every_span() {
    let dir = tempfile::tempdir().unwrap();
    let db = record(dir.path());
    let xs = check_chrome(&export(&db, "chrome", &[]));
    assert_eq!(xs.len(), NATIVE_SPANS);
    let q = xs.iter().find(|e| e["name"] == "db.query").unwrap();
    assert!(q["args"]["table"].is_string());
    let e = xs.iter().find(|e| e["name"] == "weird \"name\";x").unwrap();
    assert_eq!(e["args"]["status"], "error");
    let req = xs.iter().find(|e| e["name"] == "request").unwrap();
    assert!(req["dur"].as_f64().unwrap() >= 5000.0, "µs");
}

#[test]
fn native_chrome_puts_overlapping_tasks_on_their_own_tracks() {
    let dir = tempfile::tempdir().unwrap();
    let db = record(dir.path());
    let bytes = export(&db, "chrome", &[]);
    let xs = check_chrome(&bytes);
    let track = |name: &str| {
        let e = xs.iter().find(|e| e["name"] == name).unwrap();
        (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap())
    };
    assert_ne!(track("task_a"), track("task_b"), "a and b overlap");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["otherData"]["lane_tracks"], 1);
    let names: Vec<&str> = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("· async lane 1")),
        "{names:?}"
    );
}

/// Records three futures interleaving on one thread (a current-thread
/// tokio runtime), each with sync and async children, plus a task that
/// outlives the others.
fn record_interleaved(dir: &Path) -> (PathBuf, usize) {
    use ferret::InSpanExt;
    let _one = ferret_testkit::serial();
    let path = dir.join("async.db");
    let p = ferret::Profiler::builder(&path).run_id(RUN).open().unwrap();
    p.install();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let task = |i: u64| {
        async move {
            for step in 0..3u64 {
                ferret::measure("cpu", || std::thread::sleep(Duration::from_micros(200)));
                tokio::time::sleep(Duration::from_millis(1 + (i + step) % 3))
                    .in_span("io")
                    .await;
            }
        }
        .in_span("task")
    };
    rt.block_on(async {
        let long = tokio::spawn(task(7));
        tokio::join!(task(0), task(1), task(2));
        long.await.unwrap();
    });
    drop(rt);
    let st = p.close().unwrap();
    (path, st.accepted as usize)
}

#[test]
fn chrome_async_tracks_never_partially_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let (db, spans) = record_interleaved(dir.path());
    // 4 tasks × (1 + 3 cpu + 3 io).
    assert_eq!(spans, 28);
    let bytes = export(&db, "chrome", &[]);
    // check_chrome fails on any partial overlap on a track.
    let xs = check_chrome(&bytes);
    assert_eq!(xs.len(), spans, "every span once");
    let tracks: HashSet<u64> = xs.iter().map(|e| e["tid"].as_u64().unwrap()).collect();
    assert!(tracks.len() >= 2, "interleaved spans on several tracks");
    // Before lanes, the same events on one track overlapped.
    let mut one_track = xs.clone();
    for e in &mut one_track {
        e["tid"] = Value::from(1u64);
    }
    let overlapping = std::panic::catch_unwind(|| check_tracks_nest(&one_track));
    assert!(overlapping.is_err(), "the recording interleaves");
}

#[test]
fn native_folded_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let db = record(dir.path());
    let lines = check_folded(&export(&db, "folded", &[]));
    let stacks: Vec<&str> = lines.iter().map(|(s, _)| s.as_str()).collect();
    assert!(stacks.contains(&"request;db.query"), "{stacks:?}");
    assert!(stacks.contains(&"request;weird \"name\"_x"), "{stacks:?}");
    assert!(stacks.contains(&"task_b;task_b.step"), "{stacks:?}");
    let total: u64 = lines.iter().map(|(_, n)| n).sum();
    assert!(
        total >= 15_000_000,
        "self times add up to the roots: {total}"
    );

    let texts = check_svg(&export(&db, "svg", &[]));
    let all = texts.join("\n");
    assert!(
        all.contains(&format!("ferret run {RUN}")),
        "title names the run"
    );
    assert!(all.contains("db.query"));
    assert!(all.contains("request"));
    assert!(all.contains(" ns, "), "tooltips show time and percentage");
    assert!(all.contains('%'));

    // The shorthand, to a file.
    let out = dir.path().join("flame.svg");
    let st = Command::new(BIN)
        .arg("flamegraph")
        .arg(&db)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    check_svg(&std::fs::read(&out).unwrap());
}

#[test]
fn native_jsonl_has_all_fields() {
    let dir = tempfile::tempdir().unwrap();
    let db = record(dir.path());
    let rows = check_jsonl(&export(&db, "jsonl", &[]));
    assert_eq!(rows.len(), NATIVE_SPANS);
    let q = rows.iter().find(|r| r["name"] == "db.query").unwrap();
    assert!(q["tags"]["table"].is_string());
    assert!(q["parent_id"].is_u64());
    let ids: HashSet<u64> = rows
        .iter()
        .map(|r| r["span_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), NATIVE_SPANS);
}

// ---- ferret-io ----

#[test]
fn ferret_io_every_format() {
    let dir = tempfile::tempdir().unwrap();
    for db in ferret_io(dir.path()) {
        let rows = check_jsonl(&export(&db, "jsonl", &[]));
        assert!(!rows.is_empty());
        let (opens, _) = check_speedscope(&export(&db, "speedscope", &[]));
        assert_eq!(opens, rows.len());
        assert_eq!(check_chrome(&export(&db, "chrome", &[])).len(), rows.len());
        let lines = check_folded(&export(&db, "folded", &[]));
        let texts = check_svg(&export(&db, "svg", &[])).join("\n");
        let leaf = lines[0].0.rsplit(';').next().unwrap();
        assert!(texts.contains(leaf), "SVG has frame {leaf}");
    }
}

#[test]
fn bad_run_is_a_user_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = record(dir.path());
    let out = Command::new(BIN)
        .arg("export")
        .arg(&db)
        .args(["--format", "folded", "--run", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
