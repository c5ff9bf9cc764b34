//! OpenTelemetry (OTLP) traces: protobuf batches for OTLP/HTTP
//! ([`for_each_batch`], what `ferret push` sends) and OTLP/JSON lines for
//! files ([`write_json_lines`], `export --format otlp`: one `TracesData`
//! per line, each line under [`MAX_LINE_BYTES`], as the OTLP file exporter
//! specifies).
//!
//! The mapping (documented in `docs/FORMAT.md`):
//! - one resource per process: `service.name` (the option, else the run
//!   label, else the file name), `host.name` (when the file records it),
//!   `process.pid` (when recorded); one scope, `ferret`;
//! - ids from [`trace_id`] and [`span_id`]: deterministic from the run id
//!   and Ferret's ids, so that a re-export gives the same ids;
//! - kind INTERNAL; start and end in Unix ns (a span that never ended gets
//!   end = start and the attribute `ferret.unfinished = true`);
//! - a failed span gets status ERROR with its status text as message;
//! - tags as typed attributes (`u64` above `i64::MAX`, JSON lists and
//!   objects as strings; a null tag as an empty value), plus `thread.id`
//!   and `thread.name` when the file records them.
//!
//! Memory: one batch (protobuf) or one line (JSON) at a time, plus the
//! processes and threads of the run.

pub mod proto;

use super::{Exported, Options};
use crate::analysis::query::{select, Selection};
use crate::analysis::scan::{scan, Fold, Resolved, ScanOptions};
use crate::error::{Error, Result};
use crate::store::{SpanRecord, Store};
use ferret_format::{Status, TagValue};
use proto::{AnyValue, KeyValue, Value};
use rustc_hash::FxHashMap;
use std::io::Write;

/// Largest JSON line [`write_json_lines`] writes (the OTLP file exporter's
/// recommended bound is 4 MiB; a line is closed below it).
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Spans per protobuf batch by default.
pub const DEFAULT_BATCH_SPANS: usize = 2048;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a (64 bit) of the run id: the run's part of every OTLP id.
pub fn run_hash(run: &str) -> u64 {
    run.bytes()
        .fold(FNV_OFFSET, |h, b| (h ^ b as u64).wrapping_mul(FNV_PRIME))
}

/// The SplitMix64 finalizer: a bijection on `u64` that spreads bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The OTLP span id of Ferret span `span` of run `run`:
/// `big_endian(mix(span ^ run_hash(run)))`. One run's distinct span ids
/// stay distinct (`mix` is a bijection).
pub fn span_id(run: &str, span: u64) -> [u8; 8] {
    mix(span ^ run_hash(run)).to_be_bytes()
}

/// The OTLP trace id of Ferret trace `trace` of run `run`: the run hash
/// (8 bytes, big endian), then `mix(trace ^ run_hash(run) ^ 0x9e3779b97f4a7c15)`
/// (8 bytes, big endian).
pub fn trace_id(run: &str, trace: u64) -> [u8; 16] {
    let h = run_hash(run);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&h.to_be_bytes());
    out[8..].copy_from_slice(&mix(trace ^ h ^ 0x9e37_79b9_7f4a_7c15).to_be_bytes());
    out
}

/// How to build OTLP data.
#[derive(Debug, Clone)]
pub struct OtlpOptions {
    /// `service.name` of every resource; `None`: the run label, else the
    /// file name.
    pub service_name: Option<String>,
    /// Spans per protobuf batch ([`for_each_batch`]).
    pub batch_spans: usize,
    /// Largest JSON line ([`write_json_lines`]).
    pub max_line_bytes: usize,
}

impl Default for OtlpOptions {
    fn default() -> Self {
        OtlpOptions {
            service_name: None,
            batch_spans: DEFAULT_BATCH_SPANS,
            max_line_bytes: MAX_LINE_BYTES,
        }
    }
}

/// Maps Ferret spans of one run to OTLP spans.
struct Mapper {
    run: String,
    resource: Vec<KeyValue>,
    threads: FxHashMap<(u32, u64), String>,
}

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn tag_value(v: &TagValue) -> Option<Value> {
    Some(match v {
        TagValue::Str(s) => Value::String(s.clone()),
        TagValue::I64(i) => Value::Int(*i),
        TagValue::U64(u) => match i64::try_from(*u) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::String(u.to_string()),
        },
        TagValue::F64(f) => Value::Double(*f),
        TagValue::Bool(b) => Value::Bool(*b),
        TagValue::Null => return None,
        TagValue::Json(j) => Value::String(j.clone()),
    })
}

impl Mapper {
    fn new(store: &Store, sel: &Selection, o: &OtlpOptions) -> Result<Mapper> {
        let info = match &sel.counters {
            Some(c) => Some(c.clone()),
            None => store.runs()?.into_iter().find(|r| r.run_id == sel.run),
        };
        let service = o
            .service_name
            .clone()
            .or_else(|| info.as_ref().and_then(|i| i.label.clone()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                store
                    .path()
                    .file_name()
                    .map_or("ferret".into(), |f| f.to_string_lossy().into_owned())
            });
        let mut resource = vec![kv("service.name", Value::String(service))];
        if let Some(h) = info.as_ref().and_then(|i| i.host.clone()) {
            resource.push(kv("host.name", Value::String(h)));
        }
        let threads = store
            .threads(&sel.run)?
            .into_iter()
            .filter_map(|t| Some(((t.pid, t.tid), t.name?)))
            .collect();
        Ok(Mapper {
            run: sel.run.clone(),
            resource,
            threads,
        })
    }

    fn resource(&self, pid: u32) -> proto::Resource {
        let mut attributes = self.resource.clone();
        // ferret-io files record no pid (0): no attribute then.
        if pid != 0 {
            attributes.push(kv("process.pid", Value::Int(pid as i64)));
        }
        proto::Resource { attributes }
    }

    fn span(&self, r: &SpanRecord, name: &str) -> proto::Span {
        let mut attributes: Vec<KeyValue> = r
            .tags
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                value: Some(AnyValue {
                    value: tag_value(v),
                }),
            })
            .collect();
        if r.tid != 0 {
            attributes.push(kv("thread.id", Value::Int(r.tid as i64)));
        }
        if let Some(n) = self.threads.get(&(r.pid, r.tid)) {
            attributes.push(kv("thread.name", Value::String(n.clone())));
        }
        if r.duration_ns().is_none() {
            attributes.push(kv("ferret.unfinished", Value::Bool(true)));
        }
        let status = match &r.status {
            Status::Ok => None,
            s => Some(proto::Status {
                message: s.as_str().to_owned(),
                code: proto::STATUS_CODE_ERROR,
            }),
        };
        let start = r.start_ns().max(0) as u64;
        proto::Span {
            trace_id: trace_id(&self.run, r.trace_id()).to_vec(),
            span_id: span_id(&self.run, r.span_id()).to_vec(),
            parent_span_id: r
                .parent_id()
                .map_or_else(Vec::new, |p| span_id(&self.run, p).to_vec()),
            name: name.to_owned(),
            kind: proto::SPAN_KIND_INTERNAL,
            start_time_unix_nano: start,
            end_time_unix_nano: start.saturating_add(r.duration_ns().unwrap_or(0)),
            attributes,
            status,
        }
    }
}

fn scope() -> proto::InstrumentationScope {
    proto::InstrumentationScope {
        name: "ferret".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// The protobuf side: spans grouped by process until a batch is full.
struct BatchFold<'f> {
    mapper: Mapper,
    limit: usize,
    pending: Vec<(u32, Vec<proto::Span>)>,
    index: FxHashMap<u32, usize>,
    count: usize,
    sink: &'f mut dyn FnMut(&proto::TracesData, u64) -> Result<()>,
    failed: Option<Error>,
}

impl BatchFold<'_> {
    fn flush(&mut self) {
        if self.count == 0 || self.failed.is_some() {
            return;
        }
        let data = proto::TracesData {
            resource_spans: self
                .pending
                .drain(..)
                .map(|(pid, spans)| proto::ResourceSpans {
                    resource: Some(self.mapper.resource(pid)),
                    scope_spans: vec![proto::ScopeSpans {
                        scope: Some(scope()),
                        spans,
                    }],
                })
                .collect(),
        };
        self.index.clear();
        let n = std::mem::take(&mut self.count) as u64;
        if let Err(e) = (self.sink)(&data, n) {
            self.failed = Some(e);
        }
    }
}

impl Fold for BatchFold<'_> {
    fn span(&mut self, s: Resolved<'_>) {
        let span = self.mapper.span(s.span, s.name);
        let pid = s.span.pid;
        let i = *self.index.entry(pid).or_insert_with(|| {
            self.pending.push((pid, Vec::new()));
            self.pending.len() - 1
        });
        self.pending[i].1.push(span);
        self.count += 1;
        if self.count >= self.limit {
            self.flush();
        }
    }

    fn done(&self) -> bool {
        self.failed.is_some()
    }
}

/// Streams the run `opts.query` selects as OTLP protobuf batches of at
/// most `otlp.batch_spans` spans: `sink` gets each batch (encode it with
/// [`prost::Message::encode_to_vec`]; `TracesData` and
/// `ExportTraceServiceRequest` share their wire form) and its span count.
/// The first error `sink` returns stops the scan and is returned.
pub fn for_each_batch(
    store: &Store,
    opts: &Options,
    otlp: &OtlpOptions,
    mut sink: impl FnMut(&proto::TracesData, u64) -> Result<()>,
) -> Result<Exported> {
    let sel = select(store, &opts.query)?;
    let mut fold = BatchFold {
        mapper: Mapper::new(store, &sel, otlp)?,
        limit: otlp.batch_spans.max(1),
        pending: Vec::new(),
        index: FxHashMap::default(),
        count: 0,
        sink: &mut sink,
        failed: None,
    };
    let scanned = scan(
        store,
        &sel,
        ScanOptions {
            with_tags: true,
            progress: None,
        },
        &mut fold,
    )?;
    fold.flush();
    if let Some(e) = fold.failed {
        return Err(e);
    }
    Ok(Exported {
        run: sel.run,
        spans: scanned.spans,
    })
}

/// The JSON side: each process's spans as JSON text until a line is full.
struct JsonFold<'w> {
    mapper: Mapper,
    limit: usize,
    pending: Vec<(u32, Vec<u8>)>,
    index: FxHashMap<u32, usize>,
    bytes: usize,
    scratch: Vec<u8>,
    out: &'w mut dyn Write,
    failed: Option<Error>,
}

impl JsonFold<'_> {
    fn flush(&mut self) {
        if self.pending.is_empty() || self.failed.is_some() {
            return;
        }
        let mut line = Vec::with_capacity(self.bytes + 4096);
        line.extend_from_slice(b"{\"resourceSpans\":[");
        for (i, (pid, spans)) in self.pending.drain(..).enumerate() {
            if i > 0 {
                line.push(b',');
            }
            line.extend_from_slice(b"{\"resource\":{\"attributes\":");
            json_attributes(&mut line, &self.mapper.resource(pid).attributes);
            line.extend_from_slice(b"},\"scopeSpans\":[{\"scope\":");
            let s = scope();
            line.extend_from_slice(b"{\"name\":");
            json_str(&mut line, &s.name);
            line.extend_from_slice(b",\"version\":");
            json_str(&mut line, &s.version);
            line.extend_from_slice(b"},\"spans\":[");
            line.extend_from_slice(&spans);
            line.extend_from_slice(b"]}]}");
        }
        line.extend_from_slice(b"]}\n");
        self.index.clear();
        self.bytes = 0;
        if let Err(e) = self.out.write_all(&line) {
            self.failed = Some(e.into());
        }
    }
}

impl Fold for JsonFold<'_> {
    fn span(&mut self, s: Resolved<'_>) {
        let span = self.mapper.span(s.span, s.name);
        self.scratch.clear();
        json_span(&mut self.scratch, &span);
        // Room for the resource and scope wrappers of every process.
        let overhead = 1024 * (self.pending.len() + 1);
        if self.bytes + self.scratch.len() + overhead > self.limit {
            self.flush();
        }
        let pid = s.span.pid;
        let i = *self.index.entry(pid).or_insert_with(|| {
            self.pending.push((pid, Vec::new()));
            self.pending.len() - 1
        });
        let buf = &mut self.pending[i].1;
        if !buf.is_empty() {
            buf.push(b',');
        }
        buf.extend_from_slice(&self.scratch);
        self.bytes += self.scratch.len() + 1;
    }

    fn done(&self) -> bool {
        self.failed.is_some()
    }
}

/// Writes the selected run as OTLP/JSON lines (one `TracesData` per line,
/// each under `otlp.max_line_bytes` unless one span alone is larger);
/// returns the spans read.
pub fn write_json_lines(
    store: &Store,
    sel: &Selection,
    otlp: &OtlpOptions,
    w: &mut dyn Write,
) -> Result<u64> {
    let mut fold = JsonFold {
        mapper: Mapper::new(store, sel, otlp)?,
        limit: otlp.max_line_bytes,
        pending: Vec::new(),
        index: FxHashMap::default(),
        bytes: 0,
        scratch: Vec::new(),
        out: w,
        failed: None,
    };
    let scanned = scan(
        store,
        sel,
        ScanOptions {
            with_tags: true,
            progress: None,
        },
        &mut fold,
    )?;
    fold.flush();
    if let Some(e) = fold.failed {
        return Err(e);
    }
    Ok(scanned.spans)
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

fn json_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
    out.push(b'"');
}

fn json_attributes(out: &mut Vec<u8>, attrs: &[KeyValue]) {
    out.push(b'[');
    for (i, a) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"key\":");
        json_str(out, &a.key);
        out.extend_from_slice(b",\"value\":{");
        match a.value.as_ref().and_then(|v| v.value.as_ref()) {
            None => {}
            Some(Value::String(s)) => {
                out.extend_from_slice(b"\"stringValue\":");
                json_str(out, s);
            }
            Some(Value::Bool(b)) => {
                let _ = write!(out, "\"boolValue\":{b}");
            }
            // proto3 JSON writes 64-bit integers as strings.
            Some(Value::Int(i)) => {
                let _ = write!(out, "\"intValue\":\"{i}\"");
            }
            Some(Value::Double(d)) => {
                out.extend_from_slice(b"\"doubleValue\":");
                if d.is_finite() {
                    let _ = write!(out, "{d:?}");
                } else if d.is_nan() {
                    out.extend_from_slice(b"\"NaN\"");
                } else if *d > 0.0 {
                    out.extend_from_slice(b"\"Infinity\"");
                } else {
                    out.extend_from_slice(b"\"-Infinity\"");
                }
            }
        }
        out.extend_from_slice(b"}}");
    }
    out.push(b']');
}

/// One span as OTLP/JSON: lowerCamelCase keys, ids as lowercase hex,
/// enums as integers, 64-bit integers as strings.
fn json_span(out: &mut Vec<u8>, s: &proto::Span) {
    out.extend_from_slice(b"{\"traceId\":");
    json_hex(out, &s.trace_id);
    out.extend_from_slice(b",\"spanId\":");
    json_hex(out, &s.span_id);
    if !s.parent_span_id.is_empty() {
        out.extend_from_slice(b",\"parentSpanId\":");
        json_hex(out, &s.parent_span_id);
    }
    out.extend_from_slice(b",\"name\":");
    json_str(out, &s.name);
    let _ = write!(
        out,
        ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",\"attributes\":",
        s.kind, s.start_time_unix_nano, s.end_time_unix_nano
    );
    json_attributes(out, &s.attributes);
    if let Some(st) = &s.status {
        out.extend_from_slice(b",\"status\":{\"message\":");
        json_str(out, &st.message);
        let _ = write!(out, ",\"code\":{}}}", st.code);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_distinct_and_nonzero() {
        assert_eq!(span_id("r1", 7), span_id("r1", 7));
        assert_ne!(span_id("r1", 7), span_id("r2", 7));
        assert_ne!(span_id("r1", 7), span_id("r1", 8));
        assert_eq!(trace_id("r1", 1)[..8], trace_id("r1", 2)[..8]);
        assert_ne!(trace_id("r1", 1), trace_id("r1", 2));
        let ids: std::collections::HashSet<_> = (0..10_000u64).map(|i| span_id("r", i)).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|i| *i != [0; 8]));
    }

    #[test]
    fn json_span_has_otlp_shape() {
        let s = proto::Span {
            trace_id: vec![0xab; 16],
            span_id: vec![1; 8],
            parent_span_id: vec![],
            name: "a\"b".into(),
            kind: 1,
            start_time_unix_nano: 5,
            end_time_unix_nano: 9,
            attributes: vec![kv("n", Value::Int(-3)), kv("f", Value::Double(f64::NAN))],
            status: Some(proto::Status {
                message: "boom".into(),
                code: 2,
            }),
        };
        let mut out = Vec::new();
        json_span(&mut out, &s);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["traceId"], "ab".repeat(16));
        assert_eq!(v["spanId"], "0101010101010101");
        assert!(v.get("parentSpanId").is_none());
        assert_eq!(v["name"], "a\"b");
        assert_eq!(v["startTimeUnixNano"], "5");
        assert_eq!(v["attributes"][0]["value"]["intValue"], "-3");
        assert_eq!(v["attributes"][1]["value"]["doubleValue"], "NaN");
        assert_eq!(v["status"]["code"], 2);
    }
}
