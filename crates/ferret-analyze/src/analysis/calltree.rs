//! Every span of a run merged by call path (`ferret calltree`), in one pass.
//!
//! Memory is proportional to the number of distinct call paths. Native
//! files carry interned path ids; ferret-io files have none, so paths are
//! resolved while streaming by a [`PathResolver`](super::resolve::PathResolver) (bounded by the spans
//! open at one moment; a straggler that starts after its parent ended, or
//! whose parent is absent, becomes a root).

use super::parallel::{scan_threads, Merge};
use super::query::{select, Query};
use super::scan::{Fold, Resolved, ScanOptions};
use crate::error::Result;
use crate::store::Store;
use ferret_format::codec::{HeadColumns, HeadFields, SpanHead};

/// One call path. Times in ns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallNode {
    /// Name of the path's last frame.
    pub name: String,
    /// Spans on this path.
    pub count: u64,
    /// Sum of their durations. A path with no span of its own (`count`
    /// 0: the span is still open in a live file, or was lost) has the sum
    /// of its children's totals, a lower bound.
    pub total_ns: u64,
    /// Sum of their self times.
    pub self_ns: u64,
    /// Longest.
    pub max_ns: u64,
    /// Spans whose status is not ok.
    pub error_count: u64,
    /// Child paths (indices into [`CallTree::nodes`]), largest total first.
    pub children: Vec<usize>,
}

impl CallNode {
    /// Mean duration.
    pub fn avg_ns(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_ns as f64 / self.count as f64
        }
    }
}

/// The merged call tree of a run, as a flat arena.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallTree {
    /// Run analyzed.
    pub run_id: String,
    /// True when the run was picked as the file's latest.
    pub latest: bool,
    /// Every path.
    pub nodes: Vec<CallNode>,
    /// Root paths, largest total first.
    pub roots: Vec<usize>,
    /// Spans read.
    pub spans: u64,
    /// Sum of the roots' totals.
    pub total_ns: u64,
    /// ferret-io: spans finished early because too many were open at once.
    pub evicted_early: u64,
}

#[derive(Default, Clone, Copy)]
struct Acc {
    count: u64,
    total: u64,
    self_ns: u64,
    max: u64,
    errors: u64,
}

/// Per-path accumulators, indexed by path id.
#[derive(Default)]
struct CallFold {
    accs: Vec<Acc>,
}

impl CallFold {
    #[inline(always)]
    fn acc(&mut self, path: u32) -> &mut Acc {
        let i = path as usize;
        if i < self.accs.len() {
            &mut self.accs[i]
        } else {
            self.grow(i)
        }
    }

    /// Makes room for path id `i` (a new path: rare, out of the scan loop).
    #[cold]
    #[inline(never)]
    fn grow(&mut self, i: usize) -> &mut Acc {
        self.accs.resize(i + 1, Acc::default());
        &mut self.accs[i]
    }

    /// Counts a span's head and returns its path's state.
    #[inline(always)]
    fn count_head(&mut self, h: &SpanHead) -> &mut Acc {
        let a = self.acc(h.path);
        a.count += 1;
        a.total = a.total.saturating_add(h.dur_ns);
        a.max = a.max.max(h.dur_ns);
        a.errors += h.is_error() as u64;
        a
    }
}

/// Counts spans `i..` of `c` into their paths' states, up to the first
/// whose path has no state yet; returns where it stopped (`c.len()` after
/// the last). Not inlined: a call per block, and the loop gets registers
/// of its own.
#[inline(never)]
fn count_paths(accs: &mut [Acc], c: &HeadColumns<'_>, mut i: usize) -> usize {
    let status = c.status_bytes();
    let n = status.len();
    // One length for all (no bounds check per span).
    let (path, dur, child) = (&c.path[..n], &c.dur[..n], &c.child[..n]);
    while i < n {
        let Some(a) = accs.get_mut(path[i] as usize) else {
            break;
        };
        let d = dur[i];
        a.count += 1;
        a.total = a.total.saturating_add(d);
        // A branch, not a select: a new longest span is rare.
        if d > a.max {
            a.max = d;
        }
        if HeadColumns::error_of(status[i]) {
            a.errors += 1;
        }
        a.self_ns = a.self_ns.saturating_add(d.saturating_sub(child[i]));
        i += 1;
    }
    i
}

impl Fold for CallFold {
    fn heads_only(&self) -> bool {
        true
    }

    fn head_fields(&self) -> HeadFields {
        HeadFields::PATH | HeadFields::DURATION | HeadFields::CHILDREN | HeadFields::ERROR
    }

    #[inline(always)]
    fn head(&mut self, h: &SpanHead, _name: u32) {
        self.count_head(h);
    }

    /// One lookup of the path's state for the head and the self time.
    #[inline(always)]
    fn head_and_self(&mut self, h: &SpanHead, _name: u32) {
        let a = self.count_head(h);
        a.self_ns = a
            .self_ns
            .saturating_add(h.dur_ns.saturating_sub(h.child_ns));
    }

    /// Span by span with the states in a local (the stores into a state
    /// do not make the loop load them again), until a path without a
    /// state yet.
    #[inline(always)]
    fn head_columns(&mut self, c: &HeadColumns<'_>, _names: &[u32]) {
        let mut i = 0;
        while i < c.len() {
            i = count_paths(&mut self.accs, c, i);
            if i < c.len() {
                self.grow(c.path[i] as usize);
            }
        }
    }

    fn span(&mut self, r: Resolved<'_>) {
        let d = r.span.duration_ns().unwrap_or(0);
        let err = r.span.status.is_error();
        let a = self.acc(r.path);
        a.count += 1;
        a.total = a.total.saturating_add(d);
        a.max = a.max.max(d);
        a.errors += err as u64;
    }

    fn self_time(&mut self, _name: u32, path: u32, self_ns: u64) {
        let a = self.acc(path);
        a.self_ns = a.self_ns.saturating_add(self_ns);
    }
}

impl Merge for CallFold {
    fn fresh(&self) -> Self {
        CallFold::default()
    }

    fn merge(&mut self, other: Self) {
        for (i, o) in other.accs.into_iter().enumerate() {
            let a = self.acc(i as u32);
            a.count += o.count;
            a.total = a.total.saturating_add(o.total);
            a.self_ns = a.self_ns.saturating_add(o.self_ns);
            a.max = a.max.max(o.max);
            a.errors += o.errors;
        }
    }
}

/// Folds every span of the run `q` selects into its call tree.
pub fn call_tree(store: &Store, q: &Query) -> Result<CallTree> {
    call_tree_threads(store, q, 1)
}

/// [`call_tree`] on up to `threads` threads (native files; see
/// [`scan_threads`]): the same tree, bit for bit, sooner.
pub fn call_tree_threads(store: &Store, q: &Query, threads: usize) -> Result<CallTree> {
    let sel = select(store, q)?;
    let mut fold = CallFold::default();
    let scanned = scan_threads(store, &sel, ScanOptions::default(), threads, &mut fold)?;
    let accs = fold.accs;
    let n = scanned.spans;
    let paths = &scanned.paths;
    // Keep paths with spans, and their ancestors (a native file's path table
    // covers every run).
    let max_id = (paths.end() as usize).saturating_sub(1);
    let mut parent_of = vec![0u32; max_id + 1];
    let mut name_of = vec![0u32; max_id + 1];
    let mut known = vec![false; max_id + 1];
    for id in 1..=max_id as u32 {
        if let Some((p, nm)) = paths.get(id) {
            parent_of[id as usize] = p;
            name_of[id as usize] = nm;
            known[id as usize] = true;
        }
    }
    let mut keep = vec![false; max_id + 1];
    for (id, _) in known.iter().enumerate().filter(|(_, &k)| k) {
        if accs.get(id).is_some_and(|a| a.count > 0) {
            let mut c = id;
            while c != 0 && c <= max_id && !keep[c] {
                keep[c] = true;
                c = parent_of[c] as usize;
            }
        }
    }
    let mut out = CallTree {
        run_id: sel.run,
        latest: sel.latest,
        spans: n,
        evicted_early: scanned.evicted_early,
        ..Default::default()
    };
    let mut index = vec![usize::MAX; max_id + 1];
    for id in 1..=max_id {
        if keep[id] {
            index[id] = out.nodes.len();
            let a = accs.get(id).copied().unwrap_or_default();
            out.nodes.push(CallNode {
                name: scanned.name(name_of[id]).to_owned(),
                count: a.count,
                total_ns: a.total,
                self_ns: a.self_ns,
                max_ns: a.max,
                error_count: a.errors,
                children: Vec::new(),
            });
        }
    }
    for id in 1..=max_id {
        if !keep[id] {
            continue;
        }
        let p = parent_of[id] as usize;
        if p != 0 && p <= max_id && keep[p] {
            let pi = index[p];
            out.nodes[pi].children.push(index[id]);
        } else {
            out.roots.push(index[id]);
        }
    }
    // A path with no span of its own but with descendants is an open span
    // (a live file) or one lost in a crash: its total is that of its
    // children, a lower bound, so that percentages stay real. Post-order,
    // iteratively.
    let mut stack: Vec<(usize, bool)> = out.roots.iter().map(|&r| (r, false)).collect();
    while let Some((i, done)) = stack.pop() {
        if !done {
            stack.push((i, true));
            stack.extend(out.nodes[i].children.iter().map(|&c| (c, false)));
        } else if out.nodes[i].total_ns == 0 {
            let sum = out.nodes[i]
                .children
                .iter()
                .fold(0u64, |a, &c| a.saturating_add(out.nodes[c].total_ns));
            out.nodes[i].total_ns = sum;
        }
    }
    out.sort_and_total();
    Ok(out)
}

impl CallTree {
    /// Orders every node's children and the roots by total (largest
    /// first, then by name), and sums the roots' totals into `total_ns`.
    pub(crate) fn sort_and_total(&mut self) {
        let totals: Vec<(u64, String)> = self
            .nodes
            .iter()
            .map(|n| (n.total_ns, n.name.clone()))
            .collect();
        let by_total = |a: &usize, b: &usize| {
            totals[*b]
                .0
                .cmp(&totals[*a].0)
                .then_with(|| totals[*a].1.cmp(&totals[*b].1))
        };
        for n in &mut self.nodes {
            n.children.sort_by(by_total);
        }
        self.roots.sort_by(by_total);
        self.total_ns = self
            .roots
            .iter()
            .fold(0u64, |a, &r| a.saturating_add(self.nodes[r].total_ns));
    }
}
