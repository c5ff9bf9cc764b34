//! Self time per call path, streamed: the data behind folded stacks and
//! flame graphs.
//!
//! Native files carry a call-path id and the direct children's total on each
//! span, so self time is `duration - children_ns` (never below 0) summed per
//! path id. ferret-io files carry neither; their start-ordered stream goes
//! through a [`PathResolver`].
//!
//! Bound: memory grows with the number of distinct call paths (and, for
//! ferret-io, with the spans open at one moment), never with the span count.

use super::resolve::PathResolver;
use crate::error::Result;
use crate::store::{FileKind, SpanQuery, SpanRecord, Store};
use rustc_hash::FxHashMap;

/// One call path with its total self time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldedPath {
    /// Frame names from the root down to the leaf.
    pub frames: Vec<String>,
    /// Self time summed over every span on this path, in ns.
    pub self_ns: u64,
}

impl FoldedPath {
    /// The path as one `root;child;leaf` string.
    pub fn joined(&self) -> String {
        self.frames.join(";")
    }
}

/// Self time per call path of `run`, paths with zero self time left out,
/// sorted by path. Also returns the number of spans read.
pub fn fold_paths(store: &Store, run: &str) -> Result<(Vec<FoldedPath>, u64)> {
    let mut spans = store.spans(run, &SpanQuery::default())?;
    let mut rec = SpanRecord::default();
    let mut n = 0u64;
    // Path key -> self ns. Native: the file's path id; a span without one
    // (or any ferret-io span) is keyed by the resolver's ids, offset past u32.
    let mut totals: FxHashMap<u64, u64> = FxHashMap::default();
    let mut resolver = PathResolver::default();
    // Parent-less paths of native spans that have no path id: name -> key.
    let native = store.kind() == FileKind::Native;
    let mut nameless: FxHashMap<u32, u64> = FxHashMap::default();
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
                None => *nameless
                    .entry(rec.name)
                    .or_insert(BY_NAME | rec.name as u64),
            };
            *totals.entry(key).or_default() += self_ns;
        } else {
            resolver.push(&rec, &mut |f| {
                *totals.entry(RESOLVED | f.path as u64).or_default() += f.self_ns.unwrap_or(0);
            });
        }
    }
    resolver.finish(&mut |f| {
        *totals.entry(RESOLVED | f.path as u64).or_default() += f.self_ns.unwrap_or(0);
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
    let mut out = Vec::new();
    for (key, self_ns) in totals {
        if self_ns == 0 {
            continue;
        }
        let mut names: Vec<u32> = vec![];
        if key & BY_NAME != 0 {
            names.push((key & 0xffff_ffff) as u32);
        } else if key & RESOLVED != 0 {
            let mut id = (key & 0xffff_ffff) as u32;
            while let Some((parent, name)) = resolver.path(id) {
                names.push(name);
                id = parent;
            }
        } else {
            let mut id = key as u32;
            while let Some(&(parent, name)) = native_paths.get(&id) {
                names.push(name);
                if parent == id || names.len() > 100_000 {
                    break;
                }
                id = parent;
            }
        }
        if names.is_empty() {
            continue;
        }
        names.reverse();
        let frames = names
            .into_iter()
            .map(|id| folded_frame(spans.name(id)))
            .collect();
        out.push(FoldedPath { frames, self_ns });
    }
    out.sort_by(|a, b| a.frames.cmp(&b.frames));
    Ok((out, n))
}

/// A frame name safe for the folded format: `;` separates frames and the
/// count follows the last space-free run, so `;` and line breaks become `_`,
/// and an empty name becomes `?`.
pub fn folded_frame(name: &str) -> String {
    if name.is_empty() {
        return "?".to_owned();
    }
    name.chars()
        .map(|c| {
            if c == ';' || c == '\n' || c == '\r' {
                '_'
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
    }
}
