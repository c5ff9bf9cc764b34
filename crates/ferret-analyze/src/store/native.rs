//! Reading native files: runs from the runs table, spans from blocks stepped
//! a page of rows at a time (keyset pagination on the block id, through the
//! `(run, id)` index), decoded lazily.
//!
//! A page's query gives each block's id, process and length; the blocks'
//! bytes are read with SQLite's incremental blob reads straight into
//! buffers reused from block to block (no copy of SQLite's own), while the
//! query's read transaction is open. A stream read for heads alone
//! ([`NativeSpans::block_heads`]) reads of each block only what those heads
//! need (see [`head_prefix_len`]): SQLite then never reads the overflow
//! pages that hold only a block's threads and tails.

use super::{Recorded, RunInfo, SpanQuery, SpanRecord, ThreadInfo};
use crate::error::{Error, Result};
use ferret_format::codec::{
    head_prefix_len, BlockDecoder, BlockSpan, Columns, HeadFields, SpanHead, BLOCK_HEADER_MAX,
};
use ferret_format::span_end;
use rusqlite::blob::Blob;
use rusqlite::{Connection, DatabaseName, OptionalExtension};
use rustc_hash::FxHashMap;

/// Blocks fetched per query.
const PAGE_BLOCKS: i64 = 16;

pub(super) fn latest_run(conn: &Connection) -> Result<String> {
    let with_spans: Option<String> = conn
        .query_row(
            "SELECT r.run_key FROM ferret_runs r
             WHERE EXISTS (SELECT 1 FROM ferret_blocks b WHERE b.run = r.id)
             ORDER BY r.started_ns DESC, r.id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(r) = with_spans {
        return Ok(r);
    }
    conn.query_row(
        "SELECT run_key FROM ferret_runs ORDER BY started_ns DESC, id DESC LIMIT 1",
        [],
        |r| r.get(0),
    )
    .optional()?
    .ok_or(Error::NoRuns)
}

pub(super) fn run_exists(conn: &Connection, run: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM ferret_runs WHERE run_key = ?1",
            [run],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub(super) fn some_runs(conn: &Connection, n: usize) -> Result<Vec<String>> {
    let mut st =
        conn.prepare("SELECT run_key FROM ferret_runs ORDER BY started_ns DESC, id DESC LIMIT ?1")?;
    let rows = st.query_map([n as i64], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

fn run_db_id(conn: &Connection, run: &str) -> Result<i64> {
    conn.query_row(
        "SELECT id FROM ferret_runs WHERE run_key = ?1",
        [run],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| Error::UnknownRun {
        run: run.to_owned(),
        known: vec![],
    })
}

pub(super) fn run_info(conn: &Connection, run: &str) -> Result<Option<RunInfo>> {
    Ok(runs_where(conn, Some(run))?.pop())
}

pub(super) fn runs(conn: &Connection) -> Result<Vec<RunInfo>> {
    runs_where(conn, None)
}

/// True when the file has format 2's per-process state (and `shed`).
fn has_process_state(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('ferret_processes') WHERE name = 'ended_ns'",
        [],
        |r| r.get(0),
    )?)
}

/// Per run: unclosed processes, and what they accepted but did not store.
#[derive(Default)]
struct Unclosed {
    processes: u32,
    lost: u64,
}

fn unclosed(conn: &Connection, only: Option<&str>) -> Result<FxHashMap<i64, Unclosed>> {
    let mut out: FxHashMap<i64, Unclosed> = FxHashMap::default();
    let mut st = conn.prepare(
        "SELECT p.run, p.spans_accepted,
                (SELECT coalesce(sum(b.count), 0) FROM ferret_blocks b WHERE b.run = p.run AND b.process = p.id)
         FROM ferret_processes p JOIN ferret_runs r ON r.id = p.run
         WHERE p.ended_ns IS NULL AND (?1 IS NULL OR r.run_key = ?1)",
    )?;
    let mut rows = st.query([only])?;
    while let Some(r) = rows.next()? {
        let u = out.entry(r.get(0)?).or_default();
        u.processes += 1;
        let (accepted, stored): (i64, i64) = (r.get(1)?, r.get(2)?);
        u.lost += accepted.saturating_sub(stored).max(0) as u64;
    }
    Ok(out)
}

fn runs_where(conn: &Connection, only: Option<&str>) -> Result<Vec<RunInfo>> {
    let mut pids: FxHashMap<i64, Vec<u32>> = FxHashMap::default();
    {
        let mut st = conn.prepare(
            "SELECT p.run, p.pid FROM ferret_processes p JOIN ferret_runs r ON r.id = p.run
             WHERE ?1 IS NULL OR r.run_key = ?1 ORDER BY p.id",
        )?;
        let mut rows = st.query([only])?;
        while let Some(r) = rows.next()? {
            let v = pids.entry(r.get(0)?).or_default();
            let pid: u32 = r.get(1)?;
            if !v.contains(&pid) {
                v.push(pid);
            }
        }
    }
    let v2 = has_process_state(conn)?;
    let mut unclosed = if v2 {
        unclosed(conn, only)?
    } else {
        FxHashMap::default()
    };
    let shed = if v2 { "r.shed" } else { "0" };
    let mut st = conn.prepare(&format!(
        "SELECT r.id, r.run_key, r.label, r.host, r.started_ns, r.spans_accepted, r.dropped_queue,
                r.dropped_write, r.sampled_out, {shed},
                (SELECT sum(count) FROM ferret_blocks b WHERE b.run = r.id),
                (SELECT min(min_start) FROM ferret_blocks b WHERE b.run = r.id),
                (SELECT max(max_end) FROM ferret_blocks b WHERE b.run = r.id)
         FROM ferret_runs r WHERE ?1 IS NULL OR r.run_key = ?1 ORDER BY r.started_ns, r.id"
    ))?;
    let mut rows = st.query([only])?;
    let mut out = vec![];
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let started: i64 = r.get(4)?;
        out.push(RunInfo {
            run_id: r.get(1)?,
            label: r.get(2)?,
            host: r.get(3)?,
            accepted: r.get::<_, i64>(5)? as u64,
            dropped_queue: r.get::<_, i64>(6)? as u64,
            dropped_write: r.get::<_, i64>(7)? as u64,
            sampled_out: r.get::<_, i64>(8)? as u64,
            shed: r.get::<_, i64>(9)? as u64,
            spans: r.get::<_, Option<i64>>(10)?.unwrap_or(0) as u64,
            first_start_ns: r.get::<_, Option<i64>>(11)?.unwrap_or(started),
            last_end_ns: r.get::<_, Option<i64>>(12)?.unwrap_or(started),
            pids: pids.remove(&id).unwrap_or_default(),
            processes_unclosed: unclosed.get(&id).map_or(0, |u| u.processes),
            lost_unclosed: unclosed.remove(&id).map_or(0, |u| u.lost),
        });
    }
    Ok(out)
}

pub(super) fn paths(conn: &Connection) -> Result<Vec<(u32, u32, u32)>> {
    let mut st = conn.prepare("SELECT id, parent, name FROM ferret_paths ORDER BY id")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn threads(conn: &Connection, run: &str) -> Result<Vec<ThreadInfo>> {
    let run = run_db_id(conn, run)?;
    let mut st = conn.prepare(
        "SELECT p.pid, t.tid, t.name FROM ferret_threads t JOIN ferret_processes p ON p.id = t.process
         WHERE p.run = ?1 ORDER BY p.id, t.idx",
    )?;
    let rows = st.query_map([run], |r| {
        Ok(ThreadInfo {
            pid: r.get(0)?,
            tid: r.get::<_, i64>(1)? as u64,
            name: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Lazy span stream over the blocks of one run.
pub(super) struct NativeSpans<'a> {
    conn: &'a Connection,
    run: i64,
    q: SpanQuery,
    names: Vec<String>,
    /// Path id -> name id.
    path_names: Vec<u32>,
    /// (process row id, thread idx) -> OS tid; process row id -> pid.
    tids: FxHashMap<(i64, u32), u64>,
    pids: FxHashMap<i64, u32>,
    page: std::vec::IntoIter<Fetched>,
    /// The heads' fields that blocks are read for (only the part of each
    /// block they need); `None`: whole blocks. Every block fetched and not
    /// decoded yet holds at least what this says.
    reach: Option<HeadFields>,
    last_block: i64,
    /// The last block id to read (see [`NativeSpans::restrict_blocks`]).
    block_hi: i64,
    exhausted: bool,
    dec_state: Option<DecoderState>,
    /// Block buffers to reuse (saves an allocation and page faults per block).
    spare: Vec<Vec<u8>>,
    /// The decoder's arrays, between blocks (see [`BlockDecoder::with_columns`]).
    spare_cols: Columns,
    scratch: BlockSpan,
    pub skipped: u64,
    pub bytes_read: u64,
    pub error: Option<Error>,
}

/// A block fetched and not decoded yet.
struct Fetched {
    id: i64,
    process: i64,
    /// The block, or the part of it the stream's reach needs.
    data: Vec<u8>,
    /// The whole block's length.
    len: usize,
    /// The block row's `min_start` and `max_end`.
    range: (i64, i64),
}

/// The block being decoded, with its id and process.
struct DecoderState {
    decoder: BlockDecoder<Vec<u8>>,
    id: i64,
    /// The block row's `min_start` and `max_end`.
    range: (i64, i64),
    pid: u32,
    process: i64,
    /// Cache of the last thread index looked up, and its OS tid.
    last_thread: u32,
    last_tid: u64,
}

impl<'a> NativeSpans<'a> {
    pub(super) fn new(conn: &'a Connection, run: &str, q: &SpanQuery) -> Result<NativeSpans<'a>> {
        let run = run_db_id(conn, run)?;
        let mut names = vec![String::new()];
        {
            let mut st = conn.prepare("SELECT id, name FROM ferret_names ORDER BY id")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                let name: String = r.get(1)?;
                let id = id as usize;
                if names.len() <= id {
                    names.resize(id + 1, String::new());
                }
                names[id] = name;
            }
        }
        let mut path_names = vec![0u32];
        for (id, _parent, name) in paths(conn)? {
            let id = id as usize;
            if path_names.len() <= id {
                path_names.resize(id + 1, 0);
            }
            path_names[id] = name;
        }
        let mut tids = FxHashMap::default();
        let mut pids = FxHashMap::default();
        {
            let mut st = conn.prepare(
                "SELECT p.id, p.pid, t.idx, t.tid FROM ferret_processes p
                 LEFT JOIN ferret_threads t ON t.process = p.id WHERE p.run = ?1",
            )?;
            let mut rows = st.query([run])?;
            while let Some(r) = rows.next()? {
                let proc_id: i64 = r.get(0)?;
                pids.insert(proc_id, r.get::<_, u32>(1)?);
                if let (Some(idx), Some(tid)) =
                    (r.get::<_, Option<i64>>(2)?, r.get::<_, Option<i64>>(3)?)
                {
                    tids.insert((proc_id, idx as u32), tid as u64);
                }
            }
        }
        Ok(NativeSpans {
            conn,
            run,
            q: q.clone(),
            names,
            path_names,
            tids,
            pids,
            page: Vec::new().into_iter(),
            reach: None,
            last_block: 0,
            block_hi: i64::MAX,
            exhausted: false,
            dec_state: None,
            spare: Vec::new(),
            spare_cols: Columns::default(),
            scratch: BlockSpan::default(),
            skipped: 0,
            bytes_read: 0,
            error: None,
        })
    }

    pub(super) fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |s| s.as_str())
    }

    pub(super) fn name_count(&self) -> usize {
        self.names.len()
    }

    /// The smallest and largest block id of the run's blocks that the
    /// query's time bounds may touch; `None` when there are none.
    pub(super) fn block_range(&self) -> Result<Option<(i64, i64)>> {
        let (since, until) = self.q.bounds();
        // Without a window, two lookups in the (run, id) index; with one,
        // every block row of the run is read for its time columns (77 ms
        // on a 2.4 GB file: 5% of a two-thread analysis, before any
        // thread starts).
        let (sql, params) = if self.q.windowed() {
            (
                "SELECT min(id), max(id) FROM ferret_blocks
                 WHERE run = ?1 AND max_end >= ?2 AND min_start < ?3",
                rusqlite::params![self.run, since, until],
            )
        } else {
            (
                "SELECT (SELECT min(id) FROM ferret_blocks WHERE run = ?1),
                        (SELECT max(id) FROM ferret_blocks WHERE run = ?1)",
                rusqlite::params![self.run],
            )
        };
        let r: (Option<i64>, Option<i64>) = self
            .conn
            .query_row(sql, params, |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(match r {
            (Some(lo), Some(hi)) => Some((lo, hi)),
            _ => None,
        })
    }

    /// From now on, reads only the blocks with ids in `lo..=hi` (from the
    /// start of that range, whatever was read before).
    pub(super) fn restrict_blocks(&mut self, lo: i64, hi: i64) {
        if let Some(st) = self.dec_state.take() {
            self.recycle(st);
        }
        for b in std::mem::take(&mut self.page) {
            if self.spare.len() < PAGE_BLOCKS as usize {
                self.spare.push(b.data);
            }
        }
        self.last_block = lo.saturating_sub(1);
        self.block_hi = hi;
        self.exhausted = false;
    }

    /// Keeps a finished block's buffer and its decoder's arrays for reuse.
    fn recycle(&mut self, st: DecoderState) {
        let (data, cols) = st.decoder.into_parts();
        self.spare_cols = cols;
        if self.spare.len() < PAGE_BLOCKS as usize {
            self.spare.push(data);
        }
    }

    /// Reads whole blocks from now on (for readers of whole spans, or of
    /// heads one by one), after [`NativeSpans::block_heads`] read parts.
    #[inline(always)]
    fn read_whole(&mut self) {
        if self.reach.is_some() {
            self.set_reach(None);
        }
    }

    /// Reads blocks for `reach` from now on (see [`NativeSpans::reach`]).
    /// A reach wider than the blocks fetched have reads them again, from
    /// the first not decoded yet.
    #[inline(never)]
    fn set_reach(&mut self, reach: Option<HeadFields>) {
        let covered = match (self.reach, reach) {
            (None, _) => true,
            (Some(have), Some(want)) => have.contains(want),
            (Some(_), None) => false,
        };
        self.reach = reach;
        if covered {
            return;
        }
        let next = match &self.dec_state {
            Some(st) => Some(st.id),
            None => self.page.as_slice().first().map(|b| b.id),
        };
        if let Some(next) = next {
            self.restrict_blocks(next, self.block_hi);
        }
    }

    fn fetch_page(&mut self) -> Result<()> {
        let (since, until) = self.q.bounds();
        // `typeof` and `length` of a blob do not read its overflow pages.
        let mut st = self.conn.prepare_cached(
            "SELECT id, process, CASE typeof(data) WHEN 'blob' THEN length(data) END,
                    min_start, max_end
             FROM ferret_blocks
             WHERE run = ?1 AND id > ?2 AND id <= ?6 AND max_end >= ?3 AND min_start < ?4
             ORDER BY id LIMIT ?5",
        )?;
        let mut rows = st.query(rusqlite::params![
            self.run,
            self.last_block,
            since,
            until,
            PAGE_BLOCKS,
            self.block_hi
        ])?;
        let mut page = Vec::with_capacity(PAGE_BLOCKS as usize);
        // The blocks are read while the query runs, in its transaction.
        let mut blob: Option<Blob<'_>> = None;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let process: i64 = r.get(1)?;
            let len: Option<i64> = r.get(2)?;
            let range = (r.get(3)?, r.get(4)?);
            self.last_block = id;
            let mut data = self.spare.pop().unwrap_or_default();
            data.clear();
            // Data that is not a blob is an empty block: the decoder refuses
            // it, and counts it once even if the block is fetched again.
            let len = match len {
                Some(len) => {
                    let blob = blob_on(self.conn, &mut blob, id)?;
                    read_block(blob, len as usize, self.reach, &mut data)?;
                    len as usize
                }
                None => 0,
            };
            page.push(Fetched {
                id,
                process,
                data,
                len,
                range,
            });
        }
        if page.is_empty() {
            self.exhausted = true;
        }
        self.page = page.into_iter();
        Ok(())
    }

    /// Moves to the next block; false at the end.
    fn next_block(&mut self) -> bool {
        if let Some(st) = self.dec_state.take() {
            self.recycle(st);
        }
        loop {
            let Some(Fetched {
                id,
                process,
                data,
                len,
                range,
            }) = self.page.next()
            else {
                if self.exhausted {
                    return false;
                }
                if let Err(e) = self.fetch_page() {
                    self.error = Some(e);
                    self.exhausted = true;
                    return false;
                }
                continue;
            };
            self.bytes_read += len as u64;
            let cols = std::mem::take(&mut self.spare_cols);
            let decoder = if data.len() < len {
                BlockDecoder::of_prefix(data, len, cols)
            } else {
                BlockDecoder::with_columns(data, self.q.with_tags, cols)
            };
            match decoder {
                Ok(d) => {
                    self.dec_state = Some(DecoderState {
                        decoder: d,
                        id,
                        range,
                        pid: self.pids.get(&process).copied().unwrap_or(0),
                        process,
                        last_thread: 0,
                        last_tid: self.tids.get(&(process, 0)).copied().unwrap_or(0),
                    });
                    return true;
                }
                Err(_) => self.skipped += 1,
            }
        }
    }

    /// Calls `f` with the fixed fields and name id of every span of the next
    /// block (or what remains of the current one), decoding in a tight loop
    /// with the decoder in locals. Returns how many spans `f` saw, `None`
    /// at the end of the stream.
    ///
    /// `fields` are the fields `f` reads (see
    /// [`BlockDecoder::for_each_head_of`]: the others may be 0); the path
    /// and, with a time window, the start are read whatever it says.
    ///
    /// `ranges`: after the block's spans, give the sink their time range
    /// (first start, last end): a columnar block read whole, its row's
    /// `min_start` and `max_end`, which the writer computes from the same
    /// spans (so that its start column is not decoded); spans fed one by
    /// one, from their own starts and durations.
    ///
    /// Without a time window the loop does not test each span's start (an
    /// open bound keeps every span, as in [`NativeSpans::next_head`]). `f`
    /// is inlined in both loops when it can be (a fold's `head` marked
    /// `#[inline(always)]`): a call per span costs more than the window.
    pub(super) fn block_heads(
        &mut self,
        fields: HeadFields,
        ranges: bool,
        sink: &mut impl super::HeadSink,
    ) -> Option<u64> {
        let windowed = self.q.windowed();
        // Ranges of spans fed one by one come from their starts and ends.
        let mut fields = fields | HeadFields::PATH;
        if ranges {
            fields = fields | HeadFields::DURATION;
        }
        let starts = if windowed || ranges {
            HeadFields::START
        } else {
            HeadFields::NONE
        };
        self.set_reach(Some(fields | starts));
        if self.dec_state.is_none() && !self.next_block() {
            return None;
        }
        let mut seen = 0u64;
        if let Some(mut st) = self.dec_state.take() {
            let names = &self.path_names[..];
            let name = |h: &SpanHead| names.get(h.path as usize).copied().unwrap_or(0);
            let (mut first, mut last) = (i64::MAX, i64::MIN);
            let mut range_of = |h: &SpanHead| {
                if ranges {
                    first = first.min(h.start_ns);
                    last = last.max(span_end(h.start_ns, h.dur_ns));
                }
            };
            let r = if !windowed {
                // A columnar block goes to the sink as columns, with its
                // row's time range; a row-wise one (or a read of the wide
                // fields) span by span.
                match st.decoder.head_columns(fields) {
                    Ok(Some(c)) => {
                        seen = c.len() as u64;
                        sink.columns(&c, names);
                        if seen > 0 {
                            (first, last) = st.range;
                        }
                        Ok(())
                    }
                    Ok(None) => st.decoder.for_each_head_of(
                        fields | starts,
                        #[inline(always)]
                        |h| {
                            seen += 1;
                            range_of(h);
                            sink.head(h, name(h));
                        },
                    ),
                    Err(e) => Err(e),
                }
            } else {
                let (since, until) = self.q.bounds();
                st.decoder.for_each_head_of(
                    fields | starts,
                    #[inline(always)]
                    |h| {
                        if h.start_ns < since || h.start_ns >= until {
                            return;
                        }
                        seen += 1;
                        range_of(h);
                        sink.head(h, name(h));
                    },
                )
            };
            if ranges && seen > 0 {
                sink.range(first, last);
            }
            if r.is_err() {
                self.skipped += 1;
            }
            // Recycle the buffer and move on.
            self.dec_state = Some(st);
            self.next_block();
        }
        Some(seen)
    }

    /// The next span's fixed fields and name id, without building a record.
    #[inline]
    pub(super) fn next_head(&mut self) -> Option<(SpanHead, u32)> {
        self.read_whole();
        loop {
            if let Some(st) = &mut self.dec_state {
                match st.decoder.next_head() {
                    Ok(Some(h)) => {
                        if !self.q.keeps(h.start_ns) {
                            continue;
                        }
                        let name = self.path_names.get(h.path as usize).copied().unwrap_or(0);
                        return Some((h, name));
                    }
                    Ok(None) => {}
                    Err(_) => self.skipped += 1,
                }
            }
            if !self.next_block() {
                return None;
            }
        }
    }

    #[inline]
    pub(super) fn next_into(&mut self, out: &mut SpanRecord) -> bool {
        self.read_whole();
        let with_tags = self.q.with_tags;
        loop {
            if let Some(st) = &mut self.dec_state {
                let s = &mut self.scratch;
                if with_tags {
                    std::mem::swap(&mut s.tags, &mut out.tags);
                }
                let r = st.decoder.next_into(s);
                if with_tags {
                    std::mem::swap(&mut s.tags, &mut out.tags);
                }
                match r {
                    Ok(true) => {
                        let h = &s.head;
                        if !self.q.keeps(h.start_ns) {
                            continue;
                        }
                        fill(out, s, st, &self.path_names, &self.tids, with_tags);
                        return true;
                    }
                    Ok(false) => {}
                    Err(_) => self.skipped += 1,
                }
            }
            if !self.next_block() {
                return false;
            }
        }
    }

    /// Like [`next_into`](Self::next_into), but reads only spans whose
    /// fixed fields `keep` accepts: the others are skipped before their
    /// status and tags are decoded. Returns false at the end.
    pub(super) fn next_into_where(
        &mut self,
        out: &mut SpanRecord,
        mut keep: impl FnMut(&SpanHead) -> bool,
    ) -> bool {
        self.read_whole();
        let with_tags = self.q.with_tags;
        loop {
            if let Some(st) = &mut self.dec_state {
                let s = &mut self.scratch;
                if with_tags {
                    std::mem::swap(&mut s.tags, &mut out.tags);
                }
                let q = &self.q;
                let r = st
                    .decoder
                    .next_into_where(s, |h| q.keeps(h.start_ns) && keep(h));
                if with_tags {
                    std::mem::swap(&mut s.tags, &mut out.tags);
                }
                match r {
                    Ok(Some(true)) => {
                        fill(out, s, st, &self.path_names, &self.tids, with_tags);
                        return true;
                    }
                    Ok(Some(false)) => continue,
                    Ok(None) => {}
                    Err(_) => self.skipped += 1,
                }
            }
            if !self.next_block() {
                return false;
            }
        }
    }
}

/// The page's blob handle, on block `id`: opened on the page's first
/// block, reopened on the next ones (a seek by rowid).
fn blob_on<'b, 'c>(
    conn: &'c Connection,
    blob: &'b mut Option<Blob<'c>>,
    id: i64,
) -> Result<&'b mut Blob<'c>> {
    Ok(match blob {
        Some(b) => {
            b.reopen(id)?;
            b
        }
        None => {
            blob.insert(conn.blob_open(DatabaseName::Main, "ferret_blocks", "data", id, true)?)
        }
    })
}

/// Reads the block of `len` bytes that `blob` is open on into `data`:
/// whole, or with a `reach` only the part that the heads of those fields
/// need (its header first, then up to the end of their last column). A
/// header that does not decode is all that is read: the decoder refuses
/// the block.
fn read_block(
    blob: &Blob<'_>,
    len: usize,
    reach: Option<HeadFields>,
    data: &mut Vec<u8>,
) -> Result<()> {
    data.clear();
    let Some(fields) = reach else {
        return read_to(blob, len, data);
    };
    read_to(blob, len.min(BLOCK_HEADER_MAX), data)?;
    match head_prefix_len(data, len, fields) {
        Ok(end) => read_to(blob, end.max(data.len()), data),
        Err(_) => Ok(()),
    }
}

/// Appends the blob's bytes from `data.len()` to `end` to `data`, without
/// zeroing them first.
fn read_to(blob: &Blob<'_>, end: usize, data: &mut Vec<u8>) -> Result<()> {
    let at = data.len();
    data.reserve(end - at);
    let n = blob
        .raw_read_at_exact(&mut data.spare_capacity_mut()[..end - at], at)?
        .len();
    // SAFETY: `raw_read_at_exact` initialized the `n` bytes after `at`.
    unsafe { data.set_len(at + n) };
    Ok(())
}

/// Fills `out` with the span just decoded into `s` (its tags are in `out`
/// already when the stream reads tags).
#[inline(always)]
fn fill(
    out: &mut SpanRecord,
    s: &mut BlockSpan,
    st: &mut DecoderState,
    path_names: &[u32],
    tids: &FxHashMap<(i64, u32), u64>,
    with_tags: bool,
) {
    let h = &s.head;
    out.head = *h;
    out.name = path_names.get(h.path as usize).copied().unwrap_or(0);
    out.recorded = Recorded {
        duration: true,
        path_and_children: true,
    };
    out.status = std::mem::take(&mut s.status);
    if !with_tags {
        out.tags.clear();
    }
    out.pid = st.pid;
    if h.thread != st.last_thread {
        st.last_thread = h.thread;
        st.last_tid = tids.get(&(st.process, h.thread)).copied().unwrap_or(0);
    }
    out.tid = st.last_tid;
}
