//! The slowest call trees of a run (`ferret analyze --tree`), in bounded
//! memory. See `docs/trees.md` for the bounds.
//!
//! * Pass 1 streams every span and keeps a heap of the `top` slowest roots.
//!   A root is a span with no parent, or whose parent is absent from the run
//!   (an orphan). ferret-io files are start-ordered: the scan driver's
//!   resolver tells whether a span's parent is open when it starts (a straggler that starts
//!   after its parent ended is a root, as in `calltree`). Native files are
//!   not start-ordered: when the recorder reports losses (or none are known),
//!   pass 1 also fills a Bloom filter with every span id and an extra pass
//!   keeps the `top` slowest spans whose parent is certainly absent.
//! * Pass 2 streams again and keeps only the descendants of the chosen roots
//!   (native: spans whose trace id is a chosen root's trace; ferret-io: spans
//!   whose parent was kept). Once a node has more than `max_children`
//!   children, its children merge into one aggregate per name as they
//!   stream, so a parent of 10M children holds at most `4 × max_children`
//!   aggregates, never 10M nodes.
//!
//! The result is a flat arena ([`Tree`]): no recursion anywhere, so a chain
//! 100,000 spans deep is fine.

use super::query::{select, Query};
use super::scan::{scan, ForEach, ScanOptions, Scanned};
use crate::error::Result;
use crate::store::{FileKind, SpanRecord, Store};
use ferret_format::{Status, Tags};
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
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions {
            top: 20,
            max_children: 50,
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
        self.total_ns += dur;
        self.max_ns = self.max_ns.max(dur);
        self.self_ns += self_ns;
        self.error_count += err as u64;
    }

    fn absorb(&mut self, o: &Merged) {
        self.count += o.count;
        self.total_ns += o.total_ns;
        self.max_ns = self.max_ns.max(o.max_ns);
        self.self_ns += o.self_ns;
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

/// Ranking of roots: slower first, then earlier start, then smaller id.
type Key = (u64, Reverse<i64>, Reverse<u64>);

#[derive(Clone, Copy)]
struct Cand {
    key: Key,
    trace: u64,
}

impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
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
        self.key.cmp(&o.key)
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
    fn offer(&mut self, s: &SpanRecord) {
        if self.n == 0 {
            return;
        }
        let c = Cand {
            key: (
                s.duration_ns().unwrap_or(0),
                Reverse(s.start_ns()),
                Reverse(s.span_id()),
            ),
            trace: s.trace_id(),
        };
        if self.heap.len() < self.n {
            self.heap.push(Reverse(c));
        } else if let Some(Reverse(min)) = self.heap.peek() {
            if c > *min {
                self.heap.pop();
                self.heap.push(Reverse(c));
            }
        }
    }
}

/// A Bloom filter of span ids (16 bits per id, ~0.05% false positives).
struct Bloom {
    bits: Vec<u64>,
    mask: u64,
}

impl Bloom {
    fn new(n: u64) -> Bloom {
        let m = (n.max(64) * 16).next_power_of_two();
        Bloom {
            bits: vec![0; (m / 64) as usize],
            mask: m - 1,
        }
    }
    fn hashes(x: u64) -> (u64, u64) {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z, (z.rotate_left(32) | 1))
    }
    fn insert(&mut self, x: u64) {
        let (a, b) = Self::hashes(x);
        for i in 0..11u64 {
            let bit = a.wrapping_add(i.wrapping_mul(b)) & self.mask;
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }
    fn contains(&self, x: u64) -> bool {
        let (a, b) = Self::hashes(x);
        (0..11u64).all(|i| {
            let bit = a.wrapping_add(i.wrapping_mul(b)) & self.mask;
            self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
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
    // in ferret-io files, no parent open when they start).
    let mut roots_top = TopN::new(opts.top);
    let mut bloom = None;
    if kind == FileKind::Native {
        let lossless = sel
            .counters
            .as_ref()
            .is_some_and(|c| c.dropped() == 0 && c.sampled_out == 0);
        if !lossless {
            let n = sel.counters.as_ref().map_or(1 << 20, |r| r.spans);
            bloom = Some(Bloom::new(n));
        }
    }
    let scanned = scan(
        store,
        &sel,
        ScanOptions::default(),
        &mut ForEach(|r: super::scan::Resolved<'_>| {
            if let Some(b) = &mut bloom {
                b.insert(r.span.span_id());
            }
            let root = match kind {
                FileKind::Native => r.span.parent_id().is_none(),
                FileKind::FerretIo => r.parent_path == 0,
            };
            if root {
                roots_top.offer(r.span);
            }
        }),
    )?;
    let spans_read = scanned.spans;
    if let Some(b) = &bloom {
        // Native with possible losses: orphans are spans whose parent id is
        // certainly not in the run.
        passes += 1;
        scan(
            store,
            &sel,
            ScanOptions::default(),
            &mut ForEach(|r: super::scan::Resolved<'_>| {
                if let Some(p) = r.span.parent_id() {
                    if !b.contains(p) {
                        roots_top.offer(r.span);
                    }
                }
            }),
        )?;
    }
    let mut chosen: Vec<Cand> = roots_top.heap.into_iter().map(|Reverse(c)| c).collect();
    chosen.sort_by(|a, b| b.cmp(a));
    let root_ids: FxHashSet<u64> = chosen.iter().map(|c| c.key.2 .0).collect();
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
        &mut ForEach(|r: super::scan::Resolved<'_>| {
            let rec = r.span;
            let is_root = root_ids.contains(&rec.span_id());
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
                            let end = p.start_ns.saturating_add(p.dur.unwrap_or(0) as i64);
                            if end < rec.start_ns() {
                                return;
                            }
                        }
                        None => return,
                    }
                }
            }
            let i = match b.ids.get(&rec.span_id()) {
                Some(&i) if b.nodes[i as usize].filled => return, // duplicate id
                Some(&i) => i,
                None => b.alloc(rec.span_id()),
            };
            b.fill(i, rec);
            if is_root {
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
        }),
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
        let Some(&bi) = b.ids.get(&c.key.2 .0) else {
            continue;
        };
        if !b.nodes[bi as usize].filled {
            continue;
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
        name: spans.name(n.name).to_owned(),
        start_ns: n.start_ns,
        duration_ns: n.dur,
        self_ns: n.self_ns(),
        status: n.status.clone(),
        tags: n.tags.clone(),
        children: Vec::new(),
        merged: None,
        more: None,
    });
    stack.push((bi, out.nodes.len() - 1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bloom_has_no_false_negatives() {
        let mut b = Bloom::new(10_000);
        for i in 0..10_000u64 {
            b.insert(i * 7919);
        }
        assert!((0..10_000u64).all(|i| b.contains(i * 7919)));
        let fp = (1_000_000..1_100_000u64).filter(|&i| b.contains(i)).count();
        assert!(fp < 100, "{fp} false positives");
    }
}
