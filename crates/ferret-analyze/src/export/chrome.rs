//! Chrome / Perfetto Trace Event Format: a JSON object whose `traceEvents`
//! holds one `X` (complete) event per span, then `M` metadata events naming
//! processes and threads.
//!
//! **Async tracks.** Slices on one track must nest: async tasks sharing a
//! thread overlap without nesting (task a starts, task b starts, a ends, b
//! ends), and Perfetto then mis-draws them. So each thread's spans are
//! swept in start order and placed in the first *lane* where they nest (the
//! lane's innermost open span contains them, or nothing is open there),
//! as the speedscope exporter does. Lane 0 is the thread's own track; each
//! further lane is a track of its own, named `<thread> · async lane N`,
//! with a synthetic tid (from `1 << 40` up, skipping the run's real tids).
//! No slice then partially overlaps another on its track.
//!
//! Two passes, both streaming: the first reads every span's thread, start
//! and end with its position in the scan into an external sort by (thread,
//! start, longest first), sweeps it, and sends the (position, track) of
//! every span that does not stay on its thread's track through a second
//! external sort by position; the second pass reads the run again, in the
//! same order, and writes each span's event on its track. Memory: two sort
//! chunks (1 Mi spans, 32 MB each, spilled to temp files beyond), the open
//! spans of the lanes of the thread being swept, and the distinct threads
//! and lanes of the run.
//!
//! Times are µs relative to the run's first span (`otherData.origin_ns`
//! holds that origin in ns since the epoch), written with three decimals so
//! that no nanosecond is lost.

use super::extsort::{Item, Merged, Sorter, DEFAULT_CHUNK};
use super::{origin_ns, write_us, Options};
use crate::analysis::query::Selection;
use crate::analysis::scan::try_for_each;
use crate::error::Result;
use crate::store::Store;
use ferret_format::span_end;
use rustc_hash::{FxHashMap, FxHashSet};
use std::io::{self, Write};

/// The first synthetic tid of a lane track.
const LANE_TID_BASE: u64 = 1 << 40;

/// A track beyond a thread's own: lane `lane` of thread (`pid`, `tid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LaneTrack {
    pid: u32,
    tid: u64,
    lane: u32,
    /// The tid its events carry.
    track_tid: u64,
}

/// The sweep's result: the lane tracks, and (scan position → track index)
/// of every span placed on one, in scan order.
struct Lanes {
    tracks: Vec<LaneTrack>,
    moved: Merged,
}

/// Pass 1: places every span of the run in a lane of its thread.
fn assign_lanes(store: &Store, sel: &Selection, chunk: usize) -> Result<Lanes> {
    let mut sorter = Sorter::new(chunk);
    let mut pos = 0u64;
    let mut real: FxHashSet<(u32, u64)> = FxHashSet::default();
    try_for_each(store, sel, false, |s| -> Result<()> {
        let r = s.span;
        real.insert((r.pid, r.tid));
        // Positions past u32 (4 G spans) stay on their thread's track.
        if let Ok(p) = u32::try_from(pos) {
            let start = r.start_ns();
            sorter.push(Item {
                pid: r.pid,
                tid: r.tid,
                start,
                end: span_end(start, r.duration_ns().unwrap_or(0)),
                frame: p,
            })?;
        }
        pos += 1;
        Ok(())
    })?;
    let mut sorted = sorter.finish()?;
    let mut moved = Sorter::new(chunk);
    let mut tracks: Vec<LaneTrack> = vec![];
    // The lanes of the thread being swept: the ends of their open spans
    // (innermost last), and each lane's track index (lane 0: none).
    let mut lanes: Vec<(Vec<i64>, u32)> = vec![];
    let mut cur: Option<(u32, u64)> = None;
    let mut next_tid = LANE_TID_BASE;
    while let Some(it) = sorted.next_item()? {
        if cur != Some((it.pid, it.tid)) {
            lanes.clear();
            cur = Some((it.pid, it.tid));
        }
        let mut placed = None;
        for (i, (stack, _)) in lanes.iter_mut().enumerate() {
            while stack.last().is_some_and(|&end| end <= it.start) {
                stack.pop();
            }
            if stack.last().is_none_or(|&end| end >= it.end) {
                placed = Some(i);
                break;
            }
        }
        let i = placed.unwrap_or_else(|| {
            let lane = lanes.len() as u32;
            let mut track = u32::MAX;
            if lane > 0 {
                while real.contains(&(it.pid, next_tid)) {
                    next_tid += 1;
                }
                track = tracks.len() as u32;
                tracks.push(LaneTrack {
                    pid: it.pid,
                    tid: it.tid,
                    lane,
                    track_tid: next_tid,
                });
                next_tid += 1;
            }
            lanes.push((vec![], track));
            lanes.len() - 1
        });
        let (stack, track) = &mut lanes[i];
        stack.push(it.end);
        if i > 0 {
            moved.push(Item {
                pid: 0,
                tid: 0,
                start: i64::from(it.frame),
                end: 0,
                frame: *track,
            })?;
        }
    }
    Ok(Lanes {
        tracks,
        moved: moved.finish()?,
    })
}

/// Writes the run as Chrome / Perfetto Trace Event Format JSON; returns the spans read.
pub fn write(store: &Store, sel: &Selection, _opts: &Options, w: &mut dyn Write) -> Result<u64> {
    write_chunked(store, sel, w, DEFAULT_CHUNK)
}

/// [`write`] with sort chunks of `chunk` spans (small in tests, to spill).
fn write_chunked(store: &Store, sel: &Selection, w: &mut dyn Write, chunk: usize) -> Result<u64> {
    let run = sel.run.as_str();
    let origin = origin_ns(sel);
    let Lanes { tracks, mut moved } = assign_lanes(store, sel, chunk)?;
    let mut next_moved = moved.next_item()?;
    let mut pos = 0u64;
    let mut n = 0u64;
    let mut seen: FxHashSet<(u32, u64)> = FxHashSet::default();
    w.write_all(b"{\"traceEvents\":[\n")?;
    try_for_each(store, sel, true, |s| -> Result<()> {
        let r = s.span;
        if n > 0 {
            w.write_all(b",\n")?;
        }
        n += 1;
        let mut tid = r.tid;
        if let Some(m) = next_moved.filter(|m| m.start as u64 == pos) {
            let t = &tracks[m.frame as usize];
            // The same span as in pass 1 (the scan order is the file's).
            if (t.pid, t.tid) == (r.pid, r.tid) {
                tid = t.track_tid;
            }
            next_moved = moved.next_item()?;
        }
        pos += 1;
        seen.insert((r.pid, r.tid));
        w.write_all(b"{\"ph\":\"X\",\"cat\":\"span\",\"name\":")?;
        serde_json::to_writer(&mut *w, s.name)?;
        w.write_all(b",\"ts\":")?;
        write_us(w, r.start_ns().saturating_sub(origin))?;
        w.write_all(b",\"dur\":")?;
        write_us(w, r.duration_ns().unwrap_or(0).min(i64::MAX as u64) as i64)?;
        write!(w, ",\"pid\":{},\"tid\":{tid},\"args\":{{\"status\":", r.pid)?;
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
    let thread_name = |pid: u32, tid: u64| match names.get(&(pid, tid)) {
        Some(Some(n)) => format!("{n} ({tid})"),
        _ => format!("thread {tid}"),
    };
    let mut meta = |w: &mut dyn Write, pid: u32, tid: u64, name: &str| -> io::Result<()> {
        sep(w)?;
        write!(w, "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":")?;
        serde_json::to_writer(&mut *w, name)?;
        w.write_all(b"}}")?;
        // Lane tracks right below their thread.
        write!(w, ",\n{{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"sort_index\":")?;
        Ok(())
    };
    let mut lane_tracks: FxHashMap<(u32, u64), Vec<&LaneTrack>> = FxHashMap::default();
    for t in &tracks {
        lane_tracks.entry((t.pid, t.tid)).or_default().push(t);
    }
    let mut sort_index = 0u64;
    for (pid, tid) in threads {
        let name = thread_name(pid, tid);
        meta(w, pid, tid, &name)?;
        write!(w, "{sort_index}}}}}")?;
        sort_index += 1;
        for t in lane_tracks.get(&(pid, tid)).into_iter().flatten() {
            meta(
                w,
                pid,
                t.track_tid,
                &format!("{name} · async lane {}", t.lane),
            )?;
            write!(w, "{sort_index}}}}}")?;
            sort_index += 1;
        }
    }
    w.write_all(b"\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"run\":")?;
    serde_json::to_writer(&mut *w, run)?;
    writeln!(
        w,
        ",\"origin_ns\":{origin},\"spans\":{n},\"lane_tracks\":{}}}}}",
        tracks.len()
    )?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::query::{select, Query};
    use ferret_testkit::{span, NativeFile};

    /// Spilled sort chunks give the same file as one chunk in memory.
    #[test]
    fn spilling_sorts_give_the_same_tracks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.db");
        let mut x = 99u64;
        let spans = (1..=400u64).map(|id| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            span(id, 0, "t", (x % 10_000) as i64, 1 + x % 3_000, 0)
        });
        NativeFile::new("r").spans(spans).write(&path);
        let store = Store::open(&path).unwrap();
        let sel = select(&store, &Query::run("r")).unwrap();
        let mut big = Vec::new();
        write_chunked(&store, &sel, &mut big, DEFAULT_CHUNK).unwrap();
        let mut small = Vec::new();
        write_chunked(&store, &sel, &mut small, 7).unwrap();
        assert_eq!(
            String::from_utf8(big).unwrap(),
            String::from_utf8(small).unwrap()
        );
    }
}
