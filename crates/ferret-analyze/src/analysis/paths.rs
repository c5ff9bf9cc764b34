//! Self time per call path, streamed: the data behind folded stacks and
//! flame graphs.
//!
//! The [scan driver](mod@super::scan) gives every span's call path and self time
//! the same way for native and ferret-io files; this sums self time per path.
//!
//! Bound: memory grows with the number of distinct call paths (and, for
//! ferret-io, with the spans open at one moment), never with the span count.

use super::query::{select, Query, Selection};
use super::scan::{scan, Fold, Resolved, ScanOptions};
use crate::error::Result;
use crate::store::Store;

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
/// with zero self time left out, sorted by path. Also returns the number of
/// spans read.
pub fn fold_paths(store: &Store, q: &Query) -> Result<(Vec<FoldedPath>, u64)> {
    fold_selection(store, &select(store, q)?)
}

/// [`fold_paths`] of an already resolved selection.
pub(crate) fn fold_selection(store: &Store, sel: &Selection) -> Result<(Vec<FoldedPath>, u64)> {
    let mut fold = SelfFold::default();
    let scanned = scan(store, sel, ScanOptions::default(), &mut fold)?;
    let mut out = Vec::new();
    for (path, &self_ns) in fold.totals.iter().enumerate() {
        if self_ns == 0 {
            continue;
        }
        let names = scanned.paths.frames(path as u32);
        if names.is_empty() {
            continue;
        }
        let frames = names
            .into_iter()
            .map(|id| folded_frame(scanned.name(id)))
            .collect();
        out.push(FoldedPath { frames, self_ns });
    }
    out.sort_by(|a, b| a.frames.cmp(&b.frames));
    Ok((out, scanned.spans))
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
