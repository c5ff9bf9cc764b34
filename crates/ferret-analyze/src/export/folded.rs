//! Folded stacks (`root;child;leaf <self-ns>`), as flamegraph.pl and inferno
//! read them. Memory: the distinct call paths.

use super::Options;
use crate::analysis::paths::{fold_selection, FoldedPath};
use crate::analysis::query::Selection;
use crate::error::Result;
use crate::store::Store;
use std::io::Write;

/// The folded lines of a run and the number of spans read.
pub fn lines(store: &Store, sel: &Selection) -> Result<(Vec<String>, u64)> {
    let (paths, n) = fold_selection(store, sel)?;
    Ok((paths.iter().map(line).collect(), n))
}

fn line(p: &FoldedPath) -> String {
    format!("{} {}", p.joined(), p.self_ns)
}

/// Writes the run as folded stacks; returns the spans read.
pub fn write(store: &Store, sel: &Selection, _opts: &Options, w: &mut dyn Write) -> Result<u64> {
    let (paths, n) = fold_selection(store, sel)?;
    for p in &paths {
        writeln!(w, "{}", line(p))?;
    }
    Ok(n)
}
