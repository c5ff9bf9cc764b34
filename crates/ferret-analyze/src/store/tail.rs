//! Tailing a file that is being written: each read returns only what was
//! committed since the last one.
//!
//! A [`Tail`] holds one read-only connection. [`Tail::changed`] asks SQLite
//! whether another connection committed since the last call (`PRAGMA
//! data_version`, a cheap check of the WAL index) and [`Tail::read`] then
//! reads only the new rows: native blocks with an id above the last one
//! read (through the `(run, id)` index), ferret-io rows with a rowid above
//! the last one read. Nothing is ever read twice and the file is never
//! rescanned; [`Tail::seek_ends_after`] picks the starting point on attach
//! by walking back from the newest rows.
//!
//! Spans come out in commit order, which is close to end order: a native
//! block holds spans that ended, ferret-io logs a span when it ends. Self
//! time is therefore known at once: native spans carry their children's
//! total; for ferret-io, children are logged before their parent, and their
//! durations wait in a bounded map until the parent arrives.

use super::{FileKind, OpenOptions, SpanRecord, Store};
use crate::error::{Error, Result};
use ferret_format::codec::{BlockDecoder, Columns};
use ferret_format::span_end;
use rusqlite::OptionalExtension;
use rustc_hash::FxHashMap;
use std::path::Path;

/// Native blocks fetched per query.
const PAGE_BLOCKS: i64 = 32;
/// ferret-io rows fetched per query.
const PAGE_ROWS: i64 = 4096;
/// ferret-io: children's totals waiting for their parent, per generation
/// (two generations are kept, so an entry lives for at least this many
/// newer ones).
const PENDING_GENERATION: usize = 1 << 16;
/// Blocks older than the seek point in a row before [`Tail::seek_ends_after`]
/// stops walking back (blocks of several processes interleave).
const SEEK_PATIENCE: u32 = 256;

/// A span as the tail reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TailSpan {
    /// Name id: see [`Tail::name`].
    pub name: u32,
    /// Start, ns since the UNIX epoch.
    pub start_ns: i64,
    /// Duration in ns (`None`: a ferret-io span without one).
    pub dur_ns: Option<u64>,
    /// Self time: duration minus the direct children's durations, never
    /// below 0 (`None` without a duration).
    pub self_ns: Option<u64>,
    /// The status is not ok.
    pub error: bool,
}

impl TailSpan {
    /// End, ns since the UNIX epoch (the start when the duration is unknown).
    pub fn end_ns(&self) -> i64 {
        span_end(self.start_ns, self.dur_ns.unwrap_or(0))
    }
}

/// The recorder's counters for the run, as of its processes' last commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct TailCounters {
    /// Spans accepted.
    pub accepted: u64,
    /// Spans lost: queue full or write errors.
    pub dropped: u64,
    /// Spans of whole traces shed while the queue was filling.
    pub shed: u64,
    /// Spans skipped by sampling or rate limits.
    pub sampled_out: u64,
}

/// What one [`Tail::read`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TailRead {
    /// Spans handed out.
    pub spans: u64,
    /// True when the read stopped at its limit with more rows waiting.
    pub more: bool,
}

/// An incremental reader of one run; see the module docs.
pub struct Tail {
    store: Store,
    run: String,
    /// Native: the run's row id.
    run_db: i64,
    /// Native: the last block id read; ferret-io: the last rowid read.
    cursor: i64,
    data_version: Option<i64>,
    /// Name texts by id (native: `ferret_names` ids).
    names: Vec<Box<str>>,
    /// ferret-io: name ids by text.
    name_ids: super::ferret_io::NameIds,
    /// Native: call-path id -> name id.
    path_names: Vec<u32>,
    /// Native: the largest path and name ids loaded.
    paths_loaded: i64,
    names_loaded: i64,
    /// ferret-io: children's total durations by parent key (two generations).
    pending: [FxHashMap<u64, u64>; 2],
    rec: SpanRecord,
    parents: super::ferret_io::ParentKeys,
    /// Rows skipped as unreadable (damaged blocks, malformed JSON).
    pub skipped: u64,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("path", &self.store.path)
            .field("run", &self.run)
            .field("cursor", &self.cursor)
            .finish()
    }
}

impl Tail {
    /// Opens `path` read-only and follows `run` (the latest run when `None`).
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions, run: Option<&str>) -> Result<Tail> {
        let store = Store::open_with(path, opts)?;
        let run = match run {
            Some(r) => {
                store.check_run(r)?;
                r.to_owned()
            }
            None => store.latest_run()?,
        };
        Tail::follow(store, run)
    }

    /// Follows `run` of an open store from its first span.
    pub fn follow(store: Store, run: String) -> Result<Tail> {
        let run_db = match store.kind {
            FileKind::Native => store
                .conn
                .query_row(
                    "SELECT id FROM ferret_runs WHERE run_key = ?1",
                    [&run],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| Error::UnknownRun {
                    run: run.clone(),
                    known: vec![],
                })?,
            FileKind::FerretIo => 0,
        };
        // Native name ids are the file's (from 1); ferret-io's are assigned
        // as names appear (from 0).
        let names = match store.kind {
            FileKind::Native => vec!["".into()],
            FileKind::FerretIo => vec![],
        };
        Ok(Tail {
            store,
            run,
            run_db,
            cursor: 0,
            data_version: None,
            names,
            name_ids: Default::default(),
            path_names: vec![0],
            paths_loaded: 0,
            names_loaded: 0,
            pending: [FxHashMap::default(), FxHashMap::default()],
            rec: SpanRecord::default(),
            parents: Default::default(),
            skipped: 0,
        })
    }

    /// The store being read.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The run being followed.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// One past the largest name id known so far.
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// The text of a name id ("" if unknown).
    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |s| s)
    }

    /// True when something was committed to the file since the last call
    /// (always true on the first). Fails with [`Error::NotFound`] once the
    /// file has been deleted or moved away.
    pub fn changed(&mut self) -> Result<bool> {
        if let Err(e) = std::fs::metadata(&self.store.path) {
            if e.kind() == std::io::ErrorKind::NotFound {
                return Err(Error::NotFound(self.store.path.clone()));
            }
            return Err(Error::Io(e));
        }
        let v: i64 = self
            .store
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        let changed = self.data_version != Some(v);
        self.data_version = Some(v);
        Ok(changed)
    }

    /// Positions the reader so that the next [`Tail::read`] starts with the
    /// rows that may hold spans ending at or after `since_ns`, walking back
    /// from the newest rows (never over the whole file).
    pub fn seek_ends_after(&mut self, since_ns: i64) -> Result<()> {
        match self.store.kind {
            FileKind::Native => {
                let mut st = self.store.conn.prepare(
                    "SELECT id, max_end FROM ferret_blocks WHERE run = ?1 ORDER BY id DESC",
                )?;
                let mut rows = st.query([self.run_db])?;
                let (mut newest, mut first_needed, mut old_in_row) = (None, None, 0u32);
                while let Some(r) = rows.next()? {
                    let (id, max_end): (i64, i64) = (r.get(0)?, r.get(1)?);
                    newest.get_or_insert(id);
                    if max_end >= since_ns {
                        first_needed = Some(id);
                        old_in_row = 0;
                    } else {
                        old_in_row += 1;
                        if old_in_row >= SEEK_PATIENCE {
                            break;
                        }
                    }
                }
                self.cursor = match (first_needed, newest) {
                    (Some(id), _) => id - 1,
                    (None, Some(newest)) => newest,
                    (None, None) => 0,
                };
            }
            FileKind::FerretIo => {
                // The log timestamp is when ferret-io wrote the row: at or
                // after the span's end.
                let first: Option<i64> = self.store.conn.query_row(
                    "SELECT min(rowid) FROM beaver_logs WHERE log_name = ?1 AND timestamp >= ?2",
                    rusqlite::params![self.store.namespace, since_ns as f64 / 1e9],
                    |r| r.get(0),
                )?;
                self.cursor = match first {
                    Some(id) => id - 1,
                    None => self
                        .store
                        .conn
                        .query_row("SELECT max(rowid) FROM beaver_logs", [], |r| {
                            r.get::<_, Option<i64>>(0)
                        })?
                        .unwrap_or(0),
                };
            }
        }
        Ok(())
    }

    /// Reads new rows, calling `f` with each span of the run, until no
    /// more rows wait or about `limit` spans were handed out.
    pub fn read(&mut self, limit: u64, f: &mut dyn FnMut(&TailSpan)) -> Result<TailRead> {
        match self.store.kind {
            FileKind::Native => self.read_native(limit, f),
            FileKind::FerretIo => self.read_fio(limit, f),
        }
    }

    /// Loads call paths and names added since the last load.
    fn load_paths(&mut self) -> Result<()> {
        let conn = &self.store.conn;
        let mut st = conn.prepare_cached("SELECT id, name FROM ferret_names WHERE id > ?1")?;
        let mut rows = st.query([self.names_loaded])?;
        while let Some(r) = rows.next()? {
            let (id, name): (i64, String) = (r.get(0)?, r.get(1)?);
            let i = id as usize;
            if i >= self.names.len() {
                self.names.resize(i + 1, "".into());
            }
            self.names[i] = name.into();
            self.names_loaded = self.names_loaded.max(id);
        }
        let mut st = conn.prepare_cached("SELECT id, name FROM ferret_paths WHERE id > ?1")?;
        let mut rows = st.query([self.paths_loaded])?;
        while let Some(r) = rows.next()? {
            let (id, name): (i64, u32) = (r.get(0)?, r.get(1)?);
            let i = id as usize;
            if i >= self.path_names.len() {
                self.path_names.resize(i + 1, 0);
            }
            self.path_names[i] = name;
            self.paths_loaded = self.paths_loaded.max(id);
        }
        Ok(())
    }

    fn read_native(&mut self, limit: u64, f: &mut dyn FnMut(&TailSpan)) -> Result<TailRead> {
        let mut out = TailRead::default();
        let mut data = Vec::new();
        // The decoder's arrays, from block to block.
        let mut cols = Columns::default();
        loop {
            let mut page: Vec<(i64, Vec<u8>)> = Vec::with_capacity(PAGE_BLOCKS as usize);
            {
                let mut st = self.store.conn.prepare_cached(
                    "SELECT id, data FROM ferret_blocks WHERE run = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )?;
                let mut rows =
                    st.query(rusqlite::params![self.run_db, self.cursor, PAGE_BLOCKS])?;
                while let Some(r) = rows.next()? {
                    let id: i64 = r.get(0)?;
                    match r.get_ref(1)? {
                        rusqlite::types::ValueRef::Blob(b) => {
                            let mut buf = std::mem::take(&mut data);
                            buf.clear();
                            buf.extend_from_slice(b);
                            page.push((id, buf));
                        }
                        _ => self.skipped += 1,
                    }
                    self.cursor = id;
                }
            }
            let full = page.len() as i64 == PAGE_BLOCKS;
            for (_, buf) in page {
                let Ok(mut dec) = BlockDecoder::with_columns(buf, false, std::mem::take(&mut cols))
                else {
                    self.skipped += 1;
                    continue;
                };
                loop {
                    match dec.next_head() {
                        Ok(Some(h)) => {
                            let p = h.path as usize;
                            if p >= self.path_names.len() || self.path_names[p] == 0 {
                                self.load_paths()?;
                            }
                            let name = self.path_names.get(p).copied().unwrap_or(0);
                            out.spans += 1;
                            f(&TailSpan {
                                name,
                                start_ns: h.start_ns,
                                dur_ns: Some(h.dur_ns),
                                self_ns: Some(h.dur_ns.saturating_sub(h.child_ns)),
                                error: h.error,
                            });
                        }
                        Ok(None) => break,
                        Err(_) => {
                            self.skipped += 1;
                            break;
                        }
                    }
                }
                (data, cols) = dec.into_parts();
            }
            if !full {
                return Ok(out);
            }
            if out.spans >= limit {
                out.more = true;
                return Ok(out);
            }
        }
    }

    fn read_fio(&mut self, limit: u64, f: &mut dyn FnMut(&TailSpan)) -> Result<TailRead> {
        let mut out = TailRead::default();
        loop {
            let mut n = 0i64;
            let mut st = self.store.conn.prepare_cached(
                "SELECT rowid, data FROM beaver_logs WHERE rowid > ?1 AND log_name = ?2 ORDER BY rowid LIMIT ?3",
            )?;
            let mut rows = st.query(rusqlite::params![
                self.cursor,
                self.store.namespace,
                PAGE_ROWS
            ])?;
            while let Some(r) = rows.next()? {
                n += 1;
                self.cursor = r.get(0)?;
                let text = match r.get_ref(1)? {
                    rusqlite::types::ValueRef::Text(t) => t,
                    _ => {
                        self.skipped += 1;
                        continue;
                    }
                };
                let rec = &mut self.rec;
                match super::ferret_io::parse_tail_row(
                    text,
                    &self.run,
                    &mut self.names,
                    &mut self.name_ids,
                    &mut self.parents,
                    rec,
                ) {
                    None => self.skipped += 1,
                    Some(false) => {}
                    Some(true) => {
                        let dur = rec.duration_ns();
                        let key = rec.span_id();
                        let children = self.pending[0]
                            .remove(&key)
                            .or_else(|| self.pending[1].remove(&key))
                            .unwrap_or(0);
                        if let (Some(p), Some(d)) = (rec.parent_id(), dur) {
                            if self.pending[0].len() >= PENDING_GENERATION {
                                self.pending[1] = std::mem::take(&mut self.pending[0]);
                            }
                            let old = self.pending[1].remove(&p).unwrap_or(0);
                            let e = self.pending[0].entry(p).or_insert(old);
                            *e = e.saturating_add(d);
                        }
                        out.spans += 1;
                        f(&TailSpan {
                            name: rec.name,
                            start_ns: rec.start_ns(),
                            dur_ns: dur,
                            self_ns: dur.map(|d| d.saturating_sub(children)),
                            error: rec.head.error,
                        });
                    }
                }
            }
            if n < PAGE_ROWS {
                return Ok(out);
            }
            if out.spans >= limit {
                out.more = true;
                return Ok(out);
            }
        }
    }

    /// When the run started (native files: the runs table), else `None`.
    pub fn run_started_ns(&self) -> Result<Option<i64>> {
        if self.store.kind != FileKind::Native {
            return Ok(None);
        }
        Ok(self
            .store
            .conn
            .query_row(
                "SELECT started_ns FROM ferret_runs WHERE id = ?1",
                [self.run_db],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Processes of the run that have not closed their profiler (native
    /// files of format 2): `(pid, host, time of their last commit)`.
    pub fn live_processes(&self) -> Result<Vec<(u32, Option<String>, i64)>> {
        if self.store.kind != FileKind::Native {
            return Ok(vec![]);
        }
        let conn = &self.store.conn;
        let v2: bool = conn.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('ferret_processes') WHERE name = 'ended_ns'",
            [],
            |r| r.get(0),
        )?;
        if !v2 {
            return Ok(vec![]);
        }
        let mut st = conn.prepare_cached(
            "SELECT pid, host, coalesce(committed_ns, started_ns) FROM ferret_processes
             WHERE run = ?1 AND ended_ns IS NULL ORDER BY id",
        )?;
        let rows = st.query_map([self.run_db], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The recorder's counters for the run (native files; `None` for
    /// ferret-io files, which keep none).
    pub fn counters(&self) -> Result<Option<TailCounters>> {
        if self.store.kind != FileKind::Native {
            return Ok(None);
        }
        let v2 = self
            .store
            .conn
            .query_row(
                "SELECT count(*) > 0 FROM pragma_table_info('ferret_runs') WHERE name = 'shed'",
                [],
                |r| r.get::<_, bool>(0),
            )
            .unwrap_or(false);
        let shed = if v2 { "shed" } else { "0" };
        let c = self.store.conn.query_row(
            &format!(
                "SELECT spans_accepted, dropped_queue + dropped_write, {shed}, sampled_out
                 FROM ferret_runs WHERE id = ?1"
            ),
            [self.run_db],
            |r| {
                Ok(TailCounters {
                    accepted: r.get::<_, i64>(0)?.max(0) as u64,
                    dropped: r.get::<_, i64>(1)?.max(0) as u64,
                    shed: r.get::<_, i64>(2)?.max(0) as u64,
                    sampled_out: r.get::<_, i64>(3)?.max(0) as u64,
                })
            },
        )?;
        Ok(Some(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn fio_file(path: &Path, rows: &[String]) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE beaver_logs (log_name TEXT NOT NULL, timestamp REAL NOT NULL, \
               data TEXT NOT NULL, PRIMARY KEY (log_name, timestamp));",
        )
        .unwrap();
        append(&conn, rows, 0);
        conn
    }

    fn append(conn: &Connection, rows: &[String], at: usize) {
        for (i, r) in rows.iter().enumerate() {
            conn.execute(
                "INSERT INTO beaver_logs VALUES ('_ferret_trace', ?1, ?2)",
                rusqlite::params![100.0 + (at + i) as f64, r],
            )
            .unwrap();
        }
    }

    fn row(id: &str, parent: Option<&str>, name: &str, start: f64, dur: f64) -> String {
        serde_json::json!({
            "span_id": id, "parent_id": parent, "run_id": "r", "name": name,
            "start_time": start, "duration": dur, "status": "ok",
        })
        .to_string()
    }

    #[test]
    fn ferret_io_reads_only_new_rows_with_self_times() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.db");
        // The child is logged before its parent, as ferret-io does.
        let w = fio_file(&p, &[row("c", Some("p"), "child", 1.0, 0.25)]);
        let mut t = Tail::open(&p, &OpenOptions::default(), None).unwrap();
        assert!(t.changed().unwrap());
        let mut got = vec![];
        let r = t.read(u64::MAX, &mut |s| got.push(*s)).unwrap();
        assert_eq!(r.spans, 1);
        assert!(!t.changed().unwrap(), "nothing committed since");
        append(&w, &[row("p", None, "parent", 1.0, 1.0)], 1);
        assert!(t.changed().unwrap());
        t.read(u64::MAX, &mut |s| got.push(*s)).unwrap();
        assert_eq!(got.len(), 2, "the first row is not read again");
        assert_eq!(t.name(got[1].name), "parent");
        assert_eq!(got[1].self_ns, Some(750_000_000));
        assert_eq!(got[0].self_ns, Some(250_000_000));
    }

    #[test]
    fn deleted_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.db");
        drop(fio_file(&p, &[row("a", None, "x", 1.0, 0.1)]));
        let mut t = Tail::open(&p, &OpenOptions::default(), None).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(t.changed(), Err(Error::NotFound(_))));
    }
}
