//! The native file's schema (see docs/FORMAT.md): the tables the recorder
//! creates and the analyzer reads.

/// Version of the native format written by this crate. Version 2 added
/// per-process counters and the clean-close mark (`ferret_processes`) and
/// the `shed` counter; version 3 the columnar span blocks (block version 2,
/// see [`crate::codec`]: a reader of version 2 would take every such block
/// for a damaged one). Readers accept 1 to 3 (a file of any version may
/// hold row-wise blocks of version 1); a recorder opening an older file
/// upgrades it to 3 before it writes.
pub const FORMAT_VERSION: i64 = 3;

/// SQLite page size of a file the recorder creates (bytes; SQLite's
/// default is 4096). A block of ~50 KB then spans 3–4 pages instead of 13,
/// which SQLite reads with as many `pread`s: the read floor of a 200 M-span
/// file falls by ~30%. Larger pages cost more: each commit rewrites whole
/// pages (a recorder at 100 spans/s writes 3.7× the bytes of 4 KB pages
/// with 16 KB, 15× with 64 KB) and blocks leave more of a page unused
/// (the 200 M-span demo file grows by 3% with 16 KB pages, 30% with 32 or
/// 64 KB). Existing files keep the page size they were created with. See
/// docs/FORMAT.md ("Page size").
pub const PAGE_SIZE: u32 = 16384;

/// The DDL of a native trace file.
///
/// The live tables (`ferret_heartbeats`, `ferret_inflight`,
/// `ferret_stalls`; see docs/FORMAT.md) need no format version: they are
/// created if missing, readers that do not know them ignore them, and a
/// file without them simply has no live data.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ferret_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ferret_runs (
    id INTEGER PRIMARY KEY,
    run_key TEXT NOT NULL UNIQUE,
    label TEXT,
    host TEXT,
    started_ns INTEGER NOT NULL,
    spans_accepted INTEGER NOT NULL DEFAULT 0,
    dropped_queue INTEGER NOT NULL DEFAULT 0,
    dropped_write INTEGER NOT NULL DEFAULT 0,
    sampled_out INTEGER NOT NULL DEFAULT 0,
    shed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ferret_runs_started ON ferret_runs (started_ns);
CREATE TABLE IF NOT EXISTS ferret_processes (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT,
    started_ns INTEGER NOT NULL,
    spans_accepted INTEGER NOT NULL DEFAULT 0,
    dropped_queue INTEGER NOT NULL DEFAULT 0,
    dropped_write INTEGER NOT NULL DEFAULT 0,
    sampled_out INTEGER NOT NULL DEFAULT 0,
    shed INTEGER NOT NULL DEFAULT 0,
    committed_ns INTEGER,
    ended_ns INTEGER
);
CREATE INDEX IF NOT EXISTS ferret_processes_run ON ferret_processes (run);
CREATE TABLE IF NOT EXISTS ferret_threads (
    process INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    tid INTEGER NOT NULL,
    name TEXT,
    PRIMARY KEY (process, idx)
);
CREATE TABLE IF NOT EXISTS ferret_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS ferret_paths (
    id INTEGER PRIMARY KEY,
    parent INTEGER NOT NULL,
    name INTEGER NOT NULL,
    UNIQUE (parent, name)
);
CREATE TABLE IF NOT EXISTS ferret_blocks (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL,
    process INTEGER NOT NULL,
    min_start INTEGER NOT NULL,
    max_end INTEGER NOT NULL,
    count INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ferret_blocks_run ON ferret_blocks (run, id);
CREATE TABLE IF NOT EXISTS ferret_heartbeats (
    process INTEGER PRIMARY KEY,
    run INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT,
    cmdline TEXT,
    started_ns INTEGER NOT NULL,
    beat_ns INTEGER NOT NULL,
    interval_ns INTEGER NOT NULL,
    cpu_ns INTEGER,
    rss_bytes INTEGER,
    threads INTEGER,
    spans_accepted INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ferret_inflight (
    process INTEGER NOT NULL,
    snapshot_ns INTEGER NOT NULL,
    thread INTEGER,
    depth INTEGER NOT NULL,
    span_id INTEGER NOT NULL,
    parent_id INTEGER,
    trace_id INTEGER,
    name TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    entered INTEGER NOT NULL,
    tags TEXT
);
CREATE INDEX IF NOT EXISTS ferret_inflight_process ON ferret_inflight (process);
CREATE TABLE IF NOT EXISTS ferret_stalls (
    id INTEGER PRIMARY KEY,
    process INTEGER NOT NULL,
    thread INTEGER,
    tid INTEGER,
    thread_name TEXT,
    span_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    busy INTEGER NOT NULL,
    threshold_ns INTEGER NOT NULL,
    open_ns INTEGER NOT NULL,
    reported_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    stack TEXT NOT NULL
);
";
