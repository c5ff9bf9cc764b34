//! Fleet analysis: one report over many files (one per process or host).
//!
//! Each file is scanned on its own (in parallel, one thread per core) into
//! the same per-name or per-path state a single-file report keeps; the
//! states then merge exactly: counts, totals, self times, min and max add
//! up or compare, and latency sketches merge as if every value had been
//! added to one sketch, so the percentiles are those of a single file
//! holding every span. Memory: one state per file being scanned plus the
//! merged one, each proportional to distinct names (or call paths).
//!
//! Which run each file contributes: [`Query::run`] when given (a file
//! without that run is left out; an error only if no file has it), else
//! each file's latest run.

use super::calltree::{call_tree, CallNode, CallTree};
use super::query::Query;
use super::summary::{finish, partial, Summary, SummaryOptions};
use crate::error::{Error, Result};
use crate::store::Store;
use rustc_hash::FxHashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// An error while reading one of several files.
#[derive(Debug)]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub error: Error,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Runs `f` on every store, `threads` at a time (0: one per core), and
/// returns the results in the stores' order. `Ok(None)` from `f` drops
/// the file. The first error (in file order) wins.
pub fn map_stores<T: Send>(
    stores: Vec<Store>,
    threads: usize,
    f: impl Fn(&Store) -> Result<Option<T>> + Sync,
) -> std::result::Result<Vec<T>, FileError> {
    let n = stores.len();
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |c| c.get())
    } else {
        threads
    }
    .clamp(1, n.max(1));
    let queue = Mutex::new(stores.into_iter().enumerate());
    type Slot<T> = Option<std::result::Result<Option<T>, FileError>>;
    let results: Mutex<Vec<Slot<T>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let next = queue.lock().map(|mut q| q.next()).ok().flatten();
                let Some((i, store)) = next else { break };
                let r = f(&store).map_err(|error| FileError {
                    path: store.path().to_owned(),
                    error,
                });
                drop(store);
                if let Ok(mut res) = results.lock() {
                    res[i] = Some(r);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    let mut out = Vec::with_capacity(n);
    for r in results.into_iter().flatten() {
        if let Some(v) = r? {
            out.push(v);
        }
    }
    Ok(out)
}

/// Reads `run` from a store, or `None` when the run was asked for by id and
/// this file does not have it.
fn for_run<T>(store: &Store, q: &Query, f: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
    if let Some(r) = &q.run {
        match store.check_run(r) {
            Ok(()) => {}
            Err(Error::UnknownRun { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    f().map(Some)
}

fn none_has(q: &Query) -> FileError {
    FileError {
        path: PathBuf::from("(all files)"),
        error: Error::UnknownRun {
            run: q.run.clone().unwrap_or_default(),
            known: Vec::new(),
        },
    }
}

/// The per-name summary of many files as one (see the module docs).
/// `run_id` lists the distinct runs read, comma separated.
pub fn summarize_many(
    stores: Vec<Store>,
    q: &Query,
    opts: &SummaryOptions,
) -> std::result::Result<Summary, FileError> {
    let parts = map_stores(stores, 0, |s| for_run(s, q, || partial(s, q, 1, None)))?;
    if parts.is_empty() {
        return Err(none_has(q));
    }
    Ok(finish(parts, opts))
}

/// The merged call tree of many files as one: paths merge by their frames'
/// names (see the module docs).
pub fn call_tree_many(stores: Vec<Store>, q: &Query) -> std::result::Result<CallTree, FileError> {
    let trees = map_stores(stores, 0, |s| for_run(s, q, || call_tree(s, q)))?;
    if trees.is_empty() {
        return Err(none_has(q));
    }
    Ok(merge_call_trees(trees))
}

/// Merges call trees: nodes with the same frames from the root merge.
pub fn merge_call_trees(trees: Vec<CallTree>) -> CallTree {
    let mut out = CallTree {
        latest: trees.iter().all(|t| t.latest),
        ..CallTree::default()
    };
    let mut runs: Vec<String> = Vec::new();
    // (merged parent index or usize::MAX for roots, name) -> merged index.
    let mut index: FxHashMap<(usize, String), usize> = FxHashMap::default();
    for t in trees {
        if !runs.contains(&t.run_id) {
            runs.push(t.run_id.clone());
        }
        out.spans += t.spans;
        out.evicted_early += t.evicted_early;
        // Depth-first from the roots, carrying the merged parent index.
        let mut stack: Vec<(usize, usize)> =
            t.roots.iter().rev().map(|&r| (r, usize::MAX)).collect();
        while let Some((i, parent)) = stack.pop() {
            let n = &t.nodes[i];
            let key = (parent, n.name.clone());
            let m = match index.get(&key) {
                Some(&m) => m,
                None => {
                    let m = out.nodes.len();
                    out.nodes.push(CallNode {
                        name: n.name.clone(),
                        ..CallNode::default()
                    });
                    index.insert(key, m);
                    if parent == usize::MAX {
                        out.roots.push(m);
                    } else {
                        out.nodes[parent].children.push(m);
                    }
                    m
                }
            };
            let o = &mut out.nodes[m];
            o.count += n.count;
            o.total_ns += n.total_ns;
            o.self_ns += n.self_ns;
            o.max_ns = o.max_ns.max(n.max_ns);
            o.error_count += n.error_count;
            stack.extend(n.children.iter().rev().map(|&c| (c, m)));
        }
    }
    out.sort_and_total();
    out.run_id = runs.join(",");
    out
}
