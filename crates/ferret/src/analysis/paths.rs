//! Self time per call path, streamed: the data behind folded stacks and
//! flame graphs.
//!
//! Native files carry a call-path id and the direct children's total on each
//! span, so self time is `duration - children_ns` (never below 0) summed per
//! path id. ferret-io files carry neither; their start-ordered stream goes
//! through a [`PathResolver`].
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

use super::resolve::PathResolver;
use crate::error::Result;
use crate::store::{FileKind, SpanQuery, SpanRecord, Store};
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

/// Self time per call path of `run`, paths with zero self time left out,
/// sorted by stack, cut at `opts.max_depth` frames. Also returns the number
/// of spans read.
pub fn fold_paths(store: &Store, run: &str, opts: &FoldOptions) -> Result<(Vec<FoldedPath>, u64)> {
    let mut spans = store.spans(run, &SpanQuery::default())?;
    let mut rec = SpanRecord::default();
    let mut n = 0u64;
    // Path key -> self ns. Native: the file's path id; a span without one
    // (or any ferret-io span) is keyed by the resolver's ids, offset past u32.
    let mut totals: FxHashMap<u64, u64> = FxHashMap::default();
    let mut resolver = PathResolver::default();
    let native = store.kind() == FileKind::Native;
    const RESOLVED: u64 = 1 << 32;
    const BY_NAME: u64 = 2 << 32;
    while spans.next_into(&mut rec) {
        n += 1;
        if native {
            let self_ns = rec
                .duration_ns
                .unwrap_or(0)
                .saturating_sub(rec.children_ns.unwrap_or(0));
            let key = match rec.path {
                Some(p) => p as u64,
                None => BY_NAME | rec.name as u64,
            };
            let t = totals.entry(key).or_default();
            *t = t.saturating_add(self_ns);
        } else {
            resolver.push(&rec, &mut |f| {
                let t = totals.entry(RESOLVED | f.path as u64).or_default();
                *t = t.saturating_add(f.self_ns.unwrap_or(0));
            });
        }
    }
    resolver.finish(&mut |f| {
        let t = totals.entry(RESOLVED | f.path as u64).or_default();
        *t = t.saturating_add(f.self_ns.unwrap_or(0));
    });
    if let Some(e) = spans.take_error() {
        return Err(e);
    }
    let native_paths: FxHashMap<u32, (u32, u32)> = if native {
        store
            .paths()?
            .into_iter()
            .map(|(id, parent, name)| (id, (parent, name)))
            .collect()
    } else {
        FxHashMap::default()
    };
    // (parent key or None for a root, name) of a key; None if unknown.
    let link = |key: u64| -> Option<(Option<u64>, u32)> {
        if key & BY_NAME != 0 {
            Some((None, (key & 0xffff_ffff) as u32))
        } else if key & RESOLVED != 0 {
            let (p, name) = resolver.path((key & 0xffff_ffff) as u32)?;
            Some(((p != 0).then_some(RESOLVED | p as u64), name))
        } else {
            let &(p, name) = native_paths.get(&(key as u32))?;
            Some(((p != 0).then_some(p as u64), name))
        }
    };
    let limit = native_paths.len() + resolver.path_count() + 2;
    let mut trie = Trie::new(opts.max_depth);
    let mut memo: FxHashMap<u64, u32> = FxHashMap::default();
    let mut chain: Vec<(u64, u32)> = Vec::new();
    let mut keys: Vec<(u64, u64)> = totals.into_iter().filter(|&(_, s)| s > 0).collect();
    keys.sort_unstable();
    for (key, self_ns) in keys {
        // Walk up to a known node (or a root), then come back down.
        chain.clear();
        let mut k = key;
        let mut top = 0u32;
        loop {
            if let Some(&t) = memo.get(&k) {
                top = t;
                break;
            }
            let Some((parent, name)) = link(k) else {
                break; // unknown parent: the chain so far hangs off the root
            };
            chain.push((k, name));
            match parent {
                Some(p) if chain.len() <= limit && p != k => k = p,
                _ => break, // a root (or a damaged, cyclic table: cut it there)
            }
        }
        if top == 0 && chain.is_empty() {
            continue; // a path id the file does not know
        }
        let mut t = top;
        while let Some((k, name)) = chain.pop() {
            t = trie.child(t, name);
            memo.insert(k, t);
        }
        if t != 0 {
            let s = &mut trie.nodes[t as usize].self_ns;
            *s = s.saturating_add(self_ns);
        }
    }
    // Depth-first, children by name: the stacks in sorted order.
    let frame = |t: &TNode| -> String {
        if t.cut {
            cut_frame(trie.max_depth as usize)
        } else {
            folded_frame(spans.name(t.name))
        }
    };
    let mut out = Vec::new();
    let mut line = String::new();
    // (node, its children sorted, next child, length of `line` before it)
    let mut stack: Vec<(Vec<(String, u32)>, usize, usize)> = Vec::new();
    let sorted = |t: u32| -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = trie.nodes[t as usize]
            .children
            .iter()
            .map(|&c| (frame(&trie.nodes[c as usize]), c))
            .collect();
        v.sort();
        v
    };
    stack.push((sorted(0), 0, 0));
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
    Ok((out, n))
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
