//! The live tables of a native file: heartbeats of the recording
//! processes, the latest snapshot of their open spans, and stall reports
//! (see docs/FORMAT.md, "Live tables").
//!
//! Every function returns an empty list for a file without those tables
//! (written before they existed, or by ferret-io) and skips rows it cannot
//! read (a damaged file). `run` narrows the result to one run (an unknown
//! run is an error naming a few known ones).
//!
//! ```no_run
//! use ferret_analyze::store::{live, Store};
//! let store = Store::open("ferret.db")?;
//! let now = live::now_ns();
//! for hb in live::heartbeats(&store, None)? {
//!     println!("pid {} {:?}", hb.pid, hb.state(now));
//! }
//! for s in live::inflight(&store, None)? {
//!     println!("{:>2} {} open {} ns", s.depth, s.name, s.open_ns());
//! }
//! # Ok::<(), ferret_analyze::Error>(())
//! ```

use super::{FileKind, Store};
use crate::error::Result;
use rusqlite::{Connection, OptionalExtension, Row};
use serde::Serialize;

/// A heartbeat is stale when it is older than this many intervals.
pub const STALE_INTERVALS: i64 = 3;

/// What a process's heartbeat says about it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    /// Beating: its last heartbeat is recent.
    Running,
    /// Closed its profiler cleanly.
    Closed,
    /// No heartbeat for more than [`STALE_INTERVALS`] intervals and no
    /// clean close: hung, killed or crashed.
    Stale,
}

impl ProcessState {
    /// "running", "closed" or "stale".
    pub fn as_str(&self) -> &'static str {
        match self {
            ProcessState::Running => "running",
            ProcessState::Closed => "closed",
            ProcessState::Stale => "stale",
        }
    }
}

/// The last heartbeat of one recording process (`ferret_heartbeats`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heartbeat {
    /// The run id.
    pub run_id: String,
    /// The process's row id (`ferret_processes.id`).
    pub process: i64,
    /// OS process id.
    pub pid: u32,
    /// Host name.
    pub host: Option<String>,
    /// Command line, arguments separated by spaces.
    pub cmdline: Option<String>,
    /// When the process opened its profiler (ns since the epoch).
    pub started_ns: i64,
    /// Time of the last heartbeat (ns since the epoch).
    pub beat_ns: i64,
    /// The configured heartbeat interval (ns).
    pub interval_ns: i64,
    /// CPU time of the process (user + system, ns), if known.
    pub cpu_ns: Option<i64>,
    /// Resident memory in bytes, if known.
    pub rss_bytes: Option<i64>,
    /// Threads of the process, if known.
    pub threads: Option<i64>,
    /// Spans the recorder had accepted at the last heartbeat.
    pub spans_accepted: u64,
    /// Spans it had dropped (full queue, write errors).
    pub dropped: u64,
    /// When the process closed its profiler, if it did.
    pub ended_ns: Option<i64>,
}

impl Heartbeat {
    /// Age of the last heartbeat at `now_ns`.
    pub fn age_ns(&self, now_ns: i64) -> i64 {
        now_ns.saturating_sub(self.beat_ns)
    }

    /// Running, closed, or stale (older than [`STALE_INTERVALS`]
    /// intervals without a clean close) at `now_ns`.
    pub fn state(&self, now_ns: i64) -> ProcessState {
        if self.ended_ns.is_some() {
            ProcessState::Closed
        } else if self.age_ns(now_ns) > self.interval_ns.saturating_mul(STALE_INTERVALS) {
            ProcessState::Stale
        } else {
            ProcessState::Running
        }
    }
}

/// One open span of the latest snapshot of its process (`ferret_inflight`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InFlightSpan {
    /// The run id.
    pub run_id: String,
    /// The process's row id.
    pub process: i64,
    /// OS process id.
    pub pid: u32,
    /// When the snapshot was taken (ns since the epoch).
    pub snapshot_ns: i64,
    /// Thread index in the process; `None` for a span no thread has
    /// entered (an awaiting future).
    pub thread: Option<u32>,
    /// The thread's OS id, when known.
    pub tid: Option<u64>,
    /// The thread's name, when it has one.
    pub thread_name: Option<String>,
    /// 0 for the outermost open span of its thread (or chain of waiting spans).
    pub depth: u32,
    /// Span id.
    pub span_id: u64,
    /// Parent span id (`None` for a root).
    pub parent_id: Option<u64>,
    /// Trace id.
    pub trace_id: Option<u64>,
    /// Span name.
    pub name: String,
    /// Start (ns since the epoch).
    pub start_ns: i64,
    /// True if a thread has it entered (busy); false if it awaits (idle).
    pub entered: bool,
    /// Tags as a JSON object, as far as they were published.
    pub tags: Option<serde_json::Value>,
}

impl InFlightSpan {
    /// How long it had been open when the snapshot was taken.
    pub fn open_ns(&self) -> i64 {
        self.snapshot_ns.saturating_sub(self.start_ns)
    }
}

/// One span of a stalled stack.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StallFrame {
    /// Span name.
    pub name: String,
    /// How long it had been open at the report (ns).
    pub open_ns: i64,
    /// Its tags (a JSON object), if any were published.
    #[serde(default)]
    pub tags: Option<serde_json::Value>,
}

/// One stall report (`ferret_stalls`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StallReport {
    /// The run id.
    pub run_id: String,
    /// The report's row id (reports of a file are numbered in order).
    pub id: i64,
    /// The process's row id.
    pub process: i64,
    /// OS process id.
    pub pid: u32,
    /// Thread index, for a busy span.
    pub thread: Option<u32>,
    /// The thread's OS id.
    pub tid: Option<u64>,
    /// The thread's name.
    pub thread_name: Option<String>,
    /// The stalled span's id.
    pub span_id: u64,
    /// Its name.
    pub name: String,
    /// True if a thread had it entered; false if it was awaiting.
    pub busy: bool,
    /// Its threshold (ns).
    pub threshold_ns: i64,
    /// How long it had been open (ns).
    pub open_ns: i64,
    /// When the report was made (ns since the epoch).
    pub reported_ns: i64,
    /// "stall" or "recovered".
    pub kind: String,
    /// The stack, outermost first, down to the stalled span.
    pub stack: Vec<StallFrame>,
}

/// The wall clock now, in ns since the epoch (the clock of every time in
/// these tables).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64)
}

fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// The connection, if the file is native and has `table`; checks `run`.
fn source<'a>(store: &'a Store, table: &str, run: Option<&str>) -> Result<Option<&'a Connection>> {
    if store.kind != FileKind::Native {
        return Ok(None);
    }
    if let Some(r) = run {
        store.check_run(r)?;
    }
    Ok(has_table(&store.conn, table)?.then_some(&store.conn))
}

/// Collects the rows `f` can read; skips the others.
fn collect<T>(
    conn: &Connection,
    sql: &str,
    run: Option<&str>,
    f: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut st = conn.prepare(sql)?;
    let rows = st.query_map([run], |r| Ok(f(r).ok()))?;
    let mut out = Vec::new();
    for r in rows {
        if let Some(v) = r? {
            out.push(v);
        }
    }
    Ok(out)
}

fn opt_u64(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<u64>> {
    Ok(r.get::<_, Option<i64>>(i)?.map(|v| v as u64))
}

fn json(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<serde_json::Value>> {
    Ok(r.get::<_, Option<String>>(i)?
        .and_then(|t| serde_json::from_str(&t).ok()))
}

/// The last heartbeat of every process (of `run`, if given), oldest process first.
pub fn heartbeats(store: &Store, run: Option<&str>) -> Result<Vec<Heartbeat>> {
    let Some(conn) = source(store, "ferret_heartbeats", run)? else {
        return Ok(vec![]);
    };
    collect(
        conn,
        "SELECT r.run_key, h.process, h.pid, h.host, h.cmdline, h.started_ns, h.beat_ns, \
         h.interval_ns, h.cpu_ns, h.rss_bytes, h.threads, h.spans_accepted, h.dropped, p.ended_ns \
         FROM ferret_heartbeats h JOIN ferret_runs r ON r.id = h.run \
         LEFT JOIN ferret_processes p ON p.id = h.process \
         WHERE ?1 IS NULL OR r.run_key = ?1 ORDER BY h.process",
        run,
        |r| {
            Ok(Heartbeat {
                run_id: r.get(0)?,
                process: r.get(1)?,
                pid: r.get(2)?,
                host: r.get(3)?,
                cmdline: r.get(4)?,
                started_ns: r.get(5)?,
                beat_ns: r.get(6)?,
                interval_ns: r.get(7)?,
                cpu_ns: r.get(8)?,
                rss_bytes: r.get(9)?,
                threads: r.get(10)?,
                spans_accepted: r.get::<_, i64>(11)?.max(0) as u64,
                dropped: r.get::<_, i64>(12)?.max(0) as u64,
                ended_ns: r.get(13)?,
            })
        },
    )
}

/// The open spans of the latest snapshot of every process (of `run`, if
/// given), by process, then thread (waiting spans last), then depth.
/// Processes that closed cleanly have none.
pub fn inflight(store: &Store, run: Option<&str>) -> Result<Vec<InFlightSpan>> {
    let Some(conn) = source(store, "ferret_inflight", run)? else {
        return Ok(vec![]);
    };
    collect(
        conn,
        "SELECT r.run_key, i.process, p.pid, i.snapshot_ns, i.thread, t.tid, t.name, i.depth, \
         i.span_id, i.parent_id, i.trace_id, i.name, i.start_ns, i.entered, i.tags \
         FROM ferret_inflight i JOIN ferret_processes p ON p.id = i.process \
         JOIN ferret_runs r ON r.id = p.run \
         LEFT JOIN ferret_threads t ON t.process = i.process AND t.idx = i.thread \
         WHERE ?1 IS NULL OR r.run_key = ?1 \
         ORDER BY i.process, i.thread IS NULL, i.thread, i.rowid",
        run,
        |r| {
            Ok(InFlightSpan {
                run_id: r.get(0)?,
                process: r.get(1)?,
                pid: r.get(2)?,
                snapshot_ns: r.get(3)?,
                thread: r.get(4)?,
                tid: opt_u64(r, 5)?,
                thread_name: r.get(6)?,
                depth: r.get(7)?,
                span_id: r.get::<_, i64>(8)? as u64,
                parent_id: opt_u64(r, 9)?,
                trace_id: opt_u64(r, 10)?,
                name: r.get(11)?,
                start_ns: r.get(12)?,
                entered: r.get(13)?,
                tags: json(r, 14)?,
            })
        },
    )
}

/// Every stall report (of `run`, if given), in the order they were made.
pub fn stalls(store: &Store, run: Option<&str>) -> Result<Vec<StallReport>> {
    let Some(conn) = source(store, "ferret_stalls", run)? else {
        return Ok(vec![]);
    };
    collect(
        conn,
        "SELECT r.run_key, s.id, s.process, p.pid, s.thread, s.tid, s.thread_name, s.span_id, \
         s.name, s.busy, s.threshold_ns, s.open_ns, s.reported_ns, s.kind, s.stack \
         FROM ferret_stalls s JOIN ferret_processes p ON p.id = s.process \
         JOIN ferret_runs r ON r.id = p.run \
         WHERE ?1 IS NULL OR r.run_key = ?1 ORDER BY s.id",
        run,
        |r| {
            Ok(StallReport {
                run_id: r.get(0)?,
                id: r.get(1)?,
                process: r.get(2)?,
                pid: r.get(3)?,
                thread: r.get(4)?,
                tid: opt_u64(r, 5)?,
                thread_name: r.get(6)?,
                span_id: r.get::<_, i64>(7)? as u64,
                name: r.get(8)?,
                busy: r.get(9)?,
                threshold_ns: r.get(10)?,
                open_ns: r.get(11)?,
                reported_ns: r.get(12)?,
                kind: r.get(13)?,
                stack: serde_json::from_str(&r.get::<_, String>(14)?).unwrap_or_default(),
            })
        },
    )
}
