//! One JSON object per span and line, every field. Constant memory.
//!
//! Ids are JSON integers (u64: readers in JavaScript lose precision past
//! 2^53; Python, Rust and jq 1.7+ do not).

use super::Options;
use crate::analysis::query::Selection;
use crate::analysis::scan::try_for_each;
use crate::error::Result;
use crate::store::Store;
use std::io::Write;

fn opt(w: &mut dyn Write, v: Option<impl std::fmt::Display>) -> std::io::Result<()> {
    match v {
        Some(v) => write!(w, "{v}"),
        None => w.write_all(b"null"),
    }
}

/// Writes the run as one JSON object per span and line; returns the spans read.
pub fn write(store: &Store, sel: &Selection, _opts: &Options, w: &mut dyn Write) -> Result<u64> {
    // Thread names (tid -> name per process), one small map per run.
    let names: rustc_hash::FxHashMap<(u32, u64), String> = store
        .threads(&sel.run)?
        .into_iter()
        .filter_map(|t| Some(((t.pid, t.tid), t.name?)))
        .collect();
    let scanned = try_for_each(store, sel, true, |s| -> Result<()> {
        let r = s.span;
        write!(w, "{{\"span_id\":{},\"parent_id\":", r.span_id())?;
        opt(w, r.parent_id())?;
        write!(w, ",\"trace_id\":{},\"name\":", r.trace_id())?;
        serde_json::to_writer(&mut *w, s.name)?;
        w.write_all(b",\"path_id\":")?;
        opt(w, r.path())?;
        write!(w, ",\"start_ns\":{},\"duration_ns\":", r.start_ns())?;
        opt(w, r.duration_ns())?;
        w.write_all(b",\"children_ns\":")?;
        opt(w, r.children_ns())?;
        w.write_all(b",\"status\":")?;
        serde_json::to_writer(&mut *w, r.status.as_str())?;
        w.write_all(b",\"tags\":{")?;
        for (i, (k, v)) in r.tags.iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            serde_json::to_writer(&mut *w, k)?;
            w.write_all(b":")?;
            serde_json::to_writer(&mut *w, v)?;
        }
        write!(w, "}},\"pid\":{},\"tid\":{},\"thread_name\":", r.pid, r.tid)?;
        match names.get(&(r.pid, r.tid)) {
            Some(n) => serde_json::to_writer(&mut *w, n)?,
            None => w.write_all(b"null")?,
        }
        w.write_all(b"}\n")?;
        Ok(())
    })?;
    Ok(scanned.spans)
}
