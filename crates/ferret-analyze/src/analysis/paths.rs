//! Self time per call path, streamed: the data behind folded stacks and
//! flame graphs.
//!
//! The [scan driver](mod@super::scan) gives every span's call path and self time
//! the same way for native and ferret-io files; this sums self time per path.
//!
//! Paths deeper than [`FoldOptions::max_depth`] frames are cut: their frames
//! below that depth fold into one marker frame ([`cut_frame`]) that carries
//! their self time, so that the total stays exact and a chain 100,000 spans
//! deep gives `max_depth` lines of at most `max_depth + 1` frames instead of
//! 100,000 lines of up to 100,000 frames (output quadratic in depth).
//!
//! Bound: memory grows with the number of distinct call paths (and, for
//! ferret-io, with the spans open at one moment), never with the span count;
//! the output with the number of paths times `max_depth`. Nothing here
//! recurses, and a damaged path table with a cycle cannot loop.

use super::query::{select, Query, Selection};
use super::scan::{scan, Fold, Resolved, ScanOptions, Scanned};
use crate::error::Result;
use crate::store::Store;
use rustc_hash::FxHashMap;

/// Default [`FoldOptions::max_depth`] for folded stacks and flame graphs.
pub const DEFAULT_FOLD_DEPTH: usize = 1024;

/// Options of [`fold_paths`].
#[derive(Debug, Clone, Copy)]
pub struct FoldOptions {
    /// Frames kept per stack; deeper frames fold into one [`cut_frame`].
    /// At least 1.
    pub max_depth: usize,
}

impl Default for FoldOptions {
    fn default() -> Self {
        FoldOptions {
            max_depth: DEFAULT_FOLD_DEPTH,
        }
    }
}

/// The frame that stands for every frame below `max_depth` of a stack.
pub fn cut_frame(max_depth: usize) -> String {
    format!("[deeper than {max_depth}: cut by --max-depth]")
}

/// One call path (or, when cut, every path below one prefix) with its
/// total self time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldedPath {
    /// Frame names from the root down to the leaf, joined by `;`; names are
    /// made safe by [`folded_frame`].
    pub stack: String,
    /// Frames in `stack`.
    pub frames: usize,
    /// Self time summed over every span on this path, in ns.
    pub self_ns: u64,
    /// True when the last frame is the [`cut_frame`] marker.
    pub cut: bool,
}

impl FoldedPath {
    /// The path as one `root;child;leaf` string.
    pub fn joined(&self) -> &str {
        &self.stack
    }
}

/// A node of the prefix tree of stacks.
struct TNode {
    name: u32,
    depth: u32,
    cut: bool,
    self_ns: u64,
    children: Vec<u32>,
}

/// Stacks merged by frame names, cut at a depth.
struct Trie {
    nodes: Vec<TNode>,
    by_name: FxHashMap<(u32, u32), u32>,
    cut_child: FxHashMap<u32, u32>,
    max_depth: u32,
}

impl Trie {
    fn new(max_depth: usize) -> Trie {
        Trie {
            nodes: vec![TNode {
                name: 0,
                depth: 0,
                cut: false,
                self_ns: 0,
                children: vec![],
            }],
            by_name: FxHashMap::default(),
            cut_child: FxHashMap::default(),
            max_depth: max_depth.clamp(1, u32::MAX as usize - 1) as u32,
        }
    }

    fn push(&mut self, parent: u32, name: u32, cut: bool) -> u32 {
        let i = self.nodes.len() as u32;
        let depth = self.nodes[parent as usize].depth + 1;
        self.nodes.push(TNode {
            name,
            depth,
            cut,
            self_ns: 0,
            children: vec![],
        });
        self.nodes[parent as usize].children.push(i);
        i
    }

    /// The node for frame `name` under `t`, or the cut marker below the depth.
    fn child(&mut self, t: u32, name: u32) -> u32 {
        let n = &self.nodes[t as usize];
        if n.cut {
            return t;
        }
        if n.depth >= self.max_depth {
            if let Some(&c) = self.cut_child.get(&t) {
                return c;
            }
            let c = self.push(t, 0, true);
            self.cut_child.insert(t, c);
            return c;
        }
        if let Some(&c) = self.by_name.get(&(t, name)) {
            return c;
        }
        let c = self.push(t, name, false);
        self.by_name.insert((t, name), c);
        c
    }
}

/// Self time per path id.
#[derive(Default)]
struct SelfFold {
    totals: Vec<u64>,
}

impl Fold for SelfFold {
    fn span(&mut self, _r: Resolved<'_>) {}

    fn self_time(&mut self, _name: u32, path: u32, self_ns: u64) {
        let i = path as usize;
        if i >= self.totals.len() {
            self.totals.resize(i + 1, 0);
        }
        self.totals[i] = self.totals[i].saturating_add(self_ns);
    }
}

/// The folded paths of the run `q` selects: self time per call path, paths
/// with zero self time left out, sorted by stack, cut at
/// [`DEFAULT_FOLD_DEPTH`] frames. Also returns the number of spans read.
pub fn fold_paths(store: &Store, q: &Query) -> Result<(Vec<FoldedPath>, u64)> {
    fold_selection(store, &select(store, q)?, &FoldOptions::default())
}

/// [`fold_paths`] cut at `opts.max_depth` frames.
pub fn fold_paths_with(
    store: &Store,
    q: &Query,
    opts: &FoldOptions,
) -> Result<(Vec<FoldedPath>, u64)> {
    fold_selection(store, &select(store, q)?, opts)
}

/// [`fold_paths_with`] of an already resolved selection.
pub(crate) fn fold_selection(
    store: &Store,
    sel: &Selection,
    opts: &FoldOptions,
) -> Result<(Vec<FoldedPath>, u64)> {
    let mut fold = SelfFold::default();
    let scanned = scan(store, sel, ScanOptions::default(), &mut fold)?;
    Ok((
        stacks(&scanned, &fold.totals, opts.max_depth),
        scanned.spans,
    ))
}

/// The stacks of the paths with self time, merged by frame names in a
/// prefix tree cut at `max_depth` and written depth first (no recursion).
fn stacks(scanned: &Scanned, totals: &[u64], max_depth: usize) -> Vec<FoldedPath> {
    let mut trie = Trie::new(max_depth);
    // Path id -> trie node, for the paths met so far.
    let mut memo: FxHashMap<u32, u32> = FxHashMap::default();
    let mut chain: Vec<(u32, u32)> = Vec::new();
    for (path, &self_ns) in totals.iter().enumerate() {
        if self_ns == 0 {
            continue;
        }
        // Walk up to a path met before (or a root), then come back down.
        chain.clear();
        let mut k = path as u32;
        let mut top = 0u32;
        while let Some((parent, name)) = scanned.paths.get(k) {
            if let Some(&t) = memo.get(&k) {
                top = t;
                break;
            }
            chain.push((k, name));
            // A parent id not smaller than its child's is a damaged table:
            // the walk stops there, as in `PathTable::frames`.
            if parent == 0 || parent >= k {
                break;
            }
            k = parent;
        }
        if top == 0 && chain.is_empty() {
            continue; // a path id the file does not know
        }
        let mut t = top;
        while let Some((k, name)) = chain.pop() {
            t = trie.child(t, name);
            memo.insert(k, t);
        }
        let s = &mut trie.nodes[t as usize].self_ns;
        *s = s.saturating_add(self_ns);
    }
    // Depth-first, children by name: the stacks in sorted order.
    let frame = |t: &TNode| -> String {
        if t.cut {
            cut_frame(trie.max_depth as usize)
        } else {
            folded_frame(scanned.name(t.name))
        }
    };
    let sorted = |t: u32| -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = trie.nodes[t as usize]
            .children
            .iter()
            .map(|&c| (frame(&trie.nodes[c as usize]), c))
            .collect();
        v.sort();
        v
    };
    let mut out = Vec::new();
    let mut line = String::new();
    // (children sorted, next child, length of `line` before this level)
    type Level = (Vec<(String, u32)>, usize, usize);
    let mut stack: Vec<Level> = vec![(sorted(0), 0, 0)];
    while let Some(top) = stack.last_mut() {
        if top.1 >= top.0.len() {
            let (_, _, len) = stack.pop().expect("non-empty");
            line.truncate(len);
            continue;
        }
        let (name, c) = std::mem::take(&mut top.0[top.1]);
        top.1 += 1;
        let len = line.len();
        if !line.is_empty() {
            line.push(';');
        }
        line.push_str(&name);
        let node = &trie.nodes[c as usize];
        if node.self_ns > 0 {
            out.push(FoldedPath {
                stack: line.clone(),
                frames: node.depth as usize,
                self_ns: node.self_ns,
                cut: node.cut,
            });
        }
        stack.push((sorted(c), 0, len));
    }
    out
}

/// A frame name safe for the folded format: `;` separates frames and the
/// count follows the last space-free run, so `;` and line breaks become `_`,
/// other control characters become `�` (U+FFFD: XML and terminals cannot
/// take them raw), and an empty name becomes `?`.
pub fn folded_frame(name: &str) -> String {
    if name.is_empty() {
        return "?".to_owned();
    }
    name.chars()
        .map(|c| {
            if c == ';' || c == '\n' || c == '\r' {
                '_'
            } else if c.is_control() {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::folded_frame;

    #[test]
    fn frames_are_sanitized() {
        assert_eq!(folded_frame("a;b\nc"), "a_b_c");
        assert_eq!(folded_frame(""), "?");
        assert_eq!(folded_frame("db query"), "db query");
        assert_eq!(
            folded_frame("bel\u{7}nul\0esc\u{1b}[31m"),
            "bel�nul�esc�[31m"
        );
    }
}
