//! Parquet: one row per span, in a flat schema that Spark, DuckDB and
//! pandas read as is, written in row groups of [`ROW_GROUP_ROWS`] rows as
//! the stream goes (official `parquet` crate, no arrow; Snappy pages,
//! dictionary-encoded strings).
//!
//! Nanoseconds are plain signed `INT64` (no timestamp type: Spark rejects
//! `TIMESTAMP(NANOS)`), and Ferret's `u64` ids are stored bit for bit as
//! signed `INT64` (Spark reads `UINT_64` as a decimal): an id above
//! `i64::MAX` reads back negative. See [`SCHEMA`] and `docs/FORMAT.md`.
//!
//! Memory: one row group of buffered values plus its encoded pages, the
//! call paths seen so far (their text) and, for ferret-io files, the spans
//! open at one moment (their self time is known only once the stream
//! passes their end, so their rows wait until then).

use super::Options;
use crate::analysis::query::Selection;
use crate::analysis::scan::{scan, Fold, Resolved, ScanOptions};
use crate::error::{Error, Result};
use crate::store::{FileKind, SpanRecord, Store};
use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use rustc_hash::FxHashMap;
use std::io::Write;
use std::sync::Arc;

/// The Parquet schema of a span export (column order = this order).
pub const SCHEMA: &str = "message ferret_span {
  required binary run (UTF8);
  optional binary host (UTF8);
  required int64 pid;
  required int64 tid;
  optional binary thread_name (UTF8);
  required binary name (UTF8);
  required binary path (UTF8);
  required int32 depth;
  required int64 start_ns;
  optional int64 duration_ns;
  optional int64 self_ns;
  required int64 span_id;
  optional int64 parent_id;
  required int64 trace_id;
  required binary status (UTF8);
  required boolean error;
  optional binary tags (UTF8);
}";

/// Rows per row group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Separator of frames in the `path` column (as in folded stacks).
pub const PATH_SEPARATOR: char = ';';

fn err(e: parquet::errors::ParquetError) -> Error {
    match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<std::io::Error>() {
                Ok(io) => Error::Io(*io),
                Err(other) => Error::Invalid(format!("parquet: {other}")),
            }
        }
        e => Error::Invalid(format!("parquet: {e}")),
    }
}

/// A row waiting for its self time (ferret-io) or buffered (native).
struct Row {
    pid: u32,
    tid: u64,
    name: ByteArray,
    path: ByteArray,
    depth: i32,
    start_ns: i64,
    duration_ns: Option<u64>,
    span_id: u64,
    parent_id: Option<u64>,
    trace_id: u64,
    status: ByteArray,
    error: bool,
    tags: Option<ByteArray>,
}

/// Column buffers of one row group.
#[derive(Default)]
struct Columns {
    rows: usize,
    pid: Vec<i64>,
    tid: Vec<i64>,
    thread_name: Vec<ByteArray>,
    thread_name_def: Vec<i16>,
    name: Vec<ByteArray>,
    path: Vec<ByteArray>,
    depth: Vec<i32>,
    start_ns: Vec<i64>,
    duration_ns: Vec<i64>,
    duration_def: Vec<i16>,
    self_ns: Vec<i64>,
    self_def: Vec<i16>,
    span_id: Vec<i64>,
    parent_id: Vec<i64>,
    parent_def: Vec<i16>,
    trace_id: Vec<i64>,
    status: Vec<ByteArray>,
    error: Vec<bool>,
    tags: Vec<ByteArray>,
    tags_def: Vec<i16>,
}

fn opt<T>(vals: &mut Vec<T>, def: &mut Vec<i16>, v: Option<T>) {
    match v {
        Some(v) => {
            vals.push(v);
            def.push(1);
        }
        None => def.push(0),
    }
}

struct ParquetFold<'w> {
    run: ByteArray,
    host: Option<ByteArray>,
    threads: FxHashMap<(u32, u64), ByteArray>,
    /// Path id -> (text, depth).
    paths: FxHashMap<u32, (ByteArray, i32)>,
    statuses: FxHashMap<String, ByteArray>,
    native: bool,
    waiting: FxHashMap<u64, Row>,
    cols: Columns,
    writer: SerializedFileWriter<Vec<u8>>,
    out: &'w mut dyn Write,
    rows: u64,
    failed: Option<Error>,
}

impl ParquetFold<'_> {
    fn path(&mut self, r: &Resolved<'_>) -> (ByteArray, i32) {
        if let Some(p) = self.paths.get(&r.path) {
            return p.clone();
        }
        let (text, depth) = match self.paths.get(&r.parent_path) {
            Some((parent, d)) if r.parent_path != 0 => {
                let mut t = parent.data().to_vec();
                t.push(PATH_SEPARATOR as u8);
                t.extend_from_slice(r.name.as_bytes());
                (t, d + 1)
            }
            // A root path, or a parent path outside the window.
            _ => (r.name.as_bytes().to_vec(), (r.parent_path != 0) as i32),
        };
        let v = (ByteArray::from(text), depth);
        if r.path != 0 {
            self.paths.insert(r.path, v.clone());
        }
        v
    }

    fn push(&mut self, row: Row, self_ns: Option<u64>) {
        let c = &mut self.cols;
        c.rows += 1;
        c.pid.push(row.pid as i64);
        c.tid.push(row.tid as i64);
        opt(
            &mut c.thread_name,
            &mut c.thread_name_def,
            self.threads.get(&(row.pid, row.tid)).cloned(),
        );
        c.name.push(row.name);
        c.path.push(row.path);
        c.depth.push(row.depth);
        c.start_ns.push(row.start_ns);
        opt(
            &mut c.duration_ns,
            &mut c.duration_def,
            row.duration_ns.map(|d| d as i64),
        );
        opt(&mut c.self_ns, &mut c.self_def, self_ns.map(|d| d as i64));
        c.span_id.push(row.span_id as i64);
        opt(
            &mut c.parent_id,
            &mut c.parent_def,
            row.parent_id.map(|d| d as i64),
        );
        c.trace_id.push(row.trace_id as i64);
        c.status.push(row.status);
        c.error.push(row.error);
        opt(&mut c.tags, &mut c.tags_def, row.tags);
        if c.rows >= ROW_GROUP_ROWS {
            if let Err(e) = self.write_group() {
                self.failed = Some(e);
            }
        }
    }

    fn write_group(&mut self) -> Result<()> {
        let c = std::mem::take(&mut self.cols);
        if c.rows == 0 {
            return Ok(());
        }
        let n = c.rows;
        let all = vec![1i16; n];
        let run = vec![self.run.clone(); n];
        let (host, host_def) = match &self.host {
            Some(h) => (vec![h.clone(); n], all.clone()),
            None => (Vec::new(), vec![0i16; n]),
        };
        let mut rg = self.writer.next_row_group().map_err(err)?;
        let mut i = 0;
        while let Some(mut col) = rg.next_column().map_err(err)? {
            let r = match i {
                0 => col.typed::<ByteArrayType>().write_batch(&run, None, None),
                1 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&host, Some(&host_def), None),
                2 => col.typed::<Int64Type>().write_batch(&c.pid, None, None),
                3 => col.typed::<Int64Type>().write_batch(&c.tid, None, None),
                4 => col.typed::<ByteArrayType>().write_batch(
                    &c.thread_name,
                    Some(&c.thread_name_def),
                    None,
                ),
                5 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&c.name, None, None),
                6 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&c.path, None, None),
                7 => col.typed::<Int32Type>().write_batch(&c.depth, None, None),
                8 => col
                    .typed::<Int64Type>()
                    .write_batch(&c.start_ns, None, None),
                9 => col.typed::<Int64Type>().write_batch(
                    &c.duration_ns,
                    Some(&c.duration_def),
                    None,
                ),
                10 => col
                    .typed::<Int64Type>()
                    .write_batch(&c.self_ns, Some(&c.self_def), None),
                11 => col.typed::<Int64Type>().write_batch(&c.span_id, None, None),
                12 => col
                    .typed::<Int64Type>()
                    .write_batch(&c.parent_id, Some(&c.parent_def), None),
                13 => col
                    .typed::<Int64Type>()
                    .write_batch(&c.trace_id, None, None),
                14 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&c.status, None, None),
                15 => col.typed::<BoolType>().write_batch(&c.error, None, None),
                _ => col
                    .typed::<ByteArrayType>()
                    .write_batch(&c.tags, Some(&c.tags_def), None),
            };
            r.map_err(err)?;
            col.close().map_err(err)?;
            i += 1;
        }
        rg.close().map_err(err)?;
        self.drain()
    }

    /// Moves what the writer has encoded so far to the output.
    fn drain(&mut self) -> Result<()> {
        self.writer.flush()?;
        let buf = self.writer.inner_mut();
        self.out.write_all(buf)?;
        buf.clear();
        Ok(())
    }

    fn row(&mut self, r: &Resolved<'_>) -> Row {
        let s: &SpanRecord = r.span;
        let (path, depth) = self.path(r);
        let status = match self.statuses.get(s.status.as_str()) {
            Some(b) => b.clone(),
            None => {
                let b = ByteArray::from(s.status.as_str());
                self.statuses
                    .insert(s.status.as_str().to_owned(), b.clone());
                b
            }
        };
        let tags = (!s.tags.is_empty()).then(|| {
            let m: serde_json::Map<String, serde_json::Value> = s
                .tags
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                    )
                })
                .collect();
            ByteArray::from(serde_json::to_vec(&m).unwrap_or_default())
        });
        Row {
            pid: s.pid,
            tid: s.tid,
            name: ByteArray::from(r.name),
            path,
            depth,
            start_ns: s.start_ns(),
            duration_ns: s.duration_ns(),
            span_id: s.span_id(),
            parent_id: s.parent_id(),
            trace_id: s.trace_id(),
            status,
            error: s.status.is_error(),
            tags,
        }
    }
}

impl Fold for ParquetFold<'_> {
    fn span(&mut self, r: Resolved<'_>) {
        let row = self.row(&r);
        self.rows += 1;
        if self.native {
            let s = r.span;
            let self_ns = s
                .duration_ns()
                .map(|d| d.saturating_sub(s.children_ns().unwrap_or(0)));
            self.push(row, self_ns);
        } else {
            self.waiting.insert(row.span_id, row);
        }
    }

    fn span_self(&mut self, span_id: u64, self_ns: Option<u64>) {
        if !self.native {
            if let Some(row) = self.waiting.remove(&span_id) {
                self.push(row, self_ns);
            }
        }
    }

    fn done(&self) -> bool {
        self.failed.is_some()
    }
}

/// Writes the selected run as one Parquet file to `w`; returns the spans
/// read.
pub fn write(store: &Store, sel: &Selection, _opts: &Options, w: &mut dyn Write) -> Result<u64> {
    let schema = Arc::new(parse_message_type(SCHEMA).map_err(err)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("ferret {}", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let writer = SerializedFileWriter::new(Vec::new(), schema, props).map_err(err)?;
    let info = match &sel.counters {
        Some(c) => Some(c.clone()),
        None => store.runs()?.into_iter().find(|r| r.run_id == sel.run),
    };
    let threads = store
        .threads(&sel.run)?
        .into_iter()
        .filter_map(|t| Some(((t.pid, t.tid), ByteArray::from(t.name?.as_str()))))
        .collect();
    let mut fold = ParquetFold {
        run: ByteArray::from(sel.run.as_str()),
        host: info
            .and_then(|i| i.host)
            .map(|h| ByteArray::from(h.as_str())),
        threads,
        paths: FxHashMap::default(),
        statuses: FxHashMap::default(),
        native: store.kind() == FileKind::Native,
        waiting: FxHashMap::default(),
        cols: Columns::default(),
        writer,
        out: w,
        rows: 0,
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
    if let Some(e) = fold.failed.take() {
        return Err(e);
    }
    // Spans the scan never finished (none in practice): no self time.
    let mut rest: Vec<Row> = fold.waiting.drain().map(|(_, r)| r).collect();
    rest.sort_by_key(|r| (r.start_ns, r.span_id));
    for r in rest {
        fold.push(r, None);
    }
    if let Some(e) = fold.failed.take() {
        return Err(e);
    }
    fold.write_group()?;
    let ParquetFold { writer, out, .. } = fold;
    let tail = writer.into_inner().map_err(err)?;
    out.write_all(&tail)?;
    Ok(scanned.spans)
}
