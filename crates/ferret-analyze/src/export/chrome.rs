//! Chrome / Perfetto Trace Event Format: a JSON object whose `traceEvents`
//! holds one `X` (complete) event per span, streamed in file order (the
//! format needs no ordering), then `M` metadata events naming processes and
//! threads. Memory: the distinct (pid, tid) pairs of the run.
//!
//! Times are µs relative to the run's first span (`otherData.origin_ns`
//! holds that origin in ns since the epoch), written with three decimals so
//! that no nanosecond is lost.

use super::{origin_ns, write_us, Options};
use crate::analysis::query::Selection;
use crate::analysis::scan::try_for_each;
use crate::error::Result;
use crate::store::Store;
use rustc_hash::{FxHashMap, FxHashSet};
use std::io::Write;

/// Writes the run as Chrome / Perfetto Trace Event Format JSON; returns the spans read.
pub fn write(store: &Store, sel: &Selection, _opts: &Options, w: &mut dyn Write) -> Result<u64> {
    let run = sel.run.as_str();
    let origin = origin_ns(sel);
    let mut n = 0u64;
    let mut seen: FxHashSet<(u32, u64)> = FxHashSet::default();
    w.write_all(b"{\"traceEvents\":[\n")?;
    try_for_each(store, sel, true, |s| -> Result<()> {
        let r = s.span;
        if n > 0 {
            w.write_all(b",\n")?;
        }
        n += 1;
        seen.insert((r.pid, r.tid));
        w.write_all(b"{\"ph\":\"X\",\"cat\":\"span\",\"name\":")?;
        serde_json::to_writer(&mut *w, s.name)?;
        w.write_all(b",\"ts\":")?;
        write_us(w, r.start_ns() - origin)?;
        w.write_all(b",\"dur\":")?;
        write_us(w, r.duration_ns().unwrap_or(0) as i64)?;
        write!(
            w,
            ",\"pid\":{},\"tid\":{},\"args\":{{\"status\":",
            r.pid, r.tid
        )?;
        serde_json::to_writer(&mut *w, r.status.as_str())?;
        for (k, v) in &r.tags {
            w.write_all(b",")?;
            if k == "status" {
                w.write_all(b"\"tag.status\"")?;
            } else {
                serde_json::to_writer(&mut *w, k)?;
            }
            w.write_all(b":")?;
            serde_json::to_writer(&mut *w, v)?;
        }
        w.write_all(b"}}")?;
        Ok(())
    })?;
    // Metadata: process and thread names.
    let names: FxHashMap<(u32, u64), Option<String>> = store
        .threads(run)?
        .into_iter()
        .map(|t| ((t.pid, t.tid), t.name))
        .collect();
    let mut threads: Vec<(u32, u64)> = seen.into_iter().collect();
    threads.sort_unstable();
    let mut pids: Vec<u32> = threads.iter().map(|t| t.0).collect();
    pids.dedup();
    let mut first = n == 0;
    let mut sep = |w: &mut dyn Write| -> std::io::Result<()> {
        if !first {
            w.write_all(b",\n")?;
        }
        first = false;
        Ok(())
    };
    for pid in pids {
        sep(w)?;
        write!(
            w,
            "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{pid},\"tid\":0,\"args\":{{\"name\":"
        )?;
        serde_json::to_writer(&mut *w, &format!("ferret run {run} (pid {pid})"))?;
        w.write_all(b"}}")?;
    }
    for (pid, tid) in threads {
        let name = match names.get(&(pid, tid)) {
            Some(Some(n)) => format!("{n} ({tid})"),
            _ => format!("thread {tid}"),
        };
        sep(w)?;
        write!(w, "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":")?;
        serde_json::to_writer(&mut *w, &name)?;
        w.write_all(b"}}")?;
    }
    w.write_all(b"\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"run\":")?;
    serde_json::to_writer(&mut *w, run)?;
    writeln!(w, ",\"origin_ns\":{origin},\"spans\":{n}}}}}")?;
    Ok(n)
}
