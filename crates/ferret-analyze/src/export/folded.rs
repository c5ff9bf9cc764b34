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

/// The folded lines of a run and the number of spans read, with counts
/// shifted right by the returned number of bits when their sum would not
/// fit in 62 bits (inferno adds counts in a `usize`; damaged files can hold
/// durations near `u64::MAX`).
pub fn lines(store: &Store, sel: &Selection, opts: &Options) -> Result<(Vec<String>, u64, u32)> {
    let (paths, n) = fold_selection(store, sel, &fold_options(opts))?;
    let total: u128 = paths.iter().map(|p| p.self_ns as u128).sum();
    let mut shift = 0;
    while total >> shift > (1u128 << 62) {
        shift += 1;
    }
    Ok((
        paths
            .into_iter()
            .map(|p| format!("{} {}", p.stack, (p.self_ns >> shift).max(1)))
            .collect(),
        n,
        shift,
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
