//! Test support for the Ferret crates (not published).
//!
//! - [`NativeFile`] writes a native trace file with exactly the spans it is
//!   given (like measureme's `ProfilingDataBuilder`), through the real
//!   schema and block encoder, so that analysis tests need no SQL.
//! - [`FerretIoFile`] writes a ferret-io (BeaverDB) file from raw JSON rows,
//!   malformed ones included; [`fio_row`] makes a well-formed row.
//! - [`serial`] serializes tests that install the process-wide profiler.
//! - [`newer_version_file`] writes a native file of a format version newer
//!   than this Ferret knows.
//! - [`floor::BusyFloorLayer`] is the least a `tracing` layer recording
//!   busy time costs, for benchmarks.
//!
//! It is a crate of its own rather than a feature of `ferret-analyze`:
//! a crate cannot enable its own features for its integration tests, and a
//! feature that silently disables tests under `cargo test -p` is worse than
//! one more dev-dependency.
//!
//! ```
//! use ferret_testkit::{span, NativeFile};
//! let dir = std::env::temp_dir().join(format!("ferret-testkit-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("t.db");
//! NativeFile::new("run-1")
//!     .span(span(1, 0, "root", 0, 100, 60))
//!     .span(span(2, 1, "child", 10, 60, 0))
//!     .write(&path);
//! assert!(path.exists());
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
#![warn(missing_docs)]

pub mod floor;

use ferret_format::codec::{BlockEncoder, SpanHead};
use ferret_format::schema::{FORMAT_VERSION, SCHEMA};
use ferret_format::{Status, TagValue, Tags};
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// A span for [`NativeFile`]: ids, name, times (ns) and status.
#[derive(Debug, Clone)]
pub struct TestSpan {
    /// Span id (non-zero).
    pub id: u64,
    /// Parent span id, 0 for a root. Must point to an earlier span for its
    /// call path to be known.
    pub parent: u64,
    /// Name.
    pub name: String,
    /// Start, ns.
    pub start: i64,
    /// Duration, ns.
    pub dur: u64,
    /// Total duration of the direct children, ns.
    pub child: u64,
    /// Status.
    pub status: Status,
    /// Tags.
    pub tags: Tags,
}

/// A span with status ok and no tags.
pub fn span(id: u64, parent: u64, name: &str, start: i64, dur: u64, child: u64) -> TestSpan {
    TestSpan {
        id,
        parent,
        name: name.to_owned(),
        start,
        dur,
        child,
        status: Status::Ok,
        tags: Tags::new(),
    }
}

impl TestSpan {
    /// The same span with another status.
    pub fn status(mut self, status: Status) -> TestSpan {
        self.status = status;
        self
    }

    /// The same span with one more tag.
    pub fn tag(mut self, key: &str, value: impl Into<TagValue>) -> TestSpan {
        self.tags.push((key.to_owned(), value.into()));
        self
    }
}

/// Builds a native trace file of one run and one process (pid 42, host
/// "h"), all spans in one block, call paths derived from the parent links.
#[derive(Debug, Clone)]
pub struct NativeFile {
    run: String,
    spans: Vec<TestSpan>,
    block_spans: usize,
}

impl NativeFile {
    /// A file whose run id is `run`.
    pub fn new(run: &str) -> NativeFile {
        NativeFile {
            run: run.to_owned(),
            spans: Vec::new(),
            block_spans: usize::MAX,
        }
    }

    /// Stores the spans in blocks of at most `n` spans (default: one block
    /// for all), as a recorder that committed often would.
    pub fn block_spans(mut self, n: usize) -> NativeFile {
        self.block_spans = n.max(1);
        self
    }

    /// Adds a span.
    pub fn span(mut self, s: TestSpan) -> NativeFile {
        self.spans.push(s);
        self
    }

    /// Adds spans.
    pub fn spans(mut self, s: impl IntoIterator<Item = TestSpan>) -> NativeFile {
        self.spans.extend(s);
        self
    }

    /// Writes the file (which must not exist yet). Panics on failure: this
    /// is test support.
    pub fn write(&self, path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        // One transaction: a commit (and its sync) per row made big files slow.
        conn.execute_batch("BEGIN").unwrap();
        conn.execute(
            "INSERT INTO ferret_meta VALUES ('format_version', ?1)",
            [FORMAT_VERSION.to_string()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO ferret_runs (run_key, host, started_ns) VALUES (?1, 'h', 0)",
            [&self.run],
        )
        .unwrap();
        let run_id = conn.last_insert_rowid();
        conn.execute(
            "INSERT INTO ferret_processes (run, pid, host, started_ns) VALUES (?1, 42, 'h', 0)",
            [run_id],
        )
        .unwrap();
        let proc_id = conn.last_insert_rowid();
        let mut path_of = HashMap::new();
        let mut trace_of = HashMap::new();
        let mut enc = BlockEncoder::new();
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        let seal = |enc: BlockEncoder, lo: i64, hi: i64| {
            let n = enc.len() as i64;
            conn.execute(
                "INSERT INTO ferret_blocks (run, process, min_start, max_end, count, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![run_id, proc_id, lo, hi, n, enc.finish()],
            )
            .unwrap();
        };
        for sp in &self.spans {
            if enc.len() as usize >= self.block_spans {
                seal(std::mem::replace(&mut enc, BlockEncoder::new()), lo, hi);
                (lo, hi) = (i64::MAX, i64::MIN);
            }
            let name_id = intern(
                &conn,
                "INSERT OR IGNORE INTO ferret_names (name) VALUES (?1)",
                "SELECT id FROM ferret_names WHERE name = ?1",
                rusqlite::params![sp.name],
            );
            let ppath: i64 = if sp.parent == 0 {
                0
            } else {
                *path_of.get(&sp.parent).unwrap_or(&0)
            };
            let path = intern(
                &conn,
                "INSERT OR IGNORE INTO ferret_paths (parent, name) VALUES (?1, ?2)",
                "SELECT id FROM ferret_paths WHERE parent = ?1 AND name = ?2",
                rusqlite::params![ppath, name_id],
            );
            path_of.insert(sp.id, path);
            let trace = if sp.parent == 0 {
                sp.id
            } else {
                *trace_of.get(&sp.parent).unwrap_or(&sp.parent)
            };
            trace_of.insert(sp.id, trace);
            let head = SpanHead {
                id: sp.id,
                parent: sp.parent,
                trace,
                path: path as u32,
                start_ns: sp.start,
                dur_ns: sp.dur,
                child_ns: sp.child,
                thread: 0,
                error: false,
            };
            enc.push(&head, &sp.status, &sp.tags);
            lo = lo.min(sp.start);
            hi = hi.max(sp.start.saturating_add(sp.dur as i64));
        }
        seal(enc, lo, hi);
        conn.execute_batch("COMMIT").unwrap();
    }
}

/// Inserts a row if new and returns its id.
fn intern(conn: &Connection, insert: &str, select: &str, params: &[&dyn rusqlite::ToSql]) -> i64 {
    conn.execute(insert, params).unwrap();
    conn.query_row(select, params, |r| r.get(0)).unwrap()
}

/// Builds a ferret-io (BeaverDB) file from raw log rows.
#[derive(Debug, Clone, Default)]
pub struct FerretIoFile {
    rows: Vec<String>,
}

impl FerretIoFile {
    /// An empty file.
    pub fn new() -> FerretIoFile {
        FerretIoFile::default()
    }

    /// Adds rows (raw JSON text, written as-is, even if malformed).
    pub fn rows(mut self, rows: impl IntoIterator<Item = String>) -> FerretIoFile {
        self.rows.extend(rows);
        self
    }

    /// Writes the file: the rows under `_ferret_trace` with timestamps
    /// 1.0, 2.0, ... Panics on failure: this is test support.
    pub fn write(&self, path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "CREATE TABLE beaver_logs (log_name TEXT NOT NULL, timestamp REAL NOT NULL, \
               data TEXT NOT NULL, PRIMARY KEY (log_name, timestamp));
             CREATE INDEX idx_logs_timestamp ON beaver_logs (log_name, timestamp);",
        )
        .unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for (i, r) in self.rows.iter().enumerate() {
            conn.execute(
                "INSERT INTO beaver_logs VALUES ('_ferret_trace', ?1, ?2)",
                rusqlite::params![1.0 + i as f64, r],
            )
            .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }
}

/// One well-formed ferret-io span row (times in seconds).
pub fn fio_row(
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

/// Writes at `path` an empty native file (the schema, no runs) whose
/// format version is one newer than this Ferret's: readers and recorders
/// must refuse it.
pub fn newer_version_file(path: &Path) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute(
        "INSERT OR REPLACE INTO ferret_meta (key, value) VALUES ('format_version', ?1)",
        [(FORMAT_VERSION + 1).to_string()],
    )
    .unwrap();
}

/// Serializes the tests of one test binary that install the process-wide
/// profiler (or otherwise need the process to themselves). A test that
/// panicked while holding it does not poison the others.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
