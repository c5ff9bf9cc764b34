//! Lazy readers for native and ferret-io files behind one interface.
//!
//! ```no_run
//! use ferret_analyze::store::{SpanQuery, SpanRecord, Store};
//! let store = Store::open("ferret.db")?;
//! let run = store.latest_run()?;
//! let mut spans = store.spans(&run, &SpanQuery::default())?;
//! let mut s = SpanRecord::default();
//! while spans.next_into(&mut s) {
//!     println!("{} {:?}", spans.name(s.name), s.duration_ns());
//! }
//! # Ok::<(), ferret_analyze::Error>(())
//! ```

mod ferret_io;
mod fio_fast;
pub mod live;
mod native;
pub mod tail;

use crate::error::{Error, Result};
use ferret_format::codec::SpanHead;
use ferret_format::span_end;
use ferret_format::{Status, Tags};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub use ferret_io::DEFAULT_NAMESPACE;

/// Which kind of trace file a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum FileKind {
    /// Written by Ferret's recorder.
    #[serde(rename = "native")]
    #[default]
    Native,
    /// Written by the Python ferret-io (BeaverDB log table).
    #[serde(rename = "ferret-io")]
    FerretIo,
}

impl FileKind {
    /// "native" or "ferret-io".
    pub fn as_str(&self) -> &'static str {
        match self {
            FileKind::Native => "native",
            FileKind::FerretIo => "ferret-io",
        }
    }
}

/// One span read back from a file: the fixed fields as the block codec
/// stores them ([`SpanHead`]), plus the name, status, tags and thread.
///
/// ferret-io files store no trace id, call path, children's total or
/// thread; those fields of `head` are 0 there, and [`SpanRecord::path`],
/// [`SpanRecord::children_ns`] say so with `None`. A ferret-io span may
/// also lack a duration ([`SpanRecord::duration_ns`] is then `None`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanRecord {
    /// Ids, call path, start, duration, children's total, error flag. A
    /// parent of 0 means none; ferret-io's hex ids are hashed to 64 bits.
    pub head: SpanHead,
    /// Name id: look it up with [`Spans::name`].
    pub name: u32,
    /// Status.
    pub status: Status,
    /// Tags (empty unless [`SpanQuery::with_tags`] is set).
    pub tags: Tags,
    /// Process id (0 if unknown).
    pub pid: u32,
    /// OS thread id (0 if unknown).
    pub tid: u64,
    /// What of `head` the file records (see [`Recorded`]).
    pub recorded: Recorded,
}

/// Which of a [`SpanRecord`]'s optional fields the file recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recorded {
    /// `head.dur_ns` is known.
    pub duration: bool,
    /// `head.path` and `head.child_ns` are known (native files).
    pub path_and_children: bool,
}

impl SpanRecord {
    /// Span id, unique in the run.
    #[inline]
    pub fn span_id(&self) -> u64 {
        self.head.id
    }

    /// Parent span id; `None` for a root.
    #[inline]
    pub fn parent_id(&self) -> Option<u64> {
        (self.head.parent != 0).then_some(self.head.parent)
    }

    /// Trace (root) id; 0 when the file does not record it (ferret-io).
    #[inline]
    pub fn trace_id(&self) -> u64 {
        self.head.trace
    }

    /// Start, ns since the UNIX epoch.
    #[inline]
    pub fn start_ns(&self) -> i64 {
        self.head.start_ns
    }

    /// Duration in ns; `None` when the file has none (ferret-io null).
    #[inline]
    pub fn duration_ns(&self) -> Option<u64> {
        self.recorded.duration.then_some(self.head.dur_ns)
    }

    /// Total duration of direct children, when the recorder measured it.
    #[inline]
    pub fn children_ns(&self) -> Option<u64> {
        self.recorded
            .path_and_children
            .then_some(self.head.child_ns)
    }

    /// Call-path id (native files): see [`Store::paths`].
    #[inline]
    pub fn path(&self) -> Option<u32> {
        self.recorded.path_and_children.then_some(self.head.path)
    }

    /// End in ns since the UNIX epoch (start if the duration is unknown).
    pub fn end_ns(&self) -> i64 {
        span_end(self.head.start_ns, self.duration_ns().unwrap_or(0))
    }
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct SpanQuery {
    /// Decode tags (costs time and memory; off by default).
    pub with_tags: bool,
    /// Only spans starting at or after this time (ns since the epoch).
    pub since_ns: Option<i64>,
    /// Only spans starting before this time (ns since the epoch).
    pub until_ns: Option<i64>,
}

impl SpanQuery {
    /// Whether a span starting at `start_ns` is inside the time window (an
    /// open end keeps every start).
    #[inline(always)]
    pub(crate) fn keeps(&self, start_ns: i64) -> bool {
        !(self.since_ns.is_some_and(|since| start_ns < since)
            || self.until_ns.is_some_and(|until| start_ns >= until))
    }

    /// Whether the query has a time window (either end).
    pub(crate) fn windowed(&self) -> bool {
        self.since_ns.is_some() || self.until_ns.is_some()
    }

    /// The time window as `since..until`, an open end as `i64::MIN` or
    /// `i64::MAX` (for SQL bounds and the blocks' pre-filter).
    pub(crate) fn bounds(&self) -> (i64, i64) {
        (
            self.since_ns.unwrap_or(i64::MIN),
            self.until_ns.unwrap_or(i64::MAX),
        )
    }
}

/// One run of a file, as listed by [`Store::runs`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunInfo {
    /// The run id.
    pub run_id: String,
    /// Label given by the recorder, if any.
    pub label: Option<String>,
    /// Host that recorded it (first process), if known.
    pub host: Option<String>,
    /// Earliest span start (ns since epoch); run start when it has no spans.
    pub first_start_ns: i64,
    /// Latest span end (ns since epoch).
    pub last_end_ns: i64,
    /// Spans stored.
    pub spans: u64,
    /// Process ids that recorded into it.
    pub pids: Vec<u32>,
    /// Spans the recorder accepted.
    pub accepted: u64,
    /// Spans dropped on a full queue.
    pub dropped_queue: u64,
    /// Spans lost to write errors.
    pub dropped_write: u64,
    /// Spans skipped by sampling / rate limits.
    pub sampled_out: u64,
    /// Spans of whole traces skipped because the recorder's queue was
    /// filling up (format 2; 0 before).
    pub shed: u64,
    /// Processes that have not closed their profiler: still recording, or
    /// ended without `close()` (killed, crashed, `process::exit`). Their
    /// counters are those of their last commit. Always 0 for files of
    /// format 1 and for ferret-io files, which do not record it.
    pub processes_unclosed: u32,
    /// Spans that unclosed processes had accepted by their last commit but
    /// that are not in the file: a lower bound of what they lost (spans
    /// still in their threads' buffers are not known).
    pub lost_unclosed: u64,
}

impl RunInfo {
    /// False when some process of the run did not close its profiler
    /// (see [`processes_unclosed`](Self::processes_unclosed)).
    pub fn complete(&self) -> bool {
        self.processes_unclosed == 0
    }

    /// Spans the recorder lost (queue full + write errors).
    pub fn dropped(&self) -> u64 {
        self.dropped_queue + self.dropped_write
    }
}

/// A thread seen in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreadInfo {
    /// Process id.
    pub pid: u32,
    /// OS thread id.
    pub tid: u64,
    /// Thread name, if it had one.
    pub name: Option<String>,
}

/// How to open a file for reading.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The ferret-io log name holding spans (default `_ferret_trace`).
    pub namespace: Option<String>,
}

/// A trace file opened for reading.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    kind: FileKind,
    namespace: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .finish()
    }
}

fn not_sqlite(path: &Path, e: &rusqlite::Error) -> bool {
    let _ = path;
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase)
}

/// A path percent-encoded for an SQLite `file:` URI: every byte but
/// unreserved ASCII and `/` as `%XX`, so that non-ASCII names (`café.db`,
/// or bytes that are not UTF-8) reach the file system exactly.
fn uri_path(path: &Path) -> String {
    #[cfg(unix)]
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).to_vec();
    #[cfg(not(unix))]
    let bytes = path.to_string_lossy().into_owned().into_bytes();
    let mut out = String::with_capacity(bytes.len());
    for b in bytes {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn open_ro(path: &Path, immutable: bool) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if immutable {
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut uri = String::from("file:");
        uri.push_str(&uri_path(&abs));
        uri.push_str("?immutable=1");
        Connection::open_with_flags(uri, flags)?
    } else {
        Connection::open_with_flags(path, flags)?
    };
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Reads are one sequential pass: a small page cache loses nothing and
    // keeps memory flat from the first megabytes of a file on.
    conn.execute_batch("PRAGMA cache_size = -256")?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(conn)
}

/// Opens a read-only connection, falling back to an immutable read when the
/// directory is not writable (and no -wal file waits to be replayed).
pub(crate) fn connect(path: &Path) -> Result<Connection> {
    let conn = match open_ro(path, false) {
        Ok(c) => c,
        Err(e) if not_sqlite(path, &e) => return Err(Error::NotSqlite(path.to_path_buf())),
        Err(first) => {
            // A reader that cannot create the -shm/-wal files (read-only
            // directory or filesystem): read the file as immutable, which
            // is exact when no -wal file is waiting to be replayed.
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            let wal_pending = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
            if wal_pending {
                return Err(Error::from(first));
            }
            open_ro(path, true).map_err(|e| {
                if not_sqlite(path, &e) {
                    Error::NotSqlite(path.to_path_buf())
                } else {
                    Error::from(e)
                }
            })?
        }
    };
    Ok(conn)
}

impl Store {
    /// Opens a native or ferret-io file for reading, detecting its kind.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, &OpenOptions::default())
    }

    /// Opens a file with options.
    pub fn open_with(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Store> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(path.to_path_buf())
            } else {
                Error::Io(e)
            }
        })?;
        if meta.is_dir() {
            return Err(Error::NotSqlite(path.to_path_buf()));
        }
        if meta.len() == 0 {
            return Err(Error::EmptyFile(path.to_path_buf()));
        }
        if let Err(e) = std::fs::File::open(path) {
            return Err(Error::Unreadable(path.to_path_buf(), e));
        }
        let conn = connect(path)?;
        let has = |t: &str| -> Result<bool> {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?1",
                    [t],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        };
        let kind = if has("ferret_blocks")? {
            let v: Option<String> = conn
                .query_row(
                    "SELECT value FROM ferret_meta WHERE key='format_version'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let v: i64 = v.and_then(|v| v.parse().ok()).unwrap_or(1);
            if v > ferret_format::schema::FORMAT_VERSION {
                return Err(Error::UnsupportedVersion(path.to_path_buf(), v));
            }
            FileKind::Native
        } else if has("beaver_logs")? {
            FileKind::FerretIo
        } else {
            return Err(Error::NoSpanTables(path.to_path_buf()));
        };
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            kind,
            namespace: opts
                .namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        })
    }

    /// The file's kind.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The id of the latest run, found without scanning spans where the
    /// format allows (native: the runs table; ferret-io: the run of the span
    /// with the greatest start, through the timestamp index).
    pub fn latest_run(&self) -> Result<String> {
        match self.kind {
            FileKind::Native => native::latest_run(&self.conn),
            FileKind::FerretIo => ferret_io::latest_run(&self.conn, &self.namespace),
        }
    }

    /// Checks that `run` exists; the error lists a few runs that do.
    pub fn check_run(&self, run: &str) -> Result<()> {
        let exists = match self.kind {
            FileKind::Native => native::run_exists(&self.conn, run)?,
            FileKind::FerretIo => ferret_io::run_exists(&self.conn, &self.namespace, run)?,
        };
        if exists {
            return Ok(());
        }
        let known = match self.kind {
            FileKind::Native => native::some_runs(&self.conn, 5)?,
            FileKind::FerretIo => ferret_io::some_runs(&self.conn, &self.namespace, 5)?,
        };
        Err(Error::UnknownRun {
            run: run.to_owned(),
            known,
        })
    }

    /// Every run of the file, oldest first. Streams: memory grows with the
    /// number of runs only.
    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        match self.kind {
            FileKind::Native => native::runs(&self.conn),
            FileKind::FerretIo => ferret_io::runs(&self.conn, &self.namespace),
        }
    }

    /// The recorder's counters for `run` (accepted, dropped, sampled out),
    /// read from the runs table; `None` for ferret-io files, which keep none.
    pub fn run_counters(&self, run: &str) -> Result<Option<RunInfo>> {
        match self.kind {
            FileKind::Native => native::run_info(&self.conn, run),
            FileKind::FerretIo => Ok(None),
        }
    }

    /// A lazy stream over the spans of `run`.
    pub fn spans(&self, run: &str, q: &SpanQuery) -> Result<Spans<'_>> {
        self.check_run(run)?;
        let inner = match self.kind {
            FileKind::Native => SpansInner::Native(native::NativeSpans::new(&self.conn, run, q)?),
            FileKind::FerretIo => SpansInner::FerretIo(ferret_io::FerretIoSpans::new(
                &self.path,
                &self.namespace,
                run,
                q,
            )?),
        };
        Ok(Spans { inner })
    }

    /// The options this store was opened with: with [`Store::path`], what
    /// opens another connection to the same file (each thread of a
    /// parallel scan reads through its own).
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            namespace: Some(self.namespace.clone()),
        }
    }

    /// The call paths of a native file: `(id, parent id, name id)` with
    /// parent 0 for roots, and the name table. Empty for ferret-io files.
    pub fn paths(&self) -> Result<Vec<(u32, u32, u32)>> {
        match self.kind {
            FileKind::Native => native::paths(&self.conn),
            FileKind::FerretIo => Ok(vec![]),
        }
    }

    /// Threads known for `run` (native files; empty for ferret-io).
    pub fn threads(&self, run: &str) -> Result<Vec<ThreadInfo>> {
        match self.kind {
            FileKind::Native => native::threads(&self.conn, run),
            FileKind::FerretIo => Ok(vec![]),
        }
    }

    /// Bytes the file (and its -wal) take on disk.
    pub fn file_size(&self) -> u64 {
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
            + std::fs::metadata(wal).map_or(0, |m| m.len())
    }
}

// One per stream, never moved in a hot loop: boxing would only add an indirection.
#[allow(clippy::large_enum_variant)]
enum SpansInner<'a> {
    Native(native::NativeSpans<'a>),
    FerretIo(ferret_io::FerretIoSpans),
}

/// A lazy stream of the spans of one run. Malformed rows are skipped and
/// counted ([`Spans::skipped_rows`]); a read failure ends the stream and is
/// kept in [`Spans::error`].
pub struct Spans<'a> {
    inner: SpansInner<'a>,
}

impl Spans<'_> {
    /// The text of a name id.
    pub fn name(&self, id: u32) -> &str {
        match &self.inner {
            SpansInner::Native(n) => n.name(id),
            SpansInner::FerretIo(f) => f.name(id),
        }
    }

    /// Number of name ids in use so far (ids are `0..name_count()`).
    pub fn name_count(&self) -> usize {
        match &self.inner {
            SpansInner::Native(n) => n.name_count(),
            SpansInner::FerretIo(f) => f.name_count(),
        }
    }

    /// Rows (native: blocks; ferret-io: spans) skipped because they could not be parsed.
    pub fn skipped_rows(&self) -> u64 {
        match &self.inner {
            SpansInner::Native(n) => n.skipped,
            SpansInner::FerretIo(f) => f.skipped,
        }
    }

    /// Bytes of span data read so far (for progress display).
    pub fn bytes_read(&self) -> u64 {
        match &self.inner {
            SpansInner::Native(n) => n.bytes_read,
            SpansInner::FerretIo(f) => f.bytes_read,
        }
    }

    /// The error that ended the stream early, if any.
    pub fn error(&self) -> Option<&Error> {
        match &self.inner {
            SpansInner::Native(n) => n.error.as_ref(),
            SpansInner::FerretIo(f) => f.error.as_ref(),
        }
    }

    /// Takes the error that ended the stream early, if any.
    pub fn take_error(&mut self) -> Option<Error> {
        match &mut self.inner {
            SpansInner::Native(n) => n.error.take(),
            SpansInner::FerretIo(f) => f.error.take(),
        }
    }

    /// Native files only: the next span's fixed fields (ids, path, times,
    /// error flag) and its name id, skipping status text and tags without
    /// allocating — the fast path for statistics. `None` at the end of the
    /// stream, and always for ferret-io files (use [`Spans::next_into`]).
    #[inline]
    pub fn next_head(&mut self) -> Option<(ferret_format::codec::SpanHead, u32)> {
        match &mut self.inner {
            SpansInner::Native(n) => n.next_head(),
            SpansInner::FerretIo(_) => None,
        }
    }

    /// Native files only: feeds `sink` the fixed fields and name id of
    /// every span of the next block, in a tight loop (faster than
    /// [`Spans::next_head`]). Returns how many spans it saw; `None` at the
    /// end of the stream, and always for ferret-io files.
    ///
    /// `fields` are the fields the sink reads: in a columnar block (block
    /// version 2) only their columns are decoded, and the others may come
    /// out as 0 (see [`ferret_format::codec::BlockDecoder::for_each_head_of`]).
    ///
    /// A columnar block read without a time window goes to
    /// [`HeadSink::columns`] whole; other blocks span by span to
    /// [`HeadSink::head`].
    ///
    /// `ranges`: after each block, [`HeadSink::range`] gets the time range
    /// of the spans the sink got from it: for a columnar block read whole,
    /// the block row's `min_start` and `max_end` (the writer computes them
    /// from the same spans), else their own starts and ends.
    pub fn block_heads(
        &mut self,
        fields: ferret_format::codec::HeadFields,
        ranges: bool,
        sink: &mut impl HeadSink,
    ) -> Option<u64> {
        match &mut self.inner {
            SpansInner::Native(n) => n.block_heads(fields, ranges, sink),
            SpansInner::FerretIo(_) => None,
        }
    }

    /// Native files only: the smallest and largest id of the blocks this
    /// stream would read, `None` when it reads none (or for a ferret-io
    /// stream). Block ids split a run into parts that threads read apart
    /// (see [`Spans::restrict_blocks`]).
    pub fn block_range(&self) -> Result<Option<(i64, i64)>> {
        match &self.inner {
            SpansInner::Native(n) => n.block_range(),
            SpansInner::FerretIo(_) => Ok(None),
        }
    }

    /// Native files only: from now on, reads only the blocks with ids in
    /// `lo..=hi`, from the start of that range. Spans never cross blocks,
    /// so the stream then yields exactly the spans of those blocks.
    /// Ignored for ferret-io streams.
    pub fn restrict_blocks(&mut self, lo: i64, hi: i64) {
        if let SpansInner::Native(n) = &mut self.inner {
            n.restrict_blocks(lo, hi);
        }
    }

    /// True for a native stream (where [`Spans::next_head`] works).
    pub fn is_native(&self) -> bool {
        matches!(self.inner, SpansInner::Native(_))
    }

    /// Decodes the next span into `out`, reusing its allocations. Returns
    /// false at the end of the stream. Faster than the iterator.
    #[inline]
    pub fn next_into(&mut self, out: &mut SpanRecord) -> bool {
        match &mut self.inner {
            SpansInner::Native(n) => n.next_into(out),
            SpansInner::FerretIo(f) => f.next_into(out),
        }
    }

    /// Like [`Spans::next_into`], but native files skip the spans whose
    /// fixed fields `keep` rejects before decoding their status and tags
    /// (ferret-io files read every span: their rows hold no fixed fields).
    #[inline]
    pub fn next_into_where(
        &mut self,
        out: &mut SpanRecord,
        keep: impl FnMut(&ferret_format::codec::SpanHead) -> bool,
    ) -> bool {
        match &mut self.inner {
            SpansInner::Native(n) => n.next_into_where(out, keep),
            SpansInner::FerretIo(f) => f.next_into(out),
        }
    }
}

impl Iterator for Spans<'_> {
    type Item = SpanRecord;

    fn next(&mut self) -> Option<SpanRecord> {
        let mut s = SpanRecord::default();
        if self.next_into(&mut s) {
            Some(s)
        } else {
            None
        }
    }
}

/// What [`Spans::block_heads`] feeds a block's spans to.
pub trait HeadSink {
    /// One span's fixed fields and the name id of its path.
    fn head(&mut self, h: &ferret_format::codec::SpanHead, name: u32);

    /// Every span of a columnar block at once: span `i` is
    /// [`HeadColumns::head`](ferret_format::codec::HeadColumns::head)`(i)`,
    /// and its name id `names[path]` (0 for a path past the end of
    /// `names`).
    fn columns(&mut self, c: &ferret_format::codec::HeadColumns<'_>, names: &[u32]);

    /// The first start and last end (start + duration, saturating) of the
    /// spans just given, when [`Spans::block_heads`] was asked for ranges.
    fn range(&mut self, _first_start_ns: i64, _last_end_ns: i64) {}
}
