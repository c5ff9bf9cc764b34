//! speedscope evented profiles (unit: nanoseconds).
//!
//! speedscope wants, per profile, open/close events sorted by time that nest
//! properly. Native streams are not in start order, so the spans first go
//! through an external merge sort by (pid, tid, start, longest first)
//! (an external merge sort). A sweep over each thread then places every
//! span in the first *lane* where it nests (the lane's innermost open span
//! contains it, or nothing is open); spans that overlap without nesting
//! (async tasks sharing a thread) open further lanes. Each lane becomes one
//! profile. Lane events are buffered (16 KiB per lane) and spilled to a temp
//! file, then copied out profile by profile.
//!
//! On the busy clock the run is written as one sampled profile instead
//! (see [`write()`]).
//!
//! Memory: one sort chunk (1 Mi spans, 32 MB), the distinct frames, and for
//! the thread being swept its lanes' open stacks and buffers; plus a few
//! bytes per profile and per 16 KiB of events.

use super::extsort::{Item, Sorter, DEFAULT_CHUNK};
use super::{origin_ns, Options};
use crate::analysis::paths::{fold_selection, FoldOptions};
use crate::analysis::query::{Clock, Selection};
use crate::analysis::scan::try_for_each;
use crate::error::Result;
use crate::store::Store;
use ferret_format::span_end;
use ferret_format::TagValue;
use rustc_hash::FxHashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

const LANE_BUF: usize = 16 << 10;

/// Frame name: the span name, plus the chosen tags when present.
fn frame_name(name: &str, tags: &[(String, TagValue)], keys: &[String]) -> String {
    let mut extra = vec![];
    for k in keys {
        if let Some((_, v)) = tags.iter().find(|(tk, _)| tk == k) {
            let v = match v {
                TagValue::Str(s) => s.clone(),
                other => serde_json::to_string(other).unwrap_or_default(),
            };
            extra.push(format!("{k}={v}"));
        }
    }
    if extra.is_empty() {
        name.to_owned()
    } else {
        format!("{name} [{}]", extra.join(", "))
    }
}

struct Lane {
    name: String,
    /// (end, frame) of the open spans, innermost last.
    stack: Vec<(i64, u32)>,
    buf: Vec<u8>,
    chunks: Vec<(u64, u64)>,
    start: i64,
    end: i64,
    events: u64,
}

/// Event text for all lanes, spilled to one temp file.
struct EventFile {
    w: BufWriter<File>,
    pos: u64,
}

impl Lane {
    fn event(&mut self, kind: u8, frame: u32, at: i64, file: &mut EventFile) -> io::Result<()> {
        if self.events == 0 {
            self.start = at;
        } else {
            self.buf.push(b',');
        }
        self.events += 1;
        self.end = at;
        write!(
            self.buf,
            "{{\"type\":\"{}\",\"frame\":{frame},\"at\":{at}}}",
            kind as char
        )?;
        if self.buf.len() >= LANE_BUF {
            self.flush(file)?;
        }
        Ok(())
    }

    fn flush(&mut self, file: &mut EventFile) -> io::Result<()> {
        if !self.buf.is_empty() {
            file.w.write_all(&self.buf)?;
            self.chunks.push((file.pos, self.buf.len() as u64));
            file.pos += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Closes every open span that ended by `t`.
    fn close_until(&mut self, t: i64, file: &mut EventFile) -> io::Result<()> {
        while let Some(&(end, frame)) = self.stack.last() {
            if end > t {
                break;
            }
            self.stack.pop();
            self.event(b'C', frame, end, file)?;
        }
        Ok(())
    }
}

/// Writes the run as a speedscope file; returns the spans read. On the
/// busy clock ([`Clock::Busy`]) spans have no place on a timeline any more
/// (a busy duration is spread over the span's life), so the run is written
/// as one *sampled* profile instead: one sample per call path, weighted by
/// its self busy time (speedscope's "left heavy" and sandwich views).
pub fn write(store: &Store, sel: &Selection, opts: &Options, w: &mut dyn Write) -> Result<u64> {
    if sel.clock == Clock::Busy {
        return write_weighted(store, sel, opts, w);
    }
    let run = sel.run.as_str();
    let origin = origin_ns(sel);
    let mut frame_ids: FxHashMap<String, u32> = FxHashMap::default();
    let mut frames: Vec<String> = vec![];
    // Name id -> frame id, when no tags are involved.
    let mut by_name: FxHashMap<u32, u32> = FxHashMap::default();
    let mut sorter = Sorter::new(DEFAULT_CHUNK);
    let scanned = try_for_each(store, sel, !opts.frame_tags.is_empty(), |s| -> Result<()> {
        let r = s.span;
        let mut intern = |s: String| -> u32 {
            let next = frames.len() as u32;
            let id = *frame_ids.entry(s.clone()).or_insert(next);
            if id == next {
                frames.push(s);
            }
            id
        };
        let frame = if opts.frame_tags.is_empty() {
            match by_name.get(&r.name) {
                Some(&f) => f,
                None => {
                    let f = intern(s.name.to_owned());
                    by_name.insert(r.name, f);
                    f
                }
            }
        } else {
            intern(frame_name(s.name, &r.tags, &opts.frame_tags))
        };
        let start = r.start_ns().saturating_sub(origin);
        sorter.push(Item {
            pid: r.pid,
            tid: r.tid,
            start,
            end: span_end(start, r.duration_ns().unwrap_or(0)),
            frame,
        })?;
        Ok(())
    })?;
    let n = scanned.spans;
    drop(by_name);
    drop(frame_ids);
    let thread_names: FxHashMap<(u32, u64), Option<String>> = store
        .threads(run)?
        .into_iter()
        .map(|t| ((t.pid, t.tid), t.name))
        .collect();

    let mut merged = sorter.finish()?;
    let mut file = EventFile {
        w: BufWriter::with_capacity(1 << 16, tempfile::tempfile()?),
        pos: 0,
    };
    let mut done: Vec<Lane> = vec![];
    let mut lanes: Vec<Lane> = vec![];
    let mut cur: Option<(u32, u64)> = None;
    let finish_thread = |lanes: &mut Vec<Lane>, done: &mut Vec<Lane>, file: &mut EventFile| {
        for mut l in lanes.drain(..) {
            l.close_until(i64::MAX, file)?;
            l.flush(file)?;
            l.buf = Vec::new();
            l.stack = Vec::new();
            done.push(l);
        }
        io::Result::Ok(())
    };
    while let Some(it) = merged.next_item()? {
        if cur != Some((it.pid, it.tid)) {
            finish_thread(&mut lanes, &mut done, &mut file)?;
            cur = Some((it.pid, it.tid));
        }
        let mut placed = None;
        for (i, l) in lanes.iter_mut().enumerate() {
            l.close_until(it.start, &mut file)?;
            let fits = match l.stack.last() {
                Some(&(end, _)) => end >= it.end,
                None => true,
            };
            if fits {
                placed = Some(i);
                break;
            }
        }
        let i = match placed {
            Some(i) => i,
            None => {
                let base = match thread_names.get(&(it.pid, it.tid)) {
                    Some(Some(name)) => format!("{name} (pid {}, tid {})", it.pid, it.tid),
                    _ => format!("pid {}, tid {}", it.pid, it.tid),
                };
                let name = if lanes.is_empty() {
                    base
                } else {
                    format!("{base} · overlap {}", lanes.len())
                };
                lanes.push(Lane {
                    name,
                    stack: vec![],
                    buf: vec![],
                    chunks: vec![],
                    start: 0,
                    end: 0,
                    events: 0,
                });
                lanes.len() - 1
            }
        };
        let l = &mut lanes[i];
        l.event(b'O', it.frame, it.start, &mut file)?;
        l.stack.push((it.end, it.frame));
    }
    finish_thread(&mut lanes, &mut done, &mut file)?;
    let mut events = file.w.into_inner().map_err(|e| e.into_error())?;

    w.write_all(b"{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",")?;
    w.write_all(b"\"exporter\":\"ferret\",\"name\":")?;
    serde_json::to_writer(&mut *w, &format!("ferret run {run}"))?;
    w.write_all(b",\"activeProfileIndex\":0,\"profiles\":[")?;
    for (i, l) in done.iter().enumerate() {
        if i > 0 {
            w.write_all(b",\n")?;
        }
        w.write_all(b"{\"type\":\"evented\",\"name\":")?;
        serde_json::to_writer(&mut *w, &l.name)?;
        write!(
            w,
            ",\"unit\":\"nanoseconds\",\"startValue\":{},\"endValue\":{},\"events\":[",
            l.start, l.end
        )?;
        for &(off, len) in &l.chunks {
            events.seek(SeekFrom::Start(off))?;
            io::copy(&mut (&mut events).take(len), w)?;
        }
        w.write_all(b"]}")?;
    }
    w.write_all(b"],\n\"shared\":{\"frames\":[")?;
    for (i, f) in frames.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        w.write_all(b"{\"name\":")?;
        serde_json::to_writer(&mut *w, f)?;
        w.write_all(b"}")?;
    }
    w.write_all(b"]}}\n")?;
    Ok(n)
}

/// The run as one sampled profile: each call path a sample weighted by
/// its self time on the selection's clock. Memory: the distinct call
/// paths (as for folded stacks).
fn write_weighted(
    store: &Store,
    sel: &Selection,
    opts: &Options,
    w: &mut dyn Write,
) -> Result<u64> {
    let fold_opts = opts
        .max_depth
        .map_or_else(FoldOptions::default, |d| FoldOptions {
            max_depth: d.max(1),
        });
    let (paths, n) = fold_selection(store, sel, &fold_opts)?;
    let mut frame_ids: FxHashMap<&str, u32> = FxHashMap::default();
    let mut frames: Vec<&str> = vec![];
    let mut samples: Vec<Vec<u32>> = Vec::with_capacity(paths.len());
    for p in &paths {
        let stack = p
            .stack
            .split(';')
            .map(|f| {
                let next = frames.len() as u32;
                *frame_ids.entry(f).or_insert_with(|| {
                    frames.push(f);
                    next
                })
            })
            .collect();
        samples.push(stack);
    }
    let weights: Vec<u64> = paths.iter().map(|p| p.self_ns).collect();
    let total = weights.iter().fold(0u64, |a, &b| a.saturating_add(b));
    let doc = serde_json::json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "exporter": "ferret",
        "name": format!("ferret run {} ({} clock)", sel.run, sel.clock.name()),
        "activeProfileIndex": 0,
        "profiles": [{
            "type": "sampled",
            "name": format!("self {} time per call path", sel.clock.name()),
            "unit": "nanoseconds",
            "startValue": 0,
            "endValue": total,
            "samples": samples,
            "weights": weights,
        }],
        "shared": { "frames": frames.iter().map(|f| serde_json::json!({ "name": f })).collect::<Vec<_>>() },
    });
    serde_json::to_writer(&mut *w, &doc)?;
    w.write_all(b"\n")?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_names_carry_chosen_tags() {
        let tags = vec![
            ("table".to_owned(), TagValue::Str("users".into())),
            ("rows".to_owned(), TagValue::I64(3)),
        ];
        let keys = vec!["table".to_owned(), "rows".to_owned(), "x".to_owned()];
        assert_eq!(frame_name("q", &tags, &keys), "q [table=users, rows=3]");
        assert_eq!(frame_name("q", &tags, &[]), "q");
    }
}
