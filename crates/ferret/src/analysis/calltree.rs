//! Every span of a run merged by call path (`ferret calltree`), in one pass.
//!
//! Memory is proportional to the number of distinct call paths. Native
//! files carry interned path ids; ferret-io files have none, so paths are
//! resolved while streaming by a [`PathResolver`] (bounded by the spans
//! open at one moment; a straggler that starts after its parent ended, or
//! whose parent is absent, becomes a root).

use super::resolve::PathResolver;
use crate::store::{FileKind, SpanQuery, SpanRecord, Store};
use crate::Result;
use rustc_hash::FxHashMap;

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

impl Acc {
    /// Counts one span of this path (self time is added by the caller,
    /// which knows it either from the record or from the resolver).
    fn add(&mut self, rec: &SpanRecord) {
        let d = rec.duration_ns.unwrap_or(0);
        self.count += 1;
        self.total += d;
        self.max = self.max.max(d);
        self.errors += rec.status.is_error() as u64;
    }
}

/// Folds every span of `run` into its call tree.
pub fn call_tree(store: &Store, run: &str) -> Result<CallTree> {
    let mut spans = store.spans(run, &SpanQuery::default())?;
    let mut rec = SpanRecord::default();
    let mut accs: Vec<Acc> = Vec::new();
    let mut n = 0u64;
    let acc = |accs: &mut Vec<Acc>, p: u32| -> usize {
        let i = p as usize;
        if i >= accs.len() {
            accs.resize(i + 1, Acc::default());
        }
        i
    };
    // (path id) -> (parent path, name id); names resolved at the end.
    let mut table: Vec<(u32, u32, u32)>; // (id, parent, name)
    let mut evicted = 0;
    match store.kind() {
        FileKind::Native => {
            // Spans without a path id get one of ours, keyed by name, above
            // the file's ids.
            table = store.paths()?;
            let mut next = table.iter().map(|t| t.0).max().unwrap_or(0) + 1;
            let mut extra: FxHashMap<u32, u32> = FxHashMap::default();
            while spans.next_into(&mut rec) {
                n += 1;
                let p = match rec.path {
                    Some(p) => p,
                    None => *extra.entry(rec.name).or_insert_with(|| {
                        next += 1;
                        table.push((next - 1, 0, rec.name));
                        next - 1
                    }),
                };
                let i = acc(&mut accs, p);
                let a = &mut accs[i];
                a.add(&rec);
                a.self_ns += rec
                    .duration_ns
                    .unwrap_or(0)
                    .saturating_sub(rec.children_ns.unwrap_or(0));
            }
        }
        FileKind::FerretIo => {
            let mut r = PathResolver::default();
            while spans.next_into(&mut rec) {
                n += 1;
                let p = r.push(&rec, &mut |f| {
                    let i = acc(&mut accs, f.path);
                    accs[i].self_ns += f.self_ns.unwrap_or(0);
                });
                let i = acc(&mut accs, p);
                accs[i].add(&rec);
            }
            r.finish(&mut |f| {
                let i = acc(&mut accs, f.path);
                accs[i].self_ns += f.self_ns.unwrap_or(0);
            });
            evicted = r.evicted_early;
            table = (1..=r.path_count() as u32)
                .filter_map(|id| r.path(id).map(|(p, nm)| (id, p, nm)))
                .collect();
        }
    }
    if let Some(e) = spans.take_error() {
        return Err(e);
    }
    // Keep paths with spans, and their ancestors (a native file's path table
    // covers every run).
    let max_id = table.iter().map(|t| t.0).max().unwrap_or(0) as usize;
    let mut parent_of = vec![0u32; max_id + 1];
    let mut name_of = vec![0u32; max_id + 1];
    let mut known = vec![false; max_id + 1];
    for &(id, p, nm) in &table {
        parent_of[id as usize] = p;
        name_of[id as usize] = nm;
        known[id as usize] = true;
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
        run_id: run.to_owned(),
        spans: n,
        evicted_early: evicted,
        ..Default::default()
    };
    let mut index = vec![usize::MAX; max_id + 1];
    for id in 1..=max_id {
        if keep[id] {
            index[id] = out.nodes.len();
            let a = accs.get(id).copied().unwrap_or_default();
            out.nodes.push(CallNode {
                name: spans.name(name_of[id]).to_owned(),
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
    let totals: Vec<(u64, String)> = out
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
    for n in &mut out.nodes {
        n.children.sort_by(by_total);
    }
    out.roots.sort_by(by_total);
    out.total_ns = out.roots.iter().map(|&r| out.nodes[r].total_ns).sum();
    Ok(out)
}
