//! Parent links and call paths for files that store none (ferret-io), in
//! bounded memory.
//!
//! Spans must arrive in start order. The resolver keeps a map of *open*
//! spans (started, not yet ended at the stream's current time) and evicts a
//! span once the stream passes its end, finishing it (its self time is then
//! known). A span whose parent is not open (absent from the run, or a
//! straggler that starts after its parent ended) becomes a root.
//!
//! Bound: memory is proportional to the number of spans open at one moment
//! (concurrency × depth), plus the distinct call paths. If more than
//! `max_open` spans are open at once, the one ending first is finished early:
//! its later children become roots. The default cap, 1,000,000 open spans,
//! costs about 100 MB in the worst case.

use crate::store::SpanRecord;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Default cap on open spans.
pub const DEFAULT_MAX_OPEN: usize = 1_000_000;

struct Open {
    /// The end its heap entry carries (a duplicate id leaves a stale entry).
    end: i64,
    path: u32,
    name: u32,
    dur: Option<u64>,
    child_ns: u64,
}

/// A span the resolver is done with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Span id.
    pub span_id: u64,
    /// Name id.
    pub name: u32,
    /// Resolved call-path id (see [`PathResolver::path`]).
    pub path: u32,
    /// Duration, if known.
    pub dur_ns: Option<u64>,
    /// Self time: duration minus the direct children's durations, never below 0.
    pub self_ns: Option<u64>,
}

/// Assigns call paths to a start-ordered span stream; see the module docs.
pub struct PathResolver {
    open: FxHashMap<u64, Open>,
    heap: BinaryHeap<Reverse<(i64, u64)>>,
    path_ids: FxHashMap<(u32, u32), u32>,
    /// By name id: the (parent path, path) last interned for that name.
    /// Spans of one name mostly share their parent path (all of them, under
    /// a long-running service's root), so this array answers most lookups
    /// without hashing.
    last_by_name: Vec<(u32, u32)>,
    /// `paths[id - 1]` = (parent path, name id); path 0 is the root.
    paths: Vec<(u32, u32)>,
    max_open: usize,
    /// Spans finished early because the open-span cap was reached.
    pub evicted_early: u64,
}

impl Default for PathResolver {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_OPEN)
    }
}

impl PathResolver {
    /// A resolver keeping at most `max_open` open spans.
    pub fn new(max_open: usize) -> PathResolver {
        PathResolver {
            open: FxHashMap::default(),
            heap: BinaryHeap::new(),
            path_ids: FxHashMap::default(),
            last_by_name: vec![],
            paths: vec![],
            max_open: max_open.max(1),
            evicted_early: 0,
        }
    }

    /// (parent path, name id) of a path id (ids start at 1).
    pub fn path(&self, id: u32) -> Option<(u32, u32)> {
        self.paths.get(id.checked_sub(1)? as usize).copied()
    }

    /// Number of distinct paths so far.
    pub fn path_count(&self) -> usize {
        self.paths.len()
    }

    /// Spans currently open.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    #[inline]
    fn intern(&mut self, parent: u32, name: u32) -> u32 {
        if let Some(&(p, id)) = self.last_by_name.get(name as usize) {
            if p == parent && id != 0 {
                return id;
            }
        }
        let id = self.intern_slow(parent, name);
        let i = name as usize;
        if i < 1 << 20 {
            if i >= self.last_by_name.len() {
                self.last_by_name.resize(i + 1, (0, 0));
            }
            self.last_by_name[i] = (parent, id);
        }
        id
    }

    fn intern_slow(&mut self, parent: u32, name: u32) -> u32 {
        let next = self.paths.len() as u32 + 1;
        let id = *self.path_ids.entry((parent, name)).or_insert(next);
        if id == next {
            self.paths.push((parent, name));
        }
        id
    }

    fn finish_one(&mut self, id: u64, end: i64, out: &mut impl FnMut(Finished)) {
        if self.open.get(&id).is_none_or(|o| o.end != end) {
            return; // a stale heap entry of an id used twice
        }
        if let Some(o) = self.open.remove(&id) {
            out(Finished {
                span_id: id,
                name: o.name,
                path: o.path,
                dur_ns: o.dur,
                self_ns: o.dur.map(|d| d.saturating_sub(o.child_ns)),
            });
        }
    }

    /// Feeds the next span (in start order); finishes every open span that
    /// ended before it starts, then returns its path id.
    pub fn push(&mut self, s: &SpanRecord, out: &mut impl FnMut(Finished)) -> u32 {
        while let Some(Reverse((end, id))) = self.heap.peek().copied() {
            if end >= s.start_ns() {
                break;
            }
            self.heap.pop();
            self.finish_one(id, end, out);
        }
        let parent = s.parent_id().and_then(|p| self.open.get_mut(&p));
        let ppath = match parent {
            Some(p) => {
                p.child_ns = p.child_ns.saturating_add(s.duration_ns().unwrap_or(0));
                p.path
            }
            None => 0,
        };
        let path = self.intern(ppath, s.name);
        // A span without a duration is still open (or its end was lost):
        // its children that follow stay its children.
        let end = match s.duration_ns() {
            Some(_) => s.end_ns(),
            None => i64::MAX,
        };
        if self.open.len() >= self.max_open {
            if let Some(Reverse((end, id))) = self.heap.pop() {
                self.evicted_early += 1;
                self.finish_one(id, end, out);
            }
        }
        if let Some(old) = self.open.insert(
            s.span_id(),
            Open {
                end,
                path,
                name: s.name,
                dur: s.duration_ns(),
                child_ns: 0,
            },
        ) {
            // Duplicate span id: finish the older one now.
            out(Finished {
                span_id: s.span_id(),
                name: old.name,
                path: old.path,
                dur_ns: old.dur,
                self_ns: old.dur.map(|d| d.saturating_sub(old.child_ns)),
            });
        }
        self.heap.push(Reverse((end, s.span_id())));
        path
    }

    /// Finishes every span still open (end of stream).
    pub fn finish(&mut self, out: &mut impl FnMut(Finished)) {
        while let Some(Reverse((end, id))) = self.heap.pop() {
            self.finish_one(id, end, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, parent: Option<u64>, name: u32, start: i64, dur: u64) -> SpanRecord {
        SpanRecord {
            head: ferret_format::codec::SpanHead {
                id,
                parent: parent.unwrap_or(0),
                start_ns: start,
                dur_ns: dur,
                ..Default::default()
            },
            name,
            recorded: crate::store::Recorded {
                duration: true,
                path_and_children: false,
            },
            ..Default::default()
        }
    }

    #[test]
    fn self_time_and_paths() {
        let mut r = PathResolver::default();
        let mut fin = vec![];
        let spans = [
            rec(1, None, 0, 0, 100),
            rec(2, Some(1), 1, 10, 30),
            rec(3, Some(2), 2, 15, 10),
            rec(4, Some(1), 1, 50, 20),
            rec(5, Some(99), 1, 200, 5), // orphan: root
        ];
        let mut paths = vec![];
        for s in &spans {
            paths.push(r.push(s, &mut |f| fin.push(f)));
        }
        r.finish(&mut |f| fin.push(f));
        assert_eq!(paths[1], paths[3], "same call path");
        assert_ne!(paths[1], paths[4], "orphan is a root path");
        assert_eq!(r.path(paths[2]).unwrap(), (paths[1], 2));
        let self_of = |id| fin.iter().find(|f| f.span_id == id).unwrap().self_ns;
        assert_eq!(self_of(1), Some(50));
        assert_eq!(self_of(2), Some(20));
        assert_eq!(self_of(3), Some(10));
        assert_eq!(fin.len(), 5);
        assert_eq!(r.open_count(), 0);
    }

    #[test]
    fn overlapping_children_never_make_self_negative() {
        let mut r = PathResolver::default();
        let mut fin = vec![];
        for s in [
            rec(1, None, 0, 0, 10),
            rec(2, Some(1), 1, 1, 9),
            rec(3, Some(1), 1, 2, 8),
        ] {
            r.push(&s, &mut |f| fin.push(f));
        }
        r.finish(&mut |f| fin.push(f));
        assert_eq!(
            fin.iter().find(|f| f.span_id == 1).unwrap().self_ns,
            Some(0)
        );
    }

    #[test]
    fn a_long_open_root_keeps_memory_flat_whatever_its_children() {
        // The service shape: one root open for the whole stream, 100,000
        // children one after another under it, 300 names.
        let mut r = PathResolver::default();
        let mut fin = vec![];
        r.push(&rec(1, None, 0, 0, 10_000_000), &mut |f| fin.push(f));
        let mut most_open = 0;
        let mut paths = std::collections::BTreeSet::new();
        for i in 0..100_000u64 {
            let p = r.push(
                &rec(
                    i + 2,
                    Some(1),
                    1 + (i % 300) as u32,
                    10 + i as i64 * 100,
                    50,
                ),
                &mut |f| fin.push(f),
            );
            paths.insert(p);
            most_open = most_open.max(r.open_count()).max(r.heap.len());
        }
        assert!(most_open <= 2, "open spans and heap entries: {most_open}");
        assert_eq!(paths.len(), 300, "one path per name under the root");
        assert_eq!(r.path_count(), 301);
        r.finish(&mut |f| fin.push(f));
        assert_eq!(fin.len(), 100_001);
        let root = fin.iter().find(|f| f.span_id == 1).unwrap();
        assert_eq!(root.self_ns, Some(10_000_000 - 100_000 * 50));
    }

    #[test]
    fn the_name_cache_tells_paths_of_different_parents_apart() {
        // One name under two parents, alternating: each span keeps the
        // path of its own parent.
        let mut r = PathResolver::default();
        let mut fin = vec![];
        r.push(&rec(1, None, 0, 0, 1000), &mut |f| fin.push(f));
        r.push(&rec(2, None, 1, 0, 1000), &mut |f| fin.push(f));
        let mut got = vec![];
        for i in 0..6u64 {
            let parent = 1 + i % 2;
            got.push(
                r.push(&rec(10 + i, Some(parent), 5, 1 + i as i64, 1), &mut |f| {
                    fin.push(f)
                }),
            );
        }
        assert_eq!(got[0], got[2]);
        assert_eq!(got[1], got[3]);
        assert_ne!(got[0], got[1]);
        assert_eq!(r.path(got[0]).unwrap(), (r.path(1).map(|_| 1).unwrap(), 5));
        assert_eq!(r.path(got[1]).unwrap().1, 5);
    }

    #[test]
    fn cap_bounds_open_spans() {
        let mut r = PathResolver::new(10);
        let mut n = 0;
        for i in 0..1000u64 {
            r.push(&rec(i + 1, None, 0, i as i64, 1_000_000), &mut |_| n += 1);
            assert!(r.open_count() <= 10);
        }
        r.finish(&mut |_| n += 1);
        assert_eq!(n, 1000);
        assert_eq!(r.evicted_early, 990);
    }
}
