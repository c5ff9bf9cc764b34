//! The slowest call trees of a run (`ferret analyze --tree`), in bounded
//! memory. See `docs/trees.md` for the bounds.
//!
//! * Pass 1 streams every span and keeps a heap of the `top` slowest roots.
//!   A root is a span with no parent, or whose parent is absent from the run
//!   (an orphan). ferret-io files are start-ordered: the scan driver's
//!   resolver tells whether a span's parent is open when it starts (a straggler that starts
//!   after its parent ended is a root, as in `calltree`). Native files are
//!   not start-ordered: pass 1 also collects the set of every span id (a
//!   compressed bitmap: about one bit per span, exact) and an extra pass
//!   keeps the `top` slowest spans whose parent is absent.
//! * On native files pass 1 and the orphan pass read the fixed fields only,
//!   on [`TreeOptions::threads`] threads: their states merge exactly (a
//!   union of id sets, the top N of a total order, per-parent minima and
//!   maxima), so the result is the same for any thread count.
//! * Pass 2 streams again and keeps only the descendants of the chosen roots
//!   (native: spans whose trace id is a chosen root's trace; ferret-io: spans
//!   whose parent was kept). Once a node has more than `max_children`
//!   children, its children merge into one aggregate per name as they
//!   stream, so a parent of 10M children holds at most `4 × max_children`
//!   aggregates, never 10M nodes.
//!
//! The result is a flat arena ([`Tree`]): no recursion anywhere, so a chain
//! 100,000 spans deep is fine.

use super::parallel::{scan_threads, Merge};
use super::query::{select, Query};
use super::scan::{scan, Fold, Resolved, ScanOptions, Scanned};
use crate::error::Result;
use crate::store::{FileKind, SpanRecord, Store};
use ferret_format::codec::SpanHead;
use ferret_format::span_end;
use ferret_format::{Status, Tags};
use roaring::RoaringTreemap;
use rustc_hash::{FxHashMap, FxHashSet};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Options of [`slowest_trees`].
#[derive(Debug, Clone, Copy)]
pub struct TreeOptions {
    /// Roots to keep.
    pub top: usize,
    /// Children per node before same-name siblings merge.
    pub max_children: usize,
    /// Threads reading a native file's first passes (the last pass, which
    /// builds the trees in file order, reads with one). The trees are the
    /// same for any count. Default 1.
    pub threads: usize,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions {
            top: 20,
            max_children: 50,
            threads: 1,
        }
    }
}

/// Same-name siblings merged into one line. Times in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Merged {
    /// Spans merged.
    pub count: u64,
    /// Sum of their durations.
    pub total_ns: u64,
    /// Longest.
    pub max_ns: u64,
    /// Sum of their self times.
    pub self_ns: u64,
    /// Spans whose status is not ok.
    pub error_count: u64,
}

impl Merged {
    fn add(&mut self, dur: u64, self_ns: u64, err: bool) {
        self.count += 1;
        self.total_ns = self.total_ns.saturating_add(dur);
        self.max_ns = self.max_ns.max(dur);
        self.self_ns = self.self_ns.saturating_add(self_ns);
        self.error_count += err as u64;
    }

    fn absorb(&mut self, o: &Merged) {
        self.count += o.count;
        self.total_ns = self.total_ns.saturating_add(o.total_ns);
        self.max_ns = self.max_ns.max(o.max_ns);
        self.self_ns = self.self_ns.saturating_add(o.self_ns);
        self.error_count += o.error_count;
    }

    /// Mean duration.
    pub fn avg_ns(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_ns as f64 / self.count as f64
        }
    }
}

/// Lines left out under a merged node: `… lines more`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct More {
    /// Merged lines not shown.
    pub lines: u64,
    /// Their spans, in total.
    pub agg: Merged,
}

/// One line of a tree.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeNode {
    /// Span name.
    pub name: String,
    /// Start (ns since the epoch); first start for a merged line.
    pub start_ns: i64,
    /// Duration; the total for a merged line.
    pub duration_ns: Option<u64>,
    /// Self time: duration minus direct children's durations (floored at 0).
    pub self_ns: Option<u64>,
    /// Status (ok for a merged line).
    pub status: Status,
    /// Tags (empty for a merged line).
    pub tags: Tags,
    /// Children (indices into [`Tree::nodes`]), in start order; merged
    /// lines by total, largest first.
    pub children: Vec<usize>,
    /// Set when this line stands for several same-name siblings.
    pub merged: Option<Merged>,
    /// Set when lines were left out after `children`.
    pub more: Option<More>,
    /// True for a span that is not in the file but whose children are: still
    /// open (a live file) or lost in a crash. Its name comes from its
    /// children's call path (native files; `?` otherwise), its start and
    /// duration from the extent of its recorded children (a lower bound).
    pub missing: bool,
}

/// The slowest trees of a run, as a flat arena.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    /// Run analyzed.
    pub run_id: String,
    /// True when the run was picked as the file's latest.
    pub latest: bool,
    /// Every line.
    pub nodes: Vec<TreeNode>,
    /// The roots, slowest first.
    pub roots: Vec<usize>,
    /// Spans read per pass.
    pub spans: u64,
    /// Passes over the data.
    pub passes: u32,
}

/// Missing parents tracked as roots at most; past that, orphans are
/// offered one by one.
const MAX_MISSING: usize = 1 << 20;

/// Ranking of roots: slower first, then earlier start, then smaller id.
type Key = (u64, Reverse<i64>, Reverse<u64>);

/// A span's [`Key`] (a span without a duration ranks as 0).
fn key(s: &SpanRecord) -> Key {
    (
        s.duration_ns().unwrap_or(0),
        Reverse(s.start_ns()),
        Reverse(s.span_id()),
    )
}

/// The [`Key`] of a native span from its fixed fields.
#[inline]
fn head_key(h: &SpanHead) -> Key {
    (h.dur_ns, Reverse(h.start_ns), Reverse(h.id))
}

#[derive(Clone, Copy)]
struct Cand {
    key: Key,
    trace: u64,
}

// A total order (the trace breaks ties between equal keys, which only a
// damaged or merged file has), so that the top N do not depend on the
// order spans arrive in, nor on how a parallel scan split them.
impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        (self.key, self.trace) == (o.key, o.trace)
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.key, self.trace).cmp(&(o.key, o.trace))
    }
}

/// Keeps the `n` largest candidates.
struct TopN {
    n: usize,
    heap: BinaryHeap<Reverse<Cand>>,
}

impl TopN {
    fn new(n: usize) -> TopN {
        TopN {
            n,
            heap: BinaryHeap::new(),
        }
    }
    fn offer_key(&mut self, key: Key, trace: u64) {
        if self.n == 0 {
            return;
        }
        let c = Cand { key, trace };
        if self.heap.len() < self.n {
            self.heap.push(Reverse(c));
        } else if let Some(Reverse(min)) = self.heap.peek() {
            if c > *min {
                self.heap.pop();
                self.heap.push(Reverse(c));
            }
        }
    }

    /// Adds the candidates `other` kept.
    fn merge(&mut self, other: TopN) {
        for Reverse(c) in other.heap {
            self.offer_key(c.key, c.trace);
        }
    }
}

/// A [`ForEach`](super::scan::ForEach) that, on native files, skips the spans `wants` rejects
/// before their status and tags are decoded.
struct Filtered<W, F> {
    wants: W,
    each: F,
}

impl<W: FnMut(&SpanHead) -> bool, F: FnMut(Resolved<'_>)> Fold for Filtered<W, F> {
    #[inline]
    fn wants(&mut self, h: &SpanHead) -> bool {
        (self.wants)(h)
    }

    fn filters(&self) -> bool {
        true
    }

    fn span(&mut self, s: Resolved<'_>) {
        (self.each)(s)
    }
}

/// A set of span ids, exact: a compressed bitmap ([`RoaringTreemap`]), about
/// one bit per span for the recorder's dense ids and at most ~2 bytes per
/// span for sparse ones. Ids are added in sorted batches: a block's ids are
/// not in order (spans are written as they end), and one insert at a time
/// searched the bitmap for each.
#[derive(Default)]
struct IdSet {
    set: RoaringTreemap,
    batch: Vec<u64>,
}

impl IdSet {
    /// Ids held before they go into the bitmap (512 KB).
    const BATCH: usize = 1 << 16;

    #[inline]
    fn insert(&mut self, id: u64) {
        self.batch.push(id);
        if self.batch.len() >= Self::BATCH {
            self.flush();
        }
    }

    /// Moves the batch into the bitmap.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.batch.sort_unstable();
        self.batch.dedup();
        let part = RoaringTreemap::from_sorted_iter(self.batch.drain(..))
            .expect("sorted and deduplicated");
        self.set |= part;
    }

    /// Adds every id of `other`.
    fn union(&mut self, mut other: IdSet) {
        other.flush();
        self.set |= other.set;
    }

    /// The finished set (after the last insert).
    fn finish(mut self) -> RoaringTreemap {
        self.flush();
        self.set
    }
}

/// Pass 1: the slowest roots and, for native files, every span id.
struct RootsFold {
    kind: FileKind,
    top: TopN,
    /// Every span id of a native run, so that the orphan pass can tell
    /// the parents that are absent.
    ids: Option<IdSet>,
}

impl RootsFold {
    #[inline]
    fn root(&mut self, id: u64, is_root: bool, key: Key, trace: u64) {
        if let Some(ids) = &mut self.ids {
            ids.insert(id);
        }
        if is_root {
            self.top.offer_key(key, trace);
        }
    }
}

impl Fold for RootsFold {
    fn heads_only(&self) -> bool {
        self.kind == FileKind::Native
    }

    #[inline(always)]
    fn head(&mut self, h: &SpanHead, _name: u32) {
        self.root(h.id, h.parent == 0, head_key(h), h.trace);
    }

    fn span(&mut self, r: Resolved<'_>) {
        let s = r.span;
        let is_root = match self.kind {
            FileKind::Native => s.parent_id().is_none(),
            // Start order: a span whose parent is not open is a root.
            FileKind::FerretIo => r.parent_path == 0,
        };
        self.root(s.span_id(), is_root, key(s), s.trace_id());
    }
}

impl Merge for RootsFold {
    fn fresh(&self) -> Self {
        RootsFold {
            kind: self.kind,
            top: TopN::new(self.top.n),
            ids: self.ids.as_ref().map(|_| IdSet::default()),
        }
    }

    fn merge(&mut self, other: Self) {
        if let (Some(a), Some(b)) = (&mut self.ids, other.ids) {
            a.union(b);
        }
        self.top.merge(other.top);
    }
}

/// A parent absent from the run, as its orphans show it.
#[derive(Clone, Copy)]
struct Missing {
    /// Earliest start and latest end of its orphans.
    start: i64,
    end: i64,
    /// The smallest (trace, call path) among its orphans: the same trace
    /// and parent path for all of them in a sound file; the smallest, so
    /// that it does not depend on their order.
    trace: u64,
    path: u32,
}

impl Missing {
    /// Adds what other orphans of the same parent show.
    fn absorb(&mut self, o: Missing) {
        self.start = self.start.min(o.start);
        self.end = self.end.max(o.end);
        (self.trace, self.path) = (self.trace, self.path).min((o.trace, o.path));
    }
}

/// The orphan pass (native files): spans whose parent id is not in the
/// run, grouped by that parent.
struct OrphansFold<'a> {
    ids: &'a RoaringTreemap,
    /// The last parent looked up in `ids`, and whether it is there:
    /// siblings often follow one another.
    last: (u64, bool),
    missing: FxHashMap<u64, Missing>,
    /// Orphans of further parents once `missing` holds [`MAX_MISSING`]
    /// of them, offered one by one.
    overflow: TopN,
    /// True once a parent was not tracked for lack of room: the result
    /// then depends on the order of the spans, and a parallel scan is
    /// redone with one thread.
    full: bool,
}

impl OrphansFold<'_> {
    #[inline]
    fn orphan(
        &mut self,
        parent: u64,
        (start, end): (i64, i64),
        (trace, path): (u64, u32),
        key: Key,
    ) {
        if self.last.0 != parent {
            self.last = (parent, self.ids.contains(parent));
        }
        if self.last.1 {
            return;
        }
        let m = Missing {
            start,
            end,
            trace,
            path,
        };
        if let Some(had) = self.missing.get_mut(&parent) {
            had.absorb(m);
        } else if self.missing.len() < MAX_MISSING {
            self.missing.insert(parent, m);
        } else {
            self.full = true;
            self.overflow.offer_key(key, trace);
        }
    }
}

impl Fold for OrphansFold<'_> {
    fn heads_only(&self) -> bool {
        true
    }

    #[inline(always)]
    fn head(&mut self, h: &SpanHead, _name: u32) {
        if h.parent == 0 {
            return;
        }
        let end = span_end(h.start_ns, h.dur_ns);
        self.orphan(h.parent, (h.start_ns, end), (h.trace, h.path), head_key(h));
    }

    fn span(&mut self, r: Resolved<'_>) {
        let s = r.span;
        let Some(p) = s.parent_id() else { return };
        self.orphan(
            p,
            (s.start_ns(), s.end_ns()),
            (s.trace_id(), r.path),
            key(s),
        );
    }
}

impl Merge for OrphansFold<'_> {
    fn fresh(&self) -> Self {
        OrphansFold {
            ids: self.ids,
            last: (0, false),
            missing: FxHashMap::default(),
            overflow: TopN::new(self.overflow.n),
            full: false,
        }
    }

    fn merge(&mut self, other: Self) {
        self.full |= other.full;
        for (p, o) in other.missing {
            match self.missing.entry(p) {
                std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().absorb(o),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(o);
                }
            }
        }
        // More parents than one thread may track: only one thread in file
        // order gives the documented result.
        self.full |= self.missing.len() > MAX_MISSING;
        self.overflow.merge(other.overflow);
    }
}

enum Kids {
    List(Vec<u32>),
    Merged {
        groups: FxHashMap<u32, (Merged, i64)>,
        other: Merged,
    },
}

struct BNode {
    span_id: u64,
    filled: bool,
    name: u32,
    start_ns: i64,
    dur: Option<u64>,
    children_ns: Option<u64>,
    child_sum: u64,
    status: Status,
    tags: Tags,
    kids: Kids,
}

impl BNode {
    fn placeholder(id: u64) -> BNode {
        BNode {
            span_id: id,
            filled: false,
            name: 0,
            start_ns: 0,
            dur: None,
            children_ns: None,
            child_sum: 0,
            status: Status::Ok,
            tags: Vec::new(),
            kids: Kids::List(Vec::new()),
        }
    }
    fn self_ns(&self) -> Option<u64> {
        self.dur
            .map(|d| d.saturating_sub(self.children_ns.unwrap_or(self.child_sum)))
    }
}

/// The building arena: nodes with a free list and an id map.
struct Builder {
    nodes: Vec<BNode>,
    free: Vec<u32>,
    ids: FxHashMap<u64, u32>,
    max_children: usize,
    max_groups: usize,
}

impl Builder {
    fn alloc(&mut self, id: u64) -> u32 {
        let n = BNode::placeholder(id);
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = n;
                i
            }
            None => {
                self.nodes.push(n);
                (self.nodes.len() - 1) as u32
            }
        };
        self.ids.insert(id, i);
        i
    }

    /// Frees a subtree, forgetting its ids.
    fn free_subtree(&mut self, root: u32) {
        let mut stack = vec![root];
        while let Some(i) = stack.pop() {
            let n = &mut self.nodes[i as usize];
            if let Kids::List(v) = std::mem::replace(&mut n.kids, Kids::List(Vec::new())) {
                stack.extend(v);
            }
            n.tags = Vec::new();
            let id = n.span_id;
            if self.ids.get(&id) == Some(&i) {
                self.ids.remove(&id);
            }
            self.free.push(i);
        }
    }

    fn fold(&mut self, parent: u32, child: u32) {
        let c = &self.nodes[child as usize];
        let (name, start, dur, self_ns, err) = (
            c.name,
            c.start_ns,
            c.dur.unwrap_or(0),
            c.self_ns().unwrap_or(0),
            c.status.is_error(),
        );
        let max_groups = self.max_groups;
        if let Kids::Merged { groups, other } = &mut self.nodes[parent as usize].kids {
            if let Some(g) = groups.get_mut(&name) {
                g.0.add(dur, self_ns, err);
                g.1 = g.1.min(start);
            } else if groups.len() < max_groups {
                let mut m = Merged::default();
                m.add(dur, self_ns, err);
                groups.insert(name, (m, start));
            } else {
                other.add(dur, self_ns, err);
            }
        }
        self.free_subtree(child);
    }

    fn attach(&mut self, parent: u32, child: u32) {
        let d = self.nodes[child as usize].dur.unwrap_or(0);
        let p = &mut self.nodes[parent as usize];
        p.child_sum = p.child_sum.saturating_add(d);
        match &mut p.kids {
            Kids::List(v) if v.len() < self.max_children => v.push(child),
            Kids::List(_) => {
                let old = std::mem::replace(
                    &mut p.kids,
                    Kids::Merged {
                        groups: FxHashMap::default(),
                        other: Merged::default(),
                    },
                );
                if let Kids::List(v) = old {
                    for k in v {
                        self.fold(parent, k);
                    }
                }
                self.fold(parent, child);
            }
            Kids::Merged { .. } => self.fold(parent, child),
        }
    }

    fn fill(&mut self, i: u32, s: &SpanRecord) {
        let n = &mut self.nodes[i as usize];
        n.filled = true;
        n.name = s.name;
        n.start_ns = s.start_ns();
        n.dur = s.duration_ns();
        n.children_ns = s.children_ns();
        n.status = s.status.clone();
        n.tags = s.tags.clone();
    }
}

/// The `opts.top` slowest trees of the run `q` selects; see the module docs.
pub fn slowest_trees(store: &Store, q: &Query, opts: &TreeOptions) -> Result<Tree> {
    let sel = select(store, q)?;
    let run = sel.run.as_str();
    let kind = store.kind();
    let mut passes = 1;

    // Pass 1: candidate roots: spans on a root call path (no parent, or,
    // in ferret-io files, no parent open when they start). Orphans:
    // children of spans that are not in the file (still open in a live
    // file, or lost). Even a run whose counters show no loss may be live,
    // so every native span id goes into the set.
    let mut roots = RootsFold {
        kind,
        top: TopN::new(opts.top),
        ids: (kind == FileKind::Native).then(IdSet::default),
    };
    let scanned = scan_threads(
        store,
        &sel,
        ScanOptions::default(),
        opts.threads,
        &mut roots,
    )?;
    let spans_read = scanned.spans;
    let mut roots_top = roots.top;
    let mut missing: FxHashMap<u64, Missing> = FxHashMap::default();
    if let Some(ids) = roots.ids.map(IdSet::finish) {
        let ids = &ids;
        // Native: orphans are spans whose parent id is not in the run.
        // Those of one missing parent become one root standing for it,
        // ranked by the extent of its recorded children.
        passes += 1;
        let mut orphans = OrphansFold {
            ids,
            last: (0, false),
            missing: FxHashMap::default(),
            overflow: TopN::new(opts.top),
            full: false,
        };
        scan_threads(
            store,
            &sel,
            ScanOptions::default(),
            opts.threads,
            &mut orphans,
        )?;
        if orphans.full && opts.threads > 1 {
            orphans = orphans.fresh();
            scan(store, &sel, ScanOptions::default(), &mut orphans)?;
        }
        for (&id, m) in &orphans.missing {
            let dur = m.end.saturating_sub(m.start).max(0) as u64;
            roots_top.offer_key((dur, Reverse(m.start), Reverse(id)), m.trace);
        }
        roots_top.merge(orphans.overflow);
        missing = orphans.missing;
    }
    let mut chosen: Vec<Cand> = roots_top.heap.into_iter().map(|Reverse(c)| c).collect();
    chosen.sort_by(|a, b| b.cmp(a));
    chosen.dedup_by_key(|c| c.key);
    let root_ids: FxHashSet<u64> = chosen.iter().map(|c| c.key.2 .0).collect();
    let root_keys: FxHashSet<Key> = chosen.iter().map(|c| c.key).collect();
    // The node of each chosen root, by its full key: two spans may share
    // an id (a damaged or merged file), and each chosen one is shown once.
    let mut root_nodes: FxHashMap<Key, u32> = FxHashMap::default();
    let traces: FxHashSet<u64> = chosen.iter().map(|c| c.trace).collect();

    // Pass 2: descendants of the chosen roots.
    passes += 1;
    let mut b = Builder {
        nodes: Vec::new(),
        free: Vec::new(),
        ids: FxHashMap::default(),
        max_children: opts.max_children,
        max_groups: opts.max_children.saturating_mul(4).max(64),
    };
    let native = kind == FileKind::Native;
    let scanned = scan(
        store,
        &sel,
        ScanOptions {
            with_tags: true,
            progress: None,
        },
        &mut Filtered {
            // Native: only a chosen root or a span of a chosen trace can be
            // kept; the others are skipped before their tags are decoded.
            wants: |h: &SpanHead| root_ids.contains(&h.id) || traces.contains(&h.trace),
            each: |r: Resolved<'_>| {
                let rec = r.span;
                let key = key(rec);
                let is_root = root_ids.contains(&rec.span_id())
                    && root_keys.contains(&key)
                    && !root_nodes.contains_key(&key);
                if !is_root {
                    if native {
                        if !traces.contains(&rec.trace_id()) {
                            return;
                        }
                    } else {
                        // Start order: the parent is kept already, and still open.
                        match rec.parent_id().and_then(|p| b.ids.get(&p)) {
                            Some(&pi) => {
                                let p = &b.nodes[pi as usize];
                                // No duration: still open, so it holds what follows.
                                let end = p.dur.map_or(i64::MAX, |d| span_end(p.start_ns, d));
                                if end < rec.start_ns() {
                                    return;
                                }
                            }
                            None => return,
                        }
                    }
                }
                let i = match b.ids.get(&rec.span_id()) {
                    // A duplicate id (a damaged or merged file): the later span
                    // gets a node of its own, and later children with that parent
                    // id attach to it (in start order, the most recent one is open).
                    Some(&i) if b.nodes[i as usize].filled => b.alloc(rec.span_id()),
                    Some(&i) => i,
                    None => b.alloc(rec.span_id()),
                };
                b.fill(i, rec);
                if is_root {
                    root_nodes.insert(key, i);
                    return;
                }
                let Some(parent) = rec.parent_id() else {
                    // A parentless span that is not a chosen root (trace id clash).
                    b.free_subtree(i);
                    return;
                };
                let pi = match b.ids.get(&parent) {
                    Some(&p) => p,
                    None => b.alloc(parent), // native: the parent comes later
                };
                b.attach(pi, i);
            },
        },
    )?;
    let spans = &scanned;

    // Flatten into the output arena, iteratively.
    let mut out = Tree {
        run_id: run.to_owned(),
        latest: sel.latest,
        nodes: Vec::new(),
        roots: Vec::new(),
        spans: spans_read,
        passes,
    };
    let k = opts.max_children;
    let mut stack: Vec<(u32, usize)> = Vec::new();
    for c in &chosen {
        let Some(&bi) = root_nodes.get(&c.key).or_else(|| {
            missing
                .contains_key(&c.key.2 .0)
                .then(|| b.ids.get(&c.key.2 .0))
                .flatten()
        }) else {
            continue;
        };
        if !b.nodes[bi as usize].filled {
            // A missing parent standing as a root: named from its
            // children's call path, timed by their extent.
            let Some(&Missing {
                start, end, path, ..
            }) = missing.get(&c.key.2 .0)
            else {
                continue;
            };
            let name = spans
                .paths
                .get(spans.paths.parent(path))
                .map(|(_, name)| name);
            let n = &mut b.nodes[bi as usize];
            n.start_ns = start;
            n.dur = Some(end.saturating_sub(start).max(0) as u64);
            n.children_ns = None;
            n.name = name.unwrap_or(u32::MAX);
        }
        out.roots.push(out.nodes.len());
        push_node(&b, bi, &mut out, spans, &mut stack);
        while let Some((bi, oi)) = stack.pop() {
            let mut children = Vec::new();
            match &b.nodes[bi as usize].kids {
                Kids::List(v) => {
                    let mut v = v.clone();
                    v.retain(|&c| b.nodes[c as usize].filled);
                    v.sort_by_key(|&c| {
                        let n = &b.nodes[c as usize];
                        (n.start_ns, n.span_id)
                    });
                    for c in v {
                        children.push(out.nodes.len());
                        push_node(&b, c, &mut out, spans, &mut stack);
                    }
                }
                Kids::Merged { groups, other } => {
                    let mut g: Vec<(&u32, &(Merged, i64))> = groups.iter().collect();
                    g.sort_by(|a, c| {
                        c.1 .0
                            .total_ns
                            .cmp(&a.1 .0.total_ns)
                            .then_with(|| spans.name(*a.0).cmp(spans.name(*c.0)))
                    });
                    let mut more = More::default();
                    for (idx, (name, (m, start))) in g.into_iter().enumerate() {
                        if idx >= k.max(1) {
                            more.lines += 1;
                            more.agg.absorb(m);
                            continue;
                        }
                        children.push(out.nodes.len());
                        out.nodes.push(TreeNode {
                            name: spans.name(*name).to_owned(),
                            start_ns: *start,
                            duration_ns: Some(m.total_ns),
                            self_ns: Some(m.self_ns),
                            status: Status::Ok,
                            tags: Vec::new(),
                            children: Vec::new(),
                            merged: Some(*m),
                            more: None,
                            missing: false,
                        });
                    }
                    if other.count > 0 {
                        more.lines += 1;
                        more.agg.absorb(other);
                    }
                    if more.lines > 0 {
                        out.nodes[oi].more = Some(more);
                    }
                }
            }
            out.nodes[oi].children = children;
        }
    }
    Ok(out)
}

fn push_node(b: &Builder, bi: u32, out: &mut Tree, spans: &Scanned, stack: &mut Vec<(u32, usize)>) {
    let n = &b.nodes[bi as usize];
    out.nodes.push(TreeNode {
        name: if n.name == u32::MAX {
            "?".to_owned()
        } else {
            spans.name(n.name).to_owned()
        },
        start_ns: n.start_ns,
        duration_ns: n.dur,
        self_ns: if n.filled { n.self_ns() } else { None },
        status: n.status.clone(),
        tags: n.tags.clone(),
        children: Vec::new(),
        merged: None,
        more: None,
        missing: !n.filled,
    });
    stack.push((bi, out.nodes.len() - 1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_does_not_depend_on_order_or_split() {
        // Equal keys with different traces (a damaged file) included.
        let cands: Vec<(Key, u64)> = (0..500u64)
            .map(|i| ((i % 37, Reverse((i % 11) as i64), Reverse(i % 5)), i % 3))
            .collect();
        let kept = |t: TopN| {
            let mut v: Vec<Cand> = t.heap.into_iter().map(|Reverse(c)| c).collect();
            v.sort();
            v.iter().map(|c| (c.key, c.trace)).collect::<Vec<_>>()
        };
        let mut a = TopN::new(20);
        cands.iter().for_each(|&(k, t)| a.offer_key(k, t));
        let mut b = TopN::new(20);
        cands.iter().rev().for_each(|&(k, t)| b.offer_key(k, t));
        let (mut c, mut d) = (TopN::new(20), TopN::new(20));
        for (i, &(k, t)) in cands.iter().enumerate() {
            if i % 3 == 0 { &mut c } else { &mut d }.offer_key(k, t);
        }
        c.merge(d);
        let a = kept(a);
        assert_eq!(a, kept(b));
        assert_eq!(a, kept(c));
    }
}
