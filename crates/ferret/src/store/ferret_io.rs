//! Reading ferret-io (Python) files: the BeaverDB `beaver_logs` table, one
//! JSON span per row. Rows are stepped in start order a page at a time
//! (keyset pagination on the `(log_name, timestamp)` primary key), filtered by
//! run per row, and parsed without keeping anything but interned names.

use super::{RunInfo, SpanQuery, SpanRecord};
use crate::error::{Error, Result};
use crate::types::{Status, TagValue};
use rusqlite::Connection;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::hash::{Hash, Hasher};

/// The log name ferret-io writes spans under.
pub const DEFAULT_NAMESPACE: &str = "_ferret_trace";

/// Rows fetched per query.
const PAGE_ROWS: i64 = 4096;

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

/// 64-bit id for a ferret-io span id: a 32-digit hex UUID folds exactly
/// (xor of halves); anything else is hashed.
pub(crate) fn span_key(s: &str) -> u64 {
    if s.len() == 32 {
        if let Ok(v) = u128::from_str_radix(s, 16) {
            let k = (v as u64) ^ ((v >> 64) as u64);
            return k.max(1);
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish().max(1)
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

pub(super) fn run_exists(conn: &Connection, ns: &str, run: &str) -> Result<bool> {
    let mut st = conn.prepare(
        "SELECT data FROM beaver_logs WHERE log_name = ?1 AND instr(data, ?2) > 0 ORDER BY timestamp DESC",
    )?;
    let mut rows = st.query([ns, run])?;
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
            (_, Some(d)) => start + d as i64,
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

/// Lazy span stream over the rows of one run.
pub(super) struct FerretIoSpans<'a> {
    conn: &'a Connection,
    ns: String,
    run: String,
    q: SpanQuery,
    names: Vec<Box<str>>,
    name_ids: FxHashMap<Box<str>, u32>,
    page: std::vec::IntoIter<String>,
    last_ts: f64,
    exhausted: bool,
    pub skipped: u64,
    pub bytes_read: u64,
    pub error: Option<Error>,
}

impl<'a> FerretIoSpans<'a> {
    pub(super) fn new(
        conn: &'a Connection,
        ns: &str,
        run: &str,
        q: &SpanQuery,
    ) -> Result<FerretIoSpans<'a>> {
        Ok(FerretIoSpans {
            conn,
            ns: ns.to_owned(),
            run: run.to_owned(),
            q: q.clone(),
            names: vec![],
            name_ids: FxHashMap::default(),
            page: Vec::new().into_iter(),
            last_ts: f64::NEG_INFINITY,
            exhausted: false,
            skipped: 0,
            bytes_read: 0,
            error: None,
        })
    }

    pub(super) fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |s| s)
    }

    pub(super) fn name_count(&self) -> usize {
        self.names.len()
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.name_ids.insert(name.into(), id);
        id
    }

    fn fetch_page(&mut self) -> Result<()> {
        let since = self
            .q
            .since_ns
            .map_or(f64::NEG_INFINITY, |s| s as f64 / 1e9);
        let until = self.q.until_ns.map_or(f64::INFINITY, |s| s as f64 / 1e9);
        let lower = self.last_ts.max(since);
        let strict = self.last_ts >= since;
        let sql = if strict {
            "SELECT timestamp, data FROM beaver_logs WHERE log_name = ?1 AND timestamp > ?2 AND timestamp < ?3 AND instr(data, ?5) > 0 ORDER BY timestamp LIMIT ?4"
        } else {
            "SELECT timestamp, data FROM beaver_logs WHERE log_name = ?1 AND timestamp >= ?2 AND timestamp < ?3 AND instr(data, ?5) > 0 ORDER BY timestamp LIMIT ?4"
        };
        let mut st = self.conn.prepare_cached(sql)?;
        let mut rows = st.query(rusqlite::params![
            self.ns, lower, until, PAGE_ROWS, self.run
        ])?;
        let mut page = Vec::with_capacity(PAGE_ROWS as usize);
        while let Some(r) = rows.next()? {
            self.last_ts = r.get(0)?;
            match r.get_ref(1)? {
                rusqlite::types::ValueRef::Text(t) => {
                    self.bytes_read += t.len() as u64;
                    match std::str::from_utf8(t) {
                        Ok(s) => page.push(s.to_owned()),
                        Err(_) => self.skipped += 1,
                    }
                }
                _ => self.skipped += 1,
            }
        }
        if page.is_empty() {
            self.exhausted = true;
        }
        self.page = page.into_iter();
        Ok(())
    }

    pub(super) fn next_into(&mut self, out: &mut SpanRecord) -> bool {
        loop {
            let Some(data) = self.page.next() else {
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
            let j: JsonSpan = match serde_json::from_str(&data) {
                Ok(j) => j,
                Err(_) => {
                    self.skipped += 1;
                    continue;
                }
            };
            if j.run_id != self.run {
                continue;
            }
            if !j.start_time.is_finite() {
                self.skipped += 1;
                continue;
            }
            let tags = if self.q.with_tags {
                // Keep the tags in the file's order (ferret-io prints them so).
                match j
                    .tags
                    .map(|t| serde_json::from_str::<Option<OrderedTags>>(t.get()))
                {
                    None | Some(Ok(None)) => Some(vec![]),
                    Some(Ok(Some(OrderedTags(m)))) => {
                        Some(m.into_iter().map(|(k, v)| (k, json_to_tag(v))).collect())
                    }
                    _ => None,
                }
            } else {
                Some(vec![])
            };
            let Some(tags) = tags else {
                self.skipped += 1;
                continue;
            };
            out.span_id = span_key(&j.span_id);
            out.parent_id = j.parent_id.as_deref().map(span_key);
            out.trace_id = 0;
            out.name = self.intern(&j.name);
            out.path = None;
            out.start_ns = secs_to_ns(j.start_time);
            out.duration_ns = dur_to_ns(j.duration);
            out.children_ns = None;
            out.status = match j.status.as_deref() {
                None | Some("ok") => Status::Ok,
                Some(s) => Status::from_text(s),
            };
            out.tags = tags;
            out.pid = 0;
            out.tid = 0;
            return true;
        }
    }
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
