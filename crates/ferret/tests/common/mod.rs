//! Builders of small trace files with exactly known contents.
#![allow(dead_code)]

use ferret::store::codec::BlockEncoder;
use ferret::store::schema::{FORMAT_VERSION, SCHEMA};
use ferret::Status;
use rusqlite::Connection;
use std::path::Path;

/// A span for [`native_file`]: (id, parent, name, start_ns, dur_ns, children_ns, status).
pub struct S<'a> {
    pub id: u64,
    pub parent: u64,
    pub name: &'a str,
    pub start: i64,
    pub dur: u64,
    pub child: u64,
    pub status: Status,
}

pub fn s(id: u64, parent: u64, name: &str, start: i64, dur: u64, child: u64) -> S<'_> {
    S {
        id,
        parent,
        name,
        start,
        dur,
        child,
        status: Status::Ok,
    }
}

/// Writes a native file with one run `run` holding `spans` (paths are
/// derived from the parent links, which must point to earlier spans).
pub fn native_file(path: &Path, run: &str, spans: &[S]) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute(
        "INSERT INTO ferret_meta VALUES ('format_version', ?1)",
        [FORMAT_VERSION.to_string()],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO ferret_runs (run_key, host, started_ns) VALUES (?1, 'h', 0)",
        [run],
    )
    .unwrap();
    let run_id = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO ferret_processes (run, pid, host, started_ns) VALUES (?1, 42, 'h', 0)",
        [run_id],
    )
    .unwrap();
    let proc_id = conn.last_insert_rowid();
    let mut path_of = std::collections::HashMap::new();
    let mut trace_of = std::collections::HashMap::new();
    let mut enc = BlockEncoder::new();
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for sp in spans {
        conn.execute(
            "INSERT OR IGNORE INTO ferret_names (name) VALUES (?1)",
            [sp.name],
        )
        .unwrap();
        let name_id: i64 = conn
            .query_row(
                "SELECT id FROM ferret_names WHERE name = ?1",
                [sp.name],
                |r| r.get(0),
            )
            .unwrap();
        let ppath: i64 = if sp.parent == 0 {
            0
        } else {
            *path_of.get(&sp.parent).unwrap_or(&0)
        };
        conn.execute(
            "INSERT OR IGNORE INTO ferret_paths (parent, name) VALUES (?1, ?2)",
            [ppath, name_id],
        )
        .unwrap();
        let path: i64 = conn
            .query_row(
                "SELECT id FROM ferret_paths WHERE parent = ?1 AND name = ?2",
                [ppath, name_id],
                |r| r.get(0),
            )
            .unwrap();
        path_of.insert(sp.id, path);
        let trace = if sp.parent == 0 {
            sp.id
        } else {
            *trace_of.get(&sp.parent).unwrap_or(&sp.parent)
        };
        trace_of.insert(sp.id, trace);
        let no_tags: &[(String, ferret::TagValue)] = &[];
        enc.push(
            sp.id,
            sp.parent,
            trace,
            path as u32,
            sp.start,
            sp.dur,
            sp.child,
            0,
            &sp.status,
            no_tags,
        );
        lo = lo.min(sp.start);
        hi = hi.max(sp.start + sp.dur as i64);
    }
    let n = enc.len() as i64;
    conn.execute(
        "INSERT INTO ferret_blocks (run, process, min_start, max_end, count, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![run_id, proc_id, lo, hi, n, enc.finish()],
    )
    .unwrap();
}

/// Writes a ferret-io (BeaverDB) file whose log rows are `rows` (raw JSON
/// text, written as-is, even if malformed), timestamps 1.0, 2.0, ...
pub fn ferret_io_file(path: &Path, rows: &[String]) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE beaver_logs (log_name TEXT NOT NULL, timestamp REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (log_name, timestamp));
         CREATE INDEX idx_logs_timestamp ON beaver_logs (log_name, timestamp);",
    )
    .unwrap();
    for (i, r) in rows.iter().enumerate() {
        conn.execute(
            "INSERT INTO beaver_logs VALUES ('_ferret_trace', ?1, ?2)",
            rusqlite::params![1.0 + i as f64, r],
        )
        .unwrap();
    }
}

/// One ferret-io JSON span.
pub fn fio(
    id: &str,
    parent: Option<&str>,
    run: &str,
    name: &str,
    start: f64,
    dur: Option<f64>,
    status: &str,
) -> String {
    serde_json::json!({
        "span_id": id, "parent_id": parent, "run_id": run, "name": name,
        "start_time": start, "end_time": dur.map(|d| start + d), "duration": dur,
        "tags": {}, "status": status,
    })
    .to_string()
}

/// A span read back from a file, with its name resolved.
#[derive(Debug)]
pub struct Rec {
    pub name: String,
    pub id: u64,
    pub parent: Option<u64>,
    pub status: ferret::Status,
    pub tags: Vec<(String, ferret::TagValue)>,
    pub dur: u64,
    /// Total duration of direct children, as recorded (self time = dur - this).
    pub children: u64,
    /// Start, ns since the UNIX epoch.
    pub start: i64,
}

impl Rec {
    pub fn tag(&self, k: &str) -> Option<&ferret::TagValue> {
        self.tags.iter().find(|(key, _)| key == k).map(|(_, v)| v)
    }
}

/// Every span of `run` in the file, tags included.
pub fn read_back(path: &Path, run: &str) -> Vec<Rec> {
    let store = ferret::store::Store::open(path).unwrap();
    let q = ferret::store::SpanQuery {
        with_tags: true,
        ..Default::default()
    };
    let mut spans = store.spans(run, &q).unwrap();
    let mut v = vec![];
    while let Some(r) = spans.next() {
        v.push(Rec {
            name: spans.name(r.name).to_string(),
            id: r.span_id,
            parent: r.parent_id,
            status: r.status.clone(),
            tags: r.tags.clone(),
            dur: r.duration_ns.unwrap_or(0),
            children: r.children_ns.unwrap_or(0),
            start: r.start_ns,
        });
    }
    v
}

/// The first span named `name`.
pub fn find<'a>(v: &'a [Rec], name: &str) -> &'a Rec {
    v.iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {v:#?}"))
}

/// Every span named `name`.
pub fn all<'a>(v: &'a [Rec], name: &str) -> Vec<&'a Rec> {
    v.iter().filter(|r| r.name == name).collect()
}
