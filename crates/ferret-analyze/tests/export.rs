//! The exporters as library code: each writes a run to any `impl Write`,
//! from a file built with exactly known spans, and the output is checked
//! by an independent parser (serde_json, roxmltree) against those spans.

use ferret_analyze::analysis::Query;
use ferret_analyze::export::{self, Format, Options};
use ferret_analyze::store::Store;
use ferret_analyze::Status;
use ferret_testkit::{fio_row, span, FerretIoFile, NativeFile};
use serde_json::Value;
use std::path::Path;

/// root (0..1000 ns) with two children, one an error with a tag.
fn native(dir: &Path) -> Store {
    let path = dir.join("n.db");
    NativeFile::new("r")
        .span(span(1, 0, "root", 1_000, 1_000, 700))
        .span(span(2, 1, "db.query", 1_100, 300, 0).tag("table", "users"))
        .span(span(3, 1, "render", 1_500, 400, 0).status(Status::Error))
        .write(&path);
    Store::open(&path).unwrap()
}

fn export(store: &Store, format: Format) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let opts = Options {
        query: Query::run("r"),
        ..Options::default()
    };
    let done = export::write(store, &opts, format, &mut out).unwrap();
    assert_eq!(done.run, "r");
    (out, done.spans)
}

#[test]
fn jsonl_has_one_object_per_span_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let (out, n) = export(&native(dir.path()), Format::Jsonl);
    assert_eq!(n, 3);
    let lines: Vec<Value> = std::str::from_utf8(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let q = lines.iter().find(|l| l["name"] == "db.query").unwrap();
    assert_eq!(q["span_id"], 2);
    assert_eq!(q["parent_id"], 1);
    assert_eq!(q["duration_ns"], 300);
    assert_eq!(q["tags"]["table"], "users");
    let r = lines.iter().find(|l| l["name"] == "render").unwrap();
    assert_eq!(r["status"], "error");
    let root = lines.iter().find(|l| l["name"] == "root").unwrap();
    assert_eq!(root["parent_id"], Value::Null);
    assert_eq!(root["children_ns"], 700);
}

#[test]
fn chrome_events_are_complete_slices_in_microseconds() {
    let dir = tempfile::tempdir().unwrap();
    let (out, n) = export(&native(dir.path()), Format::Chrome);
    assert_eq!(n, 3);
    let v: Value = serde_json::from_slice(&out).unwrap();
    let events = v["traceEvents"].as_array().unwrap();
    let x: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(x.len(), 3);
    let q = x.iter().find(|e| e["name"] == "db.query").unwrap();
    // µs relative to the run's first span (at 1,000 ns).
    assert_eq!(q["ts"].as_f64().unwrap(), 0.1);
    assert_eq!(q["dur"].as_f64().unwrap(), 0.3);
    assert!(events.iter().any(|e| e["ph"] == "M"));
}

#[test]
fn folded_stacks_carry_self_time_per_path() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = export(&native(dir.path()), Format::Folded);
    let text = String::from_utf8(out).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["root 300", "root;db.query 300", "root;render 400"],
        "{text}"
    );
}

#[test]
fn svg_is_well_formed_xml_naming_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = export(&native(dir.path()), Format::Svg);
    let text = String::from_utf8(out).unwrap();
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true, // inferno writes a DOCTYPE
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, opts).unwrap();
    let titles: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("title"))
        .filter_map(|n| n.text())
        .collect();
    for name in ["root", "db.query", "render"] {
        assert!(
            titles.iter().any(|t| t.starts_with(name)),
            "{name}: {titles:?}"
        );
    }
}

#[test]
fn speedscope_opens_and_closes_every_span() {
    let dir = tempfile::tempdir().unwrap();
    let (out, n) = export(&native(dir.path()), Format::Speedscope);
    let v: Value = serde_json::from_slice(&out).unwrap();
    let frames = v["shared"]["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 3);
    let events: usize = v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["events"].as_array().unwrap().len())
        .sum();
    assert_eq!(events as u64, 2 * n);
}

#[test]
fn ferret_io_files_export_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    FerretIoFile::new()
        .rows([
            fio_row("a", None, "r", "root", 1.0, Some(1.0), "ok"),
            fio_row("b", Some("a"), "r", "child", 1.25, Some(0.5), "ok"),
        ])
        .write(&path);
    let store = Store::open(&path).unwrap();
    let (out, n) = export(&store, Format::Folded);
    assert_eq!(n, 2);
    let text = String::from_utf8(out).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines, ["root 500000000", "root;child 500000000"]);
}

/// A writer that fails after some bytes: the export stops with the error
/// instead of reading on.
#[test]
fn a_failing_writer_ends_the_export_with_its_error() {
    struct Fails(usize);
    impl std::io::Write for Fails {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 < b.len() {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = native(dir.path());
    for format in [Format::Jsonl, Format::Chrome, Format::Folded] {
        let opts = Options {
            query: Query::run("r"),
            ..Options::default()
        };
        let err = export::write(&store, &opts, format, &mut Fails(40)).unwrap_err();
        assert!(err.to_string().contains("disk full"), "{format:?}: {err}");
    }
}

/// A slice in ns: (start, end, name).
type Slice = (i64, i64, String);

/// Slices per Chrome track (pid, tid).
fn chrome_tracks(out: &[u8]) -> std::collections::BTreeMap<(u64, u64), Vec<Slice>> {
    let v: Value = serde_json::from_slice(out).unwrap();
    let mut tracks: std::collections::BTreeMap<_, Vec<_>> = Default::default();
    for e in v["traceEvents"].as_array().unwrap() {
        if e["ph"] != "X" {
            continue;
        }
        let ns = |x: &Value| (x.as_f64().unwrap() * 1000.0).round() as i64;
        let ts = ns(&e["ts"]);
        tracks
            .entry((e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()))
            .or_default()
            .push((
                ts,
                ts + ns(&e["dur"]),
                e["name"].as_str().unwrap().to_owned(),
            ));
    }
    tracks
}

/// True when no slice starts inside another on its track and ends after it.
fn nests(slices: &[Slice]) -> bool {
    let mut v = slices.to_vec();
    v.sort_by_key(|&(s, e, _)| (s, std::cmp::Reverse(e)));
    let mut open: Vec<i64> = vec![];
    for (s, e, _) in v {
        while open.last().is_some_and(|&end| end <= s) {
            open.pop();
        }
        if open.last().is_some_and(|&end| e > end) {
            return false;
        }
        open.push(e);
    }
    true
}

/// Async tasks interleaving on one thread: `a` and `b` overlap without
/// nesting, `c` overlaps both; each has a child.
#[test]
fn chrome_places_interleaved_spans_on_async_lane_tracks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("async.db");
    NativeFile::new("r")
        .span(span(1, 0, "a", 1_000, 50, 20))
        .span(span(2, 1, "a.step", 1_010, 20, 0))
        .span(span(3, 0, "b", 1_020, 60, 15))
        .span(span(4, 3, "b.step", 1_060, 15, 0))
        .span(span(5, 0, "c", 1_040, 60, 0))
        .span(span(6, 0, "later", 2_000, 10, 0))
        .write(&path);
    let store = Store::open(&path).unwrap();
    let all_on_one: Vec<_> = {
        let (out, _) = export(&store, Format::Jsonl);
        std::str::from_utf8(&out)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let s = v["start_ns"].as_i64().unwrap();
                (s, s + v["duration_ns"].as_i64().unwrap(), String::new())
            })
            .collect()
    };
    assert!(!nests(&all_on_one), "the spans interleave on their thread");

    let (out, n) = export(&store, Format::Chrome);
    assert_eq!(n, 6);
    let tracks = chrome_tracks(&out);
    assert_eq!(tracks.len(), 3, "{tracks:?}");
    for (t, slices) in &tracks {
        assert!(nests(slices), "track {t:?}: {slices:?}");
    }
    assert_eq!(tracks.values().map(Vec::len).sum::<usize>(), 6);
    let track_of = |name: &str| {
        tracks
            .iter()
            .find(|(_, v)| v.iter().any(|s| s.2 == name))
            .map(|(t, _)| *t)
            .unwrap()
    };
    // The thread's own track keeps the first task; b and c get lanes.
    assert_eq!(track_of("a"), track_of("a.step"));
    assert_eq!(track_of("a"), track_of("later"));
    assert_ne!(track_of("a"), track_of("b"));
    assert_ne!(track_of("b"), track_of("c"));
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["otherData"]["lane_tracks"], 2);
    let lane_names: Vec<&str> = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .filter_map(|e| e["args"]["name"].as_str())
        .filter(|n| n.contains("async lane"))
        .collect();
    assert_eq!(lane_names.len(), 2, "{lane_names:?}");
}
