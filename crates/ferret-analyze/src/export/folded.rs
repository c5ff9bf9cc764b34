//! Folded stacks (`root;child;leaf <self-ns>`), as flamegraph.pl and inferno
//! read them. Memory: the distinct call paths. Stacks deeper than
//! [`Options::max_depth`] frames are cut (see [`crate::analysis::paths`]).

use super::Options;
use crate::analysis::paths::{fold_selection, FoldOptions};
use crate::analysis::query::Selection;
use crate::error::Result;
use crate::store::Store;
use std::io::Write;

fn fold_options(opts: &Options) -> FoldOptions {
    opts.max_depth
        .map_or_else(FoldOptions::default, |d| FoldOptions {
            max_depth: d.max(1),
        })
}

/// The folded lines of a run and the number of spans read.
pub fn lines(store: &Store, sel: &Selection, opts: &Options) -> Result<(Vec<String>, u64)> {
    let (paths, n) = fold_selection(store, sel, &fold_options(opts))?;
    Ok((
        paths
            .into_iter()
            .map(|p| format!("{} {}", p.stack, p.self_ns))
            .collect(),
        n,
    ))
}

/// Writes the run as folded stacks; returns the spans read.
pub fn write(store: &Store, sel: &Selection, opts: &Options, w: &mut dyn Write) -> Result<u64> {
    let (paths, n) = fold_selection(store, sel, &fold_options(opts))?;
    for p in &paths {
        writeln!(w, "{} {}", p.stack, p.self_ns)?;
    }
    Ok(n)
}
