//! Reading ferret-io (Python) files: the BeaverDB `beaver_logs` table, one
//! JSON span per row. Rows are stepped in start order a page at a time
//! (keyset pagination on the `(log_name, timestamp)` primary key), filtered by
//! run per row, and parsed without keeping anything but interned names.

use super::{Recorded, RunInfo, SpanQuery, SpanRecord};
use crate::error::{Error, Result};
use ferret_format::codec::SpanHead;
use ferret_format::span_end;
use ferret_format::{Status, TagValue};
use rusqlite::Connection;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// The log name ferret-io writes spans under.
pub const DEFAULT_NAMESPACE: &str = "_ferret_trace";

/// Rows fetched per query.
const PAGE_ROWS: i64 = 1024;

#[derive(Deserialize)]
struct JsonSpan<'a> {
    #[serde(borrow)]
    span_id: Cow<'a, str>,
    #[serde(borrow, default)]
    parent_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    run_id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    start_time: f64,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(borrow, default)]
    tags: Option<&'a RawValue>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct JsonRunOnly<'a> {
    #[serde(borrow)]
    run_id: Cow<'a, str>,
    start_time: f64,
    #[serde(default)]
    end_time: Option<f64>,
    #[serde(default)]
    duration: Option<f64>,
}

/// 64-bit id for a ferret-io span id (a 32-digit hex UUID, or any string):
/// a fast 64-bit hash of its bytes, 8 at a time, with a final avalanche.
/// For n ids the chance of any collision is about n²/2⁶⁵ (1e-7 for 1M spans).
pub(crate) fn span_key(s: &str) -> u64 {
    #[inline(always)]
    fn mix(mut h: u64) -> u64 {
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    let b = s.as_bytes();
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15 ^ b.len() as u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = mix(h ^ w);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = mix(h ^ u64::from_le_bytes(tail));
    h.max(1)
}

/// The key of the last parent id seen: a long-running service's spans
/// mostly share one parent (its long-open root), and comparing 32 bytes
/// is cheaper than hashing them again.
#[derive(Default)]
pub(crate) struct ParentKeys {
    last: Vec<u8>,
    key: u64,
}

impl ParentKeys {
    /// `span_key(id)`, from the cache when `id` is the last id asked for.
    #[inline]
    pub(crate) fn key(&mut self, id: &str) -> u64 {
        if self.key == 0 || !same_bytes(id.as_bytes(), &self.last) {
            self.last.clear();
            self.last.extend_from_slice(id.as_bytes());
            self.key = span_key(id);
        }
        self.key
    }
}

/// A span's start and duration in ns, or `None` when they do not fit:
/// a start outside ±292 years of the epoch (i64 ns), or an end past it.
/// Such a row is counted as skipped rather than read with saturated times
/// (which would give wrong durations and out-of-order exports).
fn span_times(start_s: f64, dur_s: Option<f64>) -> Option<(i64, Option<u64>)> {
    const LIMIT: f64 = 9.2e18; // just under i64::MAX ns
    let start = start_s * 1e9;
    if !start.is_finite() || start.abs() >= LIMIT {
        return None;
    }
    let start = start.round() as i64;
    let dur = dur_to_ns(dur_s);
    if let Some(d) = dur {
        if d as f64 >= LIMIT || start.checked_add(d as i64).is_none() {
            return None;
        }
    }
    Some((start, dur))
}

fn secs_to_ns(s: f64) -> i64 {
    (s * 1e9).round() as i64
}

fn dur_to_ns(d: Option<f64>) -> Option<u64> {
    match d {
        Some(d) if d.is_finite() && d >= 0.0 => Some((d * 1e9).round() as u64),
        _ => None,
    }
}

pub(super) fn latest_run(conn: &Connection, ns: &str) -> Result<String> {
    let mut st = conn.prepare(
        "SELECT data FROM beaver_logs WHERE log_name = ?1 ORDER BY timestamp DESC LIMIT 1000",
    )?;
    let mut rows = st.query([ns])?;
    let mut any = false;
    while let Some(r) = rows.next()? {
        any = true;
        if let Ok(s) = r.get_ref(0)?.as_str() {
            if let Ok(j) = serde_json::from_str::<JsonRunOnly>(s) {
                return Ok(j.run_id.into_owned());
            }
        }
    }
    if any {
        // The newest rows are all malformed: fall back to a full pass.
        if let Some(last) = runs(conn, ns)?.into_iter().max_by_key(|r| r.first_start_ns) {
            return Ok(last.run_id);
        }
    }
    Err(Error::NoRuns)
}

/// True when `run` appears verbatim in the JSON text of a row that holds
/// it: printable ASCII that no JSON writer escapes. Other ids (`café-run`,
/// which Python writes `caf\u00e9-run`; `say "hi"`; `dom\user`) may be
/// escaped in the file, so rows cannot be pre-filtered by their text and
/// only the decoded `run_id` field decides.
pub(super) fn verbatim_in_json(run: &str) -> bool {
    run.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' && b != b'/')
}

pub(super) fn run_exists(conn: &Connection, ns: &str, run: &str) -> Result<bool> {
    // Escaped ids: match every row (instr of an empty string is 1).
    let needle = if verbatim_in_json(run) { run } else { "" };
    let mut st = conn.prepare(
        "SELECT data FROM beaver_logs WHERE log_name = ?1 AND instr(data, ?2) > 0 ORDER BY timestamp DESC",
    )?;
    let mut rows = st.query([ns, needle])?;
    while let Some(r) = rows.next()? {
        if let Ok(s) = r.get_ref(0)?.as_str() {
            if let Ok(j) = serde_json::from_str::<JsonRunOnly>(s) {
                if j.run_id == run {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

pub(super) fn some_runs(conn: &Connection, ns: &str, n: usize) -> Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT data FROM beaver_logs WHERE log_name = ?1 ORDER BY timestamp DESC LIMIT 200000",
    )?;
    let mut rows = st.query([ns])?;
    let mut out: Vec<String> = vec![];
    while let Some(r) = rows.next()? {
        if let Ok(s) = r.get_ref(0)?.as_str() {
            if let Ok(j) = serde_json::from_str::<JsonRunOnly>(s) {
                if !out.iter().any(|x| *x == j.run_id) {
                    out.push(j.run_id.into_owned());
                    if out.len() >= n {
                        break;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// One pass over every row; memory grows with the number of runs.
pub(super) fn runs(conn: &Connection, ns: &str) -> Result<Vec<RunInfo>> {
    let mut st = conn.prepare("SELECT data FROM beaver_logs WHERE log_name = ?1")?;
    let mut rows = st.query([ns])?;
    let mut by_run: FxHashMap<String, RunInfo> = FxHashMap::default();
    while let Some(r) = rows.next()? {
        let Ok(s) = r.get_ref(0)?.as_str() else {
            continue;
        };
        let Ok(j) = serde_json::from_str::<JsonRunOnly>(s) else {
            continue;
        };
        let start = secs_to_ns(j.start_time);
        let end = match (j.end_time, dur_to_ns(j.duration)) {
            (Some(e), _) if e.is_finite() => secs_to_ns(e),
            (_, Some(d)) => span_end(start, d),
            _ => start,
        };
        let info = match by_run.get_mut(j.run_id.as_ref()) {
            Some(i) => i,
            None => by_run.entry(j.run_id.to_string()).or_insert(RunInfo {
                run_id: j.run_id.to_string(),
                label: None,
                host: None,
                first_start_ns: start,
                last_end_ns: end,
                spans: 0,
                pids: vec![],
                accepted: 0,
                dropped_queue: 0,
                dropped_write: 0,
                sampled_out: 0,
                ..Default::default()
            }),
        };
        info.spans += 1;
        info.accepted += 1;
        info.first_start_ns = info.first_start_ns.min(start);
        info.last_end_ns = info.last_end_ns.max(end);
    }
    let mut v: Vec<RunInfo> = by_run.into_values().collect();
    v.sort_by(|a, b| {
        a.first_start_ns
            .cmp(&b.first_start_ns)
            .then(a.run_id.cmp(&b.run_id))
    });
    Ok(v)
}

fn json_to_tag(v: serde_json::Value) -> TagValue {
    use serde_json::Value;
    match v {
        Value::Null => TagValue::Null,
        Value::Bool(b) => TagValue::Bool(b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                TagValue::I64(i)
            } else if let Some(u) = n.as_u64() {
                TagValue::U64(u)
            } else {
                TagValue::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => TagValue::Str(s),
        other => TagValue::Json(other.to_string()),
    }
}

/// Raw rows of one page, handed from the reader thread to the parser.
#[derive(Default)]
struct RawPage {
    text: Vec<u8>,
    ends: Vec<usize>,
    /// Rows whose `data` was not text.
    not_text: u64,
    /// Empty, or one entry per row when the reader thread parsed the page
    /// itself (see [`pre_parse`]).
    pre: Vec<Pre>,
    /// Rows whose timestamp is not a number: out of start order, so this
    /// run's spans among them are counted as skipped, not read.
    unordered: bool,
}

/// A row the reader thread already read with the fast path.
enum Pre {
    Span(PreSpan),
    /// Another run's span.
    OtherRun,
    /// Not the common shape: the consumer parses it with serde_json.
    Declined,
}

/// The parsed fields of a span row; strings are byte ranges of the page.
struct PreSpan {
    span_key: u64,
    parent_key: Option<u64>,
    name: (u32, u32),
    start_ns: i64,
    duration_ns: Option<u64>,
    status: Option<(u32, u32)>,
}

/// Parses a page on the reader thread. The reader does this only when the
/// consumer is behind (the channel is full), so that parsing spreads over
/// both cores without the reader ever being the one that waits.
fn pre_parse(page: &mut RawPage, run: &str) {
    let base = page.text.as_ptr() as usize;
    let range = |s: &str| -> (u32, u32) {
        let at = (s.as_ptr() as usize - base) as u32;
        (at, at + s.len() as u32)
    };
    let mut start = 0;
    let mut parents = ParentKeys::default();
    page.pre.reserve(page.ends.len());
    for &end in &page.ends {
        let text = &page.text[start..end];
        start = end;
        page.pre.push(match super::fio_fast::parse(text) {
            Some(r) if !same_bytes(r.run_id.as_bytes(), run.as_bytes()) => Pre::OtherRun,
            Some(r) => match span_times(r.start_time, r.duration) {
                Some((start_ns, duration_ns)) => Pre::Span(PreSpan {
                    span_key: span_key(r.span_id),
                    parent_key: r.parent_id.map(|p| parents.key(p)),
                    name: range(r.name),
                    start_ns,
                    duration_ns,
                    status: r.status.map(range),
                }),
                None => Pre::Declined, // serde_json rejects it the same way
            },
            None => Pre::Declined,
        });
    }
}

enum Feed {
    Page(RawPage),
    Failed(Error),
}

/// The reader thread: steps pages of rows out of SQLite (its own
/// connection) and sends their raw text; the consumer parses. At most
/// `QUEUE_PAGES` pages wait in the channel, so memory stays bounded.
fn read_pages(
    path: PathBuf,
    ns: String,
    run: String,
    q: SpanQuery,
    tx: crossbeam_channel::Sender<Feed>,
    back: crossbeam_channel::Receiver<RawPage>,
) {
    let result = (|| -> Result<()> {
        let conn = super::connect(&path)?;
        let since = q.since_ns.map_or(f64::NEG_INFINITY, |s| s as f64 / 1e9);
        let until = q.until_ns.map_or(f64::INFINITY, |s| s as f64 / 1e9);
        // Without --until, a timestamp of +inf is read too (then counted).
        let unbounded = q.until_ns.is_none();
        // Keyset pagination on (timestamp, rowid): a table without its
        // primary key can hold many rows with one timestamp, and a key on
        // the timestamp alone would skip the rest of a tie at each page
        // boundary. BeaverDB's table has the unique key (log_name,
        // timestamp), so ties cannot occur and the timestamp alone is the
        // key (the cheaper query); so it is for a WITHOUT ROWID table.
        let rowid = conn
            .prepare("SELECT rowid FROM beaver_logs LIMIT 0")
            .is_ok();
        let ties = rowid && !unique_timestamps(&conn);
        let mut last: Option<(f64, i64)> = None;
        // Rows of other runs are dropped before parsing: a SIMD substring
        // search for the run id is much cheaper than SQLite's instr() or a
        // JSON parse. (The parser still checks the `run_id` field itself.)
        let needle = if verbatim_in_json(&run) {
            run.as_str()
        } else {
            ""
        };
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        // Rows of one layout hold the run id at one offset: look there
        // first (one comparison), and search the row only when it is not
        // there. A hit there is a hit of the search, so the filter is the
        // same.
        let mut run_at = 0usize;
        let mut has_run = |t: &[u8]| -> bool {
            if t.get(run_at..run_at + needle.len()) == Some(needle.as_bytes()) {
                return true;
            }
            match finder.find(t) {
                Some(at) => {
                    run_at = at;
                    true
                }
                None => false,
            }
        };
        loop {
            // Rows carry their rowid, not their timestamp: the rowid comes
            // with the index entry, while decoding the timestamp column
            // cost ~5% of all the instructions of an analysis. The page's
            // last row then gives its timestamp by a lookup on the rowid.
            // (A table without rowids selects the timestamp itself.)
            let lower_clause = match (last, ties) {
                (None, _) => "timestamp >= ?2 AND ?5 = ?5",
                (Some(_), true) => "(timestamp, rowid) > (?2, ?5)",
                (Some(_), false) => "timestamp > ?2 AND ?5 = ?5",
            };
            let (lower, lower_id) = last.unwrap_or((since, 0));
            // One comparison on the upper bound, not an OR of two:
            // SQLite then stops the index range there by itself.
            let upper = if unbounded {
                "timestamp <= ?3 AND ?6 = ?6"
            } else {
                "timestamp < ?3 AND ?6 = ?6"
            };
            let sql = format!(
                "SELECT data, {} FROM beaver_logs WHERE log_name = ?1 AND {lower_clause} AND {upper} ORDER BY {} LIMIT ?4",
                if rowid { "rowid" } else { "timestamp" },
                if ties { "timestamp, rowid" } else { "timestamp" },
            );
            // A page the consumer is done with, or a new one: reusing
            // pages spares a fresh multi-megabyte allocation (page faults,
            // and copies as it grows) per page.
            let mut page = match back.try_recv() {
                Ok(mut p) => {
                    p.text.clear();
                    p.ends.clear();
                    p.pre.clear();
                    p.not_text = 0;
                    p.unordered = false;
                    p
                }
                Err(_) => RawPage {
                    text: Vec::with_capacity(PAGE_ROWS as usize * 512),
                    ends: Vec::with_capacity(PAGE_ROWS as usize),
                    not_text: 0,
                    pre: Vec::new(),
                    unordered: false,
                },
            };
            let mut n = 0;
            {
                let mut st = conn.prepare_cached(&sql)?;
                let mut rows = st.query(rusqlite::params![
                    ns, lower, until, PAGE_ROWS, lower_id, unbounded
                ])?;
                while let Some(r) = rows.next()? {
                    n += 1;
                    if n == PAGE_ROWS {
                        // Where the next page starts. The statement is still
                        // open, so the lookup reads the same snapshot.
                        last = Some(if rowid {
                            let id: i64 = r.get(1)?;
                            (timestamp_of(&conn, id)?, id)
                        } else {
                            (r.get(1)?, 0)
                        });
                    }
                    match r.get_ref(0)? {
                        rusqlite::types::ValueRef::Text(t) => {
                            if has_run(t) {
                                page.text.extend_from_slice(t);
                                page.ends.push(page.text.len());
                            }
                        }
                        _ => page.not_text += 1,
                    }
                }
            }
            if n == 0 {
                break;
            }
            if !q.with_tags && tx.is_full() {
                pre_parse(&mut page, &run);
            }
            if tx.send(Feed::Page(page)).is_err() {
                return Ok(()); // the consumer is gone
            }
            if n < PAGE_ROWS {
                break; // a short page is the last
            }
        }
        // Rows whose timestamp is not a number (NULL in a table without
        // the NOT NULL constraint, text, a blob) have no place in start
        // order: the consumer counts this run's among them as skipped.
        if !q.windowed() {
            // SQLite orders NULL before numbers and text and blobs after
            // them, so two index range seeks find these rows without a
            // pass over the whole log (typeof() would read every entry:
            // 0.1 s of a 1M-span file's 0.28 s analysis).
            let mut st = conn.prepare(
                "SELECT data FROM beaver_logs WHERE log_name = ?1 AND timestamp IS NULL \
                 UNION ALL \
                 SELECT data FROM beaver_logs WHERE log_name = ?1 AND timestamp >= ''",
            )?;
            let mut rows = st.query([&ns])?;
            let mut page = RawPage {
                unordered: true,
                ..RawPage::default()
            };
            while let Some(r) = rows.next()? {
                match r.get_ref(0)? {
                    rusqlite::types::ValueRef::Text(t) => {
                        if has_run(t) {
                            page.text.extend_from_slice(t);
                            page.ends.push(page.text.len());
                        }
                    }
                    _ => page.not_text += 1,
                }
                if page.ends.len() >= PAGE_ROWS as usize {
                    let full = std::mem::replace(
                        &mut page,
                        RawPage {
                            unordered: true,
                            ..RawPage::default()
                        },
                    );
                    if tx.send(Feed::Page(full)).is_err() {
                        return Ok(());
                    }
                }
            }
            if !page.ends.is_empty() || page.not_text > 0 {
                let _ = tx.send(Feed::Page(page));
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = tx.send(Feed::Failed(e));
    }
}

/// The timestamp of the row `id` of `beaver_logs`.
fn timestamp_of(conn: &Connection, id: i64) -> Result<f64> {
    Ok(conn
        .prepare_cached("SELECT timestamp FROM beaver_logs WHERE rowid = ?1")?
        .query_row([id], |r| r.get(0))?)
}

/// True when `beaver_logs` has a unique index on exactly `(log_name,
/// timestamp)` (BeaverDB's primary key): no two rows of a log share a
/// timestamp.
fn unique_timestamps(conn: &Connection) -> bool {
    let unique: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_list('beaver_logs') WHERE \"unique\" = 1")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .unwrap_or_default();
    unique.iter().any(|idx| {
        conn.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
            .and_then(|mut st| {
                st.query_map([idx], |r| r.get::<_, Option<String>>(0))?
                    .collect::<rusqlite::Result<Vec<Option<String>>>>()
            })
            .is_ok_and(|cols| cols == [Some("log_name".to_owned()), Some("timestamp".to_owned())])
    })
}

/// Pages that may wait between the reader thread and the parser.
const QUEUE_PAGES: usize = 2;

/// Lazy span stream over the rows of one run: a reader thread steps SQLite
/// while this side parses JSON, so the two overlap on two cores. Rows are
/// parsed one at a time, straight into the caller's record.
pub(super) struct FerretIoSpans {
    names: Vec<Box<str>>,
    name_ids: NameIds,
    parents: ParentKeys,
    with_tags: bool,
    run: String,
    /// The page being read, and the index of its next row.
    page: RawPage,
    row: usize,
    rx: crossbeam_channel::Receiver<Feed>,
    /// Pages read, back to the reader for reuse.
    back: crossbeam_channel::Sender<RawPage>,
    exhausted: bool,
    pub skipped: u64,
    pub bytes_read: u64,
    pub error: Option<Error>,
}

impl FerretIoSpans {
    pub(super) fn new(path: &Path, ns: &str, run: &str, q: &SpanQuery) -> Result<FerretIoSpans> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_PAGES);
        let (back_tx, back) = crossbeam_channel::bounded(QUEUE_PAGES + 1);
        let (path, ns2, run2, q2) = (path.to_path_buf(), ns.to_owned(), run.to_owned(), q.clone());
        std::thread::Builder::new()
            .name("ferret-io-reader".into())
            .spawn(move || read_pages(path, ns2, run2, q2, tx, back))?;
        Ok(FerretIoSpans::from_feed(rx, back_tx, run, q.with_tags))
    }

    /// The consumer side alone, reading pages from `rx` and returning
    /// them through `back`.
    fn from_feed(
        rx: crossbeam_channel::Receiver<Feed>,
        back: crossbeam_channel::Sender<RawPage>,
        run: &str,
        with_tags: bool,
    ) -> Self {
        FerretIoSpans {
            back,
            names: vec![],
            name_ids: NameIds::default(),
            parents: ParentKeys::default(),
            with_tags,
            run: run.to_owned(),
            page: RawPage::default(),
            row: 0,
            rx,
            exhausted: false,
            skipped: 0,
            bytes_read: 0,
            error: None,
        }
    }

    pub(super) fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |s| s)
    }

    pub(super) fn name_count(&self) -> usize {
        self.names.len()
    }

    pub(super) fn next_into(&mut self, out: &mut SpanRecord) -> bool {
        loop {
            while self.row < self.page.ends.len() {
                let start = match self.row {
                    0 => 0,
                    r => self.page.ends[r - 1],
                };
                let text = &self.page.text[start..self.page.ends[self.row]];
                let mut names = Interner {
                    names: &mut self.names,
                    ids: &mut self.name_ids,
                };
                let row = match self.page.pre.get(self.row) {
                    None => parse_row(
                        text,
                        &self.run,
                        self.with_tags,
                        &mut names,
                        &mut self.parents,
                        out,
                    ),
                    Some(Pre::Span(p)) => {
                        let at = |(a, b): (u32, u32)| {
                            let bytes = &self.page.text[a as usize..b as usize];
                            debug_assert!(bytes.is_ascii());
                            // SAFETY: `pre_parse` took these ranges from `&str`s
                            // the fast path returned for this very page's text
                            // (unchanged since), so they are whole UTF-8 texts
                            // (ASCII, in fact: the fast path declines other bytes).
                            unsafe { std::str::from_utf8_unchecked(bytes) }
                        };
                        fill(
                            out,
                            &mut names,
                            Fields {
                                span_key: p.span_key,
                                parent_key: p.parent_key,
                                name: at(p.name),
                                start_ns: p.start_ns,
                                duration_ns: p.duration_ns,
                                status: p.status.map(at),
                            },
                        );
                        out.tags.clear();
                        Row::Span
                    }
                    Some(Pre::OtherRun) => Row::OtherRun,
                    Some(Pre::Declined) => {
                        parse_row_serde(text, &self.run, self.with_tags, &mut names, out)
                    }
                };
                self.row += 1;
                match row {
                    Row::Span if self.page.unordered => self.skipped += 1,
                    Row::Span => return true,
                    Row::OtherRun => {}
                    Row::Malformed => self.skipped += 1,
                }
            }
            if self.exhausted {
                return false;
            }
            match self.rx.recv() {
                Ok(Feed::Page(raw)) => {
                    self.skipped += raw.not_text;
                    self.bytes_read += raw.text.len() as u64;
                    let done = std::mem::replace(&mut self.page, raw);
                    let _ = self.back.try_send(done);
                    self.row = 0;
                }
                Ok(Feed::Failed(e)) => {
                    self.error = Some(e);
                    self.exhausted = true;
                }
                Err(_) => self.exhausted = true,
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Row {
    Span,
    OtherRun,
    Malformed,
}

/// Span names seen so far, by id.
struct Interner<'a> {
    names: &'a mut Vec<Box<str>>,
    ids: &'a mut NameIds,
}

/// Slots in [`NameIds`]' cache (a power of two).
const NAME_SLOTS: usize = 4096;

/// Name ids by text: a hash map, with a direct-mapped cache in front of it.
/// A row's name is looked up once per span; with a few hundred names the
/// map's string hashing and `memcmp` calls cost more than the rest of the
/// lookup. The cache slot comes from the name's length and its first and
/// last eight bytes (no pass over the text), and a hit is confirmed by an
/// inline comparison with the interned text, so a slot shared by two names
/// only sends one of them to the map.
#[derive(Default)]
pub(crate) struct NameIds {
    map: FxHashMap<Box<str>, u32>,
    /// `id + 1` of the last name that fell in each slot; 0 when empty.
    /// Allocated on first use.
    slots: Vec<u32>,
}

/// The cache slot of a name.
#[inline]
fn name_slot(b: &[u8]) -> usize {
    let n = b.len();
    let (head, tail) = if n >= 8 {
        let w = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        (w(0), w(n - 8))
    } else {
        let mut t = [0u8; 8];
        t[..n].copy_from_slice(b);
        (u64::from_le_bytes(t), 0)
    };
    let h = (head ^ tail.rotate_left(29) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 52) as usize & (NAME_SLOTS - 1)
}

/// `a == b`, compared inline a word at a time (for the span and
/// run ids of a row, where a `memcmp` call costs more than the comparison).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let w = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let mut i = 0;
    while i + 8 < n {
        if w(a, i) != w(b, i) {
            return false;
        }
        i += 8;
    }
    w(a, n - 8) == w(b, n - 8)
}

impl Interner<'_> {
    #[inline]
    fn intern(&mut self, name: &str) -> u32 {
        let slot = name_slot(name.as_bytes());
        if let Some(&c) = self.ids.slots.get(slot) {
            if let Some(known) = c.checked_sub(1).and_then(|id| self.names.get(id as usize)) {
                if same_bytes(known.as_bytes(), name.as_bytes()) {
                    return c - 1;
                }
            }
        }
        self.intern_slow(name, slot)
    }

    #[cold]
    fn intern_slow(&mut self, name: &str, slot: usize) -> u32 {
        let id = match self.ids.map.get(name) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.names.push(name.into());
                self.ids.map.insert(name.into(), id);
                id
            }
        };
        if self.ids.slots.is_empty() {
            self.ids.slots = vec![0; NAME_SLOTS];
        }
        self.ids.slots[slot] = id.saturating_add(1);
        id
    }
}

/// Parses one row into `out`: through the fast path when tags are not
/// wanted and the row has the common shape, else through serde_json.
fn parse_row(
    text: &[u8],
    run: &str,
    with_tags: bool,
    names: &mut Interner<'_>,
    parents: &mut ParentKeys,
    out: &mut SpanRecord,
) -> Row {
    if !with_tags {
        if let Some(r) = super::fio_fast::parse(text) {
            if !same_bytes(r.run_id.as_bytes(), run.as_bytes()) {
                return Row::OtherRun;
            }
            let Some((start_ns, duration_ns)) = span_times(r.start_time, r.duration) else {
                return Row::Malformed;
            };
            fill(
                out,
                names,
                Fields {
                    span_key: span_key(r.span_id),
                    parent_key: r.parent_id.map(|p| parents.key(p)),
                    name: r.name,
                    start_ns,
                    duration_ns,
                    status: r.status,
                },
            );
            out.tags.clear();
            return Row::Span;
        }
    }
    parse_row_serde(text, run, with_tags, names, out)
}

/// The fields of a span row, however it was parsed.
struct Fields<'a> {
    span_key: u64,
    parent_key: Option<u64>,
    name: &'a str,
    start_ns: i64,
    duration_ns: Option<u64>,
    status: Option<&'a str>,
}

fn fill(out: &mut SpanRecord, names: &mut Interner<'_>, f: Fields<'_>) {
    out.name = names.intern(f.name);
    out.status = match f.status {
        None | Some("ok") => Status::Ok,
        Some(s) => Status::from_text(s),
    };
    out.head = SpanHead {
        id: f.span_key,
        parent: f.parent_key.unwrap_or(0),
        start_ns: f.start_ns,
        dur_ns: f.duration_ns.unwrap_or(0),
        error: out.status.is_error(),
        ..SpanHead::default()
    };
    out.recorded = Recorded {
        duration: f.duration_ns.is_some(),
        path_and_children: false,
    };
    out.pid = 0;
    out.tid = 0;
}

fn parse_row_serde(
    text: &[u8],
    run: &str,
    with_tags: bool,
    names: &mut Interner<'_>,
    out: &mut SpanRecord,
) -> Row {
    let j: JsonSpan = match serde_json::from_slice(text) {
        Ok(j) => j,
        Err(_) => return Row::Malformed,
    };
    if j.run_id != run {
        return Row::OtherRun;
    }
    if !j.start_time.is_finite() {
        return Row::Malformed;
    }
    let tags = if with_tags {
        // Keep the tags in the file's order (ferret-io prints them so).
        match j
            .tags
            .map(|t| serde_json::from_str::<Option<OrderedTags>>(t.get()))
        {
            None | Some(Ok(None)) => vec![],
            Some(Ok(Some(OrderedTags(m)))) => {
                m.into_iter().map(|(k, v)| (k, json_to_tag(v))).collect()
            }
            _ => return Row::Malformed,
        }
    } else {
        vec![]
    };
    let Some((start_ns, duration_ns)) = span_times(j.start_time, j.duration) else {
        return Row::Malformed;
    };
    fill(
        out,
        names,
        Fields {
            span_key: span_key(&j.span_id),
            parent_key: j.parent_id.as_deref().map(span_key),
            name: &j.name,
            start_ns,
            duration_ns,
            status: j.status.as_deref(),
        },
    );
    out.tags = tags;
    Row::Span
}

/// A JSON object's entries in document order.
struct OrderedTags(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for OrderedTags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedTags;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<OrderedTags, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = m.next_entry::<String, serde_json::Value>()? {
                    v.push(e);
                }
                Ok(OrderedTags(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// One row for the tail reader ([`super::tail`]), parsed exactly as a scan
/// parses it: `Some(true)` a span of `run` (in `out`, tags not decoded),
/// `Some(false)` another run's span, `None` a malformed row.
pub(super) fn parse_tail_row(
    text: &[u8],
    run: &str,
    names: &mut Vec<Box<str>>,
    ids: &mut NameIds,
    parents: &mut ParentKeys,
    out: &mut SpanRecord,
) -> Option<bool> {
    let mut names = Interner { names, ids };
    match parse_row(text, run, false, &mut names, parents, out) {
        Row::Span => Some(true),
        Row::OtherRun => Some(false),
        Row::Malformed => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: [&str; 3] = [
        r#"{"span_id":"53a9c414e1294eb2ad8d78d077247b29","parent_id":"6e9d4c2b5af445709d62b161d6b08beb","run_id":"r1","name":"db_fetch","start_time":1795711277.765459,"end_time":1795711277.7798543,"duration":0.01439523696899414,"tags":{"table":"users","shard_id":1,"cache_hit":true},"status":"ok"}"#,
        r#"{"span_id": "81a8cc7702994de2", "parent_id": null, "run_id": "r1", "name": "boot", "start_time": 1795711277.664244, "end_time": null, "duration": null, "tags": {}, "status": "warning"}"#,
        r#"{"span_id":"x","run_id":"r1","name":"n","start_time":17957112,"duration":1e-3,"tags":{"a":[1,{"b":null}],"c":-0.5E+2},"status":"error","extra":[]}"#,
    ];

    /// Both paths' verdict on a row, and the record they fill.
    fn both(row: &[u8]) -> ((Row, SpanRecord, String), (Row, SpanRecord, String)) {
        let run = |fast: bool| {
            let (mut names, mut ids) = (vec![], NameIds::default());
            let mut rec = SpanRecord::default();
            let mut i = Interner {
                names: &mut names,
                ids: &mut ids,
            };
            let row_kind = if fast {
                parse_row(
                    row,
                    "r1",
                    false,
                    &mut i,
                    &mut ParentKeys::default(),
                    &mut rec,
                )
            } else {
                parse_row_serde(row, "r1", false, &mut i, &mut rec)
            };
            let name = names.first().map(|s| s.to_string()).unwrap_or_default();
            (row_kind, rec, name)
        };
        (run(true), run(false))
    }

    #[test]
    fn the_name_cache_gives_each_text_one_id() {
        // Names that share a cache slot (same length, same first and last
        // eight bytes), short ones, the empty one and a few hundred of the
        // service shape's, looked up in a scrambled order many times: each
        // text keeps the id of its first appearance.
        let mut texts: Vec<String> = (0..40).map(|k| format!("prefix__{k:04}__suffix")).collect();
        texts.extend(["", "a", "ab", "abcdefg", "abcdefgh", "abcdefghi", "ok"].map(String::from));
        texts.extend((0..300).map(|k| format!("module_{}.function_{}", k % 10, k)));
        assert_eq!(
            name_slot(texts[0].as_bytes()),
            name_slot(texts[1].as_bytes())
        );
        let (mut names, mut ids) = (vec![], NameIds::default());
        let mut want: FxHashMap<String, u32> = FxHashMap::default();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..50_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Mostly the colliding names, so their slots change hands.
            let i = if seed.is_multiple_of(2) {
                seed as usize / 7 % 40
            } else {
                seed as usize / 7 % texts.len()
            };
            let t = &texts[i];
            let next = want.len() as u32;
            let expect = *want.entry(t.clone()).or_insert(next);
            let got = Interner {
                names: &mut names,
                ids: &mut ids,
            }
            .intern(t);
            assert_eq!(got, expect, "{t:?}");
            assert_eq!(&*names[got as usize], t.as_str());
        }
        assert_eq!(names.len(), want.len());
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let words = ["", "a", "ab", "abcdefg", "abcdefgh", "abcdefghi"];
        let mut all: Vec<String> = vec![];
        for w in words {
            for n in 0..40 {
                let s: String = w.chars().cycle().take(n).collect();
                all.push(s.clone());
                for at in 0..s.len() {
                    let mut b = s.clone().into_bytes();
                    b[at] ^= 1;
                    all.push(String::from_utf8(b).unwrap());
                }
            }
        }
        for a in &all {
            for b in all.iter().step_by(7) {
                assert_eq!(same_bytes(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
            }
        }
    }

    #[test]
    fn fast_path_reads_rows_exactly_as_serde_json() {
        for row in ROWS {
            assert!(
                super::super::fio_fast::parse(row.as_bytes()).is_some(),
                "{row}"
            );
            let (fast, serde) = both(row.as_bytes());
            assert_eq!(fast.0, Row::Span);
            assert_eq!(fast, serde, "{row}");
        }
    }

    /// Every record a consumer yields from `pages`, with the names and the
    /// skipped count.
    fn consume(pages: Vec<RawPage>) -> (Vec<SpanRecord>, Vec<String>, u64) {
        let (tx, rx) = crossbeam_channel::unbounded();
        for p in pages {
            tx.send(Feed::Page(p)).unwrap();
        }
        drop(tx);
        let (back, _back_rx) = crossbeam_channel::unbounded();
        let mut spans = FerretIoSpans::from_feed(rx, back, "r1", false);
        let mut out = vec![];
        let mut rec = SpanRecord::default();
        while spans.next_into(&mut rec) {
            out.push(rec.clone());
        }
        let names = spans.names.iter().map(|n| n.to_string()).collect();
        (out, names, spans.skipped)
    }

    #[test]
    fn pages_parsed_by_the_reader_give_the_same_spans() {
        let other = ROWS[0].replace("\"r1\"", "\"r2\"");
        let escaped = ROWS[1].replace("boot", "bo\\u006ft");
        let rows: Vec<&str> = vec![ROWS[0], &other, "{not json", ROWS[1], &escaped, ROWS[2]];
        let page = || {
            let mut p = RawPage::default();
            for r in &rows {
                p.text.extend_from_slice(r.as_bytes());
                p.ends.push(p.text.len());
            }
            p
        };
        let mut pre = page();
        pre_parse(&mut pre, "r1");
        assert!(matches!(pre.pre[1], Pre::OtherRun));
        assert!(matches!(pre.pre[4], Pre::Declined));
        let raw = consume(vec![page()]);
        assert_eq!(raw.0.len(), 4, "4 spans of run r1");
        assert_eq!(raw.2, 1, "one malformed row");
        assert_eq!(raw.1, ["db_fetch", "boot", "n"]);
        assert_eq!(consume(vec![pre]), raw);
    }

    #[test]
    fn fast_path_and_serde_json_agree_on_damaged_rows() {
        // Every single-byte deletion, and replacements with bytes that
        // matter to JSON, of each row: the verdict and the record must not
        // depend on the path.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut checked = 0;
        for row in ROWS {
            let b = row.as_bytes();
            for i in 0..b.len() {
                let mut cut = b.to_vec();
                cut.remove(i);
                let mut variants = vec![cut, b[..i].to_vec()];
                for &c in b"\"\\{}[],:0.e-n \x01\xc3" {
                    let mut v = b.to_vec();
                    v[i] = c;
                    variants.push(v);
                }
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut v = b.to_vec();
                v.insert(i, (seed >> 24) as u8);
                variants.push(v);
                for v in variants {
                    let (fast, serde) = both(&v);
                    assert_eq!(fast, serde, "{}", String::from_utf8_lossy(&v));
                    checked += 1;
                }
            }
        }
        assert!(checked > 5000);
    }
}
